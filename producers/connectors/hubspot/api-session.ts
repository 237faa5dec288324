/**
 * The HubSpot access token of one connector: an OAuth refresh-token grant, made single-flight
 * (concurrent callers share one refresh), renewed a minute before the announced expiry or when a
 * call met a 401, and retried by the tokenRefresh policy (RETRY in api-core.ts). It is kept apart
 * from the call loop (api-core.ts) because it has its own state (the session, its generation,
 * the refresh token) and its own failure sorting; the call loop only asks for a valid session.
 * Tokens never reach a log line or an error message.
 */
import { Client } from "@hubspot/api-client";
import type { EgressGuard } from "../../../lib/egress.ts";
import { ConfigError, SourceUnavailableError, describeError } from "../../../lib/errors.ts";
import { networkRefusalIn } from "../../../lib/network-policy.ts";
import type { Logger } from "../../../lib/log.ts";
import { retry, type RetryPolicy } from "../../../lib/retry.ts";
import { asApiException, bodyField, describeFailure, withTimeout } from "./errors.ts";
import type { HubSpotClock } from "./limits.ts";
import { defaultTokenStore, refreshTokenOf, type TokenStoreLike } from "./tokens.ts";

export interface Session {
  client: Client;
  token: string;
  expiresAt: number;
  generation: number;
}

/** What the sessions need of the connector's options (a subset of HubSpotApiOptions). */
interface SessionOptions {
  connectorId: string;
  baseUrl: string;
  clientId: string;
  clientSecret: string;
  /** From the config; else the token store's. */
  refreshToken?: string;
  requestTimeoutMs?: number;
  tokenStore?: () => Promise<TokenStoreLike | null>;
  /** A tenant's connector: every request through its network guard (lib/egress.ts). */
  guard?: EgressGuard;
}

/** The client options that send a tenant's requests through its guard (node:http agents: no redirect is followed). */
export function guardedClientOptions(baseUrl: string, guard: EgressGuard | undefined): { httpAgent?: import("node:http").Agent } {
  return guard ? { httpAgent: guard.httpAgent(new URL(baseUrl).protocol) } : {};
}

/** Refresh this long before the token's announced expiry. */
const EARLY_REFRESH_MS = 60_000;

export class HubSpotSessions {
  private readonly opts: SessionOptions;
  private readonly clock: HubSpotClock;
  private readonly log: Logger;
  private readonly stats: { requests: number; retries: number; tokenRefreshes: number };
  private readonly policy: RetryPolicy;
  private session: Session | null = null;
  private refreshing: Promise<Session> | null = null;
  private generation = 0;
  private refreshToken: string | undefined;

  constructor(
    opts: SessionOptions,
    deps: { clock: HubSpotClock; log: Logger; stats: { requests: number; retries: number; tokenRefreshes: number }; policy: RetryPolicy },
  ) {
    this.opts = opts;
    this.clock = deps.clock;
    this.log = deps.log;
    this.stats = deps.stats;
    this.policy = deps.policy;
    this.refreshToken = opts.refreshToken;
  }

  /** A session whose token is valid for at least another minute (refreshing it if needed). */
  async current(): Promise<Session> {
    const s = this.session;
    if (s && this.clock.now() < s.expiresAt - EARLY_REFRESH_MS) return s;
    return this.renew(s?.generation ?? 0);
  }

  /** Refreshes unless a newer session than `staleGeneration` exists; concurrent callers share one refresh. */
  renew(staleGeneration: number): Promise<Session> {
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
    const oauth = new Client({ basePath: this.opts.baseUrl, numberOfApiCallRetries: 0, ...guardedClientOptions(this.opts.baseUrl, this.opts.guard) });
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
            client: new Client({
              accessToken: t.accessToken,
              basePath: this.opts.baseUrl,
              numberOfApiCallRetries: 0,
              ...guardedClientOptions(this.opts.baseUrl, this.opts.guard),
            }),
            token: t.accessToken,
            expiresAt: this.clock.now() + expiresIn * 1000,
            generation: ++this.generation,
          };
          this.session = session;
          if (t.refreshToken && t.refreshToken !== this.refreshToken) {
            // HubSpot does not rotate refresh tokens today; keep a rotated one if it ever does.
            this.refreshToken = t.refreshToken;
            const store = await (this.opts.tokenStore ?? defaultTokenStore)();
            await store
              ?.saveToken?.(id, { refreshToken: t.refreshToken })
              .catch((e: unknown) =>
                this.log.warn(
                  { err: describeError(e) },
                  "HubSpot rotated the refresh token but it could not be stored; the next process start uses the old one",
                ),
              );
          }
          this.log.debug({ expiresIn, generation: session.generation }, "HubSpot access token refreshed");
          return session;
        } catch (e) {
          throw this.refreshFailure(e);
        }
      },
      this.policy,
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
    const refused = networkRefusalIn(e);
    if (refused) return refused;
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
}
