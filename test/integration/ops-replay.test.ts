/**
 * `qobra-sync replay`: dropping the sink tables and replaying the raw topics restores every row,
 * deleted records stay deleted, and the sources see nothing: the Salesforce simulator's request
 * counters (GET /__simulator/counters) and PostgreSQL's statistics of the source table (scans) do
 * not move. The pipeline's mapper and sink run all along: replay maps in its own consumer group,
 * deletes it when done, and runs a sink itself only when none is running.
 */
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runRoles, type RunHandle } from "../../app/roles.ts";
import { openRuntime, type Runtime } from "../../lib/runtime.ts";
import { readToEnd } from "../../lib/topic-scan.ts";
import type { SyncEvent } from "../../schemas/index.ts";
import { startSalesforceSimulator, type SalesforceSimulator } from "../../simulators/salesforce/server.ts";
import { replay, type ReplayProgress, type ReplayResult } from "../../app/replay.ts";
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
/** The live consumer groups of the test's prefix with their members' ids. */
async function groupMembers(): Promise<Map<string, string[]>> {
  const admin = await rt.port.admin();
  const ids = (await admin.listGroups()).groups.map((g) => g.groupId).filter((id) => id.startsWith(`${fx.config.topicPrefix}-`));
  const { groups } = await admin.describeGroups(ids);
  return new Map(groups.filter((g) => g.state !== "Dead").map((g) => [g.groupId, g.members.map((m) => m.memberId).sort()]));
}
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

    // The mapper and the sink keep running; so does the producer worker (it must receive nothing).
    const scansBefore = await sourceScans(fx.table);
    const countersBefore = await simCounters();
    expect(scansBefore).toBeGreaterThan(0);
    expect(Object.keys(countersBefore).length).toBeGreaterThan(0);

    const membersBefore = await groupMembers();
    const mapperGroup = `${fx.config.topicPrefix}-mapper`;
    const sinkGroup = `${fx.config.topicPrefix}-sink`;
    expect(membersBefore.get(mapperGroup)).toHaveLength(1);
    expect(membersBefore.get(sinkGroup)).toHaveLength(1);

    // A running sink creates a table dropped under it again.
    await sinkQuery(`DROP TABLE ${crmTable}; DROP TABLE ${sfTable}`);

    // crm through the CLI, sf through the library (with its progress), while the mapper role runs
    const out = await cli(["replay", "crm", "--json"], fx.yaml);
    expect(out.code, out.stderr).toBe(0);
    const crm = JSON.parse(out.stdout.trim().split("\n").pop()!) as ReplayResult;
    expect(crm).toMatchObject({ connector: "crm", tables: ["deals"], ranRoles: [], rows: { deals: { live: 58 } } });
    expect(crm.group).toMatch(new RegExp(`^${fx.config.topicPrefix}-replay-crm-[0-9a-f]{8}$`));
    const phases: ReplayProgress[] = [];
    const sf = await replay(fx.config, "sf", { onProgress: (p) => phases.push(p) });
    expect(sf.records).toBeGreaterThan(0);
    expect(sf.ranRoles).toEqual([]);
    expect(phases.at(-1)).toMatchObject({ phase: "done", mapped: sf.records });
    expect(phases.some((p) => p.phase === "mapping")).toBe(true);
    // the pipeline's mapper and sink never left their groups (same members); the replays' groups are gone
    const membersAfter = await groupMembers();
    expect(membersAfter.get(mapperGroup)).toEqual(membersBefore.get(mapperGroup));
    expect(membersAfter.get(sinkGroup)).toEqual(membersBefore.get(sinkGroup));
    expect(sf.group).not.toBe(crm.group);
    expect([...membersAfter.keys()].filter((g) => g.includes("-replay-"))).toEqual([]);

    const after = { crm: await rowsOf(crmTable), sf: await rowsOf(sfTable) };
    // no duplicate rows
    for (const rows of [after.crm, after.sf]) expect(new Set(rows.map((r) => r._external_id)).size).toBe(rows.length);
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
    // a window that starts after the log start: the replay's group starts there, and maps it
    const since = Date.now();
    await new Promise((r) => setTimeout(r, 20));
    expect((await syncAndWait(rt, "crm", { full: true, timeoutMs: 60_000 })).type).toBe("RUN_COMPLETED");
    const recent = await replay(fx.config, "crm", { since });
    expect(recent.records).toBeGreaterThan(0);
    expect(recent.from.some((f) => f.offset > 0)).toBe(true);
    expect(recent.records).toBeLessThan(recent.to.reduce((n, t) => n + t.offset, 0));
    expect(recent.rows.deals!.live).toBe(58);
  });

  it("runs a sink itself when none is running, and stops it again", async () => {
    const crmTable = `"${fx.sinkSchema}"."crm__deals"`;
    const before = await rowsOf(crmTable);
    await pipeline!.stop();
    pipeline = await runRoles(fx.config, ["producer", "mapper"]);
    await sinkQuery(`DROP TABLE ${crmTable}`);
    const out = await cli(["replay", "crm", "--table", "deals"], fx.yaml);
    expect(out.code, out.stderr).toBe(0);
    expect(out.stdout).toMatch(/no sink was running: replay ran the sink role itself \(stopped again\)/);
    expect(live(await rowsOf(crmTable))).toEqual(live(before));
    expect((await groupMembers()).get(`${fx.config.topicPrefix}-sink`) ?? []).toEqual([]);
  });
});
