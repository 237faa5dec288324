/**
 * HubSpot end to end, through the real broker, the real registry and PostgreSQL:
 * HubSpot simulator → connector → raw topic → mapper → mapped topic → sink. A full run, then an
 * incremental run that picks up a change and an archived record.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Config, parseConfig } from "../../app/config.ts";
import { type RunHandle, runRoles } from "../../app/roles.ts";
import { openRuntime, type Runtime } from "../../lib/runtime.ts";
import { readToEnd } from "../../lib/topic-scan.ts";
import type { DeadLetter } from "../../schemas/index.ts";
import { type HubSpotSimulator, startHubSpotSimulator } from "../../simulators/hubspot/server.ts";
import { ensureDatabase, pipelineHeaderYaml, uniqueId, withDb } from "../../support/env.ts";
import { demoData } from "../../support/hubspot.ts";
import { syncAndWait } from "../../support/pipeline.ts";

const SINK_DB = "qobra_it_sink";

let sim: HubSpotSimulator;
let config: Config;
let rt: Runtime;
let pipeline: RunHandle;
let sinkSchema: string;

const sink = <T extends Record<string, unknown>>(sql: string, params: unknown[] = []) => withDb(SINK_DB, async (c) => (await c.query<T>(sql, params)).rows);

beforeAll(async () => {
  const data = demoData();
  data.portal!.search = { indexDelayMs: 0 };
  // The app was not granted the optional e-commerce scope: the line_items table is skipped, the rest syncs.
  data.portal!.grantedScopes = data.portal!.grantedScopes!.filter((s) => s !== "crm.objects.line_items.read");
  sim = await startHubSpotSimulator({ data, validateResponses: true });
  const id = uniqueId("iths");
  sinkSchema = `sink_${id}`;
  await ensureDatabase(SINK_DB);
  config = parseConfig(
    `
${pipelineHeaderYaml({ prefix: id, sinkDb: SINK_DB, sinkSchema: sinkSchema, defaultCurrency: "JPY" })}connectors:
  - id: hs
    type: hubspot
    baseUrl: "${sim.url}"
    clientId: demo-client-id
    clientSecret: "\${env:HS_CLIENT_SECRET}"
    refreshToken: demo-refresh-token
    schedule: { incrementalEveryMinutes: 15, timezone: Europe/Paris }
    tables:
      - name: deals
        object: deals
        fields:
          dealname: string
          amount: amount
          closedate: date
          dealstage: picklist
          hubspot_owner_id: user
          deal_tags: multipicklist
          commission_rate: percentage
          companies: object
          contacts: object
      - name: companies
        object: companies
      - name: line_items
        object: line_items
`,
    "hubspot test config",
    { HS_CLIENT_SECRET: "demo-client-secret" },
  );
  rt = await openRuntime(config, "test");
  pipeline = await runRoles(config, ["producer", "mapper", "sink"]);
});

afterAll(async () => {
  await pipeline?.stop();
  await rt?.close();
  await sim?.close();
});

describe("HubSpot → Kafka → PostgreSQL", () => {
  it("a full run lands every deal with exact values, owner emails, stage labels and associations", async () => {
    const run = await syncAndWait(rt, "hs", { full: true, timeoutMs: 60_000 });
    expect(run.type, run.error ?? "").toBe("RUN_COMPLETED");
    expect(run.counts.skipped).toBe(1); // line_items: optional scope missing, reported, nothing else stopped
    expect(run.type, run.error ?? "").toBe("RUN_COMPLETED");
    expect(run.counts["read.deals"]).toBe(4);
    expect(run.counts["read.companies"]).toBe(3);
    const rows = await sink(`SELECT _external_id, _name, amount::text, amount_currency, closedate, dealstage, hubspot_owner_id, deal_tags,
        commission_rate::text, companies, companies_table, contacts, contacts_table, _source_updated_at, _deleted_at
      FROM "${sinkSchema}"."hs__deals" ORDER BY _external_id`);
    expect(rows).toEqual([
      {
        _external_id: "1001",
        _name: "Acme - Platform licence",
        amount: "125000.123456789012",
        amount_currency: "EUR",
        closedate: new Date("2024-03-29T00:00:00.000Z"),
        dealstage: "Closed Won",
        hubspot_owner_id: "alice.martin@example.com",
        deal_tags: ["strategic", "upsell"],
        commission_rate: "0.075",
        companies: "2001",
        companies_table: "companies",
        contacts: "3001",
        contacts_table: "contacts",
        _source_updated_at: new Date("2024-04-01T10:00:00.000Z"),
        _deleted_at: null,
      },
      {
        _external_id: "1002",
        _name: "Globex - Expansion",
        amount: "98765.4321",
        amount_currency: "USD",
        closedate: new Date("2024-04-30T00:00:00.000Z"),
        dealstage: "Contract Sent",
        hubspot_owner_id: "bruno.dupont@example.com",
        deal_tags: ["partner"],
        commission_rate: "0.05",
        companies: "2002",
        companies_table: "companies",
        contacts: "3002",
        contacts_table: "contacts",
        _source_updated_at: new Date("2024-04-02T10:00:00.000Z"),
        _deleted_at: null,
      },
      {
        // owner 103 is archived in HubSpot: still resolved to an email
        _external_id: "1003",
        _name: "Initech - Renewal 2024",
        amount: "0.000000001",
        amount_currency: "GBP",
        closedate: new Date("2024-06-30T00:00:00.000Z"),
        dealstage: "Renewal due",
        hubspot_owner_id: "chloe.bernard@example.com",
        deal_tags: null,
        commission_rate: null,
        companies: "2003",
        companies_table: "companies",
        contacts: null,
        contacts_table: null,
        _source_updated_at: new Date("2024-04-03T10:00:00.000Z"),
        _deleted_at: null,
      },
      {
        _external_id: "1004",
        _name: "Acme - Services",
        amount: "18000.5",
        amount_currency: "EUR",
        closedate: new Date("2024-02-28T00:00:00.000Z"),
        dealstage: "Closed Lost",
        hubspot_owner_id: "alice.martin@example.com",
        deal_tags: null,
        commission_rate: null,
        companies: "2001",
        companies_table: "companies",
        contacts: null,
        contacts_table: null,
        _source_updated_at: new Date("2024-04-04T10:00:00.000Z"),
        _deleted_at: null,
      },
    ]);
    const companies = await sink(`SELECT _external_id, _name, hubspot_owner_id FROM "${sinkSchema}"."hs__companies" ORDER BY 1`);
    expect(companies.map((c) => [c._external_id, c._name, c.hubspot_owner_id])).toEqual([
      ["2001", "Acme SAS", "alice.martin@example.com"],
      ["2002", "Globex GmbH", "bruno.dupont@example.com"],
      ["2003", "Initech Ltd", "chloe.bernard@example.com"],
    ]);
  });

  it("an incremental run picks up a changed deal and an archived one (soft delete), and nothing else", async () => {
    sim.upsertRecord("deals", { id: "1002", properties: { amount: "1.000000000000000001", dealstage: "closedwon" } });
    sim.archiveRecord("deals", "1004");
    const requestsBefore = sim.counters()["POST /crm/v3/objects/deals/search"] ?? 0;
    const run = await syncAndWait(rt, "hs", { timeoutMs: 60_000 });
    expect(run.type, run.error ?? "").toBe("RUN_COMPLETED");
    expect(run.counts["read.deals"]).toBe(1);
    expect(run.counts.deleted).toBe(1);
    // one search page: the changes' (planning the run read it, the read reused it); the association sweep lists nothing (the raw topic knows the ids)
    expect((sim.counters()["POST /crm/v3/objects/deals/search"] ?? 0) - requestsBefore).toBe(1);
    const rows = await sink(
      `SELECT _external_id, amount::text, dealstage, _deleted_at IS NOT NULL AS deleted, _run_id FROM "${sinkSchema}"."hs__deals" ORDER BY 1`,
    );
    expect(rows.map((r) => [r._external_id, r.amount, r.dealstage, r.deleted, r._run_id === run.runId])).toEqual([
      ["1001", "125000.123456789012", "Closed Won", false, false],
      ["1002", "1.000000000000000001", "Closed Won", false, true],
      ["1003", "0.000000001", "Renewal due", false, false],
      ["1004", "18000.5", "Closed Lost", true, true], // soft-deleted by this run: last values kept
    ]);
    // nothing went to the mapper's dead-letter topic (the archived deals' deletes included)
    const letters: DeadLetter[] = [];
    await readToEnd(rt.port, rt.port.topics.dlqMapper, async (messages) => {
      for (const m of messages) if (m.value) letters.push(await rt.codec.decode<DeadLetter>(m.value));
    });
    expect(letters.map((l) => `${l.table} ${l.errorMessage}`)).toEqual([]);
  });

  it("an association added without any property change reaches the sink on the next incremental", async () => {
    const lastModified = (await sink<{ t: Date }>(`SELECT _source_updated_at AS t FROM "${sinkSchema}"."hs__deals" WHERE _external_id = '1003'`))[0]!.t;
    expect(
      sim.changeAssociations({ add: [{ fromType: "deals", fromId: "1003", toType: "contacts", toId: "3001", associationTypeId: 3 }] }).added,
    ).toBeGreaterThan(0);
    const run = await syncAndWait(rt, "hs", { timeoutMs: 60_000 });
    expect(run.type, run.error ?? "").toBe("RUN_COMPLETED");
    expect(await sink(`SELECT contacts, contacts_table, _source_updated_at AS t FROM "${sinkSchema}"."hs__deals" WHERE _external_id = '1003'`)).toEqual([
      { contacts: "3001", contacts_table: "contacts", t: lastModified },
    ]);
  });
});
