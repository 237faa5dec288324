/**
 * Scheduled triggers: node-schedule jobs that publish the same sync request as the CLI and the
 * web page. Every process running the scheduler role publishes; requests are keyed by connector
 * and the producer worker serves one connector at a time, so a duplicate trigger queues behind
 * the running one instead of running twice at once. Run the scheduler role in one process.
 */
import { randomUUID } from "node:crypto";
import schedule from "node-schedule";
import type { Producer } from "kafkajs";
import { incrementalCron } from "../lib/config-hubspot.ts";
import type { Config, PostgresConnector } from "../lib/config.ts";
import type { Codec } from "../lib/codec.ts";
import { salesforceCronRules } from "../lib/config-salesforce.ts";
import { logger } from "../lib/log.ts";
import type { Topics } from "../lib/topics.ts";
import type { SyncRequest } from "../schemas/index.ts";

const log = logger.child({ component: "scheduler" });

/** The hours of the day (local to the schedule's zone) of a PostgreSQL connector's refreshes. */
export function refreshHours(s: NonNullable<PostgresConnector["schedule"]>): number[] {
  if (s.hours && s.hours.length > 0) return [...new Set(s.hours)].sort((a, b) => a - b);
  const step = 24 / s.timesPerDay;
  return Array.from({ length: s.timesPerDay }, (_, i) => Math.floor(i * step));
}

/** cron rules (minute hour * * *) with their zone, per connector. */
export function cronRules(connector: Config["connectors"][number]): Array<{ rule: string; tz: string; full: boolean }> {
  if (connector.type === "salesforce") return connector.schedule ? salesforceCronRules(connector.schedule) : [];
  if (connector.type === "hubspot") {
    // Incremental every N minutes; full syncs are manual only.
    const h = connector.schedule;
    return h && h.enabled ? [{ rule: incrementalCron(h.incrementalEveryMinutes), tz: h.timezone, full: false }] : [];
  }
  const s = connector.schedule;
  if (!s || !s.enabled) return [];
  return [{ rule: `0 ${refreshHours(s).join(",")} * * *`, tz: s.timezone, full: true }];
}

export function newRequest(connector: string, opts: { full?: boolean; tables?: string[]; by: string; forceDeletes?: boolean }): SyncRequest {
  return {
    requestId: randomUUID(), connector, tables: opts.tables ?? [], full: opts.full ?? false,
    requestedAt: Date.now(), requestedBy: opts.by, forceDeletes: opts.forceDeletes ?? false,
  };
}

export async function publishRequest(producer: Producer, codec: Codec, topics: Topics, request: SyncRequest): Promise<void> {
  const value = await codec.encode(topics.syncRequests, "syncRequest", request);
  await producer.send({ topic: topics.syncRequests, acks: -1, messages: [{ key: request.connector, value }] });
}

export interface Scheduler { stop(): void; jobs: schedule.Job[] }

export function startScheduler(config: Config, producer: Producer, codec: Codec, topics: Topics): Scheduler {
  const jobs: schedule.Job[] = [];
  for (const connector of config.connectors) {
    for (const { rule, tz, full } of cronRules(connector)) {
      const job = schedule.scheduleJob({ rule, tz }, () => {
        const request = newRequest(connector.id, { full, by: "scheduler" });
        publishRequest(producer, codec, topics, request)
          .then(() => log.info({ connector: connector.id, runId: request.requestId }, "scheduled sync requested"))
          .catch((e: unknown) => log.error({ connector: connector.id, err: (e as Error).message }, "could not publish the scheduled sync request"));
      });
      if (job) { jobs.push(job); log.info({ connector: connector.id, rule, tz, next: job.nextInvocation()?.toISOString() }, "schedule armed"); }
    }
  }
  return { jobs, stop: () => { for (const j of jobs) j.cancel(); } };
}
