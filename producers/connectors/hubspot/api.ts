/**
 * HubSpot API access for the connector, through @hubspot/api-client 14 (retries off: this layer
 * decides): OAuth access tokens refreshed single-flight, client-side rate limiting per portal
 * (the rolling ten-secondly budget, adjusted from the X-HubSpot-RateLimit-* headers, and the
 * CRM search per-second limit; counted in PostgreSQL across every worker process when the worker
 * has a SharedRateLimitStore, see producers/shared-rate-limiter.ts), 429s retried after Retry-After (else backoff), 5xx / network /
 * unparseable answers retried with backoff, timeouts, and errors sorted into ConfigError (fix
 * the config or the app's scopes) or SourceUnavailableError (retry later). Every retry goes
 * through lib/retry.ts with the policies in RETRY below, on the client's clock (tests replace it).
 * Tokens never reach a log line or an error message.
 *
 * Rate limiting is in limits.ts, token storage in tokens.ts, error sorting in errors.ts, the
 * answers' shapes in api-types.ts.
 */
import { Client } from "@hubspot/api-client";
import { ConfigError, SourceUnavailableError } from "../../../lib/errors.ts";
import { logger, type Logger } from "../../../lib/log.ts";
import { retry, type RetryPolicy } from "../../../lib/retry.ts";
import type { BudgetStore } from "../../shared-rate-limiter.ts";
import type {
  AccountInfo,
  AssociationBatch,
  AssociationTarget,
  HubSpotObject,
  ListPage,
  OwnerDef,
  PipelineDef,
  PropertyDef,
  SchemaDef,
  SearchBody,
  SearchPage,
} from "./api-types.ts";
import {
  HubSpotDailyLimitError,
  HubSpotRateLimitError,
  HubSpotRequestError,
  HubSpotUnauthorizedError,
  HubSpotUnavailableError,
  MissingScopesError,
  abortError,
  asApiException,
  bodyField,
  describeFailure,
  header,
  missingScopesOf,
  withTimeout,
} from "./errors.ts";
import { portalLimiters, realClock, type HubSpotClock, type PortalLimiters } from "./limits.ts";
import { defaultTokenStore, refreshTokenOf, type TokenStoreLike } from "./tokens.ts";

interface HubSpotApiOptions {
  connectorId: string;
  baseUrl: string;
  clientId: string;
  clientSecret: string;
  /** From the config; else the token store's. */
  refreshToken?: string;
  clock?: HubSpotClock;
  rateLimits: { perTenSeconds: number; searchPerSecond: number };
  /**
   * Count the budgets in PostgreSQL, shared by every worker process (producers/shared-rate-limiter.ts);
   * absent: in this process only. Its waits are real time: use it with the real clock.
   */
  sharedLimits?: BudgetStore;
  requestTimeoutMs?: number;
  /** Token store loader (default: producers/oauth/token-store.ts). */
  tokenStore?: () => Promise<TokenStoreLike | null>;
  /** Retries of one call after 429s (default 10) and after 5xx / network errors (default 5). */
  maxRateLimitRetries?: number;
  maxTransientRetries?: number;
  /** A 429 asking to wait longer than this (the DAILY budget) fails the run instead. Default 5 min. */
  maxRetryAfterMs?: number;
  log?: Logger;
}

interface ApiStats {
  requests: number;
  /** 429 answers (each was retried, or the call failed once retries were exhausted). */
  rateLimited: number;
  retries: number;
  tokenRefreshes: number;
}

interface Session {
  client: Client;
  token: string;
  expiresAt: number;
  generation: number;
}

/** Refresh this long before the token's announced expiry. */
const EARLY_REFRESH_MS = 60_000;

/**
 * How this source tries again, in one place. The policy is chosen by the failure's class
 * (errors.ts), and each is counted on its own within one call:
 *  - unauthorized: a 401 is retried at once after a single-flight token refresh, at most twice.
 *  - rateLimited: a 429 waits HubSpot's Retry-After (else backoff from 1 s), and the portal's
 *    limiter pauses as long so other calls hold back too; maxRateLimitRetries overrides the count.
 *    A DAILY 429 whose Retry-After is beyond maxRetryAfterMs is not retried (the run fails).
 *  - transient: 5xx, network errors, timeouts and unparseable answers, backoff from 500 ms;
 *    maxTransientRetries overrides the count.
 *  - tokenRefresh: the token endpoint failing other than with a 4xx; maxTransientRetries too.
 */
export const RETRY = {
  unauthorized: { retries: 2, initialMs: 0, maxMs: 0 },
  rateLimited: { retries: 10, initialMs: 1_000, maxMs: 30_000 },
  transient: { retries: 5, initialMs: 500, maxMs: 30_000 },
  tokenRefresh: { retries: 5, initialMs: 500, maxMs: 30_000 },
} satisfies Record<string, RetryPolicy>;

type CallKind = "standard" | "search";

export class HubSpotApi {
  readonly stats: ApiStats = { requests: 0, rateLimited: 0, retries: 0, tokenRefreshes: 0 };
  readonly clock: HubSpotClock;
  private readonly opts: HubSpotApiOptions;
  private readonly limiters: PortalLimiters;
  private readonly log: Logger;
  private session: Session | null = null;
  private refreshing: Promise<Session> | null = null;
  private generation = 0;
  private refreshToken: string | undefined;
  /** RETRY with this client's overrides (one object per policy: retries are counted per object). */
  private readonly policies: Record<keyof typeof RETRY, RetryPolicy>;

  constructor(opts: HubSpotApiOptions) {
    this.opts = opts;
    this.clock = opts.clock ?? realClock;
    this.policies = {
      unauthorized: RETRY.unauthorized,
      rateLimited: { ...RETRY.rateLimited, retries: opts.maxRateLimitRetries ?? RETRY.rateLimited.retries },
      transient: { ...RETRY.transient, retries: opts.maxTransientRetries ?? RETRY.transient.retries },
      tokenRefresh: { ...RETRY.tokenRefresh, retries: opts.maxTransientRetries ?? RETRY.tokenRefresh.retries },
    };
    // An in-flight slot older than two request timeouts belongs to a worker that died mid-request.
    const shared = opts.sharedLimits ? { store: opts.sharedLimits, staleMs: 2 * (opts.requestTimeoutMs ?? 60_000) } : undefined;
    this.limiters = portalLimiters(`${opts.baseUrl}|${opts.clientId}`, this.clock, opts.rateLimits, shared);
    this.log = opts.log ?? logger.child({ component: "hubspot", connector: opts.connectorId });
    this.refreshToken = opts.refreshToken;
  }

  // -- tokens --

  private async getSession(): Promise<Session> {
    const s = this.session;
    if (s && this.clock.now() < s.expiresAt - EARLY_REFRESH_MS) return s;
    return this.renew(s?.generation ?? 0);
  }

  /** Refreshes unless a newer session than `staleGeneration` exists; concurrent callers share one refresh. */
  private renew(staleGeneration: number): Promise<Session> {
    if (this.session && this.session.generation > staleGeneration && this.clock.now() < this.session.expiresAt - EARLY_REFRESH_MS) {
      return Promise.resolve(this.session);
    }
    if (!this.refreshing) {
      this.refreshing = this.doRefresh().finally(() => {
        this.refreshing = null;
      });
    }
    return this.refreshing;
  }

  private async doRefresh(): Promise<Session> {
    const id = this.opts.connectorId;
    if (!this.refreshToken) {
      const store = await (this.opts.tokenStore ?? defaultTokenStore)();
      this.refreshToken = store ? refreshTokenOf(await store.loadToken(id)) : undefined;
      if (!this.refreshToken) {
        throw new ConfigError(`connector ${id}: no HubSpot refresh token: set refreshToken in the config, or run \`qobra-sync auth ${id}\``);
      }
    }
    const oauth = new Client({ basePath: this.opts.baseUrl, numberOfApiCallRetries: 0 });
    return retry(
      async () => {
        try {
          this.stats.requests++;
          const t: { accessToken: string; refreshToken?: string; expiresIn: number } = await withTimeout(
            oauth.oauth.tokensApi.create("refresh_token", undefined, undefined, this.opts.clientId, this.opts.clientSecret, this.refreshToken),
            this.opts.requestTimeoutMs ?? 60_000,
            "HubSpot's token endpoint",
          );
          this.stats.tokenRefreshes++;
          const expiresIn = Number(t.expiresIn) > 0 ? Number(t.expiresIn) : 1800;
          const session: Session = {
            client: new Client({ accessToken: t.accessToken, basePath: this.opts.baseUrl, numberOfApiCallRetries: 0 }),
            token: t.accessToken,
            expiresAt: this.clock.now() + expiresIn * 1000,
            generation: ++this.generation,
          };
          this.session = session;
          if (t.refreshToken && t.refreshToken !== this.refreshToken) {
            // HubSpot does not rotate refresh tokens today; keep a rotated one if it ever does.
            this.refreshToken = t.refreshToken;
            const store = await (this.opts.tokenStore ?? defaultTokenStore)();
            await store?.saveToken?.(id, { refreshToken: t.refreshToken }).catch(() => {});
          }
          this.log.debug({ expiresIn, generation: session.generation }, "HubSpot access token refreshed");
          return session;
        } catch (e) {
          throw this.refreshFailure(e);
        }
      },
      this.policies.tokenRefresh,
      {
        onRetry: () => {
          this.stats.retries++;
        },
        sleep: (ms) => this.clock.sleep(ms),
        now: () => this.clock.now(),
      },
    );
  }

  /** A failed refresh: a 4xx (other than 429) is the app's credentials, the rest may pass (retried by tokenRefresh). */
  private refreshFailure(e: unknown): Error {
    const id = this.opts.connectorId;
    const ex = asApiException(e);
    if (ex && ex.code >= 400 && ex.code < 500 && ex.code !== 429) {
      const status = bodyField(ex.body, "status") ?? bodyField(ex.body, "category") ?? String(ex.code);
      const msg = bodyField(ex.body, "message") ?? "";
      return new ConfigError(
        `connector ${id}: HubSpot refused to refresh the access token (${status}${msg ? `: ${msg}` : ""}); check clientId/clientSecret, or run \`qobra-sync auth ${id}\` again`,
      );
    }
    // A plain SourceUnavailableError, not HubSpotUnavailableError: a call that needed the token
    // does not retry a refresh that already spent its own retries.
    return new SourceUnavailableError(`connector ${id}: cannot refresh the HubSpot access token: ${describeFailure(e)}`);
  }

  // -- calls --

  /**
   * Runs one API call: waits for the rate limiters, uses a valid token, retries 401 (after a
   * single-flight refresh), 429 and transient failures by the policies in RETRY, and classifies the rest.
   */
  async call<T>(kind: CallKind, what: string, fn: (client: Client) => Promise<{ data: T; headers: Record<string, string> }>, signal?: AbortSignal): Promise<T> {
    const limiter = kind === "search" ? this.limiters.search : this.limiters.standard;
    const seen = { rateLimited: 0, transient: 0 };
    const p = this.policies;
    return retry(
      async () => {
        if (signal?.aborted) throw abortError(signal);
        const session = await this.getSession();
        const release = await limiter.acquire(signal);
        let res: { data: T; headers: Record<string, string> };
        try {
          this.stats.requests++;
          res = await withTimeout(fn(session.client), this.opts.requestTimeoutMs ?? 60_000, what);
        } catch (e) {
          release();
          throw this.failure(e, what, session.generation, seen);
        }
        release();
        if (kind === "standard") this.observeBudget(res.headers);
        return res.data;
      },
      p.transient,
      {
        policyOf: (e) =>
          e instanceof HubSpotUnauthorizedError
            ? p.unauthorized
            : e instanceof HubSpotRateLimitError
              ? p.rateLimited
              : e instanceof HubSpotUnavailableError
                ? p.transient
                : undefined,
        waitFor: (e) => (e instanceof HubSpotRateLimitError ? e.retryAfterMs : undefined),
        onRetry: async (e, attempt, waitMs) => {
          if (e instanceof HubSpotUnauthorizedError) {
            await this.renew(e.generation);
            return;
          }
          this.stats.retries++;
          if (e instanceof HubSpotRateLimitError) {
            limiter.pause(waitMs);
            this.log.debug({ what, policy: e.policy, waitMs }, "HubSpot rate limit: waiting");
          } else {
            this.log.debug({ what, attempt, err: (e as Error).message }, "HubSpot call failed; retrying");
          }
        },
        // The signal cuts a wait short; the next attempt then throws the abort (as before a retry).
        sleep: (ms) => this.clock.sleep(ms, signal),
        now: () => this.clock.now(),
      },
    );
  }

  /** One failed call as the error class that decides what happens next (see RETRY). */
  private failure(e: unknown, what: string, generation: number, seen: { rateLimited: number; transient: number }): Error {
    if (e instanceof ConfigError) return e;
    const id = this.opts.connectorId;
    const ex = asApiException(e);
    const status = ex?.code ?? 0;
    if (status === 401) {
      return new HubSpotUnauthorizedError(
        `connector ${id}: HubSpot rejects freshly refreshed access tokens on ${what} (${bodyField(ex?.body, "category") ?? "401"}); run \`qobra-sync auth ${id}\` again`,
        generation,
      );
    }
    if (status === 429) {
      this.stats.rateLimited++;
      const policy = bodyField(ex?.body, "policyName") ?? "";
      const retryAfterS = Number(header(ex?.headers, "retry-after"));
      const retryAfterMs = Number.isFinite(retryAfterS) && retryAfterS > 0 ? retryAfterS * 1000 : undefined;
      if (policy === "DAILY" && retryAfterMs !== undefined && retryAfterMs > (this.opts.maxRetryAfterMs ?? 300_000)) {
        return new HubSpotDailyLimitError(
          `connector ${id}: HubSpot's daily API limit is reached (it resets in ${Math.round(retryAfterMs / 60_000)} min); the next run resumes from the last successful import`,
        );
      }
      // The message is the one the call fails with once the retries are spent.
      return new HubSpotRateLimitError(
        `connector ${id}: ${what} was still rate limited by HubSpot (${policy || "429"}) after ${seen.rateLimited++} retries`,
        policy,
        retryAfterMs,
      );
    }
    if (status === 403) {
      const category = bodyField(ex?.body, "category");
      const scopes = missingScopesOf(ex?.body);
      if (category === "MISSING_SCOPES" || scopes.length > 0) {
        const which =
          scopes.length === 0
            ? "a scope (HubSpot did not name it)"
            : scopes.length === 1
              ? `the scope ${scopes[0]}`
              : `a scope: HubSpot asks for one of ${scopes.join(", ")}`;
        return new MissingScopesError(
          `connector ${id}: the HubSpot app lacks ${which}, needed for ${what}; grant it to the app and run \`qobra-sync auth ${id}\` again`,
          scopes,
        );
      }
      return new HubSpotRequestError(
        `connector ${id}: HubSpot refused ${what} (403 ${category ?? ""}: ${bodyField(ex?.body, "message") ?? ""})`,
        403,
        category,
      );
    }
    if (status >= 400 && status < 500) {
      const category = bodyField(ex?.body, "category");
      return new HubSpotRequestError(
        `connector ${id}: HubSpot answered ${status} to ${what}: ${bodyField(ex?.body, "message") ?? "no message"}${category ? ` (${category})` : ""}`,
        status,
        category,
      );
    }
    // 5xx, network errors, timeouts, unparseable bodies: transient.
    return new HubSpotUnavailableError(`connector ${id}: ${what} failed ${++seen.transient} times: ${describeFailure(e)}`);
  }

  /** Learns the portal's budget from X-HubSpot-RateLimit-* and pauses when it is spent. */
  private observeBudget(headers: Record<string, string>): void {
    const max = Number(header(headers, "x-hubspot-ratelimit-max"));
    const remaining = Number(header(headers, "x-hubspot-ratelimit-remaining"));
    const interval = Number(header(headers, "x-hubspot-ratelimit-interval-milliseconds"));
    if (Number.isFinite(max) && max > 0 && max < this.limiters.standard.max) this.limiters.standard.max = max;
    if (Number.isFinite(remaining) && remaining <= 0) {
      this.limiters.standard.pause(Number.isFinite(interval) && interval > 0 ? Math.ceil(interval / 10) : 1000);
    }
  }

  // -- typed helpers --

  async listPage(
    objectType: string,
    opts: { after?: string; properties?: string[]; archived: boolean; limit?: number },
    signal?: AbortSignal,
  ): Promise<ListPage> {
    return this.call(
      "standard",
      `GET /crm/v3/objects/${objectType}`,
      async (c) => {
        const r = await c.crm.objects.basicApi.getPageWithHttpInfo(
          objectType,
          opts.limit ?? 100,
          opts.after,
          opts.properties,
          undefined,
          undefined,
          opts.archived,
        );
        return { data: r.data as unknown as ListPage, headers: r.headers };
      },
      signal,
    );
  }

  async search(objectType: string, body: SearchBody, signal?: AbortSignal): Promise<SearchPage> {
    return this.call(
      "search",
      `POST /crm/v3/objects/${objectType}/search`,
      async (c) => {
        const r = await c.crm.objects.searchApi.doSearchWithHttpInfo(
          objectType,
          body as unknown as Parameters<Client["crm"]["objects"]["searchApi"]["doSearch"]>[1],
        );
        return { data: r.data as unknown as SearchPage, headers: r.headers };
      },
      signal,
    );
  }

  /** Current values of up to 100 records (ids that no longer exist are left out). */
  async batchRead(objectType: string, ids: string[], properties: string[], signal?: AbortSignal): Promise<HubSpotObject[]> {
    if (ids.length > 100) throw new Error("batchRead: at most 100 ids per batch");
    const res = await this.call(
      "standard",
      `POST /crm/v3/objects/${objectType}/batch/read`,
      async (c) => {
        const r = await c.crm.objects.batchApi.readWithHttpInfo(
          objectType,
          { inputs: ids.map((id) => ({ id })), properties, propertiesWithHistory: [] },
          false,
        );
        return { data: r.data as unknown as { results: HubSpotObject[] }, headers: r.headers };
      },
      signal,
    );
    return res.results ?? [];
  }

  async properties(objectType: string, signal?: AbortSignal): Promise<PropertyDef[]> {
    const res = await this.call(
      "standard",
      `GET /crm/v3/properties/${objectType}`,
      async (c) => {
        const r = await c.crm.properties.coreApi.getAllWithHttpInfo(objectType, false);
        return { data: r.data as unknown as { results: PropertyDef[] }, headers: r.headers };
      },
      signal,
    );
    return res.results;
  }

  async owners(archived: boolean, signal?: AbortSignal): Promise<OwnerDef[]> {
    const out: OwnerDef[] = [];
    let after: string | undefined;
    do {
      const page = await this.call(
        "standard",
        "GET /crm/v3/owners",
        async (c) => {
          const r = await c.crm.owners.ownersApi.getPageWithHttpInfo(undefined, after, 500, archived);
          return { data: r.data as unknown as { results: OwnerDef[]; paging?: { next?: { after?: string } } }, headers: r.headers };
        },
        signal,
      );
      out.push(...page.results);
      after = page.paging?.next?.after;
    } while (after);
    return out;
  }

  async schemas(signal?: AbortSignal): Promise<SchemaDef[]> {
    const res = await this.call(
      "standard",
      "GET /crm-object-schemas/v3/schemas",
      async (c) => {
        const r = await c.crm.schemas.coreApi.getAllWithHttpInfo(false);
        return { data: r.data as unknown as { results: SchemaDef[] }, headers: r.headers };
      },
      signal,
    );
    return res.results;
  }

  async pipelines(objectType: string, signal?: AbortSignal): Promise<PipelineDef[]> {
    const res = await this.call(
      "standard",
      `GET /crm/v3/pipelines/${objectType}`,
      async (c) => {
        const r = await c.crm.pipelines.pipelinesApi.getAllWithHttpInfo(objectType);
        return { data: r.data as unknown as { results: PipelineDef[] }, headers: r.headers };
      },
      signal,
    );
    return res.results;
  }

  /** The portal's company currency and time zone (GET /account-info/v3/details). */
  async accountInfo(signal?: AbortSignal): Promise<AccountInfo> {
    return this.call(
      "standard",
      "GET /account-info/v3/details",
      async (c) => {
        const res = await c.apiRequest({ method: "GET", path: "/account-info/v3/details" });
        const headers: Record<string, string> = {};
        res.headers.forEach((v, k) => {
          headers[k] = v;
        });
        const text = await res.text();
        let body: unknown = text;
        try {
          body = JSON.parse(text);
        } catch {
          /* keep text */
        }
        if (!res.ok) throw Object.assign(new Error(`HTTP ${res.status}`), { code: res.status, body, headers });
        return { data: body as AccountInfo, headers };
      },
      signal,
    );
  }

  /** Associations v4 batch read of at most 1,000 ids (continues each id's own paging). */
  async associations(fromType: string, toType: string, ids: string[], signal?: AbortSignal): Promise<Map<string, AssociationTarget[]>> {
    if (ids.length > 1000) throw new Error("associations: at most 1,000 ids per batch");
    const out = new Map<string, AssociationTarget[]>();
    let inputs: Array<{ id: string; after?: string }> = ids.map((id) => ({ id }));
    while (inputs.length > 0) {
      const batch = inputs;
      const res = await this.call(
        "standard",
        `POST /crm/v4/associations/${fromType}/${toType}/batch/read`,
        async (c) => {
          const r = await c.crm.associations.v4.batchApi.getPageWithHttpInfo(fromType, toType, { inputs: batch } as Parameters<
            Client["crm"]["associations"]["v4"]["batchApi"]["getPage"]
          >[2]);
          return { data: r.data as unknown as AssociationBatch, headers: r.headers };
        },
        signal,
      );
      inputs = [];
      for (const item of res.results ?? []) {
        const from = String((item as { from?: { id?: unknown }; _from?: { id?: unknown } }).from?.id ?? (item as { _from?: { id?: unknown } })._from?.id ?? "");
        const list = out.get(from) ?? [];
        for (const to of item.to ?? []) {
          list.push({
            id: String(to.toObjectId),
            types: (to.associationTypes ?? []).map((t) => ({ category: String(t.category ?? ""), typeId: Number(t.typeId), label: t.label ?? null })),
          });
        }
        out.set(from, list);
        const next = item.paging?.next?.after;
        if (next) inputs.push({ id: from, after: next });
      }
      for (const err of res.errors ?? []) {
        const sub = String(err.subCategory ?? "");
        if (sub.endsWith("NO_ASSOCIATIONS_FOUND") || err.category === "OBJECT_NOT_FOUND") continue;
        throw new HubSpotRequestError(
          `connector ${this.opts.connectorId}: reading ${fromType}→${toType} associations failed: ${String(err.message ?? err.category ?? "unknown error")}`,
          207,
          String(err.category ?? ""),
        );
      }
    }
    return out;
  }

  /** The scopes granted to the current access token. */
  async grantedScopes(signal?: AbortSignal): Promise<string[]> {
    const s = await this.getSession();
    return this.call(
      "standard",
      "GET /oauth/v1/access-tokens/{token}",
      async (c) => {
        const r = await c.oauth.accessTokensApi.getWithHttpInfo(s.token);
        return { data: (r.data.scopes ?? []).map(String), headers: r.headers };
      },
      signal,
    );
  }

  /** Fetches a session now (a clear error early if auth is broken). */
  async authenticate(): Promise<void> {
    await this.getSession();
  }
}
