/**
 * The Salesforce session of one connector: a jsforce 3 Connection, with what jsforce leaves to
 * its users done here.
 *
 *  - Tokens: the refresh token comes from the config or the token store (producers/oauth/). Every
 *    refresh (the first one, and jsforce's automatic one on INVALID_SESSION_ID) goes through
 *    `refreshFn`: single-flight in the process, under the token store's lock across processes,
 *    and a rotated refresh token is persisted before the new access token is used (jsforce
 *    itself keeps the old one and fails on the next refresh: jsforce#1656).
 *  - A 401 that survives a fresh token is not refreshed again (jsforce would loop forever): the
 *    run fails with a message.
 *  - Requests read the raw response text (numbers are parsed exactly by the caller) and the
 *    response headers (Sforce-Limit-Info, Sforce-Locator).
 *  - Errors become the project's kinds (errors.ts: the classes, and `translateError` that picks one).
 *  - Retries: see RETRY below.
 *  - Bulk result pages are streamed (results-stream.ts, with `refreshAfter401` and `observe`).
 */
import { createHash } from "node:crypto";
import jsforce from "jsforce";
import type { Connection } from "jsforce";
import type { EgressGuard } from "../../../lib/egress.ts";
import { ConfigError, SourceUnavailableError } from "../../../lib/errors.ts";
import { networkRefusalIn } from "../../../lib/network-policy.ts";
import { retry, type RetryPolicy } from "../../../lib/retry.ts";
import { logger } from "../../../lib/log.ts";
import { TokenStore, singleFlight, type StoredToken } from "../../oauth/token-store.ts";
import type { SalesforceConnector } from "./config.ts";
import { guardTransport, salesforceGuard } from "./egress.ts";
import { SalesforceConcurrencyError, SalesforceLimitError, isNetworkError, translateError, type ApiUsage, type HttpResponse } from "./errors.ts";

const log = logger.child({ component: "salesforce" });

/**
 * How this source tries again, in one place. Salesforce requests are retried by jsforce's own HTTP
 * layer (there is no retry loop of ours around them): GET/PUT/DELETE on 420, 429, 5xx and network
 * errors, `retries` times, waiting initialMs then doubling (jsforce neither jitters nor caps the
 * wait, so maxMs only documents the last wait). These are jsforce's defaults, passed to it
 * explicitly so that the numbers live here. POSTs (a Bulk job's creation, the token refresh) are
 * not retried: a failure that may pass fails the run with a SalesforceUnavailableError, and the
 * producer worker retries the run.
 *
 * `concurrency` is ours, around every call (REST, Bulk job creation and polls, result pages): the
 * org's concurrent long-running request limit (REQUEST_LIMIT_EXCEEDED "ConcurrentRequests") clears
 * once other integrations' long requests end, so the call waits (jittered, doubling) and tries again
 * for up to about two minutes before the run fails as retriable. `transport` also applies to the
 * streamed result pages, which jsforce does not carry.
 */
export const RETRY: { transport: RetryPolicy; concurrency: RetryPolicy } = {
  transport: { retries: 5, initialMs: 500, maxMs: 500 * 2 ** 5 },
  concurrency: { retries: 8, initialMs: 2000, maxMs: 30_000, maxElapsedMs: 120_000 },
};
const JSFORCE_RETRY = { maxRetries: RETRY.transport.retries, minTimeout: RETRY.transport.initialMs, timeoutFactor: 2 };

interface RawResponse {
  status: number;
  headers: Record<string, string>;
  body: string;
}

interface Transport {
  httpRequest(req: unknown, options?: unknown): Promise<HttpResponse>;
}
type RefreshCallback = (err?: Error | null, accessToken?: string, res?: unknown) => void;

interface TokenResponse {
  access_token: string;
  refresh_token?: string;
  instance_url: string;
  id?: string;
}

interface SalesforceClientOptions {
  /** Token store (default: the one configured by the environment). */
  tokenStore?: TokenStore;
}

const hash = (s: string): string => createHash("sha256").update(s).digest("hex");

export class SalesforceClient {
  readonly config: SalesforceConnector;
  readonly store: TokenStore;
  private conn: Connection | undefined;
  private connecting: Promise<Connection> | undefined;
  /** Set after a refresh, cleared by the next successful response: a second refresh in a row means the new token is refused too. */
  private refreshedWithoutSuccess = false;
  private lastRefreshError: Error | undefined;
  /** From the last Sforce-Limit-Info header. */
  usage: ApiUsage | null = null;
  /** API calls this client made (responses received), by outcome. */
  calls = 0;
  refreshes = 0;
  rotations = 0;

  /** The network guard of a tenant's connector (lib/egress.ts): every request, the token's too; none for the file's connectors. */
  readonly guard: EgressGuard | undefined;

  constructor(config: SalesforceConnector, opts: SalesforceClientOptions = {}) {
    this.config = config;
    this.store = opts.tokenStore ?? new TokenStore();
    this.guard = salesforceGuard(config);
  }

  get apiPath(): string {
    return `/services/data/v${this.config.apiVersion}`;
  }

  /** Logs in (a refresh-token grant) once; later calls reuse the session. */
  async connect(): Promise<Connection> {
    if (this.conn) return this.conn;
    this.connecting ??= this.open().finally(() => {
      this.connecting = undefined;
    });
    return this.connecting;
  }

  private async open(): Promise<Connection> {
    const c = this.config;
    const conn = new jsforce.Connection({
      loginUrl: c.loginUrl,
      instanceUrl: c.loginUrl,
      version: c.apiVersion,
      oauth2: { clientId: c.clientId, clientSecret: c.clientSecret, loginUrl: c.loginUrl },
      refreshFn: (cn: Connection, callback: RefreshCallback) => {
        void this.refreshFn(cn, callback);
      },
    } as ConstructorParameters<typeof jsforce.Connection>[0]);
    // Observe every response jsforce receives (ours, describe, Bulk API): API usage, and whether
    // the current access token has been accepted since the last refresh.
    const internal = conn as unknown as { _transport: Transport };
    const base = internal._transport;
    internal._transport = {
      httpRequest: (req, options) => {
        const p = base.httpRequest(req, { ...(options as object), retry: JSFORCE_RETRY });
        p.then(
          (res) => this.observe(res),
          () => undefined,
        );
        return p;
      },
    };
    guardTransport(conn, this.guard);
    conn.on("refresh", () => {
      this.refreshes++;
    });
    const token = await this.refreshAccessToken();
    conn.accessToken = token.access_token;
    conn.instanceUrl = originOf(token.instance_url);
    this.refreshedWithoutSuccess = true;
    this.conn = conn;
    return conn;
  }

  /** Reads an answer's API usage, and notes that the access token was accepted. */
  observe(res: HttpResponse): void {
    this.calls++;
    const info = res.headers?.["sforce-limit-info"];
    const m = info ? /api-usage=(\d+)\/(\d+)/.exec(info) : null;
    if (m) this.usage = { used: Number(m[1]), limit: Number(m[2]) };
    if (res.statusCode < 400) this.refreshedWithoutSuccess = false;
  }

  /** jsforce's session refresh hook (first argument unused: the connection is ours). */
  private async refreshFn(conn: Connection, callback: RefreshCallback): Promise<void> {
    if (this.refreshedWithoutSuccess) {
      const e = new ConfigError(
        `connector ${this.config.id}: Salesforce refused a freshly issued access token (INVALID_SESSION_ID right after a refresh); ` +
          "check that the connected app's API access is enabled for this user and that the token's scopes include api",
      );
      this.lastRefreshError = e;
      callback(e);
      return;
    }
    try {
      const token = await this.refreshAccessToken();
      conn.instanceUrl = originOf(token.instance_url);
      this.refreshedWithoutSuccess = true;
      log.info({ connector: this.config.id }, "Salesforce access token refreshed");
      callback(null, token.access_token, token);
    } catch (e) {
      this.lastRefreshError = e as Error;
      callback(e as Error);
    }
  }

  /** Which refresh token to use: the config's, unless the store holds the token it rotated into; else the store's. */
  private async currentRefreshToken(): Promise<{ token: string; seed: string | undefined; stored: StoredToken | null }> {
    const stored = await this.store.load(this.config.id);
    const configured = this.config.refreshToken;
    if (configured) {
      const seed = hash(configured);
      if (stored && stored.seed === seed) return { token: stored.refreshToken, seed, stored };
      return { token: configured, seed, stored };
    }
    if (stored) return { token: stored.refreshToken, seed: typeof stored.seed === "string" ? stored.seed : undefined, stored };
    throw new ConfigError(
      `connector ${this.config.id} has no Salesforce refresh token: run \`qobra-sync auth ${this.config.id}\` (or set refreshToken in its config)`,
    );
  }

  /**
   * A refresh-token grant: one at a time per connector in this process (concurrent callers share
   * it) and across processes (the token store's lock), re-reading the stored token inside the lock
   * so that a token another process rotated is the one used. A rotated token is saved atomically
   * before this returns.
   */
  refreshAccessToken(): Promise<TokenResponse> {
    const id = this.config.id;
    return singleFlight(`salesforce:${id}`, () =>
      this.store.withLock(id, async () => {
        const { token, seed, stored } = await this.currentRefreshToken();
        const oauth2 = new jsforce.OAuth2({ clientId: this.config.clientId, clientSecret: this.config.clientSecret, loginUrl: this.config.loginUrl });
        guardTransport(oauth2, this.guard);
        let res: TokenResponse;
        try {
          res = (await oauth2.refreshToken(token)) as unknown as TokenResponse;
        } catch (e) {
          throw this.refreshError(e);
        }
        if (!res.access_token || !res.instance_url)
          throw new SourceUnavailableError(`connector ${id}: Salesforce's token endpoint answered without an access token or instance_url`);
        // The instance a tenant's login server names is checked before any call goes there (and again at connect).
        if (this.guard) await this.guard.resolve(hostOf(res.instance_url), "instance_url (the address Salesforce's token answer gives)");
        if (res.refresh_token && res.refresh_token !== token) {
          try {
            await this.store.save(id, {
              ...(stored ?? {}),
              refreshToken: res.refresh_token,
              instanceUrl: res.instance_url,
              seed,
              rotatedAt: new Date().toISOString(),
            });
          } catch (e) {
            throw new ConfigError(
              `connector ${id}: Salesforce rotated the refresh token but the new one cannot be stored in ${this.store.dir} (${(e as Error).message}); ` +
                `make the folder writable (QOBRA_SYNC_TOKEN_DIR) and reconnect with \`qobra-sync auth ${id}\``,
              e,
            );
          }
          this.rotations++;
          log.info({ connector: id }, "Salesforce rotated the refresh token; the new one is stored");
        }
        return res;
      }),
    );
  }

  private refreshError(e: unknown): Error {
    const refused = networkRefusalIn(e);
    if (refused) return refused;
    const name = (e as Error)?.name ?? "";
    const msg = (e as Error)?.message ?? String(e);
    const id = this.config.id;
    if (name === "invalid_grant") {
      return new ConfigError(
        `connector ${id}: Salesforce refused the refresh token (${msg}): it was revoked, expired or already used; reconnect with \`qobra-sync auth ${id}\``,
        e,
      );
    }
    if (name === "invalid_client_id" || name === "invalid_client" || name === "unauthorized_client") {
      return new ConfigError(`connector ${id}: Salesforce refused the connected app (${name}: ${msg}); check clientId and clientSecret`, e);
    }
    if (/^ERROR_HTTP_5\d\d$/.test(name) || isNetworkError(e)) {
      return new SourceUnavailableError(`connector ${id}: cannot reach Salesforce's token endpoint at ${this.config.loginUrl}: ${msg}`, e);
    }
    return new ConfigError(
      `connector ${id}: the Salesforce login failed (${name}: ${msg}); check loginUrl, clientId and clientSecret, or reconnect with \`qobra-sync auth ${id}\``,
      e,
    );
  }

  /**
   * One REST call; the body comes back as text, untouched. jsforce refreshes the session on
   * INVALID_SESSION_ID (once, see refreshFn) and retries GETs on 5xx.
   */
  async request(
    method: "GET" | "POST" | "PATCH" | "DELETE",
    path: string,
    opts: { body?: string; headers?: Record<string, string> } = {},
  ): Promise<RawResponse> {
    return this.withRetry(() => this.requestOnce(method, path, opts));
  }

  private async requestOnce(
    method: "GET" | "POST" | "PATCH" | "DELETE",
    path: string,
    opts: { body?: string; headers?: Record<string, string> },
  ): Promise<RawResponse> {
    const conn = await this.connect();
    const base = (conn as unknown as { _transport: Transport })._transport;
    let last: HttpResponse | undefined;
    const transport: Transport = {
      httpRequest: (req, options) => {
        const p = base.httpRequest(req, options);
        p.then(
          (res) => {
            last = res;
          },
          () => undefined,
        );
        return p;
      },
    };
    let body: unknown;
    try {
      body = await conn.request({ method, url: path, body: opts.body, headers: opts.headers ?? {} }, { transport, responseType: "text/plain" } as never);
    } catch (e) {
      throw this.translate(e, last);
    }
    this.checkBudget();
    return {
      status: last?.statusCode ?? 200,
      headers: last?.headers ?? {},
      body: typeof body === "string" ? body : body === undefined ? "" : JSON.stringify(body),
    };
  }

  /**
   * Runs a call (any jsforce call, its errors translated) under RETRY.concurrency: the concurrent-request
   * limit is waited out; with `transport`, failures that may pass (5xx, network) are retried too.
   */
  withRetry<T>(fn: () => Promise<T>, opts: { transport?: boolean; signal?: AbortSignal } = {}): Promise<T> {
    return retry(
      async () => {
        try {
          return await fn();
        } catch (e) {
          throw this.translate(e);
        }
      },
      RETRY.concurrency,
      {
        policyOf: (e) =>
          e instanceof SalesforceConcurrencyError
            ? RETRY.concurrency
            : opts.transport && e instanceof SourceUnavailableError && !(e instanceof SalesforceLimitError) && e.retriable
              ? RETRY.transport
              : undefined,
        onRetry: (e, attempt, waitMs) => {
          log.warn({ connector: this.config.id, attempt, waitMs, err: (e as Error).message }, "Salesforce call failed; retrying");
        },
        signal: opts.signal,
      },
    );
  }

  /**
   * After a 401 outside jsforce (streamed result pages): a new access token, once; false when the
   * current one was issued by a refresh and never accepted (refreshing again would loop).
   */
  async refreshAfter401(conn: Connection): Promise<boolean> {
    if (this.refreshedWithoutSuccess) return false;
    const token = await this.refreshAccessToken();
    conn.accessToken = token.access_token;
    conn.instanceUrl = originOf(token.instance_url);
    this.refreshedWithoutSuccess = true;
    this.refreshes++;
    return true;
  }

  /** Fails the run once the org's usage reaches maxApiUsagePercent (when set below 100). */
  checkBudget(): void {
    const u = this.usage;
    const max = this.config.maxApiUsagePercent;
    if (!u || max >= 100 || u.limit <= 0) return;
    if ((u.used / u.limit) * 100 >= max) {
      throw new SalesforceLimitError(
        `connector ${this.config.id}: stopped because the org's daily Salesforce API usage reached ${u.used}/${u.limit} ` +
          `(${Math.round((u.used / u.limit) * 100)}%, maxApiUsagePercent is ${max}); the run is incomplete and the data stale until the budget recovers (rolling 24 h)`,
        u,
      );
    }
  }

  /** Any error of a call (ours or jsforce's) as one of the project's kinds. */
  translate(e: unknown, res?: HttpResponse): Error {
    const refused = networkRefusalIn(e);
    if (refused) return refused;
    return translateError(e, res, {
      id: this.config.id,
      where: this.conn?.instanceUrl ?? this.config.loginUrl,
      usage: this.usage,
      lastRefreshError: this.lastRefreshError,
    });
  }

  async close(): Promise<void> {
    this.conn = undefined;
    await this.guard?.close();
  }
}

function hostOf(url: string): string {
  try {
    return new URL(url).hostname;
  } catch {
    return "";
  }
}

function originOf(url: string): string {
  try {
    return new URL(url).origin;
  } catch {
    return url.replace(/\/+$/, "");
  }
}
