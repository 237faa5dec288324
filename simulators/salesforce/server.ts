// Salesforce API simulator: OAuth 2.0, REST (versions, describeGlobal, describe, query/queryAll/queryMore, limits,
// record retrieve), Bulk API 2.0 query jobs, daily API limit, fault injection and per-endpoint counters.
// See README.md beside this file for the data-file format, the controls and what is (not) reproduced.

import { createServer } from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { dirname, resolve } from 'node:path';
import { readFileSync } from 'node:fs';
import { bulkBehaviour, BulkJobs } from './bulk.ts';
import type { BulkBehaviour } from './bulk.ts';
import { globalEntry, rewriteVersion } from './describes.ts';
import { IdFactory, isIdString, normalizeId } from './ids.ts';
import { DataError, normalizeSimData, OrgModel } from './model.ts';
import { OAuthStore } from './oauth.ts';
import type { AccessTokenInfo } from './oauth.ts';
import {
  aggregateRow, compileQuery, executeQuery, renderJsonRecord, renderTree, SfError,
} from './soql.ts';
import type { CompiledQuery } from './soql.ts';
import type { SalesforceSimData, SimBulkSettings, SimFaultRule, SimRecord } from './types.ts';

export type { SalesforceSimData } from './types.ts';

const JSON_CT = 'application/json;charset=UTF-8';
const HTML_CT = 'text/html;charset=UTF-8';
const CSV_CT = 'text/csv';
const DAY_MS = 86_400_000;

export interface StartSalesforceSimulatorOptions {
  port?: number;
  host?: string;
  /** The data (see README.md) or a path to a data JSON file. */
  data: SalesforceSimData | string;
  /** Simulated clock (epoch ms) for token expiry, job timing, audit fields, date literals, the rolling API window. */
  clock?: () => number;
  /** URL announced as instance_url / in identity URLs when clients reach the simulator under another name. */
  publicUrl?: string;
}

export interface SalesforceSimulator {
  url: string;
  close(): Promise<void>;
  counters(): Record<string, number>;
  /** Requests per `<METHOD> <route>` since start or the last reset (what `GET /__admin/stats` answers). */
  stats(): AdminStats;
  state: SalesforceSimControls;
}

/** `GET /__admin/stats`: every request to the simulated API (OAuth, identity, REST, Bulk), by route template. */
export interface AdminStats {
  total: number;
  requests: Record<string, number>;
}

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

// ---------- faults ----------

interface ActiveFault {
  rule: SimFaultRule;
  re: RegExp;
  remaining: number;
}

function globToRegExp(glob: string): RegExp {
  if (glob.startsWith('^')) return new RegExp(glob);
  let re = '';
  for (let i = 0; i < glob.length; i++) {
    const ch = glob[i]!;
    if (ch === '*' && glob[i + 1] === '*') { re += '.*'; i++; } else if (ch === '*') re += '[^/]*';
    else re += ch.replace(/[.+?^${}()|[\]\\]/g, '\\$&');
  }
  return new RegExp(`^${re}$`);
}

function defaultFaultError(status: number): { errorCode: string; message: string } {
  if (status === 401) return { errorCode: 'INVALID_SESSION_ID', message: 'Session expired or invalid' };
  if (status === 403) return { errorCode: 'REQUEST_LIMIT_EXCEEDED', message: 'TotalRequests Limit exceeded.' };
  if (status === 503) return { errorCode: 'SERVER_UNAVAILABLE', message: 'Server temporarily unavailable. Please try again later.' };
  if (status >= 500) return { errorCode: 'UNKNOWN_EXCEPTION', message: 'An unexpected error occurred. Please include this ErrorId if you contact support: 1949384578-12345 (-1234567890)' };
  return { errorCode: 'SIMULATED_FAULT', message: `Simulated fault (HTTP ${status})` };
}

// ---------- query cursors ----------

interface Cursor {
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
  readonly faultRules: ActiveFault[] = [];
  queryPageSize: number;
  queryBatchSizeMin: number;
  queryBatchSizeMax: number;
  queryLocatorTtlMs: number;
  readonly counts = new Map<string, number>();
  /** Per-route request counts for /__admin/stats (reset independently of the counters). */
  readonly statCounts = new Map<string, number>();
  readonly cursors = new Map<string, Cursor>();
  readonly cursorIds = new IdFactory('Qb');
  /** Filled once listening. */
  baseUrl = '';

  readonly clock: () => number;

  constructor(input: SalesforceSimData, baseDir: string, clock: () => number) {
    this.clock = clock;
    const data = normalizeSimData(input);
    this.org = new OrgModel(data, baseDir, clock);
    const o = data.org ?? {};
    const users = this.org.model('User')!;
    const resolveUser = (ref: string): string | undefined => {
      if (isIdString(ref)) {
        const id = normalizeId(ref);
        return users.records.has(id) ? id : undefined;
      }
      for (const u of users.records.values()) if (String(u.Username ?? '').toLowerCase() === ref.toLowerCase()) return u.Id as string;
      return undefined;
    };
    this.oauth = new OAuthStore(data.oauth ?? {}, this.org.org.id, clock, resolveUser, () => this.org.defaultUserId);
    this.bulk = new BulkJobs(this.org, bulkBehaviour(o.bulk), clock);
    this.usage = new ApiUsage(o.dailyApiLimit ?? 15_000, o.apiUsage ?? 0, clock);
    this.queryPageSize = o.queryPageSize ?? 2000;
    this.queryBatchSizeMin = o.queryBatchSizeMin ?? 200;
    this.queryBatchSizeMax = o.queryBatchSizeMax ?? 2000;
    this.queryLocatorTtlMs = o.queryLocatorTtlMs ?? 2 * DAY_MS;
    for (const f of data.faults ?? []) this.addFault(f);
  }

  // --- tokens ---
  /** Mints an access token and a refresh token for a user (id or Username; default the first user). */
  issueTokens(opts: { user?: string; clientId?: string } = {}): { accessToken: string; refreshToken: string; instanceUrl: string; id: string; clientId: string; clientSecret: string } {
    const client = opts.clientId ? this.oauth.clients.get(opts.clientId) : this.oauth.firstClient;
    if (!client) throw new Error(`unknown clientId ${String(opts.clientId)}`);
    let userId = this.org.defaultUserId;
    if (opts.user) {
      const users = this.org.model('User')!;
      const id = isIdString(opts.user) ? normalizeId(opts.user) : [...users.records.values()].find((u) => u.Username === opts.user)?.Id as string | undefined;
      if (!id || !users.records.has(id)) throw new Error(`unknown user ${opts.user}`);
      userId = id;
    }
    const rt = this.oauth.issueRefresh(userId, client.clientId);
    const at = this.oauth.issueAccess(userId, client.clientId, rt.token);
    return { accessToken: at.token, refreshToken: rt.token, instanceUrl: this.baseUrl, id: `${this.baseUrl}/id/${this.org.org.id}/${userId}`, clientId: client.clientId, clientSecret: client.clientSecret };
  }
  expireAllAccessTokens(): number { return this.oauth.expireAllAccessTokens(); }
  revokeRefreshToken(token: string): boolean { return this.oauth.revokeRefreshToken(token); }
  revokeAllRefreshTokens(): number { return this.oauth.revokeAllRefreshTokens(); }
  setRefreshTokenRotation(on: boolean): void { this.oauth.setRotation(on); }
  setAccessTokenLifetime(seconds: number): void { this.oauth.accessTokenLifetimeMs = seconds * 1000; }

  // --- limits ---
  apiUsage(): { used: number; limit: number } { return { used: this.usage.used(), limit: this.usage.limit }; }
  setApiUsage(used: number): void { this.usage.set(used); }
  setDailyApiLimit(limit: number): void { this.usage.limit = limit; }

  // --- faults ---
  addFault(rule: SimFaultRule): void {
    if (!rule || typeof rule.path !== 'string') throw new Error('a fault rule needs a "path"');
    this.faultRules.push({ rule, re: globToRegExp(rule.path), remaining: rule.count ?? 1 });
  }
  clearFaults(): void { this.faultRules.length = 0; }
  faults(): (SimFaultRule & { remaining: number })[] { return this.faultRules.map((f) => ({ ...f.rule, remaining: f.remaining })); }
  takeFault(method: string, path: string): SimFaultRule | undefined {
    for (let i = 0; i < this.faultRules.length; i++) {
      const f = this.faultRules[i]!;
      if (f.rule.method && f.rule.method.toUpperCase() !== method) continue;
      if (!f.re.test(path)) continue;
      f.remaining--;
      if (f.remaining <= 0) this.faultRules.splice(i, 1);
      return f.rule;
    }
    return undefined;
  }

  // --- counters ---
  count(key: string): void { this.counts.set(key, (this.counts.get(key) ?? 0) + 1); }
  counters(): Record<string, number> { return Object.fromEntries([...this.counts.entries()].sort(([a], [b]) => a.localeCompare(b))); }
  resetCounters(): void { this.counts.clear(); }

  // --- admin stats (/__admin/stats) ---
  countRoute(route: string): void { this.statCounts.set(route, (this.statCounts.get(route) ?? 0) + 1); }
  stats(): AdminStats {
    let total = 0;
    for (const n of this.statCounts.values()) total += n;
    return { total, requests: Object.fromEntries([...this.statCounts.entries()].sort(([a], [b]) => a.localeCompare(b))) };
  }
  resetStats(): void { this.statCounts.clear(); }

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
    if (typeof object !== 'string' || object === '') throw new DataError('"object" must be an sObject name');
    if (!Array.isArray(records)) throw new DataError('"records" must be an array of records');
    const m = this.org.model(object);
    if (!m) throw new DataError(`unknown object ${object}`);
    const undo: [string, SimRecord | undefined][] = [];
    const ids: string[] = [];
    let created = 0;
    try {
      records.forEach((r: unknown, i) => {
        if (r === null || typeof r !== 'object' || Array.isArray(r)) throw new DataError(`records[${i}] must be an object`);
        const rec = r as SimRecord;
        const given = rec.Id ?? rec.id;
        let key: string | undefined;
        if (given !== undefined && given !== null && given !== '') {
          if (typeof given !== 'string' || !isIdString(given)) throw new DataError(`records[${i}].Id is not a 15- or 18-character id: ${JSON.stringify(given)}`);
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

  /** `POST /__admin/delete`: moves records to the recycle bin (IsDeleted = true, seen by queryAll only). */
  adminDelete(object: unknown, ids: unknown): { object: string; deleted: string[]; notFound: string[] } {
    if (typeof object !== 'string' || object === '') throw new DataError('"object" must be an sObject name');
    if (!Array.isArray(ids) || ids.some((x) => typeof x !== 'string')) throw new DataError('"ids" must be an array of record ids');
    const m = this.org.model(object);
    if (!m) throw new DataError(`unknown object ${object}`);
    const deleted: string[] = [];
    const notFound: string[] = [];
    for (const id of ids as string[]) {
      const key = isIdString(id) ? normalizeId(id) : undefined;
      const rec = key === undefined ? undefined : m.records.get(key);
      if (!rec || rec.IsDeleted === true || key === undefined) { notFound.push(id); continue; }
      this.org.softDelete(m, key);
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
      resultsPageSize: s.resultsPageSize ?? cur.resultsPageSize,
      failQueriesMatching: s.failQueriesMatching !== undefined ? next.failQueriesMatching : cur.failQueriesMatching,
      dailyQueryJobLimit: s.dailyQueryJobLimit ?? cur.dailyQueryJobLimit,
    };
  }
  failNextBulkJobs(count: number, message = 'Simulated failure'): void { this.bulk.failNextJobs(count, message); }
  failBulkJob(id: string, message = 'Simulated failure'): boolean { return this.bulk.fail(id, message); }

  summary(): Record<string, unknown> {
    const objects: Record<string, { records: number; deleted: number; keyPrefix: string | null }> = {};
    for (const m of this.org.objects.values()) {
      let deleted = 0;
      for (const r of m.records.values()) if (r.IsDeleted === true) deleted++;
      objects[m.name] = { records: m.records.size, deleted, keyPrefix: m.keyPrefix };
    }
    return {
      url: this.baseUrl, org: this.org.org, objects, apiUsage: this.apiUsage(),
      oauth: {
        clients: [...this.oauth.clients.values()].map((c) => ({ clientId: c.clientId, rotateRefreshTokens: this.oauth.rotates(c) })),
        rotateRefreshTokens: this.oauth.rotateRefreshTokens, accessTokenLifetimeSeconds: this.oauth.accessTokenLifetimeMs / 1000,
        refreshTokens: [...this.oauth.refresh.values()].filter((r) => !r.revoked).length,
      },
      bulk: { ...this.bulk.behaviour, failQueriesMatching: this.bulk.behaviour.failQueriesMatching?.source ?? null, jobs: this.bulk.jobs.size },
      queryPageSize: this.queryPageSize, faults: this.faults(),
    };
  }
}

// ---------- HTTP plumbing ----------

interface Reply {
  status: number;
  body: string;
  contentType?: string;
  headers?: Record<string, string>;
}

function jsonReply(status: number, body: unknown): Reply {
  return { status, body: typeof body === 'string' ? body : JSON.stringify(body), contentType: JSON_CT };
}

function errorReply(e: SfError): Reply {
  return jsonReply(e.status, e.body());
}

const NOT_FOUND_ERR = () => new SfError(404, 'NOT_FOUND', 'The requested resource does not exist');

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const c of req) chunks.push(c as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

function parseJsonBody(text: string): unknown {
  if (text.trim() === '') return null;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new SfError(400, 'JSON_PARSER_ERROR', 'The request body is not valid JSON');
  }
}

function versionLabel(v: number): string {
  const idx = v - 62;
  const cycle = Math.floor(idx / 3);
  const pos = ((idx % 3) + 3) % 3;
  return `${['Winter', 'Spring', 'Summer'][pos]} '${String(25 + cycle).padStart(2, '0')}`;
}

function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

interface ApiCtx {
  req: IncomingMessage;
  url: URL;
  version: string;
  rest: string;
  method: string;
  token: AccessTokenInfo;
}

class SimServer {
  readonly c: SalesforceSimControls;
  private readonly describeCache = new Map<string, string>();

  constructor(c: SalesforceSimControls) {
    this.c = c;
  }

  private get base(): string { return this.c.baseUrl; }

  /** Route key used by the counters (path templates). */
  routeKey(method: string, path: string): string {
    let m: RegExpExecArray | null;
    if (path === '/services/data' || path === '/services/data/') return `${method} /services/data`;
    if ((m = /^\/services\/data\/v[^/]+(\/.*)?$/.exec(path))) {
      const rest = (m[1] ?? '').replace(/\/$/, '');
      const templates: [RegExp, string][] = [
        [/^\/sobjects\/[^/]+\/describe$/, '/sobjects/{sobject}/describe'],
        [/^\/sobjects\/[^/]+\/[^/]+$/, '/sobjects/{sobject}/{id}'],
        [/^\/sobjects\/[^/]+$/, '/sobjects/{sobject}'],
        [/^\/query\/[^/]+$/, '/query/{locator}'],
        [/^\/queryAll\/[^/]+$/, '/queryAll/{locator}'],
        [/^\/jobs\/query\/[^/]+\/results$/, '/jobs/query/{jobId}/results'],
        [/^\/jobs\/query\/[^/]+$/, '/jobs/query/{jobId}'],
      ];
      const t = templates.find(([re]) => re.test(rest))?.[1] ?? rest;
      return `${method} /services/data/vXX.X${t}`;
    }
    if (/^\/id\/[^/]+\/[^/]+$/.test(path)) return `${method} /id/{orgId}/{userId}`;
    return `${method} ${path}`;
  }

  async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const method = (req.method ?? 'GET').toUpperCase();
    const url = new URL(req.url ?? '/', 'http://sim.invalid');
    const path = url.pathname;
    let reply: Reply;
    try {
      if (path.startsWith('/__simulator/')) {
        reply = await this.control(method, path.slice('/__simulator/'.length), req);
        this.send(res, reply);
        return;
      }
      if (path === '/__admin' || path.startsWith('/__admin/')) {
        reply = await this.admin(method, path.slice('/__admin'.length).replace(/^\/+|\/+$/g, ''), req);
        this.send(res, reply);
        return;
      }
      const route = this.routeKey(method, path);
      this.c.count(route);
      this.c.countRoute(route);
      const fault = this.c.takeFault(method, path);
      if (fault) {
        this.c.count('faults:injected');
        if (fault.delayMs) await new Promise((r) => setTimeout(r, fault.delayMs));
        if (fault.action === 'reset') {
          req.socket.destroy();
          return;
        }
        if (fault.status !== undefined) {
          const def = defaultFaultError(fault.status);
          const body = fault.body !== undefined ? fault.body : [{ message: fault.message ?? def.message, errorCode: fault.errorCode ?? def.errorCode }];
          reply = typeof body === 'string' ? { status: fault.status, body, contentType: HTML_CT } : jsonReply(fault.status, body);
          this.count(reply);
          this.send(res, reply);
          return;
        }
      }
      reply = await this.route(method, path, url, req);
    } catch (e) {
      if (e instanceof SfError) reply = errorReply(e);
      else reply = jsonReply(500, [{ message: `Simulator error: ${(e as Error).message}`, errorCode: 'UNKNOWN_EXCEPTION' }]);
    }
    this.count(reply);
    this.send(res, reply);
  }

  private count(reply: Reply): void {
    this.c.count(`status:${reply.status}`);
  }

  private send(res: ServerResponse, r: Reply): void {
    const headers: Record<string, string> = { 'Content-Type': r.contentType ?? JSON_CT, ...(r.headers ?? {}) };
    res.writeHead(r.status, headers);
    res.end(r.status === 204 ? undefined : r.body);
  }

  private async route(method: string, path: string, url: URL, req: IncomingMessage): Promise<Reply> {
    if (path === '/services/data' || path === '/services/data/') {
      if (method !== 'GET') throw NOT_FOUND_ERR();
      return this.versions();
    }
    if (path === '/services/oauth2/token') {
      if (method !== 'POST') return jsonReply(400, { error: 'invalid_request', error_description: 'must use HTTP POST' });
      const params = new URLSearchParams(await readBody(req));
      this.c.count(`oauth:grant:${params.get('grant_type') ?? '(none)'}`);
      const r = this.c.oauth.token(params, this.base);
      return jsonReply(r.status, r.body);
    }
    if (path === '/services/oauth2/authorize') return this.authorize(method, url, req);
    if (path === '/services/oauth2/revoke') {
      const params = method === 'POST' ? new URLSearchParams(await readBody(req)) : url.searchParams;
      const t = params.get('token') ?? '';
      const ok = this.c.oauth.revokeRefreshToken(t) || this.c.oauth.revokeAccessToken(t);
      return ok ? { status: 200, body: '', contentType: JSON_CT } : jsonReply(400, { error: 'unsupported_token_type', error_description: 'this token type is not supported' });
    }
    const idm = /^\/id\/([^/]+)\/([^/]+)$/.exec(path);
    if (idm || path === '/services/oauth2/userinfo') {
      const tok = this.c.oauth.validateAccess(this.bearer(req));
      if (!tok) return { status: 403, body: 'Bad_OAuth_Token', contentType: 'text/plain;charset=UTF-8' };
      return jsonReply(200, this.identity(idm ? normalizeId(idm[2]!) : tok.userId));
    }
    const m = /^\/services\/data\/v([^/]+)(\/.*)?$/.exec(path);
    if (m) return this.api(method, m[1]!, (m[2] ?? '').replace(/\/$/, ''), url, req);
    throw NOT_FOUND_ERR();
  }

  private bearer(req: IncomingMessage): string | undefined {
    const h = req.headers.authorization;
    if (!h) return undefined;
    const mm = /^(?:Bearer|OAuth)\s+(.+)$/i.exec(h.trim());
    return mm?.[1]?.trim();
  }

  private versions(): Reply {
    const max = Number(this.c.org.org.apiVersion);
    const min = Number(this.c.org.org.minApiVersion);
    const list = [];
    for (let v = Math.ceil(min); v <= max; v++) list.push({ label: versionLabel(v), url: `/services/data/v${v}.0`, version: `${v}.0` });
    return jsonReply(200, list);
  }

  private identity(userId: string): Record<string, unknown> {
    const u = this.c.org.model('User')!.records.get(userId) ?? {};
    const orgId = this.c.org.org.id;
    const v = this.c.org.org.apiVersion;
    const b = this.base;
    return {
      id: `${b}/id/${orgId}/${userId}`, asserted_user: true, user_id: userId, organization_id: orgId,
      username: u.Username ?? null, nick_name: u.Alias ?? null, display_name: u.Name ?? null, email: u.Email ?? null,
      email_verified: true, first_name: u.FirstName ?? null, last_name: u.LastName ?? null, timezone: u.TimeZoneSidKey ?? 'GMT',
      active: u.IsActive !== false, user_type: 'STANDARD', language: 'en_US', locale: 'en_US', utcOffset: 0,
      urls: {
        enterprise: `${b}/services/Soap/c/{version}/${orgId.slice(0, 15)}`, partner: `${b}/services/Soap/u/{version}/${orgId.slice(0, 15)}`,
        rest: `${b}/services/data/v{version}/`, sobjects: `${b}/services/data/v{version}/sobjects/`, query: `${b}/services/data/v{version}/query/`,
        profile: `${b}/${userId}`, custom_domain: b,
      },
      is_app_installed: true, last_modified_date: typeof u.LastModifiedDate === 'number' ? new Date(u.LastModifiedDate).toISOString().replace('Z', '+0000') : null,
      api_version: v,
    };
  }

  // ----- authorization-code flow -----

  private async authorize(method: string, url: URL, req: IncomingMessage): Promise<Reply> {
    const params = method === 'POST' ? new URLSearchParams(await readBody(req)) : url.searchParams;
    const clientId = params.get('client_id') ?? undefined;
    const redirectUri = params.get('redirect_uri') ?? '';
    const state = params.get('state');
    const problem = this.c.oauth.checkClient(clientId, redirectUri);
    if (problem || !redirectUri) {
      const text = problem === 'redirect_uri_mismatch' ? 'redirect_uri_mismatch: redirect_uri must match configuration' : !redirectUri ? 'invalid_request: missing redirect_uri' : 'invalid_client_id: client identifier invalid';
      return { status: 400, body: `<!DOCTYPE html><html><body><h1>Remote Access Application error</h1><p>${escapeHtml(text)}</p></body></html>`, contentType: HTML_CT };
    }
    const redirect = (q: Record<string, string>): Reply => {
      const target = new URL(redirectUri);
      for (const [k, v] of Object.entries(q)) target.searchParams.set(k, v);
      if (state !== null) target.searchParams.set('state', state);
      const loc = target.toString();
      return { status: 302, body: `<html><body>Redirecting to <a href="${escapeHtml(loc)}">${escapeHtml(loc)}</a></body></html>`, contentType: HTML_CT, headers: { Location: loc } };
    };
    const responseType = params.get('response_type');
    if (responseType !== 'code') return redirect({ error: 'unsupported_response_type', error_description: 'response type not supported' });
    const users = [...this.c.org.model('User')!.records.values()].filter((u) => u.IsActive !== false);
    const pick = (ref: string | null): string | undefined => {
      if (!ref) return users[0]?.Id as string | undefined;
      return (users.find((u) => u.Username === ref || u.Id === normalizeId(ref))?.Id as string | undefined);
    };
    if (method === 'POST') {
      if (params.get('action') === 'deny') return redirect({ error: 'access_denied', error_description: 'end-user denied authorization' });
      const userId = pick(params.get('username'));
      if (!userId) return { status: 400, body: '<!DOCTYPE html><html><body><p>Unknown user</p></body></html>', contentType: HTML_CT };
      return redirect({ code: this.c.oauth.issueCode(userId, clientId!, redirectUri) });
    }
    if (this.c.oauth.autoApprove) {
      const userId = pick(params.get('login_hint'));
      if (userId) return redirect({ code: this.c.oauth.issueCode(userId, clientId!, redirectUri) });
    }
    const hidden = ['client_id', 'redirect_uri', 'state', 'response_type', 'scope']
      .filter((k) => params.get(k) !== null)
      .map((k) => `<input type="hidden" name="${k}" value="${escapeHtml(params.get(k)!)}">`).join('');
    const options = users.map((u) => `<option value="${escapeHtml(String(u.Username))}"${u.Username === params.get('login_hint') ? ' selected' : ''}>${escapeHtml(String(u.Name ?? u.Username))} (${escapeHtml(String(u.Username))})</option>`).join('');
    const html = `<!DOCTYPE html><html><head><title>Allow Access? | Salesforce simulator</title></head><body>
<h1>Allow Access?</h1><p>The application <b>${escapeHtml(clientId!)}</b> asks to access the simulated org ${escapeHtml(this.c.org.org.name)}.</p>
<form method="POST" action="/services/oauth2/authorize">${hidden}
<label>Log in as <select name="username">${options}</select></label>
<button type="submit" name="action" value="allow">Allow</button> <button type="submit" name="action" value="deny">Deny</button>
</form></body></html>`;
    return { status: 200, body: html, contentType: HTML_CT };
  }

  // ----- REST API -----

  private limitHeader(): string {
    return `api-usage=${this.c.usage.used()}/${this.c.usage.limit}`;
  }

  private async api(method: string, version: string, rest: string, url: URL, req: IncomingMessage): Promise<Reply> {
    const token = this.c.oauth.validateAccess(this.bearer(req));
    if (!token) {
      return { ...jsonReply(401, [{ message: 'Session expired or invalid', errorCode: 'INVALID_SESSION_ID' }]), headers: { 'WWW-Authenticate': 'Token' } };
    }
    const used = this.c.usage.used();
    if (used >= this.c.usage.limit) {
      const r = jsonReply(403, [{ message: 'TotalRequests Limit exceeded.', errorCode: 'REQUEST_LIMIT_EXCEEDED' }]);
      return { ...r, headers: { 'Sforce-Limit-Info': `api-usage=${used}/${this.c.usage.limit}` } };
    }
    this.c.usage.add();
    this.c.count('api:counted');
    let reply: Reply;
    try {
      const v = Number(version);
      if (!/^\d+\.\d$/.test(version) || v > Number(this.c.org.org.apiVersion) || v < Number(this.c.org.org.minApiVersion)) throw NOT_FOUND_ERR();
      reply = await this.apiRoute({ req, url, version, rest, method, token });
    } catch (e) {
      if (!(e instanceof SfError)) throw e;
      reply = errorReply(e);
    }
    reply.headers = { ...(reply.headers ?? {}), 'Sforce-Limit-Info': this.limitHeader() };
    return reply;
  }

  private async apiRoute(ctx: ApiCtx): Promise<Reply> {
    const { method, rest, version } = ctx;
    let m: RegExpExecArray | null;
    if (rest === '' && method === 'GET') return this.resources(version);
    if (rest === '/limits' && method === 'GET') return this.limits();
    if (rest === '/sobjects' && method === 'GET') return this.describeGlobal(version);
    if ((m = /^\/sobjects\/([^/]+)\/describe$/.exec(rest)) && method === 'GET') return this.describe(m[1]!, version);
    if ((m = /^\/sobjects\/([^/]+)$/.exec(rest)) && method === 'GET') return this.sobjectInfo(m[1]!, version);
    if ((m = /^\/sobjects\/([^/]+)\/([^/]+)$/.exec(rest)) && method === 'GET') return this.retrieve(m[1]!, m[2]!, ctx);
    if ((m = /^\/(query|queryAll)$/.exec(rest)) && method === 'GET') return this.query(ctx, m[1] === 'queryAll');
    if ((m = /^\/(query|queryAll)\/([^/]+)$/.exec(rest)) && method === 'GET') return this.queryMore(ctx, decodeURIComponent(m[2]!));
    if (rest === '/jobs/query') {
      if (method === 'POST') {
        const body = parseJsonBody(await readBody(ctx.req));
        return jsonReply(200, this.c.bulk.create(body, ctx.token.userId, version));
      }
      if (method === 'GET') return jsonReply(200, this.c.bulk.list());
    }
    if ((m = /^\/jobs\/query\/([^/]+)$/.exec(rest))) {
      const id = m[1]!;
      if (method === 'GET') return jsonReply(200, this.c.bulk.poll(id));
      if (method === 'PATCH') return jsonReply(200, this.c.bulk.abort(id, parseJsonBody(await readBody(ctx.req))));
      if (method === 'DELETE') {
        this.c.bulk.delete(id);
        return { status: 204, body: '', contentType: JSON_CT };
      }
    }
    if ((m = /^\/jobs\/query\/([^/]+)\/results$/.exec(rest)) && method === 'GET') {
      const r = this.c.bulk.results(m[1]!, version, ctx.url.searchParams.get('locator'), ctx.url.searchParams.get('maxRecords'));
      return { status: 200, body: r.csv, contentType: CSV_CT, headers: { 'Sforce-Locator': r.locator, 'Sforce-NumberOfRecords': String(r.count) } };
    }
    throw NOT_FOUND_ERR();
  }

  private resources(version: string): Reply {
    const p = `/services/data/v${version}`;
    return jsonReply(200, {
      limits: `${p}/limits`, sobjects: `${p}/sobjects`, query: `${p}/query`, queryAll: `${p}/queryAll`, jobs: `${p}/jobs`,
    });
  }

  private limits(): Reply {
    const used = this.c.usage.used();
    const lim = this.c.usage.limit;
    const bulkMax = this.c.bulk.behaviour.dailyQueryJobLimit;
    const mm = (max: number, remaining = max) => ({ Max: max, Remaining: remaining });
    return jsonReply(200, {
      ConcurrentAsyncGetReportInstances: mm(200), ConcurrentSyncReportRuns: mm(20),
      DailyApiRequests: mm(lim, Math.max(0, lim - used)), DailyAsyncApexExecutions: mm(250000),
      DailyBulkApiBatches: mm(15000), DailyBulkV2QueryFileStorageMB: mm(976562),
      DailyBulkV2QueryJobs: mm(bulkMax, Math.max(0, bulkMax - this.c.bulk.jobsInLast24h())),
      DataStorageMB: mm(5), FileStorageMB: mm(20), HourlyAsyncReportRuns: mm(1200), HourlySyncReportRuns: mm(500),
    });
  }

  private rewriteHosts(text: string): string {
    return text.replace(/https:\/\/[A-Za-z0-9.-]+\.salesforce\.com/g, this.base);
  }

  private describeGlobal(version: string): Reply {
    const key = `__global|${version}`;
    let text = this.describeCache.get(key);
    if (!text) {
      const sobjects = [...this.c.org.objects.values()].map((m) => globalEntry(m.describe)).sort((a, b) => String(a.name).localeCompare(String(b.name)));
      text = rewriteVersion(JSON.stringify({ encoding: 'UTF-8', maxBatchSize: 200, sobjects }), version);
      this.describeCache.set(key, text);
    }
    return jsonReply(200, text);
  }

  private modelOr404(name: string) {
    const m = this.c.org.model(name);
    if (!m) throw NOT_FOUND_ERR();
    return m;
  }

  private describe(name: string, version: string): Reply {
    const m = this.modelOr404(name);
    const key = `${m.name}|${version}`;
    let text = this.describeCache.get(key);
    if (!text) {
      text = this.rewriteHosts(rewriteVersion(JSON.stringify(m.describe), version));
      this.describeCache.set(key, text);
    }
    return jsonReply(200, text);
  }

  private sobjectInfo(name: string, version: string): Reply {
    const m = this.modelOr404(name);
    return jsonReply(200, rewriteVersion(JSON.stringify({ objectDescribe: globalEntry(m.describe), recentItems: [] }), version));
  }

  private retrieve(name: string, id: string, ctx: ApiCtx): Reply {
    const m = this.modelOr404(name);
    if (!isIdString(id)) throw NOT_FOUND_ERR();
    const rec = m.records.get(normalizeId(id));
    if (!rec || rec.IsDeleted === true) throw NOT_FOUND_ERR();
    const fieldsParam = ctx.url.searchParams.get('fields');
    const fields = fieldsParam ? fieldsParam.split(',').map((s) => s.trim()).filter(Boolean) : m.describe.fields.map((f) => f.name);
    const cq = compileQuery(this.c.org, `SELECT ${fields.join(', ')} FROM ${m.name}`, { now: this.c.clock() });
    return jsonReply(200, renderJsonRecord(this.c.org, renderTree(cq), cq, rec, ctx.version));
  }

  private batchSize(req: IncomingMessage, cq: CompiledQuery): number {
    let size = this.c.queryPageSize;
    const h = req.headers['sforce-query-options'];
    const mm = typeof h === 'string' ? /batchSize\s*=\s*(\d+)/i.exec(h) : null;
    if (mm) size = Math.min(this.c.queryBatchSizeMax, Math.max(this.c.queryBatchSizeMin, Number(mm[1])));
    if (cq.longTextFields >= 2) size = Math.min(size, 200);
    return size;
  }

  private page(cursor: Cursor | null, cq: CompiledQuery, rows: SimRecord[], offset: number, pageSize: number, version: string): string {
    const tree = renderTree(cq);
    const end = Math.min(rows.length, offset + pageSize);
    const recs: string[] = [];
    for (let i = offset; i < end; i++) recs.push(renderJsonRecord(this.c.org, tree, cq, rows[i]!, version));
    const done = end >= rows.length;
    const next = !done && cursor ? `,"nextRecordsUrl":${JSON.stringify(`/services/data/v${version}/query/${cursor.id}-${end}`)}` : '';
    return `{"totalSize":${rows.length},"done":${done}${next},"records":[${recs.join(',')}]}`;
  }

  private pruneCursors(): void {
    const now = this.c.clock();
    for (const [id, cur] of this.c.cursors) if (now - cur.lastUsed > this.c.queryLocatorTtlMs) this.c.cursors.delete(id);
  }

  private query(ctx: ApiCtx, scanAll: boolean): Reply {
    const q = ctx.url.searchParams.get('q');
    if (q === null || q.trim() === '') throw new SfError(400, 'MALFORMED_QUERY', 'A query string has to be specified');
    const cq = compileQuery(this.c.org, q, { now: this.c.clock() });
    const rows = executeQuery(cq, scanAll);
    if (cq.kind === 'count') return jsonReply(200, `{"totalSize":${rows.length},"done":true,"records":[]}`);
    if (cq.kind === 'aggregate') return jsonReply(200, `{"totalSize":1,"done":true,"records":[${aggregateRow(cq, rows)}]}`);
    const pageSize = this.batchSize(ctx.req, cq);
    let cursor: Cursor | null = null;
    if (rows.length > pageSize) {
      this.pruneCursors();
      cursor = { id: this.c.cursorIds.next('0r8'), cq, rows, pageSize, lastUsed: this.c.clock() };
      this.c.cursors.set(cursor.id, cursor);
    }
    return jsonReply(200, this.page(cursor, cq, rows, 0, pageSize, ctx.version));
  }

  private queryMore(ctx: ApiCtx, locator: string): Reply {
    const mm = /^([A-Za-z0-9]{15,18})-(\d+)$/.exec(locator);
    this.pruneCursors();
    const cursor = mm ? this.c.cursors.get(normalizeId(mm[1]!)) : undefined;
    if (!mm || !cursor) throw new SfError(400, 'INVALID_QUERY_LOCATOR', 'invalid query locator');
    const offset = Number(mm[2]);
    if (offset > cursor.rows.length) throw new SfError(400, 'INVALID_QUERY_LOCATOR', 'invalid query locator');
    cursor.lastUsed = this.c.clock();
    const h = ctx.req.headers['sforce-query-options'];
    const pageSize = typeof h === 'string' ? this.batchSize(ctx.req, cursor.cq) : cursor.pageSize;
    return jsonReply(200, this.page(cursor, cursor.cq, cursor.rows, offset, pageSize, ctx.version));
  }

  // ----- admin API (/__admin/..., the public contract of issue #4) -----

  private async admin(method: string, path: string, req: IncomingMessage): Promise<Reply> {
    const fail = (status: number, message: string, errorCode: string) => jsonReply(status, [{ message, errorCode }]);
    try {
      if (path === 'stats') {
        if (method === 'GET') return jsonReply(200, this.c.stats());
      } else if (path === 'stats/reset') {
        if (method === 'POST') { await readBody(req); this.c.resetStats(); return jsonReply(200, this.c.stats()); }
      } else if (path === 'records' || path === 'delete') {
        if (method === 'POST') {
          const body = parseJsonBody(await readBody(req));
          if (body === null || typeof body !== 'object' || Array.isArray(body)) throw new DataError('the body must be a JSON object');
          const b = body as Record<string, unknown>;
          return jsonReply(200, path === 'records' ? this.c.adminUpsert(b.object, b.records) : this.c.adminDelete(b.object, b.ids));
        }
      } else {
        return fail(404, `No admin route /__admin/${path}`, 'NOT_FOUND');
      }
      return { ...fail(405, `${method} is not allowed on /__admin/${path}`, 'METHOD_NOT_ALLOWED'), headers: { Allow: path === 'stats' ? 'GET' : 'POST' } };
    } catch (e) {
      if (e instanceof SfError) return errorReply(e);
      if (e instanceof DataError) return fail(400, e.message, 'INVALID_ADMIN_REQUEST');
      throw e;
    }
  }

  // ----- controls (/__simulator/...) -----

  private async control(method: string, path: string, req: IncomingMessage): Promise<Reply> {
    const body = method === 'GET' ? null : parseJsonBody(await readBody(req)) as Record<string, unknown> | unknown[] | null;
    const b = (body && !Array.isArray(body) ? body : {}) as Record<string, unknown>;
    const ok = (x: unknown = { ok: true }) => jsonReply(200, x);
    let m: RegExpExecArray | null;
    try {
      if (path === 'counters' && method === 'GET') return ok(this.c.counters());
      if (path === 'reset-counters' && method === 'POST') { this.c.resetCounters(); return ok(); }
      if (path === 'state' && method === 'GET') return ok(this.c.summary());
      if (path === 'faults') {
        if (method === 'GET') return ok(this.c.faults());
        if (method === 'DELETE') { this.c.clearFaults(); return ok(); }
        if (method === 'POST') {
          const rules = Array.isArray(body) ? body : Array.isArray(b.rules) ? b.rules : [b];
          for (const r of rules) this.c.addFault(r as SimFaultRule);
          return ok(this.c.faults());
        }
      }
      if (path === 'expire-tokens' && method === 'POST') return ok({ expired: this.c.expireAllAccessTokens() });
      if (path === 'revoke-refresh-token' && method === 'POST') return ok({ revoked: this.c.revokeRefreshToken(String(b.token ?? b.refresh_token ?? '')) });
      if (path === 'revoke-all-refresh-tokens' && method === 'POST') return ok({ revoked: this.c.revokeAllRefreshTokens() });
      if (path === 'tokens' && method === 'POST') return ok(this.c.issueTokens({ user: b.user as string | undefined, clientId: b.clientId as string | undefined }));
      if (path === 'api-usage') {
        if (method === 'POST') {
          if (typeof b.limit === 'number') this.c.setDailyApiLimit(b.limit);
          if (typeof b.used === 'number') this.c.setApiUsage(b.used);
        }
        return ok(this.c.apiUsage());
      }
      if (path === 'settings' && method === 'POST') {
        if (typeof b.rotateRefreshTokens === 'boolean') this.c.setRefreshTokenRotation(b.rotateRefreshTokens);
        if (typeof b.accessTokenLifetimeSeconds === 'number') this.c.setAccessTokenLifetime(b.accessTokenLifetimeSeconds);
        if (typeof b.queryPageSize === 'number') this.c.queryPageSize = b.queryPageSize;
        if (typeof b.dailyApiLimit === 'number') this.c.setDailyApiLimit(b.dailyApiLimit);
        return ok(this.c.summary());
      }
      if ((m = /^records\/([^/]+)$/.exec(path))) {
        if (method === 'GET') return ok(this.c.records(m[1]!, { includeDeleted: true }));
        if (method === 'POST') return ok(this.c.upsert(m[1]!, (Array.isArray(body) ? body : [b]) as SimRecord[]));
      }
      if ((m = /^records\/([^/]+)\/(delete|undelete)$/.exec(path)) && method === 'POST') {
        const ids = (b.ids ?? []) as string[];
        const n = m[2] === 'delete' ? this.c.delete(m[1]!, ids, { hard: b.hard === true }) : this.c.undelete(m[1]!, ids);
        return ok({ affected: n });
      }
      if (path === 'bulk' && method === 'POST') { this.c.setBulkBehaviour(b as SimBulkSettings); return ok(this.c.summary().bulk); }
      if (path === 'bulk/fail-next' && method === 'POST') { this.c.failNextBulkJobs(Number(b.count ?? 1), b.message as string | undefined); return ok(); }
      if ((m = /^bulk\/jobs\/([^/]+)\/fail$/.exec(path)) && method === 'POST') return ok({ failed: this.c.failBulkJob(m[1]!, b.message as string | undefined) });
    } catch (e) {
      if (e instanceof SfError) return errorReply(e);
      return jsonReply(400, [{ message: (e as Error).message, errorCode: 'SIMULATOR_CONTROL_ERROR' }]);
    }
    return jsonReply(404, [{ message: `No simulator control ${method} /__simulator/${path}`, errorCode: 'NOT_FOUND' }]);
  }
}

function loadData(data: SalesforceSimData | string): { data: SalesforceSimData; baseDir: string } {
  if (typeof data === 'string') {
    const abs = resolve(data);
    return { data: JSON.parse(readFileSync(abs, 'utf8')) as SalesforceSimData, baseDir: dirname(abs) };
  }
  return { data, baseDir: process.cwd() };
}

export async function startSalesforceSimulator(opts: StartSalesforceSimulatorOptions): Promise<SalesforceSimulator> {
  const clock = opts.clock ?? (() => Date.now());
  const { data, baseDir } = loadData(opts.data);
  let controls: SalesforceSimControls;
  try {
    controls = new SalesforceSimControls(data, baseDir, clock);
  } catch (e) {
    if (e instanceof DataError) throw new Error(`Salesforce simulator data: ${e.message}`);
    throw e;
  }
  const sim = new SimServer(controls);
  const sockets = new Set<Socket>();
  const server: Server = createServer((req, res) => {
    sim.handle(req, res).catch((e: unknown) => {
      if (!res.headersSent) {
        res.writeHead(500, { 'Content-Type': JSON_CT });
        res.end(JSON.stringify([{ message: `Simulator error: ${(e as Error).message}`, errorCode: 'UNKNOWN_EXCEPTION' }]));
      }
    });
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  const host = opts.host ?? '127.0.0.1';
  await new Promise<void>((res, rej) => {
    server.once('error', rej);
    server.listen(opts.port ?? 0, host, () => res());
  });
  const port = (server.address() as AddressInfo).port;
  const urlHost = host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host.includes(':') ? `[${host}]` : host;
  const url = `http://${urlHost}:${port}`;
  controls.baseUrl = (opts.publicUrl ?? url).replace(/\/$/, '');
  return {
    url,
    state: controls,
    counters: () => controls.counters(),
    stats: () => controls.stats(),
    close: () => new Promise<void>((res) => {
      server.close(() => res());
      for (const s of sockets) s.destroy();
    }),
  };
}

