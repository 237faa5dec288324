/**
 * The settings server's gate (ops/server.ts): who a request comes from and whether it may go on,
 * built from the http section of the config and the pieces of ops/http-auth.ts and
 * ops/http-security.ts. Each route declares its access:
 *
 *  - public: the page's static files and the login (the login checks Origin and counts failures);
 *  - probe:  /metrics and /healthz: open under the Host check, or an operator's token with http.protectMetrics;
 *  - api:    a bearer token or a page session, and Origin (when sent) of this server;
 *  - write:  as api, and a session's writes carry its CSRF token (X-CSRF-Token).
 *
 * It also keeps the open event streams within their bounds (in total, per session or token) and
 * ends a session's streams with it.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import type { TLSSocket } from "node:tls";
import type { Config } from "../lib/config.ts";
import { logger } from "../lib/log.ts";
import { sleep } from "../lib/retry.ts";
import {
  FailureLimiter,
  SessionStore,
  type TokenSet,
  bearerToken,
  isOperator,
  secretEquals,
  sessionCookie,
  sessionCookieName,
  type Principal,
  type Session,
} from "./http-auth.ts";
import { HttpError, allowedHostNames, checkHost, checkOrigin, parseCookies } from "./http-security.ts";

const log = logger.child({ component: "ops-http" });
const WWW_AUTHENTICATE = { "www-authenticate": 'Bearer realm="qobra-sync"' };

export type HttpSettings = NonNullable<Config["http"]>;
export type Access = "public" | "probe" | "api" | "write";

/** A request as a route's handler gets it: the path's parameters, and the caller the gate admitted (null for public routes). */
export interface Ctx {
  req: IncomingMessage;
  res: ServerResponse;
  params: string[];
  caller: Caller | null;
}
export type Handler = { access: Access; run(ctx: Ctx): Promise<void> };
/** A route of the settings server (ops/server.ts, ops/connectors-api.ts): its path's match, and a handler per method. */
export interface Route {
  match(seg: string[]): string[] | null;
  methods: Partial<Record<string, Handler>>;
}

/** Who made a request, and how: a bearer token, or a page session (whose writes need its CSRF token). */
export interface Caller {
  principal: Principal;
  session: Session | null;
  /** Counts the caller's event streams: the session, or the token. */
  key: string;
}

export interface GateOptions {
  /** Failed logins and bearer tokens per client address: at most `maxFailures` in `windowMs`, each slowed by `delayMs`. */
  failures?: { maxFailures?: number; windowMs?: number; delayMs?: number };
}

export class Gate {
  readonly hosts: ReadonlySet<string>;
  private readonly http: HttpSettings;
  private readonly tokens: TokenSet;
  private readonly sessions: SessionStore;
  private readonly failures: FailureLimiter;
  private readonly failureDelayMs: number;
  private readonly streams = new Map<ServerResponse, Caller>();
  private cookieName: string;

  constructor(http: HttpSettings, listenHost: string, tokens: TokenSet, opts: GateOptions = {}) {
    this.http = http;
    this.tokens = tokens;
    this.hosts = allowedHostNames(listenHost, http.allowedHosts);
    this.sessions = new SessionStore({ ttlMs: http.sessionHours * 3_600_000 });
    this.failures = new FailureLimiter({ max: opts.failures?.maxFailures, windowMs: opts.failures?.windowMs });
    this.failureDelayMs = opts.failures?.delayMs ?? 250;
    this.cookieName = sessionCookieName(http.port);
  }

  /** The session cookie is named after the port actually listened on. */
  listening(port: number): void {
    this.cookieName = sessionCookieName(port);
  }

  /** The Host check (every request) and, for the API, the Origin check, authentication and the CSRF token. */
  async admit(req: IncomingMessage, access: Access): Promise<Caller | null> {
    const host = checkHost(req.headers.host, this.hosts);
    if (access === "public") return null;
    if (access === "probe") {
      if (!this.http.protectMetrics) return null;
      const caller = await this.authenticate(req);
      if (!caller) throw new HttpError(401, "send Authorization: Bearer <token> (http.protectMetrics)", WWW_AUTHENTICATE);
      // The probes are pipeline-wide (every tenant's connectors): an operator's, like the rest of that view.
      if (!isOperator(caller.principal))
        throw new HttpError(403, 'this token reaches some tenants only; /metrics and /healthz need an operator token (tenants: ["*"])');
      return caller;
    }
    checkOrigin(req.headers, host);
    const caller = await this.authenticate(req);
    if (!caller) throw new HttpError(401, "log in on the page, or send Authorization: Bearer <token>", WWW_AUTHENTICATE);
    if (access === "write" && caller.session) {
      const sent = req.headers["x-csrf-token"];
      if (typeof sent !== "string" || !secretEquals(sent, caller.session.csrf)) throw new HttpError(403, "missing or wrong X-CSRF-Token (reload the page)");
    }
    return caller;
  }

  /** The Origin check of a public write (the login). */
  checkOrigin(req: IncomingMessage): void {
    checkOrigin(req.headers, checkHost(req.headers.host, this.hosts));
  }

  private async authenticate(req: IncomingMessage): Promise<Caller | null> {
    const bearer = bearerToken(req.headers.authorization);
    if (bearer === null) throw new HttpError(401, "send Authorization: Bearer <token>", WWW_AUTHENTICATE);
    if (bearer !== undefined) {
      const principal = await this.checkToken(req, bearer);
      if (!principal) throw new HttpError(401, "unknown token", WWW_AUTHENTICATE);
      return { principal, session: null, key: `token:${principal.label}` };
    }
    const session = this.sessions.get(parseCookies(req.headers.cookie).get(this.cookieName));
    return session ? { principal: session.principal, session, key: session.key } : null;
  }

  /** A token's principal, or null after counting the failure (and slowing it down); 429 once the address has failed too often. */
  private async checkToken(req: IncomingMessage, token: string): Promise<Principal | null> {
    const addr = req.socket.remoteAddress ?? "unknown";
    const wait = this.failures.retryAfter(addr);
    if (wait > 0) throw new HttpError(429, `too many failed attempts; try again in ${wait} s`, { "retry-after": String(wait) });
    const principal = this.tokens.match(token);
    if (principal) return principal;
    this.failures.fail(addr);
    log.warn({ addr }, "refused a wrong token");
    await sleep(this.failureDelayMs);
    return null;
  }

  /** Logs the page in with a token: a new session, its cookie set on `res`; 401 for a wrong token. */
  async login(req: IncomingMessage, res: ServerResponse, token: string): Promise<ReturnType<typeof sessionInfo>> {
    const principal = await this.checkToken(req, token);
    if (!principal) throw new HttpError(401, "wrong token");
    const { id, session } = this.sessions.create(principal);
    const secure = this.http.secureCookie || (req.socket as TLSSocket).encrypted === true;
    res.setHeader("set-cookie", sessionCookie(this.cookieName, id, (session.expiresAt - Date.now()) / 1000, secure));
    log.info({ principal: principal.label, addr: req.socket.remoteAddress }, "logged in to the settings page");
    return sessionInfo(principal, session);
  }

  /** Ends the caller's session (and its event streams) and clears the cookie. */
  logout(caller: Caller, res: ServerResponse): void {
    if (caller.session) {
      this.sessions.delete(caller.session.key);
      for (const [s, c] of this.streams) if (c.session?.key === caller.session.key) s.end();
    }
    res.setHeader("set-cookie", sessionCookie(this.cookieName, "", 0, this.http.secureCookie));
  }

  /** Opens an event stream for the caller, within http.maxStreams (503) and http.maxStreamsPerSession (429). */
  openStream(req: IncomingMessage, res: ServerResponse, caller: Caller, first: string): void {
    if (this.streams.size >= this.http.maxStreams)
      throw new HttpError(503, `too many open event streams (http.maxStreams ${this.http.maxStreams}); poll /api/state`, { "retry-after": "10" });
    let mine = 0;
    for (const c of this.streams.values()) if (c.key === caller.key) mine++;
    if (mine >= this.http.maxStreamsPerSession)
      throw new HttpError(429, `too many open event streams for this session (http.maxStreamsPerSession ${this.http.maxStreamsPerSession})`, {
        "retry-after": "10",
      });
    res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-store", connection: "keep-alive" });
    res.write(first);
    this.streams.set(res, caller);
    req.on("close", () => this.streams.delete(res));
  }

  get streamCount(): number {
    return this.streams.size;
  }

  /** Writes to every open stream what `render` gives for its caller (a tenant's view is not an operator's). */
  broadcast(render: (caller: Caller) => string): void {
    for (const [res, caller] of this.streams) res.write(render(caller));
  }

  /** Every 15 s: drops expired sessions, ends their streams, keeps the others alive through proxies. */
  tick(): void {
    this.sessions.sweep();
    for (const [res, c] of this.streams) {
      if (c.session && !this.sessions.has(c.session.key)) res.end();
      else res.write(": keep-alive\n\n");
    }
  }

  closeStreams(): void {
    for (const res of this.streams.keys()) res.end();
    this.streams.clear();
  }
}

/** GET /api/session's answer: who is logged in, and the session's CSRF token (null for a bearer caller). */
export function sessionInfo(principal: Principal, session: Session | null) {
  return {
    operator: isOperator(principal),
    tenants: principal.tenants,
    via: session ? "session" : "token",
    csrfToken: session?.csrf ?? null,
    expiresAt: session ? new Date(session.expiresAt).toISOString() : null,
  };
}
