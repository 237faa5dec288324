/**
 * HubSpot's incremental read split into slices that run as tasks on sync.tasks, taken by several
 * producer workers: 25,000 deals modified within one hour, 12,000 of them at the same instant,
 * with their owners (one archived) and associations; then associations changed without any
 * property change, found by the sweep that follows the tasks.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Config, parseConfig } from "../../app/config.ts";
import { type RunHandle, runRoles } from "../../app/roles.ts";
import { openRuntime, type Runtime } from "../../lib/runtime.ts";
import { saveState } from "../../lib/state.ts";
import { readToEnd } from "../../lib/topic-scan.ts";
import type { SyncEvent } from "../../schemas/index.ts";
import { generateHubSpotData, type HubSpotSimulator, startHubSpotSimulator } from "../../simulators/hubspot/server.ts";
import { ensureDatabase, pipelineHeaderYaml, uniqueId, withDb } from "../../support/env.ts";
import { syncAndWait } from "../../support/pipeline.ts";

const N = 25_000;
const SHARED = 12_000;
const SINK_DB = "qobra_it_sink";
let sim: HubSpotSimulator;
let config: Config;
let rt: Runtime;
const roles: RunHandle[] = [];
let sinkSchema: string;
// the hour of changes ended an hour ago: the next run's look-back overlap (300 s) re-reads none of them
const hourStart = Date.now() - 7_200_000;
/** What the sink must hold for each deal: the simulator's data, owners resolved to emails (the archived one too). */
const expected = new Map<string, { dealname: string; owner: string | null; company: string | null; contacts: string[] }>();

async function mismatches(): Promise<string[]> {
  const rows = await withDb(
    SINK_DB,
    async (c) =>
      (
        await c.query<{ _external_id: string; dealname: string; hubspot_owner_id: string | null; companies: string | null; contacts: string[] | null }>(
          `SELECT _external_id, dealname, hubspot_owner_id, companies, contacts FROM "${sinkSchema}"."hs__deals" WHERE _deleted_at IS NULL`,
        )
      ).rows,
  );
  const out: string[] = [];
  if (rows.length !== expected.size) out.push(`${rows.length} rows, ${expected.size} expected`);
  for (const r of rows) {
    const e = expected.get(r._external_id);
    const got = { dealname: r.dealname, owner: r.hubspot_owner_id, company: r.companies, contacts: [...(r.contacts ?? [])].sort() };
    if (JSON.stringify(got) !== JSON.stringify(e)) out.push(`${r._external_id}: ${JSON.stringify(got)} != ${JSON.stringify(e)}`);
    if (out.length >= 10) break;
  }
  return out;
}

beforeAll(async () => {
  const data = generateHubSpotData({ deals: N, companies: 5, contacts: 5, start: new Date(hourStart - 86_400_000).toISOString(), stepMs: 10 });
  const shared = new Date(hourStart + 1_800_000).toISOString();
  data.objects.deals!.records!.forEach((d, i) => {
    const lm = i < SHARED ? shared : new Date(hourStart + Math.floor((i * 3_500_000) / N) + 1).toISOString();
    d.updatedAt = lm;
    d.properties.hs_lastmodifieddate = lm;
  });
  // every 10th deal belongs to the archived owner; every 3rd has a second contact
  const archivedOwner = data.owners!.find((o) => o.archived)!;
  data.objects.deals!.records!.forEach((d, i) => {
    if (i % 10 === 0) d.properties.hubspot_owner_id = archivedOwner.id;
  });
  const contactIds = data.objects.contacts!.records!.map((c) => c.id);
  data.objects.deals!.records!.forEach((d, i) => {
    if (i % 3 === 0) data.associations!.push({ from: { type: "deals", id: d.id }, to: { type: "contacts", id: contactIds[(i + 1) % contactIds.length]! } });
  });
  const emails = new Map(data.owners!.map((o) => [o.id, o.email]));
  for (const d of data.objects.deals!.records!) {
    const assoc = data.associations!.filter((a) => a.from.type === "deals" && a.from.id === d.id);
    expected.set(d.id, {
      dealname: String(d.properties.dealname),
      owner: emails.get(String(d.properties.hubspot_owner_id)) ?? null,
      company: assoc.find((a) => a.to.type === "companies")?.to.id ?? null,
      contacts: assoc
        .filter((a) => a.to.type === "contacts")
        .map((a) => a.to.id)
        .sort(),
    });
  }
  data.portal!.oauth = { ...(data.portal!.oauth ?? {}), refreshTokens: ["rt"] };
  data.portal!.search = { indexDelayMs: 0 };
  sim = await startHubSpotSimulator({ data });
  const id = uniqueId("ittask");
  sinkSchema = `sink_${id}`;
  await ensureDatabase(SINK_DB);
  config = parseConfig(
    `
${pipelineHeaderYaml({ prefix: id, sinkDb: SINK_DB, sinkSchema: sinkSchema })}connectors:
  - id: hs
    type: hubspot
    baseUrl: "${sim.url}"
    clientId: sim-client-id
    clientSecret: sim-client-secret
    refreshToken: rt
    concurrency: 8
    tables:
      - name: deals
        object: deals
        fields: { dealname: string, amount: amount, hubspot_owner_id: user, companies: object, contacts: multipicklist }
`,
    "tasks test",
    {},
  );
  rt = await openRuntime(config, "test");
  // The last successful import started ten minutes before the hour of changes.
  const producer = await rt.port.producer({ idempotent: true, maxInFlightRequests: 1 });
  await saveState(producer, rt.port, rt.codec, {
    connector: "hs",
    table: "deals",
    runId: "seed",
    savedAt: Date.now(),
    state: JSON.stringify({ v: 1, cursor: hourStart - 600_000, cursorAt: new Date(hourStart - 600_000).toISOString() }),
  });
  await producer.disconnect();
  roles.push(await runRoles(config, ["mapper", "sink"]), await runRoles(config, ["producer"]), await runRoles(config, ["producer"]));
  // both producer workers own a partition of sync.tasks before the run starts
  const admin = await rt.port.admin();
  for (let i = 0; i < 120; i++) {
    const { groups } = await admin.describeGroups([`${id}-task-workers`]);
    if (groups[0]?.state === "Stable" && groups[0].members.length === 2) break;
    await new Promise((r) => setTimeout(r, 500));
  }
  // Three role sets start here, each joining its groups in turn: on a loaded 2-core CI machine that once
  // took more than two minutes (when each producer worker was several group members).
}, 240_000);

afterAll(async () => {
  for (const r of roles) await r.stop();
  await rt?.close();
  await sim?.close();
});

describe("HubSpot incremental run as tasks over several workers", () => {
  it("reads all 25,000 changed deals exactly once, 12,000 on one timestamp, with the tasks spread over both workers", async () => {
    sim.resetCounters();
    const run = await syncAndWait(rt, "hs", { timeoutMs: 150_000 });
    expect(run.type, run.error ?? "").toBe("RUN_COMPLETED");
    expect(run.counts.read).toBe(N);
    const [row] = await withDb(
      SINK_DB,
      async (c) => (await c.query(`SELECT count(*)::int AS n, count(DISTINCT _external_id)::int AS d FROM "${sinkSchema}"."hs__deals"`)).rows,
    );
    expect(row).toEqual({ n: N, d: N });
    const tasks: SyncEvent[] = [];
    await readToEnd(rt.port, rt.port.topics.syncEvents, async (messages) => {
      for (const m of messages) {
        if (m.key?.toString() !== run.runId) continue;
        const e = await rt.codec.decode<SyncEvent>(m.value!);
        if (e.type === "TASK_COMPLETED") tasks.push(e);
      }
    });
    // four windows under the 10,000 cap, one task each: the 857 deals before the shared instant,
    // that instant's 12,000 (one millisecond, read by keyset on hs_object_id), and the 12,143 after, cut in two
    expect(tasks).toHaveLength(4);
    expect(tasks.reduce((a, e) => a + (e.counts.read ?? 0), 0)).toBe(N);
    expect(new Set(tasks.map((e) => e.stage)).size).toBe(2);
    const searches = sim.counters()["POST /crm/v3/objects/deals/search"] ?? 0;
    expect(searches / Math.ceil(N / 200)).toBeLessThan(1.15); // near the minimum of 200-record pages
    // both workers drew on one budget per portal (PostgreSQL-backed): HubSpot never had to refuse a request
    expect(sim.stats().rateLimited).toBe(0);
    // every record read by a task: the sweep after the tasks had nothing left to read associations of
    // associations read in batches of up to 1,000 (a task's last batch may be partial), none by the sweep
    expect(sim.counters()["POST /crm/v4/associations/deals/companies/batch/read"]).toBeLessThanOrEqual(Math.ceil(N / 1000) + tasks.length);
    expect(await mismatches()).toEqual([]);
  });

  it("associations added or removed without any property change reach the sink on the next run with tasks", async () => {
    const ids = ["3000002", "3000003", "3000008"]; // deals 2, 3, 8: none has contact 2000005 yet
    sim.changeAssociations({
      add: ids.map((id) => ({ fromType: "deals", fromId: id, toType: "contacts", toId: "2000005", associationTypeId: 3 })),
      remove: [{ fromType: "deals", fromId: "3000001", toType: "contacts", toId: "2000002", associationTypeId: 3 }],
    });
    sim.upsertRecord("deals", { id: "3000011", properties: { dealname: "Renamed deal" } });
    expected.set("3000011", { ...expected.get("3000011")!, dealname: "Renamed deal" });
    for (const id of ids) expected.get(id)!.contacts = [...new Set([...expected.get(id)!.contacts, "2000005"])].sort();
    expected.get("3000001")!.contacts = expected.get("3000001")!.contacts.filter((c) => c !== "2000002");
    sim.resetCounters();
    const run = await syncAndWait(rt, "hs", { timeoutMs: 150_000 });
    expect(run.type, run.error ?? "").toBe("RUN_COMPLETED");
    expect(run.counts.read).toBe(5); // the renamed deal (search) and the four swept ones
    // the sweep read every other record's associations once: 25 batch reads per associated type
    expect(sim.counters()["POST /crm/v4/associations/deals/contacts/batch/read"]).toBe(Math.ceil((N - 1) / 1000) + 1);
    expect(await mismatches()).toEqual([]);
  });
});
