/**
 * Mapping consumer: raw.<connector> → mapped.<connector>.<table>.
 * Each fetched batch is processed in one Kafka transaction: the mapped records, the dead letters
 * and the consumer offsets are committed together, so a crash between consume and produce
 * neither loses nor doubles a record. A bad record goes to dlq.mapper with the reason; the
 * partition never stalls. Infrastructure errors (broker, registry) abort the transaction and the
 * batch is fetched again.
 *
 * The transactions of each input partition go through that partition's own producer, whose
 * transactional id is stable (lib/partition-transactions.ts): a mapper that takes a partition
 * over aborts its predecessor's open transaction at once and fences it, so a killed mapper holds
 * nothing up and a paused one (a zombie) cannot commit after its partitions moved. Each mapped
 * record carries the raw position it came from (headers qobra.raw.partition, qobra.raw.offset).
 *
 * The same core runs a replay (ops/replay.ts) when given a MapperScope: another group, one
 * connector's raw topic, some of its tables, up to given end offsets, without per-run events.
 */
import type { Consumer, EachBatchPayload, KafkaMessage, Message } from "kafkajs";
import type { Config, ConnectorConfig, TableConfig } from "../../lib/config.ts";
import type { Codec } from "../../lib/codec.ts";
import { MappingError, SchemaIncompatibleError, describeError } from "../../lib/errors.ts";
import { groupTimeouts, sendInChunks, whenCrashed, type KafkaPort } from "../../lib/kafka.ts";
import { PartitionTransactions } from "../../lib/partition-transactions.ts";
import { logger } from "../../lib/log.ts";
import type { Registry } from "../../lib/registry.ts";
import { groups } from "../../lib/topics.ts";
import type { DeadLetter, RawRecord } from "../../schemas/index.ts";
import { dlqHeaders, parseRawKey } from "../../lib/protocol.ts";
import { mapRecord } from "./map-record.ts";
import { effectiveFields } from "./default-fields.ts";
import { UserDirectory, userKeyUses } from "./users.ts";
import { createPool } from "../../lib/pg.ts";
import { newEvent } from "../../lib/codec.ts";
import { mappedSchema, tableLayout, type TableLayout } from "./mapped-schema.ts";

const log = logger.child({ component: "mapper" });

interface Mapper {
  stop(): Promise<void>;
  /** Resolves if the mapper's consumer stops for good (the supervisor restarts the role). */
  crashed: Promise<Error>;
  /** Resumes the partitions paused at their end (a scope's `until` was moved on). */
  resume(): void;
}

/**
 * What a replay maps (ops/replay.ts); without a scope the mapper role maps every connector's raw
 * topic under `<prefix>-mapper`, for ever, and publishes each run's PROGRESS events.
 */
export interface MapperScope {
  groupId: string;
  /** Base of the partitions' transactional ids (lib/partition-transactions.ts); default: the group id. */
  transactionalIdBase?: string;
  /** The connectors whose raw topics are consumed. */
  connectors: readonly string[];
  /** Only these tables' records are mapped; the others are passed over. Default: every table. */
  tables?: readonly string[];
  /** Exclusive end per raw topic and partition, read at every batch: a partition at its end is paused until resume(). */
  until: ReadonlyMap<string, ReadonlyMap<number, number>>;
  /** Whether to map a record, by its raw key (default: every record). */
  accept?: (key: Buffer | null) => boolean;
  /** After each committed batch, and when a partition reaches its end: its next offset, and the raw keys of the records written to mapped topics. */
  onPosition?: (topic: string, partition: number, next: number, keys: readonly Buffer[]) => void;
}

interface Target {
  topic: string;
  schemaId: number;
  layout: TableLayout;
}

export async function startMapper(config: Config, port: KafkaPort, codec: Codec, registry: Registry, scope?: MapperScope): Promise<Mapper> {
  const prefix = config.topicPrefix;
  const groupId = scope?.groupId ?? groups(prefix).mapper;
  const consumer: Consumer = port.kafka.consumer({ groupId, readUncommitted: false, ...groupTimeouts(config) });
  // One transactional producer per assigned raw partition, opened on each assignment.
  const txns = new PartitionTransactions(port, {
    groupId,
    transactionalIdBase: scope?.transactionalIdBase,
    transactionTimeoutMs: config.kafka.transactionTimeoutMs,
  });
  const usersPool = createPool(config.sink.databaseUrl, { max: 1 });
  // A users query with $1 runs per tenant: the tenants are read from the (live) connectors at each refresh.
  const directory = new UserDirectory(usersPool, config.sink.users.query, config.sink.users.refreshSeconds, userKeyUses(config.connectors), () =>
    config.connectors.map((c) => c.tenant),
  );
  await directory.start();
  const scoped = scope ? config.connectors.filter((c) => scope.connectors.includes(c.id)) : config.connectors;
  const rawTopics = scoped.map((c) => port.topics.raw(c.id));
  consumer.on(consumer.events.GROUP_JOIN, (e) => {
    log.info({ assignment: e.payload.memberAssignment, joinMs: e.payload.duration }, "raw partitions assigned");
    txns.assigned(e.payload.memberAssignment, (topic) => rawTopics.includes(topic));
  });
  await consumer.connect();
  if (rawTopics.length > 0) await consumer.subscribe({ topics: rawTopics, fromBeginning: true });

  const targets = new Map<string, Promise<Target>>();
  const layoutKeys = new WeakMap<TableLayout, string>();
  // Each batch maps with its connector's current definition (config.connectors is live: the
  // connectors API's edits): a changed field list applies to the next batch without a restart. Only
  // a change of the topics subscribed to (a connector added or removed), or of the user keys the
  // directory indexes, restarts the mapper (app/roles.ts).
  const subscribed = new Set(rawTopics);
  const byTopic = new WeakMap<readonly ConnectorConfig[], Map<string, ConnectorConfig>>();
  const connectorOf = (topic: string): ConnectorConfig | undefined => {
    if (!subscribed.has(topic)) return undefined;
    const list = config.connectors;
    let m = byTopic.get(list);
    if (!m) byTopic.set(list, (m = new Map(list.map((c) => [port.topics.raw(c.id), c] as const))));
    return m.get(topic);
  };

  // A delete carries no values, so no source types to derive a schema from: it is encoded with the
  // table's current schema (every data field null), the one this process last used or the latest
  // registered, and only derives one from the config when the table has none yet.
  const latestByTable = new Map<string, Target>();
  async function deleteTargetFor(connector: ConnectorConfig, table: TableConfig): Promise<Target> {
    const known = latestByTable.get(`${connector.id}\u0000${table.name}`);
    if (known) return known;
    const topic = port.topics.mapped(connector.id, table.name);
    const layout = tableLayout(connector.id, table.name, table.fields, {});
    try {
      const schemaId = await registry.client.getLatestSchemaId(`${topic}-value`);
      return { topic, schemaId, layout };
    } catch (e) {
      if ((e as { status?: number }).status !== 404 && !/not found|40401/i.test(String((e as Error).message))) throw e;
      return targetFor(connector, table, null);
    }
  }

  async function targetFor(connector: ConnectorConfig, table: TableConfig, raw: RawRecord | null): Promise<Target> {
    if (raw?.op === "DELETE") return deleteTargetFor(connector, table);
    const sourceTypes = raw?.sourceTypes ?? {};
    const fields = effectiveFields(table.fields, sourceTypes);
    const layout = tableLayout(connector.id, table.name, fields, sourceTypes);
    // tableLayout returns the same layout for the same fields and source types (one per page of a run).
    let key = layoutKeys.get(layout);
    if (key === undefined) {
      key = `${connector.id}\u0000${table.name}\u0000${JSON.stringify(layout.dateKinds)}\u0000${Object.keys(fields).join(",")}`;
      layoutKeys.set(layout, key);
    }
    let t = targets.get(key);
    if (!t) {
      const topic = port.topics.mapped(connector.id, table.name);
      t = registry.register(topic, mappedSchema(layout)).then((schemaId) => ({ topic, schemaId, layout }));
      targets.set(key, t);
      t.catch(() => targets.delete(key));
    }
    const target = await t;
    latestByTable.set(`${connector.id}\u0000${table.name}`, target);
    return target;
  }

  await consumer.run({
    autoCommit: false,
    eachBatchAutoResolve: false,
    partitionsConsumedConcurrently: 2,
    eachBatch: async (payload: EachBatchPayload) => {
      const { batch } = payload;
      const connector = connectorOf(batch.topic);
      if (!connector || batch.messages.length === 0) return;
      // The partition's producer, initialised (its previous owner fenced) before its committed
      // offset was read: what precedes that offset was committed by the previous owner.
      const owner = await txns.claim(batch.topic, batch.partition);
      let messages = owner.from > Number(batch.firstOffset()) ? batch.messages.filter((m) => Number(m.offset) >= owner.from) : batch.messages;
      if (messages.length === 0) {
        log.info({ topic: batch.topic, partition: batch.partition, from: owner.from }, "batch already committed by the partition's previous owner; skipped");
        consumer.seek({ topic: batch.topic, partition: batch.partition, offset: String(owner.from) });
        return;
      }
      // A scope's end: what lies past it is left unresolved (fetched again after resume()).
      const end = scope?.until.get(batch.topic)?.get(batch.partition);
      const atEnd = end !== undefined && Number(batch.lastOffset()) >= end - 1;
      if (atEnd) messages = messages.filter((m) => Number(m.offset) < end);
      const reachedEnd = () => {
        consumer.pause([{ topic: batch.topic, partitions: [batch.partition] }]);
        scope?.onPosition?.(batch.topic, batch.partition, end!, []);
      };
      if (messages.length === 0) return reachedEnd();
      const written: Buffer[] = [];
      const out = new Map<string, Message[]>();
      const push = (topic: string, m: Message) => {
        let l = out.get(topic);
        if (!l) out.set(topic, (l = []));
        l.push(m);
      };
      let mapped = 0,
        dead = 0;
      const users = await directory.indexFor(connector.tenant);
      // Per run: what this batch mapped, dead-lettered and could not resolve (published as a
      // PROGRESS event in the same transaction, so the counts are exact too).
      const perRun = new Map<string, { mapped: number; dlq: number; unresolvedUsers: number }>();
      const count = (runId: string | undefined, k: "mapped" | "dlq" | "unresolvedUsers", n = 1) => {
        if (!runId || runId === "tombstone") return;
        let c = perRun.get(runId);
        if (!c) perRun.set(runId, (c = { mapped: 0, dlq: 0, unresolvedUsers: 0 }));
        c[k] += n;
      };
      let previousDeleteKey: string | undefined;
      for (const message of messages) {
        if (scope && !inScope(connector, message)) continue;
        const coords = { topic: batch.topic, partition: batch.partition, offset: Number(message.offset) };
        let raw: RawRecord | null = null;
        let table: TableConfig | undefined;
        try {
          if (message.value === null) {
            // Tombstone: the record is gone at the source. The DELETE envelope just before it did the
            // work (and carries the run); after compaction only the tombstone may remain, so alone it
            // maps to a delete too.
            const key = message.key ? parseRawKey(message.key) : null;
            if (!key || previousDeleteKey === message.key?.toString()) continue;
            raw = {
              connector: connector.id,
              table: key.table,
              externalId: key.externalId,
              op: "DELETE",
              runId: "tombstone",
              readAt: 0,
              sourceUpdatedAt: null,
              name: null,
              fields: {},
              sourceTypes: {},
            };
          } else {
            raw = await codec.decode<RawRecord>(message.value);
          }
          previousDeleteKey = raw.op === "DELETE" && message.value !== null ? message.key?.toString() : undefined;
          table = connector.tables.find((t) => t.name === raw!.table);
          if (!table)
            throw new MappingError(
              "unknown_table",
              `table ${raw.table} is not configured for connector ${connector.id}; add it to the config and replay, or ignore`,
            );
          const target = await targetFor(connector, table, raw);
          const result = mapRecord(raw, {
            fields: effectiveFields(table.fields, raw.sourceTypes),
            layout: target.layout,
            version: coords.offset,
            defaultCurrency: connector.defaultCurrency ?? config.sink.defaultCurrency,
            users,
          });
          if (!result.ok) throw new MappingError("mapping", `${result.issues.length} field(s) could not be mapped`, result.issues);
          push(target.topic, {
            key: raw.externalId,
            value: await codec.encodeWithId(target.schemaId, result.value),
            headers: { "qobra.raw.partition": String(coords.partition), "qobra.raw.offset": message.offset },
          });
          mapped++;
          if (message.key) written.push(message.key);
          count(raw.runId, "mapped");
          if (result.unresolvedUsers.length > 0) {
            count(raw.runId, "unresolvedUsers", result.unresolvedUsers.length);
            directory.noteMiss(connector.tenant);
            log.debug({ ...coords, table: table.name, users: result.unresolvedUsers }, "user not found in Qobra's users; kept with a null user id");
          }
        } catch (e) {
          // A record's own fault (MappingError, including bytes that do not decode) or a schema the
          // registry refuses is dead-lettered; anything else (the registry or broker unreachable)
          // aborts the batch, which is fetched again.
          if (!(e instanceof MappingError) && !(e instanceof SchemaIncompatibleError)) throw e;
          const issues = e instanceof MappingError ? e.issues : [];
          const letter: DeadLetter = {
            stage: "mapper",
            originalTopic: coords.topic,
            originalPartition: coords.partition,
            originalOffset: coords.offset,
            key: message.key ?? null,
            value: message.value ?? null,
            connector: connector.id,
            table: raw?.table ?? null,
            runId: raw?.runId ?? null,
            errorClass: (e as Error).name,
            errorMessage: describeError(e),
            issues,
            at: Date.now(),
          };
          push(port.topics.dlqMapper, {
            key: message.key ?? null,
            value: await codec.encode(port.topics.dlqMapper, "deadLetter", letter),
            headers: dlqHeaders(letter),
          });
          dead++;
          count(raw?.runId, "dlq");
          log.warn({ ...coords, table: raw?.table, runId: raw?.runId, issues, err: describeError(e) }, "record sent to the dead-letter topic");
        }
      }
      // A replay's records belong to runs that are over: their counts are not published again.
      for (const [runId, c] of scope ? [] : perRun) {
        const event = newEvent({ runId, connector: connector.id, type: "PROGRESS", stage: "mapper", counts: c });
        push(port.topics.syncEvents, { key: runId, value: await codec.encode(port.topics.syncEvents, "syncEvent", event) });
      }
      const last = atEnd ? messages.at(-1)!.offset : batch.lastOffset();
      const outcome = await owner.commit(last, async (txn) => {
        for (const [topic, produced] of out) await sendInChunks((r) => txn.send(r), topic, produced);
      });
      if (outcome === "fenced") {
        // Another mapper took this partition over: nothing of this batch was committed, and it is
        // not retried here. A heartbeat tells whether this process is still in the group: if it
        // was expelled (paused past its session timeout), it throws and kafkajs rejoins.
        await payload.heartbeat();
        return;
      }
      payload.resolveOffset(last);
      log.debug({ topic: batch.topic, partition: batch.partition, mapped, dead }, "batch mapped");
      if (atEnd) reachedEnd();
      else scope?.onPosition?.(batch.topic, batch.partition, Number(last) + 1, written);
    },
  });

  /** Whether a replay maps this record: one of its tables (by the raw key: a tombstone has no value), and accepted. */
  function inScope(connector: ConnectorConfig, message: KafkaMessage): boolean {
    if (scope?.accept && !scope.accept(message.key)) return false;
    if (!scope?.tables) return true;
    const key = message.key ? parseRawKey(message.key) : null;
    return key !== null && scope.tables.includes(key.table) && connector.tables.some((t) => t.name === key.table);
  }

  const crash = whenCrashed([consumer]);
  return {
    crashed: crash.crashed,
    resume: () => consumer.resume(rawTopics.map((topic) => ({ topic }))),
    async stop() {
      crash.dispose();
      // Leaves the group (after the batch in progress): the partitions move on at once.
      await consumer.disconnect().catch(() => {});
      await txns.close();
      directory.stop();
      await usersPool.end().catch(() => {});
    },
  };
}
