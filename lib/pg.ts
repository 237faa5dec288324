/** PostgreSQL pools with an error listener (an idle connection drop must not crash the process). */
import pg from "pg";
import { logger, redactUrl } from "./log.ts";

export function createPool(url: string, opts: pg.PoolConfig = {}): pg.Pool {
  const pool = new pg.Pool({ connectionString: url, max: 4, idleTimeoutMillis: 30_000, connectionTimeoutMillis: 10_000, ...opts });
  pool.on("error", (err) => logger.warn({ component: "pg", db: redactUrl(url), err: err.message }, "idle PostgreSQL connection failed; the pool will reconnect"));
  // A checked-out client whose connection drops (a server restart, pg_terminate_backend) emits
  // "error" too: without a listener that would crash the process. The query in flight fails and
  // is retried by its caller.
  pool.on("connect", (client) => {
    client.on("error", (err) => logger.warn({ component: "pg", db: redactUrl(url), err: err.message }, "PostgreSQL connection lost; the query in flight is retried"));
  });
  return pool;
}

/** Quotes an SQL identifier. */
export function ident(name: string): string {
  return `"${name.replace(/"/g, '""')}"`;
}

/** Quotes a possibly schema-qualified name given as `schema.table` or `table`. */
export function qualified(name: string): string {
  const parts = name.split(".");
  return parts.map(ident).join(".");
}

/** Quotes an SQL string literal. */
export function literal(value: string): string {
  return `'${value.replace(/'/g, "''")}'`;
}
