/**
 * Producer worker: consumes sync requests (keyed by connector, so one connector never runs twice
 * at once), reads the source through its connector and publishes raw records. Each page is
 * acknowledged by the broker (acks=all, idempotent producer) before the next page is read; the
 * request's offset is committed only when the run has ended (completed or failed).
 */
import type { Consumer, Producer } from "kafkajs";
import { findConnector, type Config } from "../lib/config.ts";
import { Codec, newEvent, publishEvent } from "../lib/codec.ts";
import { describeError } from "../lib/errors.ts";
import { endOffsets, type KafkaPort } from "../lib/kafka.ts";
import { logger } from "../lib/log.ts";
import { loadState, saveState } from "../lib/state.ts";
import { groups } from "../lib/topics.ts";
import type { RawRecord, SyncRequest, TopicPartitionOffset } from "../schemas/index.ts";
import { createConnector } from "./connector.ts";

const log = logger.child({ component: "producer" });

export interface ProducerWorker { stop(): Promise<void> }

export async function startProducerWorker(config: Config, port: KafkaPort, codec: Codec): Promise<ProducerWorker> {
  const producer = await port.producer({ idempotent: true, maxInFlightRequests: 1 });
  const consumer: Consumer = port.kafka.consumer({ groupId: groups(config.topicPrefix).producers, sessionTimeout: 30_000, heartbeatInterval: 3000 });
  await consumer.connect();
  await consumer.subscribe({ topic: port.topics.syncRequests, fromBeginning: true });
  await consumer.run({
    partitionsConsumedConcurrently: Math.max(1, config.kafka.partitions),
    eachMessage: async ({ message, heartbeat }) => {
      if (!message.value) return;
      const request = await codec.decode<SyncRequest>(message.value);
      await runSync(config, port, codec, producer, request, heartbeat);
    },
  });
  return {
    async stop() {
      await consumer.disconnect().catch(() => {});
      await producer.disconnect().catch(() => {});
    },
  };
}

/** Runs one sync request to its end and publishes its lifecycle. Never throws for a failed run. */
export async function runSync(
  config: Config, port: KafkaPort, codec: Codec, producer: Producer, request: SyncRequest, heartbeat: () => Promise<void> = async () => {},
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
  const source = createConnector(connectorConfig);
  const abort = new AbortController();
  const totals: Record<string, number> = { read: 0 };
  try {
    for (const table of tables) {
      let read = 0, deleted = 0;
      const saved = request.full ? null : await loadState(port, codec, request.connector, table);
      const state = saved ? JSON.parse(saved.state) as unknown : null;
      for await (const page of source.read(table, { full: request.full, signal: abort.signal, state, runStartedAt: started, heartbeat })) {
        const readAt = Date.now();
        const envelopes: RawRecord[] = page.records.map((r) => ({
          connector: request.connector, table, externalId: r.externalId, op: "UPSERT", runId, readAt,
          sourceUpdatedAt: r.sourceUpdatedAt, name: r.name, fields: r.fields, sourceTypes: page.sourceTypes,
        }));
        for (const id of page.deletedIds ?? []) {
          envelopes.push({ connector: request.connector, table, externalId: id, op: "DELETE", runId, readAt, sourceUpdatedAt: null, name: null, fields: {}, sourceTypes: {} });
        }
        const values = await codec.encodeMany(rawTopic, "rawRecord", envelopes);
        const messages = envelopes.flatMap((e, i) => {
          const key = rawKey(table, e.externalId);
          // A delete is the DELETE envelope, then a tombstone so compaction forgets the record.
          return e.op === "DELETE" ? [{ key, value: values[i]! }, { key, value: null }] : [{ key, value: values[i]! }];
        });
        if (messages.length > 0) await producer.send({ topic: rawTopic, acks: -1, messages });
        read += page.records.length;
        deleted += page.deletedIds?.length ?? 0;
        if (page.state !== undefined) {
          await saveState(producer, port, codec, { connector: request.connector, table, runId, savedAt: Date.now(), state: JSON.stringify(page.state) });
        }
        await heartbeat();
      }
      totals.read! += read;
      totals.deleted = (totals.deleted ?? 0) + deleted;
      totals[`read.${table}`] = read;
      await publishEvent(producer, codec, events, newEvent({ ...base, type: "TABLE_COMPLETED", table, counts: { read, deleted } }));
      rlog.info({ table, read, deleted }, "table read");
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
