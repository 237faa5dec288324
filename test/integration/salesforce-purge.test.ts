/**
 * A record purged from Salesforce's recycle bin (hard delete: invisible to queryAll, so no incremental
 * run can see it) leaves the sink at the next full refresh — the nightly one by default — through the real
 * pipeline: Salesforce simulator → producer worker → raw topic → mapper → sink (issue #13, "Done when").
 */
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type RunHandle, runRoles } from "../../app/roles.ts";
import type { Config } from "../../lib/config.ts";
import { openRuntime, type Runtime } from "../../lib/runtime.ts";
import { type SalesforceSimulator, startSalesforceSimulator } from "../../simulators/salesforce/server.ts";
import { ensureDatabase, pipelineHeaderYaml, testConfig, uniqueId, useScratchTokenStore, withDb } from "../../support/env.ts";
import { syncAndWait } from "../../support/pipeline.ts";

const DEMO = fileURLToPath(new URL("../../simulators/salesforce/demo-data.json", import.meta.url));
const SINK_DB = "qobra_it_sink";
const PURGED = "006Gn00000002bLIAQ"; // a live demo opportunity

let sim: SalesforceSimulator;
let config: Config;
let rt: Runtime;
let pipeline: RunHandle;
let sinkSchema: string;
let tokens: ReturnType<typeof useScratchTokenStore> | undefined;

const sink = <T extends Record<string, unknown>>(sql: string, params: unknown[] = []) => withDb(SINK_DB, async (c) => (await c.query<T>(sql, params)).rows);
const row = async (id: string) =>
  (await sink<{ _deleted_at: Date | null }>(`SELECT _deleted_at FROM "${sinkSchema}"."sf__opportunities" WHERE _external_id = $1`, [id]))[0];

beforeAll(async () => {
  const id = uniqueId("sfpurge");
  sinkSchema = `sink_${id}`;
  tokens = useScratchTokenStore("qobra-sf-purge-");
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
    tables:
      - name: opportunities
        object: Opportunity
        fields: { Amount: amount, CloseDate: date, StageName: picklist, OwnerId: user }
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

describe("Salesforce purge → sink", () => {
  it("a purged record stays through incremental runs and is soft-deleted by the next full refresh", async () => {
    const first = await syncAndWait(rt, "sf", { full: true, timeoutMs: 60_000 });
    expect(first.type, first.error ?? "").toBe("RUN_COMPLETED");
    expect((await row(PURGED))?._deleted_at).toBeNull();

    const res = await fetch(`${sim.url}/__admin/delete`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ object: "Opportunity", ids: [PURGED], hard: true }),
    });
    expect(await res.json()).toEqual({ object: "Opportunity", deleted: [PURGED], notFound: [] });

    // queryAll no longer returns it: an incremental run has nothing to say about it
    const inc = await syncAndWait(rt, "sf", { full: false, timeoutMs: 60_000 });
    expect(inc.type, inc.error ?? "").toBe("RUN_COMPLETED");
    expect((await row(PURGED))?._deleted_at).toBeNull();

    // the full refresh does not see it, so the worker infers the delete
    const full = await syncAndWait(rt, "sf", { full: true, timeoutMs: 60_000 });
    expect(full.type, full.error ?? "").toBe("RUN_COMPLETED");
    expect(full.counts.deleted).toBeGreaterThanOrEqual(1);
    expect((await row(PURGED))?._deleted_at).toBeInstanceOf(Date);
    const [live] = await sink<{ n: string }>(`SELECT count(*) AS n FROM "${sinkSchema}"."sf__opportunities" WHERE _deleted_at IS NULL`);
    expect(Number(live!.n)).toBe(sim.state.records("Opportunity").length);
  });
});
