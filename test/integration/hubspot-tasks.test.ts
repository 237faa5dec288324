/**
 * HubSpot's incremental read split into slices that run as tasks on sync.tasks, taken by several
 * producer workers: 25,000 deals modified within one hour, 12,000 of them at the same instant.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseConfig, type Config } from "../../lib/config.ts";
import { openRuntime, type Runtime } from "../../lib/runtime.ts";
import { saveState } from "../../lib/state.ts";
import { readToEnd } from "../../lib/topic-scan.ts";
import { runRoles, type RunHandle } from "../../cli/run.ts";
import { generateHubSpotData, startHubSpotSimulator, type HubSpotSimulator } from "../../simulators/hubspot/server.ts";
import { stackDefaults } from "../../stack/stack.ts";
import type { SyncEvent } from "../../schemas/index.ts";
import { syncAndWait } from "../helpers/pipeline.ts";
import { dbUrl, ensureDatabase, uniqueId, withDb } from "../helpers/env.ts";

const N = 25_000;
const SHARED = 12_000;
const SINK_DB = "qobra_it_sink";
let sim: HubSpotSimulator;
let config: Config;
let rt: Runtime;
const roles: RunHandle[] = [];
let sinkSchema: string;
const hourStart = Date.now() - 3_600_000;

beforeAll(async () => {
  const data = generateHubSpotData({ deals: N, companies: 5, contacts: 5, start: new Date(hourStart - 86_400_000).toISOString(), stepMs: 10 });
  const shared = new Date(hourStart + 1_800_000).toISOString();
  data.objects.deals!.records!.forEach((d, i) => {
    const lm = i < SHARED ? shared : new Date(hourStart + Math.floor((i * 3_500_000) / N) + 1).toISOString();
    d.updatedAt = lm;
    d.properties.hs_lastmodifieddate = lm;
  });
  data.portal!.oauth = { ...(data.portal!.oauth ?? {}), refreshTokens: ["rt"] };
  data.portal!.search = { indexDelayMs: 0 };
  sim = await startHubSpotSimulator({ data });
  const id = uniqueId("ittask");
  sinkSchema = `sink_${id}`;
  await ensureDatabase(SINK_DB);
  config = parseConfig(`
kafka: { brokers: ${JSON.stringify(stackDefaults.kafkaBrokers)}, partitions: 2 }
schemaRegistry: { url: "${stackDefaults.registryUrl}" }
topicPrefix: ${id}
sink: { databaseUrl: "${dbUrl(SINK_DB)}", schema: ${sinkSchema}, defaultCurrency: EUR }
connectors:
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
        associationChanges: false
        fields: { dealname: string, amount: amount }
`, "tasks test", {});
  rt = await openRuntime(config, "test");
  // The last successful import started ten minutes before the hour of changes.
  const producer = await rt.port.producer({ idempotent: true, maxInFlightRequests: 1 });
  await saveState(producer, rt.port, rt.codec, { connector: "hs", table: "deals", runId: "seed", savedAt: Date.now(), state: JSON.stringify({ v: 1, cursor: hourStart - 600_000, cursorAt: new Date(hourStart - 600_000).toISOString() }) });
  await producer.disconnect();
  roles.push(await runRoles(config, ["mapper", "sink"]), await runRoles(config, ["producer"]), await runRoles(config, ["producer"]));
  // both producer workers own a partition of sync.tasks before the run starts
  const admin = await rt.port.admin();
  for (let i = 0; i < 120; i++) {
    const { groups } = await admin.describeGroups([`${id}-task-workers`]);
    if (groups[0]?.state === "Stable" && groups[0].members.length === 2) break;
    await new Promise((r) => setTimeout(r, 500));
  }
}, 120_000);

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
    const [row] = await withDb(SINK_DB, async (c) => (await c.query(`SELECT count(*)::int AS n, count(DISTINCT _external_id)::int AS d FROM "${sinkSchema}"."hs__deals"`)).rows);
    expect(row).toEqual({ n: N, d: N });
    const tasks: SyncEvent[] = [];
    await readToEnd(rt.port, rt.port.topics.syncEvents, async (messages) => {
      for (const m of messages) {
        if (m.key?.toString() !== run.runId) continue;
        const e = await rt.codec.decode<SyncEvent>(m.value!);
        if (e.type === "TASK_COMPLETED") tasks.push(e);
      }
    });
    expect(tasks).toHaveLength(8);
    expect(tasks.reduce((a, e) => a + (e.counts.read ?? 0), 0)).toBe(N);
    expect(new Set(tasks.map((e) => e.stage)).size).toBe(2);
    const searches = sim.counters()["POST /crm/v3/objects/deals/search"] ?? 0;
    expect(searches / Math.ceil(N / 200)).toBeLessThan(1.15); // near the minimum of 200-record pages
  });
});
