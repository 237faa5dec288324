// The Salesforce simulator's state and test controls (`sim.state`): the org, OAuth, Bulk jobs, the daily API
// budget, fault rules, counters and admin stats, query cursors, and the record changes the controls and the
// admin API make. The HTTP forms of these controls are in control-routes.ts.

import { StatsBook, Tally, type RouteStats } from "../kit/counters.ts";
import { FaultRules, globPathTest } from "../kit/faults.ts";
import { bulkBehaviour, BulkJobs } from "./bulk.ts";
import type { BulkBehaviour } from "./bulk.ts";
import { IdFactory, isIdString, normalizeId } from "./ids.ts";
import { OrgModel } from "./model.ts";
import { DataError, normalizeSimData } from "./sim-data.ts";
import { OAuthStore } from "./oauth.ts";
import type { CompiledQuery } from "./soql.ts";
import { expandFault } from "./faults.ts";
import type { SalesforceSimData, SimBulkSettings, SimFaultRule, SimQueryTimeout, SimRecord } from "./types.ts";

const DAY_MS = 86_400_000;

/** `GET /__admin/stats`: every request to the simulated API (OAuth, identity, REST, Bulk), by route template. */
export type AdminStats = RouteStats;

// ---------- API usage (rolling 24 h, per-minute buckets) ----------

class ApiUsage {
  private readonly buckets = new Map<number, number>();
  limit: number;
  private readonly clock: () => number;

  constructor(limit: number, initial: number, clock: () => number) {
    this.limit = limit;
    this.clock = clock;
    if (initial > 0) this.buckets.set(this.minute(), initial);
  }

  private minute(): number {
    return Math.floor(this.clock() / 60_000);
  }

  used(): number {
    const oldest = this.minute() - 24 * 60 + 1;
    let n = 0;
    for (const [m, c] of this.buckets) {
      if (m < oldest) this.buckets.delete(m);
      else n += c;
    }
    return n;
  }

  add(): void {
    const m = this.minute();
    this.buckets.set(m, (this.buckets.get(m) ?? 0) + 1);
  }

  set(used: number): void {
    this.buckets.clear();
    if (used > 0) this.buckets.set(this.minute(), used);
  }
}

// ---------- query cursors ----------

export interface Cursor {
  id: string;
  cq: CompiledQuery;
  rows: SimRecord[];
  pageSize: number;
  lastUsed: number;
}

// ---------- controls ----------

export class SalesforceSimControls {
  readonly org: OrgModel;
  readonly oauth: OAuthStore;
  readonly bulk: BulkJobs;
  readonly usage: ApiUsage;
  readonly faultRules = new FaultRules<SimFaultRule>({ pathTest: globPathTest, spentRules: "once" });
  queryPageSize: number;
  queryBatchSizeMin: number;
  queryBatchSizeMax: number;
  queryLocatorTtlMs: number;
  /** QUERY_TIMEOUT for REST queries with more than `rows` results (over `object`), or null: off (types.ts SimQueryTimeout). */
  queryTimeout: SimQueryTimeout | null = null;
  /**
   * Called with every request to the simulated API (not the controls or the admin API) before it is answered:
   * programmatic only, for tests that change data between two requests of one read.
   */
  onApiRequest: ((r: { method: string; path: string; query: URLSearchParams }) => void) | undefined;
  readonly counts = new Tally();
  /** Per-route request counts for /__admin/stats (reset independently of the counters). */
  readonly statCounts = new StatsBook();
  readonly cursors = new Map<string, Cursor>();
  readonly cursorIds = new IdFactory("Qb");
  /** Filled once listening. */
  baseUrl = "";

  readonly clock: () => number;

  constructor(input: SalesforceSimData, baseDir: string, clock: () => number) {
    this.clock = clock;
    const data = normalizeSimData(input);
    this.org = new OrgModel(data, baseDir, clock);
    const o = data.org ?? {};
    const users = this.org.model("User")!;
    const resolveUser = (ref: string): string | undefined => {
      if (isIdString(ref)) {
        const id = normalizeId(ref);
        return users.records.has(id) ? id : undefined;
      }
      for (const u of users.records.values()) if (String(u.Username ?? "").toLowerCase() === ref.toLowerCase()) return u.Id as string;
      return undefined;
    };
    this.oauth = new OAuthStore(data.oauth ?? {}, this.org.org.id, clock, resolveUser, () => this.org.defaultUserId);
    this.bulk = new BulkJobs(this.org, bulkBehaviour(o.bulk), clock);
    this.usage = new ApiUsage(o.dailyApiLimit ?? 15_000, o.apiUsage ?? 0, clock);
    this.queryPageSize = o.queryPageSize ?? 2000;
    this.queryBatchSizeMin = o.queryBatchSizeMin ?? 200;
    this.queryBatchSizeMax = o.queryBatchSizeMax ?? 2000;
    this.queryLocatorTtlMs = o.queryLocatorTtlMs ?? 2 * DAY_MS;
    this.setQueryTimeout(o.queryTimeout ?? null);
    for (const f of data.faults ?? []) this.addFault(f);
  }

  // --- tokens ---
  /** Mints an access token and a refresh token for a user (id or Username; default the first user). */
  issueTokens(opts: { user?: string; clientId?: string } = {}): {
    accessToken: string;
    refreshToken: string;
    instanceUrl: string;
    id: string;
    clientId: string;
    clientSecret: string;
  } {
    const client = opts.clientId ? this.oauth.clients.get(opts.clientId) : this.oauth.firstClient;
    if (!client) throw new Error(`unknown clientId ${String(opts.clientId)}`);
    let userId = this.org.defaultUserId;
    if (opts.user) {
      const users = this.org.model("User")!;
      const id = isIdString(opts.user) ? normalizeId(opts.user) : ([...users.records.values()].find((u) => u.Username === opts.user)?.Id as string | undefined);
      if (!id || !users.records.has(id)) throw new Error(`unknown user ${opts.user}`);
      userId = id;
    }
    const rt = this.oauth.issueRefresh(userId, client.clientId);
    const at = this.oauth.issueAccess(userId, client.clientId, rt.token);
    return {
      accessToken: at.token,
      refreshToken: rt.token,
      instanceUrl: this.baseUrl,
      id: `${this.baseUrl}/id/${this.org.org.id}/${userId}`,
      clientId: client.clientId,
      clientSecret: client.clientSecret,
    };
  }
  expireAllAccessTokens(): number {
    return this.oauth.expireAllAccessTokens();
  }
  revokeRefreshToken(token: string): boolean {
    return this.oauth.revokeRefreshToken(token);
  }
  revokeAllRefreshTokens(): number {
    return this.oauth.revokeAllRefreshTokens();
  }
  setRefreshTokenRotation(on: boolean): void {
    this.oauth.setRotation(on);
  }
  setAccessTokenLifetime(seconds: number): void {
    this.oauth.accessTokenLifetimeMs = seconds * 1000;
  }

  // --- limits ---
  apiUsage(): { used: number; limit: number } {
    return { used: this.usage.used(), limit: this.usage.limit };
  }
  setApiUsage(used: number): void {
    this.usage.set(used);
  }
  setDailyApiLimit(limit: number): void {
    this.usage.limit = limit;
  }

  // --- faults ---
  addFault(rule: SimFaultRule): void {
    if (!rule || typeof rule !== "object") throw new Error("a fault rule must be an object");
    const full = expandFault(rule);
    if (typeof full.path !== "string") throw new Error('a fault rule needs a "path" (or a "fault" preset)');
    this.faultRules.add(full);
  }
  clearFaults(): void {
    this.faultRules.clear();
  }
  faults(): (SimFaultRule & { remaining: number })[] {
    return this.faultRules.list();
  }
  takeFault(method: string, path: string): SimFaultRule | undefined {
    return this.faultRules.take(method, path);
  }
  /** Turns the size-based QUERY_TIMEOUT on (`{ rows, object? }`) or off (null). */
  setQueryTimeout(rule: unknown): void {
    if (rule === null || rule === undefined) {
      this.queryTimeout = null;
      return;
    }
    const r = rule as Partial<SimQueryTimeout>;
    if (typeof r !== "object" || typeof r.rows !== "number" || r.rows < 0 || (r.object !== undefined && typeof r.object !== "string"))
      throw new DataError('queryTimeout must be null or { "rows": n >= 0, "object"?: "<Name>" }');
    this.queryTimeout = { rows: r.rows, ...(r.object !== undefined ? { object: r.object } : {}) };
  }
  /** Whether the size-based QUERY_TIMEOUT answers a REST query over this object with this many results. */
  queryTimesOut(object: string, rows: number): boolean {
    const t = this.queryTimeout;
    return t !== null && rows > t.rows && (t.object === undefined || t.object.toLowerCase() === object.toLowerCase());
  }

  // --- counters ---
  count(key: string): void {
    this.counts.add(key);
  }
  counters(): Record<string, number> {
    return this.counts.snapshot();
  }
  resetCounters(): void {
    this.counts.clear();
  }

  // --- admin stats (/__admin/stats) ---
  countRoute(route: string): void {
    this.statCounts.count(route);
  }
  stats(): AdminStats {
    return this.statCounts.stats();
  }
  resetStats(): void {
    this.statCounts.reset();
  }

  // --- records ---
  private modelOrThrow(object: string) {
    const m = this.org.model(object);
    if (!m) throw new Error(`unknown object ${object}`);
    return m;
  }
  /** Inserts or updates records (matched by Id); updates bump LastModifiedDate/SystemModstamp unless given. */
  upsert(object: string, records: SimRecord[]): SimRecord[] {
    const m = this.modelOrThrow(object);
    return records.map((r) => this.org.insert(m, r, false));
  }
  /** Soft delete (queryAll still sees the rows with IsDeleted=true), or hard delete with { hard: true }. */
  delete(object: string, ids: string[], opts: { hard?: boolean } = {}): number {
    const m = this.modelOrThrow(object);
    return ids.filter((id) => (opts.hard ? this.org.purge(m, id) : this.org.softDelete(m, id))).length;
  }
  undelete(object: string, ids: string[]): number {
    const m = this.modelOrThrow(object);
    return ids.filter((id) => this.org.undelete(m, id)).length;
  }
  /**
   * `POST /__admin/records`: upserts records given as the REST API returns them (`attributes` optional), all or
   * nothing. New records and updates without SystemModstamp / LastModifiedDate get the current time in them.
   */
  adminUpsert(object: unknown, records: unknown): { object: string; ids: string[]; created: number; updated: number } {
    if (typeof object !== "string" || object === "") throw new DataError('"object" must be an sObject name');
    if (!Array.isArray(records)) throw new DataError('"records" must be an array of records');
    const m = this.org.model(object);
    if (!m) throw new DataError(`unknown object ${object}`);
    const undo: [string, SimRecord | undefined][] = [];
    const ids: string[] = [];
    let created = 0;
    try {
      records.forEach((r: unknown, i) => {
        if (r === null || typeof r !== "object" || Array.isArray(r)) throw new DataError(`records[${i}] must be an object`);
        const rec = r as SimRecord;
        const given = rec.Id ?? rec.id;
        let key: string | undefined;
        if (given !== undefined && given !== null && given !== "") {
          if (typeof given !== "string" || !isIdString(given))
            throw new DataError(`records[${i}].Id is not a 15- or 18-character id: ${JSON.stringify(given)}`);
          key = normalizeId(given);
        }
        const before = key === undefined ? undefined : m.records.get(key);
        let stored: SimRecord;
        try {
          stored = this.org.insert(m, rec, false);
        } catch (e) {
          throw new DataError(`records[${i}]: ${(e as Error).message}`);
        }
        undo.push([stored.Id as string, before]);
        if (!before) created++;
        ids.push(stored.Id as string);
      });
    } catch (e) {
      for (const [id, before] of undo.reverse()) {
        if (before) m.records.set(id, before);
        else m.records.delete(id);
      }
      throw e;
    }
    return { object: m.name, ids, created, updated: ids.length - created };
  }

  /**
   * `POST /__admin/delete`: moves records to the recycle bin (IsDeleted = true, seen by queryAll only); with
   * `hard: true` purges them (an emptied recycle bin: gone from queryAll too), records already in the bin included.
   */
  adminDelete(object: unknown, ids: unknown, hard: unknown = false): { object: string; deleted: string[]; notFound: string[] } {
    if (typeof object !== "string" || object === "") throw new DataError('"object" must be an sObject name');
    if (!Array.isArray(ids) || ids.some((x) => typeof x !== "string")) throw new DataError('"ids" must be an array of record ids');
    if (hard !== undefined && typeof hard !== "boolean") throw new DataError('"hard" must be true or false');
    const m = this.org.model(object);
    if (!m) throw new DataError(`unknown object ${object}`);
    const deleted: string[] = [];
    const notFound: string[] = [];
    for (const id of ids as string[]) {
      const key = isIdString(id) ? normalizeId(id) : undefined;
      const rec = key === undefined ? undefined : m.records.get(key);
      if (!rec || key === undefined || (rec.IsDeleted === true && hard !== true)) {
        notFound.push(id);
        continue;
      }
      if (hard === true) this.org.purge(m, key);
      else this.org.softDelete(m, key);
      deleted.push(key);
    }
    return { object: m.name, deleted, notFound };
  }

  records(object: string, opts: { includeDeleted?: boolean } = {}): SimRecord[] {
    const m = this.modelOrThrow(object);
    return [...m.records.values()].filter((r) => opts.includeDeleted || r.IsDeleted !== true);
  }

  // --- bulk ---
  setBulkBehaviour(s: SimBulkSettings): void {
    const cur: BulkBehaviour = this.bulk.behaviour;
    const next = bulkBehaviour({ ...s });
    this.bulk.behaviour = {
      pollsInUploadComplete: s.pollsInUploadComplete ?? cur.pollsInUploadComplete,
      pollsInProgress: s.pollsInProgress ?? cur.pollsInProgress,
      minMsPerState: s.minMsPerState ?? cur.minMsPerState,
      processingMs: s.processingMs ?? cur.processingMs,
      processingMsPer1000: s.processingMsPer1000 ?? cur.processingMsPer1000,
      resultsPageSize: s.resultsPageSize ?? cur.resultsPageSize,
      failQueriesMatching: s.failQueriesMatching !== undefined ? next.failQueriesMatching : cur.failQueriesMatching,
      dailyQueryJobLimit: s.dailyQueryJobLimit ?? cur.dailyQueryJobLimit,
    };
  }
  failNextBulkJobs(count: number, message = "Simulated failure"): void {
    this.bulk.failNextJobs(count, message);
  }
  failBulkJob(id: string, message = "Simulated failure"): boolean {
    return this.bulk.fail(id, message);
  }

  summary(): Record<string, unknown> {
    const objects: Record<string, { records: number; deleted: number; keyPrefix: string | null }> = {};
    for (const m of this.org.objects.values()) {
      let deleted = 0;
      for (const r of m.records.values()) if (r.IsDeleted === true) deleted++;
      objects[m.name] = { records: m.records.size, deleted, keyPrefix: m.keyPrefix };
    }
    return {
      url: this.baseUrl,
      org: this.org.org,
      objects,
      apiUsage: this.apiUsage(),
      oauth: {
        clients: [...this.oauth.clients.values()].map((c) => ({ clientId: c.clientId, rotateRefreshTokens: this.oauth.rotates(c) })),
        rotateRefreshTokens: this.oauth.rotateRefreshTokens,
        accessTokenLifetimeSeconds: this.oauth.accessTokenLifetimeMs / 1000,
        refreshTokens: [...this.oauth.refresh.values()].filter((r) => !r.revoked).length,
      },
      bulk: { ...this.bulk.behaviour, failQueriesMatching: this.bulk.behaviour.failQueriesMatching?.source ?? null, jobs: this.bulk.jobs.size },
      queryPageSize: this.queryPageSize,
      queryTimeout: this.queryTimeout,
      faults: this.faults(),
    };
  }
}
