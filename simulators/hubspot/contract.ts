/**
 * The public data-file format of issue #5 (`HubSpotContractData`, see README.md) converted to the
 * simulator's own format (`HubSpotSimData`). `normalizeHubSpotData` accepts either and is idempotent:
 * a document that uses none of the public format's distinguishing features is returned as it is.
 *
 * Public format → simulator format:
 *  - `portal.searchIndexDelayMs` → `portal.search.indexDelayMs`; `portal.rateLimits.perTenSeconds` → `tenSecondly`;
 *  - `apps[]` → `portal.oauth` (the first app is the main client unless `portal.oauth.clientId` is set; the others
 *    go to `portal.oauth.apps`), each app's `refreshToken` → `portal.oauth.refreshTokens` with the app's scopes;
 *  - `objects.<type>: [records]` → `objects.<type>.records`, `properties.<type>` → `objects.<type>.properties`;
 *  - `schemas[]` as GET /crm/v3/schemas returns them: `properties` → the type's properties, `associations`
 *    (definitions) → `associatedObjects` + the association type ids, `id` → `objectTypeId` when absent;
 *  - `associations: [{ fromType, fromId, toType, toId, associationTypeId }]` → `{ from, to, types }`;
 *  - owners: numeric ids become strings; an archived owner's `userId` moves to `userIdIncludingInactive`.
 * Missing sections get HubSpot's defaults: every standard object type exists with its standard properties
 * (`STANDARD_PROPERTIES`, merged under the given ones), currency and pipeline/stage options are filled from the
 * portal's currencies, the records' currency codes and the pipelines, deals get the default "Sales Pipeline".
 */
import { DEFAULT_DEAL_PIPELINE, GENERIC_STANDARD_TYPES, STANDARD_PROPERTIES, STANDARD_TYPES, TYPE_ALIASES } from "./catalog.ts";
import { DataError } from "./store.ts";
import type {
  AssociationData,
  ContractApp,
  ContractAssociation,
  CustomObjectSchemaData,
  HubSpotContractData,
  HubSpotSimData,
  ObjectTypeData,
  OwnerData,
  PipelineData,
  PortalSettings,
  PropertyData,
  RecordData,
} from "./types.ts";

type Obj = Record<string, unknown>;

function isObj(v: unknown): v is Obj {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}

/** True when the document uses a feature only the public format (issue #5) has. */
function isContractFormat(input: unknown): boolean {
  if (!isObj(input)) return false;
  if (input.apps !== undefined || input.properties !== undefined) return true;
  if (isObj(input.objects) && Object.values(input.objects).some((v) => Array.isArray(v))) return true;
  if (Array.isArray(input.associations) && input.associations.some((a) => isObj(a) && "fromType" in a)) return true;
  const p = input.portal;
  return isObj(p) && (p.searchIndexDelayMs !== undefined || (isObj(p.rateLimits) && p.rateLimits.perTenSeconds !== undefined));
}

function idString(v: unknown, where: string): string {
  if (typeof v === "number" && Number.isInteger(v) && v >= 0) return String(v);
  if (typeof v === "string" && /^\d+$/.test(v)) return v;
  throw new DataError(`${where} must be a numeric id (got ${JSON.stringify(v)})`);
}

/** Converts a flat association (public format) to the simulator's shape; type names are resolved later by the Store. */
function associationFromContract(a: ContractAssociation, where: string, canonical: (t: string) => string = (t) => t): AssociationData {
  if (!isObj(a) || typeof a.fromType !== "string" || typeof a.toType !== "string") throw new DataError(`${where} needs fromType, fromId, toType and toId`);
  const out: AssociationData = {
    from: { type: canonical(a.fromType), id: idString(a.fromId, `${where}.fromId`) },
    to: { type: canonical(a.toType), id: idString(a.toId, `${where}.toId`) },
  };
  if (a.associationTypeId !== undefined && a.associationTypeId !== null) {
    if (typeof a.associationTypeId !== "number" || !Number.isInteger(a.associationTypeId)) throw new DataError(`${where}.associationTypeId must be an integer`);
    const t: NonNullable<AssociationData["types"]>[number] = { typeId: a.associationTypeId };
    if (a.category !== undefined) t.category = a.category;
    if (a.label !== undefined) t.label = a.label;
    out.types = [t];
  }
  return out;
}

function schemaFromContract(raw: unknown, i: number, props: Map<string, PropertyData[]>): CustomObjectSchemaData {
  if (!isObj(raw) || typeof raw.name !== "string" || raw.name === "") throw new DataError(`schemas[${i}] needs a name`);
  const name = raw.name;
  const objectTypeId = typeof raw.objectTypeId === "string" ? raw.objectTypeId : raw.id !== undefined ? `2-${String(raw.id)}` : undefined;
  if (objectTypeId === undefined) throw new DataError(`schemas[${i}] needs an objectTypeId like "2-1234567" (or an id)`);
  const labels =
    isObj(raw.labels) && typeof raw.labels.singular === "string" && typeof raw.labels.plural === "string"
      ? { singular: raw.labels.singular, plural: raw.labels.plural }
      : { singular: name, plural: name };
  const required = Array.isArray(raw.requiredProperties) ? raw.requiredProperties.map(String) : undefined;
  const out: CustomObjectSchemaData = {
    name,
    objectTypeId,
    labels,
    primaryDisplayProperty: typeof raw.primaryDisplayProperty === "string" ? raw.primaryDisplayProperty : (required?.[0] ?? "hs_object_id"),
  };
  if (required) out.requiredProperties = required;
  for (const k of ["secondaryDisplayProperties", "searchableProperties", "associatedObjects"] as const) {
    if (Array.isArray(raw[k])) out[k] = (raw[k] as unknown[]).map(String);
  }
  for (const k of ["description", "fullyQualifiedName", "createdAt", "updatedAt"] as const) {
    if (typeof raw[k] === "string") out[k] = raw[k] as string;
  }
  if (typeof raw.archived === "boolean") out.archived = raw.archived;
  if (isObj(raw.associationTypeIds)) out.associationTypeIds = raw.associationTypeIds as Record<string, number>;
  if (isObj(raw.inverseAssociationTypeIds)) out.inverseAssociationTypeIds = raw.inverseAssociationTypeIds as Record<string, number>;
  if (Array.isArray(raw.associations)) {
    const others: string[] = [];
    const forward: Record<string, number> = { ...(out.associationTypeIds ?? {}) };
    const inverse: Record<string, number> = { ...(out.inverseAssociationTypeIds ?? {}) };
    raw.associations.forEach((a, j) => {
      if (!isObj(a) || typeof a.fromObjectTypeId !== "string" || typeof a.toObjectTypeId !== "string") {
        throw new DataError(`schemas[${i}].associations[${j}] needs fromObjectTypeId and toObjectTypeId`);
      }
      const typeId = a.id === undefined ? undefined : Number(a.id);
      if (typeId !== undefined && !Number.isInteger(typeId)) throw new DataError(`schemas[${i}].associations[${j}].id must be an association type id`);
      const other = a.fromObjectTypeId === objectTypeId ? a.toObjectTypeId : a.toObjectTypeId === objectTypeId ? a.fromObjectTypeId : undefined;
      if (other === undefined) throw new DataError(`schemas[${i}].associations[${j}] does not involve ${objectTypeId}`);
      if (!others.includes(other)) others.push(other);
      if (typeId !== undefined) (a.fromObjectTypeId === objectTypeId ? forward : inverse)[other] = typeId;
    });
    out.associatedObjects ??= others;
    if (Object.keys(forward).length > 0) out.associationTypeIds = forward;
    if (Object.keys(inverse).length > 0) out.inverseAssociationTypeIds = inverse;
  }
  if (Array.isArray(raw.properties)) props.set(name, raw.properties as PropertyData[]);
  return out;
}

function recordFromContract(r: unknown, where: string): RecordData {
  if (!isObj(r)) throw new DataError(`${where} must be a record object`);
  if (r.properties !== undefined && !isObj(r.properties)) throw new DataError(`${where}.properties must be an object`);
  const out: RecordData = { id: idString(r.id, `${where}.id`), properties: (r.properties ?? {}) as RecordData["properties"] };
  for (const k of ["createdAt", "updatedAt", "archivedAt"] as const) if (typeof r[k] === "string") out[k] = r[k] as string;
  if (typeof r.archived === "boolean") out.archived = r.archived;
  return out;
}

function ownerFromContract(o: unknown, where: string): OwnerData {
  if (!isObj(o)) throw new DataError(`${where} must be an owner object`);
  const out = { ...o, id: idString(o.id, `${where}.id`) } as unknown as OwnerData;
  if (out.archived === true && out.userId !== null && out.userId !== undefined) {
    out.userIdIncludingInactive ??= out.userId;
    out.userId = null;
  }
  return out;
}

/** Merges property definitions by name; later lists win. */
function mergeProperties(...lists: Array<PropertyData[] | undefined>): PropertyData[] {
  const byName = new Map<string, PropertyData>();
  for (const list of lists) for (const p of list ?? []) if (isObj(p) && typeof p.name === "string") byName.set(p.name, p);
  return [...byName.values()];
}

export function normalizeHubSpotData(input: HubSpotSimData | HubSpotContractData): HubSpotSimData {
  if (!isContractFormat(input)) return input as HubSpotSimData;
  const c = input as HubSpotContractData;

  // portal (aliases)
  const portal: PortalSettings = { ...(c.portal ?? {}) };
  if (portal.searchIndexDelayMs !== undefined) {
    portal.search = { indexDelayMs: portal.searchIndexDelayMs, ...(portal.search ?? {}) };
    delete portal.searchIndexDelayMs;
  }
  if (portal.rateLimits?.perTenSeconds !== undefined) {
    const { perTenSeconds, ...rest } = portal.rateLimits;
    portal.rateLimits = { tenSecondly: perTenSeconds, ...rest };
  }

  // apps
  if (c.apps !== undefined) {
    if (!Array.isArray(c.apps)) throw new DataError("apps must be an array of { clientId, clientSecret, refreshToken?, scopes? }");
    const oauth = { ...(portal.oauth ?? {}) };
    const apps = [...(oauth.apps ?? [])];
    const refreshTokens = [...(oauth.refreshTokens ?? [])];
    c.apps.forEach((a: ContractApp, i) => {
      if (!isObj(a) || typeof a.clientId !== "string" || a.clientId === "" || typeof a.clientSecret !== "string") {
        throw new DataError(`apps[${i}] needs a string clientId and clientSecret`);
      }
      if (a.scopes !== undefined && (!Array.isArray(a.scopes) || a.scopes.some((s) => typeof s !== "string")))
        throw new DataError(`apps[${i}].scopes must be an array of scope names`);
      if (oauth.clientId === undefined) {
        oauth.clientId = a.clientId;
        oauth.clientSecret = a.clientSecret;
        if (a.redirectUri !== undefined && oauth.redirectUri === undefined) oauth.redirectUri = a.redirectUri;
        if (a.redirectUris !== undefined && oauth.redirectUris === undefined) oauth.redirectUris = a.redirectUris;
        if (a.requiredScopes !== undefined && oauth.requiredScopes === undefined) oauth.requiredScopes = a.requiredScopes;
      } else if (a.clientId !== oauth.clientId && !apps.some((x) => x.clientId === a.clientId)) {
        apps.push({
          clientId: a.clientId,
          clientSecret: a.clientSecret,
          ...(a.redirectUri !== undefined ? { redirectUri: a.redirectUri } : {}),
          ...(a.redirectUris !== undefined ? { redirectUris: a.redirectUris } : {}),
          ...(a.requiredScopes !== undefined ? { requiredScopes: a.requiredScopes } : {}),
        });
      }
      if (a.refreshToken !== undefined && a.refreshToken !== null) {
        if (typeof a.refreshToken !== "string" || a.refreshToken === "") throw new DataError(`apps[${i}].refreshToken must be a non-empty string`);
        refreshTokens.push({ token: a.refreshToken, clientId: a.clientId, ...(a.scopes !== undefined ? { scopes: [...a.scopes] } : {}) });
      }
    });
    if (apps.length > 0) oauth.apps = apps;
    oauth.refreshTokens = refreshTokens;
    portal.oauth = oauth;
  }

  // schemas (custom objects) and the type-name resolver they feed
  if (c.schemas !== undefined && !Array.isArray(c.schemas)) throw new DataError("schemas must be an array");
  const schemaProps = new Map<string, PropertyData[]>();
  const schemas = (c.schemas ?? []).map((s, i) => schemaFromContract(s, i, schemaProps));
  const portalId = portal.portalId ?? 12345678;
  const canonical = (key: string): string => {
    const lower = key.toLowerCase();
    const std = [...STANDARD_TYPES, ...GENERIC_STANDARD_TYPES].find((s) => s.name === lower || s.objectTypeId === key);
    if (std) return std.name;
    const alias = TYPE_ALIASES[lower];
    if (alias) return alias;
    const custom = schemas.find(
      (s) => s.name === key || s.objectTypeId === key || `p_${s.name}` === lower || (s.fullyQualifiedName ?? `p${portalId}_${s.name}`).toLowerCase() === lower,
    );
    return custom ? custom.name : key;
  };

  // objects and properties
  if (c.objects !== undefined && !isObj(c.objects)) throw new DataError("objects must be an object keyed by object type");
  if (c.properties !== undefined && !isObj(c.properties)) throw new DataError("properties must be an object keyed by object type");
  const objects: Record<string, ObjectTypeData> = {};
  for (const [key, val] of Object.entries(c.objects ?? {})) {
    const name = canonical(key);
    if (objects[name]) throw new DataError(`objects.${key}: object type ${name} is given twice`);
    if (Array.isArray(val)) objects[name] = { records: val.map((r, i) => recordFromContract(r, `objects.${key}[${i}]`)) };
    else if (isObj(val)) objects[name] = { ...(val as ObjectTypeData) };
    else throw new DataError(`objects.${key} must be an array of records`);
  }
  for (const t of STANDARD_TYPES) objects[t.name] ??= { records: [] };
  for (const s of schemas) objects[s.name] ??= { records: [] };
  const given = new Map<string, PropertyData[]>();
  for (const [key, list] of Object.entries(c.properties ?? {})) {
    if (!Array.isArray(list)) throw new DataError(`properties.${key} must be an array of property definitions`);
    const name = canonical(key);
    given.set(name, mergeProperties(given.get(name), list));
  }

  // pipelines (deals always have one)
  if (c.pipelines !== undefined && !isObj(c.pipelines)) throw new DataError("pipelines must be an object keyed by object type");
  const pipelines: Record<string, PipelineData[]> = {};
  for (const [key, list] of Object.entries(c.pipelines ?? {})) pipelines[canonical(key)] = list;
  pipelines.deals ??= [structuredClone(DEFAULT_DEAL_PIPELINE)];

  // currencies in use: the portal's, then the records'
  const currencies = new Set<string>([portal.companyCurrency ?? "USD", ...(portal.additionalCurrencies ?? [])]);
  for (const [type, prop] of [
    ["deals", "deal_currency_code"],
    ["line_items", "hs_line_item_currency_code"],
  ] as const) {
    for (const r of objects[type]?.records ?? []) {
      const v = r.properties?.[prop];
      if (typeof v === "string" && v !== "") currencies.add(v);
    }
  }
  const fillOptions = (type: string, p: PropertyData): PropertyData => {
    if ((p.options ?? []).length > 0) return p;
    if (p.name === "deal_currency_code" || p.name === "hs_line_item_currency_code") {
      return { ...p, options: [...currencies].map((code, i) => ({ label: code, value: code, displayOrder: i })) };
    }
    const typePipelines = pipelines[type];
    if (p.name === "pipeline" && typePipelines) return { ...p, options: typePipelines.map((x, i) => ({ label: x.label, value: x.id, displayOrder: i })) };
    if ((p.name === "dealstage" || p.name === "hs_pipeline_stage") && typePipelines) {
      const seen = new Set<string>();
      const options = typePipelines
        .flatMap((x) => x.stages)
        .filter((s) => !seen.has(s.id) && seen.add(s.id))
        .map((s, i) => ({ label: s.label, value: s.id, displayOrder: i }));
      return { ...p, options };
    }
    return p;
  };
  for (const [name, def] of Object.entries(objects)) {
    const standard = (STANDARD_PROPERTIES[name] ?? []).map(
      (p): PropertyData => ({
        ...p,
        hubspotDefined: true,
        modificationMetadata: { archivable: false, readOnlyDefinition: true, readOnlyValue: p.calculated === true },
      }),
    );
    const merged = mergeProperties(standard, schemaProps.get(name), given.get(name), def.properties).map((p) => fillOptions(name, p));
    def.properties = merged;
  }
  for (const name of given.keys()) {
    if (!objects[name]) throw new DataError(`properties.${name}: unknown object type (not standard, no schema)`);
  }

  // owners, associations
  if (c.owners !== undefined && !Array.isArray(c.owners)) throw new DataError("owners must be an array");
  if (c.associations !== undefined && !Array.isArray(c.associations)) throw new DataError("associations must be an array");
  const out: HubSpotSimData = { portal, objects, pipelines };
  if (c.owners) out.owners = c.owners.map((o, i) => ownerFromContract(o, `owners[${i}]`));
  if (schemas.length > 0) out.schemas = schemas;
  if (c.associationLabels) out.associationLabels = c.associationLabels;
  if (c.associations) {
    out.associations = (c.associations as unknown[]).map((a, i) =>
      isObj(a) && "fromType" in a ? associationFromContract(a as unknown as ContractAssociation, `associations[${i}]`, canonical) : (a as AssociationData),
    );
  }
  return out;
}
