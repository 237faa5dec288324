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
import { userKeyUses } from "../consumers/mapping/users.ts";
import { startSink } from "../consumers/sink/run.ts";
import { startScheduler } from "../scheduler/scheduler.ts";
import { supervise } from "./supervisor.ts";
import { openConnectorCatalog } from "./connectors.ts";
import { liveConfig } from "../lib/connector-catalog.ts";
import { ensureTopics } from "../lib/kafka.ts";
import { describeError } from "../lib/errors.ts";

export const ROLES = ["producer", "mapper", "sink", "scheduler"] as const;
export type Role = (typeof ROLES)[number];

export interface RunHandle {
  stop(): Promise<void>;
  /** The settings server this process serves (when the config has an http section, or `serve` asked for it). */
  ops?: { url: string; tokenFile: string | null };
}

export interface RunOptions {
  /** Serve the settings page, /metrics and /healthz even without an http section, on this port and interface (`qobra-sync serve`). */
  serve?: { port?: number; host?: string };
}

/**
 * What of the connectors a role's start depends on: a change of it reloads the role (a rejoin of its
 * group, for every tenant). The sink: its topics (connector and table names) and tenants. The mapper:
 * its topics and the user keys its directory indexes; it reads each connector's fields live
 * (consumers/mapping/run.ts), so a field edit reloads nothing.
 */
const fingerprint = (config: Config, role: "mapper" | "sink"): string =>
  role === "sink"
    ? JSON.stringify(config.connectors.map((c) => [c.id, c.tenant, c.tables.map((t) => t.name)]))
    : JSON.stringify([config.connectors.map((c) => c.id), [...new Set(userKeyUses(config.connectors).map((u) => `${u.tenant ?? ""}/${u.key}`))].sort()]);

/** How long the roles wait for the connectors to settle before they reload. */
const RELOAD_DEBOUNCE_MS = 1000;

export async function runRoles(fileConfig: Config, roles: readonly Role[], opts: RunOptions = {}): Promise<RunHandle> {
  const base = await openRuntime(fileConfig, roles.join("+") || "ops");
  const stops: Array<() => Promise<void> | void> = [];
  let ops: RunHandle["ops"];
  // The connectors given through the API join the file's, and change at run time (app/connectors.ts).
  let catalog: Awaited<ReturnType<typeof openConnectorCatalog>>;
  try {
    catalog = await openConnectorCatalog(fileConfig, base.port);
  } catch (e) {
    await base.close();
    throw e;
  }
  stops.push(() => catalog.store?.stop());
  const config = liveConfig(fileConfig, catalog);
  // Resolves once this process's roles serve the last change: the connectors API answers after it,
  // so that a sync requested right after an edit runs with the edit (not the old mapping).
  let applied: Promise<void> = Promise.resolve();
  let markApplied: (() => void) | undefined;
  const rt = { ...base, config, catalog, whenApplied: () => applied };
  const reloads: Array<() => Promise<void> | void> = [];
  let pending: NodeJS.Timeout | undefined;
  const offChange = catalog.onChange(() => {
    // Debounced: edits arriving together (a bulk of PUTs) reload the roles once: a reload makes the
    // mapper and the sink rejoin their groups, which must not happen per connector.
    clearTimeout(pending);
    if (!markApplied) applied = new Promise((resolve) => (markApplied = resolve));
    pending = setTimeout(() => {
      const done = markApplied;
      markApplied = undefined;
      void (async () => {
        try {
          await ensureTopics(rt.port, config);
        } catch (e) {
          logger.error({ err: describeError(e) }, "could not create the topics of the changed connectors; the roles reload anyway");
        }
        await Promise.allSettled(reloads.map((reload) => reload()));
      })().finally(() => done?.());
    }, RELOAD_DEBOUNCE_MS);
  });
  stops.push(() => {
    offChange();
    clearTimeout(pending);
    markApplied?.();
  });
  try {
    if (roles.includes("sink")) {
      const s = await supervise("sink", () => startSink(config, rt.port, rt.registry, rt.codec));
      stops.push(() => s.stop());
      let seen = fingerprint(config, "sink");
      reloads.push(() => {
        const now = fingerprint(config, "sink");
        const changed = now !== seen;
        seen = now;
        return changed ? s.reload("the connectors changed") : undefined;
      });
    }
    if (roles.includes("mapper")) {
      const m = await supervise("mapper", () => startMapper(config, rt.port, rt.codec, rt.registry));
      stops.push(() => m.stop());
      let seen = fingerprint(config, "mapper");
      reloads.push(() => {
        const now = fingerprint(config, "mapper");
        const changed = now !== seen;
        seen = now;
        return changed ? m.reload("the connectors changed") : undefined;
      });
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
      reloads.push(() => stopWatch.refresh());
      stops.push(async () => {
        await stopWatch();
        s.stop();
      });
    }
    if (config.http || opts.serve) {
      // /metrics, /healthz and the integration-settings page (ops/server.ts), when the config asks for them.
      const { startOpsServer } = await import("../ops/server.ts");
      // A replay started from the page runs the sink here when none runs (the file's config: runRoles adds the API's connectors).
      const h = await startOpsServer(config, rt, { ...opts.serve, replayRoles: (_live, r) => runRoles({ ...fileConfig, http: undefined }, r) });
      ops = { url: h.url, tokenFile: h.tokenFile };
      stops.push(() => h.stop());
    }
  } catch (e) {
    for (const stop of stops.reverse()) await stop();
    await base.close();
    throw e;
  }
  logger.info({ roles }, "qobra-sync running");
  return {
    ops,
    async stop() {
      logger.info("stopping");
      // Roles stop in parallel: each finishes its in-flight batch and commits on its own.
      await Promise.allSettled(stops.map((stop) => stop()));
      await base.close();
    },
  };
}
