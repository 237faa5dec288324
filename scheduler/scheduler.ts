/**
 * Scheduled triggers: node-schedule jobs that publish the same sync request as the CLI and the
 * web page. Every process running the scheduler role publishes; requests are keyed by connector
 * and the producer worker serves one connector at a time, so a duplicate trigger queues behind
 * the running one instead of running twice at once. Run the scheduler role in one process.
 *
 * A connector's schedule is its config block (or the page's stored edit, scheduler/schedules.ts);
 * without a block, its source's default (the plugin's `defaultSchedule`); `enabled: false` arms
 * nothing. Each job has a kind (full, incremental or reconcile), carried by the request it sends.
 *
 * Runs are spread (scheduler/spread.ts): each connector's request is published a stable offset
 * after the rule's fire time (`scheduler.spreadMinutes`), so that connectors sharing a schedule do
 * not all start at one instant. The request's `requestedAt` is when it is published.
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
import { fireTimes } from "./fire-times.ts";
import { spreadMinutesOf, spreadOffsetSeconds } from "./spread.ts";

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

/** A cron rule as the scheduler arms it: its requests are published `offsetSeconds` after each fire time. */
export interface ArmedRule extends CronRule {
  offsetSeconds: number;
}

/**
 * A connector's cron rules with their spread offsets (scheduler/spread.ts): what the scheduler arms
 * and what the settings page and `qobra-sync schedule` list. `spreadMinutes` is the config's
 * `scheduler.spreadMinutes` (0: every run exactly at its set time).
 */
export function armedRules(connector: ConnectorBase, spreadMinutes: number): ArmedRule[] {
  return cronRules(connector).map((r) => ({ ...r, offsetSeconds: spreadOffsetSeconds(connector.id, r.rule, spreadMinutes) }));
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
  /** The rules of a connector (default: `armedRules` with the config's spread); tests arm rules that fire within seconds. */
  rulesOf?: (connector: ConnectorBase) => Array<CronRule & { offsetSeconds?: number }>;
}

export function startScheduler(config: Config, producer: Producer, codec: Codec, topics: Topics, opts: SchedulerOptions = {}): Scheduler {
  const publish = opts.publish ?? ((request: SyncRequest) => publishRequest(producer, codec, topics, request));
  const spreadMinutes = spreadMinutesOf(config);
  const rulesOf = opts.rulesOf ?? ((c: ConnectorBase) => armedRules(c, spreadMinutes));
  const jobs: schedule.Job[] = [];
  const pending = new Set<NodeJS.Timeout>();
  /** Publishes the request of a connector's job after `ms` (its spread offset, or what is left of it). */
  const fireAfter = (ms: number, connector: string, kind: ScheduleJobKind) => {
    const fire = () => {
      const request = scheduledRequest(connector, kind);
      publish(request)
        .then(() => log.info({ connector, kind, runId: request.requestId }, "scheduled sync requested"))
        .catch((e: unknown) => log.error({ connector, kind, err: (e as Error).message }, "could not publish the scheduled sync request"));
    };
    if (ms <= 0) return fire();
    const t = setTimeout(() => {
      pending.delete(t);
      fire();
    }, ms);
    pending.add(t);
  };
  for (const connector of config.connectors) {
    for (const { rule, tz, kind, offsetSeconds } of rulesOf(connector)) {
      const offsetMs = (offsetSeconds ?? 0) * 1000;
      // Counted from the instant the job was due (node-schedule passes it), not from when its timer ran.
      const job = schedule.scheduleJob({ rule, tz }, (fireDate: Date) => fireAfter(fireDate.getTime() + offsetMs - Date.now(), connector.id, kind));
      if (job) {
        jobs.push(job);
        const next = job.nextInvocation();
        log.info(
          {
            connector: connector.id,
            kind,
            rule,
            tz,
            offsetSeconds: offsetSeconds ?? 0,
            next: next ? new Date(next.getTime() + offsetMs).toISOString() : undefined,
          },
          "schedule armed",
        );
      }
      if (offsetMs > 0) {
        // A fire time just passed whose run is still ahead (the scheduler was re-armed, or started,
        // within the offset after it): armed too, so a re-arm never drops a run the views list.
        const now = Date.now();
        for (const t of fireTimes(rule, tz, now - offsetMs, offsetMs)) fireAfter(t + offsetMs - now, connector.id, kind);
      }
    }
  }
  return {
    jobs,
    stop: () => {
      for (const j of jobs) j.cancel();
      for (const t of pending) clearTimeout(t);
      pending.clear();
    },
  };
}
