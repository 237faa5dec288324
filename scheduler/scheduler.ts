/**
 * Scheduled triggers: node-schedule jobs that publish the same sync request as the CLI and the
 * web page. Every process running the scheduler role publishes; requests are keyed by connector
 * and the producer worker serves one connector at a time, so a duplicate trigger queues behind
 * the running one instead of running twice at once. Run the scheduler role in one process.
 */
import schedule from "node-schedule";
import type { Producer } from "kafkajs";
import type { Config, ConnectorBase } from "../lib/config.ts";
import type { Codec } from "../lib/codec.ts";
import { logger } from "../lib/log.ts";
import { newRequest, publishRequest } from "../lib/protocol.ts";
import type { Topics } from "../lib/topics.ts";
import type { CronRule } from "../producers/connector.ts";
import { pluginFor } from "../producers/connectors/registry.ts";

const log = logger.child({ component: "scheduler" });

/**
 * cron rules (minute hour * * *) with their zone, per connector: its source's rules for its
 * schedule block (producers/connectors/<source>/schedule.ts); none without one.
 */
export function cronRules(connector: ConnectorBase): CronRule[] {
  if (!connector.schedule) return [];
  return pluginFor(connector.type).cronRules(connector.schedule);
}

interface Scheduler {
  stop(): void;
  jobs: schedule.Job[];
}

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
      if (job) {
        jobs.push(job);
        log.info({ connector: connector.id, rule, tz, next: job.nextInvocation()?.toISOString() }, "schedule armed");
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
