/** PostgreSQL plumbing: pools with an error listener (an idle connection drop must not crash the process), transactions, quoting. */
import pg from "pg";
import { describeEndpoint, driverUrl } from "./endpoint.ts";
import { logger } from "./log.ts";

/**
 * A pool on a postgres:// URL. The URL reaches the driver with its user-info encoded (a password
 * with `#`, `/`, `?` or `@` stays a password, lib/endpoint.ts); log lines name host, port and
 * database only.
 */
export function createPool(url: string, opts: pg.PoolConfig = {}): pg.Pool {
  const db = describeEndpoint(url);
  const pool = new pg.Pool({ connectionString: driverUrl(url), max: 4, idleTimeoutMillis: 30_000, connectionTimeoutMillis: 10_000, ...opts });
  pool.on("error", (err) => logger.warn({ component: "pg", db, err: err.message }, "idle PostgreSQL connection failed; the pool will reconnect"));
  // A checked-out client whose connection drops (a server restart, pg_terminate_backend) emits
  // "error" too: without a listener that would crash the process. The query in flight fails and
  // is retried by its caller.
  pool.on("connect", (client) => {
    client.on("error", (err) => logger.warn({ component: "pg", db, err: err.message }, "PostgreSQL connection lost; the query in flight is retried"));
  });
  return pool;
}

/** Quotes an SQL identifier. */
export function ident(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

/** Quotes an SQL string literal. */
export function literal(value: string): string {
  return `'${value.replace(/'/g, "''")}'`;
}

/** Where a transaction runs: a pool (a client is taken and released), a client already taken, or anything that hands one out. */
export type TransactionSource = { connect(): Promise<pg.PoolClient> } | pg.PoolClient;

/**
 * Runs `fn` in one transaction: BEGIN (or `opts.begin`), then COMMIT, or ROLLBACK when `fn`
 * throws (the error is rethrown). A client taken from a pool is released afterwards; a client
 * passed in stays with its caller.
 */
export async function withTransaction<T>(db: TransactionSource, fn: (client: pg.PoolClient) => Promise<T>, opts: { begin?: string } = {}): Promise<T> {
  const owned = typeof (db as pg.PoolClient).release !== "function";
  const client = owned ? ((await db.connect()) as pg.PoolClient) : (db as pg.PoolClient);
  try {
    await client.query(opts.begin ?? "BEGIN");
    const result = await fn(client);
    await client.query("COMMIT");
    return result;
  } catch (e) {
    await client.query("ROLLBACK").catch(() => {});
    throw e;
  } finally {
    if (owned) client.release();
  }
}
