/**
 * Tasks: a connector may split an incremental read into slices (HubSpot's date windows). The
 * worker that owns the run publishes one task per slice on sync.tasks and waits for their
 * TASK_COMPLETED events; every producer worker takes its share of the tasks, reads the slice,
 * publishes its records (acks=all) and reports. The run succeeds only when all its tasks have.
 */
import { randomUUID } from "node:crypto";
import { hostname } from "node:os";
import type { Consumer, Producer } from "kafkajs";
import { findConnector, type Config } from "../../lib/config.ts";
import { newEvent, publishEvent, type Codec } from "../../lib/codec.ts";
import { ConfigError, EtlError, RunFailedError, SourceUnavailableError, describeError } from "../../lib/errors.ts";
import { followTopics, type Follower } from "../../lib/follow-topic.ts";
import { asKafkaFailure, endOffsets, groupTimeouts, heartbeatWhileRunning, type KafkaPort } from "../../lib/kafka.ts";
import { logger } from "../../lib/log.ts";
import type { SyncEvent, SyncTask } from "../../schemas/index.ts";
import type { ConnectorContext, ReadSlice } from "../connector.ts";
import { createConnector } from "../connectors/registry.ts";
import type { RunContext } from "./context.ts";
import { publishRecords } from "./read.ts";

const log = logger.child({ component: "producer" });

const TASK_TIMEOUT_MS = Number(process.env.QOBRA_SYNC_TASK_TIMEOUT_MS ?? 3_600_000);

/**
 * Publishes one task per slice and waits until every task of the run has completed (returns the
 * records they read) or one has failed (throws). Tasks are spread round-robin over the partitions
 * of sync.tasks, so every producer worker's task consumer takes its share.
 */
export async function runTasks(run: RunContext, table: string, slices: ReadSlice[], rlog: typeof log): Promise<number> {
  const { port, codec, producer, request } = run;
  const from = await endOffsets(await port.admin(), port.topics.syncEvents);
  const tasks: SyncTask[] = slices.map((s) => ({
    taskId: randomUUID(),
    runId: request.requestId,
    connector: request.connector,
    table,
    full: false,
    windowFrom: s.from,
    windowTo: s.to,
  }));
  const values = await codec.encodeMany(port.topics.syncTasks, "syncTask", tasks);
  const partitions = Math.max(1, (await endOffsets(await port.admin(), port.topics.syncTasks)).size);
  await producer.send({
    topic: port.topics.syncTasks,
    acks: -1,
    messages: tasks.map((t, i) => ({ key: t.taskId, value: values[i]!, partition: i % partitions })),
  });
  rlog.info({ table, tasks: tasks.length }, "slices published as tasks");
  const pending = new Set(tasks.map((t) => t.taskId));
  let read = 0;
  let follower: Follower | undefined;
  try {
    await new Promise<void>((resolve, reject) => {
      let settled = false;
      const timer = setTimeout(
        () =>
          done(() =>
            reject(
              new RunFailedError(
                `table ${table}: ${pending.size} of ${tasks.length} tasks did not finish within ${TASK_TIMEOUT_MS / 1000} s; are producer workers running?`,
              ),
            ),
          ),
        TASK_TIMEOUT_MS,
      );
      const beat = setInterval(() => {
        void run.heartbeat().catch(() => {});
      }, 3000);
      const done = (fn: () => void) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        clearInterval(beat);
        fn();
      };
      followTopics(port, {
        topics: [port.topics.syncEvents],
        groupPrefix: `${port.topics.syncEvents}-tasks`,
        from: new Map([[port.topics.syncEvents, from]]),
        onBatch: async ({ messages }) => {
          for (const message of messages) {
            if (message.key?.toString() !== request.requestId || !message.value) continue;
            const e = await codec.decode<SyncEvent>(message.value);
            if (!e.taskId || !pending.has(e.taskId)) continue;
            if (e.type === "TASK_FAILED") {
              // A task that failed on something that may pass makes the table's read retriable: the
              // run plans and publishes its slices again (producers/run/sync.ts).
              const message = `table ${table}: task ${e.taskId} (${e.error ?? "no reason"})`;
              done(() => reject(e.retriable ? new SourceUnavailableError(message) : new RunFailedError(message)));
              return;
            }
            if (e.type === "TASK_COMPLETED") {
              pending.delete(e.taskId);
              read += e.counts.read ?? 0;
              if (pending.size === 0) done(resolve);
            }
          }
        },
      }).then(
        (f) => {
          follower = f;
          if (settled) void f.stop();
        },
        (err: unknown) => done(() => reject(err)),
      );
    });
  } finally {
    await follower?.stop();
  }
  return read;
}

/**
 * Every producer worker also takes tasks: it reads the slice, publishes its records (acks=all),
 * then reports TASK_COMPLETED (or TASK_FAILED) to the run's coordinator. The task's offset is
 * committed after the report, so a worker that dies mid-task leaves it to another.
 */
export async function startTaskWorker(config: Config, port: KafkaPort, codec: Codec, producer: Producer, ctx: ConnectorContext = {}): Promise<Consumer> {
  const consumer = port.kafka.consumer({ groupId: `${config.topicPrefix}-task-workers`, ...groupTimeouts(config) });
  const workerId = `${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`;
  await consumer.connect();
  await consumer.subscribe({ topic: port.topics.syncTasks, fromBeginning: true });
  await consumer.run({
    partitionsConsumedConcurrently: config.producer.concurrentRuns,
    // A task reads a whole slice: heartbeats on a timer while it runs (lib/kafka.ts).
    eachMessage: heartbeatWhileRunning(config.kafka.heartbeatIntervalMs, async ({ message, heartbeat }) => {
      if (!message.value) return;
      const task = await codec.decode<SyncTask>(message.value);
      const base = { runId: task.runId, connector: task.connector, table: task.table, taskId: task.taskId, stage: `task-worker:${workerId}` };
      let read = 0;
      const source = createConnector(findConnector(config, task.connector), ctx);
      try {
        if (!source.readSlice) throw new ConfigError(`connector ${task.connector} cannot read slices`);
        const rawTopic = port.topics.raw(task.connector);
        for await (const page of source.readSlice(
          task.table,
          { from: task.windowFrom ?? "", to: task.windowTo ?? "" },
          {
            full: false,
            signal: new AbortController().signal,
            state: null,
            runStartedAt: Date.now(),
            heartbeat,
          },
        )) {
          await publishRecords(producer, codec, rawTopic, task.connector, task.table, task.runId, page);
          read += page.records.length;
          await heartbeat();
        }
        await publishEvent(producer, codec, port.topics.syncEvents, newEvent({ ...base, type: "TASK_COMPLETED", counts: { read } }));
      } catch (e) {
        const failure = asKafkaFailure(e, `task ${task.taskId}`);
        log.error({ ...base, err: describeError(failure) }, "task failed");
        await publishEvent(
          producer,
          codec,
          port.topics.syncEvents,
          newEvent({
            ...base,
            type: "TASK_FAILED",
            counts: { read },
            error: describeError(failure),
            retriable: failure instanceof EtlError && failure.retriable,
          }),
        );
      } finally {
        await source.close();
      }
    }),
  });
  return consumer;
}
