/**
 * Scheduled triggers: node-schedule jobs that publish the same sync request as the CLI and the
 * web page. Every process running the scheduler role publishes; requests are keyed by connector
 * and the producer worker serves one connector at a time, so a duplicate trigger queues behind
 * the running one instead of running twice at once. Run the scheduler role in one process.
 *
 * A connector's schedule is its config block (or the page's stored edit, scheduler/schedules.ts);
 * without a block, its source's default (the plugin's `defaultSchedule`); `enabled: false` arms
 * nothing. Each job has a kind (full, incremental or reconcile), carried by the request it sends.
 */
import schedule from "node-schedule";
import type { Producer } from "kafkajs";
import type { Config, ConnectorBase } from "../lib/config.ts";
import type { Codec } from "../lib/codec.ts";
import { logger } from "../lib/log.ts";
import { newRequest, publishRequest } from "../lib/protocol.ts";
import type { Topics } from "../lib/topics.ts";
import type { SyncRequest } from "../schemas/index.ts";
import type { CronRule, ScheduleBase, ScheduleJobKind } from "../producers/connector.ts";
import { pluginFor } from "../producers/connectors/registry.ts";

const log = logger.child({ component: "scheduler" });

/**
 * Where a connector's schedule comes from: its source's default (no schedule block), the config
 * file's block, or an edit stored from the settings page.
 */
export type ScheduleOrigin = "default" | "config" | "edited";

/** The schedule a connector runs on: its block, or its source's default when it has none. */
export function connectorSchedule(connector: ConnectorBase): { schedule: ScheduleBase; origin: "default" | "config" } {
  if (connector.schedule) return { schedule: connector.schedule, origin: "config" };
  return { schedule: pluginFor(connector.type).defaultSchedule, origin: "default" };
}

/**
 * cron rules (minute hour * * *) with their zone and kind, per connector: its source's rules
 * (producers/connectors/<source>/schedule.ts) for its schedule; none when it is disabled.
 */
export function cronRules(connector: ConnectorBase): CronRule[] {
  return pluginFor(connector.type).cronRules(connectorSchedule(connector).schedule);
}

/** The sync request a job of this kind publishes. */
export function scheduledRequest(connector: string, kind: ScheduleJobKind): SyncRequest {
  return newRequest(connector, { full: kind === "full", reconcile: kind === "reconcile", by: "scheduler" });
}

interface Scheduler {
  stop(): void;
  jobs: schedule.Job[];
}

export interface SchedulerOptions {
  /** Publishes a request (default: to sync.requests with `producer`); tests observe the fire path with it. */
  publish?: (request: SyncRequest) => Promise<void>;
  /** The rules of a connector (default: `cronRules`); tests arm rules that fire within seconds. */
  rulesOf?: (connector: ConnectorBase) => CronRule[];
}

export function startScheduler(config: Config, producer: Producer, codec: Codec, topics: Topics, opts: SchedulerOptions = {}): Scheduler {
  const publish = opts.publish ?? ((request: SyncRequest) => publishRequest(producer, codec, topics, request));
  const rulesOf = opts.rulesOf ?? cronRules;
  const jobs: schedule.Job[] = [];
  for (const connector of config.connectors) {
    for (const { rule, tz, kind } of rulesOf(connector)) {
      const job = schedule.scheduleJob({ rule, tz }, () => {
        const request = scheduledRequest(connector.id, kind);
        publish(request)
          .then(() => log.info({ connector: connector.id, kind, runId: request.requestId }, "scheduled sync requested"))
          .catch((e: unknown) => log.error({ connector: connector.id, kind, err: (e as Error).message }, "could not publish the scheduled sync request"));
      });
      if (job) {
        jobs.push(job);
        log.info({ connector: connector.id, kind, rule, tz, next: job.nextInvocation()?.toISOString() }, "schedule armed");
      }
    }
  }
  return {
    jobs,
    stop: () => {
      for (const j of jobs) j.cancel();
    },
  };
}
