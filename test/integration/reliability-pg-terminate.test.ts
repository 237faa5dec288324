/**
 * PostgreSQL going away under the sink (a restart, a failover, an administrator's
 * pg_terminate_backend): the sink must treat it as the retriable outage it is (SinkUnavailableError,
 * the batch is fetched again) and keep running — not die of an unhandled 'error' event on a pg
 * client. Without restarting the server (other tests share it), the sink's own connections are
 * terminated repeatedly during a run: each gets FATAL 57P01 "terminating connection due to
 * administrator command", what a fast shutdown sends to every session. The roles run as separate
 * processes, as in production, and are NOT restarted by the test.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openRuntime, type Runtime } from "../../lib/runtime.ts";
import { dropScenario, scenario, seedSource, sleep, startRoles, verdict, type RoleName, type RoleProcess, type Scenario } from "../../support/reliability.ts";
import { syncAndWait } from "../../support/pipeline.ts";
import { uniqueId, withDb } from "../../support/env.ts";

const ROWS = 100_000;
const SINK_DB = "qobra_it_sink_terminate";

let s: Scenario;
let rt: Runtime;
let procs: Record<RoleName, RoleProcess>;

beforeAll(async () => {
  s = scenario(uniqueId("pgterm"), { sinkDb: SINK_DB });
  await seedSource(s, ROWS);
  rt = await openRuntime(s.config, "pgterm-test");
  procs = startRoles(s, ["producer", "mapper", "sink"], { supervise: false });
});

afterAll(async () => {
  if (procs) await Promise.all(Object.values(procs).map((p) => p.stop(5000)));
  if (rt) await dropScenario(s, rt.port);
  await rt?.close();
});

describe("the sink's PostgreSQL connections terminated during a run", () => {
  it("the sink survives and the run completes with every record", async () => {
    let terminated = 0;
    let stop = false;
    const terminator = (async () => {
      await sleep(3000);
      for (let i = 0; i < 40 && !stop; i++) {
        terminated += await withDb(
          "postgres",
          async (c) =>
            (await c.query("SELECT count(pg_terminate_backend(pid))::int AS n FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()", [SINK_DB]))
              .rows[0].n as number,
        );
        await sleep(250);
      }
    })();
    let run;
    try {
      run = await Promise.race([
        syncAndWait(rt, "crm", { full: true, timeoutMs: 150_000 }),
        (async () => {
          while (procs.sink.running) await sleep(200);
          throw new Error(`the sink process exited (${JSON.stringify(procs.sink.lastExit)}):\n${procs.sink.crashes[0]?.logTail ?? ""}`);
        })(),
      ]);
    } finally {
      stop = true;
      await terminator;
    }
    expect(terminated, "sink connections terminated").toBeGreaterThan(0);
    expect(run.type, run.error ?? "").toBe("RUN_COMPLETED");
    expect(procs.sink.crashes, "unplanned exits of the sink").toEqual([]);
    const v = await verdict(s, rt.port);
    expect({ lost: v.lost.length, stale: v.stale.length, sinkLag: v.sinkLag }).toEqual({ lost: 0, stale: 0, sinkLag: 0 });
  }, 240_000);
});
