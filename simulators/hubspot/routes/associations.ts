/**
 * HubSpot associations v4 as the simulator answers them: batch read between two types (207 with
 * NO_ASSOCIATIONS_FOUND errors, paging per input), one record's associations, and the label definitions.
 */
import type { JsonObject } from "../errors.ts";
import { notFound, validationError } from "../errors.ts";
import { decodeCursor, nextPage, type Resolved, type RouteContext, type RouteTable } from "./routing.ts";

export function associationRoutes(table: RouteTable, rc: RouteContext): void {
  const { store, typeOr400 } = rc;
  /** Resolves a route between two object types (`from`, `to` path parameters): both need their scopes. */
  const pair =
    (file: string, path: string, method: string) =>
    (p: Record<string, string | undefined>): Resolved => {
      const from = typeOr400(p.from ?? ""),
        to = typeOr400(p.to ?? "");
      return { ref: { file, path, method }, type: from, toType: to, scopeTypes: [from, to] };
    };
  table.add("POST", "/crm/v4/associations/{from}/{to}/batch/read", {
    key: "POST /crm/v4/associations/<from>/<to>/batch/read",
    resolve: pair("crm-associations-v4.json", "/crm/v4/associations/{fromObjectType}/{toObjectType}/batch/read", "POST"),
    handle: (ctx, r) => {
      const from = r.type!,
        to = r.toType!;
      const startedAt = new Date(ctx.now).toISOString();
      const inputs = (ctx.body as { inputs: Array<{ id: string; after?: string }> }).inputs;
      const max = store.settings.limits.associationsBatchMaxInputs;
      if (inputs.length > max) {
        throw validationError(`Batch input of ${inputs.length} exceeds the maximum of ${max} inputs.`, {
          context: { inputs: [String(inputs.length)], max: [String(max)] },
        });
      }
      const pageSize = store.settings.limits.associationsPageSize;
      const results: JsonObject[] = [];
      const errors: JsonObject[] = [];
      for (const input of inputs) {
        const all = from.records.get(input.id)?.archived === false ? store.associationsOf(from.name, input.id, to.name) : [];
        if (all.length === 0) {
          errors.push({
            status: "error",
            category: "OBJECT_NOT_FOUND",
            subCategory: "crm.associations.NO_ASSOCIATIONS_FOUND",
            message: `No ${to.singular} is associated with ${from.singular} ${input.id}.`,
            context: { fromObjectId: [input.id] },
            errors: [],
            links: {},
          });
          continue;
        }
        const start = input.after ? decodeCursor(input.after, "associations") : 0;
        const slice = all.slice(start, start + pageSize);
        const item: JsonObject = {
          from: { id: input.id },
          to: slice.map((a) => ({
            toObjectId: Number(a.toId),
            associationTypes: a.types.map((ty) => ({ category: ty.category, typeId: ty.typeId, label: ty.label })),
          })),
        };
        if (start + pageSize < all.length) item.paging = nextPage(start + pageSize);
        results.push(item);
      }
      const body: JsonObject = { status: "COMPLETE", results, startedAt, completedAt: new Date(ctx.now).toISOString() };
      if (errors.length > 0) {
        body.numErrors = errors.length;
        body.errors = errors;
        return { status: 207, body };
      }
      return { status: 200, body };
    },
  });
  table.add("GET", "/crm/v4/objects/{type}/{id}/associations/{to}", {
    key: "GET /crm/v4/objects/<type>/{objectId}/associations/<to>",
    resolve: (p) => {
      return pair("crm-associations-v4.json", "/crm/v4/objects/{objectType}/{objectId}/associations/{toObjectType}", "GET")({ from: p.type, to: p.to });
    },
    handle: (ctx, r) => {
      const from = r.type!,
        to = r.toType!;
      const id = ctx.params.id ?? "";
      if (!from.records.get(id)) throw notFound("resource not found", { context: { objectId: [id] } });
      const all = store.associationsOf(from.name, id, to.name);
      const limit = Math.min((ctx.query.limit as number | undefined) ?? 500, 500);
      const after = ctx.query.after as string | undefined;
      const start = after ? decodeCursor(after, "associations") : 0;
      const body: JsonObject = {
        results: all.slice(start, start + limit).map((a) => ({
          toObjectId: Number(a.toId),
          associationTypes: a.types.map((ty) => ({ category: ty.category, typeId: ty.typeId, label: ty.label })),
        })),
      };
      if (start + limit < all.length) body.paging = nextPage(start + limit);
      return { status: 200, body };
    },
  });
  for (const labelsPath of ["/crm/v4/associations/{from}/{to}/labels", "/crm/associations/v4/{from}/{to}/labels"]) {
    table.add("GET", labelsPath, {
      key: `GET ${labelsPath.replace("{from}", "<from>").replace("{to}", "<to>")}`,
      resolve: pair("crm-associations-schema-v4.json", "/crm/associations/v4/{fromObjectType}/{toObjectType}/labels", "GET"),
      handle: (_ctx, r) => ({
        status: 200,
        body: { results: store.labelsBetween(r.type!.name, r.toType!.name).map((l) => ({ category: l.category, typeId: l.typeId, label: l.label })) },
      }),
    });
  }
}
