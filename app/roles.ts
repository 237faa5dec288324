/**
 * The composition root: wires the pipeline's roles (producer worker, mapper, sink, scheduler, and
 * the operations HTTP server when the config asks for it) onto one runtime. `qobra-sync run` starts
 * them, in one process or spread over many; replay (app/replay.ts) starts the ones it needs.
 * Each Kafka role runs under a supervisor (app/supervisor.ts) that restarts it if its client
 * crashes for good.
 */
import type { Config } from "../lib/config.ts";
import { logger } from "../lib/log.ts";
import { openRuntime } from "../lib/runtime.ts";
import { startProducerWorker } from "../producers/worker.ts";
import { startMapper } from "../consumers/mapping/run.ts";
import { startSink } from "../consumers/sink/run.ts";
import { startScheduler } from "../scheduler/scheduler.ts";
import { supervise } from "./supervisor.ts";

export const ROLES = ["producer", "mapper", "sink", "scheduler"] as const;
export type Role = (typeof ROLES)[number];

export interface RunHandle {
  stop(): Promise<void>;
}

export async function runRoles(config: Config, roles: readonly Role[]): Promise<RunHandle> {
  const rt = await openRuntime(config, roles.join("+"));
  const stops: Array<() => Promise<void> | void> = [];
  try {
    if (roles.includes("sink")) {
      const s = await supervise("sink", () => startSink(config, rt.port, rt.registry, rt.codec));
      stops.push(() => s.stop());
    }
    if (roles.includes("mapper")) {
      const m = await supervise("mapper", () => startMapper(config, rt.port, rt.codec, rt.registry));
      stops.push(() => m.stop());
    }
    if (roles.includes("producer")) {
      const p = await supervise("producer", () => startProducerWorker(config, rt.port, rt.codec));
      stops.push(() => p.stop());
    }
    if (roles.includes("scheduler")) {
      // The config file's schedules at once, then the web page's edits (stored in the sink
      // database), re-armed within 30 s of a change.
      const producer = await rt.port.producer({ idempotent: true, maxInFlightRequests: 1 });
      let s = startScheduler(config, producer, rt.codec, rt.port.topics);
      const { watchScheduleOverrides } = await import("../scheduler/schedules.ts");
      const stopWatch = watchScheduleOverrides(config, (effective) => {
        s.stop();
        s = startScheduler(effective, producer, rt.codec, rt.port.topics);
      });
      stops.push(async () => {
        await stopWatch();
        s.stop();
      });
    }
    if (config.http) {
      // /metrics, /healthz and the integration-settings page (ops/server.ts), when the config asks for them.
      const { startOpsServer } = await import("../ops/server.ts");
      const h = await startOpsServer(config, rt);
      stops.push(() => h.stop());
    }
  } catch (e) {
    for (const stop of stops.reverse()) await stop();
    await rt.close();
    throw e;
  }
  logger.info({ roles }, "qobra-sync running");
  return {
    async stop() {
      logger.info("stopping");
      // Roles stop in parallel: each finishes its in-flight batch and commits on its own.
      await Promise.allSettled(stops.map((stop) => stop()));
      await rt.close();
    },
  };
}
