/**
 * The one retry helper. Every loop that tries again (a source's HTTP call, a token refresh, the
 * sink's schema set-up, a producer run's table read) goes through `retry` with a named policy, so
 * the backoff, the jitter, the time budget and the retry decision are written once.
 *
 * The decision is the error's type, never its message: `EtlError.retriable` by default (see
 * lib/errors.ts), or a `policyOf` function that picks a policy per error class (HubSpot retries a
 * 429 more often than a 5xx, and waits the server's Retry-After). Attempts are counted per policy,
 * so one failure class cannot use up another's retries.
 */
import { EtlError } from "./errors.ts";

export interface RetryPolicy {
  /** Retries after the first attempt (the call runs at most retries + 1 times). */
  retries: number;
  /** The first wait; each retry doubles it, up to maxMs. The wait is jittered in [half, whole]. */
  initialMs: number;
  maxMs: number;
  /** No retry once this long has passed since the first failure (a time budget; none by default). */
  maxElapsedMs?: number;
}

/** For infrastructure a process needs to start (the sink database, the registry): about a minute. */
export const DEFAULT_RETRY: RetryPolicy = { retries: 8, initialMs: 200, maxMs: 10_000 };

export interface RetryOptions {
  /**
   * The policy for this error, or undefined to throw it at once. Default: `policy` for an
   * EtlError whose `retriable` is true, undefined for anything else.
   */
  policyOf?: (e: unknown) => RetryPolicy | undefined;
  /** A wait the server asked for (Retry-After), used instead of the backoff when it answers a number. */
  waitFor?: (e: unknown) => number | undefined;
  /** Called before each wait (log it, count it, refresh a token). A throw ends the retries with that error. */
  onRetry?: (e: unknown, attempt: number, waitMs: number) => void | Promise<void>;
  signal?: AbortSignal;
  /** Injected by tests and by clients with their own clock. */
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
  now?: () => number;
}

export const sleep = (ms: number, signal?: AbortSignal): Promise<void> =>
  new Promise((resolve) => {
    if (signal?.aborted) {
      resolve();
      return;
    }
    const t = setTimeout(resolve, ms);
    signal?.addEventListener(
      "abort",
      () => {
        clearTimeout(t);
        resolve();
      },
      { once: true },
    );
  });

/** The jittered exponential wait before retry number `attempt` (1 for the first retry). */
export function backoffMs(attempt: number, policy: Pick<RetryPolicy, "initialMs" | "maxMs">, random: () => number = Math.random): number {
  const base = Math.min(policy.maxMs, policy.initialMs * 2 ** Math.max(0, attempt - 1));
  return Math.round(base / 2 + (random() * base) / 2);
}

/** True for errors that say they may succeed later (EtlError.retriable). */
export const isRetriable = (e: unknown): boolean => e instanceof EtlError && e.retriable;

/**
 * Runs `fn` until it succeeds, or throws an error that no policy retries, or a policy's retries
 * or time budget are spent (the last error is thrown then). `fn` gets the attempt number (0 first).
 */
export async function retry<T>(fn: (attempt: number) => Promise<T>, policy: RetryPolicy, opts: RetryOptions = {}): Promise<T> {
  const policyOf = opts.policyOf ?? ((e: unknown) => (isRetriable(e) ? policy : undefined));
  const wait = opts.sleep ?? sleep;
  const now = opts.now ?? Date.now;
  let firstFailure: number | undefined;
  const used = new Map<RetryPolicy, number>();
  for (let attempt = 0; ; attempt++) {
    try {
      return await fn(attempt);
    } catch (e) {
      const p = policyOf(e);
      if (!p || opts.signal?.aborted) throw e;
      const n = (used.get(p) ?? 0) + 1;
      if (n > p.retries) throw e;
      const waitMs = opts.waitFor?.(e) ?? backoffMs(n, p);
      firstFailure ??= now();
      if (p.maxElapsedMs !== undefined && now() - firstFailure + waitMs > p.maxElapsedMs) throw e;
      used.set(p, n);
      await opts.onRetry?.(e, n, waitMs);
      await wait(waitMs, opts.signal);
    }
  }
}
