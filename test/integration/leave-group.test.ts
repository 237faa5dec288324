/**
 * Consumers leave their group on SIGTERM (issue 15, item 1): each role runs as its own process
 * (`node bin/qobra-sync.js -c FILE run --roles X`) and gets SIGTERM; its consumer groups must have
 * no member left within LEAVE_LIMIT_MS (2 s) — the process sent LeaveGroup instead of leaving the
 * broker to wait for its session timeout (6 s, as after a SIGKILL) — and the process exits 0.
 *
 * The producer worker is stopped in the middle of a full run: the run ends early without failing
 * (no RUN_FAILED; its request stays uncommitted), and once a producer worker is started again the
 * same run is served to completion. The mapper and the sink are stopped once the run is through.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { endOffsets } from "../../lib/kafka.ts";
import { openRuntime, type Runtime } from "../../lib/runtime.ts";
import { groups } from "../../lib/topics.ts";
import { syncAndWait } from "../../support/pipeline.ts";
import {
  dropScenario,
  rolesJoined,
  scenario,
  seedSource,
  sleep,
  startRoles,
  verdict,
  type RoleName,
  type RoleProcess,
  type Scenario,
} from "../../support/reliability.ts";
import { uniqueId } from "../../support/env.ts";

const LEAVE_LIMIT_MS = Number(process.env.LEAVE_LIMIT_MS ?? 2000);
const ROWS = 150_000;

let s: Scenario;
let rt: Runtime;
let procs: Record<RoleName, RoleProcess> | undefined;
const log = (line: string) => process.stderr.write(`[leave-group] ${line}\n`);

beforeAll(async () => {
  s = scenario(uniqueId("leave"));
  await seedSource(s, ROWS);
  rt = await openRuntime(s.config, "leave-test");
});

afterAll(async () => {
  if (procs) await Promise.all(Object.values(procs).map((p) => p.stop(5000)));
  if (rt) await dropScenario(s, rt.port);
  await rt?.close();
});

/** Members of each group (0 when the group is empty or unknown). */
async function memberCounts(groupIds: string[]): Promise<number[]> {
  const { groups: described } = await (await rt.port.admin()).describeGroups(groupIds);
  return groupIds.map((id) => described.find((g) => g.groupId === id)?.members.length ?? 0);
}

async function waitFor(what: string, timeoutMs: number, ok: () => Promise<boolean>): Promise<number> {
  const started = Date.now();
  while (!(await ok().catch(() => false))) {
    if (Date.now() - started > timeoutMs) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(50);
  }
  return Date.now() - started;
}

describe("SIGTERM", () => {
  it("makes each role's consumers leave their groups at once; a run the producer was serving is served again", async () => {
    const g = groups(s.prefix);
    const groupsOf: Record<RoleName, string[]> = {
      producer: [g.producers, `${s.prefix}-task-workers`],
      mapper: [g.mapper],
      sink: [g.sink],
    };
    procs = startRoles(s, ["producer", "mapper", "sink"], { supervise: false });
    await rolesJoined(s, rt.port);
    const figures: string[] = [];
    /** SIGTERM to the role's process; how long until its groups have no member. */
    const terminate = async (role: RoleName): Promise<void> => {
      const p = procs![role];
      const stopped = p.stop(30_000);
      const ms = await waitFor(`${role}'s groups to be left`, 30_000, async () => (await memberCounts(groupsOf[role])).every((n) => n === 0));
      await stopped;
      figures.push(`${role} ${ms} ms`);
      expect(ms, `${role}: SIGTERM to no member in ${groupsOf[role].join(", ")}`).toBeLessThanOrEqual(LEAVE_LIMIT_MS);
      expect(p.lastExit, `${role}'s exit`).toEqual({ code: 0, signal: null });
    };

    // The producer in the middle of a full run.
    const run = syncAndWait(rt, "crm", { full: true, timeoutMs: 180_000 });
    const published = async () => [...(await endOffsets(await rt.port.admin(), rt.port.topics.raw("crm"))).values()].reduce((a, b) => a + b, 0);
    await waitFor("the producer to be reading", 60_000, async () => (await published()) >= 5000);
    await terminate("producer");
    const atStop = await published();
    expect(atStop, "the run was still reading when the producer stopped").toBeLessThan(ROWS);
    expect(procs.producer.lines(/run stopped before its end/).length, "the run ended early, without failing").toBe(1);
    procs.producer.start();
    const done = await run;
    expect(done.type, done.error ?? "").toBe("RUN_COMPLETED");
    expect(done.counts.read).toBe(ROWS);
    // The stopped read was not taken for the whole table: nothing inferred deleted, nothing lost.
    expect(done.counts.deleted).toBe(0);
    expect(procs.producer.lines(/"msg":"run failed"/)).toEqual([]);
    const v = await verdict(s, rt.port);
    expect({ lost: v.lost.length, duplicated: v.duplicated.length, stale: v.stale.length, softDeleted: v.softDeleted, sinkLiveRows: v.sinkLiveRows }).toEqual({
      lost: 0,
      duplicated: 0,
      stale: 0,
      softDeleted: 0,
      sinkLiveRows: ROWS,
    });
    log(`the producer stopped after publishing ${atStop} of ${ROWS} records; the restarted worker served the same run to completion`);

    await terminate("mapper");
    await terminate("sink");
    await terminate("producer");
    log(`SIGTERM to an empty group (2-core machine shared with other work): ${figures.join(", ")}`);
  }, 240_000);
});
