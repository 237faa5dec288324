/**
 * Client-side rate limiting of the HubSpot API, per portal: the rolling ten-secondly budget and the
 * CRM search per-second limit, counted in this process (RollingLimiter) or, when the worker has a
 * SharedRateLimitStore, across every worker process through PostgreSQL
 * (producers/shared-rate-limiter.ts, which owns the limiter interface both implement). The clock
 * is injectable: tests pass the simulator's, so nothing sleeps for real.
 */
import { SharedRollingLimiter, type BudgetStore, type LimiterClock, type PortalLimiter } from "../../shared-rate-limiter.ts";
import { abortError } from "./errors.ts";

/** The connector's notion of time: tests pass the simulator's clock, so nothing sleeps for real. */
export type HubSpotClock = LimiterClock;

export const realClock: HubSpotClock = {
  now: () => Date.now(),
  sleep: (ms, signal) =>
    new Promise((resolve) => {
      if (signal?.aborted) {
        resolve();
        return;
      }
      const t = setTimeout(done, Math.max(0, ms));
      function done() {
        signal?.removeEventListener("abort", done);
        clearTimeout(t);
        resolve();
      }
      signal?.addEventListener("abort", done, { once: true });
    }),
};

/**
 * At most `max` requests in any rolling `intervalMs`, counting a request from its start until
 * `intervalMs` after its answer arrived: the server counts arrivals, which lie between the two,
 * so network latency can never make the server see more than `max` in its window. Plus a pause
 * the server may ask for (Retry-After, an exhausted budget).
 */
export class RollingLimiter implements PortalLimiter {
  max: number;
  readonly intervalMs: number;
  private readonly clock: HubSpotClock;
  /** Answer times of recent requests; Infinity while a request is in flight. */
  private readonly slots: Array<{ t: number }> = [];
  private pausedUntil = 0;
  private released: Array<() => void> = [];

  constructor(max: number, intervalMs: number, clock: HubSpotClock) {
    this.max = max;
    this.intervalMs = intervalMs;
    this.clock = clock;
  }

  /** Waits for a slot; call the returned function when the answer has arrived. */
  async acquire(signal?: AbortSignal): Promise<() => void> {
    for (;;) {
      if (signal?.aborted) throw abortError(signal);
      const now = this.clock.now();
      for (let i = this.slots.length - 1; i >= 0; i--) if (this.slots[i]!.t <= now - this.intervalMs) this.slots.splice(i, 1);
      if (now >= this.pausedUntil && this.slots.length < this.max) {
        const slot = { t: Infinity };
        this.slots.push(slot);
        let done = false;
        return () => {
          if (done) return;
          done = true;
          slot.t = this.clock.now();
          for (const r of this.released.splice(0)) r();
        };
      }
      if (now < this.pausedUntil) {
        await this.clock.sleep(this.pausedUntil - now, signal);
        continue;
      }
      const answered = this.slots.filter((x) => x.t !== Infinity).map((x) => x.t);
      if (answered.length > 0) {
        await this.clock.sleep(Math.max(1, Math.min(...answered) + this.intervalMs + 1 - now), signal);
        continue;
      }
      // Every slot is in flight: wait for an answer.
      await new Promise<void>((resolve) => {
        const onAbort = () => resolve();
        this.released.push(() => {
          signal?.removeEventListener("abort", onAbort);
          resolve();
        });
        signal?.addEventListener("abort", onAbort, { once: true });
      });
    }
  }

  /** No request before now + ms (a 429's Retry-After, or an exhausted budget). */
  pause(ms: number): void {
    this.pausedUntil = Math.max(this.pausedUntil, this.clock.now() + ms);
  }
}

export interface PortalLimiters {
  standard: PortalLimiter;
  search: PortalLimiter;
}

/** One pair of limiters per portal (base URL + app) and clock, shared by every connector instance of the process. */
const limiterRegistry = new WeakMap<HubSpotClock, Map<string, { standard: RollingLimiter; search: RollingLimiter }>>();
/** The same over PostgreSQL, per store (one per producer worker process) and clock. */
const sharedRegistry = new WeakMap<BudgetStore, WeakMap<HubSpotClock, Map<string, PortalLimiters>>>();

/**
 * The limiters of a portal's budgets (`key` = base URL + app; the search budget's key adds
 * `|search`): with `shared`, counted in PostgreSQL across every worker process (the in-process
 * pair stays in front and takes over while PostgreSQL fails); else in this process only.
 */
export function portalLimiters(
  key: string,
  clock: HubSpotClock,
  limits: { perTenSeconds: number; searchPerSecond: number },
  shared?: { store: BudgetStore; staleMs: number },
): PortalLimiters {
  let byKey = limiterRegistry.get(clock);
  if (!byKey) limiterRegistry.set(clock, (byKey = new Map()));
  let l = byKey.get(key);
  if (!l) {
    l = { standard: new RollingLimiter(limits.perTenSeconds, 10_000, clock), search: new RollingLimiter(limits.searchPerSecond, 1000, clock) };
    byKey.set(key, l);
  }
  if (!shared) return l;
  let byClock = sharedRegistry.get(shared.store);
  if (!byClock) sharedRegistry.set(shared.store, (byClock = new WeakMap()));
  let sharedByKey = byClock.get(clock);
  if (!sharedByKey) byClock.set(clock, (sharedByKey = new Map()));
  let s = sharedByKey.get(key);
  if (!s) {
    const local = l;
    s = {
      standard: new SharedRollingLimiter({ store: shared.store, key, local: local.standard, clock, staleMs: shared.staleMs }),
      search: new SharedRollingLimiter({ store: shared.store, key: `${key}|search`, local: local.search, clock, staleMs: shared.staleMs }),
    };
    sharedByKey.set(key, s);
  }
  return s;
}
