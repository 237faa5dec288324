/**
 * Producer worker: consumes sync requests (keyed by connector, so one connector never runs twice
 * at once), reads the source through its connector and publishes raw records. Each page is
 * acknowledged by the broker (acks=all, idempotent producer) before the next page is read; a
 * request's offset is committed only when its run has ended (completed or failed) and every older
 * request of its partition has too.
 *
 * The worker is one member of the producer group serving up to `producer.concurrentRuns`
 * connectors at once, whatever partition their requests share (producers/request-dispatcher.ts);
 * each run holds its connector's run lock in the sink database (producers/connector-lock.ts).
 * This file is the Kafka shell; a run's steps are in producers/run/ (plan, read, deletes, state,
 * events, tasks, and sync.ts which runs them in order).
 */
import kafkajs, { type Producer } from "kafkajs";
import type { Config } from "../lib/config.ts";
import type { Codec } from "../lib/codec.ts";
import { describeError } from "../lib/errors.ts";
import { groupTimeouts, mustRejoin, whenCrashed, type KafkaPort } from "../lib/kafka.ts";
import { logger } from "../lib/log.ts";
import { createPool } from "../lib/pg.ts";
import { groups } from "../lib/topics.ts";
import type { SyncRequest } from "../schemas/index.ts";
import type { ConnectorContext } from "./connector.ts";
import { ConnectorLocks, LOCK_APPLICATION_NAME } from "./connector-lock.ts";
import { RequestDispatcher, type RunOutcome } from "./request-dispatcher.ts";
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
  const slots = config.producer.concurrentRuns;
  // The sink database holds the source API budgets every worker process shares (next to the sink's
  // offsets) and the connectors' run locks: one lock connection per run, and a few for the budgets.
  const pool = createPool(config.sink.databaseUrl, { max: slots + 4, application_name: LOCK_APPLICATION_NAME });
  const rateLimits = new SharedRateLimitStore({ pool, schema: config.sink.schema });
  const locks = new ConnectorLocks(pool, config.topicPrefix, log);
  const ctx: ConnectorContext = { rateLimits };
  // A request made before the start of a run that covered it is answered by that run (coalesced), not repeated.
  const lastRuns = new Map<string, LastRun>();
  const topic = port.topics.syncRequests;
  // The group's session timeout is the roles' (kafka.sessionTimeoutMs): a killed worker's requests
  // move to another (or to its restarted self) that soon. Runs do not hold up kafkajs's loop, so
  // the member heartbeats between fetches whatever its runs do.
  const consumer = port.kafka.consumer({ groupId: groups(config.topicPrefix).producers, ...groupTimeouts(config) });
  let failure: ((e: Error) => void) | null = null;
  const runFailed = new Promise<Error>((resolve) => {
    failure = resolve;
  });
  const dispatcher = new RequestDispatcher({
    slots,
    run: async ({ request }, signal): Promise<RunOutcome> => {
      const last = lastRuns.get(request.connector);
      if (last && coveredBy(request, last)) {
        await coalesce(port, codec, producer, request, last.startedAt);
        return "completed";
      }
      const lock = await locks.acquire(request.connector, signal);
      if (!lock) return "stopped";
      try {
        const startedAt = Date.now();
        // A run whose partition is taken away (or whose worker stops) ends at its next page, its
        // request uncommitted: the partition's next owner serves it, from the tables' saved cursors.
        const beat = async () => {
          if (signal.aborted) throw signal.reason;
        };
        const outcome = await runSync(config, port, codec, producer, request, beat, ctx, signal);
        if (outcome === "completed") lastRuns.set(request.connector, { startedAt, full: request.full, tables: request.tables });
        return outcome;
      } finally {
        await lock.release();
      }
    },
    commit: async (partition, offset) => {
      try {
        await consumer.commitOffsets([{ topic, partition, offset: String(offset) }]);
        return true;
      } catch (e) {
        // The group is rebalancing: committed again after the join if this member keeps the
        // partition; else its next owner serves from the last committed offset.
        log[mustRejoin(e) ? "info" : "warn"]({ partition, offset, err: describeError(e) }, "sync request offset not committed");
        return false;
      }
    },
    failed: (d, e) => {
      log.error(
        { connector: d.request.connector, runId: d.request.requestId, err: describeError(e) },
        "a run ended with an error; the producer worker restarts",
      );
      failure?.(e instanceof Error ? e : new Error(String(e)));
    },
  });
  consumer.on(consumer.events.GROUP_JOIN, (e) => {
    const partitions = (e.payload.memberAssignment[topic] ?? []).slice().sort((a, b) => a - b);
    dispatcher.assigned(e.payload.memberId, partitions);
    log.info({ partitions, joinMs: e.payload.duration }, "sync request partitions assigned");
  });
  try {
    await consumer.connect();
    await consumer.subscribe({ topic, fromBeginning: true });
    await consumer.run({
      autoCommit: false,
      eachBatchAutoResolve: false,
      eachBatch: async ({ batch, resolveOffset, heartbeat, isRunning, isStale }) => {
        for (const message of batch.messages) {
          if (!isRunning() || isStale()) break;
          const offset = Number(message.offset);
          if (!dispatcher.accepted(batch.partition, offset)) {
            const request = message.value ? await codec.decode<SyncRequest>(message.value) : null;
            // Every slot is running another connector: wait for one with the batch in hand,
            // heartbeating (a rebalance throws here, and kafkajs rejoins). Returning instead would
            // make kafkajs fetch the same requests again, once per freed slot: in a burst of 500
            // requests that refetching cost the broker more CPU than the runs' records.
            while (!dispatcher.offer(batch.partition, offset, request)) {
              await dispatcher.slotFreed(config.kafka.heartbeatIntervalMs);
              await heartbeat();
              if (!isRunning() || isStale()) return;
            }
          }
          resolveOffset(message.offset);
        }
        await heartbeat();
      },
    });
  } catch (e) {
    await consumer.disconnect().catch(() => {});
    await producer.disconnect().catch(() => {});
    await pool.end().catch(() => {});
    throw e;
  }
  const tasks = await startTaskWorker(config, port, codec, producer, ctx);
  const crash = whenCrashed([consumer, tasks]);
  const stoppingError = () => new kafkajs.KafkaJSError("the producer worker is stopping", { retriable: true });
  return {
    crashed: Promise.race([crash.crashed, runFailed]),
    async stop() {
      crash.dispose();
      // Runs in progress end early (their requests uncommitted), so that the member leaves its
      // group at once instead of after the runs.
      await dispatcher.stop(stoppingError());
      await Promise.all([consumer, tasks].map((c) => c.disconnect().catch(() => {})));
      await producer.disconnect().catch(() => {});
      await rateLimits.close().catch(() => {});
      await pool.end().catch(() => {});
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
