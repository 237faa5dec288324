/**
 * A local simulator of HubSpot's CRM APIs as @hubspot/api-client 14 calls them (see README.md):
 * OAuth token endpoint, CRM objects v3 (list, get, batch read, search), properties, owners,
 * associations v4, custom object schemas, pipelines; with HubSpot's limits, errors, rate limits,
 * token expiry, search index lag, request validation against the official OpenAPI specs, and
 * test controls (clock, faults, counters) under /__simulator, plus the public admin API of issue #5
 * under /__admin (stats, record upserts and archives, association changes).
 *
 * This file is the request pipeline (route match, counting, faults, authentication, rate limits, scopes,
 * spec checks, response validation) and the server; the endpoints are in routes/, the controls in controls.ts.
 */
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import { setTimeout as sleep } from "node:timers/promises";
import { isAdminPath } from "../kit/admin.ts";
import { StatsBook, Tally } from "../kit/counters.ts";
import { FaultRules, prefixPathTest } from "../kit/faults.ts";
import { closeServer, listen, serverUrl } from "../kit/http.ts";
import { TokenStore, type AccessToken } from "./auth.ts";
import {
  createControls,
  handleAdmin,
  handleControl,
  type AdminStats,
  type FaultSpec,
  type PublicRecord,
  type ResponseValidationFailure,
  type SimState,
} from "./controls.ts";
import { HttpError, apiError, correlationId, missingScopes, notFound, rateLimited, validationError } from "./errors.ts";
import { RateLimiter } from "./limits.ts";
import { readRequestBody, send } from "./respond.ts";
import { runSearch, type SearchHit, type SearchRequest } from "./search.ts";
import { specRegistry, type OpRef, type ValidationProblem } from "./spec.ts";
import { normalizeHubSpotData } from "./contract.ts";
import { DataError, Store, loadData, type ObjectType } from "./store.ts";
import { associationRoutes } from "./routes/associations.ts";
import { metadataRoutes } from "./routes/metadata.ts";
import { AUTHORIZE_PATH, authorizePage } from "./routes/authorize.ts";
import { oauthRoutes } from "./routes/oauth.ts";
import { objectRoutes } from "./routes/objects.ts";
import { RouteTable, type Resolved, type RouteContext } from "./routes/routing.ts";
import type { ContractAssociation, HubSpotContractData, HubSpotSimData, PropertyValue } from "./types.ts";

export type { AdminStats } from "./controls.ts";
export { generateHubSpotData } from "./generate.ts";

interface HubSpotSimulatorOptions {
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
  upsertRecords(
    type: string,
    records: Array<{ id?: string | number; properties?: Record<string, PropertyValue>; createdAt?: string; updatedAt?: string; archived?: boolean }>,
  ): PublicRecord[];
  /** POST /__admin/archive. */
  archiveRecords(type: string, ids: Array<string | number>): { objectType: string; archived: string[]; notFound: string[] };
  /** POST /__admin/merge: merges records into a survivor (see README). */
  mergeRecords(
    type: string,
    primaryId: string | number,
    mergedIds: Array<string | number>,
  ): { objectType: string; primaryId: string; merged: string[]; notFound: string[] };
  /** POST /__admin/purge: deletes records for good (gone from the archived listing too). */
  purgeRecords(type: string, ids: Array<string | number>): { objectType: string; purged: string[]; notFound: string[] };
  /** POST /__admin/associations: adds/removes associations without touching last-modified dates. */
  changeAssociations(change: { add?: ContractAssociation[]; remove?: ContractAssociation[] }): { added: number; removed: number };
  resetRateLimits(): void;
  rateLimitUsage(): { day: string; daily: number; buckets: Record<string, number> };
  responseValidationFailures(): ResponseValidationFailure[];
  requestLog(): Array<{ method: string; path: string; status: number }>;
  settings: Store["settings"];
}

function hasScopes(token: AccessToken, alternatives: string[][]): boolean {
  return alternatives.some((alt) => alt.every((s) => token.scopes.includes(s)));
}

/** One portal's state and request handler, not yet listening: what startHubSpotSimulator serves, and each portal of multi-portal.ts. */
export interface HubSpotPortalApp {
  handle(req: IncomingMessage, res: ServerResponse): void;
  /** The programmatic controls (the HubSpotSimulator methods besides url, port and close). */
  controls: ReturnType<typeof createControls>;
  settings: Store["settings"];
  tokens: TokenStore;
}

export function createHubSpotPortalApp(opts: Omit<HubSpotSimulatorOptions, "port" | "host">): HubSpotPortalApp {
  const baseClock = opts.clock ?? Date.now;
  let offset = 0;
  const now = (): number => baseClock() + offset;
  const data = normalizeHubSpotData(loadData(opts.data));
  const store = new Store(data, now());
  const spec = specRegistry();
  const tokens = new TokenStore(store.settings, data.portal?.oauth, now());
  const log = opts.log ?? (() => {});
  const state: SimState = {
    store,
    tokens,
    limiter: new RateLimiter(store.settings),
    counters: new Tally(),
    /** /__admin/stats: per-route requests and 429s, reset independently of the counters. */
    stats: new StatsBook(),
    rateLimited: { count: 0 },
    faults: new FaultRules<FaultSpec>({ pathTest: prefixPathTest, spentRules: "never" }),
    failures: [],
    recent: [],
    now,
    advanceClock: (ms) => {
      offset += ms;
    },
  };
  const { limiter } = state;
  const searchCache = new Map<string, { version: number; validUntil: number; hits: SearchHit[] }>();

  const rc: RouteContext = {
    store,
    spec,
    tokens,
    typeOr400: (name: string): ObjectType => {
      const t = store.resolveType(name);
      if (!t) throw validationError(`Unable to infer object type from: ${decodeURIComponent(name)}`, { context: { objectType: [name] } });
      return t;
    },
    objectsOp: (t: ObjectType, suffix: string, method: string): OpRef => ({ file: t.specFile, path: `/crm/v3/objects/${t.specSegment}${suffix}`, method }),
    genericScopes: (t: ObjectType): ObjectType[] | undefined => (t.specSegment === "{objectType}" ? [t] : undefined),
    searchHits: (t: ObjectType, req: SearchRequest, at: number): SearchHit[] => {
      const key = `${t.name}|${JSON.stringify([req.filterGroups ?? [], req.sorts ?? [], req.query ?? ""])}`;
      const hit = searchCache.get(key);
      if (hit && hit.version === store.version && at < hit.validUntil) return hit.hits;
      const hits = runSearch(req, t, store, at);
      searchCache.set(key, { version: store.version, validUntil: store.nextVisibilityChange(t, at), hits });
      if (searchCache.size > 64) searchCache.delete(searchCache.keys().next().value as string);
      return hits;
    },
  };

  /** Scope alternatives for an operation, narrowed per object type for the spec's catch-all lists. */
  const requiredScopes = (r: Resolved): string[][][] => {
    if (!r.ref) return [];
    const alts = spec.scopeAlternatives(r.ref);
    if (!r.scopeTypes || alts.length === 0) return [alts];
    return r.scopeTypes.map((t) => {
      const own = t.specSegment === "{objectType}" ? [] : spec.scopeAlternatives(rc.objectsOp(t, "", "GET"));
      const narrowed = alts.filter((alt) => alt.some((s) => s.includes(`.${t.scopeKey}.`) || s === t.scopeKey));
      const merged = [...narrowed, ...own];
      return merged.length > 0 ? merged : alts;
    });
  };

  // The simulated API's routes (no two patterns overlap, so their order does not matter).
  const table = new RouteTable();
  oauthRoutes(table, rc);
  objectRoutes(table, rc);
  metadataRoutes(table, rc);
  associationRoutes(table, rc);

  // ---- request handling -------------------------------------------------------------------------
  const parseBody = (ref: OpRef, raw: Buffer, contentType: string | undefined): unknown => {
    const media = spec.requestMediaTypes(ref);
    if (media.length === 0) return undefined;
    const ct = (contentType ?? "").split(";")[0]!.trim().toLowerCase();
    if (raw.length === 0) {
      if (spec.requestBodyRequired(ref))
        throw validationError("Invalid input JSON: the request body is required.", { errors: [{ message: "request body is required", in: "body" }] });
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

  const handleApi = async (req: IncomingMessage, res: ServerResponse, url: URL, path: string): Promise<void> => {
    const method = (req.method ?? "GET").toUpperCase();
    const matched = table.match(method, path);
    const key = matched ? RouteTable.counterKey(matched.r, matched.params) : `${method} ${path}`;
    state.counters.add(key);
    state.stats.count(key);
    const headers: Record<string, string> = { "X-HubSpot-Correlation-Id": correlationId() };
    let status = 500;
    let body: unknown;
    let ref: OpRef | undefined;
    const fault = state.faults.take(method, path);
    const raw = await readRequestBody(req).catch((e: unknown) => e);
    try {
      if (fault?.delayMs) await sleep(fault.delayMs);
      if (fault?.status !== undefined) {
        if (fault.status === 429) {
          const wait = fault.retryAfter === undefined ? 1 : fault.retryAfter;
          throw rateLimited(fault.policy ?? "TEN_SECONDLY_ROLLING", wait === null ? {} : { "Retry-After": String(wait) }, "publicapi:simulator-fault");
        }
        throw apiError(
          fault.status,
          fault.status >= 500 ? "INTERNAL_ERROR" : "VALIDATION_ERROR",
          fault.status >= 500 ? "internal error" : `simulated ${fault.status}`,
        );
      }
      if (raw instanceof Error) throw raw;
      if (!matched) {
        if (table.knows(path)) throw apiError(405, "VALIDATION_ERROR", `${method} is not supported on ${path} by the simulator.`);
        throw notFound(`No route for ${method} ${path}.`);
      }
      const resolved = matched.r.resolve(matched.params);
      ref = resolved.ref;
      const at = now();
      let token: AccessToken | undefined;
      if (!matched.r.noAuth) {
        token = tokens.authenticate(req.headers.authorization, at);
        const outcome = limiter.check(
          {
            bucket: token.app,
            countsTenSecondly: !(store.settings.rateLimits.specExemptions && resolved.ref !== undefined && spec.exemptFromTenSecondly(resolved.ref)),
            isSearch: resolved.search === true,
            privateApp: token.kind === "private_app",
          },
          at,
        );
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
      const reply = matched.r.handle(
        { method, path, params: matched.params, query: q.values, rawQuery: url.searchParams, body: parsed, token, now: at },
        resolved,
      );
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
        state.failures.push({ method, path, status, problems });
        const msg = `hubspot-sim: response to ${method} ${path} (${status}) does not conform to the spec: ${problems.map((p) => `${p.where} ${p.message}`).join("; ")}`;
        (opts.log ?? console.error)(msg);
        status = 500;
        body = { status: "error", message: msg, correlationId: correlationId(), category: "SIMULATOR_RESPONSE_INVALID" };
      }
    }
    if (status === 429) state.rateLimited.count++;
    state.recent.push({ method, path, status });
    if (state.recent.length > 1000) state.recent.splice(0, state.recent.length - 1000);
    send(res, status, body, headers, fault?.body);
  };

  /** The install page (routes/authorize.ts): HTML, no bearer token, no rate limit, counted like the API. */
  const handleAuthorize = async (req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> => {
    const method = (req.method ?? "GET").toUpperCase();
    const key = `${method} ${AUTHORIZE_PATH}`;
    state.counters.add(key);
    state.stats.count(key);
    let reply: { status: number; body: string; headers: Record<string, string> };
    if (method === "GET") reply = authorizePage(tokens, store.settings, method, url.searchParams, now());
    else if (method === "POST") {
      const raw = await readRequestBody(req);
      reply = authorizePage(tokens, store.settings, method, new URLSearchParams(raw.toString("utf8")), now());
    } else reply = { status: 405, body: "", headers: { Allow: "GET, POST" } };
    state.recent.push({ method, path: AUTHORIZE_PATH, status: reply.status });
    if (state.recent.length > 1000) state.recent.splice(0, state.recent.length - 1000);
    res.writeHead(reply.status, { ...reply.headers, "Content-Length": String(Buffer.byteLength(reply.body)) });
    res.end(reply.body);
  };

  const controls = createControls(state);

  const handle = (req: IncomingMessage, res: ServerResponse): void => {
    const url = new URL(req.url ?? "/", "http://simulator.local");
    let path = url.pathname.replace(/\/{2,}/g, "/");
    if (path.length > 1 && path.endsWith("/")) path = path.slice(0, -1);
    const work = path.startsWith("/__simulator")
      ? handleControl(state, controls, req, res, path)
      : isAdminPath(path)
        ? handleAdmin(state, controls, req, res, path)
        : path === AUTHORIZE_PATH
          ? handleAuthorize(req, res, url)
          : handleApi(req, res, url, path);
    work.catch((e: unknown) => {
      log(`hubspot-sim: unhandled ${(e as Error).stack ?? String(e)}`);
      if (!res.headersSent) send(res, 500, { status: "error", message: String(e), correlationId: correlationId(), category: "INTERNAL_ERROR" }, {});
      else res.destroy();
    });
  };
  return { handle, controls, settings: store.settings, tokens };
}

export async function startHubSpotSimulator(opts: HubSpotSimulatorOptions): Promise<HubSpotSimulator> {
  const log = opts.log ?? (() => {});
  const { handle, controls, settings } = createHubSpotPortalApp(opts);
  const server = createServer(handle);
  server.keepAliveTimeout = 5000;

  const host = opts.host ?? "127.0.0.1";
  const port = await listen(server, opts.port ?? 0, host);
  const url = serverUrl(host, port);
  log(`hubspot-sim: listening on ${url}`);

  return {
    url,
    port,
    settings,
    close: () => closeServer(server),
    ...controls,
  };
}
