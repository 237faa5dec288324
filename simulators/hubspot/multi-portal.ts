/**
 * Many HubSpot portals behind one HTTP server, told apart by credentials as api.hubapi.com does: the token
 * endpoint by client_id (else refresh token), token metadata by the token in its path, every CRM call by its
 * bearer token, the install page (/oauth/authorize) by client_id. Each portal is an unchanged single-portal app (server.ts createHubSpotPortalApp) built on first
 * use, with its own data, OAuth app, tokens, rate limits, counters and faults. A bearer token no portal issued
 * gets HubSpot's 401 INVALID_AUTHENTICATION here, before any portal sees the request; OAuth requests that name
 * nothing known go to an empty portal, which answers them as a single portal answers unknown credentials.
 * See README.md, "Many portals in one process".
 */
import { randomBytes } from "node:crypto";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import { isAdminPath } from "../kit/admin.ts";
import { StatsBook, Tally } from "../kit/counters.ts";
import { closeServer, listen, serverUrl } from "../kit/http.ts";
import { derivedUuid, LazyTenants, parseGenerateSpec, tenantPath, untilStopped, writeJsonFileAtomically } from "../kit/tenants.ts";
import { normalizeHubSpotData } from "./contract.ts";
import { correlationId, invalidAuthentication, missingAuthentication } from "./errors.ts";
import { generateHubSpotData } from "./generate.ts";
import { readRequestBody, send } from "./respond.ts";
import { createHubSpotPortalApp, type AdminStats, type HubSpotPortalApp } from "./server.ts";
import { loadData } from "./store.ts";
import type { HubSpotContractData, HubSpotSimData, OAuthSettings } from "./types.ts";

/** One portal's data: an object, a data file, or `generate:<key=value,...>` (generateHubSpotData options; seed + portal index). */
type PortalDataSource = HubSpotSimData | HubSpotContractData | string;

interface StartMultiPortalOptions {
  /** How many portals (0..portals-1). */
  portals: number;
  /** Every portal's data, or a function giving portal k's. Portal id, OAuth app and refresh token are replaced by the portal's own. */
  data: PortalDataSource | ((portal: number) => PortalDataSource);
  port?: number;
  host?: string;
  clock?: () => number;
  validateResponses?: boolean;
  log?: (line: string) => void;
  /** Seed of the portals' credentials (same seed → same client ids, secrets and refresh tokens). Default "qobra-sim". */
  credentialSeed?: string;
  /**
   * Redirect URIs registered for every portal's app (the install page, GET /oauth/authorize, accepts these and the data
   * source's; none at all: any http(s) URI).
   */
  redirectUris?: string[];
}

/** What a connector needs to reach portal k (also the entries of the `--credentials` file). */
export interface HubSpotPortalCredentials {
  portal: number;
  /** hub_id */
  portalId: number;
  clientId: string;
  clientSecret: string;
  refreshToken: string;
  /** basePath of @hubspot/api-client: the shared URL (tokens route the requests). */
  basePath: string;
  /** The install page (HubSpot's app.hubspot.com/oauth/authorize): a connector's `appUrl` is the shared URL. */
  authorizeUrl: string;
  /** The redirect URIs registered for the portal's app (empty: any http(s) URI is accepted). */
  redirectUris: string[];
}

/** Portal k: its credentials, settings and the controls a single-portal simulator handle has. */
export type HubSpotPortalHandle = HubSpotPortalApp["controls"] & { credentials: HubSpotPortalCredentials; settings: HubSpotPortalApp["settings"] };

export interface MultiPortalHubSpotSimulator {
  url: string;
  port: number;
  /** Every portal's credentials, without building any portal. */
  credentials: HubSpotPortalCredentials[];
  /** Portal k (built now if it was not yet). */
  portal(k: number): HubSpotPortalHandle;
  /** How many portals have been built (used) so far. */
  createdPortals(): number;
  /** Requests no portal owned (unknown bearer tokens and OAuth credentials), by `<METHOD> <path>` and `status:<code>`. */
  unrouted: { counters(): Record<string, number>; stats(): AdminStats };
  close(): Promise<void>;
}

/** Portal k's hub id (distinct per portal, stable across runs). */
export function multiPortalId(k: number): number {
  return 70_000_000 + k;
}

function portalCredentials(seed: string, k: number, url: string, redirectUris: string[]): HubSpotPortalCredentials {
  return {
    portal: k,
    portalId: multiPortalId(k),
    clientId: derivedUuid(seed, k, "client-id"),
    clientSecret: derivedUuid(seed, k, "client-secret"),
    // HubSpot refresh tokens carry the data-centre prefix (na1-), then a UUID-like body.
    refreshToken: `na1-${derivedUuid(seed, k, "refresh-token")}`,
    basePath: url,
    authorizeUrl: `${url}/oauth/authorize`,
    redirectUris,
  };
}

/** Portal k's data with its own hub id and OAuth app; the source's redirect URIs, required scopes and token lifetimes are kept. */
function dataForPortal(source: PortalDataSource, k: number, cred: HubSpotPortalCredentials): HubSpotSimData {
  const spec = typeof source === "string" ? parseGenerateSpec(source) : undefined;
  let input: HubSpotSimData | HubSpotContractData;
  if (spec) {
    const seed = typeof spec.seed === "number" ? spec.seed : 1;
    input = generateHubSpotData({ ...spec, seed: seed + k } as Parameters<typeof generateHubSpotData>[0]);
  } else {
    // Each portal mutates its own copy (admin upserts, merges), never a document another portal reads.
    input = typeof source === "string" ? loadData(source) : structuredClone(source);
  }
  const d = normalizeHubSpotData(input);
  const o = d.portal?.oauth ?? {};
  // The source's apps, tokens and codes would be shared by every portal (a token must name one portal): only the portal's own stay.
  const oauth: OAuthSettings = { clientId: cred.clientId, clientSecret: cred.clientSecret, refreshTokens: [cred.refreshToken] };
  if (o.redirectUri !== undefined) oauth.redirectUri = o.redirectUri;
  const redirectUris = [...new Set([...(o.redirectUris ?? []), ...cred.redirectUris])].filter((u) => u !== o.redirectUri);
  if (redirectUris.length > 0) oauth.redirectUris = redirectUris;
  if (o.requiredScopes !== undefined) oauth.requiredScopes = o.requiredScopes;
  if (o.accessTokenTtlSeconds !== undefined) oauth.accessTokenTtlSeconds = o.accessTokenTtlSeconds;
  if (o.authorizationCodeTtlSeconds !== undefined) oauth.authorizationCodeTtlSeconds = o.authorizationCodeTtlSeconds;
  return { ...d, portal: { ...(d.portal ?? {}), portalId: cred.portalId, oauth } };
}

/** The path as the single-portal server matches it (duplicate slashes and a trailing slash dropped). */
function normalPath(pathname: string): string {
  const path = pathname.replace(/\/{2,}/g, "/");
  return path.length > 1 && path.endsWith("/") ? path.slice(0, -1) : path;
}

export async function startMultiPortalHubSpotSimulator(opts: StartMultiPortalOptions): Promise<MultiPortalHubSpotSimulator> {
  const clock = opts.clock ?? Date.now;
  const seed = opts.credentialSeed ?? "qobra-sim";
  const log = opts.log ?? (() => {});
  const sourceOf = (k: number): PortalDataSource => (typeof opts.data === "function" ? opts.data(k) : opts.data);
  const appOptions = { clock, ...(opts.validateResponses !== undefined ? { validateResponses: opts.validateResponses } : {}), log };
  const credentials: HubSpotPortalCredentials[] = [];
  const portals = new LazyTenants<HubSpotPortalApp>(opts.portals, (k) =>
    createHubSpotPortalApp({ ...appOptions, data: dataForPortal(sourceOf(k), k, credentials[k]!) }),
  );
  let empty: HubSpotPortalApp | undefined;
  const emptyPortal = (): HubSpotPortalApp => {
    // No records, and an app nobody knows: it owns no token, so unknown OAuth credentials get the single-portal answers.
    const secret = () => randomBytes(24).toString("base64url");
    empty ??= createHubSpotPortalApp({ ...appOptions, data: { objects: {}, portal: { oauth: { clientId: secret(), clientSecret: secret() } } } });
    return empty;
  };
  const byClient = new Map<string, number>();
  const byRefresh = new Map<string, number>();
  const unroutedCounts = new Tally();
  const unroutedStats = new StatsBook();
  const knowsAccess = (p: HubSpotPortalApp, t: string) => p.tokens.hasAccessToken(t);
  const knowsRefresh = (p: HubSpotPortalApp, t: string) => p.tokens.hasRefreshToken(t);

  /** The portal an OAuth endpoint's request belongs to (undefined: none; the empty portal answers). */
  const oauthRoute = async (req: IncomingMessage, url: URL, path: string): Promise<number | undefined> => {
    const method = (req.method ?? "GET").toUpperCase();
    if (path === "/oauth/authorize") {
      // The install page (routes/authorize.ts): the portal of its client_id (query, or the consent form's fields).
      const params = method === "POST" ? new URLSearchParams((await readRequestBody(req).catch(() => Buffer.alloc(0))).toString("utf8")) : url.searchParams;
      return byClient.get(params.get("client_id") ?? "");
    }
    if (path === "/oauth/v1/token" && method === "POST") {
      const raw = await readRequestBody(req).catch(() => Buffer.alloc(0));
      const form = new URLSearchParams(raw.toString("utf8"));
      // The spec lets refresh_token come in the query too (routes/oauth.ts reads it there).
      const refresh = form.get("refresh_token") ?? url.searchParams.get("refresh_token") ?? undefined;
      // Each portal has its own app: client_id names the portal, which then checks the refresh token / code itself
      // (another portal's refresh token gets BAD_REFRESH_TOKEN). An unknown client_id goes to the portal owning the refresh token.
      return byClient.get(form.get("client_id") ?? "") ?? portals.owner(refresh, knowsRefresh, byRefresh);
    }
    const m = /^\/oauth\/v1\/(access-tokens|refresh-tokens)\/([^/]+)$/.exec(path);
    if (m) {
      const token = decodeURIComponent(m[2]!);
      return m[1] === "access-tokens" ? portals.owner(token, knowsAccess) : portals.owner(token, knowsRefresh, byRefresh);
    }
    return undefined;
  };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const url = new URL(req.url ?? "/", "http://simulator.local");
    const path = normalPath(url.pathname);
    const method = (req.method ?? "GET").toUpperCase();
    const json = (status: number, body: unknown) => send(res, status, body, {});
    if (path === "/__portals") return json(200, { url: baseUrl, portals: credentials });
    const scoped = tenantPath(path, "portal");
    if (scoped) {
      // A portal's controls and admin API: /portal/<k>/__simulator/..., /portal/<k>/__admin/... (the API itself is routed by token).
      if (!portals.has(scoped.k))
        return json(404, { status: "error", message: `no portal ${scoped.k}: this simulator serves portals 0..${portals.count - 1}` });
      if (!scoped.rest.startsWith("/__simulator") && !isAdminPath(scoped.rest)) {
        return json(404, {
          status: "error",
          message: "only /portal/<k>/__simulator/... and /portal/<k>/__admin/... exist; API requests are routed by their token",
        });
      }
      req.url = scoped.rest + url.search;
      portals.get(scoped.k).handle(req, res);
      return;
    }
    if (path.startsWith("/__simulator") || isAdminPath(path)) {
      return json(404, {
        status: "error",
        message: "a multi-portal simulator has one set of controls per portal: /portal/<k>/__simulator/..., /portal/<k>/__admin/...; GET /__portals lists them",
      });
    }
    if (path.startsWith("/oauth/")) {
      const k = await oauthRoute(req, url, path);
      (k === undefined ? emptyPortal() : portals.get(k)).handle(req, res);
      return;
    }
    const m = /^Bearer\s+(\S+)\s*$/i.exec(req.headers.authorization ?? "");
    const k = portals.owner(m?.[1], knowsAccess);
    if (k !== undefined) {
      portals.get(k).handle(req, res);
      return;
    }
    // The same 401 a portal gives a token it does not know (auth.ts authenticate), so no portal's budget or counters move.
    const e = m?.[1] ? invalidAuthentication() : missingAuthentication();
    unroutedCounts.add(`${method} ${path}`);
    unroutedCounts.add(`status:${e.status}`);
    unroutedStats.count(`${method} ${path}`);
    send(res, e.status, e.body, { "X-HubSpot-Correlation-Id": correlationId(), ...e.headers });
  };

  const server = createServer((req, res) => {
    handle(req, res).catch((e: unknown) => {
      log(`hubspot-sim: unhandled ${(e as Error).stack ?? String(e)}`);
      if (!res.headersSent) send(res, 500, { status: "error", message: String(e), correlationId: correlationId(), category: "INTERNAL_ERROR" }, {});
      else res.destroy();
    });
  });
  server.keepAliveTimeout = 5000;
  const host = opts.host ?? "127.0.0.1";
  const port = await listen(server, opts.port ?? 0, host);
  const baseUrl = serverUrl(host, port);
  for (let k = 0; k < opts.portals; k++) {
    const c = portalCredentials(seed, k, baseUrl, [...(opts.redirectUris ?? [])]);
    credentials.push(c);
    byClient.set(c.clientId, k);
    byRefresh.set(c.refreshToken, k);
  }
  log(`hubspot-sim: listening on ${baseUrl} for ${opts.portals} portals`);
  const emptyCounters = (): Record<string, number> => (empty ? empty.controls.counters() : {});
  return {
    url: baseUrl,
    port,
    credentials,
    portal: (k) => {
      const app = portals.get(k);
      return { ...app.controls, credentials: credentials[k]!, settings: app.settings };
    },
    createdPortals: () => portals.created(),
    unrouted: {
      counters: () => {
        const out: Record<string, number> = { ...emptyCounters() };
        for (const [key, n] of Object.entries(unroutedCounts.snapshot())) out[key] = (out[key] ?? 0) + n;
        return out;
      },
      stats: () => {
        const own = unroutedStats.stats();
        const other = empty?.controls.stats();
        if (!other) return { ...own, rateLimited: 0 };
        const requests = { ...other.requests };
        for (const [key, n] of Object.entries(own.requests)) requests[key] = (requests[key] ?? 0) + n;
        return { total: own.total + other.total, requests, rateLimited: other.rateLimited };
      },
    },
    close: () => closeServer(server),
  };
}

interface RunMultiPortalArgs {
  port: number;
  portals: number;
  /** A data file or `generate:<key=value,...>`, for every portal. */
  data: string;
  host?: string;
  validateResponses?: boolean;
  /** Write the credentials here as JSON instead of printing them. */
  credentials?: string;
  /** Redirect URIs registered for every portal's app (`--redirect-uri`). */
  redirectUris?: string[];
  signal?: AbortSignal;
}

/** `qobra-sync simulate hubspot --portals N [--credentials FILE]`: serves until SIGINT/SIGTERM (URL on stdout, the rest on stderr). */
export async function runMultiPortalHubSpotSimulator(argv: RunMultiPortalArgs): Promise<void> {
  const sim = await startMultiPortalHubSpotSimulator({
    portals: argv.portals,
    data: argv.data,
    port: argv.port,
    validateResponses: argv.validateResponses ?? false,
    log: (line) => process.stderr.write(`${line}\n`),
    ...(argv.host !== undefined ? { host: argv.host } : {}),
    ...(argv.redirectUris !== undefined ? { redirectUris: argv.redirectUris } : {}),
  });
  // Fail on a bad data source at start, not on some connector's first request.
  sim.portal(0);
  process.stdout.write(`${sim.url}\n`);
  const lines = [
    `hubspot-sim: ${argv.portals} portals; basePath and appUrl of every portal ${sim.url} (install page ${sim.url}/oauth/authorize; redirect URIs ${argv.redirectUris?.join(", ") || "any"})`,
  ];
  if (argv.credentials) {
    writeJsonFileAtomically(argv.credentials, { api: "hubspot", url: sim.url, portals: sim.credentials });
    lines.push(`hubspot-sim: credentials of the ${argv.portals} portals written to ${argv.credentials}`);
  } else {
    for (const c of sim.credentials) {
      lines.push(`hubspot-sim: portal ${c.portal} (hub ${c.portalId}): client id ${c.clientId} secret ${c.clientSecret} refresh token ${c.refreshToken}`);
    }
  }
  lines.push(
    `hubspot-sim: portal k's counters: GET ${sim.url}/portal/<k>/__simulator/counters ; stats: GET ${sim.url}/portal/<k>/__admin/stats ; all: GET ${sim.url}/__portals`,
  );
  process.stderr.write(`${lines.join("\n")}\n`);
  await untilStopped(argv.signal);
  await sim.close();
  process.stderr.write("hubspot-sim: stopped\n");
}
