/**
 * Rate limits shared by every producer worker process: the limiter a source's API client uses
 * (`SharedRollingLimiter`) and the interfaces around it (`PortalLimiter`, `LimiterClock`,
 * `BudgetStore`).
 *
 * `SharedRollingLimiter` has RollingLimiter's surface (`PortalLimiter`, defined here): it keeps
 * the in-process limiter in front (never the binding one while PostgreSQL answers: the process's
 * own requests are a subset of the shared ones) and counts each request in a `BudgetStore` too.
 * When the store fails, it uses the in-process limiter alone for that call: a coordination
 * outage must not stop syncs.
 *
 * The store kept in PostgreSQL, and its SQL, are in shared-rate-store.ts: this file needs only
 * the store's operations (`BudgetStore`), so it stays free of pools and schemas. It lives in
 * producers/ (not lib/) because only producer workers use it. It owns the limiter interface the
 * source clients import, and imports no source itself.
 */

/**
 * The limiter's notion of time: real time in production; tests pass a simulator's clock, so
 * nothing sleeps for real.
 */
export interface LimiterClock {
  now(): number;
  sleep(ms: number, signal?: AbortSignal): Promise<void>;
}

/**
 * What a source's API client needs of a rate limiter. The in-process limiter of a source
 * (RollingLimiter in connectors/hubspot/limits.ts) and SharedRollingLimiter below implement it;
 * this module owns it, so the clients import it and it imports no source.
 */
export interface PortalLimiter {
  /** Lowered from the source's own budget headers (X-HubSpot-RateLimit-Max). */
  max: number;
  readonly intervalMs: number;
  /** Waits for a slot (rejects when `signal` aborts); call the returned function when the answer has arrived. */
  acquire(signal?: AbortSignal): Promise<() => void>;
  /** No request before now + ms (a 429's Retry-After, an exhausted budget). */
  pause(ms: number): void;
}

/**
 * The operations SharedRollingLimiter uses of a store: SharedRateLimitStore (shared-rate-store.ts). The connector
 * interface (producers/connector.ts) restates the same shape for what the worker hands to plugins.
 */
export interface BudgetStore {
  available(now?: number): boolean;
  tryAcquire(key: string, max: number, intervalMs: number, staleMs: number, pollMs?: number): Promise<AcquireOutcome>;
  release(key: string, id: string): Promise<void>;
  pause(key: string, ms: number): Promise<void>;
}

export type AcquireOutcome = { id: string; waitMs: 0 } | { id: null; waitMs: number; reason: "paused" | "full" | "in-flight" };

interface SharedRollingLimiterOptions {
  store: BudgetStore;
  /** The budget's key, e.g. `${baseUrl}|${clientId}` (+ `|search`). */
  key: string;
  /** The in-process limiter of the same budget: kept in front, and used alone when PostgreSQL fails. */
  local: PortalLimiter;
  clock: LimiterClock;
  /** An in-flight slot older than this belongs to a process that died (e.g. 2 × the request timeout). */
  staleMs: number;
  /** How long to wait when every slot is in flight (default: a twentieth of the interval, 20–100 ms). */
  pollMs?: number;
}

/**
 * At most `max` requests in any rolling `intervalMs` across every process sharing the store, with
 * RollingLimiter's accounting (a request counts from its start until `intervalMs` after its
 * answer) and pauses.
 */
export class SharedRollingLimiter implements PortalLimiter {
  readonly intervalMs: number;
  readonly key: string;
  private maxValue: number;
  private readonly store: BudgetStore;
  private readonly local: PortalLimiter;
  private readonly clock: LimiterClock;
  private readonly staleMs: number;
  private readonly pollMs: number;
  /** This process's own knowledge of a pause (effective before the shared row is written). */
  private pausedUntil = 0;
  private readonly wakers = new Set<() => void>();

  constructor(opts: SharedRollingLimiterOptions) {
    this.store = opts.store;
    this.key = opts.key;
    this.local = opts.local;
    this.clock = opts.clock;
    this.staleMs = opts.staleMs;
    this.intervalMs = opts.local.intervalMs;
    this.maxValue = opts.local.max;
    this.pollMs = opts.pollMs ?? Math.max(20, Math.min(100, Math.floor(this.intervalMs / 20)));
  }

  get max(): number {
    return this.maxValue;
  }
  /** Lowered from X-HubSpot-RateLimit-Max: both limiters follow. */
  set max(v: number) {
    this.maxValue = v;
    this.local.max = v;
  }

  async acquire(signal?: AbortSignal): Promise<() => void> {
    const releaseLocal = await this.local.acquire(signal);
    try {
      for (;;) {
        if (signal?.aborted) throw abortError(signal);
        const now = this.clock.now();
        if (now < this.pausedUntil) {
          await this.clock.sleep(this.pausedUntil - now, signal);
          continue;
        }
        if (!this.store.available()) return releaseLocal; // PostgreSQL is failing: this process's budget only
        let outcome: AcquireOutcome;
        try {
          outcome = await this.store.tryAcquire(this.key, this.maxValue, this.intervalMs, this.staleMs, this.pollMs);
        } catch {
          return releaseLocal; // logged once by the store
        }
        if (outcome.id !== null) {
          const id = outcome.id;
          let done = false;
          return () => {
            if (done) return;
            done = true;
            releaseLocal();
            void this.store.release(this.key, id).then(() => {
              for (const w of [...this.wakers]) w();
            });
          };
        }
        await this.wait(outcome.waitMs, outcome.reason === "in-flight", signal);
      }
    } catch (e) {
      releaseLocal();
      throw e;
    }
  }

  /** No request before now + ms, in every process sharing the store. */
  pause(ms: number): void {
    this.pausedUntil = Math.max(this.pausedUntil, this.clock.now() + ms);
    this.local.pause(ms);
    void this.store.pause(this.key, ms);
  }

  /** Sleeps `ms`; a wait for in-flight slots also ends when this process releases one. */
  private async wait(ms: number, wakeOnRelease: boolean, signal?: AbortSignal): Promise<void> {
    if (!wakeOnRelease) {
      await this.clock.sleep(ms, signal);
      return;
    }
    const wake = new AbortController();
    const waker = () => wake.abort();
    this.wakers.add(waker);
    try {
      await this.clock.sleep(ms, signal ? AbortSignal.any([signal, wake.signal]) : wake.signal);
    } finally {
      this.wakers.delete(waker);
    }
  }
}

function abortError(signal: AbortSignal): Error {
  const reason = signal.reason as unknown;
  return reason instanceof Error ? reason : new Error("the read was aborted");
}
