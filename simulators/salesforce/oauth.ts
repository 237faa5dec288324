// OAuth 2.0 as Salesforce does it: authorization-code and refresh-token grants (plus username-password),
// optional refresh-token rotation, access tokens with a lifetime, revocation.

import { createHmac } from "node:crypto";
import { opaqueToken, TokenLedger } from "../kit/tokens.ts";
import type { SimOAuthClient, SimOAuthSettings } from "./types.ts";

export interface AccessTokenInfo {
  token: string;
  userId: string;
  clientId: string;
  issuedAt: number;
  expiresAt: number;
  /** The refresh token it was minted from (revoking that revokes this). */
  fromRefresh: string | null;
  revoked: boolean;
}

interface RefreshTokenInfo {
  token: string;
  userId: string;
  clientId: string;
  revoked: boolean;
}

interface AuthCode {
  code: string;
  userId: string;
  clientId: string;
  redirectUri: string;
  expiresAt: number;
  used: boolean;
}

interface TokenResult {
  status: number;
  body: Record<string, string>;
}

const DEFAULT_CLIENT: SimOAuthClient = { clientId: "qobra-sim-client-id", clientSecret: "qobra-sim-client-secret" };

function oauthError(error: string, description: string): TokenResult {
  return { status: 400, body: { error, error_description: description } };
}

export class OAuthStore {
  readonly clients = new Map<string, SimOAuthClient>();
  private readonly ledger = new TokenLedger<AccessTokenInfo, RefreshTokenInfo, AuthCode>((a) => a.fromRefresh);
  readonly access = this.ledger.access;
  readonly refresh = this.ledger.refresh;
  rotateRefreshTokens: boolean;
  accessTokenLifetimeMs: number;
  codeLifetimeMs: number;
  autoApprove: boolean;
  private readonly passwords: Record<string, string>;
  private readonly orgId: string;
  private readonly clock: () => number;
  /** Resolves a user reference (id or Username) to an 18-char user id, or undefined. */
  private readonly resolveUser: (ref: string) => string | undefined;
  private readonly defaultUser: () => string;

  constructor(settings: SimOAuthSettings, orgId: string, clock: () => number, resolveUser: (ref: string) => string | undefined, defaultUser: () => string) {
    this.orgId = orgId;
    this.clock = clock;
    this.resolveUser = resolveUser;
    this.defaultUser = defaultUser;
    const clients = [...(settings.clients ?? [])];
    if (settings.clientId) clients.unshift({ clientId: settings.clientId, clientSecret: settings.clientSecret ?? "" });
    if (clients.length === 0) clients.push(DEFAULT_CLIENT);
    for (const c of clients) this.clients.set(c.clientId, { ...c });
    this.rotateRefreshTokens = settings.rotateRefreshTokens ?? false;
    this.accessTokenLifetimeMs = (settings.accessTokenLifetimeSeconds ?? 7200) * 1000;
    this.codeLifetimeMs = (settings.authorizationCodeLifetimeSeconds ?? 900) * 1000;
    this.autoApprove = settings.autoApprove ?? false;
    this.passwords = settings.passwords ?? {};
    const firstClient = clients[0]!.clientId;
    for (const seed of settings.refreshTokens ?? []) {
      const userId = this.userOf(seed.user);
      this.ledger.addRefresh({ token: seed.token, userId, clientId: seed.clientId ?? firstClient, revoked: false });
    }
    for (const seed of settings.accessTokens ?? []) {
      const userId = this.userOf(seed.user);
      const now = clock();
      const exp =
        seed.expiresAt === undefined ? now + this.accessTokenLifetimeMs : typeof seed.expiresAt === "number" ? seed.expiresAt : Date.parse(seed.expiresAt);
      this.ledger.addAccess({
        token: seed.token,
        userId,
        clientId: seed.clientId ?? firstClient,
        issuedAt: now,
        expiresAt: exp,
        fromRefresh: null,
        revoked: false,
      });
    }
  }

  /** Whether a refresh with this client rotates the refresh token (the client's own setting, else the global one). */
  rotates(client: SimOAuthClient): boolean {
    return client.rotateRefreshTokens ?? this.rotateRefreshTokens;
  }

  /** Sets rotation for every client (clears per-client settings). */
  setRotation(on: boolean): void {
    this.rotateRefreshTokens = on;
    for (const c of this.clients.values()) delete c.rotateRefreshTokens;
  }

  get firstClient(): SimOAuthClient {
    return this.clients.values().next().value!;
  }

  private userOf(ref: string | undefined): string {
    if (!ref) return this.defaultUser();
    const id = this.resolveUser(ref);
    if (!id) throw new Error(`oauth: unknown user ${ref}`);
    return id;
  }

  /** Access tokens look like real ones: <15-char org id>!<opaque>. */
  issueAccess(userId: string, clientId: string, fromRefresh: string | null): AccessTokenInfo {
    const now = this.clock();
    const token = opaqueToken(`${this.orgId.slice(0, 15)}!AR`, 72);
    return this.ledger.addAccess({ token, userId, clientId, issuedAt: now, expiresAt: now + this.accessTokenLifetimeMs, fromRefresh, revoked: false });
  }

  issueRefresh(userId: string, clientId: string): RefreshTokenInfo {
    return this.ledger.addRefresh({ token: opaqueToken("5Aep861", 60), userId, clientId, revoked: false });
  }

  validateAccess(token: string | undefined): AccessTokenInfo | undefined {
    return token ? this.ledger.live(token, this.clock()) : undefined;
  }

  expireAllAccessTokens(): number {
    let n = 0;
    const now = this.clock();
    for (const a of this.access.values()) {
      if (!a.revoked && a.expiresAt > now) n++;
      a.expiresAt = Math.min(a.expiresAt, now);
    }
    return n;
  }

  /** Revokes a refresh token and the access tokens minted from it (as Salesforce's /revoke does). */
  revokeRefreshToken(token: string): boolean {
    return this.ledger.revokeRefresh(token, true);
  }

  revokeAccessToken(token: string): boolean {
    return this.ledger.revokeAccess(token);
  }

  revokeAllRefreshTokens(): number {
    let n = 0;
    for (const r of this.refresh.values())
      if (!r.revoked) {
        this.revokeRefreshToken(r.token);
        n++;
      }
    return n;
  }

  checkClient(clientId: string | undefined, redirectUri: string | undefined): string | null {
    const c = clientId ? this.clients.get(clientId) : undefined;
    if (!c) return "invalid_client_id";
    if (redirectUri !== undefined && c.redirectUris && c.redirectUris.length > 0 && !c.redirectUris.includes(redirectUri)) return "redirect_uri_mismatch";
    return null;
  }

  issueCode(userId: string, clientId: string, redirectUri: string): string {
    return this.ledger.addCode({ code: opaqueToken("aPrx", 48), userId, clientId, redirectUri, expiresAt: this.clock() + this.codeLifetimeMs, used: false })
      .code;
  }

  private tokenBody(instanceUrl: string, a: AccessTokenInfo, refreshToken: string | null, clientSecret: string): Record<string, string> {
    const id = `${instanceUrl}/id/${this.orgId}/${a.userId}`;
    const issuedAt = String(a.issuedAt);
    const signature = createHmac("sha256", clientSecret)
      .update(id + issuedAt)
      .digest("base64");
    const body: Record<string, string> = { access_token: a.token };
    if (refreshToken) body.refresh_token = refreshToken;
    Object.assign(body, { signature, scope: "api refresh_token", instance_url: instanceUrl, id, token_type: "Bearer", issued_at: issuedAt });
    return body;
  }

  /** POST /services/oauth2/token */
  token(params: URLSearchParams, instanceUrl: string): TokenResult {
    const grant = params.get("grant_type");
    const clientId = params.get("client_id") ?? undefined;
    const secret = params.get("client_secret") ?? undefined;
    if (grant !== "refresh_token" && grant !== "authorization_code" && grant !== "password") {
      return oauthError("unsupported_grant_type", "grant type not supported");
    }
    const client = clientId ? this.clients.get(clientId) : undefined;
    if (!client) return oauthError("invalid_client_id", "client identifier invalid");
    if (secret !== client.clientSecret) return oauthError("invalid_client", "invalid client credentials");

    if (grant === "refresh_token") {
      const rt = this.refresh.get(params.get("refresh_token") ?? "");
      if (!rt || rt.revoked || rt.clientId !== client.clientId) return oauthError("invalid_grant", "expired access/refresh token");
      let newRefresh: string | null = null;
      let from = rt.token;
      if (this.rotates(client)) {
        const next = this.issueRefresh(rt.userId, rt.clientId);
        rt.revoked = true; // the used token is now invalid; tokens minted from it stay valid
        newRefresh = next.token;
        from = next.token;
      }
      const a = this.issueAccess(rt.userId, rt.clientId, from);
      return { status: 200, body: this.tokenBody(instanceUrl, a, newRefresh, client.clientSecret) };
    }
    if (grant === "authorization_code") {
      const code = this.ledger.usableCode(params.get("code") ?? "", this.clock());
      if (!code || code.clientId !== client.clientId) {
        return oauthError("invalid_grant", "invalid authorization code");
      }
      const redirectUri = params.get("redirect_uri");
      if (redirectUri !== code.redirectUri) return oauthError("redirect_uri_mismatch", "redirect_uri must match configuration");
      code.used = true;
      const rt = this.issueRefresh(code.userId, client.clientId);
      const a = this.issueAccess(code.userId, client.clientId, rt.token);
      return { status: 200, body: this.tokenBody(instanceUrl, a, rt.token, client.clientSecret) };
    }
    const username = params.get("username") ?? "";
    const password = params.get("password") ?? "";
    const userId = this.resolveUser(username);
    const expected = this.passwords[username];
    if (!userId || expected === undefined || password !== expected) return oauthError("invalid_grant", "authentication failure");
    const a = this.issueAccess(userId, client.clientId, null);
    return { status: 200, body: this.tokenBody(instanceUrl, a, null, client.clientSecret) };
  }
}
