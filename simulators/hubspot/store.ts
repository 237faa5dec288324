/**
 * The simulator's in-memory portal: object types, records (with the version search can see),
 * owners, associations (both directions), custom object schemas, pipelines and settings, built
 * from a HubSpotSimData document. Data mistakes throw DataError naming the offending path.
 */
import { readFileSync } from "node:fs";
import {
  GENERIC_STANDARD_TYPES, HUBSPOT_DEFINED, STANDARD_TYPES, TYPE_ALIASES, defaultTypeId, type StandardType,
} from "./catalog.ts";
import type {
  AssociationData, AssociationLabelData, AssociationTypeRef, ContractAssociation, CustomObjectSchemaData, HubSpotContractData, HubSpotSimData,
  OptionData, OwnerData, PipelineData, PropertyData, PropertyValue, RecordData,
} from "./types.ts";

export class DataError extends Error {
  constructor(message: string) {
    super(`HubSpot simulator data: ${message}`);
    this.name = "DataError";
  }
}

export interface Settings {
  portalId: number;
  timeZone: string;
  companyCurrency: string;
  additionalCurrencies: string[];
  grantedScopes: string[];
  oauth: {
    clientId: string;
    clientSecret: string;
    redirectUri: string | undefined;
    accessTokenTtlSeconds: number;
    /** Every OAuth app accepted by POST /oauth/v1/token; the first is the main one (clientId above). */
    apps: Array<{ clientId: string; clientSecret: string; redirectUri: string | undefined }>;
  };
  rateLimits: { tenSecondly: number; intervalMs: number; searchPerSecond: number; daily: number; specExemptions: boolean };
  search: {
    indexDelayMs: number; maxResults: number; maxLimit: number; maxFilterGroups: number;
    maxFiltersPerGroup: number; maxFilters: number; maxQueryLength: number;
  };
  limits: {
    listMaxLimit: number; listLimitBehavior: "clamp" | "reject"; batchReadMaxInputs: number;
    associationsBatchMaxInputs: number; associationsPageSize: number; ownersMaxLimit: number;
  };
}

/** Every scope the simulator knows about; the default grant when the data names none. */
export const DEFAULT_SCOPES = [
  "oauth", "crm.objects.contacts.read", "crm.objects.companies.read", "crm.objects.deals.read",
  "crm.objects.line_items.read", "crm.objects.owners.read", "crm.objects.custom.read", "crm.schemas.custom.read",
  "crm.objects.goals.read", "crm.schemas.deals.read", "crm.schemas.contacts.read", "crm.schemas.companies.read",
  "crm.schemas.line_items.read", "crm.objects.users.read", "sales-email-read",
];

export interface Property {
  name: string;
  label: string;
  type: string;
  fieldType: string;
  description: string;
  groupName: string;
  options: Array<Required<Pick<OptionData, "label" | "value" | "hidden">> & OptionData>;
  displayOrder: number;
  calculated: boolean;
  externalOptions: boolean;
  hasUniqueValue: boolean;
  hidden: boolean;
  hubspotDefined: boolean;
  formField: boolean;
  archived: boolean;
  modificationMetadata: { archivable: boolean; readOnlyDefinition: boolean; readOnlyValue: boolean; readOnlyOptions?: boolean };
  dataSensitivity: "non_sensitive" | "sensitive" | "highly_sensitive";
  createdAt?: string;
  updatedAt?: string;
  referencedObjectType?: string;
  showCurrencySymbol?: boolean;
  currencyPropertyName?: string;
  numberDisplayHint?: string;
  calculationFormula?: string;
  createdUserId?: string;
  updatedUserId?: string;
}

/** An association resolved against the store, ready to link (both directions). */
interface PreparedAssociation {
  from: ObjectType;
  fromId: string;
  to: ObjectType;
  toId: string;
  types: AssocType[];
  inverse: AssocType[];
}

/** A record of POST /__admin/records, as GET /crm/v3/objects/{type}/{id} returns it. */
export interface AdminRecordInput {
  id?: string | number;
  properties?: Record<string, PropertyValue>;
  createdAt?: string;
  updatedAt?: string;
  archived?: boolean;
}

export interface RecordVersion {
  properties: Record<string, string | null>;
  createdAt: string;
  updatedAt: string;
  archived: boolean;
  archivedAt?: string;
}

export interface StoredRecord extends RecordVersion {
  id: string;
  idNum: number;
  /** Simulator-clock ms of the last change (-Infinity for records loaded at start). */
  changedAt: number;
  /** The version search sees until changedAt + indexDelayMs (null: the record was not searchable before). */
  indexed: RecordVersion | null;
}

export interface ObjectType {
  name: string;
  objectTypeId: string;
  singular: string;
  custom: boolean;
  /** Spec file and the path segment it uses for /crm/v3/objects/<segment>. */
  specFile: string;
  specSegment: string;
  idParam: string;
  createdProperty: string;
  lastModifiedProperty: string;
  defaultProperties: string[];
  queryProperties: string[];
  scopeKey: string;
  properties: Map<string, Property>;
  records: Map<string, StoredRecord>;
  sortedIds: StoredRecord[] | null;
  schema?: NormalizedSchema;
}

export interface NormalizedSchema extends CustomObjectSchemaData {
  fullyQualifiedName: string;
  createdAt: string;
  updatedAt: string;
  archived: boolean;
  associationDefs: Array<{ id: string; name: string; fromObjectTypeId: string; toObjectTypeId: string; typeId: number; toName: string }>;
}

export interface AssocType {
  category: "HUBSPOT_DEFINED" | "USER_DEFINED" | "INTEGRATOR_DEFINED";
  typeId: number;
  label: string | null;
}

export interface Owner {
  id: string;
  email?: string;
  firstName?: string;
  lastName?: string;
  userId: number | null;
  userIdIncludingInactive?: number;
  type: "PERSON" | "QUEUE";
  teams: Array<{ id: string; name: string; primary: boolean }>;
  createdAt: string;
  updatedAt: string;
  archived: boolean;
}

export interface Pipeline {
  id: string;
  label: string;
  displayOrder: number;
  createdAt: string;
  updatedAt: string;
  archived: boolean;
  stages: Array<{
    id: string; label: string; displayOrder: number; metadata: Record<string, string>;
    createdAt: string; updatedAt: string; archived: boolean; writePermissions?: string;
  }>;
}

/** Well-known property definitions used when the data file does not define them. */
const KNOWN_PROPERTIES: Record<string, Array<Pick<PropertyData, "name" | "type" | "fieldType" | "label">>> = {
  "*": [
    { name: "hs_object_id", type: "number", fieldType: "number", label: "Record ID" },
    { name: "hubspot_owner_id", type: "enumeration", fieldType: "select", label: "Owner" },
    { name: "hs_createdate", type: "datetime", fieldType: "date", label: "Create date" },
    { name: "hs_lastmodifieddate", type: "datetime", fieldType: "date", label: "Last modified date" },
  ],
  contacts: [
    { name: "createdate", type: "datetime", fieldType: "date", label: "Create Date" },
    { name: "lastmodifieddate", type: "datetime", fieldType: "date", label: "Last Modified Date" },
    { name: "email", type: "string", fieldType: "text", label: "Email" },
    { name: "firstname", type: "string", fieldType: "text", label: "First Name" },
    { name: "lastname", type: "string", fieldType: "text", label: "Last Name" },
  ],
  companies: [
    { name: "createdate", type: "datetime", fieldType: "date", label: "Create Date" },
    { name: "name", type: "string", fieldType: "text", label: "Company name" },
    { name: "domain", type: "string", fieldType: "text", label: "Company Domain Name" },
  ],
  deals: [
    { name: "createdate", type: "datetime", fieldType: "date", label: "Create Date" },
    { name: "dealname", type: "string", fieldType: "text", label: "Deal Name" },
    { name: "amount", type: "number", fieldType: "number", label: "Amount" },
    { name: "closedate", type: "datetime", fieldType: "date", label: "Close Date" },
    { name: "pipeline", type: "enumeration", fieldType: "select", label: "Pipeline" },
    { name: "dealstage", type: "enumeration", fieldType: "radio", label: "Deal Stage" },
    { name: "deal_currency_code", type: "enumeration", fieldType: "select", label: "Currency" },
  ],
  line_items: [
    { name: "createdate", type: "datetime", fieldType: "date", label: "Create Date" },
    { name: "quantity", type: "number", fieldType: "number", label: "Quantity" },
    { name: "amount", type: "number", fieldType: "number", label: "Net price" },
    { name: "price", type: "number", fieldType: "number", label: "Unit price" },
    { name: "hs_line_item_currency_code", type: "enumeration", fieldType: "select", label: "Currency" },
  ],
};

const isoRe = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:?\d{2})$/;

/** ISO instant of a datetime property value (ISO string or epoch-ms string); undefined if not one. */
export function toInstantMs(value: string | null | undefined): number | undefined {
  if (value === null || value === undefined || value === "") return undefined;
  if (/^-?\d+$/.test(value)) return Number(value);
  if (/^\d{4}-\d{2}-\d{2}$/.test(value)) return Date.parse(`${value}T00:00:00Z`);
  const t = Date.parse(value);
  return Number.isNaN(t) ? undefined : t;
}

function toIso(value: string | null | undefined): string | undefined {
  const ms = toInstantMs(value);
  return ms === undefined ? undefined : new Date(ms).toISOString();
}

function checkIso(value: string | undefined, where: string): string | undefined {
  if (value === undefined) return undefined;
  if (!isoRe.test(value) || Number.isNaN(Date.parse(value))) throw new DataError(`${where} must be an ISO 8601 instant such as 2024-01-31T12:00:00.000Z (got ${JSON.stringify(value)})`);
  return new Date(Date.parse(value)).toISOString();
}

function stringify(v: PropertyValue | undefined): string | null {
  if (v === null || v === undefined) return null;
  if (typeof v === "boolean") return v ? "true" : "false";
  return String(v);
}

function snake(s: string): string {
  return s.trim().toLowerCase().replace(/[^a-z0-9]+/g, "_").replace(/^_|_$/g, "");
}

/** Reads a data file (either format; see contract.ts for the public one). */
export function loadData(data: HubSpotSimData | HubSpotContractData | string): HubSpotSimData | HubSpotContractData {
  if (typeof data !== "string") return data;
  let text: string;
  try {
    text = readFileSync(data, "utf8");
  } catch (e) {
    throw new DataError(`cannot read ${data}: ${(e as Error).message}`);
  }
  try {
    return JSON.parse(text) as HubSpotSimData | HubSpotContractData;
  } catch (e) {
    throw new DataError(`${data} is not valid JSON: ${(e as Error).message}`);
  }
}

export class Store {
  readonly settings: Settings;
  readonly types = new Map<string, ObjectType>();
  readonly owners: Owner[] = [];
  readonly pipelines = new Map<string, Pipeline[]>();
  readonly labels: AssociationLabelData[];
  /** `${fromType}|${fromId}` → toType → toId → types. */
  private readonly assoc = new Map<string, Map<string, Map<string, AssocType[]>>>();
  /** Bumped on every change (search caches key on it). */
  version = 0;
  private readonly loadTime: string;

  constructor(input: HubSpotSimData, nowMs: number) {
    if (input === null || typeof input !== "object") throw new DataError("the document must be a JSON object");
    if (!input.objects || typeof input.objects !== "object") throw new DataError("`objects` is required (object types by name)");
    this.loadTime = new Date(nowMs).toISOString();
    this.settings = normalizeSettings(input);
    this.labels = [...(input.associationLabels ?? [])];
    const schemas = new Map<string, CustomObjectSchemaData>();
    (input.schemas ?? []).forEach((s, i) => {
      if (!s.name || !/^2-\d+$/.test(s.objectTypeId ?? "")) throw new DataError(`schemas[${i}] needs a name and an objectTypeId like "2-1234567"`);
      if (!input.objects[s.name]) throw new DataError(`schemas[${i}].name ${JSON.stringify(s.name)} has no entry in objects`);
      schemas.set(s.name, s);
    });
    for (const [name, def] of Object.entries(input.objects)) {
      this.addType(name, def.objectTypeId, schemas.get(name));
    }
    this.assignCustomAssociationTypes();
    for (const [name, def] of Object.entries(input.objects)) {
      const t = this.types.get(name)!;
      (def.properties ?? []).forEach((p, i) => this.addProperty(t, p, `objects.${name}.properties[${i}]`, false));
      this.addKnownProperties(t);
      (def.records ?? []).forEach((r, i) => this.addRecord(t, r, `objects.${name}.records[${i}]`));
    }
    (input.owners ?? []).forEach((o, i) => this.owners.push(normalizeOwner(o, `owners[${i}]`, this.loadTime)));
    for (const [typeName, list] of Object.entries(input.pipelines ?? {})) {
      const key = this.resolveTypeName(typeName) ?? typeName;
      this.pipelines.set(key, list.map((p, i) => normalizePipeline(p, `pipelines.${typeName}[${i}]`)));
    }
    (input.associations ?? []).forEach((a, i) => this.addAssociationData(a, `associations[${i}]`));
  }

  /** Accepts an association in the simulator's shape or the public flat one ({fromType, fromId, toType, toId, associationTypeId}). */
  private toAssociationData(a: AssociationData | ContractAssociation, where: string): AssociationData {
    if (a !== null && typeof a === "object" && "fromType" in a) {
      const ref = a as ContractAssociation;
      if (typeof ref.fromType !== "string" || typeof ref.toType !== "string") throw new DataError(`${where} needs fromType, fromId, toType and toId`);
      const id = (v: unknown, k: string): string => {
        if ((typeof v === "number" && Number.isInteger(v) && v >= 0) || (typeof v === "string" && /^\d+$/.test(v))) return String(v);
        throw new DataError(`${where}.${k} must be a numeric id (got ${JSON.stringify(v)})`);
      };
      const out: AssociationData = { from: { type: ref.fromType, id: id(ref.fromId, "fromId") }, to: { type: ref.toType, id: id(ref.toId, "toId") } };
      if (ref.associationTypeId !== undefined && ref.associationTypeId !== null) {
        if (typeof ref.associationTypeId !== "number" || !Number.isInteger(ref.associationTypeId)) throw new DataError(`${where}.associationTypeId must be an integer`);
        const t: AssociationTypeRef = { typeId: ref.associationTypeId };
        if (ref.category !== undefined) t.category = ref.category;
        if (ref.label !== undefined) t.label = ref.label;
        out.types = [t];
      }
      return out;
    }
    if (a === null || typeof a !== "object") throw new DataError(`${where} must be an association object`);
    return a as AssociationData;
  }

  // ---- object types -------------------------------------------------------------------------

  private addType(name: string, objectTypeId: string | undefined, schema: CustomObjectSchemaData | undefined): void {
    const std = STANDARD_TYPES.find((s) => s.name === name);
    const generic = GENERIC_STANDARD_TYPES.find((s) => s.name === name);
    let t: ObjectType;
    if (std) {
      t = fromStandard(std);
    } else if (generic) {
      t = {
        name, objectTypeId: generic.objectTypeId, singular: generic.singular, custom: false,
        specFile: "crm-objects-v3.json", specSegment: "{objectType}", idParam: "objectId",
        createdProperty: "createdate", lastModifiedProperty: "hs_lastmodifieddate",
        defaultProperties: ["createdate", "hs_lastmodifieddate", "hs_object_id"], queryProperties: [],
        scopeKey: generic.scopeKey, properties: new Map(), records: new Map(), sortedIds: null,
      };
    } else {
      if (!schema) throw new DataError(`objects.${name} is not a standard object type (${STANDARD_TYPES.map((s) => s.name).join(", ")}); a custom object needs an entry in schemas`);
      const fqn = schema.fullyQualifiedName ?? `p${this.settings.portalId}_${name}`;
      t = {
        name, objectTypeId: schema.objectTypeId, singular: name, custom: true,
        specFile: "crm-custom-objects-v3.json", specSegment: "{objectType}", idParam: "objectId",
        createdProperty: "hs_createdate", lastModifiedProperty: "hs_lastmodifieddate",
        defaultProperties: ["hs_createdate", "hs_lastmodifieddate", "hs_object_id"],
        queryProperties: schema.searchableProperties ?? [schema.primaryDisplayProperty],
        scopeKey: "custom", properties: new Map(), records: new Map(), sortedIds: null,
        schema: {
          ...schema, fullyQualifiedName: fqn,
          createdAt: checkIso(schema.createdAt, `schemas(${name}).createdAt`) ?? this.loadTime,
          updatedAt: checkIso(schema.updatedAt, `schemas(${name}).updatedAt`) ?? this.loadTime,
          archived: schema.archived ?? false, associationDefs: [],
        },
      };
    }
    if (objectTypeId && objectTypeId !== t.objectTypeId) throw new DataError(`objects.${name}.objectTypeId ${objectTypeId} contradicts ${t.objectTypeId}`);
    this.types.set(name, t);
  }

  /**
   * Custom object association type ids: the schema's `associationTypeIds` / `inverseAssociationTypeIds` when
   * given, else pairs (n, n+1) from 900 in schema order (documented).
   */
  private assignCustomAssociationTypes(): void {
    let next = 900;
    const used = new Set<number>();
    const givenId = (ids: Record<string, number> | undefined, o: ObjectType): number | undefined => {
      if (!ids) return undefined;
      for (const [k, v] of Object.entries(ids)) if (this.resolveType(k) === o) return v;
      return undefined;
    };
    for (const t of this.types.values()) {
      for (const v of [...Object.values(t.schema?.associationTypeIds ?? {}), ...Object.values(t.schema?.inverseAssociationTypeIds ?? {})]) used.add(v);
    }
    const fresh = (): number => {
      while (used.has(next)) next++;
      used.add(next);
      return next++;
    };
    for (const t of this.types.values()) {
      if (!t.schema) continue;
      for (const other of t.schema.associatedObjects ?? []) {
        const o = this.resolveType(other);
        if (!o) throw new DataError(`schemas(${t.name}).associatedObjects names unknown object type ${JSON.stringify(other)}`);
        const forwardGiven = givenId(t.schema.associationTypeIds, o) ?? givenId(o.schema?.inverseAssociationTypeIds, t);
        const inverseGiven = givenId(t.schema.inverseAssociationTypeIds, o) ?? givenId(o.schema?.associationTypeIds, t);
        const typeId = forwardGiven ?? fresh();
        const inverse = inverseGiven ?? fresh();
        t.schema.associationDefs.push({
          id: String(typeId), name: `${t.singular}_to_${o.singular}`, fromObjectTypeId: t.objectTypeId,
          toObjectTypeId: o.objectTypeId, typeId, toName: o.name,
        });
        this.labels.push({ from: t.name, to: o.name, category: "HUBSPOT_DEFINED", typeId, label: null, inverseTypeId: inverse, inverseLabel: null });
        if (o.schema) {
          o.schema.associationDefs.push({
            id: String(inverse), name: `${o.singular}_to_${t.singular}`, fromObjectTypeId: o.objectTypeId,
            toObjectTypeId: t.objectTypeId, typeId: inverse, toName: t.name,
          });
        }
      }
    }
  }

  /** Resolves a path's object type: plural name, alias, type id, fully qualified name or p_<name>. */
  resolveType(nameOrId: string): ObjectType | undefined {
    const key = this.resolveTypeName(nameOrId);
    return key ? this.types.get(key) : undefined;
  }

  resolveTypeName(nameOrId: string): string | undefined {
    const raw = decodeURIComponent(nameOrId);
    const lower = raw.toLowerCase();
    if (this.types.has(lower)) return lower;
    const alias = TYPE_ALIASES[lower];
    if (alias && this.types.has(alias)) return alias;
    for (const t of this.types.values()) {
      if (t.objectTypeId === raw) return t.name;
      if (t.schema && (t.schema.fullyQualifiedName.toLowerCase() === lower || `p_${t.name}` === lower)) return t.name;
    }
    // standard types without data still resolve (empty), so pipelines/properties of e.g. tickets answer
    const std = STANDARD_TYPES.find((s) => s.name === lower || s.objectTypeId === raw || s.name === alias);
    if (std) {
      this.types.set(std.name, fromStandard(std));
      this.addKnownProperties(this.types.get(std.name)!);
      return std.name;
    }
    return undefined;
  }

  private addProperty(t: ObjectType, p: PropertyData, where: string, builtin: boolean): void {
    if (!p || typeof p.name !== "string" || !p.name) throw new DataError(`${where}.name is required`);
    if (typeof p.type !== "string" || typeof p.fieldType !== "string") throw new DataError(`${where} (${p.name}) needs type and fieldType`);
    const options = (p.options ?? []).map((o, i) => {
      if (typeof o.value !== "string" || typeof o.label !== "string") throw new DataError(`${where}.options[${i}] needs string label and value`);
      return { ...o, hidden: o.hidden ?? false, displayOrder: o.displayOrder ?? i };
    });
    const prop: Property = {
      name: p.name,
      label: p.label ?? p.name.replace(/_/g, " ").replace(/^\w/, (c) => c.toUpperCase()),
      type: p.type,
      fieldType: p.fieldType,
      description: p.description ?? "",
      groupName: p.groupName ?? `${t.singular}information`,
      options,
      displayOrder: p.displayOrder ?? -1,
      calculated: p.calculated ?? false,
      externalOptions: p.externalOptions ?? false,
      hasUniqueValue: p.hasUniqueValue ?? false,
      hidden: p.hidden ?? false,
      hubspotDefined: p.hubspotDefined ?? builtin,
      formField: p.formField ?? false,
      archived: p.archived ?? false,
      modificationMetadata: p.modificationMetadata ? { ...p.modificationMetadata } : { archivable: !builtin, readOnlyDefinition: builtin, readOnlyValue: p.calculated ?? false },
      dataSensitivity: p.dataSensitivity ?? "non_sensitive",
    };
    if (p.createdAt) prop.createdAt = checkIso(p.createdAt, `${where}.createdAt`)!;
    if (p.updatedAt) prop.updatedAt = checkIso(p.updatedAt, `${where}.updatedAt`)!;
    if (p.referencedObjectType !== undefined) prop.referencedObjectType = p.referencedObjectType;
    if (p.showCurrencySymbol !== undefined) prop.showCurrencySymbol = p.showCurrencySymbol;
    if (p.currencyPropertyName !== undefined) prop.currencyPropertyName = p.currencyPropertyName;
    if (p.numberDisplayHint !== undefined) prop.numberDisplayHint = p.numberDisplayHint;
    if (p.calculationFormula !== undefined) prop.calculationFormula = p.calculationFormula;
    if (typeof p.createdUserId === "string") prop.createdUserId = p.createdUserId;
    if (typeof p.updatedUserId === "string") prop.updatedUserId = p.updatedUserId;
    t.properties.set(p.name, prop);
  }

  private addKnownProperties(t: ObjectType): void {
    const known = [...(KNOWN_PROPERTIES["*"] ?? []), ...(KNOWN_PROPERTIES[t.name] ?? [])];
    const wanted = new Set([t.createdProperty, t.lastModifiedProperty, "hs_object_id"]);
    for (const k of known) {
      if (t.properties.has(k.name)) continue;
      const isGlobal = (KNOWN_PROPERTIES["*"] ?? []).includes(k);
      if (isGlobal && !wanted.has(k.name) && k.name !== "hubspot_owner_id") continue;
      this.addProperty(t, k, `builtin ${t.name}.${k.name}`, true);
    }
  }

  // ---- records ------------------------------------------------------------------------------

  private addRecord(t: ObjectType, r: RecordData, where: string): void {
    if (!r || typeof r.id !== "string" || !/^\d+$/.test(r.id)) throw new DataError(`${where}.id must be a numeric string such as "1001"`);
    if (t.records.has(r.id)) throw new DataError(`${where}.id ${r.id} is duplicated in ${t.name}`);
    const properties: Record<string, string | null> = {};
    for (const [k, v] of Object.entries(r.properties ?? {})) {
      properties[k] = stringify(v);
      if (!t.properties.has(k)) this.addProperty(t, { name: k, type: "string", fieldType: "text" }, `${where}.properties.${k}`, false);
    }
    const createdAt = checkIso(r.createdAt, `${where}.createdAt`) ?? toIso(properties[t.createdProperty]) ?? this.loadTime;
    const updatedAt = checkIso(r.updatedAt, `${where}.updatedAt`) ?? toIso(properties[t.lastModifiedProperty]) ?? createdAt;
    properties.hs_object_id = r.id;
    properties[t.createdProperty] ??= createdAt;
    properties[t.lastModifiedProperty] ??= updatedAt;
    const rec: StoredRecord = {
      id: r.id, idNum: Number(r.id), properties, createdAt, updatedAt, archived: r.archived ?? false,
      changedAt: Number.NEGATIVE_INFINITY, indexed: null,
    };
    if (rec.archived) rec.archivedAt = checkIso(r.archivedAt, `${where}.archivedAt`) ?? updatedAt;
    t.records.set(r.id, rec);
    t.sortedIds = null;
  }

  /** Records ordered by numeric id (list paging order). */
  sorted(t: ObjectType): StoredRecord[] {
    t.sortedIds ??= [...t.records.values()].sort((a, b) => a.idNum - b.idNum);
    return t.sortedIds;
  }

  /** The version of a record that search sees at `now` (null: not searchable). */
  searchVersion(rec: StoredRecord, now: number): RecordVersion | null {
    const visible = now >= rec.changedAt + this.settings.search.indexDelayMs ? rec : rec.indexed;
    return visible && !visible.archived ? visible : null;
  }

  /** Earliest future instant at which search visibility changes (for result caches). */
  nextVisibilityChange(t: ObjectType, now: number): number {
    let next = Number.POSITIVE_INFINITY;
    const delay = this.settings.search.indexDelayMs;
    for (const r of t.records.values()) {
      const at = r.changedAt + delay;
      if (at > now && at < next) next = at;
    }
    return next;
  }

  private snapshot(rec: StoredRecord): RecordVersion {
    const v: RecordVersion = { properties: { ...rec.properties }, createdAt: rec.createdAt, updatedAt: rec.updatedAt, archived: rec.archived };
    if (rec.archivedAt) v.archivedAt = rec.archivedAt;
    return v;
  }

  private beforeChange(rec: StoredRecord, now: number): void {
    if (now >= rec.changedAt + this.settings.search.indexDelayMs) rec.indexed = this.snapshot(rec);
    rec.changedAt = now;
  }

  /**
   * Creates or updates a record as HubSpot would after a UI/API write: properties merged,
   * updatedAt and the last-modified property set to `updatedAt` (default: now).
   */
  upsertRecord(typeName: string, input: { id?: string; properties?: Record<string, PropertyValue>; updatedAt?: string; createdAt?: string }, now: number): StoredRecord {
    const t = this.resolveType(typeName);
    if (!t) throw new DataError(`unknown object type ${typeName}`);
    const at = checkIso(input.updatedAt, "updatedAt") ?? new Date(now).toISOString();
    let rec = input.id ? t.records.get(input.id) : undefined;
    if (!rec) {
      const id = input.id ?? String(Math.max(0, ...[...t.records.values()].map((r) => r.idNum)) + 1);
      this.addRecord(t, { id, properties: input.properties ?? {}, createdAt: input.createdAt ?? at, updatedAt: at }, `upsert ${t.name}`);
      rec = t.records.get(id)!;
      rec.changedAt = now;
      rec.indexed = null;
    } else {
      this.beforeChange(rec, now);
      for (const [k, v] of Object.entries(input.properties ?? {})) {
        rec.properties[k] = stringify(v);
        if (!t.properties.has(k)) this.addProperty(t, { name: k, type: "string", fieldType: "text" }, `upsert ${t.name}.${k}`, false);
      }
      rec.updatedAt = at;
      rec.properties[t.lastModifiedProperty] = at;
    }
    this.version++;
    return rec;
  }

  /**
   * POST /__admin/records: upserts records given as GET /crm/v3/objects/{type}/{id} returns them, all or nothing.
   * The last-modified date is the record's last-modified property, else its `updatedAt`, else now; the create
   * date likewise. `archived: true` archives the record, `archived: false` restores an archived one.
   */
  adminUpsert(typeName: unknown, records: unknown, now: number): StoredRecord[] {
    if (typeof typeName !== "string" || typeName === "") throw new DataError("objectType must be an object type name or id");
    if (!Array.isArray(records)) throw new DataError("records must be an array of records");
    const t = this.resolveType(typeName);
    if (!t) throw new DataError(`unknown object type ${typeName}`);
    const nowIso = new Date(now).toISOString();
    const prepared = records.map((r: unknown, i) => {
      const where = `records[${i}]`;
      if (r === null || typeof r !== "object" || Array.isArray(r)) throw new DataError(`${where} must be an object`);
      const rec = r as AdminRecordInput;
      let id: string | undefined;
      if (rec.id !== undefined && rec.id !== null) {
        if ((typeof rec.id === "number" && Number.isInteger(rec.id) && rec.id > 0) || (typeof rec.id === "string" && /^\d+$/.test(rec.id))) id = String(rec.id);
        else throw new DataError(`${where}.id must be a numeric string such as "1001"`);
      }
      if (rec.properties !== undefined && (rec.properties === null || typeof rec.properties !== "object" || Array.isArray(rec.properties))) {
        throw new DataError(`${where}.properties must be an object`);
      }
      const properties = { ...(rec.properties ?? {}) };
      delete properties.hs_object_id;
      const instant = (v: PropertyValue | undefined, what: string): string | undefined => {
        if (v === undefined || v === null || v === "") return undefined;
        const iso = toIso(String(v));
        if (iso === undefined) throw new DataError(`${where}.properties.${what} must be a datetime (ISO 8601 or epoch ms)`);
        return iso;
      };
      const updatedAt = instant(properties[t.lastModifiedProperty], t.lastModifiedProperty) ?? checkIso(rec.updatedAt, `${where}.updatedAt`) ?? nowIso;
      const createdAt = instant(properties[t.createdProperty], t.createdProperty) ?? checkIso(rec.createdAt, `${where}.createdAt`);
      if (properties[t.lastModifiedProperty] !== undefined) properties[t.lastModifiedProperty] = updatedAt;
      if (properties[t.createdProperty] !== undefined && createdAt !== undefined) properties[t.createdProperty] = createdAt;
      if (rec.archived !== undefined && typeof rec.archived !== "boolean") throw new DataError(`${where}.archived must be a boolean`);
      return { id, properties, updatedAt, createdAt, archived: rec.archived };
    });
    const out: StoredRecord[] = [];
    for (const p of prepared) {
      const existing = p.id === undefined ? undefined : t.records.get(p.id);
      const input: { id?: string; properties: Record<string, PropertyValue>; updatedAt: string; createdAt?: string } = { properties: p.properties, updatedAt: p.updatedAt };
      if (p.id !== undefined) input.id = p.id;
      if (p.createdAt !== undefined) input.createdAt = p.createdAt;
      const rec = this.upsertRecord(t.name, input, now);
      if (existing && p.createdAt !== undefined) {
        rec.createdAt = p.createdAt;
        rec.properties[t.createdProperty] = p.createdAt;
      }
      if (p.archived === true && !rec.archived) {
        rec.archived = true;
        rec.archivedAt = p.updatedAt;
      } else if (p.archived === false && rec.archived) {
        rec.archived = false;
        delete rec.archivedAt;
      }
      out.push(rec);
    }
    if (out.length > 0) t.sortedIds = null;
    return out;
  }

  /** POST /__admin/archive: archives records (already archived or unknown ids are reported, not errors). */
  adminArchive(typeName: unknown, ids: unknown, now: number): { objectType: string; archived: string[]; notFound: string[] } {
    if (typeof typeName !== "string" || typeName === "") throw new DataError("objectType must be an object type name or id");
    if (!Array.isArray(ids) || ids.some((x) => typeof x !== "string" && typeof x !== "number")) throw new DataError("ids must be an array of record ids");
    const t = this.resolveType(typeName);
    if (!t) throw new DataError(`unknown object type ${typeName}`);
    const archived: string[] = [];
    const notFound: string[] = [];
    for (const raw of ids as Array<string | number>) {
      const id = String(raw);
      const rec = t.records.get(id);
      if (!rec || rec.archived) { notFound.push(id); continue; }
      this.archiveRecord(t.name, id, now);
      archived.push(id);
    }
    return { objectType: t.name, archived, notFound };
  }

  archiveRecord(typeName: string, id: string, now: number): void {
    const t = this.resolveType(typeName);
    const rec = t?.records.get(id);
    if (!t || !rec) throw new DataError(`no ${typeName} record ${id}`);
    this.beforeChange(rec, now);
    rec.archived = true;
    rec.archivedAt = new Date(now).toISOString();
    rec.updatedAt = rec.archivedAt;
    this.version++;
  }

  // ---- associations -------------------------------------------------------------------------

  private normalizeAssocType(ref: AssociationTypeRef, from: string, to: string, where: string): AssocType {
    if (typeof ref.typeId !== "number") throw new DataError(`${where}.typeId must be a number`);
    const category = ref.category ?? this.inferCategory(from, to, ref.typeId);
    let label = ref.label ?? null;
    const defined = category === "HUBSPOT_DEFINED" ? HUBSPOT_DEFINED.get(ref.typeId) : undefined;
    if (defined && (defined.from !== from || defined.to !== to)) {
      if (!this.labelledType(from, to, ref.typeId)) throw new DataError(`${where}: HUBSPOT_DEFINED type ${ref.typeId} links ${defined.from}→${defined.to}, not ${from}→${to}`);
      if (ref.label === undefined) label = this.labels.find((l) => l.from === from && l.to === to && l.typeId === ref.typeId)?.label ?? null;
    } else if (defined) {
      if (ref.label === undefined && defined.primary) label = "Primary";
    } else if (ref.label === undefined) {
      label = this.labels.find((l) => l.from === from && l.to === to && l.typeId === ref.typeId)?.label ?? null;
    }
    return { category, typeId: ref.typeId, label };
  }

  /**
   * Category of a type id given without one: HUBSPOT_DEFINED for HubSpot's ids, else the category of the label
   * (custom objects' ids are HUBSPOT_DEFINED labels), else USER_DEFINED.
   */
  private inferCategory(from: string, to: string, typeId: number): AssocType["category"] {
    const d = HUBSPOT_DEFINED.get(typeId);
    if (d && d.from === from && d.to === to) return "HUBSPOT_DEFINED";
    const direct = this.labels.find((l) => l.from === from && l.to === to && l.typeId === typeId);
    if (direct) return direct.category ?? "USER_DEFINED";
    const reverse = this.labels.find((l) => l.from === to && l.to === from && l.inverseTypeId === typeId);
    if (reverse) return reverse.category ?? "USER_DEFINED";
    return d ? "HUBSPOT_DEFINED" : "USER_DEFINED"; // a HubSpot id on the wrong pair is reported by normalizeAssocType
  }

  /** Whether a label (custom object association or user-defined) declares this type id for from → to. */
  private labelledType(from: string, to: string, typeId: number): boolean {
    return this.labels.some((l) => (l.from === from && l.to === to && l.typeId === typeId) || (l.from === to && l.to === from && l.inverseTypeId === typeId));
  }

  private inverseOf(t: AssocType, from: string, to: string): AssocType {
    if (t.category === "HUBSPOT_DEFINED") {
      const d = HUBSPOT_DEFINED.get(t.typeId);
      if (d && d.from === from && d.to === to) {
        const inv = HUBSPOT_DEFINED.get(d.inverse);
        return { category: "HUBSPOT_DEFINED", typeId: d.inverse, label: inv?.primary ? "Primary" : null };
      }
    }
    const direct = this.labels.find((l) => l.from === from && l.to === to && l.typeId === t.typeId && l.inverseTypeId !== undefined);
    if (direct) return { category: t.category, typeId: direct.inverseTypeId!, label: direct.inverseLabel ?? direct.label ?? null };
    const reverse = this.labels.find((l) => l.from === to && l.to === from && l.inverseTypeId === t.typeId);
    if (reverse) return { category: t.category, typeId: reverse.typeId, label: reverse.label };
    return { ...t };
  }

  private defaultTypes(from: ObjectType, to: ObjectType, where: string): AssocType[] {
    const id = defaultTypeId(from.name, to.name);
    if (id !== undefined) return [{ category: "HUBSPOT_DEFINED", typeId: id, label: null }];
    const custom = this.labels.find((l) => l.from === from.name && l.to === to.name && l.category === "HUBSPOT_DEFINED");
    if (custom) return [{ category: "HUBSPOT_DEFINED", typeId: custom.typeId, label: null }];
    const reverse = this.labels.find((l) => l.from === to.name && l.to === from.name && l.category === "HUBSPOT_DEFINED" && l.inverseTypeId !== undefined);
    if (reverse) return [{ category: "HUBSPOT_DEFINED", typeId: reverse.inverseTypeId!, label: null }];
    throw new DataError(`${where}: no default association type between ${from.name} and ${to.name}; give "types"`);
  }

  private addAssociationData(input: AssociationData | ContractAssociation, where: string): void {
    this.applyAssociation(this.prepareAssociation(input, where, true));
  }

  /** Resolves and checks an association (either shape) without changing anything. */
  private prepareAssociation(input: AssociationData | ContractAssociation, where: string, recordsMustExist: boolean): PreparedAssociation {
    const a = this.toAssociationData(input, where);
    const from = this.resolveType(a.from?.type ?? "");
    const to = this.resolveType(a.to?.type ?? "");
    if (!from || !to) throw new DataError(`${where} names an unknown object type (${a.from?.type} → ${a.to?.type})`);
    if (typeof a.from.id !== "string" || typeof a.to.id !== "string") throw new DataError(`${where}: record ids must be numeric strings`);
    if (recordsMustExist && !from.records.has(a.from.id)) throw new DataError(`${where}.from: no ${from.name} record ${a.from.id}`);
    if (recordsMustExist && !to.records.has(a.to.id)) throw new DataError(`${where}.to: no ${to.name} record ${a.to.id}`);
    const types = a.types?.length
      ? a.types.map((t, i) => this.normalizeAssocType(t, from.name, to.name, `${where}.types[${i}]`))
      : this.defaultTypes(from, to, where);
    const inverse = a.inverseTypes?.length
      ? a.inverseTypes.map((t, i) => this.normalizeAssocType(t, to.name, from.name, `${where}.inverseTypes[${i}]`))
      : types.map((t) => this.inverseOf(t, from.name, to.name));
    return { from, fromId: a.from.id, to, toId: a.to.id, types, inverse };
  }

  private applyAssociation(p: PreparedAssociation): void {
    this.link(p.from.name, p.fromId, p.to.name, p.toId, p.types);
    this.link(p.to.name, p.toId, p.from.name, p.fromId, p.inverse);
  }

  /**
   * Adds and removes associations (both directions), as HubSpot does without touching the records'
   * last-modified dates. Everything is checked before anything changes. A removal without a type id removes
   * every type between the two records. Returns how many (from → to, type) links were added and removed.
   */
  changeAssociations(add: unknown, remove: unknown): { added: number; removed: number } {
    if (add !== undefined && !Array.isArray(add)) throw new DataError("add must be an array of associations");
    if (remove !== undefined && !Array.isArray(remove)) throw new DataError("remove must be an array of associations");
    const adds = ((add ?? []) as unknown[]).map((a, i) => this.prepareAssociation(a as ContractAssociation, `add[${i}]`, true));
    const removes = ((remove ?? []) as unknown[]).map((a, i) => {
      const where = `remove[${i}]`;
      const raw = this.toAssociationData(a as ContractAssociation, where);
      const from = this.resolveType(raw.from?.type ?? "");
      const to = this.resolveType(raw.to?.type ?? "");
      if (!from || !to) throw new DataError(`${where} names an unknown object type (${raw.from?.type} → ${raw.to?.type})`);
      const typeIds = (raw.types ?? []).map((t, j) => {
        if (typeof t?.typeId !== "number") throw new DataError(`${where}.types[${j}].typeId must be a number`);
        return t.typeId;
      });
      return { from, fromId: raw.from.id, to, toId: raw.to.id, typeIds };
    });
    let added = 0, removed = 0;
    for (const p of adds) {
      const before = this.associationsOf(p.from.name, p.fromId, p.to.name).find((x) => x.toId === p.toId)?.types.length ?? 0;
      this.applyAssociation(p);
      added += (this.associationsOf(p.from.name, p.fromId, p.to.name).find((x) => x.toId === p.toId)?.types.length ?? 0) - before;
    }
    for (const r of removes) {
      const { from, to } = r;
      if (r.typeIds.length === 0) {
        removed += this.unlink(from.name, r.fromId, to.name, r.toId, () => true);
        this.unlink(to.name, r.toId, from.name, r.fromId, () => true);
        continue;
      }
      const stored = this.associationsOf(from.name, r.fromId, to.name).find((x) => x.toId === r.toId)?.types ?? [];
      for (const t of stored.filter((x) => r.typeIds.includes(x.typeId))) {
        removed += this.unlink(from.name, r.fromId, to.name, r.toId, (x) => x.typeId === t.typeId && x.category === t.category);
        const inv = this.inverseOf(t, from.name, to.name);
        this.unlink(to.name, r.toId, from.name, r.fromId, (x) => x.typeId === inv.typeId);
      }
    }
    if (added > 0 || removed > 0) this.version++;
    return { added, removed };
  }

  private unlink(fromType: string, fromId: string, toType: string, toId: string, match: (t: AssocType) => boolean): number {
    const byType = this.assoc.get(`${fromType}|${fromId}`);
    const byId = byType?.get(toType);
    const list = byId?.get(toId);
    if (!byType || !byId || !list) return 0;
    const kept = list.filter((t) => !match(t));
    const n = list.length - kept.length;
    if (kept.length > 0) byId.set(toId, kept);
    else {
      byId.delete(toId);
      if (byId.size === 0) byType.delete(toType);
      if (byType.size === 0) this.assoc.delete(`${fromType}|${fromId}`);
    }
    return n;
  }

  private link(fromType: string, fromId: string, toType: string, toId: string, types: AssocType[]): void {
    const key = `${fromType}|${fromId}`;
    let byType = this.assoc.get(key);
    if (!byType) this.assoc.set(key, byType = new Map());
    let byId = byType.get(toType);
    if (!byId) byType.set(toType, byId = new Map());
    const existing = byId.get(toId) ?? [];
    for (const t of types) if (!existing.some((e) => e.typeId === t.typeId && e.category === t.category)) existing.push(t);
    byId.set(toId, existing);
  }

  /** Associations of one record towards one type, ordered by numeric target id. */
  associationsOf(fromType: string, fromId: string, toType: string): Array<{ toId: string; types: AssocType[] }> {
    const byId = this.assoc.get(`${fromType}|${fromId}`)?.get(toType);
    if (!byId) return [];
    return [...byId.entries()].map(([toId, types]) => ({ toId, types })).sort((a, b) => Number(a.toId) - Number(b.toId));
  }

  /** Association label definitions between two types (HubSpot-defined ones included). */
  labelsBetween(from: string, to: string): AssocType[] {
    const out: AssocType[] = [];
    for (const d of HUBSPOT_DEFINED.values()) {
      if (d.from === from && d.to === to) out.push({ category: "HUBSPOT_DEFINED", typeId: d.typeId, label: d.primary ? "Primary" : null });
    }
    for (const l of this.labels) {
      if (l.from === from && l.to === to) out.push({ category: l.category ?? "USER_DEFINED", typeId: l.typeId, label: l.label });
      else if (l.from === to && l.to === from && l.inverseTypeId !== undefined) {
        out.push({ category: l.category ?? "USER_DEFINED", typeId: l.inverseTypeId, label: l.inverseLabel ?? l.label });
      }
    }
    const seen = new Set<string>();
    return out.filter((t) => { const k = `${t.category}:${t.typeId}`; if (seen.has(k)) return false; seen.add(k); return true; });
  }

  /** The v3 association type name (`deal_to_company`, `deal_to_company_unlabeled`, a label's snake case). */
  v3TypeName(from: ObjectType, to: ObjectType, t: AssocType): string {
    const base = `${from.singular}_to_${to.singular}`;
    if (t.category !== "HUBSPOT_DEFINED") return t.label ? snake(t.label) : base;
    const d = HUBSPOT_DEFINED.get(t.typeId);
    if (d && !d.primary && [...HUBSPOT_DEFINED.values()].some((x) => x.from === d.from && x.to === d.to && x.primary)) return `${base}_unlabeled`;
    return base;
  }
}

function fromStandard(std: StandardType): ObjectType {
  return {
    name: std.name, objectTypeId: std.objectTypeId, singular: std.singular, custom: false,
    specFile: std.specFile, specSegment: std.pathSegment, idParam: std.idParam,
    createdProperty: std.createdProperty, lastModifiedProperty: std.lastModifiedProperty,
    defaultProperties: std.defaultProperties, queryProperties: std.queryProperties, scopeKey: std.scopeKey,
    properties: new Map(), records: new Map(), sortedIds: null,
  };
}

function positiveInt(v: unknown, def: number, where: string): number {
  if (v === undefined) return def;
  if (typeof v !== "number" || !Number.isInteger(v) || v < 0) throw new DataError(`${where} must be a non-negative integer`);
  return v;
}

function normalizeSettings(input: HubSpotSimData): Settings {
  const p = input.portal ?? {};
  const o = p.oauth ?? {};
  const rl = p.rateLimits ?? {};
  const s = p.search ?? {};
  const l = p.limits ?? {};
  if (p.timeZone) {
    try { new Intl.DateTimeFormat("en-US", { timeZone: p.timeZone }); } catch { throw new DataError(`portal.timeZone ${JSON.stringify(p.timeZone)} is not an IANA time zone`); }
  }
  if (l.listLimitBehavior !== undefined && l.listLimitBehavior !== "clamp" && l.listLimitBehavior !== "reject") {
    throw new DataError("portal.limits.listLimitBehavior must be \"clamp\" or \"reject\"");
  }
  const mainClientId = o.clientId ?? "sim-client-id";
  const apps: Settings["oauth"]["apps"] = [{ clientId: mainClientId, clientSecret: o.clientSecret ?? "sim-client-secret", redirectUri: o.redirectUri }];
  (o.apps ?? []).forEach((a, i) => {
    if (!a || typeof a.clientId !== "string" || typeof a.clientSecret !== "string") throw new DataError(`portal.oauth.apps[${i}] needs clientId and clientSecret`);
    if (!apps.some((x) => x.clientId === a.clientId)) apps.push({ clientId: a.clientId, clientSecret: a.clientSecret, redirectUri: a.redirectUri });
  });
  return {
    portalId: positiveInt(p.portalId, 12345678, "portal.portalId"),
    timeZone: p.timeZone ?? "UTC",
    companyCurrency: p.companyCurrency ?? "USD",
    additionalCurrencies: p.additionalCurrencies ?? [],
    grantedScopes: p.grantedScopes ?? DEFAULT_SCOPES,
    oauth: {
      clientId: mainClientId,
      clientSecret: o.clientSecret ?? "sim-client-secret",
      redirectUri: o.redirectUri,
      accessTokenTtlSeconds: positiveInt(o.accessTokenTtlSeconds, 1800, "portal.oauth.accessTokenTtlSeconds"),
      apps,
    },
    rateLimits: {
      tenSecondly: positiveInt(rl.tenSecondly ?? rl.perTenSeconds, 100, "portal.rateLimits.tenSecondly"),
      intervalMs: positiveInt(rl.intervalMs, 10_000, "portal.rateLimits.intervalMs"),
      searchPerSecond: positiveInt(rl.searchPerSecond, 5, "portal.rateLimits.searchPerSecond"),
      daily: positiveInt(rl.daily, 250_000, "portal.rateLimits.daily"),
      specExemptions: rl.specExemptions ?? true,
    },
    search: {
      indexDelayMs: positiveInt(s.indexDelayMs ?? p.searchIndexDelayMs, 0, "portal.search.indexDelayMs"),
      maxResults: positiveInt(s.maxResults, 10_000, "portal.search.maxResults"),
      maxLimit: positiveInt(s.maxLimit, 200, "portal.search.maxLimit"),
      maxFilterGroups: positiveInt(s.maxFilterGroups, 5, "portal.search.maxFilterGroups"),
      maxFiltersPerGroup: positiveInt(s.maxFiltersPerGroup, 6, "portal.search.maxFiltersPerGroup"),
      maxFilters: positiveInt(s.maxFilters, 18, "portal.search.maxFilters"),
      maxQueryLength: positiveInt(s.maxQueryLength, 3000, "portal.search.maxQueryLength"),
    },
    limits: {
      listMaxLimit: positiveInt(l.listMaxLimit, 100, "portal.limits.listMaxLimit"),
      listLimitBehavior: l.listLimitBehavior ?? "clamp",
      batchReadMaxInputs: positiveInt(l.batchReadMaxInputs, 100, "portal.limits.batchReadMaxInputs"),
      associationsBatchMaxInputs: positiveInt(l.associationsBatchMaxInputs, 1000, "portal.limits.associationsBatchMaxInputs"),
      associationsPageSize: positiveInt(l.associationsPageSize, 500, "portal.limits.associationsPageSize"),
      ownersMaxLimit: positiveInt(l.ownersMaxLimit, 500, "portal.limits.ownersMaxLimit"),
    },
  };
}

function normalizeOwner(o: OwnerData, where: string, loadTime: string): Owner {
  if (!o || typeof o.id !== "string" || !/^\d+$/.test(o.id)) throw new DataError(`${where}.id must be a numeric string`);
  const archived = o.archived ?? false;
  const userId = o.userId === undefined ? null : o.userId;
  if (archived && userId !== null) throw new DataError(`${where}: an archived owner has userId null (keep the id in userIdIncludingInactive)`);
  const owner: Owner = {
    id: o.id, userId, type: o.type ?? "PERSON", teams: o.teams ?? [],
    createdAt: checkIso(o.createdAt, `${where}.createdAt`) ?? loadTime,
    updatedAt: checkIso(o.updatedAt, `${where}.updatedAt`) ?? checkIso(o.createdAt, `${where}.createdAt`) ?? loadTime,
    archived,
  };
  if (o.email !== undefined) owner.email = o.email;
  if (o.firstName !== undefined) owner.firstName = o.firstName;
  if (o.lastName !== undefined) owner.lastName = o.lastName;
  const inactive = o.userIdIncludingInactive ?? (userId ?? undefined);
  if (inactive !== undefined) owner.userIdIncludingInactive = inactive;
  return owner;
}

function normalizePipeline(p: PipelineData, where: string): Pipeline {
  if (!p || typeof p.id !== "string" || typeof p.label !== "string" || !Array.isArray(p.stages)) {
    throw new DataError(`${where} needs id, label and stages`);
  }
  const epoch = "1970-01-01T00:00:00.000Z";
  return {
    id: p.id, label: p.label, displayOrder: p.displayOrder ?? 0,
    createdAt: checkIso(p.createdAt, `${where}.createdAt`) ?? epoch,
    updatedAt: checkIso(p.updatedAt, `${where}.updatedAt`) ?? epoch,
    archived: p.archived ?? false,
    stages: p.stages.map((s, i) => {
      if (typeof s.id !== "string" || typeof s.label !== "string") throw new DataError(`${where}.stages[${i}] needs id and label`);
      const stage: Pipeline["stages"][number] = {
        id: s.id, label: s.label, displayOrder: s.displayOrder ?? i,
        metadata: Object.fromEntries(Object.entries(s.metadata ?? {}).map(([k, v]) => [k, String(v)])),
        createdAt: checkIso(s.createdAt, `${where}.stages[${i}].createdAt`) ?? epoch,
        updatedAt: checkIso(s.updatedAt, `${where}.stages[${i}].updatedAt`) ?? epoch,
        archived: s.archived ?? false,
      };
      if (s.writePermissions) stage.writePermissions = s.writePermissions;
      return stage;
    }),
  };
}
