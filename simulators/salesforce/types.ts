// The simulator's data-file format (documented in README.md). Everything is optional except `objects`.

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

/** A Salesforce field describe entry (as in a real describe's `fields[]`). Only the keys the simulator reads are typed. */
export interface FieldDescribe {
  name: string;
  type: string;
  label?: string;
  referenceTo?: string[];
  relationshipName?: string | null;
  polymorphicForeignKey?: boolean;
  nameField?: boolean;
  compoundFieldName?: string | null;
  length?: number;
  custom?: boolean;
  extraTypeInfo?: string | null;
  picklistValues?: unknown[];
  [k: string]: unknown;
}

/** A Salesforce sObject describe (DescribeSObjectResult). Real describe JSON loads as-is. */
export interface SObjectDescribe {
  name: string;
  label?: string;
  labelPlural?: string;
  keyPrefix?: string | null;
  custom?: boolean;
  queryable?: boolean;
  fields: FieldDescribe[];
  childRelationships?: unknown[];
  urls?: Record<string, string>;
  [k: string]: unknown;
}

export type SimRecord = Record<string, unknown>;

interface SimObjectData {
  /** A describe object, or a path to a describe JSON file (relative to the data file), or `builtin:<Name>`. */
  describe: SObjectDescribe | string;
  /** Overrides/sets the key prefix (trimmed describes have none). */
  keyPrefix?: string;
  records?: SimRecord[];
}

export interface SimCurrency {
  isoCode: string;
  conversionRate?: number;
  decimalPlaces?: number;
  isActive?: boolean;
}

export interface SimOAuthClient {
  clientId: string;
  clientSecret: string;
  /** Allowed redirect_uri values for the authorization-code flow; empty/absent = any. */
  redirectUris?: string[];
  /** Refresh-token rotation for this client only (overrides oauth.rotateRefreshTokens). */
  rotateRefreshTokens?: boolean;
}

/**
 * A connected app in the public data-file format of issue #4 (top-level `clients`). Converted to
 * `oauth.clients` + `oauth.refreshTokens` by `normalizeSimData` (model.ts).
 */
interface SimDataClient {
  clientId: string;
  clientSecret: string;
  /** A refresh token already issued to this client (for `user`, default the first user). */
  refreshToken?: string;
  /** Each refresh returns a new refresh_token and invalidates the one used (this client only). */
  rotateRefreshTokens?: boolean;
  /** Extension: allowed redirect_uri values for the authorization-code flow. */
  redirectUris?: string[];
  /** Extension: the user (Id or Username) the refresh token belongs to. */
  user?: string;
}

export interface SimTokenSeed {
  token: string;
  /** User id (15 or 18 chars) or Username; defaults to the first user. */
  user?: string;
  clientId?: string;
  /** Access tokens only: epoch ms or ISO datetime after which the token is expired. */
  expiresAt?: number | string;
}

export interface SimOAuthSettings {
  clientId?: string;
  clientSecret?: string;
  clients?: SimOAuthClient[];
  refreshTokens?: SimTokenSeed[];
  accessTokens?: SimTokenSeed[];
  /** When on, every refresh_token grant returns a new refresh_token and invalidates the one used. */
  rotateRefreshTokens?: boolean;
  /** Access token lifetime in seconds (default 7200, Salesforce's default session timeout). */
  accessTokenLifetimeSeconds?: number;
  /** Authorization-code lifetime in seconds (default 900). */
  authorizationCodeLifetimeSeconds?: number;
  /** GET /services/oauth2/authorize redirects at once (as the first user, or login_hint) instead of showing a page. */
  autoApprove?: boolean;
  /** Passwords for the username-password grant, by Username. */
  passwords?: Record<string, string>;
}

export interface SimBulkSettings {
  /** Status polls a job answers UploadComplete before moving on (default 0: time alone moves it). */
  pollsInUploadComplete?: number;
  /** Status polls a job answers InProgress before JobComplete (default 0). */
  pollsInProgress?: number;
  /** Minimum simulated-clock milliseconds spent in each of those two states (default 0). */
  minMsPerState?: number;
  /** Real milliseconds a job takes to process, whatever its size (default 2000). */
  processingMs?: number;
  /** More real milliseconds per 1,000 records of the object the job scans (default 20). */
  processingMsPer1000?: number;
  /** Rows per results page: the server's page, which maxRecords can only make smaller (default 10000). */
  resultsPageSize?: number;
  /** Jobs whose SOQL matches this regular expression end Failed. */
  failQueriesMatching?: string;
  /** Daily Bulk 2.0 query job budget shown in /limits (default 10000). */
  dailyQueryJobLimit?: number;
}

/** Named faults of real orgs (controls.ts `FAULT_PRESETS`): each fills in the method, path, status, errorCode and message. */
export type SimFaultPreset = "concurrentRequests" | "queryTimeout" | "bulkJobRefused";

export interface SimFaultRule {
  /** A named real-org fault; the rule's own keys override what it fills in. */
  fault?: SimFaultPreset;
  /** HTTP method to match (any when absent). */
  method?: string;
  /** Glob on the request path (no query string): `*` = within a segment, `**` = anything; or a regex when it starts with `^`. Optional with `fault`. */
  path: string;
  /** How many matching requests the fault applies to (default 1). */
  count?: number;
  /** Status to answer (e.g. 503). Absent with delayMs = delay only, then normal handling. */
  status?: number;
  errorCode?: string;
  message?: string;
  /** Raw body to answer instead of the default `[{"message","errorCode"}]`. */
  body?: Json;
  delayMs?: number;
  /** 'reset' destroys the socket (client sees ECONNRESET / socket hang up). */
  action?: "reset";
}

export interface SimOrgSettings {
  /** Organization id, 15 or 18 chars (default 00DQb000000Xyz1). */
  id?: string;
  /** Same as `id` (the name the public data-file format of issue #4 uses). */
  organizationId?: string;
  name?: string;
  /** Highest API version served (default 66.0); versions list runs from minApiVersion to it. */
  apiVersion?: string;
  minApiVersion?: string;
  multiCurrency?: boolean;
  /** "single": a single-currency org (same as multiCurrency: false); "multi": multiCurrency: true. */
  currency?: "single" | "multi";
  corporateCurrency?: string;
  /**
   * Active currencies. Default: the corporate currency, plus (multi-currency orgs) every other
   * CurrencyIsoCode found in the records, with conversion rate 1.
   */
  currencies?: SimCurrency[];
  /** Daily API request limit (rolling 24 h) (default 15000). */
  dailyApiLimit?: number;
  /** API requests already used at start. */
  apiUsage?: number;
  /** REST query page size when no Sforce-Query-Options batchSize is sent (default 2000). */
  queryPageSize?: number;
  /** Bounds applied to a requested batchSize (default 200..2000). */
  queryBatchSizeMin?: number;
  queryBatchSizeMax?: number;
  /** Query locators expire after this many ms of inactivity (default 2 days). */
  queryLocatorTtlMs?: number;
  /** QUERY_TIMEOUT for REST queries whose result is over a size (default none; see SimQueryTimeout). */
  queryTimeout?: SimQueryTimeout | null;
  bulk?: SimBulkSettings;
}

/**
 * Salesforce's database giving up on a query (QUERY_TIMEOUT after about 120 s, mostly a non-selective filter
 * on a large object), modelled by size: a REST query (its first page, query or queryAll) over `object` (any
 * object when omitted) whose result holds more than `rows` records is answered 400 QUERY_TIMEOUT. A narrower
 * SystemModstamp window, a more selective where, or a Bulk API 2.0 job (never subject to it) gets through.
 */
export interface SimQueryTimeout {
  object?: string;
  rows: number;
}

export interface SalesforceSimData {
  org?: SimOrgSettings;
  oauth?: SimOAuthSettings;
  /** "single" or "multi": the org's currency mode (same as org.currency; see SimOrgSettings). */
  currency?: "single" | "multi";
  /** Connected apps in the public format of issue #4 (merged into `oauth`). */
  clients?: SimDataClient[];
  /** User records (fields of the User describe). Merged with objects.User.records when both exist. */
  users?: SimRecord[];
  /** By object API name. */
  objects: Record<string, SimObjectData>;
  /** Fault rules active from start. */
  faults?: SimFaultRule[];
}
