/**
 * The Kafka port: client construction, topic creation with the right policies, offsets, and the
 * consume-transform-produce transaction of one consumed batch. Roles never build topic names or
 * clients themselves.
 */
import kafkajs, {
  Kafka,
  logLevel,
  Partitioners,
  type Admin,
  type Consumer,
  type ITopicConfig,
  type Message,
  type Producer,
  type ProducerConfig,
  type Transaction,
} from "kafkajs";
import type { Config } from "./config.ts";
import { EtlError, KafkaUnavailableError } from "./errors.ts";
import { kafkaClientLogLevel, kafkaLogCreator } from "./kafka-log.ts";
import { topics, type Topics } from "./topics.ts";

export interface KafkaPort {
  kafka: Kafka;
  topics: Topics;
  admin(): Promise<Admin>;
  producer(opts?: ProducerConfig): Promise<Producer>;
  close(): Promise<void>;
}

export function createKafka(config: Config, clientSuffix = "", opts: { retries?: number } = {}): KafkaPort {
  const kafka = new Kafka({
    clientId: `${config.kafka.clientId}${clientSuffix ? `-${clientSuffix}` : ""}`,
    brokers: config.kafka.brokers,
    connectionTimeout: 5000,
    retry: { retries: opts.retries ?? 8, initialRetryTime: 200, maxRetryTime: 10_000 },
    // Transient broker answers (leader elections, rebalances) go to debug: lib/kafka-log.ts.
    logLevel: opts.retries !== undefined && opts.retries < 3 ? logLevel.NOTHING : kafkaClientLogLevel(),
    logCreator: kafkaLogCreator(),
  });
  const t = topics(config.topicPrefix);
  const opened: Array<{ disconnect(): Promise<void> }> = [];
  let admin: Admin | undefined;
  return {
    kafka,
    topics: t,
    async admin() {
      if (!admin) {
        admin = kafka.admin();
        await admin.connect();
        opened.push(admin);
      }
      return admin;
    },
    async producer(opts) {
      const p = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner, ...opts });
      await p.connect();
      opened.push(p);
      return p;
    },
    async close() {
      await Promise.allSettled(opened.splice(0).map((c) => c.disconnect()));
      admin = undefined;
    },
  };
}

/**
 * min.insync.replicas of the pipeline's topics: the configured value, else 2 from a replication
 * factor of 3 (with acks=all, an acknowledged record is then on two brokers, and one broker may be
 * lost without stopping writes), else undefined (the broker's setting).
 */
export function minInsyncReplicas(config: Pick<Config, "kafka">): number | undefined {
  return config.kafka.minInsyncReplicas ?? (config.kafka.replicationFactor >= 3 ? 2 : undefined);
}

/** The topics of the pipeline and their policies (raw and mapped topics are compacted). */
export function topicSpecs(config: Config): ITopicConfig[] {
  const t = topics(config.topicPrefix);
  const { partitions, replicationFactor } = config.kafka;
  const minIsr = minInsyncReplicas(config);
  const compacted = [
    { name: "cleanup.policy", value: "compact" },
    { name: "min.compaction.lag.ms", value: "60000" },
  ];
  const spec = (topic: string, configEntries: ITopicConfig["configEntries"] = [], numPartitions = partitions): ITopicConfig => ({
    topic,
    numPartitions,
    replicationFactor,
    configEntries: minIsr === undefined ? configEntries : [...configEntries, { name: "min.insync.replicas", value: String(minIsr) }],
  });
  return [
    spec(t.syncRequests, [], config.kafka.requestPartitions),
    spec(t.syncTasks, [], config.kafka.requestPartitions),
    spec(t.syncEvents, [{ name: "retention.ms", value: String(30 * 24 * 3600 * 1000) }]),
    spec(t.syncState, [{ name: "cleanup.policy", value: "compact" }], 1),
    spec(t.connectors, [{ name: "cleanup.policy", value: "compact" }], 1),
    spec(t.dlqMapper, [{ name: "retention.ms", value: "-1" }]),
    spec(t.dlqSink, [{ name: "retention.ms", value: "-1" }]),
    ...config.connectors.flatMap((c) => [spec(t.raw(c.id), compacted), ...c.tables.map((table) => spec(t.mapped(c.id, table.name), compacted))]),
  ];
}

/** Creates the missing topics (existing ones are left as they are). */
export async function ensureTopics(port: KafkaPort, config: Config): Promise<void> {
  const admin = await port.admin();
  const specs = topicSpecs(config);
  // Right after a topic is created, the broker may still answer "This server does not host this
  // topic-partition" to the metadata request kafkajs sends to wait for its leaders (a retriable
  // answer kafkajs's wait does not retry), and another process may create the same topics at the
  // same moment: both are retried here, for up to 30 s, until every topic has its leaders.
  const deadline = Date.now() + 30_000;
  for (let attempt = 0, delay = 200; ; attempt++, delay = Math.min(delay * 2, 2000)) {
    const existing = new Set(await admin.listTopics());
    const missing = specs.filter((s) => !existing.has(s.topic));
    if (missing.length === 0 && attempt === 0) return;
    try {
      if (missing.length > 0) await admin.createTopics({ topics: missing, waitForLeaders: true });
      else await admin.fetchTopicMetadata({ topics: specs.map((s) => s.topic) });
      return;
    } catch (e) {
      const passing = (e as { retriable?: unknown }).retriable === true || /already exists/i.test(String((e as Error).message));
      if (!passing || Date.now() + delay > deadline) throw e;
      await new Promise((r) => setTimeout(r, delay));
    }
  }
}

/** Kafka refuses a produce request over the broker's message.max.bytes (1 MiB by default). */
const MAX_SEND_BYTES = 768 * 1024;

/**
 * Sends messages in as many requests as needed to keep each under MAX_SEND_BYTES (a page of wide
 * rows, or 10,000 Bulk API records, is far bigger than one request may be). Order is kept.
 */
export async function sendInChunks(
  send: (record: { topic: string; acks: number; messages: Message[] }) => Promise<unknown>,
  topic: string,
  messages: Message[],
): Promise<void> {
  let chunk: Message[] = [];
  let bytes = 0;
  for (const m of messages) {
    const size = sizeOf(m.key) + sizeOf(m.value) + 64;
    if (chunk.length > 0 && bytes + size > MAX_SEND_BYTES) {
      await send({ topic, acks: -1, messages: chunk });
      chunk = [];
      bytes = 0;
    }
    chunk.push(m);
    bytes += size;
  }
  if (chunk.length > 0) await send({ topic, acks: -1, messages: chunk });
}

const sizeOf = (v: Message["key"] | Message["value"]): number => (v === null || v === undefined ? 0 : typeof v === "string" ? Buffer.byteLength(v) : v.length);

/**
 * Makes the transactions of one producer take turns: kafkajs keeps one transaction state per
 * producer, while a consumer may process several partitions concurrently.
 */
export class TransactionLock {
  private tail: Promise<void> = Promise.resolve();
  acquire(): Promise<() => void> {
    let release!: () => void;
    const next = new Promise<void>((r) => {
      release = r;
    });
    const ready = this.tail.then(() => release);
    this.tail = this.tail.then(() => next);
    return ready;
  }
}

/**
 * Commits what one consumed batch produced together with the batch's consumer offsets, in one
 * Kafka transaction (one at a time per producer, under `lock`): `send` writes the output into the
 * transaction, then the offset after the batch's last message is sent for `groupId`. Any failure
 * aborts the transaction and is thrown again, so the batch is fetched again. One producer for
 * every partition fences no predecessor: the mapper uses lib/partition-transactions.ts instead
 * (one producer per input partition); this stays for single-process tools (bench/passthrough.ts).
 */
export async function commitBatchTransaction(
  producer: Producer,
  lock: TransactionLock,
  groupId: string,
  batch: { topic: string; partition: number; lastOffset(): string },
  send: (txn: Transaction) => Promise<void>,
): Promise<void> {
  const release = await lock.acquire();
  const txn = await producer.transaction().catch((e: unknown) => {
    release();
    throw e;
  });
  try {
    await send(txn);
    await txn.sendOffsets({
      consumerGroupId: groupId,
      topics: [{ topic: batch.topic, partitions: [{ partition: batch.partition, offset: String(Number(batch.lastOffset()) + 1) }] }],
    });
    await txn.commit();
  } catch (e) {
    await txn.abort().catch(() => {});
    throw e;
  } finally {
    release();
  }
}

/**
 * The group timeouts of a role's consumer, from `kafka.*` in the config (docs/reliability.md,
 * "Recovery after a kill"): a member that stops heartbeating (killed, paused) loses its partitions
 * after `sessionTimeout`, and the others learn of a rebalance within `heartbeatInterval`. kafkajs
 * heartbeats from its fetch loop, so an idle consumer heartbeats once per empty long poll: the
 * poll waits no longer than the heartbeat interval (kafkajs's default, 5 s, is close to a 6 s
 * session), which also bounds how long a stopping consumer waits before it leaves its group.
 */
export function groupTimeouts(config: Config): { sessionTimeout: number; heartbeatInterval: number; rebalanceTimeout: number; maxWaitTimeInMs: number } {
  const k = config.kafka;
  return {
    sessionTimeout: k.sessionTimeoutMs,
    heartbeatInterval: k.heartbeatIntervalMs,
    rebalanceTimeout: k.rebalanceTimeoutMs,
    maxWaitTimeInMs: k.heartbeatIntervalMs,
  };
}

/**
 * For a handler whose one message is a long job (a producer worker's run or task): heartbeats
 * every `intervalMs` while it runs, as the Java client's heartbeat thread does, so the group keeps
 * the member while its process lives, whatever the job's steps (a slow first page, a rate-limit
 * wait) — the job's own timeouts and retry budget bound its progress. A process killed or paused
 * stops heartbeating and loses its partitions after the session timeout, as any member.
 *
 * kafkajs cannot rejoin a group while a handler runs, and its heartbeats keep the coordinator
 * found at the last join. So when a heartbeat (the timer's or the handler's own, through the
 * payload's `heartbeat`) answers that the member must rejoin — the group is rebalancing, the
 * member was expelled, or the coordinator moved to another broker — `membership` is aborted with
 * that answer: the handler should end its job early and throw it (kafkajs then rejoins, finding
 * the coordinator again, and delivers the uncommitted message again).
 */
export function heartbeatWhileRunning<P extends { heartbeat(): Promise<void> }>(
  intervalMs: number,
  handler: (payload: P, membership: AbortSignal) => Promise<void>,
): (payload: P) => Promise<void> {
  return async (payload) => {
    const lost = new AbortController();
    const heartbeat = async () => {
      try {
        await payload.heartbeat();
      } catch (e) {
        if (mustRejoin(e) && !lost.signal.aborted) lost.abort(e);
        throw e;
      }
    };
    const timer = setInterval(() => void heartbeat().catch(() => {}), intervalMs);
    try {
      await handler({ ...payload, heartbeat }, lost.signal);
    } finally {
      clearInterval(timer);
    }
  };
}

/** Group answers after which a member must rejoin (kafkajs rejoins when a handler throws one of them). */
const REJOIN_ANSWERS = new Set(["REBALANCE_IN_PROGRESS", "ILLEGAL_GENERATION", "UNKNOWN_MEMBER_ID", "NOT_COORDINATOR_FOR_GROUP"]);

/** Whether a kafkajs error is one of those answers (looked for through its causes). */
export function mustRejoin(e: unknown): boolean {
  for (let cur: unknown = e, depth = 0; cur && depth < 8; depth++) {
    const type = (cur as { type?: unknown }).type;
    if (typeof type === "string" && REJOIN_ANSWERS.has(type)) return true;
    cur = (cur as { cause?: unknown }).cause;
  }
  return false;
}

/**
 * Low and high offsets of every partition of a topic. Retried for up to 30 s while the broker
 * answers with a retriable error: right after a topic is created its partitions' leaders may not
 * serve ListOffsets yet ("This server is not the leader for that topic-partition"), and kafkajs's
 * fetchTopicOffsets gives up at once on that answer.
 */
export async function topicOffsets(admin: Admin, topic: string): Promise<Array<{ partition: number; low: number; high: number }>> {
  const deadline = Date.now() + 30_000;
  for (let delay = 100; ; delay = Math.min(delay * 2, 2000)) {
    try {
      const offs = await admin.fetchTopicOffsets(topic);
      return offs.map((o) => ({ partition: o.partition, low: Number(o.low), high: Number(o.high) }));
    } catch (e) {
      if ((e as { retriable?: unknown }).retriable !== true || Date.now() + delay > deadline) throw e;
      await new Promise((r) => setTimeout(r, delay));
    }
  }
}

/** End offsets (high watermarks) of every partition of a topic (retried as `topicOffsets`). */
export async function endOffsets(admin: Admin, topic: string): Promise<Map<number, number>> {
  return new Map((await topicOffsets(admin, topic)).map((o) => [o.partition, o.high]));
}

/** Committed offsets of a consumer group on a topic (-1 where nothing is committed). */
export async function committedOffsets(admin: Admin, groupId: string, topic: string): Promise<Map<number, number>> {
  const res = await admin.fetchOffsets({ groupId, topics: [topic] });
  const out = new Map<number, number>();
  for (const t of res) for (const p of t.partitions) out.set(p.partition, Number(p.offset));
  return out;
}

/**
 * A kafkajs error as a pipeline error, by its class: what a broker restart or a leader election
 * throws (connection errors, request timeouts, a missing broker or coordinator, a retriable
 * protocol code, and kafkajs's own "retries exhausted" around them) becomes KafkaUnavailableError,
 * which is retriable; anything else (a message too large, an authorization failure) is returned
 * as it is.
 */
export function asKafkaFailure(e: unknown, what: string): unknown {
  // kafkajs is CommonJS: Node's ESM loader sees its error classes only on the default export.
  const {
    KafkaJSBrokerNotFound,
    KafkaJSConnectionError,
    KafkaJSError,
    KafkaJSGroupCoordinatorNotFound,
    KafkaJSNumberOfRetriesExceeded,
    KafkaJSRequestTimeoutError,
    KafkaJSTimeout,
  } = kafkajs;
  if (!(e instanceof KafkaJSError) || e instanceof EtlError) return e;
  const passes =
    e.retriable ||
    e instanceof KafkaJSNumberOfRetriesExceeded ||
    e instanceof KafkaJSConnectionError ||
    e instanceof KafkaJSRequestTimeoutError ||
    e instanceof KafkaJSBrokerNotFound ||
    e instanceof KafkaJSGroupCoordinatorNotFound ||
    e instanceof KafkaJSTimeout;
  return passes ? new KafkaUnavailableError(`${what}: Kafka did not answer (${e.message})`, e) : e;
}

/**
 * Resolves with the error the first time one of these consumers stops for good: kafkajs restarts
 * a consumer by itself after a retriable crash, but after any other (a group coordinator not
 * found once its retries ran out, an error thrown by a batch handler that is not retriable) it
 * disconnects it and leaves it stopped. The role's supervisor (app/supervisor.ts) restarts the
 * role then. `dispose` removes the listeners.
 */
export function whenCrashed(consumers: Consumer[]): { crashed: Promise<Error>; dispose(): void } {
  let report!: (e: Error) => void;
  const crashed = new Promise<Error>((resolve) => {
    report = resolve;
  });
  const removers = consumers.map((c) =>
    c.on(c.events.CRASH, (event) => {
      if (!event.payload.restart) report(event.payload.error);
    }),
  );
  return {
    crashed,
    dispose: () => {
      for (const remove of removers) remove();
    },
  };
}
