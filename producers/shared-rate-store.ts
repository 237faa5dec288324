/**
 * The PostgreSQL side of the rate limits shared by every producer worker process: the store
 * (`SharedRateLimitStore`) and the SQL it installs. It is kept apart from the limiter
 * (shared-rate-limiter.ts) because the limiter only needs the `BudgetStore` operations, while this
 * file owns a pool, the schema and the outage bookkeeping; only the producer worker opens one.
 *
 * Producer workers may run in several processes (tasks on sync.tasks are taken by any of them), so
 * a source API budget counted in memory (RollingLimiter in connectors/hubspot/limits.ts) would be
 * spent N times over by N processes. The store keeps the budget's recent requests in the sink
 * database, next to the sink's offsets (`<sink.schema>._qobra_sync_*`), which every producer worker
 * can already reach through `sink.databaseUrl`:
 *
 *  - `<schema>._qobra_sync_rate_slots (key, id, started_at, answered_at, holder)`: one row per
 *    request of a budget (`key`), from its start until `intervalMs` after its answer arrived
 *    (`answered_at`, null while in flight): the same accounting as RollingLimiter;
 *  - `<schema>._qobra_sync_rate_pauses (key, until)`: no request of the budget before `until`
 *    (a 429's Retry-After, an exhausted budget);
 *  - `<schema>._qobra_sync_rate_acquire(...)`: one round trip that takes the budget's
 *    transaction-scoped advisory lock, forgets answered slots older than the interval and
 *    in-flight slots older than `staleMs` (their process died), honours the pause, and either
 *    inserts a slot (its id) or says how long to wait. Every time is PostgreSQL's
 *    `clock_timestamp()`, so processes on different machines share one clock.
 *
 * When PostgreSQL fails, the store says so (`available()`) for a while and logs one warning per
 * outage; the limiters then count in-process only. The PostgreSQL pieces come from lib/pg.ts.
 */
import { hostname } from "node:os";
import type pg from "pg";
import { logger, type Logger } from "../lib/log.ts";
import { createPool, ident } from "../lib/pg.ts";
import type { AcquireOutcome, BudgetStore } from "./shared-rate-limiter.ts";

export const RATE_SLOTS_TABLE = "_qobra_sync_rate_slots";
const RATE_PAUSES_TABLE = "_qobra_sync_rate_pauses";
const RATE_ACQUIRE_FUNCTION = "_qobra_sync_rate_acquire";

/** After a PostgreSQL failure, calls use the in-process limiter alone for this long before trying again. */
const RETRY_AFTER_FAILURE_MS = 5_000;

interface SharedRateLimitStoreOptions {
  /** A pool on the sink database; else one is made from `databaseUrl` (and closed by close()). */
  pool?: pg.Pool;
  databaseUrl?: string;
  /** The sink schema (`sink.schema`): the tables and the function live there. */
  schema: string;
  /** Who holds the slots (diagnostics); default host:pid. */
  holder?: string;
  log?: Logger;
  /** Milliseconds between the failure of PostgreSQL and the next attempt to use it (default 5 s). */
  retryAfterFailureMs?: number;
}

function ddl(schema: string): string[] {
  const s = ident(schema);
  const slots = `${s}.${ident(RATE_SLOTS_TABLE)}`;
  const pauses = `${s}.${ident(RATE_PAUSES_TABLE)}`;
  return [
    `CREATE SCHEMA IF NOT EXISTS ${s}`,
    `CREATE TABLE IF NOT EXISTS ${slots} (
       key text NOT NULL,
       id bigserial NOT NULL,
       started_at timestamptz NOT NULL,
       answered_at timestamptz NULL,
       holder text NOT NULL,
       PRIMARY KEY (key, id))`,
    `CREATE TABLE IF NOT EXISTS ${pauses} (key text PRIMARY KEY, until timestamptz NOT NULL)`,
    `CREATE OR REPLACE FUNCTION ${s}.${ident(RATE_ACQUIRE_FUNCTION)}(
       p_key text, p_max integer, p_interval_ms integer, p_stale_ms integer, p_poll_ms integer, p_holder text)
     RETURNS TABLE (slot_id bigint, wait_ms integer, reason text)
     LANGUAGE plpgsql AS $fn$
     DECLARE
       v_now timestamptz;
       v_until timestamptz;
       v_used integer;
       v_oldest timestamptz;
       v_id bigint;
     BEGIN
       PERFORM pg_advisory_xact_lock(hashtext('qobra-sync:rate:' || p_key));
       v_now := clock_timestamp();
       DELETE FROM ${slots} AS sl WHERE sl.key = p_key AND (
         (sl.answered_at IS NOT NULL AND sl.answered_at <= v_now - p_interval_ms * interval '1 millisecond')
         OR (sl.answered_at IS NULL AND sl.started_at <= v_now - p_stale_ms * interval '1 millisecond'));
       SELECT pa.until INTO v_until FROM ${pauses} AS pa WHERE pa.key = p_key;
       IF v_until IS NOT NULL AND v_until > v_now THEN
         RETURN QUERY SELECT NULL::bigint, greatest(1, ceil(extract(epoch FROM v_until - v_now) * 1000))::integer, 'paused'::text;
         RETURN;
       END IF;
       SELECT count(*), min(sl.answered_at) INTO v_used, v_oldest FROM ${slots} AS sl WHERE sl.key = p_key;
       IF v_used < p_max THEN
         INSERT INTO ${slots} (key, started_at, holder) VALUES (p_key, v_now, p_holder) RETURNING id INTO v_id;
         RETURN QUERY SELECT v_id, 0, NULL::text;
         RETURN;
       END IF;
       IF v_oldest IS NULL THEN
         -- every slot is in flight: ask again shortly (an answer frees nothing before its interval, but
         -- its answered_at tells the next call exactly how long to wait)
         RETURN QUERY SELECT NULL::bigint, p_poll_ms, 'in-flight'::text;
         RETURN;
       END IF;
       RETURN QUERY SELECT NULL::bigint,
         greatest(1, ceil(extract(epoch FROM v_oldest + p_interval_ms * interval '1 millisecond' - v_now) * 1000) + 1)::integer, 'full'::text;
     END
     $fn$`,
  ];
}

/** The PostgreSQL side of the shared limiters: one per process (it owns a small pool). */
export class SharedRateLimitStore implements BudgetStore {
  readonly schema: string;
  readonly holder: string;
  /** Slots taken in PostgreSQL, answers that said to wait, and PostgreSQL failures (each made a call use the in-process limiter alone). */
  readonly stats = { acquired: 0, waits: 0, failures: 0 };
  private readonly pool: pg.Pool;
  private readonly ownsPool: boolean;
  private readonly log: Logger;
  private readonly retryAfterFailureMs: number;
  private readyP: Promise<void> | null = null;
  /** While PostgreSQL is failing: when to try it again. */
  private unavailableUntil = 0;
  private outage = false;
  private closed = false;
  private readonly pending = new Set<Promise<unknown>>();

  constructor(opts: SharedRateLimitStoreOptions) {
    if (!opts.pool && !opts.databaseUrl) throw new Error("SharedRateLimitStore needs a pool or a databaseUrl");
    this.schema = opts.schema;
    this.holder = opts.holder ?? `${hostname()}:${process.pid}`;
    this.log = opts.log ?? logger.child({ component: "rate-limits" });
    this.retryAfterFailureMs = opts.retryAfterFailureMs ?? RETRY_AFTER_FAILURE_MS;
    this.ownsPool = !opts.pool;
    this.pool =
      opts.pool ??
      createPool(opts.databaseUrl!, {
        max: 4,
        connectionTimeoutMillis: 2_000,
        statement_timeout: 5_000,
        query_timeout: 6_000,
        application_name: "qobra-sync rate limits",
      });
  }

  /** Creates the tables and the function once (idempotent; concurrent starts are serialised by an advisory lock). */
  ready(): Promise<void> {
    if (!this.readyP) {
      const p = this.setup();
      this.readyP = p;
      p.catch(() => {
        if (this.readyP === p) this.readyP = null;
      });
    }
    return this.readyP;
  }

  private async setup(): Promise<void> {
    const client = await this.pool.connect();
    let broken: Error | undefined;
    try {
      await client.query("BEGIN");
      // The sink's schema lock (consumers/sink/run.ts): CREATE SCHEMA / TABLE IF NOT EXISTS race otherwise.
      await client.query("SELECT pg_advisory_xact_lock(hashtext('qobra-sync:sink-schema'))");
      for (const sql of ddl(this.schema)) await client.query(sql);
      await client.query("COMMIT");
    } catch (e) {
      await client.query("ROLLBACK").catch((err: Error) => {
        broken = err;
      });
      throw e;
    } finally {
      client.release(broken); // a connection that cannot even roll back leaves the pool
    }
  }

  /** False for a while after PostgreSQL failed: callers use their in-process limiter alone. */
  available(now = Date.now()): boolean {
    return !this.closed && now >= this.unavailableUntil;
  }

  /** Takes a slot of budget `key` (at most `max` per `intervalMs`), or says how long to wait. Throws when PostgreSQL fails. */
  async tryAcquire(key: string, max: number, intervalMs: number, staleMs: number, pollMs = 100): Promise<AcquireOutcome> {
    try {
      await this.ready();
      const r = await this.pool.query<{ slot_id: string | null; wait_ms: number; reason: string | null }>(
        `SELECT slot_id, wait_ms, reason FROM ${ident(this.schema)}.${ident(RATE_ACQUIRE_FUNCTION)}($1, $2, $3, $4, $5, $6)`,
        [key, Math.max(1, Math.floor(max)), Math.round(intervalMs), Math.round(staleMs), Math.round(pollMs), this.holder],
      );
      this.succeeded();
      const row = r.rows[0]!;
      if (row.slot_id !== null) {
        this.stats.acquired++;
        return { id: String(row.slot_id), waitMs: 0 };
      }
      this.stats.waits++;
      return { id: null, waitMs: Number(row.wait_ms), reason: (row.reason ?? "full") as "paused" | "full" | "in-flight" };
    } catch (e) {
      this.failed(e, "taking a rate-limit slot");
      throw e;
    }
  }

  /** The request of slot `id` got its answer: it keeps counting for one interval from now. */
  release(key: string, id: string): Promise<void> {
    return this.track(
      this.pool.query(`UPDATE ${ident(this.schema)}.${ident(RATE_SLOTS_TABLE)} SET answered_at = clock_timestamp() WHERE key = $1 AND id = $2`, [key, id]).then(
        () => {
          this.succeeded();
        },
        (e: unknown) => {
          this.failed(e, "releasing a rate-limit slot");
        },
      ),
    );
  }

  /** No request of budget `key` before now + ms (PostgreSQL's now; an existing later pause stays). */
  pause(key: string, ms: number): Promise<void> {
    const pauses = `${ident(this.schema)}.${ident(RATE_PAUSES_TABLE)}`;
    return this.track(
      this.ready()
        .then(() =>
          this.pool.query(
            `INSERT INTO ${pauses} AS p (key, until) VALUES ($1, clock_timestamp() + $2 * interval '1 millisecond')
       ON CONFLICT (key) DO UPDATE SET until = greatest(p.until, EXCLUDED.until)`,
            [key, Math.max(0, Math.round(ms))],
          ),
        )
        .then(
          () => {
            this.succeeded();
          },
          (e: unknown) => {
            this.failed(e, "pausing a rate limit");
          },
        ),
    );
  }

  /** Waits for the releases and pauses in progress, then closes the pool (when the store made it). */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.allSettled([...this.pending]);
    if (this.ownsPool) await this.pool.end().catch(() => {});
  }

  private track(p: Promise<void>): Promise<void> {
    this.pending.add(p);
    void p.finally(() => this.pending.delete(p));
    return p;
  }

  private succeeded(): void {
    if (this.outage) {
      this.outage = false;
      this.log.info({ schema: this.schema }, "shared rate limits: PostgreSQL answers again; the budget is shared by every worker process again");
    }
  }

  private failed(e: unknown, what: string): void {
    this.stats.failures++;
    this.unavailableUntil = Date.now() + this.retryAfterFailureMs;
    this.readyP = null; // the next attempt sets the schema up again (a dropped schema, a rebuilt database)
    if (this.outage || this.closed) return;
    this.outage = true;
    this.log.warn(
      { schema: this.schema, err: (e as Error)?.message ?? String(e) },
      `shared rate limits: PostgreSQL failed while ${what}; each process counts its own budget until it answers again (429s are possible meanwhile, and retried)`,
    );
  }
}
