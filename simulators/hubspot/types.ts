/**
 * The HubSpot simulator's data file (`--data FILE`), documented in README.md.
 * Everything is optional except `objects`; the simulator fills HubSpot's defaults.
 * Two formats are accepted: this one (`HubSpotSimData`) and the public one of issue #5
 * (`HubSpotContractData`, below), which `normalizeHubSpotData` (contract.ts) converts to this one.
 */

/** Property values as HubSpot stores them: strings (numbers/booleans are accepted in the file and stringified). */
export type PropertyValue = string | number | boolean | null;

export interface HubSpotSimData {
  portal?: PortalSettings;
  /** Object types by name: deals, companies, contacts, line_items, meetings, calls, emails, tasks, goal_targets, or a custom object's name. */
  objects: Record<string, ObjectTypeData>;
  /** HubSpot owners (users and queues); archived owners keep `userIdIncludingInactive` and have `userId: null`. */
  owners?: OwnerData[];
  /** v4 typed associations between records; the inverse direction is derived. */
  associations?: AssociationData[];
  /** USER_DEFINED / INTEGRATOR_DEFINED association labels (HUBSPOT_DEFINED ones are built in). */
  associationLabels?: AssociationLabelData[];
  /** Custom object schemas; each `name` must also be a key of `objects`. */
  schemas?: CustomObjectSchemaData[];
  /** Pipelines and their stages by object type name (deals, tickets, ...). */
  pipelines?: Record<string, PipelineData[]>;
}

export interface PortalSettings {
  /** The account id (hub_id). Default 12345678. */
  portalId?: number;
  /** IANA time zone of the account; the daily limit resets at its midnight. Default "UTC". */
  timeZone?: string;
  /** The account's company currency (ISO 4217). Default "USD". */
  companyCurrency?: string;
  /** Same as `search.indexDelayMs` (the name of the public format); `search.indexDelayMs` wins when both are set. */
  searchIndexDelayMs?: number;
  /** Other currencies enabled in the account (multi-currency). Default []. */
  additionalCurrencies?: string[];
  /** Scopes granted to the app installed in this portal (tokens get these unless they list their own). */
  grantedScopes?: string[];
  oauth?: OAuthSettings;
  rateLimits?: RateLimitSettings;
  search?: SearchSettings;
  limits?: LimitSettings;
}

export interface OAuthSettings {
  clientId?: string;
  clientSecret?: string;
  /** Redirect URI registered for the app; checked on authorization_code grants when set. */
  redirectUri?: string;
  /**
   * More redirect URIs registered for the main app (with `redirectUri`, the list GET /oauth/authorize accepts; none
   * registered: any http(s) URI).
   */
  redirectUris?: string[];
  /** Scopes the main app requires: an authorize URL whose `scope` lacks one gets the error page. Default: none checked. */
  requiredScopes?: string[];
  /** Lifetime of the codes the consent page issues, in seconds. Default 600. */
  authorizationCodeTtlSeconds?: number;
  /** Lifetime of minted access tokens in seconds. Default 1800 (HubSpot's 30 minutes). */
  accessTokenTtlSeconds?: number;
  /** Refresh tokens accepted by POST /oauth/v1/token (grant_type=refresh_token). */
  refreshTokens?: Array<string | { token: string; scopes?: string[]; userId?: number; userEmail?: string /** Only this app may use it. */; clientId?: string }>;
  /**
   * More OAuth apps installed in the portal, besides `clientId`/`clientSecret` (which, when absent, are the
   * first app's). Each app has its own ten-secondly budget.
   */
  apps?: Array<{ clientId: string; clientSecret: string; redirectUri?: string; redirectUris?: string[]; requiredScopes?: string[] }>;
  /** One-time authorization codes accepted by grant_type=authorization_code. */
  authorizationCodes?: Array<{ code: string; redirectUri?: string; scopes?: string[]; refreshToken?: string }>;
  /** Access tokens valid from start (e.g. a private-app token for a CLI run). */
  accessTokens?: Array<{
    token: string;
    /** "private_app" tokens get the X-HubSpot-RateLimit-Daily headers; "oauth" tokens do not. Default "private_app". */
    kind?: "oauth" | "private_app";
    scopes?: string[];
    /** ISO instant; absent or null = never expires. */
    expiresAt?: string | null;
  }>;
}

interface RateLimitSettings {
  /** Requests per rolling window per app (HubSpot: 100 Free/Starter, 190 Professional/Enterprise). Default 100. */
  tenSecondly?: number;
  /** Same as `tenSecondly` (the name of the public format); `tenSecondly` wins when both are set. */
  perTenSeconds?: number;
  /** Window of the burst limit in ms. Default 10000. */
  intervalMs?: number;
  /** CRM search requests per second per account. Default 5. */
  searchPerSecond?: number;
  /** Requests per day per account (reset at midnight in `timeZone`). Default 250000. */
  daily?: number;
  /**
   * Honour the specs' `x-hubspot-rate-limit-exemptions: ["ten-secondly"]` (CRM search,
   * associations v4 batch): those calls do not consume the ten-secondly budget. Default true;
   * false makes every call count.
   */
  specExemptions?: boolean;
  /**
   * Whether the limits' 429 answers carry `Retry-After` (seconds until the budget frees). Default true;
   * false answers as portals that send none: the body's `policyName` alone says which limit was hit.
   */
  retryAfter?: boolean;
}

interface SearchSettings {
  /** Milliseconds between a record's change and search seeing it (index lag). Default 0. */
  indexDelayMs?: number;
  /** Hard cap on the results one query can page through. Default 10000. */
  maxResults?: number;
  /** Maximum `limit` per search page. Default 200. */
  maxLimit?: number;
  maxFilterGroups?: number;
  maxFiltersPerGroup?: number;
  maxFilters?: number;
  /** Maximum length of `query`. Default 3000. */
  maxQueryLength?: number;
}

interface LimitSettings {
  /** Maximum `limit` of list endpoints (GET /crm/v3/objects/{type}). Default 100. */
  listMaxLimit?: number;
  /** What a larger list `limit` does: "clamp" to the maximum (default) or "reject" with 400. */
  listLimitBehavior?: "clamp" | "reject";
  /** Maximum inputs of POST /crm/v3/objects/{type}/batch/read. Default 100. */
  batchReadMaxInputs?: number;
  /** Maximum inputs of POST /crm/v4/associations/{from}/{to}/batch/read. Default 1000. */
  associationsBatchMaxInputs?: number;
  /** Associations returned per input before a per-input `paging.next.after`. Default 500. */
  associationsPageSize?: number;
  /** Maximum `limit` of GET /crm/v3/owners. Default 500. */
  ownersMaxLimit?: number;
}

export interface OptionData {
  label: string;
  value: string;
  description?: string;
  displayOrder?: number;
  hidden?: boolean;
}

export interface PropertyData {
  name: string;
  /** HubSpot property type: string, number, date, datetime, enumeration, bool, phone_number, object_coordinates, json. */
  type: string;
  /** UI field type: text, textarea, number, date, select, radio, checkbox, booleancheckbox, calculation_equation, ... */
  fieldType: string;
  label?: string;
  groupName?: string;
  description?: string;
  options?: OptionData[];
  displayOrder?: number;
  calculated?: boolean;
  externalOptions?: boolean;
  hasUniqueValue?: boolean;
  hidden?: boolean;
  hubspotDefined?: boolean;
  formField?: boolean;
  archived?: boolean;
  createdAt?: string;
  updatedAt?: string;
  referencedObjectType?: string;
  showCurrencySymbol?: boolean;
  currencyPropertyName?: string;
  numberDisplayHint?: string;
  dataSensitivity?: "non_sensitive" | "sensitive" | "highly_sensitive";
  calculationFormula?: string;
  /** As GET /crm/v3/properties returns it; default derived from hubspotDefined/calculated. */
  modificationMetadata?: { archivable: boolean; readOnlyDefinition: boolean; readOnlyValue: boolean; readOnlyOptions?: boolean };
  createdUserId?: string;
  updatedUserId?: string;
}

export interface RecordData {
  /** Numeric string. */
  id: string;
  properties: Record<string, PropertyValue>;
  /** ISO instant; defaults to the create-date property, else the load time. */
  createdAt?: string;
  /** ISO instant; defaults to the last-modified property, else createdAt. */
  updatedAt?: string;
  archived?: boolean;
  archivedAt?: string;
}

export interface ObjectTypeData {
  /** "0-3" etc. for standard types (derived); custom types take it from their schema. */
  objectTypeId?: string;
  properties?: PropertyData[];
  records?: RecordData[];
}

export interface OwnerData {
  id: string;
  email?: string;
  firstName?: string;
  lastName?: string;
  /** null for archived / deactivated users. */
  userId?: number | null;
  userIdIncludingInactive?: number;
  type?: "PERSON" | "QUEUE";
  teams?: Array<{ id: string; name: string; primary: boolean }>;
  createdAt?: string;
  updatedAt?: string;
  archived?: boolean;
}

export interface AssociationTypeRef {
  category?: "HUBSPOT_DEFINED" | "USER_DEFINED" | "INTEGRATOR_DEFINED";
  typeId: number;
  label?: string | null;
}

export interface AssociationData {
  from: { type: string; id: string };
  to: { type: string; id: string };
  /** Types in the from→to direction. Default: HubSpot's unlabeled default type for the pair. */
  types?: AssociationTypeRef[];
  /** Types in the to→from direction. Default: derived (HubSpot's paired type ids, or `associationLabels`). */
  inverseTypes?: AssociationTypeRef[];
}

export interface AssociationLabelData {
  from: string;
  to: string;
  category?: "USER_DEFINED" | "INTEGRATOR_DEFINED" | "HUBSPOT_DEFINED";
  typeId: number;
  label: string | null;
  /** Type id of the other direction, if the label is paired. */
  inverseTypeId?: number;
  inverseLabel?: string | null;
}

export interface CustomObjectSchemaData {
  /** Must match a key of `objects`. */
  name: string;
  /** "2-<digits>". */
  objectTypeId: string;
  labels: { singular: string; plural: string };
  primaryDisplayProperty: string;
  secondaryDisplayProperties?: string[];
  requiredProperties?: string[];
  searchableProperties?: string[];
  description?: string;
  /** Object types (names or ids) this custom object can be associated with. */
  associatedObjects?: string[];
  fullyQualifiedName?: string;
  createdAt?: string;
  updatedAt?: string;
  archived?: boolean;
  /**
   * Association type ids of this object towards others (key: the other type's name or id), e.g. from a
   * GET /crm/v3/schemas `associations` list. Absent: ids are assigned in pairs from 900 (README).
   */
  associationTypeIds?: Record<string, number>;
  /** Association type ids from others towards this object (key: the other type's name or id). */
  inverseAssociationTypeIds?: Record<string, number>;
}

interface PipelineStageData {
  id: string;
  label: string;
  displayOrder?: number;
  /** Deals: `probability` (0.0-1.0) and `isClosed`; values are returned as strings. */
  metadata?: Record<string, string | number | boolean>;
  createdAt?: string;
  updatedAt?: string;
  archived?: boolean;
  writePermissions?: "CRM_PERMISSIONS_ENFORCEMENT" | "INTERNAL_ONLY" | "READ_ONLY";
}

export interface PipelineData {
  id: string;
  label: string;
  displayOrder?: number;
  stages: PipelineStageData[];
  createdAt?: string;
  updatedAt?: string;
  archived?: boolean;
}

// ---- the public data-file format of issue #5 ---------------------------------------------------

/** An OAuth app installed in the portal (public format). */
export interface ContractApp {
  clientId: string;
  clientSecret: string;
  /** A refresh token of this app's install; tokens refreshed with it get `scopes`. */
  refreshToken?: string;
  /** Scopes granted to the app's install. Default: the portal's granted scopes. */
  scopes?: string[];
  /** Extension: the redirect URI checked on authorization_code grants. */
  redirectUri?: string;
  /** Extension: more redirect URIs registered for the app (GET /oauth/authorize accepts these and `redirectUri`). */
  redirectUris?: string[];
  /** Extension: scopes the app requires in the authorize URL's `scope`. */
  requiredScopes?: string[];
}

/** One association (public format); the inverse direction is derived. */
export interface ContractAssociation {
  fromType: string;
  fromId: string | number;
  toType: string;
  toId: string | number;
  /** Default: HubSpot's unlabeled default type for the pair. */
  associationTypeId?: number;
  /** Extension. Default: HUBSPOT_DEFINED for HubSpot's ids (and custom objects' ids), else the label's, else USER_DEFINED. */
  category?: "HUBSPOT_DEFINED" | "USER_DEFINED" | "INTEGRATOR_DEFINED";
  /** Extension: the label of a USER_DEFINED type. */
  label?: string | null;
}

/** A record as GET /crm/v3/objects/{type}/{id} returns it (numeric ids accepted). */
interface ContractRecord extends Omit<RecordData, "id"> {
  id: string | number;
  [extra: string]: unknown;
}

/**
 * The simulator data file as issue #5 specifies it. Missing sections get HubSpot's defaults: every
 * standard object type exists with its standard properties, deals have the default "Sales Pipeline".
 */
export interface HubSpotContractData {
  portal?: PortalSettings & { rateLimits?: RateLimitSettings };
  apps?: ContractApp[];
  /** As GET /crm/v3/owners returns them, plus `archived`. */
  owners?: Array<Omit<OwnerData, "id"> & { id: string | number; [extra: string]: unknown }>;
  /** As GET /crm/v3/properties/{objectType} returns them (`results`), by object type. */
  properties?: Record<string, PropertyData[]>;
  /** Custom object schemas as GET /crm/v3/schemas returns them (or in the simulator's own shape). */
  schemas?: Array<Record<string, unknown>>;
  /** Pipelines as GET /crm/v3/pipelines/{objectType} returns them, by object type. */
  pipelines?: Record<string, PipelineData[]>;
  /** Records by object type. */
  objects?: Record<string, ContractRecord[]>;
  associations?: ContractAssociation[];
  /** Extension (simulator format): USER_DEFINED association labels. */
  associationLabels?: AssociationLabelData[];
}
