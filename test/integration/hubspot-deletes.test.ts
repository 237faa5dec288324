/**
 * HubSpot records that vanish without being archived (issue #13), end to end through the real broker,
 * registry and PostgreSQL: a deal that leaves a filtered table is deleted by the next incremental run,
 * a merged deal by the next incremental run (its survivor names it), a purged deal and a filter exit
 * the incremental runs could not see by the next reconciliation run, and the mass-delete guard stops
 * a reconciliation that would delete too much.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Config, parseConfig } from "../../app/config.ts";
import { type RunHandle, runRoles } from "../../app/roles.ts";
import { newRequest, publishRequest } from "../../lib/protocol.ts";
import { openRuntime, type Runtime } from "../../lib/runtime.ts";
import { eventsPosition, waitForRun } from "../../lib/wait.ts";
import type { SyncEvent } from "../../schemas/index.ts";
import { type HubSpotSimulator, startHubSpotSimulator } from "../../simulators/hubspot/server.ts";
import { ensureDatabase, pipelineHeaderYaml, uniqueId, withDb } from "../../support/env.ts";
import { demoData } from "../../support/hubspot.ts";
import { syncAndWait } from "../../support/pipeline.ts";

const SINK_DB = "qobra_it_sink";
const WON = ["1101", "1102", "1103", "1104", "1105", "1106", "1107", "1108", "1109", "1110"];

let sim: HubSpotSimulator;
let config: Config;
let rt: Runtime;
let pipeline: RunHandle;
let sinkSchema: string;

const sink = <T extends Record<string, unknown>>(sql: string, params: unknown[] = []) => withDb(SINK_DB, async (c) => (await c.query<T>(sql, params)).rows);

/** The sink's live and deleted ids of a table. */
async function rows(table: string): Promise<{ live: string[]; deleted: string[] }> {
  const all = await sink<{ id: string; deleted: boolean }>(
    `SELECT _external_id AS id, _deleted_at IS NOT NULL AS deleted FROM "${sinkSchema}"."hs__${table}" ORDER BY 1`,
  );
  return { live: all.filter((r) => !r.deleted).map((r) => r.id), deleted: all.filter((r) => r.deleted).map((r) => r.id) };
}

/** A reconciliation run (SyncRequest.reconcile), waited for until the sink has everything. */
async function reconcile(forceDeletes = false): Promise<SyncEvent> {
  const producer = await rt.port.producer({ idempotent: true, maxInFlightRequests: 1 });
  try {
    const from = await eventsPosition(rt.port);
    const request = newRequest("hs", { by: "test", reconcile: true, forceDeletes });
    await publishRequest(producer, rt.codec, rt.port.topics, request);
    const tables = ["deals", "won"].map((table) => ({ connector: "hs", table }));
    return await waitForRun(rt.port, rt.codec, rt.config.topicPrefix, request.requestId, from, { timeoutMs: 90_000, tables });
  } finally {
    await producer.disconnect();
  }
}

beforeAll(async () => {
  const data = demoData();
  data.portal!.search = { indexDelayMs: 0 };
  sim = await startHubSpotSimulator({ data, validateResponses: true });
  sim.upsertRecords(
    "deals",
    WON.map((id) => ({ id, properties: { dealname: `Won ${id}`, dealstage: "closedwon", pipeline: "default" } })),
  );
  const id = uniqueId("ithd");
  sinkSchema = `sink_${id}`;
  await ensureDatabase(SINK_DB);
  config = parseConfig(
    `
${pipelineHeaderYaml({ prefix: id, sinkDb: SINK_DB, sinkSchema: sinkSchema })}connectors:
  - id: hs
    type: hubspot
    baseUrl: "${sim.url}"
    clientId: demo-client-id
    clientSecret: demo-client-secret
    refreshToken: demo-refresh-token
    tables:
      - name: deals
        object: deals
        fields: { dealname: string, dealstage: string }
      - name: won
        object: deals
        filter: [ { propertyName: dealstage, operator: IN, values: [closedwon] } ]
        fields: { dealname: string }
`,
    "hubspot deletes test config",
  );
  rt = await openRuntime(config, "test");
  pipeline = await runRoles(config, ["producer", "mapper", "sink"]);
});

// Stopped in the reverse order of their start: the roles, then the runtime, then the simulator.
afterAll(async () => {
  for (const stop of [() => pipeline?.stop(), () => rt?.close(), () => sim?.close()]) await stop();
});

describe("HubSpot deletes of every kind reach the sink", () => {
  it("a full run lands every deal, and the closed-won ones in the filtered table", async () => {
    const run = await syncAndWait(rt, "hs", { full: true, timeoutMs: 90_000 });
    expect(run.type, run.error ?? "").toBe("RUN_COMPLETED");
    expect((await rows("deals")).live).toEqual(["1001", "1002", "1003", "1004", ...WON]);
    expect((await rows("won")).live).toEqual(["1001", ...WON]);
  });

  it("a deal moved out of closedwon is gone from the filtered table after the next incremental run", async () => {
    sim.upsertRecord("deals", { id: "1101", properties: { dealstage: "closedlost" } });
    const run = await syncAndWait(rt, "hs", { timeoutMs: 90_000 });
    expect(run.type, run.error ?? "").toBe("RUN_COMPLETED");
    expect((await rows("won")).deleted).toEqual(["1101"]);
    expect((await rows("deals")).live).toContain("1101"); // still a deal
    expect(await sink(`SELECT dealstage FROM "${sinkSchema}"."hs__deals" WHERE _external_id = '1101'`)).toEqual([{ dealstage: "closedlost" }]);
  });

  it("a merged deal is gone after the next incremental run; its survivor stays, under its own id", async () => {
    expect(sim.mergeRecords("deals", "1103", ["1102"]).merged).toEqual(["1102"]);
    const run = await syncAndWait(rt, "hs", { timeoutMs: 90_000 });
    expect(run.type, run.error ?? "").toBe("RUN_COMPLETED");
    for (const table of ["deals", "won"]) {
      const r = await rows(table);
      expect(r.deleted).toContain("1102");
      expect(r.live).toContain("1103");
    }
    const names = await sink(`SELECT _external_id AS id, dealname FROM "${sinkSchema}"."hs__deals" WHERE _external_id IN ('1102', '1103') ORDER BY 1`);
    expect(names).toEqual([
      { id: "1102", dealname: "Won 1102" }, // its last values, soft-deleted: never the survivor's
      { id: "1103", dealname: "Won 1103" },
    ]);
  });

  it("a purged deal, and one that left the filter unseen, are gone after a reconciliation run", async () => {
    expect(sim.purgeRecords("deals", ["1104"]).purged).toEqual(["1104"]);
    // left closedwon with a last-modified date before the last run: no incremental run can see it
    sim.upsertRecord("deals", { id: "1105", properties: { dealstage: "closedlost" }, updatedAt: "2024-01-01T00:00:00.000Z" });
    const incremental = await syncAndWait(rt, "hs", { timeoutMs: 90_000 });
    expect(incremental.type, incremental.error ?? "").toBe("RUN_COMPLETED");
    expect((await rows("deals")).live).toContain("1104");
    expect((await rows("won")).live).toContain("1105");
    const run = await reconcile();
    expect(run.type, run.error ?? "").toBe("RUN_COMPLETED");
    expect((await rows("deals")).deleted.sort()).toEqual(["1102", "1104"]);
    expect((await rows("won")).deleted.sort()).toEqual(["1101", "1102", "1104", "1105"]);
    expect((await rows("won")).live).toEqual(["1001", "1103", "1106", "1107", "1108", "1109", "1110"]);
  });

  it("the mass-delete guard stops a reconciliation that would delete too much; forceDeletes lets it through", async () => {
    sim.purgeRecords("deals", ["1106", "1107", "1108"]); // 3 of the 7 won deals: over 30 %
    const refused = await reconcile();
    expect(refused.type).toBe("RUN_FAILED");
    expect(refused.error ?? "").toMatch(/won/);
    expect((await rows("won")).live).toContain("1106");
    const forced = await reconcile(true);
    expect(forced.type, forced.error ?? "").toBe("RUN_COMPLETED");
    expect((await rows("won")).live).toEqual(["1001", "1103", "1109", "1110"]);
  });
});
