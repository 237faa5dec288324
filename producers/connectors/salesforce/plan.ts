/**
 * What the Salesforce source knows about an org before it reads a table: each object's describe,
 * the objects' key prefixes (describeGlobal, read only when a table has a polymorphic reference to
 * resolve, or to name the near misses of an object that does not exist), the org's corporate
 * currency, each read once per connector instance (i.e. per run); and the plan of a table's read
 * that follows: the fields and their Qobra types, the SELECT list (with `<relationship>.Email` for
 * user references, so that users' emails come with the records at no extra call), the name, cursor
 * and currency fields, the validated `where`, and a signature of all that (a change restarts from
 * the complete history). A table whose config does not match the org lists every problem.
 */
import { createHash } from "node:crypto";
import type { QobraType } from "../../../lib/config-common.ts";
import { ConfigError } from "../../../lib/errors.ts";
import type { Logger } from "../../../lib/log.ts";
import { editDistance } from "../../../lib/edit-distance.ts";
import type { SalesforceClient } from "./client.ts";
import { SalesforceApiError } from "./errors.ts";
import type { SalesforceConnector, SalesforceTable } from "./config.ts";
import { normalizeWhere, queryPath } from "./soql.ts";
import { defaultQobraType, incompatibility, parseJsonLossless, type SfField } from "./types.ts";

interface GlobalObject {
  name: string;
  keyPrefix: string | null;
  queryable: boolean;
  retrieveable?: boolean;
  custom?: boolean;
}
interface Global {
  byName: Map<string, GlobalObject>;
  byPrefix: Map<string, string>;
}

interface SObjectDescribe {
  name: string;
  keyPrefix?: string | null;
  queryable?: boolean;
  createable?: boolean;
  updateable?: boolean;
  deletable?: boolean;
  fields: SfField[];
}

interface OutField {
  key: string;
  field: SfField;
  type: QobraType;
  userKey: string | undefined;
  /** A user reference read as the user's email: the SELECT's relationship column holding it (`Owner.Email`), or null (looked up). */
  email: string | null;
}

export interface TablePlan {
  table: SalesforceTable;
  object: string;
  describe: SObjectDescribe;
  byName: Map<string, SfField>;
  fields: OutField[];
  select: string[];
  nameField: SfField | null;
  cursorField: SfField | null;
  hasIsDeleted: boolean;
  currencyField: SfField | null;
  /** Configured currencyColumns other than CurrencyIsoCode: raw key → field. */
  currencyColumns: Array<{ key: string; field: SfField }>;
  /** Amounts default to CurrencyIsoCode but the object has none: fill it with the corporate currency. */
  wantsCorporateCurrency: boolean;
  /** A reference field may point at more than one object: its `__type` comes from the key prefixes (describeGlobal). */
  needsPrefixes: boolean;
  where: string | null;
  sourceTypes: Record<string, string>;
  sig: string;
}

/** The org's metadata, cached per instance (i.e. per run), and the plans of the tables' reads. */
export class SalesforceMetadata {
  private readonly config: SalesforceConnector;
  private readonly client: SalesforceClient;
  private readonly log: Logger;
  private globalCache: Global | undefined;
  /** By the object's name in lower case (as configured, and as Salesforce spells it). */
  private readonly describes = new Map<string, SObjectDescribe>();
  private corporate: string | null | undefined;

  constructor(config: SalesforceConnector, client: SalesforceClient, log: Logger) {
    this.config = config;
    this.client = client;
    this.log = log;
  }

  async getJson(path: string): Promise<unknown> {
    const res = await this.client.request("GET", path);
    return parseJsonLossless(res.body);
  }

  async global(): Promise<Global> {
    if (this.globalCache) return this.globalCache;
    const g = (await this.getJson(`${this.client.apiPath}/sobjects`)) as { sobjects: GlobalObject[] };
    const byName = new Map<string, GlobalObject>();
    const byPrefix = new Map<string, string>();
    for (const o of g.sobjects ?? []) {
      byName.set(o.name.toLowerCase(), o);
      if (o.keyPrefix) byPrefix.set(o.keyPrefix, o.name);
    }
    this.globalCache = { byName, byPrefix };
    return this.globalCache;
  }

  private async objectInfo(object: string): Promise<GlobalObject> {
    const g = await this.global();
    const o = g.byName.get(object.toLowerCase());
    if (!o) {
      const near = [...g.byName.values()]
        .map((x) => x.name)
        .filter((n) => n.toLowerCase().includes(object.toLowerCase().replace(/__c$/, "")))
        .slice(0, 5);
      throw new ConfigError(
        `connector ${this.config.id}: Salesforce object ${object} does not exist or the connected user cannot see it${near.length ? ` (did you mean ${near.join(", ")}?)` : ""}`,
      );
    }
    if (!o.queryable) throw new ConfigError(`connector ${this.config.id}: Salesforce object ${o.name} is not queryable`);
    return o;
  }

  /** One describe per object per run, asked for directly: describeGlobal only explains an object that is not found. */
  private async describe(object: string): Promise<SObjectDescribe> {
    const cached = this.describes.get(object.toLowerCase());
    if (cached) return cached;
    let d: SObjectDescribe;
    try {
      d = (await this.getJson(`${this.client.apiPath}/sobjects/${encodeURIComponent(object)}/describe`)) as SObjectDescribe;
    } catch (e) {
      if (!(e instanceof SalesforceApiError && e.errorCode === "NOT_FOUND")) throw e;
      const o = await this.objectInfo(object); // unknown: names the near misses
      throw new ConfigError(`connector ${this.config.id}: Salesforce object ${o.name} cannot be described by the connected user`, e);
    }
    if (d.queryable === false) throw new ConfigError(`connector ${this.config.id}: Salesforce object ${d.name} is not queryable`);
    this.describes.set(object.toLowerCase(), d);
    this.describes.set(d.name.toLowerCase(), d);
    return d;
  }

  /** The table's read plan, or the list of what is wrong with its configuration. */
  async plan(table: SalesforceTable): Promise<{ plan: TablePlan | null; problems: string[]; warnings: string[] }> {
    const problems: string[] = [];
    const warnings: string[] = [];
    const d = await this.describe(table.object);
    const byName = new Map(d.fields.map((f) => [f.name.toLowerCase(), f] as const));
    const get = (n: string) => byName.get(n.toLowerCase());
    const fields: OutField[] = [];
    const configured = Object.entries(table.fields);
    if (configured.length === 0) {
      for (const f of d.fields) {
        const type = defaultQobraType(f);
        if (type) fields.push({ key: f.name, field: f, type, userKey: undefined, email: emailColumn(f, type, undefined) });
      }
    } else {
      for (const [key, spec] of configured) {
        const f = get(key);
        if (!f) {
          problems.push(`field ${key} is not a field of ${d.name} (or the connected user cannot read it)${suggest(key, d.fields)}`);
          continue;
        }
        const bad = incompatibility(f, spec.type);
        if (bad) {
          problems.push(bad);
          continue;
        }
        fields.push({ key, field: f, type: spec.type, userKey: spec.userKey, email: emailColumn(f, spec.type, spec.userKey) });
      }
    }
    const currencyField = get("CurrencyIsoCode") ?? null;
    const currencyColumns: Array<{ key: string; field: SfField }> = [];
    let wantsCorporateCurrency = false;
    for (const [key, spec] of configured) {
      if (spec.type !== "amount" || !spec.currencyColumn) continue;
      const col = spec.currencyColumn;
      if (col === "CurrencyIsoCode") {
        if (!currencyField) wantsCorporateCurrency = true;
        continue;
      }
      const f = get(col);
      if (!f) problems.push(`currencyColumn ${col} of field ${key} is not a field of ${d.name}`);
      else if (!currencyColumns.some((c) => c.key === col)) currencyColumns.push({ key: col, field: f });
    }
    if (configured.length === 0 && !currencyField && fields.some((f) => f.type === "amount")) wantsCorporateCurrency = true;
    let nameField: SfField | null = null;
    if (table.nameField) {
      nameField = get(table.nameField) ?? null;
      if (!nameField) problems.push(`nameField ${table.nameField} is not a field of ${d.name}`);
    } else {
      nameField = get("Name") ?? d.fields.find((f) => f.nameField) ?? null;
      if (!nameField) warnings.push(`${d.name} has no Name field; records get no display name (set nameField)`);
    }
    const cursorField = get("SystemModstamp") ?? get("LastModifiedDate") ?? null;
    if (!cursorField)
      warnings.push(`${d.name} has neither SystemModstamp nor LastModifiedDate: incremental runs read every record (deletes are seen by full runs only)`);
    let where: string | null = null;
    if (table.where) {
      try {
        where = normalizeWhere(d.name, table.where);
      } catch (e) {
        problems.push((e as Error).message);
      }
    }
    if (problems.length > 0) return { plan: null, problems, warnings };

    const select: string[] = [];
    const add = (f: SfField | null | undefined) => {
      if (f && !select.some((s) => s.toLowerCase() === f.name.toLowerCase())) select.push(f.name);
    };
    add(get("Id"));
    add(nameField);
    add(cursorField);
    add(get("IsDeleted"));
    add(currencyField);
    for (const f of fields) add(f.field);
    for (const c of currencyColumns) add(c.field);
    for (const f of fields) if (f.email && !select.some((s) => s.toLowerCase() === f.email!.toLowerCase())) select.push(f.email);
    const sourceTypes: Record<string, string> = {};
    for (const f of fields) {
      sourceTypes[f.key] = `sf:${f.field.type}`;
      if (f.field.type === "reference" && f.type === "user") sourceTypes[`${f.key}__id`] = "sf:reference";
      else if (f.field.type === "reference") sourceTypes[`${f.key}__type`] = "sf:sobjecttype";
    }
    if (currencyField || wantsCorporateCurrency) sourceTypes.CurrencyIsoCode = "sf:picklist";
    for (const c of currencyColumns) sourceTypes[c.key] = `sf:${c.field.type}`;
    const sig = createHash("sha256")
      .update(JSON.stringify([d.name, cursorField?.name ?? null, where, fields.map((f) => [f.key, f.type, f.userKey ?? null]).sort()]))
      .digest("hex")
      .slice(0, 16);
    return {
      plan: {
        table,
        object: d.name,
        describe: d,
        byName,
        fields,
        select,
        nameField,
        cursorField,
        hasIsDeleted: !!get("IsDeleted"),
        currencyField,
        currencyColumns,
        wantsCorporateCurrency,
        needsPrefixes: fields.some((f) => f.field.type === "reference" && f.type !== "user" && (f.field.referenceTo?.length ?? 0) !== 1),
        where,
        sourceTypes,
        sig,
      },
      problems,
      warnings,
    };
  }

  async planOrThrow(table: SalesforceTable): Promise<TablePlan> {
    const { plan, problems } = await this.plan(table);
    if (!plan) throw new ConfigError(`connector ${this.config.id}, table ${table.name} (${table.object}): ${problems.join("; ")}`);
    return plan;
  }

  /** The org's corporate currency (single-currency orgs have no CurrencyIsoCode fields), or null when it cannot be read. */
  async corporateCurrency(): Promise<string | null> {
    if (this.corporate !== undefined) return this.corporate;
    try {
      const body = (await this.getJson(queryPath(this.client.apiPath, "SELECT DefaultCurrencyIsoCode FROM Organization", false))) as {
        records?: Array<Record<string, unknown>>;
      };
      const v = body.records?.[0]?.DefaultCurrencyIsoCode;
      this.corporate = typeof v === "string" && /^[A-Z]{3}$/.test(v) ? v : null;
    } catch (e) {
      if (!(e instanceof SalesforceApiError)) throw e;
      this.log.debug({ connector: this.config.id, err: e.message }, "the org's corporate currency cannot be read");
      this.corporate = null;
    }
    return this.corporate;
  }
}

/**
 * The relationship column that holds a user reference's email (`Owner.Email`, `Payee__r.Email`): read with
 * the records, so no query of the users is needed. Polymorphic owners (User or Group) go through the Name
 * entity, which has Email too; the source keeps it only for user ids. Null when the field has no
 * relationship name (then the users are looked up by id).
 */
function emailColumn(f: SfField, type: QobraType, userKey: string | undefined): string | null {
  if (type !== "user" || f.type !== "reference" || (userKey && userKey !== "email") || !f.relationshipName) return null;
  return `${f.relationshipName}.Email`;
}

function suggest(name: string, fields: SfField[]): string {
  const n = name.toLowerCase();
  const near = fields
    .map((f) => f.name)
    .filter((f) => {
      const l = f.toLowerCase();
      return l.includes(n) || n.includes(l) || editDistance(l, n) <= 2;
    })
    .slice(0, 4);
  return near.length ? `; did you mean ${near.join(", ")}?` : "";
}
