/**
 * OAuth as HubSpot runs it: the authorize request's checks and the consent page's codes (single use,
 * `authorizationCodeTtlSeconds`, bound to the app and the redirect URI; routes/authorize.ts serves the page),
 * POST /oauth/v1/token (refresh_token and authorization_code grants, form-encoded) mints access tokens that expire after `accessTokenTtlSeconds` (1800) on the
 * simulator clock; refresh tokens do not rotate. Bearer tokens are checked on every API call:
 * none/unknown → 401 INVALID_AUTHENTICATION, expired → 401 EXPIRED_AUTHENTICATION.
 */
import { randomUUID } from "node:crypto";
import { TokenLedger, opaqueToken } from "../kit/tokens.ts";
import { expiredAuthentication, invalidAuthentication, missingAuthentication, oauthError } from "./errors.ts";
import type { Settings } from "./store.ts";
import type { OAuthSettings } from "./types.ts";

export interface AccessToken {
  token: string;
  kind: "oauth" | "private_app";
  scopes: string[];
  /** Simulator-clock ms; null = never expires. */
  expiresAt: number | null;
  revoked: boolean;
  /** Rate-limit bucket (the OAuth app, or the private app itself). */
  app: string;
  refreshToken?: string;
  userId: number;
}

interface RefreshToken {
  token: string;
  scopes: string[];
  revoked: boolean;
  userId: number;
  userEmail?: string;
  /** The app the token was issued to (absent: any of the portal's apps). */
  clientId?: string;
}

interface AuthCode {
  code: string;
  redirectUri?: string;
  scopes: string[];
  refreshToken?: string;
  used: boolean;
  /** The app the consent page issued it to (absent: a seeded code, any of the portal's apps). */
  clientId?: string;
  /** Simulator-clock ms (absent: a seeded code, no expiry). */
  expiresAt?: number;
}

type App = Settings["oauth"]["apps"][number];

/** What GET/POST /oauth/authorize asks for, checked: else the text of HubSpot's error page (no redirect). */
export type AuthorizeRequest = { problem: string } | { app: App; redirectUri: string; scopes: string[]; state: string | null };

function scopesOf(v: string | null): string[] {
  return [...new Set((v ?? "").split(/[\s,]+/).filter(Boolean))];
}

const APP_ID = 1234567;

export class TokenStore {
  private readonly settings: Settings;
  private readonly ledger = new TokenLedger<AccessToken, RefreshToken, AuthCode>((a) => a.refreshToken);
  private readonly access = this.ledger.access;
  private readonly refresh = this.ledger.refresh;

  constructor(settings: Settings, oauth: OAuthSettings | undefined, now: number) {
    this.settings = settings;
    for (const r of oauth?.refreshTokens ?? []) {
      const rt = typeof r === "string" ? { token: r } : r;
      const entry: RefreshToken = { token: rt.token, scopes: rt.scopes ?? settings.grantedScopes, revoked: false, userId: rt.userId ?? 1 };
      if (rt.userEmail !== undefined) entry.userEmail = rt.userEmail;
      if (rt.clientId !== undefined) entry.clientId = rt.clientId;
      this.ledger.addRefresh(entry);
    }
    for (const c of oauth?.authorizationCodes ?? []) {
      const code: AuthCode = { code: c.code, scopes: c.scopes ?? settings.grantedScopes, used: false };
      if (c.redirectUri !== undefined) code.redirectUri = c.redirectUri;
      if (c.refreshToken !== undefined) code.refreshToken = c.refreshToken;
      this.ledger.addCode(code);
    }
    for (const a of oauth?.accessTokens ?? []) {
      const kind = a.kind ?? "private_app";
      const expiresAt = a.expiresAt ? Date.parse(a.expiresAt) : null;
      if (expiresAt !== null && Number.isNaN(expiresAt)) throw new Error(`portal.oauth.accessTokens: bad expiresAt ${a.expiresAt}`);
      this.ledger.addAccess({
        token: a.token,
        kind,
        scopes: a.scopes ?? settings.grantedScopes,
        expiresAt,
        revoked: false,
        app: kind === "oauth" ? settings.oauth.clientId : `private-app:${a.token.slice(0, 12)}`,
        userId: 1,
      });
    }
    void now;
  }

  /** Whether this portal ever issued (or was seeded with) the access token, live or not: how multi-portal.ts routes a request. */
  hasAccessToken(token: string): boolean {
    return this.access.has(token);
  }

  hasRefreshToken(token: string): boolean {
    return this.refresh.has(token);
  }

  /** Checks `Authorization: Bearer <token>` at `now`. */
  authenticate(header: string | undefined, now: number): AccessToken {
    const m = /^Bearer\s+(\S+)\s*$/i.exec(header ?? "");
    if (!m?.[1]) throw missingAuthentication();
    const t = this.access.get(m[1]);
    if (!t || t.revoked) throw invalidAuthentication();
    if (t.expiresAt !== null && now >= t.expiresAt) throw expiredAuthentication(Math.floor((now - t.expiresAt) / 1000));
    return t;
  }

  private mint(
    scopes: string[],
    now: number,
    opts: { refreshToken?: string; ttlSeconds?: number; kind?: "oauth" | "private_app"; userId?: number; app?: string } = {},
  ): AccessToken {
    const kind = opts.kind ?? "oauth";
    const ttl = opts.ttlSeconds ?? this.settings.oauth.accessTokenTtlSeconds;
    const t: AccessToken = {
      token: kind === "oauth" ? opaqueToken("CO", 36) : `pat-na1-${randomUUID()}`,
      kind,
      scopes: [...scopes],
      expiresAt: kind === "oauth" || opts.ttlSeconds !== undefined ? now + ttl * 1000 : null,
      revoked: false,
      app: kind === "oauth" ? (opts.app ?? this.settings.oauth.clientId) : `private-app:${randomUUID()}`,
      userId: opts.userId ?? 1,
    };
    if (opts.refreshToken !== undefined) t.refreshToken = opts.refreshToken;
    return this.ledger.addAccess(t);
  }

  /** A token for tests and CLI users (default: an OAuth token with the granted scopes, 30 minutes). */
  issue(opts: { scopes?: string[]; ttlSeconds?: number; kind?: "oauth" | "private_app" } = {}, now: number): AccessToken {
    return this.mint(opts.scopes ?? this.settings.grantedScopes, now, opts);
  }

  /** Adds a refresh token (as if an install happened); returns it. */
  addRefreshToken(opts: { token?: string; scopes?: string[]; clientId?: string } = {}): string {
    const token = opts.token ?? randomUUID();
    const entry: RefreshToken = { token, scopes: opts.scopes ?? this.settings.grantedScopes, revoked: false, userId: 1 };
    if (opts.clientId !== undefined) entry.clientId = opts.clientId;
    this.ledger.addRefresh(entry);
    return token;
  }

  /** Makes one (or every) access token expired as of `now`. */
  expire(now: number, token?: string): number {
    let n = 0;
    for (const t of this.access.values()) {
      if (token !== undefined && t.token !== token) continue;
      t.expiresAt = now;
      n++;
    }
    return n;
  }

  revokeRefreshToken(token: string, alsoAccessTokens = false): boolean {
    return this.ledger.revokeRefresh(token, alsoAccessTokens);
  }

  revokeAccessToken(token: string): boolean {
    return this.ledger.revokeAccess(token);
  }

  /**
   * Checks an authorize request as HubSpot does before showing its consent page: a known client_id, a redirect_uri
   * registered for that app (none registered: any http(s) URI), a non-empty `scope` holding every scope the app
   * requires. The install gets `scope` plus the `optional_scope` entries the portal has (its grantedScopes).
   */
  authorizeRequest(params: URLSearchParams): AuthorizeRequest {
    const clientId = params.get("client_id");
    const app = clientId ? this.settings.oauth.apps.find((a) => a.clientId === clientId) : undefined;
    if (!app) return { problem: `The client_id ${JSON.stringify(clientId ?? "")} does not belong to any app.` };
    const redirectUri = params.get("redirect_uri") ?? "";
    let url: URL | undefined;
    try {
      url = new URL(redirectUri);
    } catch {
      url = undefined;
    }
    if (!url || (url.protocol !== "http:" && url.protocol !== "https:")) return { problem: "The redirect_uri is missing or is not an http(s) URL." };
    if (app.redirectUris.length > 0 && !app.redirectUris.includes(redirectUri))
      return { problem: `The redirect_uri ${JSON.stringify(redirectUri)} does not match any of the app's redirect URLs.` };
    const required = scopesOf(params.get("scope"));
    if (required.length === 0) return { problem: "The authorization URL has no scope." };
    const missing = app.requiredScopes.filter((s) => !required.includes(s));
    if (missing.length > 0) return { problem: `The scope of the authorization URL lacks scopes the app requires: ${missing.join(", ")}.` };
    const optional = scopesOf(params.get("optional_scope")).filter((s) => this.settings.grantedScopes.includes(s));
    return { app, redirectUri, scopes: [...new Set([...required, ...optional])], state: params.get("state") };
  }

  /** A code of the consent page: single use, valid `authorizationCodeTtlSeconds`, bound to the app and the redirect URI. */
  issueCode(clientId: string, redirectUri: string, scopes: string[], now: number): string {
    const code: AuthCode = {
      code: `na1-${randomUUID()}`,
      clientId,
      redirectUri,
      scopes: [...scopes],
      used: false,
      expiresAt: now + this.settings.oauth.authorizationCodeTtlSeconds * 1000,
    };
    return this.ledger.addCode(code).code;
  }

  /** POST /oauth/v1/token with the form fields (query parameters client_secret/refresh_token allowed too). */
  tokenEndpoint(form: Record<string, string>, now: number): Record<string, unknown> {
    const grant = form.grant_type;
    const o = this.settings.oauth;
    if (grant !== "refresh_token" && grant !== "authorization_code") {
      throw oauthError("BAD_GRANT_TYPE", grant ? `unsupported grant_type: ${grant}` : "missing grant_type");
    }
    const app = form.client_id ? o.apps.find((a) => a.clientId === form.client_id) : undefined;
    if (!app) throw oauthError("BAD_CLIENT_ID", "missing or unknown client id");
    if (!form.client_secret || form.client_secret !== app.clientSecret) throw oauthError("BAD_CLIENT_SECRET", "missing or invalid client secret");
    let refresh: RefreshToken;
    if (grant === "refresh_token") {
      const r = form.refresh_token ? this.refresh.get(form.refresh_token) : undefined;
      if (!r || r.revoked || (r.clientId !== undefined && r.clientId !== app.clientId))
        throw oauthError("BAD_REFRESH_TOKEN", "missing or invalid refresh token");
      refresh = r;
    } else {
      const c = this.ledger.usableCode(form.code || undefined, now);
      // Unknown, used, expired, or issued to another app: HubSpot answers them alike.
      if (!c || (c.clientId !== undefined && c.clientId !== app.clientId)) throw oauthError("BAD_AUTH_CODE", "missing or unknown auth code");
      const expected = c.redirectUri ?? app.redirectUri;
      if (expected !== undefined && form.redirect_uri !== expected)
        throw oauthError("BAD_REDIRECT_URI", "redirect_uri does not match the one used to get the code");
      c.used = true;
      const token = this.addRefreshToken({ ...(c.refreshToken !== undefined ? { token: c.refreshToken } : {}), scopes: c.scopes, clientId: app.clientId });
      refresh = this.refresh.get(token)!;
    }
    const access = this.mint(refresh.scopes, now, { refreshToken: refresh.token, userId: refresh.userId, app: app.clientId });
    return {
      token_type: "bearer",
      refresh_token: refresh.token,
      access_token: access.token,
      expires_in: o.accessTokenTtlSeconds,
      token_use: "access_token",
      hub_id: this.settings.portalId,
      user_id: refresh.userId,
      scopes: refresh.scopes,
    };
  }

  /** GET /oauth/v1/access-tokens/{token}. */
  accessTokenInfo(token: string, now: number): Record<string, unknown> | undefined {
    const t = this.ledger.live(token, now);
    if (!t) return undefined;
    return {
      token: t.token,
      token_type: "access",
      hub_id: this.settings.portalId,
      app_id: APP_ID,
      user_id: t.userId,
      scopes: t.scopes,
      expires_in: t.expiresAt === null ? 0 : Math.floor((t.expiresAt - now) / 1000),
      hub_domain: `sim-${this.settings.portalId}.hubspot.com`,
      is_private_distribution: false,
    };
  }

  /** GET /oauth/v1/refresh-tokens/{token}. */
  refreshTokenInfo(token: string): Record<string, unknown> | undefined {
    const r = this.refresh.get(token);
    if (!r || r.revoked) return undefined;
    const info: Record<string, unknown> = {
      token: r.token,
      token_type: "refresh",
      client_id: r.clientId ?? this.settings.oauth.clientId,
      hub_id: this.settings.portalId,
      user_id: r.userId,
      scopes: r.scopes,
      hub_domain: `sim-${this.settings.portalId}.hubspot.com`,
    };
    if (r.userEmail !== undefined) info.user = r.userEmail;
    return info;
  }

  list(): { access: AccessToken[]; refresh: Array<{ token: string; revoked: boolean; scopes: string[] }> } {
    return { access: [...this.access.values()], refresh: [...this.refresh.values()].map((r) => ({ token: r.token, revoked: r.revoked, scopes: r.scopes })) };
  }
}
