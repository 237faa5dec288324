/**
 * Salesforce end to end through the real pipeline: the Salesforce simulator (driven by jsforce)
 * → producer worker → raw topic → mapper (schemas in the registry) → mapped topics → sink.
 * A full run lands every live record with exact values; an incremental run picks up a change and
 * soft-deletes a record deleted at the source; a full run Salesforce times out on (QUERY_TIMEOUT, its
 * Bulk job refused) reads through narrower windows and deletes nothing it should not.
 */
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type RunHandle, runRoles } from "../../app/roles.ts";
import type { Config } from "../../lib/config.ts";
import { openRuntime, type Runtime } from "../../lib/runtime.ts";
import { readToEnd } from "../../lib/topic-scan.ts";
import type { SyncEvent } from "../../schemas/index.ts";
import { type SalesforceSimulator, startSalesforceSimulator } from "../../simulators/salesforce/server.ts";
import { ensureDatabase, pipelineHeaderYaml, testConfig, uniqueId, useScratchTokenStore, withDb } from "../../support/env.ts";
import { syncAndWait } from "../../support/pipeline.ts";

const DEMO = fileURLToPath(new URL("../../simulators/salesforce/demo-data.json", import.meta.url));
const SINK_DB = "qobra_it_sink";
const OPP = { d1: "006Gn00000002bJIAQ", d2: "006Gn00000002bKIAQ", d3: "006Gn00000002bLIAQ", d4: "006Gn00000002bMIAQ", d7: "006Gn00000002bPIAQ" };

let sim: SalesforceSimulator;
let config: Config;
let rt: Runtime;
let pipeline: RunHandle;
let sinkSchema: string;
let tokens: ReturnType<typeof useScratchTokenStore> | undefined;

const sink = <T extends Record<string, unknown>>(sql: string, params: unknown[] = []) => withDb(SINK_DB, async (c) => (await c.query<T>(sql, params)).rows);

beforeAll(async () => {
  const id = uniqueId("sfit");
  sinkSchema = `sink_${id}`;
  // The worker builds its connector from the config alone: the token store comes from the environment.
  tokens = useScratchTokenStore("qobra-sf-it-");
  await ensureDatabase(SINK_DB);
  sim = await startSalesforceSimulator({ data: DEMO, port: 0 });
  const t = sim.state.issueTokens();
  config = testConfig(`
${pipelineHeaderYaml({ prefix: id, sinkDb: SINK_DB, sinkSchema: sinkSchema })}connectors:
  - id: sf
    type: salesforce
    loginUrl: "${sim.url}"
    clientId: "${t.clientId}"
    clientSecret: "${t.clientSecret}"
    refreshToken: "${t.refreshToken}"
    schedule: { fullAt: "02:00", incrementalEveryHours: 2, timezone: "Europe/Paris" }
    tables:
      - name: opportunities
        object: Opportunity
        # CreatedDate's date kind follows the source (datetime); a DELETE reuses the table's registered schema
        fields: { Amount: amount, CloseDate: date, CreatedDate: date, OwnerId: user, AccountId: object, StageName: picklist, Probability: percentage, IsWon: bool }
      - name: tasks
        object: Task
        fields: { Subject: string, WhoId: object, WhatId: object, OwnerId: user }
      - name: accounts_all_fields
        object: Account
`);
  rt = await openRuntime(config, "test");
  pipeline = await runRoles(config, ["producer", "mapper", "sink"]);
});

afterAll(async () => {
  await pipeline?.stop();
  await rt?.close();
  await sim?.close();
  tokens?.restore();
});

describe("Salesforce → Kafka → PostgreSQL", () => {
  it("a full run lands every live record with exact values, user emails, resolved references and currencies", async () => {
    const run = await syncAndWait(rt, "sf", { full: true, timeoutMs: 60_000 });
    expect(run.type, run.error ?? "").toBe("RUN_COMPLETED");
    expect(run.counts["read.opportunities"]).toBe(7);
    expect(run.counts["read.tasks"]).toBe(7);
    // the source API budget travels with the run's events (for /metrics and the web page)
    const tableEvents: SyncEvent[] = [];
    await readToEnd(rt.port, rt.port.topics.syncEvents, async (messages) => {
      for (const m of messages) {
        if (m.key?.toString() !== run.runId) continue;
        const e = await rt.codec.decode<SyncEvent>(m.value!);
        if (e.type === "TABLE_COMPLETED") tableEvents.push(e);
      }
    });
    const opp = tableEvents.find((e) => e.table === "opportunities")!;
    expect(opp.counts.apiCalls).toBeGreaterThan(0);
    expect(opp.counts.apiLimit).toBeGreaterThan(0);
    expect(opp.counts.apiUsed).toBeGreaterThanOrEqual(opp.counts.apiCalls!);
    const rows = await sink<
      Record<string, unknown>
    >(`SELECT _external_id, _name, "Amount"::text AS amount, "Amount_currency" AS cur, "CloseDate"::text AS close,
        "CreatedDate" AS created, "OwnerId" AS owner, "AccountId" AS account, "AccountId_table" AS account_table, "StageName" AS stage,
        "Probability"::text AS prob, "IsWon" AS won, _deleted_at FROM "${sinkSchema}"."sf__opportunities" ORDER BY _external_id`);
    expect(rows).toHaveLength(7);
    expect(rows.map((r) => r._external_id)).not.toContain(OPP.d7); // in the recycle bin
    const byId = new Map(rows.map((r) => [r._external_id, r]));
    expect(byId.get(OPP.d2)).toMatchObject({ _name: "Deal 2 - Umbrella", amount: "12345.678901234", cur: "USD", _deleted_at: null });
    expect(byId.get(OPP.d3)).toMatchObject({ amount: "15000000", cur: "USD" });
    expect(byId.get(OPP.d4)).toMatchObject({ cur: "GBP" });
    expect(byId.get(OPP.d1)).toMatchObject({
      close: "2024-01-19",
      created: new Date("2024-01-09T19:44:31.000Z"),
      owner: "alan.sprckjones@example.com",
      account: "001Gn00000002bKIAQ",
      account_table: "Account",
      stage: "Qualification",
      prob: "20",
      won: false,
    });
    const tasks = await sink<{ who: string | null; what: string | null; owner: string }>(
      `SELECT "WhoId_table" AS who, "WhatId_table" AS what, "OwnerId" AS owner FROM "${sinkSchema}"."sf__tasks"`,
    );
    expect(tasks).toHaveLength(7);
    expect(tasks.map((t) => [t.who, t.what])).toEqual(
      expect.arrayContaining([
        ["Lead", null],
        ["Contact", "Opportunity"],
        ["Contact", "Account"],
      ]),
    );
    for (const t of tasks) expect(t.owner).toMatch(/@example\.com$/);
  });

  it("a table without fields syncs every readable field with its default Qobra type", async () => {
    const cols = await sink<{ column_name: string; data_type: string }>(
      `SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = '${sinkSchema}' AND table_name = 'sf__accounts_all_fields'`,
    );
    const types = new Map(cols.map((c) => [c.column_name, c.data_type]));
    expect(types.get("Name")).toBe("text");
    expect(types.get("OwnerId")).toBe("text");
    expect(types.get("OwnerId_user_id")).toBe("text");
    expect(types.get("CreatedDate")).toBe("timestamp with time zone");
    expect(types.get("IsDeleted")).toBe("boolean");
    expect(cols.length).toBeGreaterThan(20);
    const [acct] = await sink<{ n: number; owner: string }>(
      `SELECT count(*)::int AS n, min("OwnerId") AS owner FROM "${sinkSchema}"."sf__accounts_all_fields"`,
    );
    expect(acct!.n).toBeGreaterThan(0);
    expect(acct!.owner).toMatch(/@example\.com$/);
  });

  it("an incremental run picks up a change and soft-deletes a record deleted at the source", async () => {
    sim.state.upsert("Opportunity", [{ Id: OPP.d1, Amount: 1234567.891234, StageName: "Closed Won", IsWon: true }]);
    sim.state.delete("Opportunity", [OPP.d4]);
    const run = await syncAndWait(rt, "sf", { full: false, tables: ["opportunities"], timeoutMs: 60_000 });
    expect(run.type, run.error ?? "").toBe("RUN_COMPLETED");
    expect(run.counts["read.opportunities"]).toBeLessThan(7); // only what changed (and the cursor edge)
    expect(run.counts.deleted).toBeGreaterThanOrEqual(1);
    const [d1] = await sink(
      `SELECT "Amount"::text AS amount, "StageName" AS stage, "IsWon" AS won, _run_id FROM "${sinkSchema}"."sf__opportunities" WHERE _external_id = $1`,
      [OPP.d1],
    );
    expect(d1).toEqual({ amount: "1234567.891234", stage: "Closed Won", won: true, _run_id: run.runId });
    const [d4] = await sink<{ _deleted_at: Date | null; amount: string }>(
      `SELECT _deleted_at, "Amount"::text AS amount FROM "${sinkSchema}"."sf__opportunities" WHERE _external_id = $1`,
      [OPP.d4],
    );
    expect(d4!._deleted_at).toBeInstanceOf(Date);
    expect(d4!.amount).toBe("241157.45083"); // soft delete keeps the last values
    const [live] = await sink<{ n: string }>(`SELECT count(*) AS n FROM "${sinkSchema}"."sf__opportunities" WHERE _deleted_at IS NULL`);
    expect(live!.n).toBe("6");
  });

  it("QUERY_TIMEOUT with the Bulk job refused: a full run reads through narrower windows and loses nothing (nothing wrongly deleted)", async () => {
    sim.state.setQueryTimeout({ object: "Opportunity", rows: 2 }); // more than 2 opportunities "run too long"
    sim.state.addFault({ fault: "bulkJobRefused" } as never);
    try {
      const run = await syncAndWait(rt, "sf", { full: true, tables: ["opportunities"], timeoutMs: 60_000 });
      expect(run.type, run.error ?? "").toBe("RUN_COMPLETED");
      expect(run.counts["read.opportunities"]).toBe(6);
      expect(sim.counters()["faults:queryTimeout"]).toBeGreaterThan(0);
      // a record the windows missed would be deleted by this full run: only the one deleted at the source is
      const rows = await sink<{ _external_id: string; _deleted_at: Date | null }>(
        `SELECT _external_id, _deleted_at FROM "${sinkSchema}"."sf__opportunities" ORDER BY _external_id`,
      );
      expect(rows.filter((r) => r._deleted_at !== null).map((r) => r._external_id)).toEqual([OPP.d4]);
      expect(rows.filter((r) => r._deleted_at === null)).toHaveLength(6);
    } finally {
      sim.state.setQueryTimeout(null);
      sim.state.clearFaults();
    }
  });
});
