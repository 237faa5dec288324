/**
 * What the PostgreSQL source refuses to do to a customer's database, beside the WHERE allowlist:
 *  - read as a role that can reach the server's programs or files (a superuser, or a member of
 *    pg_execute_server_program, pg_write_server_files or pg_read_server_files): READ ONLY stops
 *    writes to tables, not COPY … TO PROGRAM, so any function running inside the read (one planted
 *    by someone else, say) would run with those rights. Refused unless connection.allowSuperuser.
 *  - hold a snapshot for longer than connection.readTimeoutSeconds: statement_timeout bounds a
 *    statement, not the read. ReadDeadline bounds the whole transaction: each statement runs with
 *    statement_timeout capped to the time left (plus a second); at the deadline a timer cancels the
 *    statement in flight with pg_cancel_backend from a second connection, or, when the read is
 *    idle between pages (the consumer still publishing), rolls the transaction back at once. A
 *    statement that streams the whole read (COPY … TO STDOUT, copy-reader.ts) is in flight while
 *    the consumer holds a page: at the deadline it is cancelled, what the server still sends is
 *    dropped, and the ROLLBACK is queued behind it, so the snapshot goes without the consumer either.
 */
import type pg from "pg";
import { ConfigError } from "../../../lib/errors.ts";

/** The source account may run programs or touch the server's files: refused unless allowSuperuser. */
export class PrivilegedRoleError extends ConfigError {}

/**
 * The read outlasted readTimeoutSeconds. Not retriable: the same read would take as long again;
 * the limit or the condition must change.
 */
export class ReadTimeoutError extends ConfigError {}

const SERVER_ROLES = ["pg_execute_server_program", "pg_write_server_files", "pg_read_server_files"];

/** Why the connected role is too powerful to read with, or null. */
export async function privilegedRole(client: pg.Client): Promise<string | null> {
  const r = await client.query<{ superuser: string; groups: string | null }>(
    `SELECT r.rolsuper::pg_catalog.text AS superuser,
            (SELECT pg_catalog.string_agg(g.rolname::pg_catalog.text, ', ' ORDER BY g.rolname) FROM pg_catalog.pg_roles g
              WHERE g.rolname OPERATOR(pg_catalog.=) ANY ($1::pg_catalog.name[]) AND pg_catalog.pg_has_role(r.oid, g.oid, 'MEMBER')) AS groups
       FROM pg_catalog.pg_roles r WHERE r.rolname OPERATOR(pg_catalog.=) CURRENT_USER`,
    [SERVER_ROLES],
  );
  const row = r.rows[0];
  if (!row) return null;
  if (row.superuser === "true") return "is a superuser";
  return row.groups ? `is a member of ${row.groups}` : null;
}

/** The message for a role refused by privilegedRole: why, and the read-only role to create instead. */
export function privilegedRoleMessage(connectorId: string, why: string, sources: readonly string[]): string {
  return (
    `connector ${connectorId}: the connection's PostgreSQL role ${why}, and qobra-sync refuses to read with it: ` +
    "a READ ONLY transaction does not stop such a role from running programs or writing files on the database server (COPY … TO PROGRAM), " +
    "so any function that runs inside the read would run with those rights. Connect with a read-only role instead: " +
    `CREATE ROLE qobra_sync_reader LOGIN PASSWORD '…'; GRANT CONNECT ON DATABASE <database> TO qobra_sync_reader; ` +
    `GRANT USAGE ON SCHEMA <schema> TO qobra_sync_reader; GRANT SELECT ON ${sources.join(", ")} TO qobra_sync_reader; ` +
    "or, to accept the risk, set connection.allowSuperuser: true"
  );
}

/** Milliseconds granted to the server's own statement_timeout after the deadline, should the cancel fail. */
const BACKSTOP_MS = 1000;

interface DeadlineOptions {
  seconds: number;
  statementTimeoutMs: number;
  /** The error the read ends with once the deadline passed. */
  error: () => ReadTimeoutError;
  /** Cancels the statement running on a backend, from another connection. */
  cancel: (pid: number) => Promise<void>;
}

/** The total time limit of one read (one transaction); see the file header. */
export class ReadDeadline {
  private readonly client: pg.Client;
  private readonly opts: DeadlineOptions;
  private readonly expiresAt: number;
  private expired = false;
  private inFlight = false;
  /** The streaming statement in flight, if any (see run). */
  private stream: { discard(): void } | undefined;
  /** The timer's work (a cancel or a rollback) once it fired. */
  private expiring: Promise<void> | undefined;
  private readonly timer: NodeJS.Timeout;

  constructor(client: pg.Client, opts: DeadlineOptions) {
    this.client = client;
    this.opts = opts;
    this.expiresAt = Date.now() + opts.seconds * 1000;
    this.timer = setTimeout(() => {
      this.expiring = this.expire();
    }, opts.seconds * 1000);
    this.timer.unref();
  }

  /**
   * Runs one statement of the read with statement_timeout capped to the time left. `stream`: the
   * statement streams the whole read (COPY … TO STDOUT), so only the time left caps it (its reader
   * bounds each wait for the server by statementTimeoutMs), and at the deadline `stream.discard()`
   * drops what the server still sends, so that the statement ends and the ROLLBACK runs after it.
   */
  async run<T>(statement: () => Promise<T>, stream?: { discard(): void }): Promise<T> {
    if (this.expired) throw this.opts.error();
    this.inFlight = true;
    this.stream = stream;
    try {
      const left = Math.max(1, this.expiresAt - Date.now() + BACKSTOP_MS);
      await this.client.query(`SET LOCAL statement_timeout = ${stream ? left : Math.min(this.opts.statementTimeoutMs, left)}`);
      if (this.expired) throw this.opts.error();
      const result = await statement();
      if (this.expired) throw this.opts.error();
      return result;
    } catch (e) {
      throw this.expired ? this.opts.error() : e;
    } finally {
      this.inFlight = false;
      this.stream = undefined;
    }
  }

  /** Between pages: the read ends with the deadline's error once it passed. */
  async check(): Promise<void> {
    if (this.expired) throw this.opts.error();
  }

  /** Stops the timer (the read ended) and waits for its cancel or rollback, if it fired, to be done. */
  async stop(): Promise<void> {
    clearTimeout(this.timer);
    await this.expiring;
  }

  private async expire(): Promise<void> {
    this.expired = true;
    if (this.inFlight) {
      const pid = (this.client as unknown as { processID?: number }).processID;
      if (pid) await this.opts.cancel(pid).catch(() => {}); // statement_timeout remains, a second later
      const stream = this.stream;
      if (stream) {
        // The consumer may hold a page for long: end the statement and the transaction without it.
        stream.discard();
        await this.client.query("ROLLBACK").catch(() => {});
      }
    } else {
      // Idle between pages: end the transaction (and its snapshot) now, not when the consumer comes back.
      await this.client.query("ROLLBACK").catch(() => {});
    }
  }
}
