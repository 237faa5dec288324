/**
 * Producer worker: consumes sync requests (keyed by connector, so one connector never runs twice
 * at once), reads the source through its connector and publishes raw records. Each page is
 * acknowledged by the broker (acks=all, idempotent producer) before the next page is read; the
 * request's offset is committed only when the run has ended (completed or failed).
 *
 * This file is the Kafka shell; a run's steps are in producers/run/ (plan, read, deletes, state,
 * events, tasks, and sync.ts which runs them in order).
 */
import kafkajs, { type Consumer, type Producer } from "kafkajs";
import type { Config } from "../lib/config.ts";
import type { Codec } from "../lib/codec.ts";
import { groupTimeouts, heartbeatWhileRunning, whenCrashed, type KafkaPort } from "../lib/kafka.ts";
import { logger } from "../lib/log.ts";
import { groups } from "../lib/topics.ts";
import type { SyncRequest } from "../schemas/index.ts";
import type { ConnectorContext } from "./connector.ts";
import { SharedRateLimitStore } from "./shared-rate-store.ts";
import { RunEvents, rawEndOffsets } from "./run/events.ts";
import { coveredBy, type LastRun } from "./run/plan.ts";
import { runSync } from "./run/sync.ts";
import { startTaskWorker } from "./run/tasks.ts";

const log = logger.child({ component: "producer" });

interface ProducerWorker {
  stop(): Promise<void>;
  /** Resolves if the request or the task consumer stops for good (the supervisor restarts the role). */
  crashed: Promise<Error>;
}

export async function startProducerWorker(config: Config, port: KafkaPort, codec: Codec): Promise<ProducerWorker> {
  const producer = await port.producer({ idempotent: true, maxInFlightRequests: 1 });
  // Source API budgets counted in the sink database, next to the sink's offsets: shared by every worker process.
  const rateLimits = new SharedRateLimitStore({ databaseUrl: config.sink.databaseUrl, schema: config.sink.schema });
  const ctx: ConnectorContext = { rateLimits };
  // A request's run lasts as long as its source takes, and kafkajs fetches a member's partitions
  // again only once every message of its last fetch was handled: one member serving several
  // partitions would hold every other connector's request behind the longest run. So the worker is
  // `producer.concurrentRuns` members of the group, each serving its own partitions one request at
  // a time: a long run delays only the requests of its member's partitions.
  //
  // The group's session timeout is the roles' (kafka.sessionTimeoutMs): a killed worker's
  // requests move to another (or to its restarted self) that soon. A run lasts minutes, so each
  // member heartbeats on a timer while it runs (heartbeatWhileRunning), not only between pages.
  // Requests of one connector share a partition, so they are served one after the other. A request
  // made before the start of a run that covered it is answered by that run (coalesced), not repeated.
  const lastRuns = new Map<string, LastRun>();
  // Aborted by stop(): a run in progress ends early (its request uncommitted), so that the
  // consumer leaves its group at once instead of after the run.
  const stopping = new AbortController();
  const stoppingError = () => new kafkajs.KafkaJSError("the producer worker is stopping", { retriable: true });
  const startMember = async (member: number): Promise<Consumer> => {
    const consumer: Consumer = port.kafka.consumer({ groupId: groups(config.topicPrefix).producers, ...groupTimeouts(config) });
    consumer.on(consumer.events.GROUP_JOIN, (e) =>
      log.info({ member, assignment: e.payload.memberAssignment, joinMs: e.payload.duration }, "sync request partitions assigned"),
    );
    await consumer.connect();
    await consumer.subscribe({ topic: port.topics.syncRequests, fromBeginning: true });
    await consumer.run({
      partitionsConsumedConcurrently: 1,
      eachMessage: heartbeatWhileRunning(config.kafka.heartbeatIntervalMs, async ({ message, heartbeat }, membership) => {
        if (!message.value) return;
        // kafkajs delivers the request again until the consumer has stopped: it is left uncommitted.
        if (stopping.signal.aborted) throw stoppingError();
        const request = await codec.decode<SyncRequest>(message.value);
        const last = lastRuns.get(request.connector);
        if (last && coveredBy(request, last)) {
          await coalesce(port, codec, producer, request, last.startedAt);
          return;
        }
        const startedAt = Date.now();
        // The run ends early when the member must rejoin its group or the worker stops; throwing
        // then keeps the request uncommitted: kafkajs rejoins and it is served again (by this
        // worker or another), from the tables' saved cursors.
        const stop = AbortSignal.any([membership, stopping.signal]);
        const beat = async () => {
          if (stop.aborted) throw stop.reason;
          await heartbeat();
        };
        const outcome = await runSync(config, port, codec, producer, request, beat, ctx, stop);
        if (outcome === "stopped") throw membership.aborted ? membership.reason : stoppingError();
        if (outcome === "completed") lastRuns.set(request.connector, { startedAt, full: request.full, tables: request.tables });
      }),
    });
    return consumer;
  };
  // Joined together: one rebalance of the group, not one per member.
  const started = await Promise.allSettled(Array.from({ length: config.producer.concurrentRuns }, (_, i) => startMember(i)));
  const members = started.flatMap((r) => (r.status === "fulfilled" ? [r.value] : []));
  const failed = started.find((r) => r.status === "rejected");
  if (failed) {
    const e = failed.reason;
    await Promise.all(members.map((c) => c.disconnect().catch(() => {})));
    await producer.disconnect().catch(() => {});
    await rateLimits.close().catch(() => {});
    throw e;
  }
  const tasks = await startTaskWorker(config, port, codec, producer, ctx);
  const crash = whenCrashed([...members, tasks]);
  return {
    crashed: crash.crashed,
    async stop() {
      crash.dispose();
      stopping.abort(stoppingError());
      await Promise.all([...members, tasks].map((c) => c.disconnect().catch(() => {})));
      await producer.disconnect().catch(() => {});
      await rateLimits.close().catch(() => {});
    },
  };
}

/** Answers a request with the run that covered it: RUN_COMPLETED at the raw topic's current end. */
async function coalesce(port: KafkaPort, codec: Codec, producer: Producer, request: SyncRequest, coveringRunStart: number): Promise<void> {
  const run = { port, codec, producer, request, rawTopic: port.topics.raw(request.connector), heartbeat: async () => {} };
  await new RunEvents(run).publish({
    type: "RUN_COMPLETED",
    offsets: await rawEndOffsets(run),
    counts: { read: 0, coalesced: 1, coveredByRunStartedAt: coveringRunStart },
  });
  log.info({ connector: request.connector, runId: request.requestId }, "request coalesced into a run that started after it was made");
}
