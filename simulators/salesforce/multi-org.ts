// Many Salesforce orgs behind one HTTP server, told apart by credentials as login.salesforce.com and a pod do:
// the token endpoint by client_id (else refresh token), every other call by its bearer token. Each org is an
// unchanged single-org app (server.ts createSalesforceOrgApp) built on first use, with its own data, OAuth
// client, tokens, daily API limit, counters and faults. A token no org issued goes to an empty org that owns no
// token, so it gets exactly the answer a single-org simulator gives an unknown token (401 INVALID_SESSION_ID).
// See README.md, "Many orgs in one process".

import { randomBytes } from "node:crypto";
import { createServer } from "node:http";
import type { IncomingMessage, Server, ServerResponse } from "node:http";
import { isAdminPath } from "../kit/admin.ts";
import { closeServer, listen, serverUrl } from "../kit/http.ts";
import { derivedSecret, LazyTenants, parseGenerateSpec, tenantPath, untilStopped, writeJsonFileAtomically } from "../kit/tenants.ts";
import type { AdminStats, SalesforceOrgApp } from "./server.ts";
import { createSalesforceOrgApp, loadData, SERVER_OPTIONS } from "./server.ts";
import type { SalesforceSimControls } from "./controls.ts";
import { generateSalesforceData } from "./generate.ts";
import { to18 } from "./ids.ts";
import { bearer, JSON_CT, readBody } from "./reply.ts";
import { normalizeSimData } from "./sim-data.ts";
import type { SalesforceSimData, SimOAuthClient, SimOAuthSettings } from "./types.ts";

/** One org's data: an object, a data file, or `generate:<key=value,...>` (generateSalesforceData options; seed + org index). */
type OrgDataSource = SalesforceSimData | string;

interface StartMultiOrgOptions {
  /** How many orgs (0..orgs-1). */
  orgs: number;
  /** Every org's data, or a function giving org k's. Client, refresh token and org id are replaced by the org's own. */
  data: OrgDataSource | ((org: number) => OrgDataSource);
  port?: number;
  host?: string;
  clock?: () => number;
  /** URL announced as instance_url when clients reach the simulator under another name. */
  publicUrl?: string;
  /** Seed of the orgs' credentials (same seed → same client ids, secrets and refresh tokens). Default "qobra-sim". */
  credentialSeed?: string;
}

/** What a connector needs to reach org k (also the entries of the `--credentials` file). */
export interface SalesforceOrgCredentials {
  org: number;
  /** 18-character organization id, as the identity URL gives it (its first 15 characters prefix the org's access tokens). */
  orgId: string;
  clientId: string;
  clientSecret: string;
  refreshToken: string;
  /** loginUrl and instanceUrl of jsforce: the shared URL (tokens route the requests). */
  loginUrl: string;
  instanceUrl: string;
}

export interface SalesforceOrgHandle {
  credentials: SalesforceOrgCredentials;
  /** The org's controls, as `sim.state` of a single-org simulator. */
  state: SalesforceSimControls;
  counters(): Record<string, number>;
  stats(): AdminStats;
}

export interface MultiOrgSalesforceSimulator {
  url: string;
  /** Every org's credentials, without building any org. */
  credentials: SalesforceOrgCredentials[];
  /** Org k (built now if it was not yet). */
  org(k: number): SalesforceOrgHandle;
  /** How many orgs have been built (used) so far. */
  createdOrgs(): number;
  /** Requests that reached no org (unknown tokens, unknown clients): counters of the empty org that answered them. */
  unrouted: { counters(): Record<string, number>; stats(): AdminStats };
  close(): Promise<void>;
}

/** Org k's 15-character id: `00D` key prefix, a pod, then k (distinct per org, stable across runs). */
export function multiOrgId(k: number): string {
  return `00DQbM${String(k).padStart(9, "0")}`;
}

function orgCredentials(seed: string, k: number, url: string): SalesforceOrgCredentials {
  return {
    org: k,
    orgId: to18(multiOrgId(k)),
    // Connected-app consumer keys start with 3MVG9; the rest only has to be unique and stable.
    clientId: `3MVG9sim${derivedSecret(seed, k, "client-id", 40).replace(/[-_]/g, "x")}`,
    clientSecret: derivedSecret(seed, k, "client-secret", 64).replace(/[-_]/g, "0"),
    refreshToken: `5Aep861${derivedSecret(seed, k, "refresh-token", 80).replace(/[-_]/g, "Q")}`,
    loginUrl: url,
    instanceUrl: url,
  };
}

/** Org k's data with the org's own id and OAuth client; OAuth settings of the source (rotation, lifetimes) are kept. */
function dataForOrg(source: OrgDataSource, k: number, cred: SalesforceOrgCredentials): { data: SalesforceSimData; baseDir?: string } {
  let input: SalesforceSimData;
  let baseDir: string | undefined;
  const spec = typeof source === "string" ? parseGenerateSpec(source) : undefined;
  if (spec) {
    const seed = typeof spec.seed === "number" ? spec.seed : 42;
    const opportunities = typeof spec.opportunities === "number" ? spec.opportunities : 100;
    input = generateSalesforceData({ ...spec, opportunities, seed: seed + k } as Parameters<typeof generateSalesforceData>[0]);
  } else if (typeof source === "string") {
    ({ data: input, baseDir } = loadData(source));
  } else {
    // Each org mutates its own copy (admin upserts, deletes), never a document another org reads.
    input = structuredClone(source);
  }
  const d = normalizeSimData(input);
  const org = { ...(d.org ?? {}), id: cred.orgId };
  delete org.organizationId;
  const source0 = d.oauth ?? {};
  const first = source0.clients?.[0];
  const client: SimOAuthClient = { clientId: cred.clientId, clientSecret: cred.clientSecret };
  if (first?.rotateRefreshTokens !== undefined) client.rotateRefreshTokens = first.rotateRefreshTokens;
  if (first?.redirectUris !== undefined) client.redirectUris = first.redirectUris;
  // The source's clients and tokens would be shared by every org (a token must name one org): only the org's own stay.
  const oauth: SimOAuthSettings = { ...source0, clients: [client], refreshTokens: [{ token: cred.refreshToken, clientId: cred.clientId }] };
  delete oauth.clientId;
  delete oauth.clientSecret;
  delete oauth.accessTokens;
  return { data: { ...d, org, oauth }, ...(baseDir !== undefined ? { baseDir } : {}) };
}

/** Which org a request belongs to, from its credentials; undefined: none (the empty org answers). */
async function routeOf(
  req: IncomingMessage,
  url: URL,
  orgs: LazyTenants<SalesforceOrgApp>,
  byClient: ReadonlyMap<string, number>,
  byRefresh: ReadonlyMap<string, number>,
): Promise<number | undefined> {
  const method = (req.method ?? "GET").toUpperCase();
  const path = url.pathname;
  const knowsAccess = (o: SalesforceOrgApp, t: string) => o.controls.oauth.access.has(t);
  const knowsRefresh = (o: SalesforceOrgApp, t: string) => o.controls.oauth.refresh.has(t);
  const knowsAny = (o: SalesforceOrgApp, t: string) => knowsAccess(o, t) || knowsRefresh(o, t);
  const params = async () => (method === "POST" ? new URLSearchParams(await readBody(req)) : url.searchParams);
  if (path === "/services/oauth2/token") {
    if (method !== "POST") return undefined;
    // Each org has its own connected app: its client_id names the org, which then checks the refresh token / code itself
    // (another org's refresh token gets that org's invalid_grant). An unknown client_id goes to the org owning the refresh token.
    const p = await params();
    return byClient.get(p.get("client_id") ?? "") ?? orgs.owner(p.get("refresh_token") ?? undefined, knowsRefresh, byRefresh);
  }
  if (path === "/services/oauth2/authorize") return byClient.get((await params()).get("client_id") ?? "");
  if (path === "/services/oauth2/revoke") return orgs.owner((await params()).get("token") ?? undefined, knowsAny, byRefresh);
  return orgs.owner(bearer(req), knowsAccess);
}

function notFound(res: ServerResponse, message: string): void {
  res.writeHead(404, { "Content-Type": JSON_CT });
  res.end(JSON.stringify([{ errorCode: "NOT_FOUND", message }]));
}

export async function startMultiOrgSalesforceSimulator(opts: StartMultiOrgOptions): Promise<MultiOrgSalesforceSimulator> {
  const clock = opts.clock ?? (() => Date.now());
  const seed = opts.credentialSeed ?? "qobra-sim";
  const sourceOf = (k: number): OrgDataSource => (typeof opts.data === "function" ? opts.data(k) : opts.data);
  let baseUrl = "";
  const credentials: SalesforceOrgCredentials[] = [];
  const build = (k: number): SalesforceOrgApp => {
    const { data, baseDir } = dataForOrg(sourceOf(k), k, credentials[k]!);
    const app = createSalesforceOrgApp({ data, clock, ...(baseDir !== undefined ? { baseDir } : {}) });
    app.controls.baseUrl = baseUrl;
    return app;
  };
  const orgs = new LazyTenants<SalesforceOrgApp>(opts.orgs, build);
  let empty: SalesforceOrgApp | undefined;
  const emptyOrg = (): SalesforceOrgApp => {
    if (!empty) {
      // No records, and a client nobody knows: it owns no token, so it answers every request as an unknown token gets answered.
      const secret = () => randomBytes(24).toString("base64url");
      empty = createSalesforceOrgApp({ data: { objects: {}, oauth: { clients: [{ clientId: secret(), clientSecret: secret() }] } }, clock });
      empty.controls.baseUrl = baseUrl;
    }
    return empty;
  };
  const byClient = new Map<string, number>();
  const byRefresh = new Map<string, number>();

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const url = new URL(req.url ?? "/", "http://sim.invalid");
    const path = url.pathname;
    if (path === "/__orgs") {
      res.writeHead(200, { "Content-Type": JSON_CT });
      res.end(JSON.stringify({ url: baseUrl, orgs: credentials }));
      return;
    }
    const scoped = tenantPath(path, "org");
    if (scoped) {
      // An org's controls and admin API: /org/<k>/__simulator/..., /org/<k>/__admin/... (the API itself is routed by token).
      if (!orgs.has(scoped.k)) return notFound(res, `no org ${scoped.k}: this simulator serves orgs 0..${orgs.count - 1}`);
      if (!scoped.rest.startsWith("/__simulator/") && !isAdminPath(scoped.rest)) {
        return notFound(res, "only /org/<k>/__simulator/... and /org/<k>/__admin/... exist; API requests are routed by their token");
      }
      req.url = scoped.rest + url.search;
      orgs.get(scoped.k).handle(req, res);
      return;
    }
    if (path.startsWith("/__simulator/") || isAdminPath(path)) {
      return notFound(res, "a multi-org simulator has one set of controls per org: /org/<k>/__simulator/..., /org/<k>/__admin/...; GET /__orgs lists them");
    }
    const k = await routeOf(req, url, orgs, byClient, byRefresh);
    (k === undefined ? emptyOrg() : orgs.get(k)).handle(req, res);
  };

  const server: Server = createServer(SERVER_OPTIONS, (req, res) => {
    handle(req, res).catch((e: unknown) => {
      if (!res.headersSent) {
        res.writeHead(500, { "Content-Type": JSON_CT });
        res.end(JSON.stringify([{ message: `Simulator error: ${(e as Error).message}`, errorCode: "UNKNOWN_EXCEPTION" }]));
      }
    });
  });
  const host = opts.host ?? "127.0.0.1";
  const port = await listen(server, opts.port ?? 0, host);
  const url = serverUrl(host, port, true);
  baseUrl = (opts.publicUrl ?? url).replace(/\/$/, "");
  for (let k = 0; k < opts.orgs; k++) {
    const c = orgCredentials(seed, k, baseUrl);
    credentials.push(c);
    byClient.set(c.clientId, k);
    byRefresh.set(c.refreshToken, k);
  }
  return {
    url,
    credentials,
    org: (k) => {
      const app = orgs.get(k);
      return { credentials: credentials[k]!, state: app.controls, counters: () => app.controls.counters(), stats: () => app.controls.stats() };
    },
    createdOrgs: () => orgs.created(),
    unrouted: { counters: () => emptyOrg().controls.counters(), stats: () => emptyOrg().controls.stats() },
    close: () => closeServer(server).catch(() => {}),
  };
}

interface RunMultiOrgArgs {
  port: number;
  orgs: number;
  /** A data file or `generate:<key=value,...>`, for every org. */
  data: string;
  host?: string;
  publicUrl?: string;
  /** Write the credentials here as JSON instead of printing them. */
  credentials?: string;
  signal?: AbortSignal;
}

/** `qobra-sync simulate salesforce --orgs N [--credentials FILE]`: serves until SIGINT/SIGTERM. */
export async function runMultiOrgSalesforceSimulator(argv: RunMultiOrgArgs): Promise<void> {
  const sim = await startMultiOrgSalesforceSimulator({
    orgs: argv.orgs,
    data: argv.data,
    port: argv.port,
    ...(argv.host !== undefined ? { host: argv.host } : {}),
    ...(argv.publicUrl !== undefined ? { publicUrl: argv.publicUrl } : {}),
  });
  // Fail on a bad data source at start, not on some connector's first request.
  sim.org(0);
  const lines = [`Salesforce simulator listening on ${sim.url}, serving ${argv.orgs} orgs (login/instance URL of every org: ${sim.url})`];
  if (argv.credentials) {
    writeJsonFileAtomically(argv.credentials, { api: "salesforce", url: sim.url, orgs: sim.credentials });
    lines.push(`  credentials of the ${argv.orgs} orgs written to ${argv.credentials}`);
  } else {
    for (const c of sim.credentials)
      lines.push(`  org ${c.org} (${c.orgId}): client id ${c.clientId} secret ${c.clientSecret} refresh token ${c.refreshToken}`);
  }
  lines.push(
    `  org k's counters: GET ${sim.url}/org/<k>/__simulator/counters ; stats: GET ${sim.url}/org/<k>/__admin/stats ; all credentials: GET ${sim.url}/__orgs`,
  );
  lines.push("Press Ctrl+C to stop.");
  process.stdout.write(`${lines.join("\n")}\n`);
  const why = await untilStopped(argv.signal);
  process.stdout.write(`Salesforce simulator: ${why}, stopping\n`);
  await sim.close();
}
