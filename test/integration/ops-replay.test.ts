/**
 * `qobra-sync replay`: dropping the sink tables and replaying the raw topics restores every row,
 * deleted records stay deleted, and the sources see nothing: the Salesforce simulator's request
 * counters (GET /__simulator/counters) and PostgreSQL's statistics of the source table (scans) do
 * not move. Replay refuses to run while a mapper is running, and says why.
 */
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runRoles, type RunHandle } from "../../app/roles.ts";
import { openRuntime, type Runtime } from "../../lib/runtime.ts";
import { readToEnd } from "../../lib/topic-scan.ts";
import type { SyncEvent } from "../../schemas/index.ts";
import { startSalesforceSimulator, type SalesforceSimulator } from "../../simulators/salesforce/server.ts";
import { replay, ReplayRefused, type ReplayProgress, type ReplayResult } from "../../app/replay.ts";
import { syncAndWait } from "../../support/pipeline.ts";
import { useScratchTokenStore, withDb } from "../../support/env.ts";
import { cli, opsFixture, sinkQuery, SOURCE_DB, type OpsFixture } from "../../support/ops.ts";

const DEMO = fileURLToPath(new URL("../../simulators/salesforce/demo-data.json", import.meta.url));
const DELETED_OPP = "006Gn00000002bMIAQ";

let fx: OpsFixture;
let sim: SalesforceSimulator;
let rt: Runtime;
let pipeline: RunHandle | undefined;
let tokens: ReturnType<typeof useScratchTokenStore> | undefined;

type Row = { _external_id: string; _name: string | null; _deleted_at: Date | null; _version: string };
const rowsOf = (relation: string) => sinkQuery<Row>(`SELECT _external_id, _name, _deleted_at, _version::text FROM ${relation} ORDER BY _external_id`);
const live = (rows: Row[]) => rows.filter((r) => r._deleted_at === null).map((r) => `${r._external_id}:${r._name}:${r._version}`);

/** Scans of the source table, from PostgreSQL's statistics (flushed and re-read). */
async function sourceScans(table: string): Promise<number> {
  return withDb(SOURCE_DB, async (c) => {
    await c.query("SELECT pg_stat_force_next_flush()").catch(() => {});
    await c.query("SELECT pg_stat_clear_snapshot()");
    const r = await c.query<{ n: string }>("SELECT (coalesce(seq_scan, 0) + coalesce(idx_scan, 0))::text AS n FROM pg_stat_user_tables WHERE relname = $1", [
      table,
    ]);
    return Number(r.rows[0]?.n ?? 0);
  });
}
const simCounters = async () => (await fetch(`${sim.url}/__simulator/counters`)).json() as Promise<Record<string, number>>;

beforeAll(async () => {
  tokens = useScratchTokenStore("qobra-replay-it-");
  sim = await startSalesforceSimulator({ data: DEMO, port: 0 });
  const t = sim.state.issueTokens();
  fx = await opsFixture(
    "rpl",
    60,
    `
  - id: sf
    type: salesforce
    loginUrl: "${sim.url}"
    clientId: "${t.clientId}"
    clientSecret: "${t.clientSecret}"
    refreshToken: "${t.refreshToken}"
    tables:
      - name: opportunities
        object: Opportunity
        fields: { Amount: amount, CloseDate: date, StageName: picklist, IsWon: bool }
`,
  );
  rt = await openRuntime(fx.config, "test");
  pipeline = await runRoles(fx.config, ["producer", "mapper", "sink"]);
});

afterAll(async () => {
  await pipeline?.stop();
  await rt?.close();
  await sim?.close();
  tokens?.restore();
});

describe("replay", () => {
  it("restores dropped sink tables from the raw topics with zero source calls; deleted records stay deleted", async () => {
    const crmTable = `"${fx.sinkSchema}"."crm__deals"`;
    const sfTable = `"${fx.sinkSchema}"."sf__opportunities"`;
    // History: full syncs, then a delete at each source.
    for (const id of ["crm", "sf"]) expect((await syncAndWait(rt, id, { full: true, timeoutMs: 60_000 })).type).toBe("RUN_COMPLETED");
    await withDb(SOURCE_DB, (c) => c.query(`DELETE FROM public.${fx.table} WHERE id IN (7, 8)`));
    expect((await syncAndWait(rt, "crm", { full: true, timeoutMs: 60_000 })).counts.deleted).toBe(2);
    sim.state.delete("Opportunity", [DELETED_OPP]);
    expect((await syncAndWait(rt, "sf", { full: false, timeoutMs: 60_000 })).counts.deleted).toBeGreaterThanOrEqual(1);
    const before = { crm: await rowsOf(crmTable), sf: await rowsOf(sfTable) };
    expect(live(before.crm)).toHaveLength(58);
    expect(
      before.crm
        .filter((r) => r._deleted_at !== null)
        .map((r) => r._external_id)
        .sort(),
    ).toEqual(["7", "8"]);
    expect(before.sf.find((r) => r._external_id === DELETED_OPP)?._deleted_at).toBeInstanceOf(Date);

    // Replay refuses while a mapper runs, and names it.
    const refused = await replay(fx.config, "crm").catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(ReplayRefused);
    expect((refused as Error).message).toMatch(
      new RegExp(`replay needs the mapper stopped: consumer group ${fx.config.topicPrefix}-mapper has 1 running member`),
    );

    // Stop the mapper and the sink; keep a producer worker running (it must receive nothing).
    await pipeline!.stop();
    pipeline = await runRoles(fx.config, ["producer"]);
    const scansBefore = await sourceScans(fx.table);
    const countersBefore = await simCounters();
    expect(scansBefore).toBeGreaterThan(0);
    expect(Object.keys(countersBefore).length).toBeGreaterThan(0);

    await sinkQuery(`DROP TABLE ${crmTable}; DROP TABLE ${sfTable}`);

    // crm through the CLI, sf through the library (with its progress)
    const out = await cli(["replay", "crm", "--json"], fx.yaml);
    expect(out.code, out.stderr).toBe(0);
    const crm = JSON.parse(out.stdout.trim().split("\n").pop()!) as ReplayResult;
    expect(crm).toMatchObject({ connector: "crm", tables: ["deals"], ranRoles: ["mapper", "sink"], rows: { deals: { live: 58 } } });
    const phases: ReplayProgress[] = [];
    const sf = await replay(fx.config, "sf", { onProgress: (p) => phases.push(p) });
    expect(sf.records).toBeGreaterThan(0);
    expect(phases.at(-1)).toMatchObject({ phase: "done", mapped: sf.records });
    expect(phases.some((p) => p.phase === "mapping")).toBe(true);

    const after = { crm: await rowsOf(crmTable), sf: await rowsOf(sfTable) };
    // every live row is back, with the same values' versions
    expect(live(after.crm)).toEqual(live(before.crm));
    expect(live(after.sf)).toEqual(live(before.sf));
    // deleted records did not come back to life
    for (const id of ["7", "8"]) expect(after.crm.find((r) => r._external_id === id)?._deleted_at ?? "absent").not.toBeNull();
    expect(after.sf.find((r) => r._external_id === DELETED_OPP)?._deleted_at ?? "absent").not.toBeNull();

    // zero source calls: the simulator counted nothing new, PostgreSQL saw no scan of the source table
    expect(await simCounters()).toEqual(countersBefore);
    expect(await sourceScans(fx.table)).toBe(scansBefore);

    // the replays are on sync.events as runs of kind replay
    const replays: SyncEvent[] = [];
    await readToEnd(rt.port, rt.port.topics.syncEvents, async (messages) => {
      for (const m of messages) {
        const e = await rt.codec.decode<SyncEvent>(m.value!);
        if (e.stage === "replay" && e.type === "RUN_COMPLETED") replays.push(e);
      }
    });
    expect(replays.map((e) => [e.connector, e.counts["rows.deals"] ?? e.counts["rows.opportunities"]]).sort()).toEqual([
      ["crm", 58],
      ["sf", live(before.sf).length],
    ]);
  });

  it("--since replays only what the raw topic received since then", async () => {
    const r = await replay(fx.config, "crm", { since: Date.now() + 60_000 });
    expect(r.records).toBe(0);
    expect(r.rows.deals!.live).toBe(58);
  });
});
