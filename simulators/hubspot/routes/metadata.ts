/**
 * The HubSpot simulator's metadata endpoints: properties, owners, custom object schemas (and HubSpot's
 * /crm/v3/schemas alias), pipelines and their stages, and the account details.
 */
import type { JsonObject } from "../errors.ts";
import { notFound, validationError } from "../errors.ts";
import type { OpRef } from "../spec.ts";
import type { ObjectType, Owner, Pipeline, Property } from "../store.ts";
import { zonedParts } from "../../../lib/zoned-time.ts";
import { decodeCursor, nextPage, type RouteContext, type RouteTable } from "./routing.ts";

function publicProperty(p: Property): JsonObject {
  const out: JsonObject = { ...p };
  return out;
}

function publicOwner(o: Owner): JsonObject {
  const out: JsonObject = { id: o.id };
  if (o.email !== undefined) out.email = o.email;
  if (o.firstName !== undefined) out.firstName = o.firstName;
  if (o.lastName !== undefined) out.lastName = o.lastName;
  out.userId = o.userId;
  if (o.userIdIncludingInactive !== undefined) out.userIdIncludingInactive = o.userIdIncludingInactive;
  out.type = o.type;
  out.createdAt = o.createdAt;
  out.updatedAt = o.updatedAt;
  out.archived = o.archived;
  out.teams = o.teams;
  return out;
}

/** Offset of a time zone from UTC at an instant, in ms. */
function utcOffsetMs(timeZone: string, at: number): number {
  const z = zonedParts(timeZone, at);
  const local = Date.UTC(z.year, z.month - 1, z.day, z.hour, z.minute, z.second);
  return local - Math.floor(at / 1000) * 1000;
}

export function metadataRoutes(table: RouteTable, rc: RouteContext): void {
  const { store, typeOr400 } = rc;
  // Properties
  const propertiesOp: OpRef = { file: "crm-properties-v3.json", path: "/crm/v3/properties/{objectType}", method: "GET" };
  table.add("GET", "/crm/v3/properties/{type}", {
    key: "GET /crm/v3/properties/<type>",
    resolve: (p) => {
      const t = typeOr400(p.type ?? "");
      return { ref: propertiesOp, type: t, scopeTypes: [t] };
    },
    handle: (ctx, r) => {
      const t = r.type!;
      const archived = ctx.query.archived === true;
      const names =
        typeof ctx.query.properties === "string"
          ? new Set(
              ctx.query.properties
                .split(",")
                .map((s) => s.trim())
                .filter(Boolean),
            )
          : undefined;
      const sensitivity = (ctx.query.dataSensitivity as string | undefined) ?? "non_sensitive";
      const results = [...t.properties.values()]
        .filter((p) => p.archived === archived && p.dataSensitivity === sensitivity && (!names || names.size === 0 || names.has(p.name)))
        .map(publicProperty);
      return { status: 200, body: { results } };
    },
  });
  table.add("GET", "/crm/v3/properties/{type}/{name}", {
    key: "GET /crm/v3/properties/<type>/{propertyName}",
    resolve: (p) => {
      const t = typeOr400(p.type ?? "");
      return { ref: { file: "crm-properties-v3.json", path: "/crm/v3/properties/{objectType}/{propertyName}", method: "GET" }, type: t, scopeTypes: [t] };
    },
    handle: (ctx, r) => {
      const p = r.type!.properties.get(decodeURIComponent(ctx.params.name ?? ""));
      if (!p || p.archived !== (ctx.query.archived === true))
        throw notFound(`Property ${ctx.params.name} does not exist`, { context: { propertyName: [ctx.params.name ?? ""] } });
      return { status: 200, body: publicProperty(p) };
    },
  });

  // Owners
  const ownersOp: OpRef = { file: "crm-owners-v3.json", path: "/crm/v3/owners", method: "GET" };
  table.add("GET", "/crm/v3/owners", {
    resolve: () => ({ ref: ownersOp }),
    handle: (ctx) => {
      const archived = ctx.query.archived === true;
      const email = ctx.query.email as string | undefined;
      const limit = Math.min((ctx.query.limit as number | undefined) ?? 100, store.settings.limits.ownersMaxLimit);
      if (limit < 1) throw validationError(`limit must be at least 1 (got ${limit}).`);
      const after = ctx.query.after as string | undefined;
      const from = after ? decodeCursor(after, "owners") : 0;
      const all = store.owners
        .filter((o) => o.archived === archived && (!email || o.email?.toLowerCase() === email.toLowerCase()))
        .sort((a, b) => Number(a.id) - Number(b.id))
        .filter((o) => Number(o.id) >= from);
      const page = all.slice(0, limit);
      const body: JsonObject = { results: page.map(publicOwner) };
      const next = all[limit];
      if (next) body.paging = nextPage(next.id);
      return { status: 200, body };
    },
  });
  table.add("GET", "/crm/v3/owners/{ownerId}", {
    key: "GET /crm/v3/owners/{ownerId}",
    resolve: () => ({ ref: { file: "crm-owners-v3.json", path: "/crm/v3/owners/{ownerId}", method: "GET" } }),
    handle: (ctx) => {
      const id = ctx.params.ownerId ?? "";
      const byUser = ctx.query.idProperty === "userId";
      const archived = ctx.query.archived === true;
      const o = store.owners.find((x) => (byUser ? String(x.userIdIncludingInactive ?? x.userId) === id : x.id === id) && x.archived === archived);
      if (!o) throw notFound(`Owner ${id} not found.`, { context: { ownerId: [id] } });
      return { status: 200, body: publicOwner(o) };
    },
  });

  // Custom object schemas (the client calls /crm-object-schemas/v3; /crm/v3/schemas is HubSpot's alias)
  const schemaBody = (t: ObjectType, q: Record<string, unknown>): JsonObject => {
    const s = t.schema!;
    const out: JsonObject = {
      id: t.objectTypeId.split("-")[1] ?? t.objectTypeId,
      objectTypeId: t.objectTypeId,
      name: t.name,
      fullyQualifiedName: s.fullyQualifiedName,
      labels: s.labels,
      primaryDisplayProperty: s.primaryDisplayProperty,
      secondaryDisplayProperties: s.secondaryDisplayProperties ?? [],
      requiredProperties: s.requiredProperties ?? [s.primaryDisplayProperty],
      searchableProperties: s.searchableProperties ?? [s.primaryDisplayProperty],
      properties: q.includePropertyDefinitions === false ? [] : [...t.properties.values()].filter((p) => !p.archived).map(publicProperty),
      associations:
        q.includeAssociationDefinitions === false
          ? []
          : s.associationDefs.map((a) => ({
              id: a.id,
              name: a.name,
              fromObjectTypeId: a.fromObjectTypeId,
              toObjectTypeId: a.toObjectTypeId,
              createdAt: s.createdAt,
              updatedAt: s.updatedAt,
            })),
      archived: s.archived,
    };
    if (s.description !== undefined) out.description = s.description;
    if (q.includeAuditMetadata !== false) {
      out.createdAt = s.createdAt;
      out.updatedAt = s.updatedAt;
    }
    return out;
  };
  for (const base of ["/crm-object-schemas/v3/schemas", "/crm/v3/schemas"]) {
    table.add("GET", base, {
      resolve: () => ({ ref: { file: "crm-schemas-v3.json", path: "/crm-object-schemas/v3/schemas", method: "GET" } }),
      handle: (ctx) => {
        const archived = ctx.query.archived === true;
        const results = [...store.types.values()].filter((t) => t.schema && t.schema.archived === archived).map((t) => schemaBody(t, ctx.query));
        return { status: 200, body: { results } };
      },
    });
    table.add("GET", `${base}/{type}`, {
      key: `GET ${base}/<type>`,
      resolve: () => ({ ref: { file: "crm-schemas-v3.json", path: "/crm-object-schemas/v3/schemas/{objectType}", method: "GET" } }),
      handle: (ctx) => {
        const t = store.resolveType(ctx.params.type ?? "");
        if (!t?.schema) throw notFound(`Unable to find object type ${ctx.params.type}`, { context: { objectType: [ctx.params.type ?? ""] } });
        return { status: 200, body: schemaBody(t, ctx.query) };
      },
    });
  }

  // Account details (GET /account-info/v3/details; no copied spec describes it, so no spec checks)
  table.add("GET", "/account-info/v3/details", {
    resolve: () => ({}),
    handle: (ctx) => {
      const tz = store.settings.timeZone;
      const offsetMs = utcOffsetMs(tz, ctx.now);
      const sign = offsetMs < 0 ? "-" : "+";
      const abs = Math.abs(offsetMs) / 60_000;
      return {
        status: 200,
        body: {
          portalId: store.settings.portalId,
          accountType: "STANDARD",
          timeZone: tz,
          companyCurrency: store.settings.companyCurrency,
          additionalCurrencies: store.settings.additionalCurrencies,
          utcOffset: `${sign}${String(Math.floor(abs / 60)).padStart(2, "0")}:${String(abs % 60).padStart(2, "0")}`,
          utcOffsetMilliseconds: offsetMs,
          uiDomain: "app.hubspot.com",
          dataHostingLocation: "na1",
        },
      };
    },
  });

  // Pipelines
  const pipelineBody = (p: Pipeline): JsonObject => ({ ...p, stages: p.stages.map((s) => ({ ...s })) });
  const pipelineOr404 = (t: ObjectType, id: string | undefined): Pipeline => {
    const p = (store.pipelines.get(t.name) ?? []).find((x) => x.id === id);
    if (!p) throw notFound(`Unable to find pipeline ${id}`, { context: { pipelineId: [id ?? ""] } });
    return p;
  };
  table.add("GET", "/crm/v3/pipelines/{type}", {
    key: "GET /crm/v3/pipelines/<type>",
    resolve: (p) => {
      const t = typeOr400(p.type ?? "");
      return { ref: { file: "crm-pipelines-v3.json", path: "/crm/v3/pipelines/{objectType}", method: "GET" }, type: t, scopeTypes: [t] };
    },
    handle: (_ctx, r) => ({ status: 200, body: { results: (store.pipelines.get(r.type!.name) ?? []).filter((p) => !p.archived).map(pipelineBody) } }),
  });
  table.add("GET", "/crm/v3/pipelines/{type}/{pipelineId}", {
    key: "GET /crm/v3/pipelines/<type>/{pipelineId}",
    resolve: (p) => {
      const t = typeOr400(p.type ?? "");
      return { ref: { file: "crm-pipelines-v3.json", path: "/crm/v3/pipelines/{objectType}/{pipelineId}", method: "GET" }, type: t, scopeTypes: [t] };
    },
    handle: (ctx, r) => {
      const p = pipelineOr404(r.type!, ctx.params.pipelineId);
      return { status: 200, body: pipelineBody(p) };
    },
  });
  table.add("GET", "/crm/v3/pipelines/{type}/{pipelineId}/stages", {
    key: "GET /crm/v3/pipelines/<type>/{pipelineId}/stages",
    resolve: (p) => {
      const t = typeOr400(p.type ?? "");
      return { ref: { file: "crm-pipelines-v3.json", path: "/crm/v3/pipelines/{objectType}/{pipelineId}/stages", method: "GET" }, type: t, scopeTypes: [t] };
    },
    handle: (ctx, r) => {
      const p = pipelineOr404(r.type!, ctx.params.pipelineId);
      return { status: 200, body: { results: p.stages.filter((s) => !s.archived) } };
    },
  });
}
