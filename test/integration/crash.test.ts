/**
 * Crash safety (issue 6's "Done when"): producer, mapper and sink run as separate processes
 * (`node bin/qobra-sync.js -c FILE run --roles X`) on a 200,000-record PostgreSQL source. The mapper
 * and the sink are SIGKILLed at random points several times during a full run and restarted; then
 * some source rows are changed and some deleted, and a second full run is hit the same way.
 * Afterwards every source record is in the sink exactly once (primary key and count), with the
 * source's newest values (compared field by field through a digest), deleted records are
 * soft-deleted, no dead letters, no consumer lag, and the offsets stored with the data are at the end.
 *
 * CRASH_ROWS (default 200,000) and CRASH_SEED (default: random, printed) replay a schedule.
 * `npm run chaos` runs heavier variants (chaos/).
 */
import { writeFileSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Runtime } from "../../lib/runtime.ts";
import type { SyncEvent } from "../../schemas/index.ts";
import { dropScenario, killMapperAndSink, mutateSource, scenario, seedAndStart, summarize, verdict, verdictForReport } from "../../support/reliability.ts";
import type { Fault, RoleName, RoleProcess, Scenario } from "../../support/reliability.ts";
import { syncAndWait } from "../../support/pipeline.ts";
import { uniqueId, withDb } from "../../support/env.ts";

const ROWS = Number(process.env.CRASH_ROWS ?? 200_000);
const SEED = Number(process.env.CRASH_SEED ?? Math.floor(Math.random() * 2 ** 31));

let s: Scenario;
let rt: Runtime;
let procs: Record<RoleName, RoleProcess>;
const faults: Fault[] = [];
const log = (line: string) => process.stderr.write(`[crash seed=${SEED}] ${line}\n`);

beforeAll(async () => {
  s = scenario(uniqueId("crash"));
  ({ rt, procs } = await seedAndStart(s, ROWS, "crash-test"));
});

afterAll(async () => {
  if (procs) await Promise.all(Object.values(procs).map((p) => p.stop(5000)));
  if (rt && process.env.CRASH_KEEP !== "1") await dropScenario(s, rt.port);
  await rt?.close();
});

/** One full run while the fault loop SIGKILLs the mapper and the sink. */
async function runUnderFire(round: number): Promise<SyncEvent> {
  const loop = killMapperAndSink(s, rt.port, procs, { seed: SEED + round, everyMs: [2500, 6000], downMs: [200, 2500], max: 4, log, recoveryGraceMs: 3000 });
  try {
    return await syncAndWait(rt, "crm", { full: true, timeoutMs: 270_000 });
  } finally {
    faults.push(...(await loop.stop()));
  }
}

describe("SIGKILL of the mapper and the sink during large runs", () => {
  it(`loses, doubles and stales nothing across ${ROWS} records and two runs`, async () => {
    const started = Date.now();
    const first = await runUnderFire(1);
    expect(first.type, first.error ?? "").toBe("RUN_COMPLETED");
    expect(first.counts.read).toBe(ROWS);
    log(`run 1 completed in ${((Date.now() - started) / 1000).toFixed(0)} s with ${faults.length} faults`);

    const changed = await mutateSource(s, { every: 10, deletes: 50, round: 1 });
    const t2 = Date.now();
    const second = await runUnderFire(2);
    expect(second.type, second.error ?? "").toBe("RUN_COMPLETED");
    expect(second.counts.read).toBe(ROWS - changed.deleted.length);
    expect(second.counts.deleted).toBe(changed.deleted.length);
    log(
      `run 2 (${changed.updated} rows updated, ${changed.deleted.length} deleted) completed in ${((Date.now() - t2) / 1000).toFixed(0)} s; ${faults.length} faults in all`,
    );

    const v = await verdict(s, rt.port, changed.deleted);
    const line = summarize(v, faults.length);
    log(line);
    log(
      `recovery after each kill (kill to the role's next progress): ${faults.map((f) => `${f.target} ${f.recoveryMs == null ? "n/a" : `${(f.recoveryMs / 1000).toFixed(1)} s`}`).join(", ")}`,
    );
    writeFileSync(
      `${s.logDir}/verdict.json`,
      JSON.stringify({ seed: SEED, rows: ROWS, faults, verdict: verdictForReport(v), seconds: (Date.now() - started) / 1000 }, null, 2),
    );
    expect(faults.length, "faults injected").toBeGreaterThanOrEqual(4);
    expect(
      Object.values(procs).flatMap((p) => p.crashes.map((c) => `${p.role}: ${c.logTail}`)),
      "unplanned exits",
    ).toEqual([]);
    expect(v.lost.slice(0, 10), "lost").toEqual([]);
    expect(v.duplicated, "duplicated").toEqual([]);
    expect(v.stale.slice(0, 10), "stale").toEqual([]);
    expect(v.notDeleted, "not deleted").toEqual([]);
    expect(v.sinkLiveRows).toBe(v.sourceRows);
    expect(v.softDeleted).toBe(changed.deleted.length);
    expect({ mapperLag: v.mapperLag, sinkLag: v.sinkLag, dlqMapper: v.dlqMapper, dlqSink: v.dlqSink }).toEqual({
      mapperLag: 0,
      sinkLag: 0,
      dlqMapper: 0,
      dlqSink: 0,
    });
    expect(v.storedOffsetGap).toBeLessThanOrEqual(1);
    // every live row carries the second run's id: the newest version won everywhere
    const runs = await withDb(
      s.sinkDb,
      async (c) =>
        (await c.query<{ r: string; n: string }>(`SELECT _run_id AS r, count(*) AS n FROM "${s.sinkSchema}"."crm__deals" WHERE _deleted_at IS NULL GROUP BY 1`))
          .rows,
    );
    expect(runs).toEqual([{ r: second.runId, n: String(ROWS - changed.deleted.length) }]);
  }, 600_000);
});
