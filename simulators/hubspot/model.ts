/**
 * The HubSpot simulator's data model: the shapes the store holds (object types, records and the versions search
 * sees, properties, owners, pipelines, association types, settings), the data error, and the value helpers
 * (ISO instants, property values) the store and the settings share.
 */
import type { CustomObjectSchemaData, OptionData, PropertyValue } from "./types.ts";

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
    /** How long a code of the consent page (GET/POST /oauth/authorize) can be exchanged. */
    authorizationCodeTtlSeconds: number;
    /**
     * Every OAuth app accepted by POST /oauth/v1/token; the first is the main one (clientId above). `redirectUris`:
     * the registered ones (`redirectUri` included; empty: any http(s) URI); `requiredScopes`: what its authorize URL must ask.
     */
    apps: Array<{ clientId: string; clientSecret: string; redirectUri: string | undefined; redirectUris: string[]; requiredScopes: string[] }>;
  };
  rateLimits: { tenSecondly: number; intervalMs: number; searchPerSecond: number; daily: number; specExemptions: boolean; retryAfter: boolean };
  search: {
    indexDelayMs: number;
    maxResults: number;
    maxLimit: number;
    maxFilterGroups: number;
    maxFiltersPerGroup: number;
    maxFilters: number;
    maxQueryLength: number;
  };
  limits: {
    listMaxLimit: number;
    listLimitBehavior: "clamp" | "reject";
    batchReadMaxInputs: number;
    associationsBatchMaxInputs: number;
    associationsPageSize: number;
    ownersMaxLimit: number;
  };
}

/** Every scope the simulator knows about; the default grant when the data names none. */
export const DEFAULT_SCOPES = [
  "oauth",
  "crm.objects.contacts.read",
  "crm.objects.companies.read",
  "crm.objects.deals.read",
  "crm.objects.line_items.read",
  "crm.objects.owners.read",
  "crm.objects.custom.read",
  "crm.schemas.custom.read",
  "crm.objects.goals.read",
  "crm.schemas.deals.read",
  "crm.schemas.contacts.read",
  "crm.schemas.companies.read",
  "crm.schemas.line_items.read",
  "crm.objects.users.read",
  "sales-email-read",
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
  /** Ids merged into another record → the survivor's id (POST /__admin/merge; reads of them answer the survivor). */
  mergedInto?: Map<string, string>;
  schema?: NormalizedSchema;
}

interface NormalizedSchema extends CustomObjectSchemaData {
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
    id: string;
    label: string;
    displayOrder: number;
    metadata: Record<string, string>;
    createdAt: string;
    updatedAt: string;
    archived: boolean;
    writePermissions?: string;
  }>;
}

const isoRe = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:?\d{2})$/;

/** ISO instant of a datetime property value (ISO string or epoch-ms string); undefined if not one. */
export function toInstantMs(value: string | null | undefined): number | undefined {
  if (value === null || value === undefined || value === "") return undefined;
  if (/^-?\d+$/.test(value)) return Number(value);
  if (/^\d{4}-\d{2}-\d{2}$/.test(value)) return Date.parse(`${value}T00:00:00Z`);
  const t = Date.parse(value);
  return Number.isNaN(t) ? undefined : t;
}

export function toIso(value: string | null | undefined): string | undefined {
  const ms = toInstantMs(value);
  return ms === undefined ? undefined : new Date(ms).toISOString();
}

export function checkIso(value: string | undefined, where: string): string | undefined {
  if (value === undefined) return undefined;
  if (!isoRe.test(value) || Number.isNaN(Date.parse(value)))
    throw new DataError(`${where} must be an ISO 8601 instant such as 2024-01-31T12:00:00.000Z (got ${JSON.stringify(value)})`);
  return new Date(Date.parse(value)).toISOString();
}

export function stringify(v: PropertyValue | undefined): string | null {
  if (v === null || v === undefined) return null;
  if (typeof v === "boolean") return v ? "true" : "false";
  return String(v);
}
