/**
 * One HTTP port for operations: /metrics (Prometheus), /healthz (progress, not just liveness),
 * the integration-settings page (ops/web/: index.html, app.js, render.js, app.css) and its JSON API:
 *
 *   POST /api/login                       {"token"} → session cookie + {csrfToken}   (the page's login form)
 *   POST /api/logout                      ends the session
 *   GET  /api/session                     who is logged in, and the session's CSRF token
 *   GET  /api/state                       connectors, tables, schedules, runs, lag, health (a tenant's
 *                                         caller: its connectors' part, ops/page-state.ts buildOpsState)
 *   GET  /api/stream                      the same, pushed as server-sent events after each sample
 *   GET  /api/runs/:runId                 one run (404 for a run of a connector the caller does not reach)
 *   POST /api/connectors/:id/sync         {"full": bool, "tables": [..]} → publishes a SyncRequest (requestedBy "web")
 *   POST /api/connectors/:id/replay       {"tables": [..]} → 202 {runId}: a replay in this process (ops/replay.ts),
 *                                         also as /api/tenants/:tenant/connectors/:id/replay
 *   PUT  /api/connectors/:id/schedule     the connector's schedule object → stored edit
 *   DELETE /api/connectors/:id/schedule   back to the config file's schedule
 *   GET  /api/tenants/:t/connectors       the tenant's connectors (entries with secrets masked) ┐
 *   GET|PUT|DELETE /api/tenants/:t/connectors/:id  one connector: read, create/replace, remove    │ ops/connectors-api.ts
 *   POST /api/tenants/:t/connectors/:id/check      the connector's checks, time-limited            │ (404 for a tenant the
 *   POST /api/tenants/:t/connectors/:id/sync       {"full": bool} → {"runId"}                      ┘ caller does not reach)
 *   POST /api/tenants/:t/connectors/:id/authorize  → {url}: an OAuth source's authorize URL        ┐ ops/oauth-web.ts
 *   GET  /oauth/callback                           the provider's redirect (public; single-use state) ┘
 *
 * Every request passes the Host check (DNS rebinding) and gets the security headers
 * (ops/http-security.ts); every /api route but the login needs a token (`Authorization: Bearer`)
 * or a page session, every /api route checks Origin, and a write from a session carries its CSRF
 * token (ops/http-auth.ts). /metrics and /healthz are open under the Host check unless
 * http.protectMetrics. Without http.tokens the server listens on loopback only and generates an
 * operator token into a file of mode 0600. The rules and their reasons: docs/security.md.
 */
import { readFile } from "node:fs/promises";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import type { Producer } from "kafkajs";
import type { Registry as PromRegistry } from "prom-client";
import type { Config } from "../lib/config.ts";
import { ConfigError, describeError } from "../lib/errors.ts";
import { logger } from "../lib/log.ts";
import { newRequest, publishRequest } from "../lib/protocol.ts";
import { rememberSecret } from "../lib/redact.ts";
import type { Runtime } from "../lib/runtime.ts";
import { validateSchedule } from "../scheduler/schedules.ts";
import { TokenSet, generatedTokenFile, newOperatorToken, reachesTenant, removeGeneratedToken, writeGeneratedToken } from "./http-auth.ts";
import { Gate, sessionInfo, type Caller, type GateOptions, type HttpSettings, type Route } from "./http-gate.ts";
import { HttpError, applySecurityHeaders, isLoopbackAddress, isWildcardAddress, parsePath, readJsonObject } from "./http-security.ts";
import { connectorForms } from "./connector-forms.ts";
import { connectorsApiRoutes } from "./connectors-api.ts";
import { oauthWebRoutes } from "./oauth-web.ts";
import { createMetrics } from "./metrics.ts";
import { OpsMonitor, type MonitorOptions } from "./monitor.ts";
import { scopeReachesId } from "./page-state.ts";
import { ReplayRefused, startReplay, type ReplayResult, type StartRoles } from "./replay.ts";

const log = logger.child({ component: "ops-http" });
const WEB = new URL("./web/", import.meta.url);
const STATIC: Record<string, { file: string; type: string }> = {
  "": { file: "index.html", type: "text/html; charset=utf-8" },
  "index.html": { file: "index.html", type: "text/html; charset=utf-8" },
  settings: { file: "index.html", type: "text/html; charset=utf-8" },
  "app.js": { file: "app.js", type: "text/javascript; charset=utf-8" },
  "render.js": { file: "render.js", type: "text/javascript; charset=utf-8" },
  "connectors.js": { file: "connectors.js", type: "text/javascript; charset=utf-8" },
  "app.css": { file: "app.css", type: "text/css; charset=utf-8" },
};
const BODY_LIMIT = 64 * 1024;
const LOGIN_BODY_LIMIT = 4 * 1024;

export interface OpsServer {
  url: string;
  port: number;
  monitor: OpsMonitor;
  metrics: PromRegistry;
  /** The file holding the generated operator token (no http.tokens), else null. */
  tokenFile: string | null;
  stop(): Promise<void>;
}

interface OpsServerOptions extends GateOptions {
  port?: number;
  host?: string;
  monitor?: MonitorOptions;
  processMetrics?: boolean;
  /** Folder of the generated token's file (default: the stack dir, `.stack/`). */
  stateDir?: string;
  /** Runs the sink role in this process for a replay when none is running (app/roles.ts); absent: such a replay is refused. */
  replayRoles?: StartRoles;
}

const exact =
  (...path: string[]) =>
  (seg: string[]) =>
    seg.length === path.length && path.every((p, i) => p === seg[i]) ? [] : null;

export async function startOpsServer(config: Config, rt: Runtime, opts: OpsServerOptions = {}): Promise<OpsServer> {
  const http = httpSettings(config);
  const port = opts.port ?? http.port;
  const host = opts.host ?? http.host;
  if (!http.tokens && !isLoopbackAddress(host))
    throw new ConfigError(
      `the settings server would listen on ${host}, which is not a loopback address, without http.tokens: anyone reaching it could trigger syncs and edit schedules; add http.tokens or listen on 127.0.0.1`,
    );
  const generated = http.tokens ? null : newOperatorToken();
  if (generated) rememberSecret(generated); // masked in any message, like the config's tokens
  const tokens = new TokenSet(http.tokens ?? [{ token: generated!, tenants: ["*"], label: "generated token" }]);
  const gate = new Gate(http, host, tokens, opts);
  const files = new Map<string, Buffer>();
  for (const f of new Set(Object.values(STATIC).map((s) => s.file))) files.set(f, await readFile(new URL(f, WEB)));

  const monitor = new OpsMonitor(config, rt, { stallMs: http.stallSeconds * 1000, ...opts.monitor });
  await monitor.start();
  const metrics = createMetrics(monitor, { processMetrics: opts.processMetrics });
  let producer: Producer | undefined;
  const getProducer = async () => (producer ??= await rt.port.producer({ idempotent: true, maxInFlightRequests: 1 }));
  // Each caller gets its view: an operator the whole pipeline, a tenant its connectors' part (ops/page-state.ts).
  const stateEvent = (caller: Caller, now = Date.now()) => `event: state\ndata: ${JSON.stringify(monitor.state(now, caller.principal.tenants))}\n\n`;
  const push = () => {
    if (gate.streamCount === 0) return;
    // One rendering per scope for all the streams of a sample.
    const now = Date.now();
    const rendered = new Map<string, string>();
    gate.broadcast((caller) => {
      const key = JSON.stringify(caller.principal.tenants);
      let text = rendered.get(key);
      if (text === undefined) rendered.set(key, (text = stateEvent(caller, now)));
      return text;
    });
  };
  monitor.listeners.add(push);
  const ticker = setInterval(() => gate.tick(), 15_000);
  ticker.unref();
  // Replays started here run in this process; the server's stop ends them (they fail, and say so).
  const replays = new Set<{ abort: AbortController; done: Promise<ReplayResult> }>();

  let publicUrl = "";
  const routes: Route[] = [
    ...Object.entries(STATIC).map(
      ([name, s]): Route => ({
        match: (seg) => (seg.length === (name ? 1 : 0) && (name === "" || seg[0] === name) ? [] : null),
        methods: {
          GET: {
            access: "public",
            async run({ res }) {
              res.writeHead(200, { "content-type": s.type, "cache-control": "no-store" });
              res.end(files.get(s.file));
            },
          },
        },
      }),
    ),
    {
      match: exact("metrics"),
      methods: {
        GET: {
          access: "probe",
          async run({ res }) {
            const body = await metrics.metrics();
            res.writeHead(200, { "content-type": metrics.contentType, "cache-control": "no-store" });
            res.end(body);
          },
        },
      },
    },
    {
      match: exact("healthz"),
      methods: {
        GET: {
          access: "probe",
          async run({ res }) {
            const h = monitor.health();
            json(res, h.ok ? 200 : 503, { status: h.ok ? "ok" : "unhealthy", problems: h.problems, groups: h.groups });
          },
        },
      },
    },
    {
      match: exact("api", "login"),
      methods: {
        POST: {
          access: "public",
          async run({ req, res }) {
            gate.checkOrigin(req);
            const body = await readJsonObject(req, LOGIN_BODY_LIMIT);
            if (typeof body.token !== "string" || body.token === "") throw new HttpError(400, 'send {"token": "<token>"}');
            json(res, 200, await gate.login(req, res, body.token));
          },
        },
      },
    },
    {
      match: exact("api", "logout"),
      methods: {
        POST: {
          access: "write",
          async run({ res, caller }) {
            gate.logout(caller!, res);
            res.writeHead(204).end();
          },
        },
      },
    },
    {
      match: exact("api", "session"),
      methods: { GET: { access: "api", run: async ({ res, caller }) => json(res, 200, sessionInfo(caller!.principal, caller!.session)) } },
    },
    {
      // The connector forms of the page, one per source type, built from the plugins' schemas.
      match: exact("api", "connector-types"),
      methods: { GET: { access: "api", run: async ({ res }) => json(res, 200, { types: connectorForms() }) } },
    },
    {
      match: exact("api", "state"),
      methods: {
        GET: {
          access: "api",
          async run({ res, caller }) {
            json(res, 200, monitor.state(Date.now(), caller!.principal.tenants));
          },
        },
      },
    },
    {
      match: exact("api", "stream"),
      methods: {
        GET: {
          access: "api",
          async run({ req, res, caller }) {
            gate.openStream(req, res, caller!, stateEvent(caller!));
          },
        },
      },
    },
    {
      match: (seg) => (seg.length === 3 && seg[0] === "api" && seg[1] === "runs" ? [seg[2]!] : null),
      methods: {
        GET: {
          access: "api",
          async run({ res, params, caller }) {
            const run = monitor.book.get(params[0]!);
            // Another tenant's run is answered as one that does not exist.
            if (!run || !scopeReachesId(caller!.principal.tenants, config, run.connector))
              throw new HttpError(404, `no run ${JSON.stringify(params[0])} in sync.events (yet)`);
            json(res, 200, run);
          },
        },
      },
    },
    {
      match: (seg) => (seg.length === 4 && seg[0] === "api" && seg[1] === "connectors" && seg[3] === "sync" ? [seg[2]!] : null),
      methods: {
        POST: {
          access: "write",
          async run({ req, res, params, caller }) {
            const connector = connectorFor(params[0]!, caller!);
            const body = await readJsonObject(req, BODY_LIMIT);
            const full = body.full === true;
            const tables = Array.isArray(body.tables) ? body.tables.map(String) : [];
            for (const t of tables)
              if (!connector.tables.some((x) => x.name === t)) throw new HttpError(400, `connector ${connector.id} has no table ${JSON.stringify(t)}`);
            const request = newRequest(connector.id, { full, tables, by: "web" });
            await publishRequest(await getProducer(), rt.codec, rt.port.topics, request);
            log.info({ connector: connector.id, runId: request.requestId, full, by: caller!.principal.label }, "sync requested from the web page");
            setTimeout(() => void monitor.sample(), 300).unref();
            json(res, 202, { runId: request.requestId, connector: connector.id, full, tables });
          },
        },
      },
    },
    {
      // A tenant's connector also by its tenant's path: the pipeline id is `<tenant>.<id>`.
      match: (seg) =>
        seg.length === 4 && seg[0] === "api" && seg[1] === "connectors" && seg[3] === "replay"
          ? [seg[2]!]
          : seg.length === 6 && seg[0] === "api" && seg[1] === "tenants" && seg[3] === "connectors" && seg[5] === "replay"
            ? [`${seg[2]}.${seg[4]}`]
            : null,
      methods: {
        POST: {
          access: "write",
          async run({ req, res, params, caller }) {
            const connector = connectorFor(params[0]!, caller!);
            const body = await readJsonObject(req, BODY_LIMIT);
            const tables = Array.isArray(body.tables) ? body.tables.map(String) : [];
            for (const t of tables)
              if (!connector.tables.some((x) => x.name === t)) throw new HttpError(400, `connector ${connector.id} has no table ${JSON.stringify(t)}`);
            const abort = new AbortController();
            const r = startReplay(opts.replayRoles ?? null, config, connector.id, { tables, by: "web", signal: abort.signal });
            const entry = { abort, done: r.done };
            replays.add(entry);
            r.done.then(
              (result) => log.info({ connector: connector.id, runId: result.runId, records: result.records }, "replay requested from the web page completed"),
              (e: unknown) => log.warn({ connector: connector.id, err: describeError(e) }, "replay requested from the web page failed"),
            );
            void r.done.catch(() => {}).finally(() => replays.delete(entry));
            const runId = await r.started.catch((e: unknown) => {
              throw e instanceof ReplayRefused ? new HttpError(409, describeError(e)) : e;
            });
            log.info({ connector: connector.id, runId, tables, by: caller!.principal.label }, "replay started from the web page");
            setTimeout(() => void monitor.sample(), 300).unref();
            json(res, 202, { runId, connector: connector.id, tables });
          },
        },
      },
    },
    {
      match: (seg) => (seg.length === 4 && seg[0] === "api" && seg[1] === "connectors" && seg[3] === "schedule" ? [seg[2]!] : null),
      methods: {
        PUT: {
          access: "write",
          async run({ req, res, params, caller }) {
            const connector = connectorFor(params[0]!, caller!);
            const schedule = validateSchedule(connector, await readJsonObject(req, BODY_LIMIT));
            await monitor.schedules.save(connector.id, schedule, `web ${caller!.principal.label} ${req.socket.remoteAddress ?? ""}`.trim());
            await monitor.reloadOverrides();
            log.info({ connector: connector.id, schedule, by: caller!.principal.label }, "schedule edited from the web page");
            json(res, 200, { schedule: monitor.state().connectors.find((c) => c.id === connector.id)!.schedule });
          },
        },
        DELETE: {
          access: "write",
          async run({ res, params, caller }) {
            const connector = connectorFor(params[0]!, caller!);
            await monitor.schedules.remove(connector.id);
            await monitor.reloadOverrides();
            log.info({ connector: connector.id, by: caller!.principal.label }, "schedule edit removed from the web page");
            json(res, 200, { schedule: monitor.state().connectors.find((c) => c.id === connector.id)!.schedule });
          },
        },
      },
    },
    // The tenants' connectors: created, changed, removed, checked and synced (ops/connectors-api.ts).
    ...connectorsApiRoutes({
      config,
      rt,
      getProducer,
      requested: () => setTimeout(() => void monitor.sample(), 300).unref(),
      removed: (id) => monitor.schedules.remove(id),
    }),
    // The OAuth sources' Authorize and the provider's redirect (ops/oauth-web.ts).
    ...oauthWebRoutes({ config, rt, publicUrl: () => publicUrl }),
  ];

  /** The connector a caller names in a path: 404 when there is none, or when the caller's tenants do not reach it. */
  function connectorFor(id: string, caller: Caller) {
    const connector = config.connectors.find((c) => c.id === id);
    if (!connector || !reachesTenant(caller.principal, (connector as { tenant?: string }).tenant))
      throw new HttpError(404, `no connector ${JSON.stringify(id)}`);
    return connector;
  }

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    applySecurityHeaders(res);
    await gate.admit(req, "public");
    const seg = parsePath(req.url);
    let params: string[] | null = null;
    const route = routes.find((r) => (params = r.match(seg)) !== null);
    if (!route) throw new HttpError(404, "not found; the page is at /, the API under /api/, and /metrics, /healthz");
    const stream = seg[0] === "api" && seg[1] === "stream";
    const method = req.method === "HEAD" && !stream ? "GET" : (req.method ?? "GET");
    const handler = route.methods[method];
    if (!handler) {
      const allow = Object.keys(route.methods);
      if (allow.includes("GET") && !stream) allow.push("HEAD");
      throw new HttpError(405, `${method} is not allowed here (allowed: ${allow.join(", ")})`, { allow: allow.join(", ") });
    }
    const caller = await gate.admit(req, handler.access);
    await handler.run({ req, res, params: params ?? [], caller });
  }

  const server = createServer((req, res) => {
    handle(req, res).catch((e: unknown) => {
      const status = e instanceof HttpError ? e.status : e instanceof ConfigError ? 400 : 500;
      if (status >= 500 && !(e instanceof HttpError))
        log.error({ err: describeError(e), method: req.method, path: (req.url ?? "").split("?")[0] }, "request failed");
      if (res.headersSent) return void res.end();
      if (e instanceof HttpError) for (const [k, v] of Object.entries(e.headers)) res.setHeader(k, v);
      json(res, status, { error: describeError(e) });
    });
  });
  server.requestTimeout = 30_000;
  server.headersTimeout = 15_000;
  server.maxConnections = 512;

  await new Promise<void>((resolve, reject) => {
    server.once("error", (e: NodeJS.ErrnoException) =>
      reject(e.code === "EADDRINUSE" ? new ConfigError(`http.port ${port} is taken on ${host}; choose another port in the config's http section`) : e),
    );
    server.listen(port, host, () => resolve());
  }).catch(async (e: unknown) => {
    await monitor.stop();
    throw e;
  });
  const actual = (server.address() as AddressInfo).port;
  gate.listening(actual);
  const url = `http://${host.includes(":") ? `[${host}]` : host}:${actual}`;
  // Known once listening (port 0); the OAuth redirect URL is built on it.
  publicUrl = (http.publicUrl ?? url).replace(/\/+$/, "");
  if (http.publicUrl && !gate.hosts.has(new URL(publicUrl).hostname.toLowerCase()))
    log.warn({ publicUrl }, "http.publicUrl names a host this server does not answer to: add it to http.allowedHosts, or the OAuth callback is refused");
  let tokenFile: string | null = null;
  if (generated) {
    tokenFile = generatedTokenFile(actual, opts.stateDir);
    await writeGeneratedToken(tokenFile, generated).catch(async (e: unknown) => {
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
      await monitor.stop();
      throw new ConfigError(`cannot write the generated operator token to ${tokenFile} (${describeError(e)}); set QOBRA_SYNC_STACK_DIR or http.tokens`, e);
    });
    log.warn(
      { url, tokenFile },
      "http.tokens is not set: listening on loopback only, with an operator token generated for this run; log in with the token in the file (`qobra-sync web-token` prints it)",
    );
  }
  if (isWildcardAddress(host))
    log.info({ url, hosts: [...gate.hosts] }, "listening on every interface: requests must name one of these hosts (http.allowedHosts)");
  log.info({ url }, "operations page, /metrics and /healthz listening");
  return {
    url,
    port: actual,
    monitor,
    metrics,
    tokenFile,
    async stop() {
      clearInterval(ticker);
      for (const r of replays) r.abort.abort(new Error("the settings server stopped"));
      await Promise.allSettled([...replays].map((r) => r.done));
      monitor.listeners.delete(push);
      gate.closeStreams();
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
      if (tokenFile && generated) await removeGeneratedToken(tokenFile, generated).catch(() => {});
      await monitor.stop();
      await producer?.disconnect().catch(() => {});
    },
  };
}

/** The http section with its defaults (`qobra-sync serve` runs without one). */
function httpSettings(config: Config): HttpSettings {
  return (
    config.http ?? {
      port: 7070,
      host: "127.0.0.1",
      stallSeconds: 60,
      allowedHosts: [],
      sessionHours: 12,
      secureCookie: false,
      maxStreams: 20,
      maxStreamsPerSession: 4,
      protectMetrics: false,
    }
  );
}

function json(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { "content-type": "application/json; charset=utf-8", "cache-control": "no-store" });
  res.end(JSON.stringify(body));
}
