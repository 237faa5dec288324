/**
 * HubSpot source (docs/hubspot.md): CRM objects through @hubspot/api-client 14.
 *
 *  - Full runs (and the first incremental run of a table, which has no cursor yet) read the list
 *    endpoint (100 per page, `after` paging), then the archived records (`archived=true`), whose
 *    ids are published as deletes. A table with a filter is read through search instead (the list
 *    endpoint cannot filter).
 *  - Incremental runs read, through CRM search, every record whose last-modified property
 *    (`lastmodifieddate` for contacts, `hs_lastmodifieddate` for the others) is in
 *    [start of the last successful import − lookbackSeconds, start of this run), in parallel
 *    date windows that never meet the 10,000-result cap (hubspot-search.ts), plus the records
 *    archived since (the list endpoint with `archived=true`; archiving moves no timestamp), plus
 *    the records whose associations changed: adding or removing an association moves no
 *    timestamp either, so the association sweep reads the associations of every record the
 *    pipeline holds and this run did not read, compares them with what the raw topic holds
 *    (ReadOptions.published), and reads again the records that differ.
 *  - The cursor (the start of this run) is yielded once, after the table's last page: the worker
 *    saves it only once everything before it was acknowledged, so a failed run re-reads.
 *  - Records are enriched per batch of up to 1,000: associations v4 batch reads (one call per
 *    associated type), owner ids → owner emails (archived owners included), pipeline and stage
 *    ids → labels for picklist fields, the record's currency.
 */
import type { FieldSpec } from "../../lib/config-common.ts";
import { CURRENCY_FIELD, standardObject, type HubSpotConnector, type HubSpotFilterGroup, type HubSpotTable } from "../../lib/config-hubspot.ts";
import { ConfigError } from "../../lib/errors.ts";
import { logger, type Logger } from "../../lib/log.ts";
import type { RawValue } from "../../schemas/index.ts";
import { TableSkippedError } from "../../lib/errors.ts";
import type { ApiBudget, ConnectorFactory, ReadSlice, ReadOptions, SourceConnector, SourcePage, SourceRecord, TableCheck } from "../connector.ts";
import type { SharedRateLimitStore } from "../shared-rate-limiter.ts";
import {
  HubSpotApi, HubSpotRequestError, MissingScopesError, realClock,
  type AssociationTarget, type HubSpotClock, type HubSpotObject, type SearchPage, type OwnerDef, type PropertyDef, type SchemaDef, type TokenStoreLike,
} from "./hubspot-http.ts";
import { listAll, newWindowStats, planWindows, searchRange, windowSearchBody, type WindowStats } from "./hubspot-search.ts";
import {
  allAssociations, convertProperty, incompatibility, instantMs, ownerIndex, primaryAssociation, recordName, sourceTypeOf, toIsoInstant,
  type OwnerIndex, type ValueContext,
} from "./hubspot-values.ts";

/** Records per page handed to the worker (and per associations batch read: HubSpot's maximum). */
const BATCH = 1000;

export const hubspotConnector: ConnectorFactory<HubSpotConnector> = {
  type: "hubspot",
  create: (config, ctx) => new HubSpotSource(config, { sharedLimits: ctx?.rateLimits }),
};

export interface HubSpotSourceOptions {
  /** Time and sleeping (tests: the simulator's clock). */
  clock?: HubSpotClock;
  tokenStore?: () => Promise<TokenStoreLike | null>;
  log?: Logger;
  maxRateLimitRetries?: number;
  maxTransientRetries?: number;
  /** The worker's PostgreSQL-backed rate limits, shared by every worker process (unless `rateLimits.shared: false`). */
  sharedLimits?: SharedRateLimitStore;
}

export function createHubSpotSource(config: HubSpotConnector, options: HubSpotSourceOptions = {}): HubSpotSource {
  return new HubSpotSource(config, options);
}

/**
 * The state saved after a table's read: the start of the run that read it (the next cursor).
 * (States of earlier versions also held an association snapshot; it is ignored: the raw topic is
 * the snapshot now.)
 */
export interface HubSpotState { v: 1; cursor: number; cursorAt: string }

export function parseState(state: unknown): HubSpotState | null {
  if (state && typeof state === "object") {
    const s = state as Partial<HubSpotState>;
    if (s.v === 1 && typeof s.cursor === "number" && Number.isFinite(s.cursor)) {
      return { v: 1, cursor: s.cursor, cursorAt: new Date(s.cursor).toISOString() };
    }
  }
  return null;
}

/**
 * A 53-bit digest of a record's association fields (cyrb53 over their JSON in the plan's order):
 * the sweep keeps one number per record instead of its association lists, and two digests differ
 * for different lists except with probability 2^-53.
 */
export function associationDigest(values: RawValue[]): number {
  const s = JSON.stringify(values);
  let h1 = 0xdeadbeef, h2 = 0x41c6ce57;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    h1 = Math.imul(h1 ^ c, 2654435761);
    h2 = Math.imul(h2 ^ c, 1597334677);
  }
  h1 = Math.imul(h1 ^ (h1 >>> 16), 2246822507) ^ Math.imul(h2 ^ (h2 >>> 13), 3266489909);
  h2 = Math.imul(h2 ^ (h2 >>> 16), 2246822507) ^ Math.imul(h1 ^ (h1 >>> 13), 3266489909);
  return 4294967296 * (2097151 & h2) + (h1 >>> 0);
}

/** An object type as the API names it, and what the connector needs to read it. */
interface ResolvedObject {
  /** Path segment for the CRM APIs (standard name, or a custom object's 2-… id). */
  api: string;
  /** The name tables and association fields use (standard name, or the custom object's name). */
  key: string;
  lastModifiedProperty: string;
  nameProperties: string[];
  currencyProperty?: string;
  custom: boolean;
}

type AssociationMode = "primary" | "list" | "text";
interface AssociationField { field: string; spec: FieldSpec; target: ResolvedObject; mode: AssociationMode }
interface PropertyField { field: string; spec: FieldSpec; prop: PropertyDef }

interface TablePlan {
  table: HubSpotTable;
  object: ResolvedObject;
  propertyFields: PropertyField[];
  associationFields: AssociationField[];
  /** Raw currency columns the config names (properties other than the derived __currency). */
  currencyColumns: PropertyDef[];
  needsCurrency: boolean;
  /** The currency of records without their own; undefined until a record needs it (the account is read then). */
  currencyFallback: string | null | undefined;
  fetch: string[];
  sourceTypes: Record<string, string>;
  nameProperties: string[];
  ctx: ValueContext;
}

export interface ReadStats extends WindowStats {
  mode: "full" | "incremental";
  from: number | null;
  to: number;
  deleted: number;
  associationCalls: number;
  unresolvedOwners: string[];
  /**
   * The association sweep of an incremental run (null: not run): records the pipeline holds that
   * this run did not read (their associations were read again), those whose associations differed,
   * and those read again and published (fewer when some were archived meanwhile).
   */
  sweep: { held: number; changed: number; republished: number } | null;
}

const PIPELINE_PROPS = new Set(["pipeline", "hs_pipeline"]);
const STAGE_PROPS = new Set(["dealstage", "hs_pipeline_stage"]);

export class HubSpotSource implements SourceConnector {
  readonly config: HubSpotConnector;
  readonly api: HubSpotApi;
  /** Statistics of the last read() of each table (tests, benchmarks). */
  readonly lastRead = new Map<string, ReadStats>();
  private readonly log: Logger;
  private readonly clock: HubSpotClock;
  private schemasP: Promise<SchemaDef[]> | null = null;
  private readonly propsP = new Map<string, Promise<Map<string, PropertyDef>>>();
  private ownersP: Promise<OwnerIndex> | null = null;
  private archivedOwnersP: Promise<void> | null = null;
  private accountP: Promise<{ currency: string | null; timeZone: string }> | null = null;
  /** First pages planSlices read for ranges it left to read() (used once). */
  private readonly firstPages = new Map<string, { from: number; to: number; page: SearchPage }>();

  constructor(config: HubSpotConnector, options: HubSpotSourceOptions = {}) {
    this.config = config;
    this.clock = options.clock ?? realClock;
    this.log = options.log ?? logger.child({ component: "hubspot", connector: config.id });
    this.api = new HubSpotApi({
      connectorId: config.id, baseUrl: config.baseUrl, clientId: config.clientId, clientSecret: config.clientSecret,
      refreshToken: config.refreshToken, clock: this.clock, rateLimits: config.rateLimits, requestTimeoutMs: config.requestTimeoutMs,
      tokenStore: options.tokenStore, log: this.log, maxRateLimitRetries: options.maxRateLimitRetries, maxTransientRetries: options.maxTransientRetries,
      sharedLimits: config.rateLimits.shared === false ? undefined : options.sharedLimits,
    });
  }

  // ---- metadata (cached per instance, i.e. per run) -------------------------------------------

  private schemas(signal?: AbortSignal): Promise<SchemaDef[]> {
    this.schemasP ??= this.api.schemas(signal);
    this.schemasP.catch(() => { this.schemasP = null; });
    return this.schemasP;
  }

  /** Resolves a configured object (or association field) name; null when no such object exists. */
  private async resolveObject(name: string, signal?: AbortSignal): Promise<ResolvedObject | null> {
    const std = standardObject(name);
    if (std) {
      return { api: std.object, key: std.object, lastModifiedProperty: std.lastModifiedProperty, nameProperties: std.nameProperties, currencyProperty: std.currencyProperty, custom: false };
    }
    const wanted = name.trim().toLowerCase();
    const schema = (await this.schemas(signal)).find((s) => [s.name, s.objectTypeId, s.fullyQualifiedName, s.id ? `2-${s.id}` : undefined]
      .some((x) => typeof x === "string" && x.toLowerCase() === wanted));
    if (!schema) return null;
    return {
      api: schema.objectTypeId, key: schema.name, lastModifiedProperty: "hs_lastmodifieddate",
      nameProperties: schema.primaryDisplayProperty ? [schema.primaryDisplayProperty] : [], custom: true,
    };
  }

  private async requireObject(table: HubSpotTable, signal?: AbortSignal): Promise<ResolvedObject> {
    const o = await this.resolveObject(table.object, signal);
    if (!o) throw new ConfigError(`connector ${this.config.id}, table ${table.name}: HubSpot has no object ${JSON.stringify(table.object)} (standard: deals, companies, contacts, line_items, meetings, calls, emails, tasks, goals, tickets, products, notes; or a custom object's name)`);
    return o;
  }

  private properties(objectApi: string, signal?: AbortSignal): Promise<Map<string, PropertyDef>> {
    let p = this.propsP.get(objectApi);
    if (!p) {
      p = this.api.properties(objectApi, signal).then((list) => new Map(list.filter((x) => !x.archived).map((x) => [x.name, x])));
      p.catch(() => this.propsP.delete(objectApi));
      this.propsP.set(objectApi, p);
    }
    return p;
  }

  /** The active owners; archived ones are added by archivedOwners() when a record names an id the active ones lack. */
  private owners(signal?: AbortSignal): Promise<OwnerIndex> {
    this.ownersP ??= this.api.owners(false, signal).then((active) => ownerIndex(active as OwnerDef[]));
    this.ownersP.catch(() => { this.ownersP = null; });
    return this.ownersP;
  }

  /** Adds the archived owners to the index (once): an active owner keeps its ids. */
  private archivedOwners(signal?: AbortSignal): Promise<void> {
    this.archivedOwnersP ??= (async () => {
      const [index, archived] = await Promise.all([this.owners(signal), this.api.owners(true, signal)]);
      const more = ownerIndex(archived as OwnerDef[]);
      for (const [k, v] of more.byOwnerId) if (!index.byOwnerId.has(k)) index.byOwnerId.set(k, v);
      for (const [k, v] of more.byUserId) if (!index.byUserId.has(k)) index.byUserId.set(k, v);
    })();
    this.archivedOwnersP.catch(() => { this.archivedOwnersP = null; });
    return this.archivedOwnersP;
  }

  /** The portal's company currency and time zone; unknown (null / UTC) if the account API refuses. */
  private account(signal?: AbortSignal): Promise<{ currency: string | null; timeZone: string }> {
    this.accountP ??= this.api.accountInfo(signal).then(
      (a) => ({ currency: typeof a.companyCurrency === "string" && a.companyCurrency !== "" ? a.companyCurrency : null, timeZone: a.timeZone || "UTC" }),
      (e: unknown) => {
        if (e instanceof ConfigError) {
          this.log.warn({ err: (e as Error).message }, "cannot read the portal's account details; amounts without a currency fall back to defaultCurrency / sink.defaultCurrency, datetimes read as dates use UTC");
          return { currency: null, timeZone: "UTC" };
        }
        this.accountP = null;
        throw e;
      });
    return this.accountP;
  }

  /** value → label maps of a table's picklist fields on pipeline / stage properties. */
  private async pipelineLabels(object: ResolvedObject, fields: PropertyField[], signal?: AbortSignal): Promise<Map<string, Map<string, string>>> {
    const out = new Map<string, Map<string, string>>();
    const wanted = fields.filter((f) => f.spec.type === "picklist" && (PIPELINE_PROPS.has(f.prop.name) || STAGE_PROPS.has(f.prop.name)));
    if (wanted.length === 0) return out;
    let pipelines;
    try {
      pipelines = await this.api.pipelines(object.api, signal);
    } catch (e) {
      if (!(e instanceof ConfigError)) throw e;
      this.log.warn({ object: object.key, err: e.message }, "cannot read the pipelines; pipeline and stage picklists keep their internal ids");
      return out;
    }
    for (const f of wanted) {
      const m = new Map<string, string>();
      for (const p of pipelines) {
        if (PIPELINE_PROPS.has(f.prop.name)) m.set(p.id, p.label);
        else for (const s of p.stages ?? []) m.set(s.id, s.label);
      }
      out.set(f.prop.name, m);
    }
    return out;
  }

  // ---- planning ---------------------------------------------------------------------------------

  /** Resolves a table's fields against the object's properties; collects every problem. */
  private async resolveFields(table: HubSpotTable, object: ResolvedObject, props: Map<string, PropertyDef>, signal?: AbortSignal):
    Promise<{ propertyFields: PropertyField[]; associationFields: AssociationField[]; currencyColumns: PropertyDef[]; problems: string[] }> {
    const propertyFields: PropertyField[] = [];
    const associationFields: AssociationField[] = [];
    const currencyColumns: PropertyDef[] = [];
    const problems: string[] = [];
    for (const [field, spec] of Object.entries(table.fields)) {
      const prop = props.get(field);
      if (spec.type === "object" || (!prop && (spec.type === "multipicklist" || spec.type === "string"))) {
        const target = await this.resolveObject(field, signal);
        if (!target) {
          problems.push(spec.type === "object"
            ? `field ${field}: object fields are associations named after the associated object type (companies, contacts, deals, line_items, meetings, or a custom object's name), and HubSpot has no object ${field}`
            : `field ${field} is not a property of ${object.key}${suggest(field, props)}`);
          continue;
        }
        associationFields.push({ field, spec, target, mode: spec.type === "object" ? "primary" : spec.type === "multipicklist" ? "list" : "text" });
        continue;
      }
      if (!prop) { problems.push(`field ${field} is not a property of ${object.key}${suggest(field, props)}`); continue; }
      const bad = incompatibility(prop, spec.type);
      if (bad) { problems.push(`field ${field}: ${bad}`); continue; }
      propertyFields.push({ field, spec, prop });
      if (spec.currencyColumn && spec.currencyColumn !== CURRENCY_FIELD) {
        const c = props.get(spec.currencyColumn);
        if (!c) problems.push(`currencyColumn ${spec.currencyColumn} of field ${field} is not a property of ${object.key}`);
        else currencyColumns.push(c);
      }
    }
    return { propertyFields, associationFields, currencyColumns, problems };
  }

  private async plan(table: HubSpotTable, signal: AbortSignal): Promise<TablePlan> {
    const where = `connector ${this.config.id}, table ${table.name}`;
    const object = await this.requireObject(table, signal);
    const props = await this.properties(object.api, signal);
    const { propertyFields, associationFields, currencyColumns, problems } = await this.resolveFields(table, object, props, signal);
    const nameProperties = table.nameProperty ? [table.nameProperty] : object.nameProperties;
    for (const p of nameProperties) if (!props.has(p)) problems.push(`name property ${p} is not a property of ${object.key}`);
    if (!props.has(object.lastModifiedProperty)) problems.push(`${object.key} has no ${object.lastModifiedProperty} property to read changes by`);
    if (problems.length > 0) throw new ConfigError(`${where}: ${problems.join("; ")}`);

    const needsCurrency = propertyFields.some((f) => f.spec.currencyColumn === CURRENCY_FIELD);
    const needsZone = propertyFields.some((f) => f.prop.type === "datetime" && f.spec.type === "date" && f.spec.format === "date");
    // The account's currency is read when a record lacks its own (convert), unless the zone needs it now.
    const account = needsZone ? await this.account(signal) : { currency: undefined, timeZone: "UTC" };
    const owners = propertyFields.some((f) => f.spec.type === "user") ? await this.owners(signal) : null;
    const labels = table.pipelineLabels ? await this.pipelineLabels(object, propertyFields, signal) : new Map<string, Map<string, string>>();

    const fetch = new Set<string>([object.lastModifiedProperty, "hs_object_id", ...nameProperties]);
    if (object.key === "contacts") { fetch.add("firstname"); fetch.add("lastname"); }
    for (const f of propertyFields) fetch.add(f.prop.name);
    for (const c of currencyColumns) fetch.add(c.name);
    if (needsCurrency && object.currencyProperty && props.has(object.currencyProperty)) fetch.add(object.currencyProperty);
    for (const p of fetch) if (!props.has(p)) fetch.delete(p);

    const sourceTypes: Record<string, string> = {};
    for (const f of propertyFields) sourceTypes[f.field] = sourceTypeOf(f.prop);
    for (const c of currencyColumns) sourceTypes[c.name] ??= sourceTypeOf(c);
    for (const a of associationFields) sourceTypes[a.field] = "hs:association";

    return {
      table, object, propertyFields, associationFields, currencyColumns, needsCurrency,
      currencyFallback: this.config.defaultCurrency ?? account.currency,
      fetch: [...fetch].sort(), sourceTypes, nameProperties,
      ctx: { owners, labels, timeZone: account.timeZone, unresolved: new Set() },
    };
  }

  // ---- check ------------------------------------------------------------------------------------

  async check(): Promise<TableCheck[]> {
    try {
      await this.api.authenticate();
    } catch (e) {
      if (!(e instanceof ConfigError)) throw e;
      return this.config.tables.map((t) => ({ table: t.name, ok: false, problems: [e.message], warnings: [] }));
    }
    const granted = await this.api.grantedScopes().catch(() => null);
    const out: TableCheck[] = [];
    for (const table of this.config.tables) {
      const problems: string[] = [];
      const warnings: string[] = [];
      try {
        await this.checkTable(table, problems, warnings);
      } catch (e) {
        if (!(e instanceof ConfigError)) throw e;
        problems.push(e instanceof MissingScopesError && granted
          ? `${e.message} (granted: ${granted.join(", ") || "none"})`
          : e.message);
      }
      out.push({ table: table.name, ok: problems.length === 0, problems, warnings });
    }
    return out;
  }

  private async checkTable(table: HubSpotTable, problems: string[], warnings: string[]): Promise<void> {
    const object = await this.resolveObject(table.object);
    if (!object) { problems.push(`HubSpot has no object ${JSON.stringify(table.object)}`); return; }
    const props = await this.properties(object.api);
    // Reading records needs the object's read scope (properties may be readable without it).
    await this.api.listPage(object.api, { limit: 1, archived: false, properties: ["hs_object_id"] });
    const r = await this.resolveFields(table, object, props);
    problems.push(...r.problems);
    const nameProperties = table.nameProperty ? [table.nameProperty] : object.nameProperties;
    for (const p of nameProperties) if (!props.has(p)) problems.push(`name property ${p} is not a property of ${object.key}`);
    if (nameProperties.length === 0 && object.key !== "contacts") warnings.push(`${object.key} has no name property; records get no name (set nameProperty)`);
    if (!props.has(object.lastModifiedProperty)) problems.push(`${object.key} has no ${object.lastModifiedProperty} property; incremental runs cannot read its changes`);
    for (const f of r.propertyFields) {
      if (f.spec.type === "user" && f.prop.type !== "enumeration" && !f.prop.referencedObjectType) {
        warnings.push(`field ${f.field} (${f.prop.type}) is synced as a user: its values must be emails or owner ids`);
      }
    }
    if (r.propertyFields.some((f) => f.spec.type === "user")) await this.owners();
    for (const a of r.associationFields) {
      await this.api.associations(object.api, a.target.api, ["0"]).catch((e: unknown) => {
        if (e instanceof ConfigError) problems.push(`field ${a.field}: cannot read ${object.key}→${a.target.key} associations: ${e.message}`);
        else throw e;
      });
    }
    if (table.filter) {
      this.checkFilter(table.filter, props, problems, warnings);
      if (problems.length === 0) {
        // HubSpot's own validation of the filter, combined with the connector's window and keyset filters.
        const body = windowSearchBody({ lastModifiedProperty: object.lastModifiedProperty, properties: ["hs_object_id"], filterGroups: table.filter }, { from: 0, to: this.clock.now() }, "0", 1);
        await this.api.search(object.api, body).catch((e: unknown) => {
          if (e instanceof HubSpotRequestError && e.status === 400) problems.push(`filter: HubSpot rejects it: ${e.message}`);
          else throw e;
        });
      }
    }
  }

  /** Filters against the object's properties and HubSpot's operator rules. */
  private checkFilter(groups: HubSpotFilterGroup[], props: Map<string, PropertyDef>, problems: string[], warnings: string[]): void {
    groups.forEach((g, gi) => g.filters.forEach((f, fi) => {
      const where = groups.length > 1 ? `filter group ${gi + 1}, filter ${fi + 1}` : `filter ${fi + 1}`;
      if (f.propertyName.startsWith("associations.")) {
        if (f.operator !== "EQ" && f.operator !== "IN") problems.push(`${where}: ${f.propertyName} supports EQ and IN only`);
        return;
      }
      const p = props.get(f.propertyName);
      if (!p) { problems.push(`${where}: ${f.propertyName} is not a property${suggest(f.propertyName, props)}`); return; }
      const values = [f.value, f.highValue, ...(f.values ?? [])].filter((v): v is string => v !== undefined);
      if (p.type === "number" && !["CONTAINS_TOKEN", "NOT_CONTAINS_TOKEN"].includes(f.operator)) {
        for (const v of values) if (v.trim() === "" || !Number.isFinite(Number(v))) problems.push(`${where}: ${JSON.stringify(v)} is not a number (${f.propertyName} is a number)`);
      }
      if (p.type === "date" || p.type === "datetime") {
        for (const v of values) if (instantMs(v) === undefined) problems.push(`${where}: ${JSON.stringify(v)} is not a date (epoch milliseconds or ISO 8601)`);
      }
      if (p.type === "enumeration" && p.options && p.options.length > 0 && (f.operator === "EQ" || f.operator === "NEQ" || f.operator === "IN" || f.operator === "NOT_IN")) {
        const known = new Set(p.options.map((o) => o.value));
        const unknown = values.filter((v) => !known.has(v));
        if (unknown.length > 0 && !PIPELINE_PROPS.has(p.name) && !STAGE_PROPS.has(p.name)) {
          warnings.push(`${where}: ${unknown.map((v) => JSON.stringify(v)).join(", ")} ${unknown.length > 1 ? "are" : "is"} not among ${f.propertyName}'s internal values (${[...known].slice(0, 10).join(", ")}); enumeration filters match internal values exactly`);
        }
      }
      if ((f.operator === "IN" || f.operator === "NOT_IN") && p.type === "string" && values.some((v) => v !== v.toLowerCase())) {
        warnings.push(`${where}: HubSpot compares IN/NOT_IN string values in lower case; ${values.filter((v) => v !== v.toLowerCase()).map((v) => JSON.stringify(v)).join(", ")} will never match`);
      }
      if ((f.operator === "BETWEEN" || f.operator === "LT" || f.operator === "LTE" || f.operator === "GT" || f.operator === "GTE") && !["number", "date", "datetime", "string"].includes(p.type)) {
        warnings.push(`${where}: ${f.operator} on ${f.propertyName} (${p.type}) compares text`);
      }
    }));
  }

  // ---- read -------------------------------------------------------------------------------------

  apiBudget(): ApiBudget {
    return { calls: this.api.stats.requests, rateLimited: this.api.stats.rateLimited };
  }

  /** A table whose scope is optional (custom objects, goals, e-commerce) is skipped, not failed, when the app lacks it. */
  async *read(tableName: string, opts: ReadOptions): AsyncIterable<SourcePage> {
    try {
      yield* this.readTable(tableName, opts);
    } catch (e) {
      throw this.skipIfOptional(tableName, e);
    }
  }

  /** A missing scope that is optional for the table's object becomes a TableSkippedError. */
  private skipIfOptional(tableName: string, e: unknown): unknown {
    const table = this.config.tables.find((t) => t.name === tableName);
    const std = table ? standardObject(table.object) : undefined;
    const optional = !std || ["line_items", "goal_targets", "products"].includes(std.object);
    if (e instanceof MissingScopesError && optional) {
      return new TableSkippedError(`${(e as Error).message} — table ${tableName} is skipped (its scope is optional); grant the scope and reconnect with \`qobra-sync auth ${this.config.id}\` to sync it`, e);
    }
    return e;
  }

  /**
   * Incremental runs whose range holds more than maxWindowRecords changed records split into the
   * date windows that keep each under the 10,000-result cap (planWindows: the range's first page,
   * then one cut probe per window); each window is a task on sync.tasks. A smaller range is read
   * here (null), starting from the first page already fetched.
   */
  async planSlices(tableName: string, opts: ReadOptions): Promise<ReadSlice[] | null> {
    const table = this.config.tables.find((t) => t.name === tableName);
    if (!table || opts.full) return null;
    let plan: TablePlan;
    try {
      plan = await this.plan(table, opts.signal);
    } catch (e) {
      throw this.skipIfOptional(tableName, e);
    }
    const state = parseState(opts.state);
    if (!state) return null; // a first run lists the table
    const from = Math.max(0, state.cursor - this.config.lookbackSeconds * 1000);
    const to = opts.runStartedAt;
    const { windows, firstPage } = await planWindows({
      api: this.api, objectType: plan.object.api, lastModifiedProperty: plan.object.lastModifiedProperty, properties: plan.fetch,
      filterGroups: table.filter ?? [], maxWindowRecords: this.config.maxWindowRecords, signal: opts.signal,
    }, from, to);
    if (windows.length > 1) return windows.map((w) => ({ from: new Date(w.from).toISOString(), to: new Date(w.to).toISOString() }));
    if (firstPage) this.firstPages.set(table.name, { from, to, page: firstPage });
    return null;
  }

  async *readSlice(tableName: string, slice: ReadSlice, opts: ReadOptions): AsyncIterable<SourcePage> {
    const table = this.config.tables.find((t) => t.name === tableName);
    if (!table) throw new ConfigError(`connector ${this.config.id} has no table ${tableName}`);
    const plan = await this.plan(table, opts.signal);
    const stats: ReadStats = { ...newWindowStats(), mode: "incremental", from: Date.parse(slice.from), to: Date.parse(slice.to), deleted: 0, associationCalls: 0, unresolvedOwners: [], sweep: null };
    const pages = searchRange({
      api: this.api, objectType: plan.object.api, lastModifiedProperty: plan.object.lastModifiedProperty, properties: plan.fetch,
      filterGroups: table.filter ?? [], maxWindowRecords: this.config.maxWindowRecords, concurrency: 1, signal: opts.signal, stats,
    }, Date.parse(slice.from), Date.parse(slice.to));
    for await (const batch of inBatches(pages, opts.heartbeat)) {
      yield { records: await this.convert(plan, batch, stats, opts.signal), sourceTypes: plan.sourceTypes };
    }
  }

  /** After every slice: archived records since the run's window start, then the new cursor. */
  async *finishSlices(tableName: string, opts: ReadOptions): AsyncIterable<SourcePage> {
    const table = this.config.tables.find((t) => t.name === tableName);
    if (!table) throw new ConfigError(`connector ${this.config.id} has no table ${tableName}`);
    const plan = await this.plan(table, opts.signal);
    const state = parseState(opts.state);
    const from = state ? Math.max(0, state.cursor - this.config.lookbackSeconds * 1000) : 0;
    if (table.associationChanges && plan.associationFields.length > 0) {
      const stats: ReadStats = { ...newWindowStats(), mode: "incremental", from, to: opts.runStartedAt, deleted: 0, associationCalls: 0, unresolvedOwners: [], sweep: null };
      this.lastRead.set(table.name, stats);
      yield* this.sweep(plan, stats, opts);
    }
    let deleted: string[] = [];
    for await (const page of listAll(this.api, plan.object.api, ["hs_object_id"], true, opts.signal)) {
      for (const o of page) {
        const at = o.archivedAt === undefined ? undefined : new Date(o.archivedAt).getTime();
        if (at === undefined || !Number.isFinite(at) || at >= from) deleted.push(o.id);
      }
      if (deleted.length >= BATCH) { yield { records: [], deletedIds: deleted, sourceTypes: plan.sourceTypes }; deleted = []; }
    }
    if (deleted.length > 0) yield { records: [], deletedIds: deleted, sourceTypes: plan.sourceTypes };
    const next: HubSpotState = { v: 1, cursor: opts.runStartedAt, cursorAt: new Date(opts.runStartedAt).toISOString() };
    yield { records: [], sourceTypes: plan.sourceTypes, state: next };
  }

  private async *readTable(tableName: string, opts: ReadOptions): AsyncIterable<SourcePage> {
    const table = this.config.tables.find((t) => t.name === tableName);
    if (!table) throw new ConfigError(`connector ${this.config.id} has no table ${tableName}`);
    const plan = await this.plan(table, opts.signal);
    const state = opts.full ? null : parseState(opts.state);
    if (!opts.full && opts.state != null && !state) this.log.warn({ table: table.name }, "unreadable saved cursor; reading the whole table");
    const to = opts.runStartedAt;
    const from = state ? Math.max(0, state.cursor - this.config.lookbackSeconds * 1000) : null;
    const stats: ReadStats = { ...newWindowStats(), mode: from === null ? "full" : "incremental", from, to, deleted: 0, associationCalls: 0, unresolvedOwners: [], sweep: null };
    const trackAssociations = table.associationChanges && plan.associationFields.length > 0;
    this.lastRead.set(table.name, stats);
    this.log.info({ table: table.name, mode: stats.mode, from: from === null ? null : new Date(from).toISOString(), to: new Date(to).toISOString() }, "reading HubSpot");

    const planned = this.firstPages.get(table.name);
    this.firstPages.delete(table.name);
    const windows = (lo: number) => searchRange({
      api: this.api, objectType: plan.object.api, lastModifiedProperty: plan.object.lastModifiedProperty, properties: plan.fetch,
      filterGroups: table.filter ?? [], maxWindowRecords: this.config.maxWindowRecords, concurrency: this.config.concurrency, signal: opts.signal, stats,
      firstPage: planned && planned.from === lo && planned.to === to ? planned.page : undefined,
    }, lo, to);
    const source = from !== null ? windows(from)
      : table.filter ? windows(0)
        : listAll(this.api, plan.object.api, plan.fetch, false, opts.signal);

    for await (const batch of inBatches(source, opts.heartbeat)) {
      if (from === null && !table.filter) stats.records += batch.length;
      yield { records: await this.convert(plan, batch, stats, opts.signal), sourceTypes: plan.sourceTypes };
    }

    // Full reads saw every record's associations; incremental runs sweep the others.
    if (trackAssociations && from !== null) yield* this.sweep(plan, stats, opts);

    // Archived records: deletes. Incremental runs publish those archived since the window's start.
    let deleted: string[] = [];
    for await (const page of listAll(this.api, plan.object.api, ["hs_object_id"], true, opts.signal)) {
      for (const o of page) {
        const at = o.archivedAt === undefined ? undefined : new Date(o.archivedAt).getTime();
        if (from === null || at === undefined || !Number.isFinite(at) || at >= from) deleted.push(o.id);
      }
      if (deleted.length >= BATCH) {
        stats.deleted += deleted.length;
        yield { records: [], deletedIds: deleted, sourceTypes: plan.sourceTypes };
        deleted = [];
      }
    }
    if (deleted.length > 0) {
      stats.deleted += deleted.length;
      yield { records: [], deletedIds: deleted, sourceTypes: plan.sourceTypes };
    }
    stats.unresolvedOwners = [...plan.ctx.unresolved].sort();
    if (stats.unresolvedOwners.length > 0) {
      this.log.warn({ table: table.name, ownerIds: stats.unresolvedOwners.slice(0, 20), count: stats.unresolvedOwners.length }, "owner ids with no owner email: kept as ids");
    }
    const next: HubSpotState = { v: 1, cursor: to, cursorAt: new Date(to).toISOString() };
    this.log.info({ table: table.name, mode: stats.mode, records: stats.records, deleted: stats.deleted, windows: stats.windows, splits: stats.splits, api: { ...this.api.stats } }, "HubSpot table read");
    yield { records: [], sourceTypes: plan.sourceTypes, state: next };
  }

  /** Associations of up to 1,000 records: one batch read per associated type. */
  private async readAssociations(plan: TablePlan, ids: string[], stats: ReadStats, signal: AbortSignal): Promise<Map<string, Map<string, AssociationTarget[]>>> {
    const assoc = new Map<string, Map<string, AssociationTarget[]>>();
    if (ids.length === 0) return assoc;
    for (const target of new Set(plan.associationFields.map((a) => a.target.api))) {
      stats.associationCalls++;
      assoc.set(target, await this.api.associations(plan.object.api, target, ids, signal));
    }
    return assoc;
  }

  /** The raw values of a record's association fields (and their `__type` companions). */
  private associationValues(plan: TablePlan, id: string, assoc: Map<string, Map<string, AssociationTarget[]>>): Record<string, RawValue> {
    const fields: Record<string, RawValue> = {};
    for (const a of plan.associationFields) {
      const targets = assoc.get(a.target.api)?.get(id);
      if (a.mode === "primary") {
        fields[a.field] = primaryAssociation(targets);
        if (!a.spec.references) fields[`${a.field}__type`] = a.target.key;
      } else if (a.mode === "list") fields[a.field] = allAssociations(targets);
      else fields[a.field] = allAssociations(targets).join(";") || null;
    }
    return fields;
  }

  /** The values of the association fields in the plan's order (what the sweep digests). */
  private associationList(plan: TablePlan, fields: Record<string, RawValue>): RawValue[] {
    const out: RawValue[] = [];
    for (const a of plan.associationFields) {
      out.push(fields[a.field] ?? null);
      if (a.mode === "primary" && !a.spec.references) out.push(fields[`${a.field}__type`] ?? null);
    }
    return out;
  }

  /**
   * An incremental run's association sweep. HubSpot has no signal for an association added or
   * removed (no timestamp moves), so every record's associations must be read each run to see
   * one: those this run read are current; for the others the pipeline holds (the raw topic, via
   * ReadOptions.published: no API call to list them), the associations are read in batches of
   * 1,000 per associated type and compared with what was published. Records that differ are read
   * again (batch read, 100 per call) and published: the join reaches the sink.
   */
  private async *sweep(plan: TablePlan, stats: ReadStats, opts: ReadOptions): AsyncGenerator<SourcePage> {
    if (!opts.published) {
      this.log.warn({ table: plan.table.name }, "association-only changes cannot be detected: the caller gave no published records (run the table through the producer worker)");
      return;
    }
    const held = new Map<string, number>();
    await opts.published((r) => {
      if (r.fields === null || r.thisRun) held.delete(r.externalId);
      else held.set(r.externalId, associationDigest(this.associationList(plan, r.fields)));
    });
    const sweep = { held: held.size, changed: 0, republished: 0 };
    stats.sweep = sweep;
    let changed: string[] = [];
    let changedAssoc = new Map<string, Map<string, AssociationTarget[]>>();
    const republish = async (): Promise<SourcePage | null> => {
      const objects: HubSpotObject[] = [];
      for (let i = 0; i < changed.length; i += 100) objects.push(...await this.api.batchRead(plan.object.api, changed.slice(i, i + 100), plan.fetch, opts.signal));
      changed = [];
      const assoc = changedAssoc;
      changedAssoc = new Map();
      if (objects.length === 0) return null; // archived meanwhile: the archived listing deletes them
      const records = await this.convert(plan, objects, stats, opts.signal, assoc);
      sweep.republished += records.length;
      return { records, sourceTypes: plan.sourceTypes };
    };
    const ids = [...held.keys()];
    for (let i = 0; i < ids.length; i += BATCH) {
      const batch = ids.slice(i, i + BATCH);
      const assoc = await this.readAssociations(plan, batch, stats, opts.signal);
      for (const id of batch) {
        if (associationDigest(this.associationList(plan, this.associationValues(plan, id, assoc))) === held.get(id)) continue;
        sweep.changed++;
        changed.push(id);
        for (const [target, byId] of assoc) {
          let m = changedAssoc.get(target);
          if (!m) changedAssoc.set(target, (m = new Map()));
          m.set(id, byId.get(id) ?? []);
        }
      }
      if (changed.length >= BATCH) { const page = await republish(); if (page) yield page; }
      await opts.heartbeat?.();
    }
    if (changed.length > 0) { const page = await republish(); if (page) yield page; }
    if (sweep.changed > 0) this.log.info({ table: plan.table.name, ...sweep }, "association changes found by the sweep");
  }

  /** Enriches and converts one batch (≤ 1,000 records); `assoc`: their associations when already read. */
  private async convert(plan: TablePlan, objects: HubSpotObject[], stats: ReadStats, signal: AbortSignal, assoc?: Map<string, Map<string, AssociationTarget[]>>): Promise<SourceRecord[]> {
    assoc ??= await this.readAssociations(plan, objects.map((o) => o.id), stats, signal);
    const currencyProp = plan.object.currencyProperty;
    const ownCurrency = (props: Record<string, unknown>): string | null => {
      const own = currencyProp ? props[currencyProp] : null;
      return typeof own === "string" && own.trim() !== "" ? own.trim() : null;
    };
    if (plan.needsCurrency && plan.currencyFallback === undefined && objects.some((o) => ownCurrency(o.properties ?? {}) === null)) {
      plan.currencyFallback = (await this.account(signal)).currency;
    }
    const unresolvedBefore = plan.ctx.unresolved.size;
    let records = this.convertBatch(plan, objects, assoc, ownCurrency);
    if (plan.ctx.unresolved.size > unresolvedBefore && plan.ctx.owners && !this.archivedOwnersP) {
      // an owner id the active owners lack: read the archived owners once, convert the batch again
      await this.archivedOwners(signal);
      plan.ctx.unresolved.clear();
      records = this.convertBatch(plan, objects, assoc, ownCurrency);
    }
    return records;
  }

  private convertBatch(plan: TablePlan, objects: HubSpotObject[], assoc: Map<string, Map<string, AssociationTarget[]>>, ownCurrency: (props: Record<string, unknown>) => string | null): SourceRecord[] {
    return objects.map((o) => {
      const props = o.properties ?? {};
      const fields: Record<string, RawValue> = {};
      for (const f of plan.propertyFields) fields[f.field] = convertProperty(props[f.prop.name], f.prop, f.spec, plan.ctx);
      for (const c of plan.currencyColumns) fields[c.name] ??= props[c.name] ?? null;
      const associated = this.associationValues(plan, o.id, assoc);
      Object.assign(fields, associated);
      if (plan.needsCurrency) fields[CURRENCY_FIELD] = ownCurrency(props) ?? plan.currencyFallback ?? null;
      const modified = props[plan.object.lastModifiedProperty];
      const updatedAt = typeof modified === "string" && modified !== "" ? toIsoInstant(modified)
        : o.updatedAt ? new Date(o.updatedAt).toISOString() : null;
      return { externalId: o.id, name: recordName(plan.object.key, props, plan.nameProperties), sourceUpdatedAt: updatedAt, fields };
    });
  }

  async close(): Promise<void> {
    // Nothing held open: the client uses fetch without persistent state.
  }
}

/** Regroups API pages into batches of BATCH records (one associations read per type each), heartbeating per page. */
async function* inBatches(pages: AsyncIterable<HubSpotObject[]>, heartbeat?: () => Promise<void>): AsyncIterable<HubSpotObject[]> {
  let buffer: HubSpotObject[] = [];
  for await (const page of pages) {
    buffer.push(...page);
    while (buffer.length >= BATCH) {
      yield buffer.slice(0, BATCH);
      buffer = buffer.slice(BATCH);
    }
    await heartbeat?.();
  }
  if (buffer.length > 0) yield buffer;
}

function suggest(name: string, props: Map<string, PropertyDef>): string {
  const lower = name.toLowerCase();
  const close = [...props.keys()]
    .map((k) => ({ k, d: k.toLowerCase() === lower ? 0 : editDistance(lower, k.toLowerCase()) }))
    .filter((x) => x.d <= Math.max(1, Math.floor(name.length / 4)))
    .sort((a, b) => a.d - b.d || a.k.localeCompare(b.k))
    .slice(0, 3).map((x) => x.k);
  return close.length > 0 ? ` (did you mean ${close.join(", ")}?)` : "";
}

function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) cur[j] = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    prev = cur;
  }
  return prev[b.length]!;
}
