// Salesforce API simulator: OAuth 2.0, REST (versions, describeGlobal, describe, query/queryAll/queryMore, limits,
// record retrieve), Bulk API 2.0 query jobs, daily API limit, fault injection and per-endpoint counters.
// See README.md beside this file for the data-file format, the controls and what is (not) reproduced.
// This file is the request dispatch (counting, faults, OAuth endpoints) and the server; the REST API is in
// rest.ts, the OAuth pages in auth-routes.ts, the controls in controls.ts and control-routes.ts.

import { createServer } from "node:http";
import type { IncomingMessage, Server, ServerResponse } from "node:http";
import { dirname, resolve } from "node:path";
import { readFileSync } from "node:fs";
import { setTimeout as sleep } from "node:timers/promises";
import { isAdminPath } from "../kit/admin.ts";
import { closeServer, listen, serverUrl } from "../kit/http.ts";
import { authorize, identity, versions } from "./auth-routes.ts";
import { adminRoute, controlRoute } from "./control-routes.ts";
import { SalesforceSimControls } from "./controls.ts";
import { defaultFaultError } from "./faults.ts";
import type { AdminStats } from "./controls.ts";
import { normalizeId } from "./ids.ts";
import { DataError } from "./sim-data.ts";
import { bearer, errorReply, HTML_CT, JSON_CT, jsonReply, NOT_FOUND_ERR, readBody } from "./reply.ts";
import type { Reply } from "./reply.ts";
import { RestApi } from "./rest.ts";
import { SfError } from "./soql.ts";
import type { SalesforceSimData } from "./types.ts";

export type { AdminStats } from "./controls.ts";

interface StartSalesforceSimulatorOptions {
  port?: number;
  host?: string;
  /** The data (see README.md) or a path to a data JSON file. */
  data: SalesforceSimData | string;
  /** Simulated clock (epoch ms) for token expiry, job timing, audit fields, date literals, the rolling API window. */
  clock?: () => number;
  /** URL announced as instance_url / in identity URLs when clients reach the simulator under another name. */
  publicUrl?: string;
}

export interface SalesforceSimulator {
  url: string;
  close(): Promise<void>;
  counters(): Record<string, number>;
  /** Requests per `<METHOD> <route>` since start or the last reset (what `GET /__admin/stats` answers). */
  stats(): AdminStats;
  state: SalesforceSimControls;
}

class SimServer {
  readonly c: SalesforceSimControls;
  private readonly rest: RestApi;

  constructor(c: SalesforceSimControls) {
    this.c = c;
    this.rest = new RestApi(c);
  }

  private get base(): string {
    return this.c.baseUrl;
  }

  /** Route key used by the counters (path templates). */
  routeKey(method: string, path: string): string {
    let m: RegExpExecArray | null;
    if (path === "/services/data" || path === "/services/data/") return `${method} /services/data`;
    if ((m = /^\/services\/data\/v[^/]+(\/.*)?$/.exec(path))) {
      const rest = (m[1] ?? "").replace(/\/$/, "");
      const templates: [RegExp, string][] = [
        [/^\/sobjects\/[^/]+\/describe$/, "/sobjects/{sobject}/describe"],
        [/^\/sobjects\/[^/]+\/[^/]+$/, "/sobjects/{sobject}/{id}"],
        [/^\/sobjects\/[^/]+$/, "/sobjects/{sobject}"],
        [/^\/query\/[^/]+$/, "/query/{locator}"],
        [/^\/queryAll\/[^/]+$/, "/queryAll/{locator}"],
        [/^\/jobs\/query\/[^/]+\/results$/, "/jobs/query/{jobId}/results"],
        [/^\/jobs\/query\/[^/]+$/, "/jobs/query/{jobId}"],
      ];
      const t = templates.find(([re]) => re.test(rest))?.[1] ?? rest;
      return `${method} /services/data/vXX.X${t}`;
    }
    if (/^\/id\/[^/]+\/[^/]+$/.test(path)) return `${method} /id/{orgId}/{userId}`;
    return `${method} ${path}`;
  }

  async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const method = (req.method ?? "GET").toUpperCase();
    const url = new URL(req.url ?? "/", "http://sim.invalid");
    const path = url.pathname;
    let reply: Reply;
    try {
      if (path.startsWith("/__simulator/")) {
        reply = await controlRoute(this.c, method, path.slice("/__simulator/".length), req);
        this.send(res, reply);
        return;
      }
      if (isAdminPath(path)) {
        reply = await adminRoute(this.c, method, path.slice("/__admin".length).replace(/^\/+|\/+$/g, ""), req);
        this.send(res, reply);
        return;
      }
      const route = this.routeKey(method, path);
      this.c.count(route);
      this.c.countRoute(route);
      this.c.onApiRequest?.({ method, path, query: url.searchParams });
      const tooLarge = requestLineLimit(req);
      if (tooLarge) {
        this.count(tooLarge);
        this.send(res, tooLarge);
        return;
      }
      const fault = this.c.takeFault(method, path);
      if (fault) {
        this.c.count("faults:injected");
        if (fault.delayMs) await sleep(fault.delayMs);
        if (fault.action === "reset") {
          req.socket.destroy();
          return;
        }
        if (fault.status !== undefined) {
          const def = defaultFaultError(fault.status);
          const body = fault.body !== undefined ? fault.body : [{ message: fault.message ?? def.message, errorCode: fault.errorCode ?? def.errorCode }];
          reply = typeof body === "string" ? { status: fault.status, body, contentType: HTML_CT } : jsonReply(fault.status, body);
          this.count(reply);
          this.send(res, reply);
          return;
        }
      }
      reply = await this.route(method, path, url, req);
    } catch (e) {
      if (e instanceof SfError) reply = errorReply(e);
      else reply = jsonReply(500, [{ message: `Simulator error: ${(e as Error).message}`, errorCode: "UNKNOWN_EXCEPTION" }]);
    }
    this.count(reply);
    this.send(res, reply);
  }

  private count(reply: Reply): void {
    this.c.count(`status:${reply.status}`);
  }

  private send(res: ServerResponse, r: Reply): void {
    const headers: Record<string, string> = { "Content-Type": r.contentType ?? JSON_CT, ...(r.headers ?? {}) };
    res.writeHead(r.status, headers);
    res.end(r.status === 204 ? undefined : r.body);
  }

  private async route(method: string, path: string, url: URL, req: IncomingMessage): Promise<Reply> {
    if (path === "/services/data" || path === "/services/data/") {
      if (method !== "GET") throw NOT_FOUND_ERR();
      return versions(this.c);
    }
    if (path === "/services/oauth2/token") {
      if (method !== "POST") return jsonReply(400, { error: "invalid_request", error_description: "must use HTTP POST" });
      const params = new URLSearchParams(await readBody(req));
      this.c.count(`oauth:grant:${params.get("grant_type") ?? "(none)"}`);
      const r = this.c.oauth.token(params, this.base);
      return jsonReply(r.status, r.body);
    }
    if (path === "/services/oauth2/authorize") return authorize(this.c, method, url, req);
    if (path === "/services/oauth2/revoke") {
      const params = method === "POST" ? new URLSearchParams(await readBody(req)) : url.searchParams;
      const t = params.get("token") ?? "";
      const ok = this.c.oauth.revokeRefreshToken(t) || this.c.oauth.revokeAccessToken(t);
      return ok
        ? { status: 200, body: "", contentType: JSON_CT }
        : jsonReply(400, { error: "unsupported_token_type", error_description: "this token type is not supported" });
    }
    const idm = /^\/id\/([^/]+)\/([^/]+)$/.exec(path);
    if (idm || path === "/services/oauth2/userinfo") {
      const tok = this.c.oauth.validateAccess(bearer(req));
      if (!tok) return { status: 403, body: "Bad_OAuth_Token", contentType: "text/plain;charset=UTF-8" };
      return jsonReply(200, identity(this.c, idm ? normalizeId(idm[2]!) : tok.userId));
    }
    const m = /^\/services\/data\/v([^/]+)(\/.*)?$/.exec(path);
    if (m) return this.rest.api(method, m[1]!, (m[2] ?? "").replace(/\/$/, ""), url, req);
    throw NOT_FOUND_ERR();
  }
}

/** Salesforce's limit on the request URI, and on the URI plus the headers (API-SIMULATORS.md, "not modelled yet"). */
export const MAX_URI_BYTES = 16_384;

/**
 * 414 when the request URI is over 16,384 bytes, 431 when the URI and the headers together are: what the
 * real API's front end answers (an HTML page, before any authentication or API accounting).
 */
function requestLineLimit(req: IncomingMessage): Reply | undefined {
  const uri = Buffer.byteLength(req.url ?? "");
  const page = (status: number, title: string): Reply => ({
    status,
    body: `<html><head><title>${status} ${title}</title></head><body><h1>${title}</h1></body></html>`,
    contentType: HTML_CT,
  });
  if (uri > MAX_URI_BYTES) return page(414, "Request-URI Too Long");
  let headers = 0;
  for (let i = 0; i + 1 < req.rawHeaders.length; i += 2) headers += Buffer.byteLength(req.rawHeaders[i]!) + Buffer.byteLength(req.rawHeaders[i + 1]!) + 4;
  if (uri + headers > MAX_URI_BYTES) return page(431, "Request Header Fields Too Large");
  return undefined;
}

export function loadData(data: SalesforceSimData | string): { data: SalesforceSimData; baseDir: string } {
  if (typeof data === "string") {
    const abs = resolve(data);
    return { data: JSON.parse(readFileSync(abs, "utf8")) as SalesforceSimData, baseDir: dirname(abs) };
  }
  return { data, baseDir: process.cwd() };
}

/** One org's state and request handler, not yet listening: what startSalesforceSimulator serves, and each org of multi-org.ts. */
export interface SalesforceOrgApp {
  controls: SalesforceSimControls;
  handle(req: IncomingMessage, res: ServerResponse): void;
}

export function createSalesforceOrgApp(opts: {
  data: SalesforceSimData | string;
  clock: () => number;
  /** Where describe paths of an object `data` are relative to (default: the working directory). */
  baseDir?: string;
}): SalesforceOrgApp {
  const loaded = loadData(opts.data);
  const { data } = loaded;
  const baseDir = typeof opts.data === "string" ? loaded.baseDir : (opts.baseDir ?? loaded.baseDir);
  let controls: SalesforceSimControls;
  try {
    controls = new SalesforceSimControls(data, baseDir, opts.clock);
  } catch (e) {
    if (e instanceof DataError) throw new Error(`Salesforce simulator data: ${e.message}`);
    throw e;
  }
  const sim = new SimServer(controls);
  return {
    controls,
    handle: (req, res) => {
      sim.handle(req, res).catch((e: unknown) => {
        if (!res.headersSent) {
          res.writeHead(500, { "Content-Type": JSON_CT });
          res.end(JSON.stringify([{ message: `Simulator error: ${(e as Error).message}`, errorCode: "UNKNOWN_EXCEPTION" }]));
        }
      });
    },
  };
}

/** Node refuses request heads over 16 KiB itself (431, no body); a larger ceiling lets requestLineLimit answer as Salesforce does. */
export const SERVER_OPTIONS = { maxHeaderSize: 1 << 20 };

export async function startSalesforceSimulator(opts: StartSalesforceSimulatorOptions): Promise<SalesforceSimulator> {
  const clock = opts.clock ?? (() => Date.now());
  const { controls, handle } = createSalesforceOrgApp({ data: opts.data, clock });
  const server: Server = createServer(SERVER_OPTIONS, handle);
  const host = opts.host ?? "127.0.0.1";
  const port = await listen(server, opts.port ?? 0, host);
  const url = serverUrl(host, port, true);
  controls.baseUrl = (opts.publicUrl ?? url).replace(/\/$/, "");
  return {
    url,
    state: controls,
    counters: () => controls.counters(),
    stats: () => controls.stats(),
    // Errors on close (a server already closed) are ignored, as they always were here.
    close: () => closeServer(server).catch(() => {}),
  };
}
