/**
 * Qobra's users, as an immutable in-memory index the pure mapper reads: key column → normalised
 * key → user id. Every column of `sink.users.query` is a key, `id` included (a source column
 * holding Qobra's user ids uses `userKey: id`). Keys are trimmed and lower-cased (e-mails match
 * whatever their case); integers are written in their canonical form, so a source value "0042" or
 * "42.00" (a numeric column) matches a user whose integer key is 42, and an integer id column
 * matches the text the source sends. The shell reloads the index on an interval and, on a miss,
 * at most once a minute. A failing query leaves the previous index in place (or an empty one), so
 * users stay unresolved — reported, never dropped. A query that uses $1 runs once per tenant (with
 * the tenant id; NULL for connectors without a tenant): a tenant's user fields match only its own
 * users, each tenant's list refreshed (and reloaded on a miss) on its own. The query is one SELECT (checked with
 * PostgreSQL's parser when the config loads, and again here), and it runs in a READ ONLY
 * transaction: a second guard, should a function it calls try to write.
 */
import type pg from "pg";
import { parseSync } from "pgsql-parser";
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
  /** The connector's tenant: with a users query per tenant, only that tenant's users answer for it. */
  tenant?: string;
}

/** Every user field of the config and its key column. */
export function userKeyUses(
  connectors: ReadonlyArray<{
    id: string;
    tenant?: string;
    tables: ReadonlyArray<{ name: string; fields: Record<string, { type: string; userKey?: string }> }>;
  }>,
): UserKeyUse[] {
  const out: UserKeyUse[] = [];
  for (const c of connectors)
    for (const t of c.tables)
      for (const [name, spec] of Object.entries(t.fields))
        if (spec.type === "user")
          out.push({
            key: spec.userKey ?? "email",
            where: `connector ${c.id}, table ${t.name}, field ${name}`,
            ...(c.tenant === undefined ? {} : { tenant: c.tenant }),
          });
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

/** The users of one scope: one tenant's (or the connectors' without a tenant), or everyone's. */
class Scope {
  index: UserIndex = EMPTY_USERS;
  /** Whether a load was attempted (a failed one too): until then the first batch waits for it. */
  tried = false;
  loadedAt = 0;
  lastMissReload = 0;
  loading: Promise<void> | undefined;
  warned = false;
  /** The query's $1 (the tenant id, null for connectors without a tenant); undefined: no parameter. */
  readonly param: string | null | undefined;
  constructor(param: string | null | undefined) {
    this.param = param;
  }
}

/**
 * Whether the users query takes the tenant as `$1` (a parameter of the parsed query, not the text
 * "$1" inside a string literal): then it runs once per tenant and each tenant resolves against its own users.
 */
export function usesTenantParameter(query: string): boolean {
  let tree: unknown;
  try {
    tree = parseSync(query);
  } catch {
    return false; // refused where the config is checked; nothing to run per tenant
  }
  const walk = (n: unknown): boolean => {
    if (Array.isArray(n)) return n.some(walk);
    if (!n || typeof n !== "object") return false;
    const param = (n as { ParamRef?: { number?: number } }).ParamRef;
    if (param?.number === 1) return true;
    return Object.values(n).some(walk);
  };
  return walk(tree);
}

/** The key of a tenant's scope when the query runs per tenant: "" for connectors without a tenant (a tenant id is never empty). */
const NO_TENANT = "";
/** The one scope of a query without $1. */
const EVERYONE = "*";

export class UserDirectory {
  /** The users query takes the tenant as $1: one index per tenant. */
  readonly perTenant: boolean;
  private readonly scopes = new Map<string, Scope>();
  private timer: NodeJS.Timeout | undefined;
  private readonly pool: pg.Pool;
  private readonly query: string;
  private readonly refreshMs: number;
  private readonly keyUses: readonly UserKeyUse[];
  private readonly keysWarned = new Set<string>();
  private readonly tenants: () => Iterable<string | undefined>;

  /**
   * `keyUses`: the config's user fields, to warn (once each) about a key column the query does not return.
   * `tenants`: the tenants of the connectors (undefined for a connector without one), read at each
   * refresh; they matter only when the query uses $1.
   */
  constructor(
    pool: pg.Pool,
    query: string,
    refreshSeconds: number,
    keyUses: readonly UserKeyUse[] = [],
    tenants: () => Iterable<string | undefined> = () => [undefined],
  ) {
    const problem = singleSelectProblem(query);
    if (problem) throw new ConfigError(`sink.users.query ${problem}`);
    this.pool = pool;
    this.query = query;
    this.refreshMs = refreshSeconds * 1000;
    this.keyUses = keyUses;
    this.tenants = tenants;
    this.perTenant = usesTenantParameter(query);
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

  /** The users a connector of `tenant` resolves against (its tenant's when the query uses $1, else everyone's). */
  snapshot(tenant?: string): UserIndex {
    return this.scopes.get(this.keyOf(tenant))?.index ?? EMPTY_USERS;
  }

  /** As snapshot, but waits for the first load of a scope never loaded (a tenant's connector added since the start). */
  async indexFor(tenant?: string): Promise<UserIndex> {
    const scope = this.scopeOf(tenant);
    if (!scope.tried) await this.load(this.keyOf(tenant), scope);
    return scope.index;
  }

  /** Reloads soon after a miss (a user created in Qobra since the last load), at most once a minute (per tenant). */
  noteMiss(tenant?: string): void {
    const scope = this.scopeOf(tenant);
    if (Date.now() - scope.lastMissReload < 60_000 || Date.now() - scope.loadedAt < 60_000) return;
    scope.lastMissReload = Date.now();
    void this.load(this.keyOf(tenant), scope);
  }

  /** Reloads the users of every scope the connectors need now. */
  async reload(): Promise<void> {
    const keys = new Set<string | undefined>(this.perTenant ? this.tenants() : [undefined]);
    await Promise.all([...keys].map((t) => this.load(this.keyOf(t), this.scopeOf(t))));
  }

  private keyOf(tenant: string | undefined): string {
    return this.perTenant ? (tenant ?? NO_TENANT) : EVERYONE;
  }

  private scopeOf(tenant: string | undefined): Scope {
    const key = this.keyOf(tenant);
    let scope = this.scopes.get(key);
    if (!scope) this.scopes.set(key, (scope = new Scope(this.perTenant ? (tenant ?? null) : undefined)));
    return scope;
  }

  private load(key: string, scope: Scope): Promise<void> {
    const tenant = key === EVERYONE ? undefined : key === NO_TENANT ? null : key;
    scope.loading ??= (async () => {
      try {
        const params = scope.param === undefined ? [] : [scope.param];
        const res = await withTransaction(this.pool, (c) => c.query(this.query, params), { begin: "BEGIN READ ONLY" });
        scope.index = buildUserIndex(res.rows as Array<Record<string, unknown>>);
        scope.loadedAt = Date.now();
        scope.warned = false;
        log.debug({ users: scope.index.size, ...(tenant === undefined ? {} : { tenant }) }, "user index loaded");
        // A tenant's index answers for its own connectors' user fields only.
        const uses = tenant === undefined ? this.keyUses : this.keyUses.filter((u) => (u.tenant ?? null) === tenant);
        for (const w of missingUserKeys(scope.index, uses)) {
          if (!this.keysWarned.has(w)) log.warn(w);
          this.keysWarned.add(w);
        }
      } catch (e) {
        if (!scope.warned)
          log.warn(
            { err: describeError(e), ...(tenant === undefined ? {} : { tenant }) },
            "cannot load Qobra's users (sink.users.query); user fields stay unresolved until it works",
          );
        scope.warned = true;
      } finally {
        scope.tried = true;
        scope.loading = undefined;
      }
    })();
    return scope.loading;
  }
}
