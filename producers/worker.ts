/**
 * Producer worker: consumes sync requests (keyed by connector, so one connector never runs twice
 * at once), reads the source through its connector and publishes raw records. Each page is
 * acknowledged by the broker (acks=all, idempotent producer) before the next page is read; the
 * request's offset is committed only when the run has ended (completed or failed).
 */
import type { Consumer, Producer } from "kafkajs";
import { findConnector, type Config } from "../lib/config.ts";
import { Codec, newEvent, publishEvent } from "../lib/codec.ts";
import { EtlError, TableSkippedError, describeError } from "../lib/errors.ts";
import { endOffsets, sendInChunks, type KafkaPort } from "../lib/kafka.ts";
import { logger } from "../lib/log.ts";
import { loadState, saveState } from "../lib/state.ts";
import { readToEnd } from "../lib/topic-scan.ts";
import { groups } from "../lib/topics.ts";
import type { RawRecord, SyncEvent, SyncRequest, SyncTask, TopicPartitionOffset } from "../schemas/index.ts";
import type { ReadOptions, ReadSlice, SourcePage } from "./connector.ts";
import { createConnector } from "./connectors/registry.ts";
import { randomUUID } from "node:crypto";
import { hostname } from "node:os";
import type { ConnectorContext } from "./connector.ts";
import { SharedRateLimitStore } from "./shared-rate-limiter.ts";

const log = logger.child({ component: "producer" });

export interface ProducerWorker { stop(): Promise<void> }

export async function startProducerWorker(config: Config, port: KafkaPort, codec: Codec): Promise<ProducerWorker> {
  const producer = await port.producer({ idempotent: true, maxInFlightRequests: 1 });
  // Source API budgets counted in the sink database, next to the sink's offsets: shared by every worker process.
  const ctx: ConnectorContext = { rateLimits: new SharedRateLimitStore({ databaseUrl: config.sink.databaseUrl, schema: config.sink.schema }) };
  const consumer: Consumer = port.kafka.consumer({ groupId: groups(config.topicPrefix).producers, sessionTimeout: 30_000, heartbeatInterval: 3000 });
  await consumer.connect();
  await consumer.subscribe({ topic: port.topics.syncRequests, fromBeginning: true });
  // Requests of one connector share a partition, so they are served one after the other. A request
  // made before the start of a run that covered it is answered by that run (coalesced), not repeated.
  const lastRuns = new Map<string, { startedAt: number; full: boolean; tables: string[] }>();
  await consumer.run({
    partitionsConsumedConcurrently: Math.max(1, config.kafka.partitions),
    eachMessage: async ({ message, heartbeat }) => {
      if (!message.value) return;
      const request = await codec.decode<SyncRequest>(message.value);
      const last = lastRuns.get(request.connector);
      if (last && coveredBy(request, last)) {
        await coalesce(port, codec, producer, request, last.startedAt);
        return;
      }
      const startedAt = Date.now();
      const outcome = await runSync(config, port, codec, producer, request, heartbeat, ctx);
      if (outcome === "completed") lastRuns.set(request.connector, { startedAt, full: request.full, tables: request.tables });
    },
  });
  const tasks = await startTaskWorker(config, port, codec, producer, ctx);
  return {
    async stop() {
      await tasks.disconnect().catch(() => {});
      await consumer.disconnect().catch(() => {});
      await producer.disconnect().catch(() => {});
      await ctx.rateLimits?.close().catch(() => {});
    },
  };
}

function coveredBy(request: SyncRequest, last: { startedAt: number; full: boolean; tables: string[] }): boolean {
  if (request.requestedAt >= last.startedAt || request.forceDeletes) return false;
  if (request.full && !last.full) return false;
  if (last.tables.length === 0) return true;
  return request.tables.length > 0 && request.tables.every((t) => last.tables.includes(t));
}

async function coalesce(port: KafkaPort, codec: Codec, producer: Producer, request: SyncRequest, coveringRunStart: number): Promise<void> {
  const rawTopic = port.topics.raw(request.connector);
  const offsets = [...(await endOffsets(await port.admin(), rawTopic))].map(([partition, offset]) => ({ topic: rawTopic, partition, offset }));
  await publishEvent(producer, codec, port.topics.syncEvents, newEvent({
    runId: request.requestId, connector: request.connector, type: "RUN_COMPLETED", full: request.full, offsets,
    counts: { read: 0, coalesced: 1, coveredByRunStartedAt: coveringRunStart },
  }));
  log.info({ connector: request.connector, runId: request.requestId }, "request coalesced into a run that started after it was made");
}

/** Runs one sync request to its end and publishes its lifecycle. Never throws for a failed run. */
export async function runSync(
  config: Config, port: KafkaPort, codec: Codec, producer: Producer, request: SyncRequest, heartbeat: () => Promise<void> = async () => {},
  ctx: ConnectorContext = {},
): Promise<"completed" | "failed"> {
  const runId = request.requestId;
  const events = port.topics.syncEvents;
  const rlog = log.child({ connector: request.connector, runId });
  const base = { runId, connector: request.connector, full: request.full };
  let connectorConfig;
  try {
    connectorConfig = findConnector(config, request.connector);
  } catch (e) {
    await publishEvent(producer, codec, events, newEvent({ ...base, type: "RUN_FAILED", error: describeError(e) }));
    return "failed";
  }
  const tables = request.tables.length > 0 ? request.tables : connectorConfig.tables.map((t) => t.name);
  const unknown = tables.filter((t) => !connectorConfig.tables.some((c) => c.name === t));
  if (unknown.length > 0) {
    await publishEvent(producer, codec, events, newEvent({ ...base, type: "RUN_FAILED", error: `connector ${request.connector} has no table ${unknown.join(", ")}` }));
    return "failed";
  }
  const rawTopic = port.topics.raw(request.connector);
  const started = Date.now();
  await publishEvent(producer, codec, events, newEvent({ ...base, type: "RUN_STARTED", counts: { tables: tables.length } }));
  rlog.info({ tables, full: request.full }, "run started");
  const source = createConnector(connectorConfig, ctx);
  const abort = new AbortController();
  const totals: Record<string, number> = { read: 0, deleted: 0 };
  const publishDeletes = async (table: string, ids: Iterable<string>): Promise<number> => {
    let n = 0;
    let chunk: string[] = [];
    const flush = async () => {
      if (chunk.length === 0) return;
      const envelopes: RawRecord[] = chunk.map((id) => ({ connector: request.connector, table, externalId: id, op: "DELETE", runId, readAt: Date.now(), sourceUpdatedAt: null, name: null, fields: {}, sourceTypes: {} }));
      const values = await codec.encodeMany(rawTopic, "rawRecord", envelopes);
      // A delete is the DELETE envelope, then a tombstone so compaction forgets the record.
      await sendInChunks((r) => producer.send(r), rawTopic, envelopes.flatMap((e, i) => [{ key: rawKey(table, e.externalId), value: values[i]! }, { key: rawKey(table, e.externalId), value: null }]));
      n += chunk.length;
      chunk = [];
      await heartbeat();
    };
    for (const id of ids) { chunk.push(id); if (chunk.length >= 1000) await flush(); }
    await flush();
    return n;
  };
  try {
    // Full runs are total: whatever the pipeline holds and this run did not see was deleted at the
    // source. Deletes are published only once every table of the run was read in full.
    const unseen = new Map<string, Set<string>>();
    let lastProgress = Date.now();
    for (const table of tables) {
      let read = 0, deleted = 0;
      const live = request.full ? await liveIds(port, rawTopic, table, heartbeat) : null;
      if (live) unseen.set(table, live);
      const liveBefore = live?.size ?? 0;
      const saved = request.full ? null : await loadState(port, codec, request.connector, table);
      const state = saved ? JSON.parse(saved.state) as unknown : null;
      const readOpts: ReadOptions = {
        full: request.full, signal: abort.signal, state, runStartedAt: started, heartbeat,
        published: request.full ? undefined : publishedRecords(port, codec, rawTopic, table, runId, heartbeat),
      };
      const handle = async (page: SourcePage): Promise<void> => {
        await publishRecords(producer, codec, rawTopic, request.connector, table, runId, page);
        if (live) for (const r of page.records) live.delete(r.externalId);
        if (page.deletedIds && page.deletedIds.length > 0) {
          deleted += await publishDeletes(table, page.deletedIds);
          if (live) for (const id of page.deletedIds) live.delete(id);
        }
        read += page.records.length;
        if (page.state !== undefined) {
          await saveState(producer, port, codec, { connector: request.connector, table, runId, savedAt: Date.now(), state: JSON.stringify(page.state) });
        }
        if (Date.now() - lastProgress > 2000) {
          lastProgress = Date.now();
          await publishEvent(producer, codec, events, newEvent({ ...base, type: "PROGRESS", table, counts: { read: totals.read! + read } }));
        }
        await heartbeat();
      };
      try {
        const slices = !request.full && source.planSlices && source.readSlice && source.finishSlices ? await source.planSlices(table, readOpts) : null;
        if (slices && source.finishSlices) {
          // Incremental slices run as tasks on sync.tasks, taken by any producer worker.
          read += await runTasks(port, codec, producer, request, table, slices, heartbeat, rlog);
          for await (const page of source.finishSlices(table, readOpts)) await handle(page);
        } else {
          for await (const page of source.read(table, readOpts)) await handle(page);
        }
      } catch (e) {
        if (!(e instanceof TableSkippedError)) throw e;
        // Nothing else stops: the table is reported as skipped, and no deletes are inferred for it.
        unseen.delete(table);
        totals.skipped = (totals.skipped ?? 0) + 1;
        rlog.warn({ table, err: e.message }, "table skipped");
        await publishEvent(producer, codec, events, newEvent({ ...base, type: "TABLE_COMPLETED", table, counts: { read, skipped: 1 }, error: e.message }));
        continue;
      }
      totals.read! += read;
      totals.deleted! += deleted;
      totals[`read.${table}`] = read;
      const threshold = (connectorConfig as { massDeleteThreshold?: number }).massDeleteThreshold ?? 0.3;
      if (live && liveBefore > 0 && live.size / liveBefore > threshold && !request.forceDeletes) {
        throw new MassDeleteError(`table ${table}: this full run would delete ${live.size} of ${liveBefore} records (${Math.round(100 * live.size / liveBefore)}%, above the ${Math.round(threshold * 100)}% guard); nothing was deleted. If the source really lost them, run \`qobra-sync sync ${request.connector} --full --force-deletes\``);
      }
      const budget = source.apiBudget?.();
      const api = budget ? Object.fromEntries(Object.entries({ apiCalls: budget.calls, apiUsed: budget.used, apiLimit: budget.limit, apiRateLimited: budget.rateLimited })
        .filter((e): e is [string, number] => e[1] !== undefined)) : {};
      await publishEvent(producer, codec, events, newEvent({ ...base, type: "TABLE_COMPLETED", table, counts: { read, deleted, unseen: live?.size ?? 0, ...api } }));
      rlog.info({ table, read, deleted, unseen: live?.size ?? 0 }, "table read");
    }
    for (const [table, ids] of unseen) {
      const n = await publishDeletes(table, ids);
      totals.deleted! += n;
      totals[`deleted.${table}`] = n;
    }
    const admin = await port.admin();
    const offsets: TopicPartitionOffset[] = [...(await endOffsets(admin, rawTopic))].map(([partition, offset]) => ({ topic: rawTopic, partition, offset }));
    totals.durationMs = Date.now() - started;
    await publishEvent(producer, codec, events, newEvent({ ...base, type: "RUN_COMPLETED", counts: totals, offsets }));
    rlog.info({ counts: totals }, "run completed");
    return "completed";
  } catch (e) {
    abort.abort();
    rlog.error({ err: describeError(e) }, "run failed");
    await publishEvent(producer, codec, events, newEvent({ ...base, type: "RUN_FAILED", counts: totals, error: describeError(e) }));
    return "failed";
  } finally {
    await source.close();
  }
}

export class MassDeleteError extends EtlError {
  constructor(message: string) { super("SOURCE_DATA", message); }
}

/** Every message of one table in the raw topic, oldest first per partition (value null: a tombstone). */
async function scanTable(port: KafkaPort, rawTopic: string, table: string, onMessage: (externalId: string, value: Buffer | null) => Promise<void> | void, heartbeat: () => Promise<void>): Promise<void> {
  const prefix = `${JSON.stringify([table, ""]).slice(0, -3)}`; // '["table",' — cheap filter before JSON.parse
  await readToEnd(port, rawTopic, async (messages) => {
    for (const m of messages) {
      const k = m.key?.toString();
      if (!k || !k.startsWith(prefix)) continue;
      const key = parseRawKey(k);
      if (key && key.table === table) await onMessage(key.externalId, m.value);
    }
  }, { heartbeat });
}

/** The external ids of a table that the raw topic holds as live (latest message not a tombstone). */
async function liveIds(port: KafkaPort, rawTopic: string, table: string, heartbeat: () => Promise<void>): Promise<Set<string>> {
  const live = new Set<string>();
  await scanTable(port, rawTopic, table, (id, value) => { if (value === null) live.delete(id); else live.add(id); }, heartbeat);
  return live;
}

/** ReadOptions.published: the table's records as the raw topic holds them, decoded. */
function publishedRecords(port: KafkaPort, codec: Codec, rawTopic: string, table: string, runId: string, heartbeat: () => Promise<void>): NonNullable<ReadOptions["published"]> {
  return (onRecord) => scanTable(port, rawTopic, table, async (externalId, value) => {
    if (value === null) { onRecord({ externalId, fields: null, thisRun: false }); return; }
    const r = await codec.decode<RawRecord>(value);
    onRecord({ externalId, fields: r.op === "DELETE" ? null : r.fields, thisRun: r.runId === runId });
  }, heartbeat);
}

/** Publishes a page's records to the raw topic, acknowledged by all replicas. */
async function publishRecords(producer: Producer, codec: Codec, rawTopic: string, connector: string, table: string, runId: string, page: SourcePage): Promise<void> {
  if (page.records.length === 0) return;
  const readAt = Date.now();
  const envelopes: RawRecord[] = page.records.map((r) => ({
    connector, table, externalId: r.externalId, op: "UPSERT", runId, readAt,
    sourceUpdatedAt: r.sourceUpdatedAt, name: r.name, fields: r.fields, sourceTypes: page.sourceTypes,
  }));
  const values = await codec.encodeMany(rawTopic, "rawRecord", envelopes);
  await sendInChunks((r) => producer.send(r), rawTopic, envelopes.map((e, i) => ({ key: rawKey(table, e.externalId), value: values[i]! })));
}

const TASK_TIMEOUT_MS = Number(process.env.QOBRA_SYNC_TASK_TIMEOUT_MS ?? 3_600_000);

/**
 * Publishes one task per slice and waits until every task of the run has completed (returns the
 * records they read) or one has failed (throws). Tasks are keyed by task id, so they spread over
 * the partitions of sync.tasks and every producer worker's task consumer takes its share.
 */
async function runTasks(
  port: KafkaPort, codec: Codec, producer: Producer, request: SyncRequest, table: string, slices: ReadSlice[],
  heartbeat: () => Promise<void>, rlog: typeof log,
): Promise<number> {
  const from = await endOffsets(await port.admin(), port.topics.syncEvents);
  const tasks: SyncTask[] = slices.map((s) => ({
    taskId: randomUUID(), runId: request.requestId, connector: request.connector, table, full: false, windowFrom: s.from, windowTo: s.to,
  }));
  const values = await codec.encodeMany(port.topics.syncTasks, "syncTask", tasks);
  // Round-robin over the partitions, so the tasks spread over every worker that owns one.
  const partitions = Math.max(1, (await endOffsets(await port.admin(), port.topics.syncTasks)).size);
  await producer.send({ topic: port.topics.syncTasks, acks: -1, messages: tasks.map((t, i) => ({ key: t.taskId, value: values[i]!, partition: i % partitions })) });
  rlog.info({ table, tasks: tasks.length }, "slices published as tasks");
  const pending = new Set(tasks.map((t) => t.taskId));
  let read = 0;
  const groupId = `${port.topics.syncEvents}-tasks-${randomUUID()}`;
  const consumer = port.kafka.consumer({ groupId, sessionTimeout: 30_000 });
  try {
    await consumer.connect();
    await consumer.subscribe({ topic: port.topics.syncEvents, fromBeginning: false });
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new EtlError("RUN_FAILED", `table ${table}: ${pending.size} of ${tasks.length} tasks did not finish within ${TASK_TIMEOUT_MS / 1000} s; are producer workers running?`)), TASK_TIMEOUT_MS);
      const beat = setInterval(() => { void heartbeat().catch(() => {}); }, 3000);
      const done = (fn: () => void) => { clearTimeout(timer); clearInterval(beat); fn(); };
      consumer.run({
        eachMessage: async ({ message }) => {
          if (message.key?.toString() !== request.requestId || !message.value) return;
          const e = await codec.decode<SyncEvent>(message.value);
          if (!e.taskId || !pending.has(e.taskId)) return;
          if (e.type === "TASK_FAILED") { done(() => reject(new EtlError("RUN_FAILED", `table ${table}: task ${e.taskId} (${e.error ?? "no reason"})`))); return; }
          if (e.type === "TASK_COMPLETED") {
            pending.delete(e.taskId);
            read += e.counts.read ?? 0;
            if (pending.size === 0) done(resolve);
          }
        },
      }).catch((err: unknown) => done(() => reject(err)));
      for (const [partition, offset] of from) consumer.seek({ topic: port.topics.syncEvents, partition, offset: String(offset) });
    });
  } finally {
    await consumer.disconnect().catch(() => {});
    await (await port.admin()).deleteGroups([groupId]).catch(() => {});
  }
  return read;
}

/**
 * Every producer worker also takes tasks: it reads the slice, publishes its records (acks=all),
 * then reports TASK_COMPLETED (or TASK_FAILED) to the run's coordinator. The task's offset is
 * committed after the report, so a worker that dies mid-task leaves it to another.
 */
async function startTaskWorker(config: Config, port: KafkaPort, codec: Codec, producer: Producer, ctx: ConnectorContext = {}): Promise<Consumer> {
  const consumer = port.kafka.consumer({ groupId: `${config.topicPrefix}-task-workers`, sessionTimeout: 30_000 });
  const workerId = `${hostname()}:${process.pid}:${randomUUID().slice(0, 8)}`;
  await consumer.connect();
  await consumer.subscribe({ topic: port.topics.syncTasks, fromBeginning: true });
  await consumer.run({
    partitionsConsumedConcurrently: Math.max(1, config.kafka.partitions),
    eachMessage: async ({ message, heartbeat }) => {
      if (!message.value) return;
      const task = await codec.decode<SyncTask>(message.value);
      const base = { runId: task.runId, connector: task.connector, table: task.table, taskId: task.taskId, stage: `task-worker:${workerId}` };
      let read = 0;
      const source = createConnector(findConnector(config, task.connector), ctx);
      try {
        if (!source.readSlice) throw new EtlError("CONFIG", `connector ${task.connector} cannot read slices`);
        const rawTopic = port.topics.raw(task.connector);
        for await (const page of source.readSlice(task.table, { from: task.windowFrom ?? "", to: task.windowTo ?? "" }, {
          full: false, signal: new AbortController().signal, state: null, runStartedAt: Date.now(), heartbeat,
        })) {
          await publishRecords(producer, codec, rawTopic, task.connector, task.table, task.runId, page);
          read += page.records.length;
          await heartbeat();
        }
        await publishEvent(producer, codec, port.topics.syncEvents, newEvent({ ...base, type: "TASK_COMPLETED", counts: { read } }));
      } catch (e) {
        log.error({ ...base, err: describeError(e) }, "task failed");
        await publishEvent(producer, codec, port.topics.syncEvents, newEvent({ ...base, type: "TASK_FAILED", counts: { read }, error: describeError(e) }));
      } finally {
        await source.close();
      }
    },
  });
  return consumer;
}

/** Raw topics are keyed by (table, external id). */
export function rawKey(table: string, externalId: string): string {
  return JSON.stringify([table, externalId]);
}

export function parseRawKey(key: Buffer | string): { table: string; externalId: string } | null {
  try {
    const v = JSON.parse(key.toString()) as unknown;
    if (Array.isArray(v) && v.length === 2 && typeof v[0] === "string" && typeof v[1] === "string") return { table: v[0], externalId: v[1] };
  } catch { /* not ours */ }
  return null;
}
