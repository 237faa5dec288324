import { describe, expect, it } from "vitest";
import { ConfigError, SourceUnavailableError } from "../../lib/errors.ts";
import { backoffMs, retry, type RetryPolicy } from "../../lib/retry.ts";

/** A fake clock: sleeps advance it at once, and every wait is recorded. */
function fakeTime() {
  let t = 0;
  const waits: number[] = [];
  return {
    waits,
    now: () => t,
    sleep: async (ms: number) => {
      waits.push(ms);
      t += ms;
    },
  };
}

const FAST: RetryPolicy = { retries: 3, initialMs: 100, maxMs: 1_000 };

describe("retry", () => {
  it("retries a retriable error with growing jittered waits, then succeeds", async () => {
    const time = fakeTime();
    let calls = 0;
    const out = await retry(
      async () => {
        if (++calls < 3) throw new SourceUnavailableError("down");
        return "ok";
      },
      FAST,
      time,
    );
    expect(out).toBe("ok");
    expect(calls).toBe(3);
    expect(time.waits).toHaveLength(2);
    expect(time.waits[0]).toBeGreaterThanOrEqual(50);
    expect(time.waits[0]).toBeLessThanOrEqual(100);
    expect(time.waits[1]).toBeGreaterThanOrEqual(100);
    expect(time.waits[1]).toBeLessThanOrEqual(200);
  });

  it("throws a non-retriable error at once, whatever its message says", async () => {
    const time = fakeTime();
    let calls = 0;
    await expect(
      retry(
        async () => {
          calls++;
          throw new ConfigError("ECONNREFUSED timeout");
        },
        FAST,
        time,
      ),
    ).rejects.toBeInstanceOf(ConfigError);
    await expect(
      retry(
        async () => {
          calls++;
          throw new Error("ECONNREFUSED");
        },
        FAST,
        time,
      ),
    ).rejects.toThrow("ECONNREFUSED");
    expect(calls).toBe(2);
    expect(time.waits).toEqual([]);
  });

  it("gives up after the policy's retries with the last error", async () => {
    const time = fakeTime();
    let calls = 0;
    await expect(
      retry(
        async () => {
          throw new SourceUnavailableError(`down ${++calls}`);
        },
        FAST,
        time,
      ),
    ).rejects.toThrow("down 4");
    expect(time.waits).toHaveLength(3);
  });

  it("stops when the next wait would pass the time budget, counted from the first failure", async () => {
    const time = fakeTime();
    time.sleep(60_000); // an hour of work before the first failure does not use the budget
    time.waits.length = 0;
    let calls = 0;
    const policy: RetryPolicy = { retries: 1_000, initialMs: 1_000, maxMs: 1_000, maxElapsedMs: 5_000 };
    await expect(
      retry(
        async () => {
          calls++;
          throw new SourceUnavailableError("down");
        },
        policy,
        time,
      ),
    ).rejects.toThrow("down");
    expect(time.now() - 60_000).toBeLessThanOrEqual(5_000);
    expect(calls).toBeGreaterThanOrEqual(5);
    expect(calls).toBeLessThanOrEqual(11);
  });

  it("counts attempts per policy and waits what the server asked for", async () => {
    const time = fakeTime();
    class Limited extends SourceUnavailableError {
      readonly retryAfterMs: number;
      constructor(ms: number) {
        super("429");
        this.retryAfterMs = ms;
      }
    }
    const RATE: RetryPolicy = { retries: 5, initialMs: 1, maxMs: 1 };
    const TRANSIENT: RetryPolicy = { retries: 1, initialMs: 10, maxMs: 10 };
    const script = [new Limited(2_000), new Limited(3_000), new SourceUnavailableError("503"), new Limited(1_000)];
    let calls = 0;
    const out = await retry(
      async () => {
        const e = script[calls++];
        if (e) throw e;
        return calls;
      },
      TRANSIENT,
      {
        ...time,
        policyOf: (e) => (e instanceof Limited ? RATE : e instanceof SourceUnavailableError ? TRANSIENT : undefined),
        waitFor: (e) => (e instanceof Limited ? e.retryAfterMs : undefined),
      },
    );
    expect(out).toBe(5);
    expect(time.waits[0]).toBe(2_000);
    expect(time.waits[1]).toBe(3_000);
    expect(time.waits[3]).toBe(1_000);
  });

  it("lets onRetry see each retry, and stops when the signal is aborted", async () => {
    const time = fakeTime();
    const seen: number[] = [];
    const ac = new AbortController();
    await expect(
      retry(
        async () => {
          throw new SourceUnavailableError("down");
        },
        FAST,
        {
          ...time,
          signal: ac.signal,
          onRetry: (_e, n) => {
            seen.push(n);
            if (n === 2) ac.abort();
          },
        },
      ),
    ).rejects.toThrow("down");
    expect(seen).toEqual([1, 2]);
  });

  it("backoff doubles up to the cap", () => {
    const p = { initialMs: 100, maxMs: 500 };
    expect([1, 2, 3, 4, 5].map((n) => backoffMs(n, p, () => 1))).toEqual([100, 200, 400, 500, 500]);
    expect(backoffMs(1, p, () => 0)).toBe(50);
  });
});
