/**
 * Sink consumer: mapped.<connector>.<table> → Qobra's PostgreSQL.
 * One PostgreSQL transaction per fetched batch: the rows (deduplicated by external id, guarded by
 * version) and the partition's next offset are committed together, in the sink database. On
 * assignment the consumer seeks to the offsets stored there, and inside each transaction it skips
 * what the stored offset says is already applied, so a crash at any instant loses nothing and
 * applies nothing twice. Kafka offsets are committed afterwards, for lag monitoring only.
 *
 * This file is the Kafka shell; the steps are offset-store.ts (the stored offsets, positioning),
 * apply.ts (the transaction, the row-by-row fallback), dlq.ts and table-evolution.ts.
 */
import type { Consumer, EachBatchPayload, KafkaMessage } from "kafkajs";
import type pg from "pg";
import type { Config } from "../../lib/config.ts";
import { SinkUnavailableError, describeError, isRetriablePgError } from "../../lib/errors.ts";
import { groupTimeouts, topicOffsets, whenCrashed, type KafkaPort } from "../../lib/kafka.ts";
import { logger } from "../../lib/log.ts";
import { createPool } from "../../lib/pg.ts";
import { schemaIdOf, type Registry } from "../../lib/registry.ts";
import { retry, type RetryPolicy } from "../../lib/retry.ts";
import { groups } from "../../lib/topics.ts";
import type { Codec } from "../../lib/codec.ts";
import { applyBatch, type DecodedRow } from "./apply.ts";
import { sendDeadLetters } from "./dlq.ts";
import { OffsetStore, Positioner } from "./offset-store.ts";
import { sinkRelation } from "./sink-sql.ts";
import { SinkTables, ensureSinkSchema, sinkDb } from "./table-evolution.ts";

const log = logger.child({ component: "sink" });

/** Waiting for the sink database at start-up (it may be restarting): 30 retries, up to 10 s apart. */
const STARTUP_RETRY: RetryPolicy = { retries: 30, initialMs: 500, maxMs: 10_000 };

interface Sink {
  stop(): Promise<void>;
  pool: pg.Pool;
  /** Resolves if the sink's consumer stops for good (the supervisor restarts the role). */
  crashed: Promise<Error>;
}

export async function startSink(config: Config, port: KafkaPort, registry: Registry, codec: Codec): Promise<Sink> {
  const group = groups(config.topicPrefix).sink;
  const schema = config.sink.schema;
  const pool = createPool(config.sink.databaseUrl, { max: 4 });
  const db = sinkDb(pool);
  // PostgreSQL may be restarting: wait for it (with backoff) rather than exit.
  await retry(() => ensureSinkSchema(db, schema), STARTUP_RETRY, {
    policyOf: (e) => (e instanceof SinkUnavailableError || isRetriablePgError(e) ? STARTUP_RETRY : undefined),
    onRetry: (e, n) => log.warn({ attempt: n, err: describeError(e) }, "sink PostgreSQL not reachable yet; retrying"),
  });

  const mappedTopics = config.connectors.flatMap((c) =>
    c.tables.map((t) => ({ topic: port.topics.mapped(c.id, t.name), connector: c.id, table: t.name, relation: sinkRelation(config.sink, c, t.name) })),
  );
  const byTopic = new Map(mappedTopics.map((m) => [m.topic, m] as const));
  const tables = new SinkTables(db, schema, (id) => registry.schemaJson(id), byTopic);
  const offsets = new OffsetStore(schema, group);

  const consumer: Consumer = port.kafka.consumer({ groupId: group, maxBytesPerPartition: 4 * 1024 * 1024, ...groupTimeouts(config) });
  await consumer.connect();
  // The offsets stored with the data are the truth. On each new assignment the consumer goes to
  // them at once; the first batch of a partition the assignment missed checks them again.
  const positioner = new Positioner({
    store: offsets,
    db: pool,
    lowOffsets: async (topic) => new Map((await topicOffsets(await port.admin(), topic)).map((o) => [o.partition, o.low])),
    seek: (topic, partition, offset) => consumer.seek({ topic, partition, offset: String(offset) }),
  });
  consumer.on(consumer.events.GROUP_JOIN, (e) => {
    log.info({ assignment: e.payload.memberAssignment, joinMs: e.payload.duration }, "mapped partitions assigned");
    positioner
      .assigned(e.payload.memberAssignment, (topic) => byTopic.has(topic))
      .catch((err: unknown) => log.warn({ err: describeError(err) }, "could not position on assignment; the first batch of each partition will"));
  });
  if (mappedTopics.length > 0) await consumer.subscribe({ topics: mappedTopics.map((m) => m.topic), fromBeginning: true });

  const dlqProducer = await port.producer({ idempotent: true, maxInFlightRequests: 1 });

  await consumer.run({
    autoCommit: true,
    eachBatchAutoResolve: false,
    partitionsConsumedConcurrently: 2,
    eachBatch: async ({ batch, resolveOffset, heartbeat }: EachBatchPayload) => {
      if (batch.messages.length === 0 || !byTopic.has(batch.topic)) return;
      const first = Number(batch.messages[0]!.offset);
      const positioned = await positioner.check(batch.topic, batch.partition, first);
      if (!positioned.ok) {
        log.info(
          { topic: batch.topic, partition: batch.partition, from: first, to: positioned.target },
          "sink repositioned to the offset stored with the data",
        );
        return;
      }
      const latest = newestPerKey(batch.messages);
      const rows: DecodedRow[] = [];
      for (const m of latest.values()) {
        rows.push({ offset: Number(m.offset), schemaId: schemaIdOf(m.value!), value: await codec.decode<Record<string, unknown>>(m.value!) });
      }
      const byOffset = new Map([...latest.values()].map((m) => [Number(m.offset), m] as const));
      const origin = byTopic.get(batch.topic)!;
      await applyBatch(
        {
          db,
          offsets,
          tables,
          batchSize: config.sink.batchSize,
          deadLetter: (topic, partition, items) =>
            sendDeadLetters(
              dlqProducer,
              codec,
              port.topics.dlqSink,
              { ...origin, topic, partition },
              items.map((d) => ({ message: byOffset.get(d.offset)!, error: d.error })),
            ),
        },
        { topic: batch.topic, partition: batch.partition, rows, nextOffset: Number(batch.lastOffset()) + 1 },
      );
      resolveOffset(batch.lastOffset());
      await heartbeat();
    },
  });

  const crash = whenCrashed([consumer]);
  return {
    pool,
    crashed: crash.crashed,
    async stop() {
      crash.dispose();
      // Leaves the group (after the batch in progress): the partitions move on at once.
      await consumer.disconnect().catch(() => {});
      await dlqProducer.disconnect().catch(() => {});
      await pool.end().catch(() => {});
    },
  };
}

/**
 * The newest message of each external id in a batch. Offset order is version order for the
 * mapper alone, but a replay (ops/replay.ts) maps in its own group and may write an older version
 * of a key after the mapper's newer one: the version (the raw offset, header qobra.raw.offset)
 * decides then; without the header, the last message wins.
 */
export function newestPerKey(messages: readonly KafkaMessage[]): Map<string, KafkaMessage> {
  const rawOffset = (m: KafkaMessage): number | null => {
    const h = m.headers?.["qobra.raw.offset"];
    const v = Array.isArray(h) ? h[0] : h;
    return v === undefined || v === null ? null : Number(v.toString());
  };
  const latest = new Map<string, KafkaMessage>();
  for (const m of messages) {
    if (!m.key || !m.value) continue;
    const key = m.key.toString();
    const prev = latest.get(key);
    const [a, b] = prev ? [rawOffset(prev), rawOffset(m)] : [null, null];
    if (a !== null && b !== null && b < a) continue;
    latest.set(key, m);
  }
  return latest;
}
