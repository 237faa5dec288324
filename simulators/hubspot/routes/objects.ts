/**
 * HubSpot CRM objects v3 as the simulator answers them: list pages (`GET /crm/v3/objects/{type}`), one record,
 * batch read (207 for missing ids) and search (filters, sorts, the 10,000-result cap, index lag, in search.ts).
 */
import type { JsonObject } from "../errors.ts";
import { notFound, validationError } from "../errors.ts";
import { readableRecord } from "../merges.ts";
import { checkSearchRequest, type SearchRequest } from "../search.ts";
import type { ObjectType, RecordVersion, Store, StoredRecord } from "../store.ts";
import { decodeCursor, nextPage, stringArray, type RouteContext, type RouteTable } from "./routing.ts";

/** HubSpot reads at most 50 records per page when propertiesWithHistory is asked. */
const HISTORY_MAX_LIMIT = 50;

function lowerBound(list: StoredRecord[], idNum: number): number {
  let lo = 0,
    hi = list.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if ((list[mid]?.idNum ?? 0) < idNum) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

function selectProperties(t: ObjectType, v: RecordVersion, requested: string[] | undefined): Record<string, string | null> {
  const names = new Set<string>();
  const wanted = (requested ?? []).filter((p) => p !== "");
  if (wanted.length === 0) {
    for (const p of t.defaultProperties) if (t.properties.has(p)) names.add(p);
  } else {
    for (const p of wanted) if (t.properties.has(p)) names.add(p);
  }
  names.add("hs_object_id");
  names.add(t.createdProperty);
  names.add(t.lastModifiedProperty);
  const out: Record<string, string | null> = {};
  for (const n of [...names].sort()) out[n] = v.properties[n] ?? null;
  return out;
}

function publicObject(t: ObjectType, rec: StoredRecord, v: RecordVersion, requested: string[] | undefined): JsonObject {
  const o: JsonObject = { id: rec.id, properties: selectProperties(t, v, requested), createdAt: v.createdAt, updatedAt: v.updatedAt, archived: v.archived };
  if (v.archived && v.archivedAt) o.archivedAt = v.archivedAt;
  return o;
}

/** The simulator keeps no history: each asked property's current value, stamped with updatedAt. */
function historyOf(rec: StoredRecord, names: string[]): JsonObject {
  const out: JsonObject = {};
  for (const n of names) {
    const v = rec.properties[n];
    out[n] = v === null || v === undefined ? [] : [{ value: v, timestamp: rec.updatedAt, sourceType: "CRM_UI" }];
  }
  return out;
}

/** A record's v3 `associations` towards the asked types (`{"companies": {"results": [{id, type}]}}`), or undefined when none. */
function v3Associations(store: Store, t: ObjectType, rec: StoredRecord, others: ObjectType[]): JsonObject | undefined {
  const assocs: JsonObject = {};
  for (const other of others) {
    const list = store.associationsOf(t.name, rec.id, other.name);
    if (list.length === 0) continue;
    assocs[other.custom ? other.schema!.fullyQualifiedName : other.name] = {
      results: list.flatMap((a) => a.types.map((ty) => ({ id: a.toId, type: store.v3TypeName(t, other, ty) }))),
    };
  }
  return Object.keys(assocs).length > 0 ? assocs : undefined;
}

export function objectRoutes(table: RouteTable, rc: RouteContext): void {
  const { store, typeOr400, objectsOp, genericScopes, searchHits } = rc;
  table.add("GET", "/crm/v3/objects/{type}", {
    key: "GET /crm/v3/objects/<type>",
    resolve: (p) => {
      const t = typeOr400(p.type ?? "");
      return { ref: objectsOp(t, "", "GET"), type: t, scopeTypes: genericScopes(t) };
    },
    handle: (ctx, r) => {
      const t = r.type!;
      const lim = store.settings.limits;
      let limit = (ctx.query.limit as number | undefined) ?? 10;
      if (limit < 1) throw validationError(`limit must be at least 1 (got ${limit}).`, { context: { limit: [String(limit)] } });
      if (limit > lim.listMaxLimit) {
        if (lim.listLimitBehavior === "reject")
          throw validationError(`limit must be at most ${lim.listMaxLimit} (got ${limit}).`, { context: { limit: [String(limit)] } });
        limit = lim.listMaxLimit;
      }
      const withHistory = (stringArray(ctx.query.propertiesWithHistory) ?? []).filter((p) => t.properties.has(p));
      if (withHistory.length > 0) limit = Math.min(limit, HISTORY_MAX_LIMIT);
      const archived = ctx.query.archived === true;
      const after = ctx.query.after as string | undefined;
      const sorted = store.sorted(t);
      let i = after ? lowerBound(sorted, decodeCursor(after, "list")) : 0;
      const page: StoredRecord[] = [];
      let next: StoredRecord | undefined;
      for (; i < sorted.length; i++) {
        const rec = sorted[i]!;
        if (rec.archived !== archived) continue;
        if (page.length === limit) {
          next = rec;
          break;
        }
        page.push(rec);
      }
      const props = stringArray(ctx.query.properties);
      const assocTypes = (stringArray(ctx.query.associations) ?? []).map((a) => store.resolveType(a)).filter((x): x is ObjectType => x !== undefined);
      const results = page.map((rec) => {
        const o = publicObject(t, rec, rec, props);
        if (withHistory.length > 0) o.propertiesWithHistory = historyOf(rec, withHistory);
        const assocs = v3Associations(store, t, rec, assocTypes);
        if (assocs) o.associations = assocs;
        return o;
      });
      const body: JsonObject = { results };
      if (next) body.paging = nextPage(next.id);
      return { status: 200, body };
    },
  });

  table.add("GET", "/crm/v3/objects/{type}/{id}", {
    key: "GET /crm/v3/objects/<type>/{id}",
    resolve: (p) => {
      const t = typeOr400(p.type ?? "");
      return { ref: objectsOp(t, `/{${t.idParam}}`, "GET"), type: t, scopeTypes: genericScopes(t) };
    },
    handle: (ctx, r) => {
      const t = r.type!;
      const id = decodeURIComponent(ctx.params.id ?? "");
      const idProperty = ctx.query.idProperty as string | undefined;
      const archived = ctx.query.archived === true;
      let rec: StoredRecord | undefined;
      if (idProperty && idProperty !== "hs_object_id") {
        rec = [...t.records.values()].find((x) => x.properties[idProperty] === id);
      } else {
        if (!/^\d+$/.test(id)) throw notFound("Object not found.  objectId are usually numeric.", { context: { id: [id] } });
        // A merged id answers the record it was merged into (its own id in the answer).
        rec = readableRecord(t, id);
      }
      if (!rec || rec.archived !== archived) throw notFound("resource not found", { context: { id: [id] } });
      const o = publicObject(t, rec, rec, stringArray(ctx.query.properties));
      const others = (stringArray(ctx.query.associations) ?? []).map((name) => store.resolveType(name)).filter((x): x is ObjectType => x !== undefined);
      const assocs = v3Associations(store, t, rec, others);
      if (assocs) o.associations = assocs;
      return { status: 200, body: o };
    },
  });

  table.add("POST", "/crm/v3/objects/{type}/batch/read", {
    key: "POST /crm/v3/objects/<type>/batch/read",
    resolve: (p) => {
      const t = typeOr400(p.type ?? "");
      return { ref: objectsOp(t, "/batch/read", "POST"), type: t, scopeTypes: genericScopes(t) };
    },
    handle: (ctx, r) => {
      const t = r.type!;
      const startedAt = new Date(ctx.now).toISOString();
      const body = ctx.body as { inputs: Array<{ id: string }>; properties?: string[]; idProperty?: string };
      const max = store.settings.limits.batchReadMaxInputs;
      if (body.inputs.length > max) {
        throw validationError(`Batch input of ${body.inputs.length} exceeds the maximum of ${max} inputs.`, {
          context: { inputs: [String(body.inputs.length)], max: [String(max)] },
        });
      }
      const archived = ctx.query.archived === true;
      const results: JsonObject[] = [];
      const missing: string[] = [];
      const seen = new Set<string>();
      for (const input of body.inputs) {
        if (seen.has(input.id)) continue;
        seen.add(input.id);
        let rec: StoredRecord | undefined;
        if (body.idProperty && body.idProperty !== "hs_object_id") {
          rec = [...t.records.values()].find((x) => x.properties[body.idProperty!] === input.id);
        } else {
          rec = readableRecord(t, input.id);
        }
        if (!rec || rec.archived !== archived) {
          missing.push(input.id);
          continue;
        }
        results.push(publicObject(t, rec, rec, body.properties));
      }
      const out: JsonObject = { status: "COMPLETE", results, startedAt, completedAt: new Date(ctx.now).toISOString() };
      if (missing.length > 0) {
        out.numErrors = 1;
        out.errors = [
          {
            status: "error",
            category: "OBJECT_NOT_FOUND",
            message: `Could not get some ${t.singular.toUpperCase()} objects, they may be deleted or not exist. Check that ids are valid.`,
            context: { ids: missing },
            errors: [],
            links: {},
          },
        ];
        return { status: 207, body: out };
      }
      return { status: 200, body: out };
    },
  });

  table.add("POST", "/crm/v3/objects/{type}/search", {
    key: "POST /crm/v3/objects/<type>/search",
    resolve: (p) => {
      const t = typeOr400(p.type ?? "");
      return { ref: objectsOp(t, "/search", "POST"), type: t, scopeTypes: genericScopes(t), search: true };
    },
    handle: (ctx, r) => {
      const t = r.type!;
      const req = (ctx.body ?? {}) as SearchRequest;
      const { offset, limit } = checkSearchRequest(req, t, store);
      const hits = searchHits(t, req, ctx.now);
      const end = Math.min(offset + limit, hits.length, store.settings.search.maxResults);
      const results = hits.slice(offset, Math.max(offset, end)).map((h) => publicObject(t, h.rec, h.version, req.properties));
      const body: JsonObject = { total: hits.length, results };
      const nextOffset = Math.max(end, offset);
      if (limit > 0 && nextOffset < hits.length) body.paging = { next: { after: String(nextOffset) } };
      return { status: 200, body };
    },
  });
}
