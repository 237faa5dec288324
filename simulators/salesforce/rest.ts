// The Salesforce simulator's REST API under /services/data/vXX.X: authentication and the daily API budget
// (Sforce-Limit-Info), the resource list, limits, describeGlobal / describe, record retrieve, query / queryAll
// with paged cursors (queryMore), and the Bulk API 2.0 query-job endpoints (the jobs themselves are in bulk.ts).

import type { IncomingMessage } from "node:http";
import type { Cursor, SalesforceSimControls } from "./controls.ts";
import { globalEntry, rewriteVersion } from "./describes.ts";
import { isIdString, normalizeId } from "./ids.ts";
import { bearer, CSV_CT, errorReply, JSON_CT, jsonReply, NOT_FOUND_ERR, parseJsonBody, readBody } from "./reply.ts";
import type { Reply } from "./reply.ts";
import { aggregateRow, compileQuery, executeQuery, renderJsonRecord, renderTree, SfError } from "./soql.ts";
import type { CompiledQuery } from "./soql.ts";
import type { AccessTokenInfo } from "./oauth.ts";
import type { SimRecord } from "./types.ts";

interface ApiCtx {
  req: IncomingMessage;
  url: URL;
  version: string;
  rest: string;
  method: string;
  token: AccessTokenInfo;
}

export class RestApi {
  readonly c: SalesforceSimControls;
  private readonly describeCache = new Map<string, string>();

  constructor(c: SalesforceSimControls) {
    this.c = c;
  }

  private get base(): string {
    return this.c.baseUrl;
  }

  private limitHeader(): string {
    return `api-usage=${this.c.usage.used()}/${this.c.usage.limit}`;
  }

  async api(method: string, version: string, rest: string, url: URL, req: IncomingMessage): Promise<Reply> {
    const token = this.c.oauth.validateAccess(bearer(req));
    if (!token) {
      return { ...jsonReply(401, [{ message: "Session expired or invalid", errorCode: "INVALID_SESSION_ID" }]), headers: { "WWW-Authenticate": "Token" } };
    }
    const used = this.c.usage.used();
    if (used >= this.c.usage.limit) {
      const r = jsonReply(403, [{ message: "TotalRequests Limit exceeded.", errorCode: "REQUEST_LIMIT_EXCEEDED" }]);
      return { ...r, headers: { "Sforce-Limit-Info": `api-usage=${used}/${this.c.usage.limit}` } };
    }
    this.c.usage.add();
    this.c.count("api:counted");
    let reply: Reply;
    try {
      const v = Number(version);
      if (!/^\d+\.\d$/.test(version) || v > Number(this.c.org.org.apiVersion) || v < Number(this.c.org.org.minApiVersion)) throw NOT_FOUND_ERR();
      reply = await this.apiRoute({ req, url, version, rest, method, token });
    } catch (e) {
      if (!(e instanceof SfError)) throw e;
      reply = errorReply(e);
    }
    reply.headers = { ...(reply.headers ?? {}), "Sforce-Limit-Info": this.limitHeader() };
    return reply;
  }

  private async apiRoute(ctx: ApiCtx): Promise<Reply> {
    const { method, rest, version } = ctx;
    let m: RegExpExecArray | null;
    if (rest === "" && method === "GET") return this.resources(version);
    if (rest === "/limits" && method === "GET") return this.limits();
    if (rest === "/sobjects" && method === "GET") return this.describeGlobal(version);
    if ((m = /^\/sobjects\/([^/]+)\/describe$/.exec(rest)) && method === "GET") return this.describe(m[1]!, version);
    if ((m = /^\/sobjects\/([^/]+)$/.exec(rest)) && method === "GET") return this.sobjectInfo(m[1]!, version);
    if ((m = /^\/sobjects\/([^/]+)\/([^/]+)$/.exec(rest)) && method === "GET") return this.retrieve(m[1]!, m[2]!, ctx);
    if ((m = /^\/(query|queryAll)$/.exec(rest)) && method === "GET") return this.query(ctx, m[1] === "queryAll");
    if ((m = /^\/(query|queryAll)\/([^/]+)$/.exec(rest)) && method === "GET") return this.queryMore(ctx, decodeURIComponent(m[2]!));
    if (rest === "/jobs/query") {
      if (method === "POST") {
        const body = parseJsonBody(await readBody(ctx.req));
        return jsonReply(200, this.c.bulk.create(body, ctx.token.userId, version));
      }
      if (method === "GET") return jsonReply(200, this.c.bulk.list());
    }
    if ((m = /^\/jobs\/query\/([^/]+)$/.exec(rest))) {
      const id = m[1]!;
      if (method === "GET") return jsonReply(200, this.c.bulk.poll(id));
      if (method === "PATCH") return jsonReply(200, this.c.bulk.abort(id, parseJsonBody(await readBody(ctx.req))));
      if (method === "DELETE") {
        this.c.bulk.delete(id);
        return { status: 204, body: "", contentType: JSON_CT };
      }
    }
    if ((m = /^\/jobs\/query\/([^/]+)\/results$/.exec(rest)) && method === "GET") {
      const r = this.c.bulk.results(m[1]!, version, ctx.url.searchParams.get("locator"), ctx.url.searchParams.get("maxRecords"));
      return { status: 200, body: r.csv, contentType: CSV_CT, headers: { "Sforce-Locator": r.locator, "Sforce-NumberOfRecords": String(r.count) } };
    }
    throw NOT_FOUND_ERR();
  }

  private resources(version: string): Reply {
    const p = `/services/data/v${version}`;
    return jsonReply(200, {
      limits: `${p}/limits`,
      sobjects: `${p}/sobjects`,
      query: `${p}/query`,
      queryAll: `${p}/queryAll`,
      jobs: `${p}/jobs`,
    });
  }

  private limits(): Reply {
    const used = this.c.usage.used();
    const lim = this.c.usage.limit;
    const bulkMax = this.c.bulk.behaviour.dailyQueryJobLimit;
    const mm = (max: number, remaining = max) => ({ Max: max, Remaining: remaining });
    return jsonReply(200, {
      ConcurrentAsyncGetReportInstances: mm(200),
      ConcurrentSyncReportRuns: mm(20),
      DailyApiRequests: mm(lim, Math.max(0, lim - used)),
      DailyAsyncApexExecutions: mm(250000),
      DailyBulkApiBatches: mm(15000),
      DailyBulkV2QueryFileStorageMB: mm(976562),
      DailyBulkV2QueryJobs: mm(bulkMax, Math.max(0, bulkMax - this.c.bulk.jobsInLast24h())),
      DataStorageMB: mm(5),
      FileStorageMB: mm(20),
      HourlyAsyncReportRuns: mm(1200),
      HourlySyncReportRuns: mm(500),
    });
  }

  private rewriteHosts(text: string): string {
    return text.replace(/https:\/\/[A-Za-z0-9.-]+\.salesforce\.com/g, this.base);
  }

  private describeGlobal(version: string): Reply {
    const key = `__global|${version}`;
    let text = this.describeCache.get(key);
    if (!text) {
      const sobjects = [...this.c.org.objects.values()].map((m) => globalEntry(m.describe)).sort((a, b) => String(a.name).localeCompare(String(b.name)));
      text = rewriteVersion(JSON.stringify({ encoding: "UTF-8", maxBatchSize: 200, sobjects }), version);
      this.describeCache.set(key, text);
    }
    return jsonReply(200, text);
  }

  private modelOr404(name: string) {
    const m = this.c.org.model(name);
    if (!m) throw NOT_FOUND_ERR();
    return m;
  }

  private describe(name: string, version: string): Reply {
    const m = this.modelOr404(name);
    const key = `${m.name}|${version}`;
    let text = this.describeCache.get(key);
    if (!text) {
      text = this.rewriteHosts(rewriteVersion(JSON.stringify(m.describe), version));
      this.describeCache.set(key, text);
    }
    return jsonReply(200, text);
  }

  private sobjectInfo(name: string, version: string): Reply {
    const m = this.modelOr404(name);
    return jsonReply(200, rewriteVersion(JSON.stringify({ objectDescribe: globalEntry(m.describe), recentItems: [] }), version));
  }

  private retrieve(name: string, id: string, ctx: ApiCtx): Reply {
    const m = this.modelOr404(name);
    if (!isIdString(id)) throw NOT_FOUND_ERR();
    const rec = m.records.get(normalizeId(id));
    if (!rec || rec.IsDeleted === true) throw NOT_FOUND_ERR();
    const fieldsParam = ctx.url.searchParams.get("fields");
    const fields = fieldsParam
      ? fieldsParam
          .split(",")
          .map((s) => s.trim())
          .filter(Boolean)
      : m.describe.fields.map((f) => f.name);
    const cq = compileQuery(this.c.org, `SELECT ${fields.join(", ")} FROM ${m.name}`, { now: this.c.clock() });
    return jsonReply(200, renderJsonRecord(this.c.org, renderTree(cq), cq, rec, ctx.version));
  }

  private batchSize(req: IncomingMessage, cq: CompiledQuery): number {
    let size = this.c.queryPageSize;
    const h = req.headers["sforce-query-options"];
    const mm = typeof h === "string" ? /batchSize\s*=\s*(\d+)/i.exec(h) : null;
    if (mm) size = Math.min(this.c.queryBatchSizeMax, Math.max(this.c.queryBatchSizeMin, Number(mm[1])));
    if (cq.longTextFields >= 2) size = Math.min(size, 200);
    return size;
  }

  private page(cursor: Cursor | null, cq: CompiledQuery, rows: SimRecord[], offset: number, pageSize: number, version: string): string {
    const tree = renderTree(cq);
    const end = Math.min(rows.length, offset + pageSize);
    const recs: string[] = [];
    for (let i = offset; i < end; i++) recs.push(renderJsonRecord(this.c.org, tree, cq, rows[i]!, version));
    const done = end >= rows.length;
    const next = !done && cursor ? `,"nextRecordsUrl":${JSON.stringify(`/services/data/v${version}/query/${cursor.id}-${end}`)}` : "";
    return `{"totalSize":${rows.length},"done":${done}${next},"records":[${recs.join(",")}]}`;
  }

  private pruneCursors(): void {
    const now = this.c.clock();
    for (const [id, cur] of this.c.cursors) if (now - cur.lastUsed > this.c.queryLocatorTtlMs) this.c.cursors.delete(id);
  }

  private query(ctx: ApiCtx, scanAll: boolean): Reply {
    const q = ctx.url.searchParams.get("q");
    if (q === null || q.trim() === "") throw new SfError(400, "MALFORMED_QUERY", "A query string has to be specified");
    const cq = compileQuery(this.c.org, q, { now: this.c.clock() });
    const rows = executeQuery(cq, scanAll);
    if (this.c.queryTimesOut(cq.model.name, rows.length)) {
      this.c.count("faults:queryTimeout");
      throw new SfError(400, "QUERY_TIMEOUT", "Your query request was running for too long.");
    }
    if (cq.kind === "count") return jsonReply(200, `{"totalSize":${rows.length},"done":true,"records":[]}`);
    if (cq.kind === "aggregate") return jsonReply(200, `{"totalSize":1,"done":true,"records":[${aggregateRow(cq, rows)}]}`);
    const pageSize = this.batchSize(ctx.req, cq);
    let cursor: Cursor | null = null;
    if (rows.length > pageSize) {
      this.pruneCursors();
      cursor = { id: this.c.cursorIds.next("0r8"), cq, rows, pageSize, lastUsed: this.c.clock() };
      this.c.cursors.set(cursor.id, cursor);
    }
    return jsonReply(200, this.page(cursor, cq, rows, 0, pageSize, ctx.version));
  }

  private queryMore(ctx: ApiCtx, locator: string): Reply {
    const mm = /^([A-Za-z0-9]{15,18})-(\d+)$/.exec(locator);
    this.pruneCursors();
    const cursor = mm ? this.c.cursors.get(normalizeId(mm[1]!)) : undefined;
    if (!mm || !cursor) throw new SfError(400, "INVALID_QUERY_LOCATOR", "invalid query locator");
    const offset = Number(mm[2]);
    if (offset > cursor.rows.length) throw new SfError(400, "INVALID_QUERY_LOCATOR", "invalid query locator");
    cursor.lastUsed = this.c.clock();
    const h = ctx.req.headers["sforce-query-options"];
    const pageSize = typeof h === "string" ? this.batchSize(ctx.req, cursor.cq) : cursor.pageSize;
    return jsonReply(200, this.page(cursor, cursor.cq, cursor.rows, offset, pageSize, ctx.version));
  }
}
