/**
 * Serves the sync requests of one member of the producer group, a connector at a time but many
 * connectors at once.
 *
 * Requests are keyed by connector, so the requests of many connectors share each partition of
 * sync.requests. Served one after the other, a small run of one tenant would wait for a
 * 1,000,000-row run of another tenant whose connector hashes to the same partition. Here each
 * request goes to its connector's queue and the member runs up to `slots` connectors at once: a
 * request whose connector is running waits behind that run (a connector never runs twice at
 * once), and any other starts as soon as a slot is free, whatever is running on its partition.
 *
 * Offsets: a partition's committed offset is its oldest request that has not ended (or, when all
 * have, the one after the last accepted). A run that ends out of order does not move it past an
 * older run still going; a member that dies mid-run leaves every request from the oldest unended
 * one to be served again by the partition's next owner (at least once, as before; a request made
 * before a completed run covered it is answered without a new run, producers/run/plan.ts).
 *
 * Ownership: when the group takes a partition away (a rebalance moved it, or the member was
 * expelled), the runs and queued requests of that partition are stopped; their requests are not
 * committed and the new owner serves them. A run being stopped may still be reading its page when
 * the new owner starts the same connector: the connector's run lock in the sink database
 * (producers/connector-lock.ts) makes the new run wait for it. When the member keeps a partition
 * through a rebalance, kafkajs delivers its uncommitted requests again; the ones this member
 * already accepted are recognised by offset and not served twice.
 *
 * This file is the bookkeeping only: what runs a request and what commits an offset are given
 * (producers/worker.ts wires them to runSync and to the kafkajs consumer), so it is unit-tested
 * without a broker (test/unit/request-dispatcher.test.ts).
 */
import type { SyncRequest } from "../schemas/index.ts";

export type RunOutcome = "completed" | "failed" | "stopped";

export interface DispatchedRequest {
  partition: number;
  offset: number;
  request: SyncRequest;
}

export interface DispatcherOptions {
  /** Connectors run at once (producer.concurrentRuns). */
  slots: number;
  /** Runs one request to its end; `signal` is aborted when its partition is taken away or the dispatcher stops (answer "stopped" then). */
  run(request: DispatchedRequest, signal: AbortSignal): Promise<RunOutcome>;
  /** Commits a partition's offset: the next request its next owner must serve. False when the group refused it (a rebalance): it is sent again at the next join. */
  commit(partition: number, offset: number): Promise<boolean>;
  /** A run that threw instead of answering an outcome (a bug, or a broker lost for good): its request stays uncommitted. */
  failed(request: DispatchedRequest, error: unknown): void;
}

/** A partition while this member owns it. Replaced by a new object when it is taken away and given back. */
class OwnedPartition {
  readonly stop = new AbortController();
  /** Accepted requests that have not ended (running or queued). */
  readonly unended = new Set<number>();
  /** One past the highest offset accepted. */
  next = -1;
  /** The offset last sent to commit. */
  committed = -1;

  readonly partition: number;

  constructor(partition: number) {
    this.partition = partition;
  }

  /** The offset to commit: the oldest unended request, else the one after the last accepted. */
  watermark(): number {
    let low = this.next;
    for (const o of this.unended) if (o < low) low = o;
    return low;
  }
}

interface Queued extends DispatchedRequest {
  owner: OwnedPartition;
}

export class RequestDispatcher {
  private readonly owned = new Map<number, OwnedPartition>();
  /** Each running connector's queue, the request running first. */
  private readonly chains = new Map<string, Queued[]>();
  private readonly chainDone = new Set<Promise<void>>();
  private slotWaiters: Array<() => void> = [];
  private commits: Promise<void> = Promise.resolve();
  private memberId: string | null = null;
  private stopped = false;

  private readonly opts: DispatcherOptions;

  constructor(opts: DispatcherOptions) {
    this.opts = opts;
    if (!(opts.slots >= 1)) throw new Error(`slots must be at least 1, got ${opts.slots}`);
  }

  /** Connectors running now (each holds a slot until its queue is empty). */
  get running(): number {
    return this.chains.size;
  }

  /**
   * The member's partitions after a join of the group. A partition kept by the same member id is
   * the same ownership (no one else can have had it in between); any other is stopped.
   */
  assigned(memberId: string, partitions: number[]): void {
    const keep = memberId === this.memberId ? new Set(partitions) : new Set<number>();
    for (const [p, owner] of this.owned) {
      if (keep.has(p)) {
        // Committed again in the new generation: a commit the rebalance refused is not lost.
        owner.committed = -1;
        this.commitIfMoved(owner);
        continue;
      }
      owner.stop.abort(new Error(`sync.requests partition ${p} was assigned to another member`));
      this.owned.delete(p);
    }
    this.memberId = memberId;
    for (const p of partitions) if (!this.owned.has(p)) this.owned.set(p, new OwnedPartition(p));
  }

  /** Whether this member already accepted the request at `offset` (delivered again after a rejoin): skip it. */
  accepted(partition: number, offset: number): boolean {
    const owner = this.owned.get(partition);
    return owner !== undefined && offset < owner.next;
  }

  /**
   * Takes a request: queued behind its connector's run, or started in a free slot. False when
   * every slot is taken by another connector: leave it (and what follows it on its partition)
   * undelivered, and offer it again later (`slotFreed`).
   */
  offer(partition: number, offset: number, request: SyncRequest | null): boolean {
    if (this.stopped) return false;
    const owner = this.ownerOf(partition);
    if (offset < owner.next) return true;
    if (request === null) {
      // Nothing to run (an empty message): accepted and ended at once.
      owner.next = offset + 1;
      this.commitIfMoved(owner);
      return true;
    }
    const chain = this.chains.get(request.connector);
    if (!chain && this.chains.size >= this.opts.slots) return false;
    owner.next = offset + 1;
    owner.unended.add(offset);
    const queued: Queued = { partition, offset, request, owner };
    if (chain) chain.push(queued);
    else this.startChain(request.connector, queued);
    return true;
  }

  /** Resolves when a slot frees, or after `ms`. */
  slotFreed(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(done, ms);
      function done() {
        clearTimeout(t);
        resolve();
      }
      this.slotWaiters.push(done);
    });
  }

  /** Stops every run and queued request (their requests stay uncommitted), waits up to `waitMs` for the runs to end, then for the last commits. */
  async stop(reason: Error, waitMs = 30_000): Promise<void> {
    this.stopped = true;
    for (const owner of this.owned.values()) owner.stop.abort(reason);
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([Promise.allSettled([...this.chainDone]), new Promise((r) => (timer = setTimeout(r, waitMs)))]);
    clearTimeout(timer);
    await this.commits;
  }

  private ownerOf(partition: number): OwnedPartition {
    let owner = this.owned.get(partition);
    if (!owner) {
      // A batch of a partition this member was not told it owns (no join event seen yet): take it.
      owner = new OwnedPartition(partition);
      this.owned.set(partition, owner);
    }
    if (owner.next < 0) owner.next = 0;
    return owner;
  }

  private startChain(connector: string, first: Queued): void {
    const chain: Queued[] = [first];
    this.chains.set(connector, chain);
    const done = (async () => {
      while (chain.length > 0) {
        const q = chain[0]!;
        // A request of a partition taken away since it was queued is the new owner's to serve.
        if (this.owned.get(q.partition) === q.owner && !q.owner.stop.signal.aborted) {
          let outcome: RunOutcome | null = null;
          try {
            outcome = await this.opts.run(q, q.owner.stop.signal);
          } catch (e) {
            this.opts.failed(q, e);
          }
          if (outcome === "completed" || outcome === "failed") {
            q.owner.unended.delete(q.offset);
            if (this.owned.get(q.partition) === q.owner) this.commitIfMoved(q.owner);
          }
        }
        chain.shift();
      }
    })().finally(() => {
      this.chains.delete(connector);
      this.chainDone.delete(done);
      const waiters = this.slotWaiters;
      this.slotWaiters = [];
      for (const w of waiters) w();
    });
    this.chainDone.add(done);
  }

  private commitIfMoved(owner: OwnedPartition): void {
    const offset = owner.watermark();
    if (offset < 0 || offset <= owner.committed) return;
    owner.committed = offset;
    // One commit at a time, in order: a later watermark is never overwritten by an earlier one.
    this.commits = this.commits.then(async () => {
      // A refused commit is sent again at the next join (assigned); nothing to do here.
      await this.opts.commit(owner.partition, offset).catch(() => false);
    });
  }
}
