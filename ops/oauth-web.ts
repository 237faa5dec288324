/**
 * The settings page's Authorize: the OAuth authorization-code flow of a stored connector, with
 * this server as the redirect target (ops/server.ts mounts these routes):
 *
 *   POST /api/tenants/:t/connectors/:id/authorize   (write) → {url}: the provider's authorize URL
 *   GET  /oauth/callback?code=…&state=…             (public) the provider's redirect: exchanges the
 *                                                    code, stores the refresh token in the entry
 *
 * The callback carries no credential of ours (the provider redirects the browser, and the session
 * cookie is SameSite=Strict), so the `state` is what authorizes it: 256 random bits, kept in
 * memory for 10 minutes, taken (so single-use) by the first callback that names it, and bound to
 * the tenant, the connector and its version, and the caller who asked (its label signs the change).
 * The PKCE verifier stays on the server with it. The refresh token goes through the connector
 * store's put, so it is encrypted like any secret of the entry. Codes, tokens and states are never
 * logged or shown. Connectors of the YAML file are refused: their secrets live in the file (or the
 * token store of `qobra-sync auth`, on the machine that runs it), which this server does not write.
 * docs/operations.md and docs/security.md tell the rules to users.
 */
import { randomBytes } from "node:crypto";
import type { ServerResponse } from "node:http";
import type { Config } from "../lib/config.ts";
import { ConfigError, describeError } from "../lib/errors.ts";
import { logger } from "../lib/log.ts";
import { maskSecrets } from "../lib/redact.ts";
import type { Runtime } from "../lib/runtime.ts";
import { pipelineId } from "../lib/tenants.ts";
import { pluginFor } from "../producers/connectors/registry.ts";
import { fileConnectorOf, idOf, tenantOf } from "./connectors-api.ts";
import type { Route } from "./http-gate.ts";
import { HttpError } from "./http-security.ts";

const log = logger.child({ component: "oauth-web" });
export const OAUTH_CALLBACK_PATH = "/oauth/callback";
const STATE_TTL_MS = 10 * 60_000;
const MAX_PENDING = 1000;
const MAX_PENDING_PER_CALLER = 20;
/** Provider error texts shown at most this long (they come from the query string). */
const MAX_SHOWN = 300;

/** One authorization started by POST …/authorize, waiting for its callback. */
export interface PendingAuthorization {
  tenant: string;
  id: string;
  /** The stored connector's version when it started: a changed connector is not given the token. */
  updatedAt: string;
  /** The caller's label: the change is stored as theirs. */
  by: string;
  /** How the caller came: the page (a session) or the API (a token). */
  via: "page" | "api";
  redirectUri: string;
  verifier?: string;
  expiresAt: number;
}

/** The pending states, in memory: single use, 10 minutes, at most 20 per caller and 1,000 in all (the oldest go first). */
export class PendingAuthorizations {
  private readonly pending = new Map<string, PendingAuthorization>();
  private readonly now: () => number;
  private readonly ttlMs: number;
  constructor(opts: { now?: () => number; ttlMs?: number } = {}) {
    this.now = opts.now ?? Date.now;
    this.ttlMs = opts.ttlMs ?? STATE_TTL_MS;
  }

  /** A new state: 256 random bits, base64url. */
  static newState(): string {
    return randomBytes(32).toString("base64url");
  }

  /** Remembers an authorization under its state (from newState). */
  add(state: string, p: Omit<PendingAuthorization, "expiresAt">): void {
    const now = this.now();
    for (const [k, v] of this.pending) if (v.expiresAt <= now) this.pending.delete(k);
    // Per caller first, so that one tenant's clicks cannot push out another's pending authorizations.
    const own = [...this.pending].filter(([, v]) => v.by === p.by);
    for (const [k] of own.slice(0, Math.max(0, own.length - MAX_PENDING_PER_CALLER + 1))) this.pending.delete(k);
    while (this.pending.size >= MAX_PENDING) this.pending.delete(this.pending.keys().next().value!);
    this.pending.set(state, { ...p, expiresAt: now + this.ttlMs });
  }

  /** The authorization of this state, removed so that it is used once; undefined when unknown or expired. */
  take(state: string | null): PendingAuthorization | undefined {
    if (!state || state.length > 100) return undefined;
    const p = this.pending.get(state);
    if (!p) return undefined;
    this.pending.delete(state);
    return p.expiresAt > this.now() ? p : undefined;
  }

  get size(): number {
    return this.pending.size;
  }
}

export interface OAuthWebDeps {
  config: Config;
  rt: Runtime;
  /** The URL users (and the provider's redirect) reach this server at, without a trailing slash (http.publicUrl). */
  publicUrl(): string;
  pending?: PendingAuthorizations;
  /** How long the callback waits for this process's roles to serve the new token (default 20 s). */
  applyWaitMs?: number;
}

export function oauthWebRoutes(deps: OAuthWebDeps): Route[] {
  const { config, rt } = deps;
  const pending = deps.pending ?? new PendingAuthorizations();
  const redirectUri = () => `${deps.publicUrl()}${OAUTH_CALLBACK_PATH}`;

  const isFileConnector = (tenant: string, id: string): boolean => fileConnectorOf(config, rt.catalog, tenant, id) !== undefined;

  async function applied(): Promise<void> {
    const done = rt.whenApplied?.();
    if (!done) return;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([done, new Promise<void>((resolve) => (timer = setTimeout(resolve, deps.applyWaitMs ?? 20_000)))]).finally(() => clearTimeout(timer));
  }

  /** The callback's outcome: the page, and what the log says (never the code, a token or the state). */
  async function callback(query: URLSearchParams): Promise<{ status: number; title: string; text: string }> {
    const p = pending.take(query.get("state"));
    if (!p)
      return {
        status: 400,
        title: "Authorization link not valid",
        text: "This authorization is unknown, expired (after 10 minutes) or already used. Go back to the settings page and click Authorize again.",
      };
    const who = { tenant: p.tenant, connector: p.id, by: p.by };
    const error = query.get("error");
    if (error !== null) {
      const description = query.get("error_description");
      log.info(who, "the provider did not grant access (OAuth error on the callback)");
      return {
        status: 400,
        title: "Access not granted",
        text: `The provider did not grant access to connector ${p.id} of tenant ${p.tenant}: ${clip(error)}${description ? ` (${clip(description)})` : ""}.`,
      };
    }
    const code = query.get("code");
    if (!code) return { status: 400, title: "No authorization code", text: "The provider's redirect has no authorization code; click Authorize again." };
    const store = rt.catalog?.store;
    const stored = store?.get(p.tenant, p.id);
    if (!store || !stored || isFileConnector(p.tenant, p.id))
      return { status: 404, title: "Connector not found", text: `Connector ${p.id} of tenant ${p.tenant} is no longer stored; nothing was changed.` };
    if (stored.updatedAt !== p.updatedAt)
      return {
        status: 409,
        title: "Connector changed",
        text: `Connector ${p.id} of tenant ${p.tenant} was changed after Authorize was clicked; nothing was stored. Click Authorize again.`,
      };
    const auth = pluginFor(stored.config.type).auth;
    if (!auth) return { status: 400, title: "No OAuth", text: `Connector ${p.id} of tenant ${p.tenant} has no OAuth flow.` };
    let refreshToken: string;
    let summary: string;
    try {
      ({ refreshToken, summary } = await auth.exchange(stored.config, code, p.redirectUri, p.verifier));
    } catch (e) {
      // The source's message names the connector and the provider's error, never the code; masked as a last line of defence.
      const message = maskSecrets(describeError(e));
      log.warn({ ...who, err: message }, "the authorization code exchange failed");
      return { status: e instanceof ConfigError ? 400 : 502, title: "Authorization failed", text: message };
    }
    try {
      await store.put(p.tenant, p.id, { ...stored.entry, refreshToken }, p.by);
    } catch (e) {
      log.error({ ...who, err: maskSecrets(describeError(e)) }, "could not store the refresh token of an authorization");
      return { status: 503, title: "Not stored", text: `The refresh token could not be stored (${maskSecrets(describeError(e))}); click Authorize again.` };
    }
    await applied();
    log.info({ ...who, via: p.via }, "connector authorized through the settings page (refresh token stored)");
    return {
      status: 200,
      title: "Connector authorized",
      text: `Connector ${p.id} of tenant ${p.tenant} is authorized${summary ? ` (${summary})` : ""}. You can close this window.`,
    };
  }

  return [
    {
      match: (seg) =>
        seg.length === 6 && seg[0] === "api" && seg[1] === "tenants" && seg[3] === "connectors" && seg[5] === "authorize" ? [seg[2]!, seg[4]!] : null,
      methods: {
        POST: {
          access: "write",
          async run({ res, params, caller }) {
            const tenant = tenantOf(params[0]!, caller!);
            const id = idOf(params[1]!);
            if (isFileConnector(tenant, id))
              throw new HttpError(
                409,
                `connector ${JSON.stringify(id)} is defined in the config file: authorize it with \`qobra-sync auth ${pipelineId(tenant, id)}\` on the machine that runs it`,
              );
            const stored = rt.catalog?.store?.get(tenant, id);
            if (!stored) throw new HttpError(404, `no connector ${JSON.stringify(id)}`);
            const auth = pluginFor(stored.config.type).auth;
            if (!auth) throw new HttpError(400, `connector ${JSON.stringify(id)} is of type ${stored.config.type}, which has no OAuth flow`);
            const uri = redirectUri();
            const state = PendingAuthorizations.newState();
            const { url, verifier } = await auth.authorizeUrl(stored.config, uri, state);
            pending.add(state, {
              tenant,
              id,
              updatedAt: stored.updatedAt,
              by: caller!.principal.label,
              via: caller!.session ? "page" : "api",
              redirectUri: uri,
              ...(verifier ? { verifier } : {}),
            });
            log.info({ tenant, connector: id, by: caller!.principal.label }, "authorization started through the settings page");
            res.writeHead(200, { "content-type": "application/json; charset=utf-8", "cache-control": "no-store" });
            res.end(JSON.stringify({ url, redirectUri: uri }));
          },
        },
      },
    },
    {
      match: (seg) => (seg.length === 2 && seg[0] === "oauth" && seg[1] === "callback" ? [] : null),
      methods: {
        GET: {
          access: "public",
          async run({ req, res }) {
            const query = new URL(req.url ?? "/", "http://x").searchParams;
            const outcome = await callback(query).catch((e: unknown) => {
              log.error({ err: maskSecrets(describeError(e)) }, "the OAuth callback failed");
              return { status: 500, title: "Authorization failed", text: "The authorization did not complete; click Authorize again." };
            });
            page(res, outcome.status, outcome.title, outcome.text);
          },
        },
      },
    },
  ];
}

function clip(s: string): string {
  return s.length > MAX_SHOWN ? `${s.slice(0, MAX_SHOWN)}…` : s;
}

export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]!);
}

/** A small page, no script or style (the CSP forbids inline ones); every text escaped. */
function page(res: ServerResponse, status: number, title: string, text: string): void {
  res.writeHead(status, { "content-type": "text/html; charset=utf-8", "cache-control": "no-store" });
  res.end(
    `<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>qobra-sync: ${escapeHtml(title)}</title></head>` +
      `<body><h1>${escapeHtml(title)}</h1><p>${escapeHtml(text)}</p><p><a href="/settings">Back to the settings page</a></p></body></html>`,
  );
}
