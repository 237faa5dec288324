/**
 * What the HubSpot source knows about a portal before it reads a table: the objects (standard, from
 * the catalog; custom, from the portal's schemas), their properties, the owners, the pipelines'
 * labels and the account's currency and zone, each read once per connector instance (i.e. per
 * run); and the plan of a table's read that follows from them: which properties to fetch, which
 * fields are associations, how to name and convert each record. A table whose fields do not match
 * the portal fails here with every problem listed (a ConfigError).
 */
import type { FieldSpec } from "../../../lib/config-common.ts";
import { ConfigError } from "../../../lib/errors.ts";
import type { Logger } from "../../../lib/log.ts";
import { editDistance } from "../../../lib/edit-distance.ts";
import type { HubSpotApi } from "./api.ts";
import type { OwnerDef, PropertyDef, SchemaDef } from "./api-types.ts";
import { CURRENCY_FIELD, standardObject } from "./catalog.ts";
import type { HubSpotConnector, HubSpotTable } from "./config.ts";
import type { WindowStats } from "./search.ts";
import { incompatibility, ownerIndex, sourceTypeOf, type OwnerIndex, type ValueContext } from "./values.ts";

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
interface AssociationField {
  field: string;
  spec: FieldSpec;
  target: ResolvedObject;
  mode: AssociationMode;
}
interface PropertyField {
  field: string;
  spec: FieldSpec;
  prop: PropertyDef;
}

export interface TablePlan {
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

/** The property listing the ids merged into a record (";"-separated). */
export const MERGED_IDS_PROPERTY = "hs_merged_object_ids";

export const PIPELINE_PROPS = new Set(["pipeline", "hs_pipeline"]);
export const STAGE_PROPS = new Set(["dealstage", "hs_pipeline_stage"]);

/** The portal's metadata, cached per instance (i.e. per run), and the plans of the tables' reads. */
export class HubSpotMetadata {
  private readonly config: HubSpotConnector;
  private readonly api: HubSpotApi;
  private readonly log: Logger;
  private schemasP: Promise<SchemaDef[]> | null = null;
  private readonly propsP = new Map<string, Promise<Map<string, PropertyDef>>>();
  private ownersP: Promise<OwnerIndex> | null = null;
  private archivedOwnersP: Promise<void> | null = null;
  private accountP: Promise<{ currency: string | null; timeZone: string }> | null = null;

  constructor(config: HubSpotConnector, api: HubSpotApi, log: Logger) {
    this.config = config;
    this.api = api;
    this.log = log;
  }

  /** True once the archived owners were added to the owner index (they are read at most once). */
  get archivedOwnersRead(): boolean {
    return this.archivedOwnersP !== null;
  }

  private schemas(signal?: AbortSignal): Promise<SchemaDef[]> {
    this.schemasP ??= this.api.schemas(signal);
    this.schemasP.catch(() => {
      this.schemasP = null;
    });
    return this.schemasP;
  }

  /** Resolves a configured object (or association field) name; null when no such object exists. */
  async resolveObject(name: string, signal?: AbortSignal): Promise<ResolvedObject | null> {
    const std = standardObject(name);
    if (std) {
      return {
        api: std.object,
        key: std.object,
        lastModifiedProperty: std.lastModifiedProperty,
        nameProperties: std.nameProperties,
        currencyProperty: std.currencyProperty,
        custom: false,
      };
    }
    const wanted = name.trim().toLowerCase();
    const schema = (await this.schemas(signal)).find((s) =>
      [s.name, s.objectTypeId, s.fullyQualifiedName, s.id ? `2-${s.id}` : undefined].some((x) => typeof x === "string" && x.toLowerCase() === wanted),
    );
    if (!schema) return null;
    return {
      api: schema.objectTypeId,
      key: schema.name,
      lastModifiedProperty: "hs_lastmodifieddate",
      nameProperties: schema.primaryDisplayProperty ? [schema.primaryDisplayProperty] : [],
      custom: true,
    };
  }

  async requireObject(table: HubSpotTable, signal?: AbortSignal): Promise<ResolvedObject> {
    const o = await this.resolveObject(table.object, signal);
    if (!o)
      throw new ConfigError(
        `connector ${this.config.id}, table ${table.name}: HubSpot has no object ${JSON.stringify(table.object)} (standard: deals, companies, contacts, line_items, meetings, calls, emails, tasks, goals, tickets, products, notes; or a custom object's name)`,
      );
    return o;
  }

  properties(objectApi: string, signal?: AbortSignal): Promise<Map<string, PropertyDef>> {
    let p = this.propsP.get(objectApi);
    if (!p) {
      p = this.api.properties(objectApi, signal).then((list) => new Map(list.filter((x) => !x.archived).map((x) => [x.name, x])));
      p.catch(() => this.propsP.delete(objectApi));
      this.propsP.set(objectApi, p);
    }
    return p;
  }

  /** The active owners; archived ones are added by archivedOwners() when a record names an id the active ones lack. */
  owners(signal?: AbortSignal): Promise<OwnerIndex> {
    this.ownersP ??= this.api.owners(false, signal).then((active) => ownerIndex(active as OwnerDef[]));
    this.ownersP.catch(() => {
      this.ownersP = null;
    });
    return this.ownersP;
  }

  /** Adds the archived owners to the index (once): an active owner keeps its ids. */
  archivedOwners(signal?: AbortSignal): Promise<void> {
    this.archivedOwnersP ??= (async () => {
      const [index, archived] = await Promise.all([this.owners(signal), this.api.owners(true, signal)]);
      const more = ownerIndex(archived as OwnerDef[]);
      for (const [k, v] of more.byOwnerId) if (!index.byOwnerId.has(k)) index.byOwnerId.set(k, v);
      for (const [k, v] of more.byUserId) if (!index.byUserId.has(k)) index.byUserId.set(k, v);
    })();
    this.archivedOwnersP.catch(() => {
      this.archivedOwnersP = null;
    });
    return this.archivedOwnersP;
  }

  /** The portal's company currency and time zone; unknown (null / UTC) if the account API refuses. */
  account(signal?: AbortSignal): Promise<{ currency: string | null; timeZone: string }> {
    this.accountP ??= this.api.accountInfo(signal).then(
      (a) => ({ currency: typeof a.companyCurrency === "string" && a.companyCurrency !== "" ? a.companyCurrency : null, timeZone: a.timeZone || "UTC" }),
      (e: unknown) => {
        if (e instanceof ConfigError) {
          this.log.warn(
            { err: (e as Error).message },
            "cannot read the portal's account details; amounts without a currency fall back to defaultCurrency / sink.defaultCurrency, datetimes read as dates use UTC",
          );
          return { currency: null, timeZone: "UTC" };
        }
        this.accountP = null;
        throw e;
      },
    );
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
  async resolveFields(
    table: HubSpotTable,
    object: ResolvedObject,
    props: Map<string, PropertyDef>,
    signal?: AbortSignal,
  ): Promise<{ propertyFields: PropertyField[]; associationFields: AssociationField[]; currencyColumns: PropertyDef[]; problems: string[] }> {
    const propertyFields: PropertyField[] = [];
    const associationFields: AssociationField[] = [];
    const currencyColumns: PropertyDef[] = [];
    const problems: string[] = [];
    for (const [field, spec] of Object.entries(table.fields)) {
      const prop = props.get(field);
      if (spec.type === "object" || (!prop && (spec.type === "multipicklist" || spec.type === "string"))) {
        const target = await this.resolveObject(field, signal);
        if (!target) {
          problems.push(
            spec.type === "object"
              ? `field ${field}: object fields are associations named after the associated object type (companies, contacts, deals, line_items, meetings, or a custom object's name), and HubSpot has no object ${field}`
              : `field ${field} is not a property of ${object.key}${suggest(field, props)}`,
          );
          continue;
        }
        associationFields.push({ field, spec, target, mode: spec.type === "object" ? "primary" : spec.type === "multipicklist" ? "list" : "text" });
        continue;
      }
      if (!prop) {
        problems.push(`field ${field} is not a property of ${object.key}${suggest(field, props)}`);
        continue;
      }
      const bad = incompatibility(prop, spec.type);
      if (bad) {
        problems.push(`field ${field}: ${bad}`);
        continue;
      }
      propertyFields.push({ field, spec, prop });
      if (spec.currencyColumn && spec.currencyColumn !== CURRENCY_FIELD) {
        const c = props.get(spec.currencyColumn);
        if (!c) problems.push(`currencyColumn ${spec.currencyColumn} of field ${field} is not a property of ${object.key}`);
        else currencyColumns.push(c);
      }
    }
    return { propertyFields, associationFields, currencyColumns, problems };
  }

  async plan(table: HubSpotTable, signal: AbortSignal): Promise<TablePlan> {
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
    if (object.key === "contacts") {
      fetch.add("firstname");
      fetch.add("lastname");
    }
    for (const f of propertyFields) fetch.add(f.prop.name);
    for (const c of currencyColumns) fetch.add(c.name);
    if (needsCurrency && object.currencyProperty && props.has(object.currencyProperty)) fetch.add(object.currencyProperty);
    // The ids merged into a record: the incremental run deletes them (stale.ts).
    fetch.add(MERGED_IDS_PROPERTY);
    for (const p of fetch) if (!props.has(p)) fetch.delete(p);

    const sourceTypes: Record<string, string> = {};
    for (const f of propertyFields) sourceTypes[f.field] = sourceTypeOf(f.prop);
    for (const c of currencyColumns) sourceTypes[c.name] ??= sourceTypeOf(c);
    for (const a of associationFields) sourceTypes[a.field] = "hs:association";

    return {
      table,
      object,
      propertyFields,
      associationFields,
      currencyColumns,
      needsCurrency,
      currencyFallback: this.config.defaultCurrency ?? account.currency,
      fetch: [...fetch].sort(),
      sourceTypes,
      nameProperties,
      ctx: { owners, labels, timeZone: account.timeZone, unresolved: new Set() },
    };
  }
}

export function suggest(name: string, props: Map<string, PropertyDef>): string {
  const lower = name.toLowerCase();
  const close = [...props.keys()]
    .map((k) => ({ k, d: k.toLowerCase() === lower ? 0 : editDistance(lower, k.toLowerCase()) }))
    .filter((x) => x.d <= Math.max(1, Math.floor(name.length / 4)))
    .sort((a, b) => a.d - b.d || a.k.localeCompare(b.k))
    .slice(0, 3)
    .map((x) => x.k);
  return close.length > 0 ? ` (did you mean ${close.join(", ")}?)` : "";
}
