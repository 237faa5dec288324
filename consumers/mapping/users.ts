/**
 * Qobra's users, as an immutable in-memory index the pure mapper reads: key column → normalised
 * key → user id. Every column of `sink.users.query` is a key, `id` included (a source column
 * holding Qobra's user ids uses `userKey: id`). Keys are trimmed and lower-cased (e-mails match
 * whatever their case); integers are written in their canonical form, so a source value "0042" or
 * "42.00" (a numeric column) matches a user whose integer key is 42, and an integer id column
 * matches the text the source sends. The shell reloads the index on an interval and, on a miss,
 * at most once a minute. A failing query leaves the previous index in place (or an empty one), so
 * users stay unresolved — reported, never dropped. The query is one SELECT (checked with
 * PostgreSQL's parser when the config loads, and again here), and it runs in a READ ONLY
 * transaction: a second guard, should a function it calls try to write.
 */
import type pg from "pg";
import { ConfigError, describeError } from "../../lib/errors.ts";
import { logger } from "../../lib/log.ts";
import { withTransaction } from "../../lib/pg.ts";
import { singleSelectProblem } from "../../lib/sql-statement.ts";

export interface UserIndex {
  /** The Qobra user id for `value` in column `key` (default email), or null. */
  lookup(value: string, key?: string): string | null;
  /** Whether the users query returns column `key` (lower-cased); false also when nothing is loaded. */
  hasKey(key: string): boolean;
  size: number;
}

const INTEGER = /^([+-]?)0*(\d+)(?:\.0*)?$/;

/** The form both sides of a match are compared in: trimmed, lower-cased, integers canonical. */
export function normaliseKey(v: string): string {
  const text = v.trim().toLowerCase();
  const m = INTEGER.exec(text);
  if (!m) return text;
  const digits = m[2]!;
  return m[1] === "-" && /[1-9]/.test(digits) ? `-${digits}` : digits;
}

/** A users-query value as text (pg gives integers as numbers, bigints as text, some types as objects). */
function keyText(v: unknown): string {
  if (v instanceof Date) return v.toISOString();
  return String(v);
}

export function buildUserIndex(rows: Array<Record<string, unknown>>): UserIndex {
  const byColumn = new Map<string, Map<string, string>>();
  const columns = new Set<string>();
  for (const row of rows) {
    for (const col of Object.keys(row)) columns.add(col.toLowerCase());
    const id = row.id;
    if (id === null || id === undefined) continue;
    // The id column is a key too: `userKey: id` matches a source column holding Qobra user ids.
    for (const [col, v] of Object.entries(row)) {
      if (v === null || v === undefined) continue;
      let m = byColumn.get(col.toLowerCase());
      if (!m) byColumn.set(col.toLowerCase(), (m = new Map()));
      m.set(normaliseKey(keyText(v)), keyText(id));
    }
  }
  return {
    size: rows.length,
    lookup: (value, key = "email") => byColumn.get(key.toLowerCase())?.get(normaliseKey(value)) ?? null,
    hasKey: (key) => columns.has(key.toLowerCase()),
  };
}

export const EMPTY_USERS: UserIndex = buildUserIndex([]);

const log = logger.child({ component: "users" });

/** A user field's key, for the warning when the users query does not return it: where it is configured. */
export interface UserKeyUse {
  /** The users-query column the field matches (`email` unless `userKey` says otherwise). */
  key: string;
  /** Where the field is configured, for people: `connector crm, table deals, field owner`. */
  where: string;
}

/** Every user field of the config and its key column. */
export function userKeyUses(
  connectors: ReadonlyArray<{ id: string; tables: ReadonlyArray<{ name: string; fields: Record<string, { type: string; userKey?: string }> }> }>,
): UserKeyUse[] {
  const out: UserKeyUse[] = [];
  for (const c of connectors)
    for (const t of c.tables)
      for (const [name, spec] of Object.entries(t.fields))
        if (spec.type === "user") out.push({ key: spec.userKey ?? "email", where: `connector ${c.id}, table ${t.name}, field ${name}` });
  return out;
}

/** The warnings for user fields whose key column the loaded users query does not return. */
export function missingUserKeys(index: UserIndex, uses: readonly UserKeyUse[]): string[] {
  if (index.size === 0) return [];
  return uses
    .filter((u) => !index.hasKey(u.key))
    .map(
      (u) =>
        `${u.where}: userKey ${JSON.stringify(u.key)} is not a column of sink.users.query; add it to the query (or fix the field's userKey), else these users stay unresolved`,
    );
}

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
  private readonly keyUses: readonly UserKeyUse[];
  private readonly keysWarned = new Set<string>();

  /** `keyUses`: the config's user fields, to warn (once each) about a key column the query does not return. */
  constructor(pool: pg.Pool, query: string, refreshSeconds: number, keyUses: readonly UserKeyUse[] = []) {
    const problem = singleSelectProblem(query);
    if (problem) throw new ConfigError(`sink.users.query ${problem}`);
    this.pool = pool;
    this.query = query;
    this.refreshMs = refreshSeconds * 1000;
    this.keyUses = keyUses;
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
        const res = await withTransaction(this.pool, (c) => c.query(this.query), { begin: "BEGIN READ ONLY" });
        this.index = buildUserIndex(res.rows as Array<Record<string, unknown>>);
        this.loadedAt = Date.now();
        this.warned = false;
        log.debug({ users: this.index.size }, "user index loaded");
        for (const w of missingUserKeys(this.index, this.keyUses)) {
          if (!this.keysWarned.has(w)) log.warn(w);
          this.keysWarned.add(w);
        }
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
