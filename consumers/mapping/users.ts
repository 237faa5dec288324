/**
 * Qobra's users, as an immutable in-memory index the pure mapper reads: key column → normalised
 * key (trimmed, lower-cased) → user id. The shell reloads it on an interval and, on a miss, at
 * most once a minute. A failing query leaves the previous index in place (or an empty one), so
 * users stay unresolved — reported, never dropped.
 */
import type pg from "pg";
import { describeError } from "../../lib/errors.ts";
import { logger } from "../../lib/log.ts";

export interface UserIndex {
  /** The Qobra user id for `value` in column `key` (default email), or null. */
  lookup(value: string, key?: string): string | null;
  size: number;
}

const normaliseKey = (v: string): string => v.trim().toLowerCase();

function buildUserIndex(rows: Array<Record<string, unknown>>): UserIndex {
  const byColumn = new Map<string, Map<string, string>>();
  for (const row of rows) {
    const id = row.id;
    if (id === null || id === undefined) continue;
    for (const [col, v] of Object.entries(row)) {
      if (col === "id" || v === null || v === undefined) continue;
      let m = byColumn.get(col.toLowerCase());
      if (!m) byColumn.set(col.toLowerCase(), (m = new Map()));
      m.set(normaliseKey(String(v)), String(id));
    }
  }
  return {
    size: rows.length,
    lookup: (value, key = "email") => byColumn.get(key.toLowerCase())?.get(normaliseKey(value)) ?? null,
  };
}

export const EMPTY_USERS: UserIndex = buildUserIndex([]);

const log = logger.child({ component: "users" });

export class UserDirectory {
  private index: UserIndex = EMPTY_USERS;
  private loadedAt = 0;
  private lastMissReload = 0;
  private loading: Promise<void> | undefined;
  private timer: NodeJS.Timeout | undefined;
  private warned = false;
  private readonly pool: pg.Pool;
  private readonly query: string;
  private readonly refreshMs: number;

  constructor(pool: pg.Pool, query: string, refreshSeconds: number) {
    this.pool = pool;
    this.query = query;
    this.refreshMs = refreshSeconds * 1000;
  }

  async start(): Promise<void> {
    await this.reload();
    this.timer = setInterval(() => {
      void this.reload();
    }, this.refreshMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
  }

  snapshot(): UserIndex {
    return this.index;
  }

  /** Reloads soon after a miss (a user created in Qobra since the last load), at most once a minute. */
  noteMiss(): void {
    if (Date.now() - this.lastMissReload < 60_000 || Date.now() - this.loadedAt < 60_000) return;
    this.lastMissReload = Date.now();
    void this.reload();
  }

  reload(): Promise<void> {
    this.loading ??= (async () => {
      try {
        const res = await this.pool.query(this.query);
        this.index = buildUserIndex(res.rows as Array<Record<string, unknown>>);
        this.loadedAt = Date.now();
        this.warned = false;
        log.debug({ users: this.index.size }, "user index loaded");
      } catch (e) {
        if (!this.warned) log.warn({ err: describeError(e) }, "cannot load Qobra's users (sink.users.query); user fields stay unresolved until it works");
        this.warned = true;
      } finally {
        this.loading = undefined;
      }
    })();
    return this.loading;
  }
}
