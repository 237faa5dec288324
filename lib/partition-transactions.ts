/**
 * One transactional producer per consumed input partition: how a consume-transform-produce role
 * (the mapper) fences a dead or paused predecessor with kafkajs 2.2.4, which has no KIP-447
 * (transactions fenced by consumer-group generation) and no static membership. This is the model
 * of Kafka Streams' first exactly-once version:
 *
 *  - The transactional id is stable per input partition: `<group>.<topic>.<partition>` (hashed
 *    when long). Whoever takes the partition over initialises that id. The broker then bumps the
 *    id's epoch, aborts the previous owner's open transaction at once (a killed mapper's, which
 *    would otherwise hold `read_committed` readers back until its timeout), and fences the
 *    previous owner's producer: any later send, offset commit or commit of it is refused
 *    (INVALID_PRODUCER_EPOCH), however long it was paused.
 *  - Only after that initialisation does the new owner read the partition's committed offset,
 *    and it processes from there: a batch fetched before (kafkajs reads the committed offsets when
 *    it joins, possibly while the predecessor's last commit was still completing) is cut to what
 *    follows. The commits of successive owners therefore form one unbroken chain: every input
 *    record's output is committed once, whatever the interleaving of kills, pauses and rebalances.
 *  - A commit refused because the partition's id was initialised elsewhere returns "fenced": the
 *    producer is dropped and the batch is not retried by this owner. If this process is still the
 *    partition's owner (its next heartbeat succeeds), its next batch opens a new producer; if it
 *    was expelled from the group, its heartbeat fails and kafkajs rejoins the group.
 *
 * Each producer is its own kafkajs client (kafkajs cannot share connections between producers):
 * two connections to a single broker, up to one per broker it writes to on a cluster, and a few
 * MB. So at most `maxOpen` of them are kept (default 32). An assignment of no more partitions
 * than that gets them all at once on GROUP_JOIN, so a predecessor's open transaction is aborted
 * at once even on a partition with nothing more to read. A larger one (many tenants: hundreds of
 * raw topics, most of them idle) opens a partition's producer on its first batch, and closes the
 * least recently used idle ones beyond the limit. A partition's producer is always initialised
 * before its first batch is processed, so the chain of commits above holds either way; on an idle
 * partition that is not opened, a killed predecessor's open transaction is aborted by the broker
 * after kafka.transactionTimeoutMs instead of at once.
 */
import { createHash } from "node:crypto";
import { Partitioners, type Producer, type Transaction } from "kafkajs";
import type { KafkaPort } from "./kafka.ts";
import { TransactionLock } from "./kafka.ts";
import { logger } from "./log.ts";

const log = logger.child({ component: "partition-transactions" });

/** A partition this process owns, with its initialised producer. */
export interface PartitionOwner {
  /** The partition's committed offset read after the producer was initialised: records before it were committed by a previous owner (-1: none committed). */
  readonly from: number;
  /**
   * Sends what one batch produced (`send`), then the offset after `lastOffset` for the group, and
   * commits both in one transaction. "fenced": another process initialised this partition's
   * transactional id; nothing was committed and the producer is dropped. Any other failure
   * aborts the transaction and is thrown (the batch is fetched again).
   */
  commit(lastOffset: string, send: (txn: Transaction) => Promise<void>): Promise<"committed" | "fenced">;
}

interface Slot {
  readonly topic: string;
  readonly partition: number;
  readonly lock: TransactionLock;
  readonly producer: Producer;
  readonly ready: Promise<{ producer: Producer; from: number }>;
  retired: boolean;
  /** When a batch last claimed it or committed through it (for closing the least recently used). */
  usedAt: number;
}

export interface PartitionTransactionsOptions {
  /** The consumer group whose offsets the transactions commit. */
  groupId: string;
  /** Base of the transactional ids, when it is not the group id (a replay: one base per connector, so that a re-run fences a crashed run). */
  transactionalIdBase?: string;
  transactionTimeoutMs: number;
  /** Producers kept open at most (beyond it, the least recently used idle ones are closed); default 32. */
  maxOpen?: number;
}

/** Between the reads of a partition's committed offset after its producer's initialisation. */
const STABLE_READ_MS = 250;

/** A producer used this recently is not closed to make room (its batch may still be running). */
const IDLE_BEFORE_CLOSE_MS = 2000;

const key = (topic: string, partition: number) => `${topic}\u0000${partition}`;

/** The stable transactional id of an input partition (Kafka allows long ids; a hash keeps them readable in broker tools). */
export function partitionTransactionalId(groupId: string, topic: string, partition: number): string {
  const id = `${groupId}.${topic}.${partition}`;
  return id.length <= 200 ? id : `${groupId.slice(0, 100)}.${createHash("sha256").update(id).digest("hex").slice(0, 32)}.${partition}`;
}

export class PartitionTransactions {
  private readonly slots = new Map<string, Slot>();
  private closed = false;

  private readonly port: KafkaPort;
  private readonly opts: PartitionTransactionsOptions;

  constructor(port: KafkaPort, opts: PartitionTransactionsOptions) {
    this.port = port;
    this.opts = opts;
  }

  /**
   * The partitions this member owns from now on (kafkajs GROUP_JOIN): the previous assignment's
   * producers are closed and one is opened and initialised for each partition of this one, which
   * fences its previous owner at once.
   */
  assigned(assignment: Record<string, number[]>, accept: (topic: string) => boolean = () => true): void {
    if (this.closed) return;
    const previous = [...this.slots.values()];
    this.slots.clear();
    for (const slot of previous) void this.retire(slot);
    const owned = Object.entries(assignment).flatMap(([topic, partitions]) => (accept(topic) ? partitions.map((partition) => ({ topic, partition })) : []));
    // Within the limit, all at once (their predecessors fenced now); beyond it, each on its first batch.
    if (owned.length > this.maxOpen) return;
    for (const { topic, partition } of owned) this.open(topic, partition);
    log.debug({ groupId: this.opts.groupId, assignment }, "transactional producers opened for the assignment");
  }

  /** The owner of a partition once its producer is initialised (opened now if it has none). */
  async claim(topic: string, partition: number): Promise<PartitionOwner> {
    if (this.closed) throw new Error("partition transactions are closed");
    const slot = this.slots.get(key(topic, partition)) ?? this.open(topic, partition);
    slot.usedAt = Date.now();
    if (this.slots.size > this.maxOpen) this.closeIdle(slot);
    const { producer, from } = await slot.ready;
    return { from, commit: (lastOffset, send) => this.commit(slot, producer, lastOffset, send) };
  }

  private get maxOpen(): number {
    return this.opts.maxOpen ?? 32;
  }

  /** How many producers are open (for tests and the log). */
  get openCount(): number {
    return this.slots.size;
  }

  /** Closes the least recently used producers not used in the last moments, down to the limit. */
  private closeIdle(keep: Slot): void {
    const idle = [...this.slots.values()].filter((s) => s !== keep && Date.now() - s.usedAt >= IDLE_BEFORE_CLOSE_MS).sort((a, b) => a.usedAt - b.usedAt);
    for (const slot of idle.slice(0, this.slots.size - this.maxOpen)) this.drop(slot);
  }

  /** Closes every producer (a role's stop). */
  async close(): Promise<void> {
    this.closed = true;
    const slots = [...this.slots.values()];
    this.slots.clear();
    await Promise.allSettled(slots.map((s) => this.retire(s)));
  }

  private open(topic: string, partition: number): Slot {
    const transactionalId = partitionTransactionalId(this.opts.transactionalIdBase ?? this.opts.groupId, topic, partition);
    const producer = this.port.kafka.producer({
      createPartitioner: Partitioners.DefaultPartitioner,
      transactionalId,
      idempotent: true,
      maxInFlightRequests: 1,
      transactionTimeout: this.opts.transactionTimeoutMs,
    });
    const ready = (async () => {
      const started = Date.now();
      await producer.connect();
      // kafkajs initialises the transactional id on the first transaction: an empty one does it
      // now (InitProducerId: epoch bumped, the previous owner's open transaction aborted and its
      // producer fenced), and aborting it sends nothing.
      const init = await producer.transaction();
      await init.abort();
      // Read after the initialisation: the previous owner's last transaction is settled by now.
      // But the group coordinator applies a completed transaction's offsets a moment after the
      // transaction completes, and kafkajs's OffsetFetch cannot ask for stable offsets (KIP-447's
      // requireStable): read until two reads STABLE_READ_MS apart agree (a zombie test of a CI run
      // once read the offset before the predecessor's last commit: 1,500 records mapped twice).
      const admin = await this.port.admin();
      const read = async () => {
        const committed = await admin.fetchOffsets({ groupId: this.opts.groupId, topics: [topic] });
        const offset = committed.flatMap((t) => t.partitions).find((p) => p.partition === partition)?.offset;
        return offset === undefined ? -1 : Number(offset);
      };
      let from = await read();
      for (let i = 0; i < 5; i++) {
        await new Promise((r) => setTimeout(r, STABLE_READ_MS));
        const again = await read();
        if (again === from) break;
        from = Math.max(from, again);
      }
      log.debug({ topic, partition, transactionalId, from, ms: Date.now() - started }, "partition producer initialised (previous owner fenced)");
      return { producer, from };
    })();
    const slot: Slot = { topic, partition, lock: new TransactionLock(), producer, ready, retired: false, usedAt: Date.now() };
    this.slots.set(key(topic, partition), slot);
    // A failed initialisation (the broker unreachable) is reported to the batch that awaits it;
    // the slot is dropped so that the next batch tries again with a new producer.
    ready.catch(() => this.drop(slot));
    return slot;
  }

  private async commit(slot: Slot, producer: Producer, lastOffset: string, send: (txn: Transaction) => Promise<void>): Promise<"committed" | "fenced"> {
    const release = await slot.lock.acquire();
    let txn: Transaction | undefined;
    try {
      txn = await producer.transaction();
      await send(txn);
      await txn.sendOffsets({
        consumerGroupId: this.opts.groupId,
        topics: [{ topic: slot.topic, partitions: [{ partition: slot.partition, offset: String(Number(lastOffset) + 1) }] }],
      });
      await txn.commit();
      slot.usedAt = Date.now();
      return "committed";
    } catch (e) {
      const aborted = txn
        ? await txn.abort().then(
            () => true,
            () => false,
          )
        : false;
      if (isFencedError(e)) {
        this.drop(slot);
        log.warn(
          { topic: slot.topic, partition: slot.partition, err: String((e as Error).message) },
          "this partition's transactional id was initialised by another owner: the batch's transaction is aborted and not retried here",
        );
        return "fenced";
      }
      // A transaction whose abort failed leaves the producer in an unknown state: the next batch
      // opens a new one (which fences this one, and reads the committed offset again).
      if (!aborted) this.drop(slot);
      throw e;
    } finally {
      release();
    }
  }

  /** Forgets a slot (if it is still the partition's) and closes its producer. */
  private drop(slot: Slot): void {
    const k = key(slot.topic, slot.partition);
    if (this.slots.get(k) === slot) this.slots.delete(k);
    void this.retire(slot);
  }

  private async retire(slot: Slot): Promise<void> {
    if (slot.retired) return;
    slot.retired = true;
    // After its initialisation settled (the producer is disconnected even when it failed half-way).
    await slot.ready.catch(() => undefined);
    await slot.producer.disconnect().catch(() => {});
  }
}

/**
 * Whether a kafkajs error says that this producer's epoch is no longer the transactional id's:
 * INVALID_PRODUCER_EPOCH (what brokers answer kafkajs's request versions), PRODUCER_FENCED
 * (code 90, unknown to kafkajs 2.2.4, which reports "Unknown error code 90"). Looked for through
 * the error's causes (kafkajs wraps errors whose retries ran out).
 */
export function isFencedError(e: unknown): boolean {
  for (let cur: unknown = e, depth = 0; cur && depth < 8; depth++) {
    const c = cur as { type?: unknown; message?: unknown; cause?: unknown; originalError?: unknown };
    if (c.type === "INVALID_PRODUCER_EPOCH" || c.type === "PRODUCER_FENCED") return true;
    if (typeof c.message === "string" && /Unknown error code 90\b|producer.*fenced|INVALID_PRODUCER_EPOCH/i.test(c.message)) return true;
    cur = c.cause ?? c.originalError;
  }
  return false;
}
