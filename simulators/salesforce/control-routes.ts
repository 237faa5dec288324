// The Salesforce simulator's HTTP controls: the admin API (`/__admin/`, issue #4's contract: stats, record
// upserts and deletes) and the test controls under `/__simulator/` (counters, faults, tokens, API usage,
// settings, records, Bulk behaviour). Neither is counted, charged to the API budget, faulted or authenticated.

import type { IncomingMessage } from "node:http";
import { matchAdminRoute } from "../kit/admin.ts";
import type { SalesforceSimControls } from "./controls.ts";
import { DataError } from "./sim-data.ts";
import { errorReply, jsonReply, parseJsonBody, readBody } from "./reply.ts";
import type { Reply } from "./reply.ts";
import { SfError } from "./soql.ts";
import type { SimBulkSettings, SimFaultRule, SimRecord } from "./types.ts";

/** The admin API's routes and their methods. */
const ADMIN_ROUTES: Record<string, string> = { stats: "GET", "stats/reset": "POST", records: "POST", delete: "POST" };

/** `/__admin/...` (the public contract of issue #4), errors in Salesforce's shape. */
export async function adminRoute(c: SalesforceSimControls, method: string, path: string, req: IncomingMessage): Promise<Reply> {
  const fail = (status: number, message: string, errorCode: string) => jsonReply(status, [{ message, errorCode }]);
  const match = matchAdminRoute(ADMIN_ROUTES, path, method);
  if (match.kind === "unknown") return fail(404, `No admin route /__admin/${path}`, "NOT_FOUND");
  if (match.kind === "wrong-method")
    return { ...fail(405, `${method} is not allowed on /__admin/${path}`, "METHOD_NOT_ALLOWED"), headers: { Allow: match.allow } };
  try {
    if (path === "stats") return jsonReply(200, c.stats());
    if (path === "stats/reset") {
      await readBody(req);
      c.resetStats();
      return jsonReply(200, c.stats());
    }
    const body = parseJsonBody(await readBody(req));
    if (body === null || typeof body !== "object" || Array.isArray(body)) throw new DataError("the body must be a JSON object");
    const b = body as Record<string, unknown>;
    return jsonReply(200, path === "records" ? c.adminUpsert(b.object, b.records) : c.adminDelete(b.object, b.ids, b.hard));
  } catch (e) {
    if (e instanceof SfError) return errorReply(e);
    if (e instanceof DataError) return fail(400, e.message, "INVALID_ADMIN_REQUEST");
    throw e;
  }
}

/** `/__simulator/...`: the controls over HTTP (see README.md). */

export async function controlRoute(c: SalesforceSimControls, method: string, path: string, req: IncomingMessage): Promise<Reply> {
  const body = method === "GET" ? null : (parseJsonBody(await readBody(req)) as Record<string, unknown> | unknown[] | null);
  const b = (body && !Array.isArray(body) ? body : {}) as Record<string, unknown>;
  const ok = (x: unknown = { ok: true }) => jsonReply(200, x);
  let m: RegExpExecArray | null;
  try {
    if (path === "counters" && method === "GET") return ok(c.counters());
    if (path === "reset-counters" && method === "POST") {
      c.resetCounters();
      return ok();
    }
    if (path === "state" && method === "GET") return ok(c.summary());
    if (path === "faults") {
      if (method === "GET") return ok(c.faults());
      if (method === "DELETE") {
        c.clearFaults();
        return ok();
      }
      if (method === "POST") {
        const rules = Array.isArray(body) ? body : Array.isArray(b.rules) ? b.rules : [b];
        for (const r of rules) c.addFault(r as SimFaultRule);
        return ok(c.faults());
      }
    }
    if (path === "expire-tokens" && method === "POST") return ok({ expired: c.expireAllAccessTokens() });
    if (path === "revoke-refresh-token" && method === "POST") return ok({ revoked: c.revokeRefreshToken(String(b.token ?? b.refresh_token ?? "")) });
    if (path === "revoke-all-refresh-tokens" && method === "POST") return ok({ revoked: c.revokeAllRefreshTokens() });
    if (path === "tokens" && method === "POST") return ok(c.issueTokens({ user: b.user as string | undefined, clientId: b.clientId as string | undefined }));
    if (path === "api-usage") {
      if (method === "POST") {
        if (typeof b.limit === "number") c.setDailyApiLimit(b.limit);
        if (typeof b.used === "number") c.setApiUsage(b.used);
      }
      return ok(c.apiUsage());
    }
    if (path === "settings" && method === "POST") {
      if (typeof b.rotateRefreshTokens === "boolean") c.setRefreshTokenRotation(b.rotateRefreshTokens);
      if (typeof b.accessTokenLifetimeSeconds === "number") c.setAccessTokenLifetime(b.accessTokenLifetimeSeconds);
      if (typeof b.queryPageSize === "number") c.queryPageSize = b.queryPageSize;
      if (typeof b.dailyApiLimit === "number") c.setDailyApiLimit(b.dailyApiLimit);
      if ("queryTimeout" in b) c.setQueryTimeout(b.queryTimeout);
      return ok(c.summary());
    }
    if ((m = /^records\/([^/]+)$/.exec(path))) {
      if (method === "GET") return ok(c.records(m[1]!, { includeDeleted: true }));
      if (method === "POST") return ok(c.upsert(m[1]!, (Array.isArray(body) ? body : [b]) as SimRecord[]));
    }
    if ((m = /^records\/([^/]+)\/(delete|undelete)$/.exec(path)) && method === "POST") {
      const ids = (b.ids ?? []) as string[];
      const n = m[2] === "delete" ? c.delete(m[1]!, ids, { hard: b.hard === true }) : c.undelete(m[1]!, ids);
      return ok({ affected: n });
    }
    if (path === "bulk" && method === "POST") {
      c.setBulkBehaviour(b as SimBulkSettings);
      return ok(c.summary().bulk);
    }
    if (path === "bulk/fail-next" && method === "POST") {
      c.failNextBulkJobs(Number(b.count ?? 1), b.message as string | undefined);
      return ok();
    }
    if ((m = /^bulk\/jobs\/([^/]+)\/fail$/.exec(path)) && method === "POST") return ok({ failed: c.failBulkJob(m[1]!, b.message as string | undefined) });
  } catch (e) {
    if (e instanceof SfError) return errorReply(e);
    return jsonReply(400, [{ message: (e as Error).message, errorCode: "SIMULATOR_CONTROL_ERROR" }]);
  }
  return jsonReply(404, [{ message: `No simulator control ${method} /__simulator/${path}`, errorCode: "NOT_FOUND" }]);
}
