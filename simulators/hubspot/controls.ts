/**
 * The HubSpot simulator's test controls: the programmatic handle's methods (clock, tokens, faults, counters,
 * data changes, diagnostics), their HTTP form under `/__simulator`, and the public admin API of issue #5
 * under `/__admin` (stats, record upserts, archives, merges and purges, association changes). None of these requests is
 * counted, rate limited, faulted or authenticated.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import { matchAdminRoute } from "../kit/admin.ts";
import type { Tally, StatsBook, RouteStats } from "../kit/counters.ts";
import type { FaultRules } from "../kit/faults.ts";
import type { TokenStore } from "./auth.ts";
import { correlationId, type RatePolicy } from "./errors.ts";
import type { RateLimiter } from "./limits.ts";
import { adminMerge, adminPurge } from "./merges.ts";
import { readRequestBody, send, type CorruptBody } from "./respond.ts";
import type { ValidationProblem } from "./spec.ts";
import { DataError, type Store, type StoredRecord } from "./store.ts";
import type { ContractAssociation, PropertyValue } from "./types.ts";

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
  /** For status 429: the Retry-After header, in seconds (default 1); null sends none, as HubSpot may. */
  retryAfter?: number | null;
  /** Wait this long (real time) before answering. */
  delayMs?: number;
  /**
   * Corrupt the body: "truncated" (cut in half), "malformed" (not JSON), "empty", "html" (a
   * gateway HTML page), "no-content-type" (the JSON without a Content-Type header).
   */
  body?: CorruptBody;
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
export interface AdminStats extends RouteStats {
  rateLimited: number;
}

/** The simulator's mutable state the controls read and change. */
export interface SimState {
  store: Store;
  tokens: TokenStore;
  limiter: RateLimiter;
  counters: Tally;
  stats: StatsBook;
  /** 429 answers since the last stats reset. */
  rateLimited: { count: number };
  faults: FaultRules<FaultSpec>;
  failures: ResponseValidationFailure[];
  recent: Array<{ method: string; path: string; status: number }>;
  now(): number;
  advanceClock(ms: number): void;
}

const publicRecord = (r: StoredRecord): PublicRecord => {
  const out: PublicRecord = { id: r.id, properties: { ...r.properties }, createdAt: r.createdAt, updatedAt: r.updatedAt, archived: r.archived };
  if (r.archivedAt) out.archivedAt = r.archivedAt;
  return out;
};

type Controls = ReturnType<typeof createControls>;

/** The handle's control methods (see README.md). */
export function createControls(s: SimState) {
  const { store, tokens, limiter, now } = s;
  return {
    counters: (): Record<string, number> => s.counters.snapshot(),
    stats: (): AdminStats => ({ ...s.stats.stats(), rateLimited: s.rateLimited.count }),
    resetStats: (): void => {
      s.stats.reset();
      s.rateLimited.count = 0;
    },
    upsertRecords: (type: string, records: unknown): PublicRecord[] => store.adminUpsert(type, records, now()).map(publicRecord),
    archiveRecords: (type: string, ids: unknown) => store.adminArchive(type, ids, now()),
    mergeRecords: (type: string, primaryId: unknown, mergedIds: unknown) => adminMerge(store, { objectType: type, primaryId, mergedIds }, now()),
    purgeRecords: (type: string, ids: unknown) => adminPurge(store, { objectType: type, ids }),
    changeAssociations: (change: { add?: unknown; remove?: unknown }): { added: number; removed: number } => {
      if (change === null || typeof change !== "object" || Array.isArray(change)) throw new DataError("the body must be { add?: [...], remove?: [...] }");
      return store.changeAssociations(change.add, change.remove);
    },
    resetCounters: (): void => {
      s.counters.clear();
    },
    now,
    advanceClock: (ms: number): void => s.advanceClock(ms),
    issueAccessToken: (o: { scopes?: string[]; ttlSeconds?: number; kind?: "oauth" | "private_app" } = {}): string => tokens.issue(o, now()).token,
    addRefreshToken: (o: { token?: string; scopes?: string[] } = {}): string => tokens.addRefreshToken(o),
    expireAccessTokens: (token?: string): number => tokens.expire(now(), token),
    revokeRefreshToken: (token: string, o: { revokeAccessTokens?: boolean } = {}): boolean => tokens.revokeRefreshToken(token, o.revokeAccessTokens ?? false),
    revokeAccessToken: (token: string): boolean => tokens.revokeAccessToken(token),
    injectFault: (f: FaultSpec): void => {
      if (!f || typeof f.path !== "string") throw new DataError("a fault needs a path");
      s.faults.add(f);
    },
    clearFaults: (): void => {
      s.faults.clear();
    },
    upsertRecord: (type: string, rec: { id?: string; properties?: Record<string, PropertyValue>; updatedAt?: string; createdAt?: string }): PublicRecord =>
      publicRecord(store.upsertRecord(type, rec, now())),
    archiveRecord: (type: string, id: string): void => store.archiveRecord(type, id, now()),
    resetRateLimits: (): void => limiter.reset(),
    rateLimitUsage: () => limiter.usage(),
    responseValidationFailures: (): ResponseValidationFailure[] => [...s.failures],
    requestLog: () => [...s.recent],
  };
}

/** `/__simulator/...`: the controls over HTTP. */
export async function handleControl(s: SimState, controls: Controls, req: IncomingMessage, res: ServerResponse, path: string): Promise<void> {
  const { tokens, now } = s;
  const method = (req.method ?? "GET").toUpperCase();
  const raw = await readRequestBody(req);
  let input: Record<string, unknown> = {};
  try {
    if (raw.length > 0) input = JSON.parse(raw.toString("utf8")) as Record<string, unknown>;
  } catch {
    /* empty */
  }
  const ok = (body: unknown, status = 200) => send(res, status, body, {});
  const sub = path.slice("/__simulator".length);
  try {
    let m: RegExpExecArray | null;
    if (method === "GET" && sub === "/counters") return ok(controls.counters());
    if (method === "POST" && sub === "/reset-counters") {
      controls.resetCounters();
      return ok({ ok: true });
    }
    if (method === "GET" && sub === "/faults") return ok(s.faults.list());
    if (method === "POST" && sub === "/faults") {
      for (const f of Array.isArray(input) ? (input as FaultSpec[]) : [input as unknown as FaultSpec]) controls.injectFault(f);
      return ok({ ok: true, faults: s.faults.list() });
    }
    if (method === "DELETE" && sub === "/faults") {
      controls.clearFaults();
      return ok({ ok: true });
    }
    if (method === "GET" && sub === "/clock") return ok({ now: now(), iso: new Date(now()).toISOString() });
    if (method === "POST" && sub === "/clock/advance") {
      controls.advanceClock(Number(input.ms ?? 0));
      return ok({ now: now(), iso: new Date(now()).toISOString() });
    }
    if (method === "POST" && sub === "/tokens") {
      const t = tokens.issue(input as { scopes?: string[]; ttlSeconds?: number; kind?: "oauth" | "private_app" }, now());
      return ok({ access_token: t.token, expires_in: t.expiresAt === null ? null : Math.round((t.expiresAt - now()) / 1000), scopes: t.scopes, kind: t.kind });
    }
    if (method === "POST" && sub === "/tokens/expire") return ok({ expired: controls.expireAccessTokens(input.token as string | undefined) });
    if (method === "POST" && sub === "/tokens/revoke") {
      const r =
        typeof input.refreshToken === "string"
          ? controls.revokeRefreshToken(input.refreshToken, { revokeAccessTokens: input.revokeAccessTokens === true })
          : false;
      const a = typeof input.accessToken === "string" ? controls.revokeAccessToken(input.accessToken) : false;
      return ok({ refreshTokenRevoked: r, accessTokenRevoked: a });
    }
    if (method === "POST" && sub === "/reset-rate-limits") {
      controls.resetRateLimits();
      return ok({ ok: true });
    }
    if (method === "GET" && sub === "/rate-limits") return ok(controls.rateLimitUsage());
    if (method === "GET" && sub === "/requests") return ok(controls.requestLog());
    if (method === "GET" && sub === "/response-validation-failures") return ok(controls.responseValidationFailures());
    if (method === "POST" && (m = /^\/records\/([^/]+)\/(\d+)\/archive$/.exec(sub))) {
      controls.archiveRecord(m[1]!, m[2]!);
      return ok({ ok: true });
    }
    if (method === "POST" && (m = /^\/records\/([^/]+)$/.exec(sub)))
      return ok(controls.upsertRecord(m[1]!, input as { id?: string; properties?: Record<string, PropertyValue> }));
    return send(
      res,
      404,
      { status: "error", message: `unknown simulator control ${method} ${path}`, correlationId: correlationId(), category: "OBJECT_NOT_FOUND" },
      {},
    );
  } catch (e) {
    return send(res, 400, { status: "error", message: (e as Error).message, correlationId: correlationId(), category: "VALIDATION_ERROR" }, {});
  }
}

/** The admin API's routes and their methods. */
const ADMIN_ROUTES: Record<string, string> = {
  "/stats": "GET",
  "/stats/reset": "POST",
  "/records": "POST",
  "/archive": "POST",
  "/merge": "POST",
  "/purge": "POST",
  "/associations": "POST",
};

/** `/__admin/...`: the public admin API (issue #5), errors in HubSpot's shape. */
export async function handleAdmin(s: SimState, controls: Controls, req: IncomingMessage, res: ServerResponse, path: string): Promise<void> {
  const method = (req.method ?? "GET").toUpperCase();
  const raw = await readRequestBody(req);
  const fail = (status: number, message: string, category: string, headers: Record<string, string> = {}) =>
    send(res, status, { status: "error", message, correlationId: correlationId(), category }, headers);
  const sub = path.slice("/__admin".length);
  const match = matchAdminRoute(ADMIN_ROUTES, sub, method);
  if (match.kind === "unknown") return fail(404, `No admin route ${method} ${path}.`, "OBJECT_NOT_FOUND");
  if (match.kind === "wrong-method") return fail(405, `${method} is not allowed on ${path}.`, "VALIDATION_ERROR", { Allow: match.allow });
  try {
    if (sub === "/stats") return send(res, 200, controls.stats(), {});
    if (sub === "/stats/reset") {
      controls.resetStats();
      return send(res, 200, controls.stats(), {});
    }
    let body: unknown;
    try {
      body = JSON.parse(raw.toString("utf8"));
    } catch (e) {
      throw new DataError(`the body is not JSON: ${(e as Error).message}`);
    }
    if (body === null || typeof body !== "object" || Array.isArray(body)) throw new DataError("the body must be a JSON object");
    const b = body as Record<string, unknown>;
    if (sub === "/records")
      return send(
        res,
        200,
        {
          objectType: s.store.resolveType(String(b.objectType ?? ""))?.name ?? b.objectType,
          results: controls.upsertRecords(b.objectType as string, b.records),
        },
        {},
      );
    if (sub === "/archive") return send(res, 200, controls.archiveRecords(b.objectType as string, b.ids), {});
    if (sub === "/merge") return send(res, 200, controls.mergeRecords(b.objectType as string, b.primaryId, b.mergedIds), {});
    if (sub === "/purge") return send(res, 200, controls.purgeRecords(b.objectType as string, b.ids), {});
    return send(res, 200, controls.changeAssociations(b as { add?: ContractAssociation[]; remove?: ContractAssociation[] }), {});
  } catch (e) {
    if (e instanceof DataError) return fail(400, e.message.replace(/^HubSpot simulator data: /, ""), "VALIDATION_ERROR");
    throw e;
  }
}
