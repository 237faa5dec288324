/**
 * The call loop of the HubSpot API client, through @hubspot/api-client 14 (retries off: this layer
 * decides): every call waits for the portal's rate limiters (the rolling ten-secondly budget,
 * adjusted from the X-HubSpot-RateLimit-* headers, and the CRM search per-second limit; counted
 * in PostgreSQL across every worker process when the worker has a shared store, see
 * producers/shared-rate-limiter.ts), uses a valid access token (api-session.ts), times out, and
 * is retried by the policies in RETRY below: 401 after a token refresh, 429 after Retry-After
 * (else the limit's window, see POLICY_WINDOW_MS), 5xx / network / unparseable answers with backoff. What fails for good is sorted
 * into ConfigError (fix the config or the app's scopes) or SourceUnavailableError (retry later).
 * Every retry goes through lib/retry.ts on the client's clock (tests replace it).
 *
 * It is kept apart from the typed endpoint helpers (api.ts, which extends this class) so that the
 * retry and error policy reads in one place. Rate limiting is in limits.ts, token storage in
 * tokens.ts, error sorting in errors.ts.
 */
import type { Client } from "@hubspot/api-client";
import type { EgressGuard } from "../../../lib/egress.ts";
import { ConfigError } from "../../../lib/errors.ts";
import { networkRefusalIn } from "../../../lib/network-policy.ts";
import { logger, type Logger } from "../../../lib/log.ts";
import { retry, type RetryPolicy } from "../../../lib/retry.ts";
import type { BudgetStore } from "../../shared-rate-limiter.ts";
import { HubSpotSessions, type Session } from "./api-session.ts";
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
import type { TokenStoreLike } from "./tokens.ts";

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
  /** A tenant's connector: every request through its network guard (lib/egress.ts). */
  guard?: EgressGuard;
}

interface ApiStats {
  requests: number;
  /** 429 answers (each was retried, or the call failed once retries were exhausted). */
  rateLimited: number;
  retries: number;
  tokenRefreshes: number;
}

/**
 * How this source tries again, in one place. The policy is chosen by the failure's class
 * (errors.ts), and each is counted on its own within one call:
 *  - unauthorized: a 401 is retried at once after a single-flight token refresh, at most twice.
 *  - rateLimited: a 429 waits HubSpot's Retry-After, else its policy's window (POLICY_WINDOW_MS:
 *    10 s for TEN_SECONDLY_ROLLING, 1 s for SECONDLY), else backoff from 1 s, and the portal's
 *    limiter pauses as long so other calls hold back too; maxRateLimitRetries overrides the count.
 *    A DAILY 429 without Retry-After, or whose Retry-After is beyond maxRetryAfterMs, is not retried
 *    (the run fails with the daily-limit message).
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

/**
 * How long a 429 without Retry-After waits, by the policy its body names: the limit's own window (the
 * ten-secondly budget frees within 10 s, the search budget within 1 s). Other policies back off.
 */
export const POLICY_WINDOW_MS: Record<string, number> = { TEN_SECONDLY_ROLLING: 10_000, SECONDLY: 1_000 };

type CallKind = "standard" | "search";

export class HubSpotApiCore {
  readonly stats: ApiStats = { requests: 0, rateLimited: 0, retries: 0, tokenRefreshes: 0 };
  readonly clock: HubSpotClock;
  protected readonly opts: HubSpotApiOptions;
  private readonly limiters: PortalLimiters;
  private readonly log: Logger;
  private readonly sessions: HubSpotSessions;
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
    this.sessions = new HubSpotSessions(opts, { clock: this.clock, log: this.log, stats: this.stats, policy: this.policies.tokenRefresh });
  }

  /** A session with a valid access token (a single-flight refresh when needed). */
  protected getSession(): Promise<Session> {
    return this.sessions.current();
  }

  /** A new session unless one newer than `staleGeneration` exists (after a 401). */
  protected renew(staleGeneration: number): Promise<Session> {
    return this.sessions.renew(staleGeneration);
  }

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
    const refused = networkRefusalIn(e);
    if (refused) return refused;
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
      // A DAILY 429 without Retry-After resets at the portal's midnight: hours away, not worth waiting.
      if (policy === "DAILY" && (retryAfterMs === undefined || retryAfterMs > (this.opts.maxRetryAfterMs ?? 300_000))) {
        const resets = retryAfterMs === undefined ? "it resets at midnight in the portal's time zone" : `it resets in ${Math.round(retryAfterMs / 60_000)} min`;
        return new HubSpotDailyLimitError(
          `connector ${id}: HubSpot's daily API limit is reached (${resets}); the next run resumes from the last successful import`,
        );
      }
      // The message is the one the call fails with once the retries are spent.
      return new HubSpotRateLimitError(
        `connector ${id}: ${what} was still rate limited by HubSpot (${policy || "429"}) after ${seen.rateLimited++} retries`,
        policy,
        retryAfterMs ?? POLICY_WINDOW_MS[policy],
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

  /** Fetches a session now (a clear error early if auth is broken). */
  async authenticate(): Promise<void> {
    await this.getSession();
  }
}
