/**
 * One HTTP port for operations: /metrics (Prometheus), /healthz (progress, not just liveness),
 * the integration-settings page (ops/web/index.html, one static file) and its small JSON API:
 *
 *   GET  /api/state                       connectors, tables, schedules, runs, lag, health
 *   GET  /api/stream                      the same, pushed as server-sent events after each sample
 *   GET  /api/runs/:runId                 one run
 *   POST /api/connectors/:id/sync         {"full": bool, "tables": [..]} → publishes a SyncRequest (requestedBy "web")
 *   PUT  /api/connectors/:id/schedule     the connector's schedule object → stored edit
 *   DELETE /api/connectors/:id/schedule   back to the config file's schedule
 *
 * Writes need `Content-Type: application/json` and, when the browser sends an Origin, the same
 * host (no cross-site form posts). There is no authentication: listen on 127.0.0.1 (default) or
 * put it behind an authenticating proxy.
 */
import { readFile } from "node:fs/promises";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import type { Producer } from "kafkajs";
import type { Registry as PromRegistry } from "prom-client";
import type { Config } from "../lib/config.ts";
import { ConfigError, describeError } from "../lib/errors.ts";
import { logger } from "../lib/log.ts";
import type { Runtime } from "../lib/runtime.ts";
import { newRequest, publishRequest } from "../lib/protocol.ts";
import { createMetrics } from "./metrics.ts";
import { OpsMonitor, type MonitorOptions } from "./monitor.ts";
import { validateSchedule } from "../scheduler/schedules.ts";

const log = logger.child({ component: "ops-http" });
const PAGE = new URL("./web/index.html", import.meta.url);

export interface OpsServer {
  url: string;
  port: number;
  monitor: OpsMonitor;
  metrics: PromRegistry;
  stop(): Promise<void>;
}

interface OpsServerOptions {
  port?: number;
  host?: string;
  monitor?: MonitorOptions;
  processMetrics?: boolean;
}

/** An HTTP answer to a bad request (its status and text), not a pipeline error: deliberately not an EtlError. */
class HttpError extends Error {
  readonly status: number;
  constructor(status: number, message: string) {
    super(message);
    this.status = status;
  }
}

export async function startOpsServer(config: Config, rt: Runtime, opts: OpsServerOptions = {}): Promise<OpsServer> {
  const monitor = new OpsMonitor(config, rt, { stallMs: (config.http?.stallSeconds ?? 60) * 1000, ...opts.monitor });
  await monitor.start();
  const metrics = createMetrics(monitor, { processMetrics: opts.processMetrics });
  let producer: Producer | undefined;
  const getProducer = async () => (producer ??= await rt.port.producer({ idempotent: true, maxInFlightRequests: 1 }));
  const streams = new Set<ServerResponse>();
  const push = () => {
    if (streams.size === 0) return;
    const data = `event: state\ndata: ${JSON.stringify(monitor.state())}\n\n`;
    for (const res of streams) res.write(data);
  };
  monitor.listeners.add(push);
  const keepAlive = setInterval(() => {
    for (const res of streams) res.write(": keep-alive\n\n");
  }, 15_000);
  keepAlive.unref();

  const server = createServer((req, res) => {
    handle(req, res).catch((e: unknown) => {
      const status = e instanceof HttpError ? e.status : e instanceof ConfigError ? 400 : 500;
      if (status >= 500) log.error({ err: describeError(e), url: req.url }, "request failed");
      if (!res.headersSent) json(res, status, { error: describeError(e) });
      else res.end();
    });
  });

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? "/", "http://localhost");
    const path = url.pathname.replace(/\/+$/, "") || "/";
    const method = req.method ?? "GET";
    if (method === "GET" && (path === "/" || path === "/index.html" || path === "/settings")) {
      const html = await readFile(PAGE);
      res.writeHead(200, {
        "content-type": "text/html; charset=utf-8",
        "cache-control": "no-store",
        "x-content-type-options": "nosniff",
        "x-frame-options": "DENY",
      });
      res.end(html);
      return;
    }
    if (method === "GET" && path === "/metrics") {
      const body = await metrics.metrics();
      res.writeHead(200, { "content-type": metrics.contentType });
      res.end(body);
      return;
    }
    if (method === "GET" && path === "/healthz") {
      const h = monitor.health();
      json(res, h.ok ? 200 : 503, { status: h.ok ? "ok" : "unhealthy", problems: h.problems, groups: h.groups });
      return;
    }
    if (method === "GET" && path === "/api/state") {
      json(res, 200, monitor.state());
      return;
    }
    if (method === "GET" && path === "/api/stream") {
      res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-store", connection: "keep-alive" });
      res.write(`event: state\ndata: ${JSON.stringify(monitor.state())}\n\n`);
      streams.add(res);
      req.on("close", () => streams.delete(res));
      return;
    }
    let m = /^\/api\/runs\/([^/]+)$/.exec(path);
    if (method === "GET" && m) {
      const run = monitor.book.get(decodeURIComponent(m[1]!));
      if (!run) throw new HttpError(404, `no run ${m[1]} in sync.events (yet)`);
      json(res, 200, run);
      return;
    }
    m = /^\/api\/connectors\/([^/]+)\/(sync|schedule)$/.exec(path);
    if (m) {
      const id = decodeURIComponent(m[1]!);
      const connector = config.connectors.find((c) => c.id === id);
      if (!connector) throw new HttpError(404, `no connector ${id}`);
      if (m[2] === "sync" && method === "POST") {
        const body = await readJson(req);
        const full = body.full === true;
        const tables = Array.isArray(body.tables) ? body.tables.map(String) : [];
        for (const t of tables) if (!connector.tables.some((x) => x.name === t)) throw new HttpError(400, `connector ${id} has no table ${t}`);
        const request = newRequest(id, { full, tables, by: "web" });
        await publishRequest(await getProducer(), rt.codec, rt.port.topics, request);
        log.info({ connector: id, runId: request.requestId, full }, "sync requested from the web page");
        setTimeout(() => {
          void monitor.sample();
        }, 300).unref();
        json(res, 202, { runId: request.requestId, connector: id, full, tables });
        return;
      }
      if (m[2] === "schedule" && method === "PUT") {
        const body = await readJson(req);
        const schedule = validateSchedule(connector, body);
        await monitor.schedules.save(id, schedule, `web ${req.socket.remoteAddress ?? ""}`.trim());
        await monitor.reloadOverrides();
        log.info({ connector: id, schedule }, "schedule edited from the web page");
        json(res, 200, { schedule: monitor.state().connectors.find((c) => c.id === id)!.schedule });
        return;
      }
      if (m[2] === "schedule" && method === "DELETE") {
        checkWrite(req, false);
        await monitor.schedules.remove(id);
        await monitor.reloadOverrides();
        json(res, 200, { schedule: monitor.state().connectors.find((c) => c.id === id)!.schedule });
        return;
      }
      throw new HttpError(405, `${method} is not allowed on ${path}`);
    }
    throw new HttpError(404, `nothing at ${path}; try /, /metrics, /healthz or /api/state`);
  }

  const port = opts.port ?? config.http?.port ?? 7070;
  const host = opts.host ?? config.http?.host ?? "127.0.0.1";
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
  const url = `http://${host.includes(":") ? `[${host}]` : host}:${actual}`;
  log.info({ url }, "operations page, /metrics and /healthz listening");
  return {
    url,
    port: actual,
    monitor,
    metrics,
    async stop() {
      clearInterval(keepAlive);
      monitor.listeners.delete(push);
      for (const res of streams) res.end();
      streams.clear();
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
      await monitor.stop();
      await producer?.disconnect().catch(() => {});
    },
  };
}

function json(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { "content-type": "application/json; charset=utf-8", "cache-control": "no-store" });
  res.end(JSON.stringify(body));
}

function checkWrite(req: IncomingMessage, needsJson = true): void {
  if (needsJson && !/^application\/json\b/i.test(req.headers["content-type"] ?? "")) throw new HttpError(415, "send Content-Type: application/json");
  const origin = req.headers.origin;
  if (origin && origin !== "null") {
    let host: string;
    try {
      host = new URL(origin).host;
    } catch {
      throw new HttpError(403, "bad Origin header");
    }
    if (host !== req.headers.host) throw new HttpError(403, `cross-origin write refused (Origin ${origin})`);
  } else if (origin === "null") throw new HttpError(403, "cross-origin write refused");
}

async function readJson(req: IncomingMessage): Promise<Record<string, unknown>> {
  checkWrite(req);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > 64 * 1024) throw new HttpError(413, "request body too large");
    chunks.push(chunk as Buffer);
  }
  const text = Buffer.concat(chunks).toString("utf8");
  if (!text.trim()) return {};
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    throw new HttpError(400, "the body is not valid JSON");
  }
  if (body === null || typeof body !== "object" || Array.isArray(body)) throw new HttpError(400, "the body must be a JSON object");
  return body as Record<string, unknown>;
}
