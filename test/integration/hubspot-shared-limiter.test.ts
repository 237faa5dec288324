/**
 * Rate limits shared by every producer worker process through PostgreSQL
 * (producers/shared-rate-limiter.ts), against the real PostgreSQL (a throwaway database) and, for
 * the processes, the HubSpot simulator on the real clock:
 *  - two worker processes calling one portal with a budget of 10 per 10 s get no 429 and take the
 *    time the shared budget needs; the control, with `rateLimits.shared: false` (each process
 *    counts its own budget), gets 429s;
 *  - the store itself: concurrent acquires from two pools never exceed the budget in any interval,
 *    pauses reach the other pool, a crashed holder's in-flight slot is reclaimed, an abort ends a
 *    wait, concurrent first starts create the schema once, and a PostgreSQL outage falls back to
 *    the in-process limiter with one warning.
 */
import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Logger } from "../../lib/log.ts";
import { RollingLimiter, realClock } from "../../producers/connectors/hubspot/limits.ts";
import { SharedRollingLimiter } from "../../producers/shared-rate-limiter.ts";
import { RATE_SLOTS_TABLE, SharedRateLimitStore } from "../../producers/shared-rate-store.ts";
import { startHubSpotSimulator, type HubSpotSimulator } from "../../simulators/hubspot/server.ts";
import { demoData } from "../../support/hubspot.ts";
import { adminUrl, dbUrl, ensureDatabase, uniqueId } from "../../support/env.ts";
import type { ChildOptions, ChildResult } from "../../support/hubspot-limiter-child.ts";

const CHILD = fileURLToPath(new URL("../../support/hubspot-limiter-child.ts", import.meta.url));
const SCHEMA = "qobra_data";
const database = uniqueId("qs_ratelimit_");
const url = dbUrl(database);
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
/** `p`, or a failure after `ms` (a limiter that never grants must fail the test, not hang it). */
const within = <T>(ms: number, p: Promise<T>): Promise<T> => {
  let timer: ReturnType<typeof setTimeout> | undefined;
  return Promise.race([
    p,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no slot within ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
};

beforeAll(async () => {
  await ensureDatabase(database);
});
afterAll(async () => {
  const c = new pg.Client({ connectionString: adminUrl });
  await c.connect();
  try {
    // A closed pool's backends may take a moment to go; FORCE would make their clients log a lost connection.
    for (let i = 0; i < 40 && Number((await c.query("SELECT count(*) AS n FROM pg_stat_activity WHERE datname = $1", [database])).rows[0].n) > 0; i++)
      await sleep(50);
    await c.query(`DROP DATABASE IF EXISTS "${database}" WITH (FORCE)`);
  } finally {
    await c.end();
  }
});

/** Starts one worker process per entry, lets them go together once all are ready, and collects their results. */
async function runWorkers(options: ChildOptions[]): Promise<ChildResult[]> {
  const children = options.map((o) => {
    const child = spawn(process.execPath, [CHILD, JSON.stringify(o)], {
      stdio: ["pipe", "pipe", "pipe"],
      env: { ...process.env, QOBRA_SYNC_LOG_LEVEL: "warn" },
    });
    let stderr = "";
    child.stderr.on("data", (d: Buffer) => {
      stderr += d.toString();
    });
    const messages: unknown[] = [];
    const waiters: Array<() => void> = [];
    let buf = "";
    child.stdout.on("data", (d: Buffer) => {
      buf += d.toString();
      let i: number;
      while ((i = buf.indexOf("\n")) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        if (line.startsWith("@@")) {
          messages.push(JSON.parse(line.slice(2)));
          for (const w of waiters.splice(0)) w();
        }
      }
    });
    const exited = new Promise<number>((resolve) =>
      child.on("exit", (code) => {
        for (const w of waiters.splice(0)) w();
        resolve(code ?? -1);
      }),
    );
    let done = false;
    void exited.then(() => {
      done = true;
    });
    const next = async (n: number): Promise<Record<string, unknown>> => {
      while (messages.length < n) {
        if (done) throw new Error(`worker ${child.pid} exited early: ${stderr}`);
        await new Promise<void>((r) => waiters.push(r));
      }
      const m = messages[n - 1] as Record<string, unknown>;
      if (m.error) throw new Error(`worker ${child.pid} failed: ${String(m.error)}`);
      return m;
    };
    return { child, next, exited };
  });
  try {
    await within(30_000, Promise.all(children.map((c) => c.next(1)))); // ready: token fetched, store set up
    for (const c of children) c.child.stdin.write("go\n");
    const results = await within(60_000, Promise.all(children.map((c) => c.next(2))));
    await within(10_000, Promise.all(children.map((c) => c.exited)));
    return results as unknown as ChildResult[];
  } finally {
    for (const c of children) if (c.child.exitCode === null) c.child.kill("SIGKILL");
  }
}

describe("two worker processes sharing a portal's budget of 10 per 10 s", () => {
  const CALLS = 10; // per process: 20 in all, twice the budget
  let sim: HubSpotSimulator;
  const options = (shared: boolean): ChildOptions => ({
    baseUrl: sim.url,
    clientId: "demo-client-id",
    clientSecret: "demo-client-secret",
    refreshToken: "demo-refresh-token",
    calls: CALLS,
    perTenSeconds: 10,
    shared,
    databaseUrl: url,
    schema: SCHEMA,
  });

  beforeAll(async () => {
    const data = demoData();
    data.portal!.rateLimits = { tenSecondly: 10, intervalMs: 10_000 };
    sim = await startHubSpotSimulator({ data }); // the real clock: two processes, one budget
  });
  afterAll(async () => {
    await sim.close();
  });

  it("shared through PostgreSQL: no 429, every call succeeds, and the calls take the time the shared budget needs", async () => {
    sim.resetRateLimits();
    sim.resetStats();
    const t0 = Date.now();
    const results = await runWorkers([options(true), options(true)]);
    const wall = Date.now() - t0;
    const attempts = results.flatMap((r) => r.attempts);
    const elapsed = Math.max(...attempts.map((a) => a.end)) - Math.min(...attempts.map((a) => a.start));
    console.log(
      `shared: ${attempts.length} requests in ${elapsed} ms (wall ${wall} ms), simulator 429s: ${sim.stats().rateLimited}, stores: ${JSON.stringify(results.map((r) => r.store))}`,
    );
    expect(sim.stats().rateLimited).toBe(0);
    expect(results.map((r) => r.failed)).toEqual([[], []]);
    expect(results.map((r) => r.ok)).toEqual([CALLS, CALLS]);
    expect(results.map((r) => r.api.rateLimited)).toEqual([0, 0]);
    expect(attempts).toHaveLength(2 * CALLS);
    // Each process went through PostgreSQL for every call (no fallback to its own budget).
    for (const r of results) {
      expect(r.store.failures).toBe(0);
      expect(r.store.acquired).toBe(CALLS);
    }
    // 20 requests with 10 per rolling 10 s: the 11th cannot start before the 1st was answered + 10 s.
    expect(elapsed).toBeGreaterThanOrEqual(Math.floor((2 * CALLS - 1) / 10) * 10_000);
    // ...and at every instant at most 10 requests counting (from their start until 10 s after their answer),
    // across both processes: the maximum is reached at some request's start.
    for (const r of attempts) expect(attempts.filter((x) => x.start <= r.start && x.end + 10_000 > r.start).length).toBeLessThanOrEqual(10);
  });

  it("control: the same with `rateLimits.shared: false` (each process counts its own budget) gets 429s", async () => {
    sim.resetRateLimits();
    sim.resetStats();
    const t0 = Date.now();
    const results = await runWorkers([options(false), options(false)]);
    console.log(
      `not shared: ${results.flatMap((r) => r.attempts).length} requests in ${Date.now() - t0} ms (wall), simulator 429s: ${sim.stats().rateLimited}`,
    );
    expect(sim.stats().rateLimited).toBeGreaterThan(0);
    expect(results.reduce((n, r) => n + r.api.rateLimited, 0)).toBe(sim.stats().rateLimited);
    for (const r of results) expect(r.store).toEqual({ acquired: 0, waits: 0, failures: 0 }); // PostgreSQL never consulted
  });
});

describe("SharedRateLimitStore", () => {
  const stores: SharedRateLimitStore[] = [];
  const newStore = (opts: Partial<ConstructorParameters<typeof SharedRateLimitStore>[0]> = {}) => {
    const s = new SharedRateLimitStore({ databaseUrl: url, schema: SCHEMA, ...opts });
    stores.push(s);
    return s;
  };
  const limiter = (store: SharedRateLimitStore, key: string, max: number, intervalMs: number, staleMs = 60_000) =>
    new SharedRollingLimiter({ store, key, local: new RollingLimiter(max, intervalMs, realClock), clock: realClock, staleMs });
  afterAll(async () => {
    await Promise.all(stores.map((s) => s.close()));
  });

  it("creates its tables and function once when many processes start at the same time", async () => {
    const schema = uniqueId("rl_");
    await Promise.all(Array.from({ length: 6 }, () => newStore({ schema }).ready()));
    const c = new pg.Client({ connectionString: url });
    await c.connect();
    try {
      const t = await c.query("SELECT table_name FROM information_schema.tables WHERE table_schema = $1 ORDER BY 1", [schema]);
      expect(t.rows.map((r) => r.table_name)).toEqual(["_qobra_sync_rate_pauses", "_qobra_sync_rate_slots"]);
    } finally {
      await c.end();
    }
  });

  it("never lets two pools exceed the budget in any interval (a request counts from its start until an interval after its answer)", async () => {
    const key = `k-${uniqueId()}`;
    const a = limiter(newStore(), key, 3, 500);
    const b = limiter(newStore(), key, 3, 500);
    const log: Array<{ start: number; end: number }> = [];
    const t0 = Date.now();
    await Promise.all(
      Array.from({ length: 12 }, async (_, i) => {
        const release = await (i % 2 === 0 ? a : b).acquire();
        const start = Date.now();
        await sleep(5 + ((i * 7) % 30)); // the "request"
        const end = Date.now();
        release();
        log.push({ start, end });
      }),
    );
    const took = Date.now() - t0;
    // At each request's start, at most 3 requests are counting: started at or before it, answered less than 500 ms before.
    for (const r of log) {
      const counting = log.filter((x) => x.start <= r.start && x.end + 500 > r.start).length;
      expect(counting).toBeLessThanOrEqual(3);
    }
    expect(took).toBeGreaterThanOrEqual(3 * 500); // 12 requests, 3 per 500 ms: at least three waits
  });

  it("honours a pause set through another pool", async () => {
    const key = `k-${uniqueId()}`;
    await newStore().pause(key, 800);
    const t0 = Date.now();
    const release = await within(5000, limiter(newStore(), key, 5, 1000).acquire());
    release();
    expect(Date.now() - t0).toBeGreaterThanOrEqual(700);
  });

  it("reclaims the in-flight slot of a holder that crashed, after the stale limit", async () => {
    const key = `k-${uniqueId()}`;
    const crashed = newStore({ holder: "crashed-worker" });
    const first = await crashed.tryAcquire(key, 1, 1000, 600);
    expect(first.id).not.toBeNull(); // never released: its process "died" mid-request
    const t0 = Date.now();
    const release = await within(5000, limiter(newStore(), key, 1, 1000, 600).acquire());
    const waited = Date.now() - t0;
    release();
    expect(waited).toBeGreaterThanOrEqual(450);
    expect(waited).toBeLessThan(3000);
    const c = new pg.Client({ connectionString: url });
    await c.connect();
    try {
      const r = await c.query(`SELECT holder FROM "${SCHEMA}"."${RATE_SLOTS_TABLE}" WHERE key = $1`, [key]);
      expect(r.rows.map((x) => x.holder)).not.toContain("crashed-worker");
    } finally {
      await c.end();
    }
  });

  it("rejects an acquire whose signal aborts while it waits for the shared budget", async () => {
    const key = `k-${uniqueId()}`;
    (await limiter(newStore(), key, 1, 10_000).acquire())(); // another process spends the budget for 10 s
    const store = newStore();
    const l = limiter(store, key, 1, 10_000);
    const ac = new AbortController();
    const t0 = Date.now();
    setTimeout(() => ac.abort(new Error("stop now")), 200);
    await expect(l.acquire(ac.signal)).rejects.toThrow("stop now");
    expect(Date.now() - t0).toBeLessThan(1500);
    expect(store.stats).toMatchObject({ acquired: 0, failures: 0 });
    expect(store.stats.waits).toBeGreaterThanOrEqual(1); // it was waiting on PostgreSQL's answer, not on its own budget
  });

  it("falls back to the in-process limiter when PostgreSQL fails, with one warning, and does not hang", async () => {
    const warnings: string[] = [];
    const log = {
      warn: (_o: unknown, msg: string) => {
        warnings.push(msg);
      },
      info: () => {},
    } as unknown as Logger;
    const down = newStore({ databaseUrl: "postgres://postgres@127.0.0.1:1/nowhere", log });
    const l = limiter(down, "k-down", 2, 400);
    const t0 = Date.now();
    for (let i = 0; i < 4; i++) (await l.acquire())();
    // the in-process budget still applies: 4 requests at 2 per 400 ms
    expect(Date.now() - t0).toBeGreaterThanOrEqual(400);
    expect(Date.now() - t0).toBeLessThan(5000);
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatch(/PostgreSQL failed/);
    expect(down.stats.failures).toBe(1); // then it is left alone for a while
  });
});
