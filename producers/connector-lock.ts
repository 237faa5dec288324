/**
 * A connector's run lock: a PostgreSQL session advisory lock in the sink database, held by the
 * worker whose run reads the connector, for the whole run. Requests keyed by connector already
 * give each connector one member of the producer group at a time; the lock covers the moments the
 * group cannot: a run that is still ending (its partition just moved, or its process was paused
 * past its session timeout and resumed) while the partition's new owner starts the same connector.
 * The new run waits for the lock; a process that dies releases it with its connection.
 *
 * The lock's key is a 64-bit hash of the topic prefix and the connector's pipeline id; connections
 * are named `qobra-sync producer <host>:<pid>` (application_name), so an operator sees who holds a
 * lock in pg_stat_activity, and the waiting worker logs it.
 */
import { createHash } from "node:crypto";
import { hostname } from "node:os";
import type pg from "pg";
import { describeError } from "../lib/errors.ts";
import type { logger } from "../lib/log.ts";
import { sleep } from "../lib/retry.ts";

export interface ConnectorLock {
  release(): Promise<void>;
}

export const LOCK_APPLICATION_NAME = `qobra-sync producer ${hostname()}:${process.pid}`;

/** The advisory lock key of a connector's runs (signed 64-bit, as PostgreSQL's bigint). */
export function connectorLockKey(topicPrefix: string, connector: string): bigint {
  const digest = createHash("sha256").update(`qobra-sync:run:${topicPrefix}:${connector}`).digest();
  return digest.readBigInt64BE(0);
}

export class ConnectorLocks {
  private readonly pool: pg.Pool;
  private readonly topicPrefix: string;
  private readonly log: typeof logger;
  private readonly pollMs: number;

  constructor(pool: pg.Pool, topicPrefix: string, log: typeof logger, pollMs = 500) {
    this.pool = pool;
    this.topicPrefix = topicPrefix;
    this.log = log;
    this.pollMs = pollMs;
  }

  /**
   * Takes the connector's lock, waiting while another worker's run holds it. Null when `signal` is
   * aborted first. A sink database that cannot be reached is retried (with the reason logged
   * once a minute) until it answers or `signal` is aborted.
   */
  async acquire(connector: string, signal: AbortSignal): Promise<ConnectorLock | null> {
    const key = connectorLockKey(this.topicPrefix, connector).toString();
    let waitingSince: number | null = null;
    let unreachableLogged = 0;
    for (let delay = this.pollMs; !signal.aborted; ) {
      let client: pg.PoolClient | null = null;
      try {
        client = await this.pool.connect();
        for (;;) {
          const got = await client.query<{ ok: boolean }>("SELECT pg_try_advisory_lock($1::bigint) AS ok", [key]);
          if (got.rows[0]!.ok) {
            if (waitingSince !== null) this.log.info({ connector, waitedMs: Date.now() - waitingSince }, "connector's previous run ended; this run starts");
            return this.held(client, key, connector);
          }
          if (waitingSince === null) {
            waitingSince = Date.now();
            this.log.info({ connector, heldBy: await this.holder(client, key) }, "another worker's run of this connector is still ending; waiting for it");
          }
          if (signal.aborted) break;
          await sleep(this.pollMs, signal).catch(() => {});
          if (signal.aborted) break;
        }
        client.release();
        return null;
      } catch (e) {
        client?.release(true);
        if (signal.aborted) return null;
        if (Date.now() - unreachableLogged > 60_000) {
          unreachableLogged = Date.now();
          this.log.warn({ connector, err: describeError(e) }, "cannot take the connector's run lock in the sink database; the run waits and tries again");
        }
        await sleep(delay, signal).catch(() => {});
        delay = Math.min(delay * 2, 10_000);
      }
    }
    return null;
  }

  private held(client: pg.PoolClient, key: string, connector: string): ConnectorLock {
    let released = false;
    return {
      release: async () => {
        if (released) return;
        released = true;
        try {
          await client.query("SELECT pg_advisory_unlock($1::bigint)", [key]);
          client.release();
        } catch (e) {
          // The connection is gone, and with it the lock.
          this.log.warn({ connector, err: describeError(e) }, "connector's run lock released with its lost connection");
          client.release(true);
        }
      },
    };
  }

  /** Who holds a lock (application_name and backend pid), for the log. */
  private async holder(client: pg.PoolClient, key: string): Promise<string | null> {
    const r = await client.query<{ who: string }>(
      `SELECT a.application_name || ' (backend ' || a.pid || ')' AS who
         FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
        WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
          AND l.classid = (($1::bigint >> 32) & 4294967295)::oid AND l.objid = ($1::bigint & 4294967295)::oid`,
      [key],
    );
    return r.rows[0]?.who ?? null;
  }
}
