/**
 * Sink consumer: mapped.<connector>.<table> → Qobra's PostgreSQL.
 * One PostgreSQL transaction per fetched batch: the rows (deduplicated by external id, guarded by
 * version) and the partition's next offset are committed together, in the sink database. On
 * assignment the consumer seeks to the offsets stored there, and inside each transaction it skips
 * what the stored offset says is already applied, so a crash at any instant loses nothing and
 * applies nothing twice. Kafka offsets are committed afterwards, for lag monitoring only.
 */
import type { Consumer, EachBatchPayload, KafkaMessage } from "kafkajs";
import type pg from "pg";
import type { Config } from "../../lib/config.ts";
import { SinkUnavailableError, describeError, isRetriablePgError, withRetry } from "../../lib/errors.ts";
import type { KafkaPort } from "../../lib/kafka.ts";
import { logger } from "../../lib/log.ts";
import { createPool, ident } from "../../lib/pg.ts";
import { schemaIdOf, type Registry } from "../../lib/registry.ts";
import { groups } from "../../lib/topics.ts";
import type { Codec } from "../../lib/codec.ts";
import type { DeadLetter } from "../../schemas/index.ts";
import { dlqHeaders } from "../mapping/run.ts";
import { formatDate } from "../mapping/convert.ts";
import {
  OFFSETS_TABLE, addColumnSql, columnsOf, createTableSql, offsetsDdl, pgTextArray, softDeleteSql, tableName, upsertColumns, upsertSql,
  type SinkColumn,
} from "./sink-sql.ts";

const log = logger.child({ component: "sink" });

export interface Sink { stop(): Promise<void>; pool: pg.Pool }

interface TableState { qualified: string; columns: SinkColumn[]; upsert: string; schemaId: number }

export async function startSink(config: Config, port: KafkaPort, registry: Registry, codec: Codec): Promise<Sink> {
  const group = groups(config.topicPrefix).sink;
  const schema = config.sink.schema;
  const pool = createPool(config.sink.databaseUrl, { max: 4 });
  // PostgreSQL may be restarting: wait for it (with backoff) rather than exit.
  await withRetry(() => ensureSinkSchema(pool, schema), {
    retries: 30, initialMs: 500, maxMs: 10_000,
    isRetriable: (e) => e instanceof SinkUnavailableError || isRetriablePgError(e),
    onRetry: (e, n) => log.warn({ attempt: n, err: describeError(e) }, "sink PostgreSQL not reachable yet; retrying"),
  });

  const mappedTopics = config.connectors.flatMap((c) => c.tables.map((t) => ({ topic: port.topics.mapped(c.id, t.name), connector: c.id, table: t.name })));
  const byTopic = new Map(mappedTopics.map((m) => [m.topic, m] as const));
  const tables = new Map<string, TableState>(); // key: topic + schema id

  const consumer: Consumer = port.kafka.consumer({ groupId: group, maxBytesPerPartition: 4 * 1024 * 1024, sessionTimeout: 10_000, heartbeatInterval: 3000 });
  await consumer.connect();
  // The offsets stored with the data are the truth. On each new assignment, the first batch of a
  // partition checks where it should start: the stored offset, or the topic's beginning for a sink
  // that has none (a new or dropped sink database replays everything), and seeks there if needed.
  const positioned = new Set<string>();
  consumer.on(consumer.events.GROUP_JOIN, (e) => {
    positioned.clear();
    // Go to the stored offsets (or the beginning, for a sink database without any) at once, even
    // for partitions that receive nothing new: a rebuilt sink database is refilled right away.
    void (async () => {
      for (const [topic, partitions] of Object.entries(e.payload.memberAssignment)) {
        if (!byTopic.has(topic)) continue;
        const stored = await pool.query<{ partition: number; next_offset: string }>(
          `SELECT partition, next_offset FROM ${ident(schema)}.${ident(OFFSETS_TABLE)} WHERE consumer_group = $1 AND topic = $2`, [group, topic]);
        const byPartition = new Map(stored.rows.map((r) => [r.partition, Number(r.next_offset)]));
        const offs = byPartition.size < partitions.length ? await (await port.admin()).fetchTopicOffsets(topic) : [];
        for (const partition of partitions) {
          const target = byPartition.get(partition) ?? Number(offs.find((o) => o.partition === partition)?.low ?? 0);
          consumer.seek({ topic, partition, offset: String(target) });
          positioned.add(`${topic}:${partition}`);
        }
      }
    })().catch((err: unknown) => log.warn({ err: describeError(err) }, "could not position on assignment; the first batch of each partition will"));
  });
  async function position(topic: string, partition: number, firstOffset: number): Promise<boolean> {
    const key = `${topic}:${partition}`;
    if (positioned.has(key)) return true;
    const stored = await pool.query<{ next_offset: string }>(
      `SELECT next_offset FROM ${ident(schema)}.${ident(OFFSETS_TABLE)} WHERE consumer_group = $1 AND topic = $2 AND partition = $3`,
      [group, topic, partition]);
    let target: number;
    if (stored.rows[0]) target = Number(stored.rows[0].next_offset);
    else {
      const offs = await (await port.admin()).fetchTopicOffsets(topic);
      target = Number(offs.find((o) => o.partition === partition)?.low ?? 0);
    }
    positioned.add(key);
    // At or before the target: go on (the transaction skips what was already applied).
    if (firstOffset <= target) return true;
    consumer.seek({ topic, partition, offset: String(target) });
    log.info({ topic, partition, from: firstOffset, to: target }, "sink repositioned to the offset stored with the data");
    return false;
  }
  if (mappedTopics.length > 0) await consumer.subscribe({ topics: mappedTopics.map((m) => m.topic), fromBeginning: true });

  async function tableFor(topic: string, schemaId: number): Promise<TableState> {
    const key = `${topic}\u0000${schemaId}`;
    const cached = tables.get(key);
    if (cached) return cached;
    const m = byTopic.get(topic)!;
    const writer = await registry.schemaJson(schemaId);
    const columns = columnsOf(writer);
    const qualified = tableName(schema, m.connector, m.table);
    await evolveTable(pool, qualified, `${m.connector}__${m.table}`, schema, columns);
    const state = { qualified, columns, upsert: upsertSql(qualified, columns), schemaId };
    tables.set(key, state);
    return state;
  }

  async function applyRows(client: pg.PoolClient, t: TableState, values: Array<Record<string, unknown>>): Promise<number> {
    const upserts = values.filter((v) => v._deleted !== true);
    const deletes = values.filter((v) => v._deleted === true);
    if (upserts.length > 0) await client.query(t.upsert, upsertParams(t.columns, upserts));
    if (deletes.length > 0) {
      await client.query(softDeleteSql(t.qualified), [deletes.map((d) => d._external_id), deletes.map((d) => d._version), deletes.map((d) => d._run_id)]);
    }
    return values.length;
  }

  const dlqProducer = await port.producer({ idempotent: true, maxInFlightRequests: 1 });
  async function sendDeadLetters(topic: string, partition: number, items: Array<{ message: KafkaMessage; error: unknown }>): Promise<void> {
    const m = byTopic.get(topic)!;
    const messages = [];
    for (const { message, error } of items) {
      const letter: DeadLetter = {
        stage: "sink", originalTopic: topic, originalPartition: partition, originalOffset: Number(message.offset),
        key: message.key ?? null, value: message.value ?? null, connector: m.connector, table: m.table, runId: null,
        errorClass: (error as Error)?.name ?? "Error", errorMessage: describeError(error),
        issues: (error as { code?: string })?.code ? [{ path: "", code: String((error as { code?: string }).code), message: describeError(error) }] : [],
        at: Date.now(),
      };
      messages.push({ key: message.key ?? null, value: await codec.encode(port.topics.dlqSink, "deadLetter", letter), headers: dlqHeaders(letter) });
      log.warn({ topic, partition, offset: Number(message.offset), err: describeError(error) }, "record sent to the sink dead-letter topic");
    }
    await dlqProducer.send({ topic: port.topics.dlqSink, acks: -1, messages });
  }

  await consumer.run({
    autoCommit: true,
    eachBatchAutoResolve: false,
    partitionsConsumedConcurrently: 2,
    eachBatch: async ({ batch, resolveOffset, heartbeat }: EachBatchPayload) => {
      if (batch.messages.length === 0 || !byTopic.has(batch.topic)) return;
      if (!(await position(batch.topic, batch.partition, Number(batch.messages[0]!.offset)))) return;
      // Last message per external id wins (they are in offset order within the partition).
      const latest = new Map<string, KafkaMessage>();
      for (const m of batch.messages) if (m.key && m.value) latest.set(m.key.toString(), m);
      const decoded: Array<{ offset: number; schemaId: number; value: Record<string, unknown> }> = [];
      for (const m of latest.values()) {
        decoded.push({ offset: Number(m.offset), schemaId: schemaIdOf(m.value!), value: await registry.decode<Record<string, unknown>>(m.value!) });
      }
      const nextOffset = Number(batch.lastOffset()) + 1;
      const byOffset = new Map([...latest.values()].map((m) => [Number(m.offset), m] as const));
      // Rows are applied in one statement per schema; when PostgreSQL refuses the data (not the
      // connection), the batch is applied again row by row under savepoints, and the rows it
      // refuses go to dlq.sink — sent before the commit, so a crash can only repeat a dead letter.
      let safe = false;
      let recreated = false;
      for (;;) {
        const client = await connectSink(pool);
        try {
          await client.query("BEGIN");
          await client.query(
            `INSERT INTO ${ident(schema)}.${ident(OFFSETS_TABLE)} (consumer_group, topic, partition, next_offset) VALUES ($1, $2, $3, 0) ON CONFLICT DO NOTHING`,
            [group, batch.topic, batch.partition]);
          const cur = await client.query<{ next_offset: string }>(
            `SELECT next_offset FROM ${ident(schema)}.${ident(OFFSETS_TABLE)} WHERE consumer_group = $1 AND topic = $2 AND partition = $3 FOR UPDATE`,
            [group, batch.topic, batch.partition]);
          const applied = Number(cur.rows[0]?.next_offset ?? 0);
          const fresh = decoded.filter((d) => d.offset >= applied);
          const bySchema = new Map<number, typeof fresh>();
          for (const d of fresh) { let l = bySchema.get(d.schemaId); if (!l) bySchema.set(d.schemaId, (l = [])); l.push(d); }
          const dead: Array<{ offset: number; error: unknown }> = [];
          let written = 0;
          for (const [schemaId, rows] of bySchema) {
            let t: TableState;
            try {
              t = await tableFor(batch.topic, schemaId);
            } catch (e) {
              if (!(e instanceof SinkSchemaError)) throw e;
              for (const r of rows) dead.push({ offset: r.offset, error: e });
              continue;
            }
            if (!safe) {
              // Statements of sink.batchSize rows (the sweep in docs/benchmarks.md: 2,500-5,000 is best).
              for (let i = 0; i < rows.length; i += config.sink.batchSize) written += await applyRows(client, t, rows.slice(i, i + config.sink.batchSize).map((r) => r.value));
              continue;
            }
            for (const r of rows) {
              await client.query("SAVEPOINT qobra_row");
              try {
                written += await applyRows(client, t, [r.value]);
                await client.query("RELEASE SAVEPOINT qobra_row");
              } catch (e) {
                if (isRetriablePgError(e)) throw e;
                await client.query("ROLLBACK TO SAVEPOINT qobra_row");
                dead.push({ offset: r.offset, error: e });
              }
            }
          }
          if (dead.length > 0) await sendDeadLetters(batch.topic, batch.partition, dead.map((d) => ({ message: byOffset.get(d.offset)!, error: d.error })));
          if (nextOffset > applied) {
            await client.query(
              `UPDATE ${ident(schema)}.${ident(OFFSETS_TABLE)} SET next_offset = $4, updated_at = now() WHERE consumer_group = $1 AND topic = $2 AND partition = $3`,
              [group, batch.topic, batch.partition, nextOffset]);
          }
          await client.query("COMMIT");
          log.debug({ topic: batch.topic, partition: batch.partition, written, dead: dead.length, nextOffset }, "batch written");
          break;
        } catch (e) {
          await client.query("ROLLBACK").catch(() => {});
          if (isRetriablePgError(e)) throw new SinkUnavailableError(`sink PostgreSQL failed: ${describeError(e)}`, e);
          if ((e as { code?: string }).code === "42P01" && !recreated) {
            // A sink table was dropped under us (to rebuild it): forget what we knew and create it again.
            log.warn({ topic: batch.topic, err: describeError(e) }, "a sink table is gone; creating it again");
            for (const key of [...tables.keys()]) if (key.startsWith(`${batch.topic}\u0000`)) tables.delete(key);
            recreated = true;
            continue;
          }
          if (!safe && isDataError(e)) {
            log.warn({ topic: batch.topic, partition: batch.partition, err: describeError(e) }, "PostgreSQL refused a batch; applying it row by row to isolate the bad rows");
            safe = true;
            continue;
          }
          throw e;
        } finally {
          client.release();
        }
      }
      resolveOffset(batch.lastOffset());
      await heartbeat();
    },
  });

  return {
    pool,
    async stop() {
      await consumer.disconnect().catch(() => {});
      await dlqProducer.disconnect().catch(() => {});
      await pool.end().catch(() => {});
    },
  };
}

/** The sink table cannot take a schema (a field's type changed): its records are dead-lettered. */
export class SinkSchemaError extends Error {
  constructor(message: string) { super(message); this.name = "SinkSchemaError"; }
}

/** PostgreSQL refused the data itself (SQLSTATE classes 22 data exception, 23 integrity). */
function isDataError(e: unknown): boolean {
  const code = (e as { code?: unknown })?.code;
  return typeof code === "string" && (code.startsWith("22") || code.startsWith("23"));
}

async function connectSink(pool: pg.Pool): Promise<pg.PoolClient> {
  try {
    return await pool.connect();
  } catch (e) {
    throw new SinkUnavailableError(`cannot connect to the sink PostgreSQL: ${describeError(e)}`, e);
  }
}

export async function ensureSinkSchema(pool: pg.Pool, schema: string): Promise<void> {
  const client = await connectSink(pool);
  try {
    await client.query("BEGIN");
    await client.query("SELECT pg_advisory_xact_lock(hashtext('qobra-sync:sink-schema'))");
    await client.query(`CREATE SCHEMA IF NOT EXISTS ${ident(schema)}`);
    await client.query(offsetsDdl(schema));
    await client.query("COMMIT");
  } catch (e) {
    await client.query("ROLLBACK").catch(() => {});
    throw e;
  } finally {
    client.release();
  }
}

/** Creates the table or adds the schema's new columns; a column whose type changed is refused. */
async function evolveTable(pool: pg.Pool, qualified: string, bareName: string, schema: string, columns: SinkColumn[]): Promise<void> {
  const client = await connectSink(pool);
  try {
    await client.query("BEGIN");
    await client.query("SELECT pg_advisory_xact_lock(hashtext($1))", [qualified]);
    await client.query(createTableSql(qualified, columns));
    const existing = await client.query<{ column_name: string; type: string }>(
      `SELECT a.attname AS column_name, format_type(a.atttypid, a.atttypmod) AS type FROM pg_attribute a
        WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped`, [qualified]);
    const types = new Map(existing.rows.map((r) => [r.column_name, r.type]));
    for (const c of columns) {
      const have = types.get(c.name);
      if (have === undefined) await client.query(addColumnSql(qualified, c));
      else if (normalizeType(have) !== normalizeType(c.pgType)) {
        throw new SinkSchemaError(`sink column ${schema}.${bareName}.${c.name} is ${have} but the mapped schema now says ${c.pgType}; `
          + "changing a field's type needs a new table version: rename the Qobra table in the config (or drop the sink table) and run `qobra-sync replay`; "
          + "these records wait in dlq.sink (`qobra-sync dlq replay --stage sink` once the table is fixed)");
      }
    }
    await client.query("COMMIT");
  } catch (e) {
    await client.query("ROLLBACK").catch(() => {});
    throw e;
  } finally {
    client.release();
  }
}

function normalizeType(t: string): string {
  return t.replace("timestamp with time zone", "timestamptz").replace("text[]", "text[]").replace(/^numeric.*/, "numeric");
}

/** One array per upsert column, from decoded mapped values. */
export function upsertParams(columns: SinkColumn[], rows: Record<string, unknown>[]): unknown[][] {
  return upsertColumns(columns).map((c) => rows.map((r) => sqlValue(c, r[c.name])));
}

function sqlValue(c: SinkColumn, v: unknown): unknown {
  if (v === null || v === undefined) return null;
  switch (c.kind) {
    case "date": return formatDate(v as number);
    case "timestamptz": return microsToIso(v as number);
    case "text[]": return pgTextArray(v as string[]);
    default: return v;
  }
}

/** Microseconds since the epoch → ISO 8601 with all six fractional digits, UTC. */
export function microsToIso(us: number): string {
  const ms = Math.floor(us / 1000);
  const rest = us - ms * 1000;
  const iso = new Date(ms).toISOString(); // …sss Z
  return `${iso.slice(0, -1)}${String(rest).padStart(3, "0")}Z`;
}
