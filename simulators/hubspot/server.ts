/**
 * A local simulator of HubSpot's CRM APIs as @hubspot/api-client 14 calls them (see README.md):
 * OAuth token endpoint, CRM objects v3 (list, get, batch read, search), properties, owners,
 * associations v4, custom object schemas, pipelines; with HubSpot's limits, errors, rate limits,
 * token expiry, search index lag, request validation against the official OpenAPI specs, and
 * test controls (clock, faults, counters) under /__simulator, plus the public admin API of issue #5
 * under /__admin (stats, record upserts and archives, association changes).
 */
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { setTimeout as sleep } from "node:timers/promises";
import { TokenStore, type AccessToken } from "./auth.ts";
import { HttpError, apiError, correlationId, missingScopes, notFound, rateLimited, validationError, type JsonObject, type RatePolicy } from "./errors.ts";
import { RateLimiter } from "./limits.ts";
import { checkSearchRequest, runSearch, type SearchHit, type SearchRequest } from "./search.ts";
import { specRegistry, type OpRef, type ValidationProblem } from "./spec.ts";
import { normalizeHubSpotData } from "./contract.ts";
import { DataError, Store, loadData, type ObjectType, type Owner, type Pipeline, type Property, type RecordVersion, type StoredRecord } from "./store.ts";
import type { ContractAssociation, HubSpotContractData, HubSpotSimData, PropertyValue } from "./types.ts";

export type { HubSpotContractData, HubSpotSimData } from "./types.ts";
export { generateHubSpotData } from "./generate.ts";

export interface HubSpotSimulatorOptions {
  /** 0 (default) picks a free port. */
  port?: number;
  /** Default 127.0.0.1. */
  host?: string;
  /** The data document (the simulator's format or the public one of issue #5), or the path of a JSON file holding it. */
  data: HubSpotSimData | HubSpotContractData | string;
  /** Milliseconds since the epoch; drives token expiry, rate-limit windows, index lag. Default Date.now. */
  clock?: () => number;
  /** Validate every response against the spec; a non-conforming one becomes a 500 and is logged. */
  validateResponses?: boolean;
  /** Where to log (one line per event). Default: nothing. */
  log?: (line: string) => void;
}

/** One fault: the next `count` requests matching `path` (exact, or a prefix ending in `*`) misbehave. */
export interface FaultSpec {
  path: string;
  method?: string;
  /** Default 1. */
  count?: number;
  /** Answer this status instead of the real response (5xx, 429, ...). */
  status?: number;
  /** For status 429: which limit the body names. Default TEN_SECONDLY_ROLLING. */
  policy?: RatePolicy;
  /** Wait this long (real time) before answering. */
  delayMs?: number;
  /**
   * Corrupt the body: "truncated" (cut in half), "malformed" (not JSON), "empty", "html" (a
   * gateway HTML page), "no-content-type" (the JSON without a Content-Type header).
   */
  body?: "truncated" | "malformed" | "empty" | "html" | "no-content-type";
}

export interface ResponseValidationFailure {
  method: string;
  path: string;
  status: number;
  problems: ValidationProblem[];
}

export interface PublicRecord {
  id: string;
  properties: Record<string, string | null>;
  createdAt: string;
  updatedAt: string;
  archived: boolean;
  archivedAt?: string;
}

/** `GET /__admin/stats`: API requests by `<METHOD> <route>` (as the counters name them), and how many got a 429. */
export interface AdminStats {
  total: number;
  requests: Record<string, number>;
  rateLimited: number;
}

export interface HubSpotSimulator {
  /** http://host:port, no trailing slash (give it to the client as basePath). */
  url: string;
  port: number;
  close(): Promise<void>;
  /** Requests per endpoint (`GET /crm/v3/objects/deals`, ...), /__simulator excluded. */
  counters(): Record<string, number>;
  resetCounters(): void;
  /** The simulator's current time (clock + advanceClock offsets). */
  now(): number;
  advanceClock(ms: number): void;
  /** Mints an access token (default: OAuth, granted scopes, accessTokenTtlSeconds). */
  issueAccessToken(opts?: { scopes?: string[]; ttlSeconds?: number; kind?: "oauth" | "private_app" }): string;
  /** Adds a refresh token usable at POST /oauth/v1/token. */
  addRefreshToken(opts?: { token?: string; scopes?: string[] }): string;
  /** Expires one access token (or all) now; returns how many. */
  expireAccessTokens(token?: string): number;
  /** Revokes a refresh token (BAD_REFRESH_TOKEN from then on); optionally its access tokens too. */
  revokeRefreshToken(token: string, opts?: { revokeAccessTokens?: boolean }): boolean;
  revokeAccessToken(token: string): boolean;
  injectFault(fault: FaultSpec): void;
  clearFaults(): void;
  /** Creates or updates a record now (search sees it after the index delay). */
  upsertRecord(type: string, record: { id?: string; properties?: Record<string, PropertyValue>; updatedAt?: string; createdAt?: string }): PublicRecord;
  archiveRecord(type: string, id: string): void;
  /** What GET /__admin/stats answers; resetStats() is POST /__admin/stats/reset. */
  stats(): AdminStats;
  resetStats(): void;
  /** POST /__admin/records: upserts records in GET shape (all or nothing); see README. */
  upsertRecords(type: string, records: Array<{ id?: string | number; properties?: Record<string, PropertyValue>; createdAt?: string; updatedAt?: string; archived?: boolean }>): PublicRecord[];
  /** POST /__admin/archive. */
  archiveRecords(type: string, ids: Array<string | number>): { objectType: string; archived: string[]; notFound: string[] };
  /** POST /__admin/associations: adds/removes associations without touching last-modified dates. */
  changeAssociations(change: { add?: ContractAssociation[]; remove?: ContractAssociation[] }): { added: number; removed: number };
  resetRateLimits(): void;
  rateLimitUsage(): { day: string; daily: number; buckets: Record<string, number> };
  responseValidationFailures(): ResponseValidationFailure[];
  requestLog(): Array<{ method: string; path: string; status: number }>;
  settings: Store["settings"];
}

interface Ctx {
  method: string;
  path: string;
  params: Record<string, string>;
  query: Record<string, unknown>;
  rawQuery: URLSearchParams;
  body: unknown;
  token: AccessToken | undefined;
  now: number;
}

interface Reply {
  status: number;
  body?: unknown;
  headers?: Record<string, string>;
}

interface Resolved {
  /** The spec operation (absent for the few endpoints no copied spec describes: no spec checks then). */
  ref?: OpRef;
  /** Object types whose read scopes the call needs (narrowing the spec's generic alternatives). */
  scopeTypes?: ObjectType[];
  search?: boolean;
  type?: ObjectType;
  toType?: ObjectType;
}

interface Route {
  method: string;
  pattern: RegExp;
  /** Counter key template; `{x}` stays literal, `<x>` is replaced by the parameter. */
  key: string;
  noAuth?: boolean;
  resolve(params: Record<string, string>): Resolved;
  handle(ctx: Ctx, r: Resolved): Reply;
}

const JSON_TYPE = "application/json;charset=utf-8";
/** HubSpot reads at most 50 records per page when propertiesWithHistory is asked. */
const HISTORY_MAX_LIMIT = 50;

// ---- helpers --------------------------------------------------------------------------------

function encodeCursor(value: string | number): string {
  return encodeURIComponent(Buffer.from(`${value}\n`).toString("base64"));
}

function decodeCursor(after: string, what: string): number {
  if (/^\d+$/.test(after)) return Number(after);
  let s = after;
  try { if (s.includes("%")) s = decodeURIComponent(s); } catch { /* keep */ }
  const decoded = Buffer.from(s, "base64").toString("utf8").trim();
  if (!/^\d+$/.test(decoded)) throw validationError(`Invalid ${what} paging cursor '${after}'.`, { context: { after: [after] } });
  return Number(decoded);
}

function lowerBound(list: StoredRecord[], idNum: number): number {
  let lo = 0, hi = list.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if ((list[mid]?.idNum ?? 0) < idNum) lo = mid + 1; else hi = mid;
  }
  return lo;
}

function selectProperties(t: ObjectType, v: RecordVersion, requested: string[] | undefined): Record<string, string | null> {
  const names = new Set<string>();
  const wanted = (requested ?? []).filter((p) => p !== "");
  if (wanted.length === 0) {
    for (const p of t.defaultProperties) if (t.properties.has(p)) names.add(p);
  } else {
    for (const p of wanted) if (t.properties.has(p)) names.add(p);
  }
  names.add("hs_object_id");
  names.add(t.createdProperty);
  names.add(t.lastModifiedProperty);
  const out: Record<string, string | null> = {};
  for (const n of [...names].sort()) out[n] = v.properties[n] ?? null;
  return out;
}

function publicObject(t: ObjectType, rec: StoredRecord, v: RecordVersion, requested: string[] | undefined): JsonObject {
  const o: JsonObject = { id: rec.id, properties: selectProperties(t, v, requested), createdAt: v.createdAt, updatedAt: v.updatedAt, archived: v.archived };
  if (v.archived && v.archivedAt) o.archivedAt = v.archivedAt;
  return o;
}

/** The simulator keeps no history: each asked property's current value, stamped with updatedAt. */
function historyOf(rec: StoredRecord, names: string[]): JsonObject {
  const out: JsonObject = {};
  for (const n of names) {
    const v = rec.properties[n];
    out[n] = v === null || v === undefined ? [] : [{ value: v, timestamp: rec.updatedAt, sourceType: "CRM_UI" }];
  }
  return out;
}

function publicProperty(p: Property): JsonObject {
  const out: JsonObject = { ...p };
  return out;
}

function publicOwner(o: Owner): JsonObject {
  const out: JsonObject = { id: o.id };
  if (o.email !== undefined) out.email = o.email;
  if (o.firstName !== undefined) out.firstName = o.firstName;
  if (o.lastName !== undefined) out.lastName = o.lastName;
  out.userId = o.userId;
  if (o.userIdIncludingInactive !== undefined) out.userIdIncludingInactive = o.userIdIncludingInactive;
  out.type = o.type;
  out.createdAt = o.createdAt;
  out.updatedAt = o.updatedAt;
  out.archived = o.archived;
  out.teams = o.teams;
  return out;
}

/** Offset of a time zone from UTC at an instant, in ms. */
function utcOffsetMs(timeZone: string, at: number): number {
  const parts = new Intl.DateTimeFormat("en-US", {
    timeZone, hourCycle: "h23", year: "numeric", month: "2-digit", day: "2-digit", hour: "2-digit", minute: "2-digit", second: "2-digit",
  }).formatToParts(new Date(at));
  const get = (t: string) => Number(parts.find((p) => p.type === t)?.value ?? "0");
  const local = Date.UTC(get("year"), get("month") - 1, get("day"), get("hour"), get("minute"), get("second"));
  return local - Math.floor(at / 1000) * 1000;
}

function hasScopes(token: AccessToken, alternatives: string[][]): boolean {
  return alternatives.some((alt) => alt.every((s) => token.scopes.includes(s)));
}

function stringArray(v: unknown): string[] | undefined {
  return Array.isArray(v) ? v.map(String) : undefined;
}

// ---- the simulator ----------------------------------------------------------------------------

export async function startHubSpotSimulator(opts: HubSpotSimulatorOptions): Promise<HubSpotSimulator> {
  const baseClock = opts.clock ?? Date.now;
  let offset = 0;
  const now = (): number => baseClock() + offset;
  const data = normalizeHubSpotData(loadData(opts.data));
  const store = new Store(data, now());
  const spec = specRegistry();
  const tokens = new TokenStore(store.settings, data.portal?.oauth, now());
  const limiter = new RateLimiter(store.settings);
  const log = opts.log ?? (() => {});
  const counts = new Map<string, number>();
  /** /__admin/stats: per-route requests and 429s, reset independently of the counters. */
  const statCounts = new Map<string, number>();
  let rateLimitedCount = 0;
  let faults: Array<FaultSpec & { remaining: number }> = [];
  const failures: ResponseValidationFailure[] = [];
  const recent: Array<{ method: string; path: string; status: number }> = [];
  const searchCache = new Map<string, { version: number; validUntil: number; hits: SearchHit[] }>();

  const typeOr400 = (name: string): ObjectType => {
    const t = store.resolveType(name);
    if (!t) throw validationError(`Unable to infer object type from: ${decodeURIComponent(name)}`, { context: { objectType: [name] } });
    return t;
  };
  const objectsOp = (t: ObjectType, suffix: string, method: string): OpRef =>
    ({ file: t.specFile, path: `/crm/v3/objects/${t.specSegment}${suffix}`, method });
  const genericScopes = (t: ObjectType): ObjectType[] | undefined => (t.specSegment === "{objectType}" ? [t] : undefined);

  /** Scope alternatives for an operation, narrowed per object type for the spec's catch-all lists. */
  const requiredScopes = (r: Resolved): string[][][] => {
    if (!r.ref) return [];
    const alts = spec.scopeAlternatives(r.ref);
    if (!r.scopeTypes || alts.length === 0) return [alts];
    return r.scopeTypes.map((t) => {
      const own = t.specSegment === "{objectType}" ? [] : spec.scopeAlternatives(objectsOp(t, "", "GET"));
      const narrowed = alts.filter((alt) => alt.some((s) => s.includes(`.${t.scopeKey}.`) || s === t.scopeKey));
      const merged = [...narrowed, ...own];
      return merged.length > 0 ? merged : alts;
    });
  };

  const searchHits = (t: ObjectType, req: SearchRequest, at: number): SearchHit[] => {
    const key = `${t.name}|${JSON.stringify([req.filterGroups ?? [], req.sorts ?? [], req.query ?? ""])}`;
    const hit = searchCache.get(key);
    if (hit && hit.version === store.version && at < hit.validUntil) return hit.hits;
    const hits = runSearch(req, t, store, at);
    searchCache.set(key, { version: store.version, validUntil: store.nextVisibilityChange(t, at), hits });
    if (searchCache.size > 64) searchCache.delete(searchCache.keys().next().value as string);
    return hits;
  };

  // ---- routes ---------------------------------------------------------------------------------
  const routes: Route[] = [];
  const route = (method: string, path: string, def: Omit<Route, "method" | "pattern" | "key"> & { key?: string }): void => {
    const pattern = new RegExp(`^${path.replace(/[.]/g, "\\.").replace(/\{(\w+)\}/g, "(?<$1>[^/]+)")}$`);
    routes.push({ method, pattern, key: def.key ?? path, ...def });
  };

  // OAuth
  route("POST", "/oauth/v1/token", {
    noAuth: true,
    resolve: () => ({ ref: { file: "oauth-v1.json", path: "/oauth/v1/token", method: "POST" } }),
    handle: (ctx) => {
      const form: Record<string, string> = {};
      for (const [k, v] of Object.entries((ctx.body ?? {}) as Record<string, unknown>)) if (typeof v === "string") form[k] = v;
      for (const k of ["client_secret", "refresh_token"]) {
        const q = ctx.rawQuery.get(k);
        if (q !== null && form[k] === undefined) form[k] = q;
      }
      return { status: 200, body: tokens.tokenEndpoint(form, ctx.now) };
    },
  });
  route("GET", "/oauth/v1/access-tokens/{token}", {
    noAuth: true, key: "GET /oauth/v1/access-tokens/{token}",
    resolve: () => ({ ref: { file: "oauth-v1.json", path: "/oauth/v1/access-tokens/{token}", method: "GET" } }),
    handle: (ctx) => {
      const info = tokens.accessTokenInfo(ctx.params.token ?? "", ctx.now);
      if (!info) throw notFound("Token not found or expired.");
      return { status: 200, body: info };
    },
  });
  route("GET", "/oauth/v1/refresh-tokens/{token}", {
    noAuth: true, key: "GET /oauth/v1/refresh-tokens/{token}",
    resolve: () => ({ ref: { file: "oauth-v1.json", path: "/oauth/v1/refresh-tokens/{token}", method: "GET" } }),
    handle: (ctx) => {
      const info = tokens.refreshTokenInfo(ctx.params.token ?? "");
      if (!info) throw notFound("Refresh token not found.");
      return { status: 200, body: info };
    },
  });
  route("DELETE", "/oauth/v1/refresh-tokens/{token}", {
    noAuth: true, key: "DELETE /oauth/v1/refresh-tokens/{token}",
    resolve: () => ({ ref: { file: "oauth-v1.json", path: "/oauth/v1/refresh-tokens/{token}", method: "DELETE" } }),
    handle: (ctx) => {
      if (!tokens.revokeRefreshToken(ctx.params.token ?? "", true)) throw notFound("Refresh token not found.");
      return { status: 204 };
    },
  });

  // CRM objects v3
  route("GET", "/crm/v3/objects/{type}", {
    key: "GET /crm/v3/objects/<type>",
    resolve: (p) => { const t = typeOr400(p.type ?? ""); return { ref: objectsOp(t, "", "GET"), type: t, scopeTypes: genericScopes(t) }; },
    handle: (ctx, r) => {
      const t = r.type!;
      const lim = store.settings.limits;
      let limit = (ctx.query.limit as number | undefined) ?? 10;
      if (limit < 1) throw validationError(`limit must be at least 1 (got ${limit}).`, { context: { limit: [String(limit)] } });
      if (limit > lim.listMaxLimit) {
        if (lim.listLimitBehavior === "reject") throw validationError(`limit must be at most ${lim.listMaxLimit} (got ${limit}).`, { context: { limit: [String(limit)] } });
        limit = lim.listMaxLimit;
      }
      const withHistory = (stringArray(ctx.query.propertiesWithHistory) ?? []).filter((p) => t.properties.has(p));
      if (withHistory.length > 0) limit = Math.min(limit, HISTORY_MAX_LIMIT);
      const archived = ctx.query.archived === true;
      const after = ctx.query.after as string | undefined;
      const sorted = store.sorted(t);
      let i = after ? lowerBound(sorted, decodeCursor(after, "list")) : 0;
      const page: StoredRecord[] = [];
      let next: StoredRecord | undefined;
      for (; i < sorted.length; i++) {
        const rec = sorted[i]!;
        if (rec.archived !== archived) continue;
        if (page.length === limit) { next = rec; break; }
        page.push(rec);
      }
      const props = stringArray(ctx.query.properties);
      const assocTypes = (stringArray(ctx.query.associations) ?? []).map((a) => ({ asked: a, t: store.resolveType(a) }))
        .filter((x): x is { asked: string; t: ObjectType } => x.t !== undefined);
      const results = page.map((rec) => {
        const o = publicObject(t, rec, rec, props);
        if (withHistory.length > 0) o.propertiesWithHistory = historyOf(rec, withHistory);
        if (assocTypes.length > 0) {
          const assocs: JsonObject = {};
          for (const { t: other } of assocTypes) {
            const list = store.associationsOf(t.name, rec.id, other.name);
            if (list.length === 0) continue;
            assocs[other.custom ? other.schema!.fullyQualifiedName : other.name] = {
              results: list.flatMap((a) => a.types.map((ty) => ({ id: a.toId, type: store.v3TypeName(t, other, ty) }))),
            };
          }
          if (Object.keys(assocs).length > 0) o.associations = assocs;
        }
        return o;
      });
      const body: JsonObject = { results };
      if (next) {
        const cursor = encodeCursor(next.id);
        body.paging = { next: { after: cursor, link: `?after=${cursor}` } };
      }
      return { status: 200, body };
    },
  });

  route("GET", "/crm/v3/objects/{type}/{id}", {
    key: "GET /crm/v3/objects/<type>/{id}",
    resolve: (p) => { const t = typeOr400(p.type ?? ""); return { ref: objectsOp(t, `/{${t.idParam}}`, "GET"), type: t, scopeTypes: genericScopes(t) }; },
    handle: (ctx, r) => {
      const t = r.type!;
      const id = decodeURIComponent(ctx.params.id ?? "");
      const idProperty = ctx.query.idProperty as string | undefined;
      const archived = ctx.query.archived === true;
      let rec: StoredRecord | undefined;
      if (idProperty && idProperty !== "hs_object_id") {
        rec = [...t.records.values()].find((x) => x.properties[idProperty] === id);
      } else {
        if (!/^\d+$/.test(id)) throw notFound("Object not found.  objectId are usually numeric.", { context: { id: [id] } });
        rec = t.records.get(id);
      }
      if (!rec || rec.archived !== archived) throw notFound("resource not found", { context: { id: [id] } });
      const o = publicObject(t, rec, rec, stringArray(ctx.query.properties));
      const assocNames = stringArray(ctx.query.associations) ?? [];
      const assocs: JsonObject = {};
      for (const name of assocNames) {
        const other = store.resolveType(name);
        if (!other) continue;
        const list = store.associationsOf(t.name, rec.id, other.name);
        if (list.length > 0) {
          assocs[other.custom ? other.schema!.fullyQualifiedName : other.name] = {
            results: list.flatMap((a) => a.types.map((ty) => ({ id: a.toId, type: store.v3TypeName(t, other, ty) }))),
          };
        }
      }
      if (Object.keys(assocs).length > 0) o.associations = assocs;
      return { status: 200, body: o };
    },
  });

  route("POST", "/crm/v3/objects/{type}/batch/read", {
    key: "POST /crm/v3/objects/<type>/batch/read",
    resolve: (p) => { const t = typeOr400(p.type ?? ""); return { ref: objectsOp(t, "/batch/read", "POST"), type: t, scopeTypes: genericScopes(t) }; },
    handle: (ctx, r) => {
      const t = r.type!;
      const startedAt = new Date(ctx.now).toISOString();
      const body = ctx.body as { inputs: Array<{ id: string }>; properties?: string[]; idProperty?: string };
      const max = store.settings.limits.batchReadMaxInputs;
      if (body.inputs.length > max) {
        throw validationError(`Batch input of ${body.inputs.length} exceeds the maximum of ${max} inputs.`, { context: { inputs: [String(body.inputs.length)], max: [String(max)] } });
      }
      const archived = ctx.query.archived === true;
      const results: JsonObject[] = [];
      const missing: string[] = [];
      const seen = new Set<string>();
      for (const input of body.inputs) {
        if (seen.has(input.id)) continue;
        seen.add(input.id);
        let rec: StoredRecord | undefined;
        if (body.idProperty && body.idProperty !== "hs_object_id") {
          rec = [...t.records.values()].find((x) => x.properties[body.idProperty!] === input.id);
        } else {
          rec = t.records.get(input.id);
        }
        if (!rec || rec.archived !== archived) { missing.push(input.id); continue; }
        results.push(publicObject(t, rec, rec, body.properties));
      }
      const out: JsonObject = { status: "COMPLETE", results, startedAt, completedAt: new Date(ctx.now).toISOString() };
      if (missing.length > 0) {
        out.numErrors = 1;
        out.errors = [{
          status: "error", category: "OBJECT_NOT_FOUND",
          message: `Could not get some ${t.singular.toUpperCase()} objects, they may be deleted or not exist. Check that ids are valid.`,
          context: { ids: missing }, errors: [], links: {},
        }];
        return { status: 207, body: out };
      }
      return { status: 200, body: out };
    },
  });

  route("POST", "/crm/v3/objects/{type}/search", {
    key: "POST /crm/v3/objects/<type>/search",
    resolve: (p) => { const t = typeOr400(p.type ?? ""); return { ref: objectsOp(t, "/search", "POST"), type: t, scopeTypes: genericScopes(t), search: true }; },
    handle: (ctx, r) => {
      const t = r.type!;
      const req = (ctx.body ?? {}) as SearchRequest;
      const { offset, limit } = checkSearchRequest(req, t, store);
      const hits = searchHits(t, req, ctx.now);
      const end = Math.min(offset + limit, hits.length, store.settings.search.maxResults);
      const results = hits.slice(offset, Math.max(offset, end)).map((h) => publicObject(t, h.rec, h.version, req.properties));
      const body: JsonObject = { total: hits.length, results };
      const nextOffset = Math.max(end, offset);
      if (limit > 0 && nextOffset < hits.length) body.paging = { next: { after: String(nextOffset) } };
      return { status: 200, body };
    },
  });

  // Properties
  const propertiesOp: OpRef = { file: "crm-properties-v3.json", path: "/crm/v3/properties/{objectType}", method: "GET" };
  route("GET", "/crm/v3/properties/{type}", {
    key: "GET /crm/v3/properties/<type>",
    resolve: (p) => { const t = typeOr400(p.type ?? ""); return { ref: propertiesOp, type: t, scopeTypes: [t] }; },
    handle: (ctx, r) => {
      const t = r.type!;
      const archived = ctx.query.archived === true;
      const names = typeof ctx.query.properties === "string" ? new Set(ctx.query.properties.split(",").map((s) => s.trim()).filter(Boolean)) : undefined;
      const sensitivity = (ctx.query.dataSensitivity as string | undefined) ?? "non_sensitive";
      const results = [...t.properties.values()]
        .filter((p) => p.archived === archived && p.dataSensitivity === sensitivity && (!names || names.size === 0 || names.has(p.name)))
        .map(publicProperty);
      return { status: 200, body: { results } };
    },
  });
  route("GET", "/crm/v3/properties/{type}/{name}", {
    key: "GET /crm/v3/properties/<type>/{propertyName}",
    resolve: (p) => {
      const t = typeOr400(p.type ?? "");
      return { ref: { file: "crm-properties-v3.json", path: "/crm/v3/properties/{objectType}/{propertyName}", method: "GET" }, type: t, scopeTypes: [t] };
    },
    handle: (ctx, r) => {
      const p = r.type!.properties.get(decodeURIComponent(ctx.params.name ?? ""));
      if (!p || p.archived !== (ctx.query.archived === true)) throw notFound(`Property ${ctx.params.name} does not exist`, { context: { propertyName: [ctx.params.name ?? ""] } });
      return { status: 200, body: publicProperty(p) };
    },
  });

  // Owners
  const ownersOp: OpRef = { file: "crm-owners-v3.json", path: "/crm/v3/owners", method: "GET" };
  route("GET", "/crm/v3/owners", {
    resolve: () => ({ ref: ownersOp }),
    handle: (ctx) => {
      const archived = ctx.query.archived === true;
      const email = ctx.query.email as string | undefined;
      const limit = Math.min((ctx.query.limit as number | undefined) ?? 100, store.settings.limits.ownersMaxLimit);
      if (limit < 1) throw validationError(`limit must be at least 1 (got ${limit}).`);
      const after = ctx.query.after as string | undefined;
      const from = after ? decodeCursor(after, "owners") : 0;
      const all = store.owners
        .filter((o) => o.archived === archived && (!email || o.email?.toLowerCase() === email.toLowerCase()))
        .sort((a, b) => Number(a.id) - Number(b.id))
        .filter((o) => Number(o.id) >= from);
      const page = all.slice(0, limit);
      const body: JsonObject = { results: page.map(publicOwner) };
      const next = all[limit];
      if (next) {
        const cursor = encodeCursor(next.id);
        body.paging = { next: { after: cursor, link: `?after=${cursor}` } };
      }
      return { status: 200, body };
    },
  });
  route("GET", "/crm/v3/owners/{ownerId}", {
    key: "GET /crm/v3/owners/{ownerId}",
    resolve: () => ({ ref: { file: "crm-owners-v3.json", path: "/crm/v3/owners/{ownerId}", method: "GET" } }),
    handle: (ctx) => {
      const id = ctx.params.ownerId ?? "";
      const byUser = ctx.query.idProperty === "userId";
      const archived = ctx.query.archived === true;
      const o = store.owners.find((x) => (byUser ? String(x.userIdIncludingInactive ?? x.userId) === id : x.id === id) && x.archived === archived);
      if (!o) throw notFound(`Owner ${id} not found.`, { context: { ownerId: [id] } });
      return { status: 200, body: publicOwner(o) };
    },
  });

  // Associations v4
  route("POST", "/crm/v4/associations/{from}/{to}/batch/read", {
    key: "POST /crm/v4/associations/<from>/<to>/batch/read",
    resolve: (p) => {
      const from = typeOr400(p.from ?? ""), to = typeOr400(p.to ?? "");
      return {
        ref: { file: "crm-associations-v4.json", path: "/crm/v4/associations/{fromObjectType}/{toObjectType}/batch/read", method: "POST" },
        type: from, toType: to, scopeTypes: [from, to],
      };
    },
    handle: (ctx, r) => {
      const from = r.type!, to = r.toType!;
      const startedAt = new Date(ctx.now).toISOString();
      const inputs = (ctx.body as { inputs: Array<{ id: string; after?: string }> }).inputs;
      const max = store.settings.limits.associationsBatchMaxInputs;
      if (inputs.length > max) {
        throw validationError(`Batch input of ${inputs.length} exceeds the maximum of ${max} inputs.`, { context: { inputs: [String(inputs.length)], max: [String(max)] } });
      }
      const pageSize = store.settings.limits.associationsPageSize;
      const results: JsonObject[] = [];
      const errors: JsonObject[] = [];
      for (const input of inputs) {
        const all = from.records.get(input.id)?.archived === false ? store.associationsOf(from.name, input.id, to.name) : [];
        if (all.length === 0) {
          errors.push({
            status: "error", category: "OBJECT_NOT_FOUND", subCategory: "crm.associations.NO_ASSOCIATIONS_FOUND",
            message: `No ${to.singular} is associated with ${from.singular} ${input.id}.`,
            context: { fromObjectId: [input.id] }, errors: [], links: {},
          });
          continue;
        }
        const start = input.after ? decodeCursor(input.after, "associations") : 0;
        const slice = all.slice(start, start + pageSize);
        const item: JsonObject = {
          from: { id: input.id },
          to: slice.map((a) => ({ toObjectId: Number(a.toId), associationTypes: a.types.map((ty) => ({ category: ty.category, typeId: ty.typeId, label: ty.label })) })),
        };
        if (start + pageSize < all.length) {
          const cursor = encodeCursor(start + pageSize);
          item.paging = { next: { after: cursor, link: `?after=${cursor}` } };
        }
        results.push(item);
      }
      const body: JsonObject = { status: "COMPLETE", results, startedAt, completedAt: new Date(ctx.now).toISOString() };
      if (errors.length > 0) {
        body.numErrors = errors.length;
        body.errors = errors;
        return { status: 207, body };
      }
      return { status: 200, body };
    },
  });
  route("GET", "/crm/v4/objects/{type}/{id}/associations/{to}", {
    key: "GET /crm/v4/objects/<type>/{objectId}/associations/<to>",
    resolve: (p) => {
      const from = typeOr400(p.type ?? ""), to = typeOr400(p.to ?? "");
      return {
        ref: { file: "crm-associations-v4.json", path: "/crm/v4/objects/{objectType}/{objectId}/associations/{toObjectType}", method: "GET" },
        type: from, toType: to, scopeTypes: [from, to],
      };
    },
    handle: (ctx, r) => {
      const from = r.type!, to = r.toType!;
      const id = ctx.params.id ?? "";
      if (!from.records.get(id)) throw notFound("resource not found", { context: { objectId: [id] } });
      const all = store.associationsOf(from.name, id, to.name);
      const limit = Math.min((ctx.query.limit as number | undefined) ?? 500, 500);
      const after = ctx.query.after as string | undefined;
      const start = after ? decodeCursor(after, "associations") : 0;
      const body: JsonObject = {
        results: all.slice(start, start + limit).map((a) => ({
          toObjectId: Number(a.toId), associationTypes: a.types.map((ty) => ({ category: ty.category, typeId: ty.typeId, label: ty.label })),
        })),
      };
      if (start + limit < all.length) {
        const cursor = encodeCursor(start + limit);
        body.paging = { next: { after: cursor, link: `?after=${cursor}` } };
      }
      return { status: 200, body };
    },
  });
  for (const labelsPath of ["/crm/v4/associations/{from}/{to}/labels", "/crm/associations/v4/{from}/{to}/labels"]) {
    route("GET", labelsPath, {
      key: `GET ${labelsPath.replace("{from}", "<from>").replace("{to}", "<to>")}`,
      resolve: (p) => {
        const from = typeOr400(p.from ?? ""), to = typeOr400(p.to ?? "");
        return {
          ref: { file: "crm-associations-schema-v4.json", path: "/crm/associations/v4/{fromObjectType}/{toObjectType}/labels", method: "GET" },
          type: from, toType: to, scopeTypes: [from, to],
        };
      },
      handle: (_ctx, r) => ({
        status: 200,
        body: { results: store.labelsBetween(r.type!.name, r.toType!.name).map((l) => ({ category: l.category, typeId: l.typeId, label: l.label })) },
      }),
    });
  }

  // Custom object schemas (the client calls /crm-object-schemas/v3; /crm/v3/schemas is HubSpot's alias)
  const schemaBody = (t: ObjectType, q: Record<string, unknown>): JsonObject => {
    const s = t.schema!;
    const out: JsonObject = {
      id: t.objectTypeId.split("-")[1] ?? t.objectTypeId,
      objectTypeId: t.objectTypeId,
      name: t.name,
      fullyQualifiedName: s.fullyQualifiedName,
      labels: s.labels,
      primaryDisplayProperty: s.primaryDisplayProperty,
      secondaryDisplayProperties: s.secondaryDisplayProperties ?? [],
      requiredProperties: s.requiredProperties ?? [s.primaryDisplayProperty],
      searchableProperties: s.searchableProperties ?? [s.primaryDisplayProperty],
      properties: q.includePropertyDefinitions === false ? [] : [...t.properties.values()].filter((p) => !p.archived).map(publicProperty),
      associations: q.includeAssociationDefinitions === false ? [] : s.associationDefs.map((a) => ({
        id: a.id, name: a.name, fromObjectTypeId: a.fromObjectTypeId, toObjectTypeId: a.toObjectTypeId, createdAt: s.createdAt, updatedAt: s.updatedAt,
      })),
      archived: s.archived,
    };
    if (s.description !== undefined) out.description = s.description;
    if (q.includeAuditMetadata !== false) { out.createdAt = s.createdAt; out.updatedAt = s.updatedAt; }
    return out;
  };
  for (const base of ["/crm-object-schemas/v3/schemas", "/crm/v3/schemas"]) {
    route("GET", base, {
      resolve: () => ({ ref: { file: "crm-schemas-v3.json", path: "/crm-object-schemas/v3/schemas", method: "GET" } }),
      handle: (ctx) => {
        const archived = ctx.query.archived === true;
        const results = [...store.types.values()].filter((t) => t.schema && t.schema.archived === archived).map((t) => schemaBody(t, ctx.query));
        return { status: 200, body: { results } };
      },
    });
    route("GET", `${base}/{type}`, {
      key: `GET ${base}/<type>`,
      resolve: () => ({ ref: { file: "crm-schemas-v3.json", path: "/crm-object-schemas/v3/schemas/{objectType}", method: "GET" } }),
      handle: (ctx) => {
        const t = store.resolveType(ctx.params.type ?? "");
        if (!t?.schema) throw notFound(`Unable to find object type ${ctx.params.type}`, { context: { objectType: [ctx.params.type ?? ""] } });
        return { status: 200, body: schemaBody(t, ctx.query) };
      },
    });
  }

  // Account details (GET /account-info/v3/details; no copied spec describes it, so no spec checks)
  route("GET", "/account-info/v3/details", {
    resolve: () => ({}),
    handle: (ctx) => {
      const tz = store.settings.timeZone;
      const offsetMs = utcOffsetMs(tz, ctx.now);
      const sign = offsetMs < 0 ? "-" : "+";
      const abs = Math.abs(offsetMs) / 60_000;
      return {
        status: 200,
        body: {
          portalId: store.settings.portalId, accountType: "STANDARD", timeZone: tz,
          companyCurrency: store.settings.companyCurrency, additionalCurrencies: store.settings.additionalCurrencies,
          utcOffset: `${sign}${String(Math.floor(abs / 60)).padStart(2, "0")}:${String(abs % 60).padStart(2, "0")}`,
          utcOffsetMilliseconds: offsetMs, uiDomain: "app.hubspot.com", dataHostingLocation: "na1",
        },
      };
    },
  });

  // Pipelines
  const pipelineBody = (p: Pipeline): JsonObject => ({ ...p, stages: p.stages.map((s) => ({ ...s })) });
  route("GET", "/crm/v3/pipelines/{type}", {
    key: "GET /crm/v3/pipelines/<type>",
    resolve: (p) => { const t = typeOr400(p.type ?? ""); return { ref: { file: "crm-pipelines-v3.json", path: "/crm/v3/pipelines/{objectType}", method: "GET" }, type: t, scopeTypes: [t] }; },
    handle: (_ctx, r) => ({ status: 200, body: { results: (store.pipelines.get(r.type!.name) ?? []).filter((p) => !p.archived).map(pipelineBody) } }),
  });
  route("GET", "/crm/v3/pipelines/{type}/{pipelineId}", {
    key: "GET /crm/v3/pipelines/<type>/{pipelineId}",
    resolve: (p) => { const t = typeOr400(p.type ?? ""); return { ref: { file: "crm-pipelines-v3.json", path: "/crm/v3/pipelines/{objectType}/{pipelineId}", method: "GET" }, type: t, scopeTypes: [t] }; },
    handle: (ctx, r) => {
      const p = (store.pipelines.get(r.type!.name) ?? []).find((x) => x.id === ctx.params.pipelineId);
      if (!p) throw notFound(`Unable to find pipeline ${ctx.params.pipelineId}`, { context: { pipelineId: [ctx.params.pipelineId ?? ""] } });
      return { status: 200, body: pipelineBody(p) };
    },
  });
  route("GET", "/crm/v3/pipelines/{type}/{pipelineId}/stages", {
    key: "GET /crm/v3/pipelines/<type>/{pipelineId}/stages",
    resolve: (p) => { const t = typeOr400(p.type ?? ""); return { ref: { file: "crm-pipelines-v3.json", path: "/crm/v3/pipelines/{objectType}/{pipelineId}/stages", method: "GET" }, type: t, scopeTypes: [t] }; },
    handle: (ctx, r) => {
      const p = (store.pipelines.get(r.type!.name) ?? []).find((x) => x.id === ctx.params.pipelineId);
      if (!p) throw notFound(`Unable to find pipeline ${ctx.params.pipelineId}`, { context: { pipelineId: [ctx.params.pipelineId ?? ""] } });
      return { status: 200, body: { results: p.stages.filter((s) => !s.archived) } };
    },
  });

  // ---- request handling -------------------------------------------------------------------------

  const counterKey = (r: Route, params: Record<string, string>): string => {
    const path = r.key.includes(" ") ? r.key : `${r.method} ${r.key}`;
    return path.replace(/<(\w+)>/g, (_m, name: string) => decodeURIComponent(params[name] ?? name));
  };

  const readBody = (req: IncomingMessage): Promise<Buffer> => new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on("data", (c: Buffer) => {
      size += c.length;
      if (size > 20 * 1024 * 1024) { reject(apiError(413, "VALIDATION_ERROR", "Request body too large.")); req.destroy(); return; }
      chunks.push(c);
    });
    req.on("end", () => resolve(Buffer.concat(chunks)));
    req.on("error", reject);
  });

  const parseBody = (ref: OpRef, raw: Buffer, contentType: string | undefined): unknown => {
    const media = spec.requestMediaTypes(ref);
    if (media.length === 0) return undefined;
    const ct = (contentType ?? "").split(";")[0]!.trim().toLowerCase();
    if (raw.length === 0) {
      if (spec.requestBodyRequired(ref)) throw validationError("Invalid input JSON: the request body is required.", { errors: [{ message: "request body is required", in: "body" }] });
      return undefined;
    }
    if (!media.includes(ct)) {
      throw apiError(415, "VALIDATION_ERROR", `Unsupported Content-Type '${contentType ?? ""}'; this endpoint accepts ${media.join(", ")}.`);
    }
    if (ct === "application/x-www-form-urlencoded") return Object.fromEntries(new URLSearchParams(raw.toString("utf8")));
    try {
      return JSON.parse(raw.toString("utf8"));
    } catch (e) {
      throw validationError(`Invalid input JSON: ${(e as Error).message}`, { errors: [{ message: (e as Error).message, in: "body", code: "INVALID_JSON" }] });
    }
  };

  const problemsError = (problems: ValidationProblem[], where: "body" | "query"): HttpError => {
    const text = problems.map((p) => `${p.where} ${p.message}`).join("; ");
    return validationError(where === "body" ? `Invalid input JSON: ${text}` : `Invalid request: ${text}`, {
      errors: problems.map((p) => ({ message: `${p.where} ${p.message}`, in: where, code: where === "body" ? "INVALID_JSON" : "INVALID_PARAMETER" })),
    });
  };

  const send = (res: ServerResponse, status: number, body: unknown, headers: Record<string, string>, corrupt?: FaultSpec["body"]): void => {
    let text = status === 204 || body === undefined ? "" : JSON.stringify(body);
    const h: Record<string, string> = { "Content-Type": JSON_TYPE, ...headers };
    if (corrupt === "truncated") text = text.slice(0, Math.max(1, Math.floor(text.length / 2)));
    else if (corrupt === "malformed") text = `{"results": [${text.slice(0, 20)}<<not json>>`;
    else if (corrupt === "empty") text = "";
    else if (corrupt === "html") { h["Content-Type"] = "text/html; charset=utf-8"; text = `<html><head><title>${status} Error</title></head><body><h1>${status}</h1><p>The server encountered a temporary error.</p></body></html>`; }
    else if (corrupt === "no-content-type") delete h["Content-Type"];
    h["Content-Length"] = String(Buffer.byteLength(text));
    res.writeHead(status, h);
    res.end(text);
  };

  const takeFault = (method: string, path: string): FaultSpec | undefined => {
    const f = faults.find((x) => x.remaining > 0 && (!x.method || x.method.toUpperCase() === method)
      && (x.path.endsWith("*") ? path.startsWith(x.path.slice(0, -1)) : x.path.replace(/\/$/, "") === path));
    if (!f) return undefined;
    f.remaining--;
    faults = faults.filter((x) => x.remaining > 0);
    return f;
  };

  const handleApi = async (req: IncomingMessage, res: ServerResponse, url: URL, path: string): Promise<void> => {
    const method = (req.method ?? "GET").toUpperCase();
    let matched: { r: Route; params: Record<string, string> } | undefined;
    for (const r of routes) {
      if (r.method !== method) continue;
      const m = r.pattern.exec(path);
      if (m) { matched = { r, params: { ...(m.groups ?? {}) } }; break; }
    }
    const key = matched ? counterKey(matched.r, matched.params) : `${method} ${path}`;
    counts.set(key, (counts.get(key) ?? 0) + 1);
    statCounts.set(key, (statCounts.get(key) ?? 0) + 1);
    const headers: Record<string, string> = { "X-HubSpot-Correlation-Id": correlationId() };
    let status = 500;
    let body: unknown;
    let ref: OpRef | undefined;
    const fault = takeFault(method, path);
    const raw = await readBody(req).catch((e: unknown) => e);
    try {
      if (fault?.delayMs) await sleep(fault.delayMs);
      if (fault?.status !== undefined) {
        if (fault.status === 429) throw rateLimited(fault.policy ?? "TEN_SECONDLY_ROLLING", { "Retry-After": "1" }, "publicapi:simulator-fault");
        throw apiError(fault.status, fault.status >= 500 ? "INTERNAL_ERROR" : "VALIDATION_ERROR",
          fault.status >= 500 ? "internal error" : `simulated ${fault.status}`);
      }
      if (raw instanceof Error) throw raw;
      if (!matched) {
        const known = routes.some((r) => r.pattern.test(path));
        if (known) throw apiError(405, "VALIDATION_ERROR", `${method} is not supported on ${path} by the simulator.`);
        throw notFound(`No route for ${method} ${path}.`);
      }
      const resolved = matched.r.resolve(matched.params);
      ref = resolved.ref;
      const at = now();
      let token: AccessToken | undefined;
      if (!matched.r.noAuth) {
        token = tokens.authenticate(req.headers.authorization, at);
        const outcome = limiter.check({
          bucket: token.app,
          countsTenSecondly: !(store.settings.rateLimits.specExemptions && resolved.ref !== undefined && spec.exemptFromTenSecondly(resolved.ref)),
          isSearch: resolved.search === true,
          privateApp: token.kind === "private_app",
        }, at);
        Object.assign(headers, outcome.headers);
        if (outcome.error) throw outcome.error;
        for (const alternatives of requiredScopes(resolved)) {
          if (alternatives.length > 0 && !hasScopes(token, alternatives)) throw missingScopes([...new Set(alternatives.flat())]);
        }
      }
      const q = resolved.ref ? spec.validateQuery(resolved.ref, url.searchParams) : { values: Object.fromEntries(url.searchParams), problems: [] };
      if (q.problems.length > 0) throw problemsError(q.problems, "query");
      const parsed = resolved.ref ? parseBody(resolved.ref, raw as Buffer, req.headers["content-type"]) : undefined;
      if (parsed !== undefined && resolved.ref) {
        const media = (req.headers["content-type"] ?? "").split(";")[0]!.trim().toLowerCase();
        const problems = spec.validateRequestBody(resolved.ref, media, parsed);
        if (problems.length > 0) throw problemsError(problems, "body");
      }
      const reply = matched.r.handle({ method, path, params: matched.params, query: q.values, rawQuery: url.searchParams, body: parsed, token, now: at }, resolved);
      status = reply.status;
      body = reply.body;
      Object.assign(headers, reply.headers ?? {});
    } catch (e) {
      if (e instanceof HttpError) {
        status = e.status;
        body = e.body;
        Object.assign(headers, e.headers);
      } else if (e instanceof DataError) {
        status = 400;
        body = validationError(e.message).body;
      } else {
        status = 500;
        body = apiError(500, "INTERNAL_ERROR", `simulator error: ${(e as Error).message}`).body;
        log(`hubspot-sim: internal error on ${method} ${path}: ${(e as Error).stack ?? String(e)}`);
      }
    }
    if (opts.validateResponses && ref) {
      const problems = spec.validateResponse(ref, status, body);
      if (problems.length > 0) {
        failures.push({ method, path, status, problems });
        const msg = `hubspot-sim: response to ${method} ${path} (${status}) does not conform to the spec: ${problems.map((p) => `${p.where} ${p.message}`).join("; ")}`;
        (opts.log ?? console.error)(msg);
        status = 500;
        body = { status: "error", message: msg, correlationId: correlationId(), category: "SIMULATOR_RESPONSE_INVALID" };
      }
    }
    if (status === 429) rateLimitedCount++;
    recent.push({ method, path, status });
    if (recent.length > 1000) recent.splice(0, recent.length - 1000);
    send(res, status, body, headers, fault?.body);
  };

  // ---- /__simulator controls ----------------------------------------------------------------------

  const publicRecord = (r: StoredRecord): PublicRecord => {
    const out: PublicRecord = { id: r.id, properties: { ...r.properties }, createdAt: r.createdAt, updatedAt: r.updatedAt, archived: r.archived };
    if (r.archivedAt) out.archivedAt = r.archivedAt;
    return out;
  };

  const controls = {
    counters: (): Record<string, number> => Object.fromEntries([...counts.entries()].sort(([a], [b]) => a.localeCompare(b))),
    stats: (): AdminStats => {
      let total = 0;
      for (const n of statCounts.values()) total += n;
      return { total, requests: Object.fromEntries([...statCounts.entries()].sort(([a], [b]) => a.localeCompare(b))), rateLimited: rateLimitedCount };
    },
    resetStats: (): void => { statCounts.clear(); rateLimitedCount = 0; },
    upsertRecords: (type: string, records: unknown): PublicRecord[] => store.adminUpsert(type, records, now()).map(publicRecord),
    archiveRecords: (type: string, ids: unknown) => store.adminArchive(type, ids, now()),
    changeAssociations: (change: { add?: unknown; remove?: unknown }): { added: number; removed: number } => {
      if (change === null || typeof change !== "object" || Array.isArray(change)) throw new DataError("the body must be { add?: [...], remove?: [...] }");
      return store.changeAssociations(change.add, change.remove);
    },
    resetCounters: (): void => { counts.clear(); },
    now,
    advanceClock: (ms: number): void => { offset += ms; },
    issueAccessToken: (o: { scopes?: string[]; ttlSeconds?: number; kind?: "oauth" | "private_app" } = {}): string => tokens.issue(o, now()).token,
    addRefreshToken: (o: { token?: string; scopes?: string[] } = {}): string => tokens.addRefreshToken(o),
    expireAccessTokens: (token?: string): number => tokens.expire(now(), token),
    revokeRefreshToken: (token: string, o: { revokeAccessTokens?: boolean } = {}): boolean => tokens.revokeRefreshToken(token, o.revokeAccessTokens ?? false),
    revokeAccessToken: (token: string): boolean => tokens.revokeAccessToken(token),
    injectFault: (f: FaultSpec): void => {
      if (!f || typeof f.path !== "string") throw new DataError("a fault needs a path");
      faults.push({ ...f, remaining: f.count ?? 1 });
    },
    clearFaults: (): void => { faults = []; },
    upsertRecord: (type: string, rec: { id?: string; properties?: Record<string, PropertyValue>; updatedAt?: string; createdAt?: string }): PublicRecord => publicRecord(store.upsertRecord(type, rec, now())),
    archiveRecord: (type: string, id: string): void => store.archiveRecord(type, id, now()),
    resetRateLimits: (): void => limiter.reset(),
    rateLimitUsage: () => limiter.usage(),
    responseValidationFailures: (): ResponseValidationFailure[] => [...failures],
    requestLog: () => [...recent],
  };

  const handleControl = async (req: IncomingMessage, res: ServerResponse, path: string): Promise<void> => {
    const method = (req.method ?? "GET").toUpperCase();
    const raw = await readBody(req);
    let input: Record<string, unknown> = {};
    try { if (raw.length > 0) input = JSON.parse(raw.toString("utf8")) as Record<string, unknown>; } catch { /* empty */ }
    const ok = (body: unknown, status = 200) => send(res, status, body, {});
    const sub = path.slice("/__simulator".length);
    try {
      let m: RegExpExecArray | null;
      if (method === "GET" && sub === "/counters") return ok(controls.counters());
      if (method === "POST" && sub === "/reset-counters") { controls.resetCounters(); return ok({ ok: true }); }
      if (method === "GET" && sub === "/faults") return ok(faults);
      if (method === "POST" && sub === "/faults") {
        for (const f of Array.isArray(input) ? input as FaultSpec[] : [input as unknown as FaultSpec]) controls.injectFault(f);
        return ok({ ok: true, faults });
      }
      if (method === "DELETE" && sub === "/faults") { controls.clearFaults(); return ok({ ok: true }); }
      if (method === "GET" && sub === "/clock") return ok({ now: now(), iso: new Date(now()).toISOString() });
      if (method === "POST" && sub === "/clock/advance") { controls.advanceClock(Number(input.ms ?? 0)); return ok({ now: now(), iso: new Date(now()).toISOString() }); }
      if (method === "POST" && sub === "/tokens") {
        const t = tokens.issue(input as { scopes?: string[]; ttlSeconds?: number; kind?: "oauth" | "private_app" }, now());
        return ok({ access_token: t.token, expires_in: t.expiresAt === null ? null : Math.round((t.expiresAt - now()) / 1000), scopes: t.scopes, kind: t.kind });
      }
      if (method === "POST" && sub === "/tokens/expire") return ok({ expired: controls.expireAccessTokens(input.token as string | undefined) });
      if (method === "POST" && sub === "/tokens/revoke") {
        const r = typeof input.refreshToken === "string" ? controls.revokeRefreshToken(input.refreshToken, { revokeAccessTokens: input.revokeAccessTokens === true }) : false;
        const a = typeof input.accessToken === "string" ? controls.revokeAccessToken(input.accessToken) : false;
        return ok({ refreshTokenRevoked: r, accessTokenRevoked: a });
      }
      if (method === "POST" && sub === "/reset-rate-limits") { controls.resetRateLimits(); return ok({ ok: true }); }
      if (method === "GET" && sub === "/rate-limits") return ok(controls.rateLimitUsage());
      if (method === "GET" && sub === "/requests") return ok(controls.requestLog());
      if (method === "GET" && sub === "/response-validation-failures") return ok(controls.responseValidationFailures());
      if (method === "POST" && (m = /^\/records\/([^/]+)\/(\d+)\/archive$/.exec(sub))) { controls.archiveRecord(m[1]!, m[2]!); return ok({ ok: true }); }
      if (method === "POST" && (m = /^\/records\/([^/]+)$/.exec(sub))) return ok(controls.upsertRecord(m[1]!, input as { id?: string; properties?: Record<string, PropertyValue> }));
      return send(res, 404, { status: "error", message: `unknown simulator control ${method} ${path}`, correlationId: correlationId(), category: "OBJECT_NOT_FOUND" }, {});
    } catch (e) {
      return send(res, 400, { status: "error", message: (e as Error).message, correlationId: correlationId(), category: "VALIDATION_ERROR" }, {});
    }
  };

  // ---- /__admin: the public admin API (issue #5); not counted, not rate limited, no auth --------------

  const handleAdmin = async (req: IncomingMessage, res: ServerResponse, path: string): Promise<void> => {
    const method = (req.method ?? "GET").toUpperCase();
    const raw = await readBody(req);
    const fail = (status: number, message: string, category: string, headers: Record<string, string> = {}) =>
      send(res, status, { status: "error", message, correlationId: correlationId(), category }, headers);
    const sub = path.slice("/__admin".length);
    const routes: Record<string, string> = { "/stats": "GET", "/stats/reset": "POST", "/records": "POST", "/archive": "POST", "/associations": "POST" };
    const allowed = routes[sub];
    if (!allowed) return fail(404, `No admin route ${method} ${path}.`, "OBJECT_NOT_FOUND");
    if (method !== allowed) return fail(405, `${method} is not allowed on ${path}.`, "VALIDATION_ERROR", { Allow: allowed });
    try {
      if (sub === "/stats") return send(res, 200, controls.stats(), {});
      if (sub === "/stats/reset") { controls.resetStats(); return send(res, 200, controls.stats(), {}); }
      let body: unknown;
      try { body = JSON.parse(raw.toString("utf8")); } catch (e) { throw new DataError(`the body is not JSON: ${(e as Error).message}`); }
      if (body === null || typeof body !== "object" || Array.isArray(body)) throw new DataError("the body must be a JSON object");
      const b = body as Record<string, unknown>;
      if (sub === "/records") return send(res, 200, { objectType: store.resolveType(String(b.objectType ?? ""))?.name ?? b.objectType, results: controls.upsertRecords(b.objectType as string, b.records) }, {});
      if (sub === "/archive") return send(res, 200, controls.archiveRecords(b.objectType as string, b.ids), {});
      return send(res, 200, controls.changeAssociations(b), {});
    } catch (e) {
      if (e instanceof DataError) return fail(400, e.message.replace(/^HubSpot simulator data: /, ""), "VALIDATION_ERROR");
      throw e;
    }
  };

  const server = createServer((req, res) => {
    const url = new URL(req.url ?? "/", "http://simulator.local");
    let path = url.pathname.replace(/\/{2,}/g, "/");
    if (path.length > 1 && path.endsWith("/")) path = path.slice(0, -1);
    const work = path.startsWith("/__simulator") ? handleControl(req, res, path)
      : path === "/__admin" || path.startsWith("/__admin/") ? handleAdmin(req, res, path)
        : handleApi(req, res, url, path);
    work.catch((e: unknown) => {
      log(`hubspot-sim: unhandled ${(e as Error).stack ?? String(e)}`);
      if (!res.headersSent) send(res, 500, { status: "error", message: String(e), correlationId: correlationId(), category: "INTERNAL_ERROR" }, {});
      else res.destroy();
    });
  });
  server.keepAliveTimeout = 5000;

  const host = opts.host ?? "127.0.0.1";
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(opts.port ?? 0, host, () => { server.off("error", reject); resolve(); });
  });
  const port = (server.address() as AddressInfo).port;
  const url = `http://${host.includes(":") ? `[${host}]` : host}:${port}`;
  log(`hubspot-sim: listening on ${url}`);

  return {
    url,
    port,
    settings: store.settings,
    close: () => new Promise<void>((resolve, reject) => {
      server.close((err) => (err ? reject(err) : resolve()));
      server.closeAllConnections();
    }),
    ...controls,
  };
}
