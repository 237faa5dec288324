/** `qobra-sync run`: the pipeline's roles, in one process or spread over many. */
import type { Config } from "../lib/config.ts";
import { logger } from "../lib/log.ts";
import { openRuntime } from "../lib/runtime.ts";
import { startProducerWorker } from "../producers/worker.ts";
import { startMapper } from "../consumers/mapping/run.ts";
import { startSink } from "../consumers/sink/run.ts";
import { startScheduler } from "../scheduler/scheduler.ts";

export const ROLES = ["producer", "mapper", "sink", "scheduler"] as const;
export type Role = (typeof ROLES)[number];

export interface RunHandle { stop(): Promise<void> }

export async function runRoles(config: Config, roles: readonly Role[]): Promise<RunHandle> {
  const rt = await openRuntime(config, roles.join("+"));
  const stops: Array<() => Promise<void> | void> = [];
  try {
    if (roles.includes("sink")) { const s = await startSink(config, rt.port, rt.registry, rt.codec); stops.push(() => s.stop()); }
    if (roles.includes("mapper")) { const m = await startMapper(config, rt.port, rt.codec, rt.registry); stops.push(() => m.stop()); }
    if (roles.includes("producer")) { const p = await startProducerWorker(config, rt.port, rt.codec); stops.push(() => p.stop()); }
    if (roles.includes("scheduler")) {
      const producer = await rt.port.producer({ idempotent: true, maxInFlightRequests: 1 });
      const s = startScheduler(config, producer, rt.codec, rt.port.topics);
      stops.push(() => s.stop());
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
      for (const stop of stops.reverse()) await stop();
      await rt.close();
    },
  };
}
