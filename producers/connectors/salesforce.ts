/**
 * Salesforce source (docs/salesforce.md). Reads each configured object through jsforce 3:
 *
 *  - Full runs read every live record (queryAll with IsDeleted = false where the object has
 *    IsDeleted, so archived Tasks/Events count as live) and end with a cursor state, so the next
 *    incremental continues from there. The worker infers deletes from what a full run did not see.
 *  - Incremental runs read queryAll ordered by (SystemModstamp, Id) — LastModifiedDate where the
 *    object has no SystemModstamp — from the saved cursor minus a lookback window, inclusively, so
 *    records on the cursor edge or committed late are read again rather than missed. Rows with
 *    IsDeleted = true become deletedIds; with a `where`, records that stopped matching it since
 *    the cursor are deleted too. Each REST page carries its (timestamp, Id) state.
 *  - REST below bulkThreshold records (the first REST page's totalSize decides, so small tables
 *    cost no extra call), Bulk API 2.0 above it, with result pages fetched here (salesforce-bulk.ts).
 *    REST pages are followed through nextRecordsUrl one by one (never jsforce's autoFetch, which
 *    silently stops at maxFetch = 10,000).
 *  - Values leave exact (salesforce-types.ts): numbers are read from the response text, never
 *    through floats; user references carry the user's email; references carry `<field>__type`,
 *    the referenced object resolved through describeGlobal's key prefixes (polymorphic WhoId,
 *    WhatId, OwnerId); CurrencyIsoCode rides along for amounts.
 *  - The custom `where` is parsed with a SOQL parser and re-composed from its syntax tree before
 *    use: a condition that does not parse, or that carries LIMIT/ORDER BY/…, is a ConfigError.
 */
import { createHash } from "node:crypto";
import { composeQuery, parseQuery } from "@jetstreamapp/soql-parser-js";
import type { SalesforceConnector, SalesforceTable } from "../../lib/config-salesforce.ts";
import type { QobraType } from "../../lib/config-common.ts";
import { ConfigError, EtlError } from "../../lib/errors.ts";
import { logger } from "../../lib/log.ts";
import type { RawValue } from "../../schemas/index.ts";
import type { ConnectorFactory, ReadOptions, SourceConnector, SourcePage, SourceRecord, TableCheck, ApiBudget } from "../connector.ts";
import type { TokenStore } from "../oauth/token-store.ts";
import { BulkJobFailedError, bulkQuery } from "./salesforce-bulk.ts";
import { SalesforceApiError, SalesforceClient, SalesforceLimitError, type ApiUsage } from "./salesforce-client.ts";
import { JsonNumber, defaultQobraType, incompatibility, normalizeDateTime, parseJsonLossless, rawValue, type SfField } from "./salesforce-types.ts";

export { runSalesforceAuth } from "./salesforce-auth.ts";
export { SalesforceApiError, SalesforceLimitError } from "./salesforce-client.ts";

const log = logger.child({ component: "salesforce" });

/** REST query URLs longer than this go through Bulk API 2.0 (a POST body) instead. */
const MAX_REST_URL = 15_000;

export const salesforceConnector: ConnectorFactory<SalesforceConnector> = {
  type: "salesforce",
  create: (config) => new SalesforceSource(config),
};

interface GlobalObject { name: string; keyPrefix: string | null; queryable: boolean; retrieveable?: boolean; custom?: boolean }
interface Global { byName: Map<string, GlobalObject>; byPrefix: Map<string, string> }

interface SObjectDescribe {
  name: string;
  keyPrefix?: string | null;
  queryable?: boolean;
  createable?: boolean;
  updateable?: boolean;
  deletable?: boolean;
  fields: SfField[];
}

interface OutField { key: string; field: SfField; type: QobraType; userKey: string | undefined }

interface TablePlan {
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
  where: string | null;
  sourceTypes: Record<string, string>;
  sig: string;
}

/** The cursor saved after each acknowledged page (JSON in the sync.state topic). */
export interface SalesforceState {
  v: 1;
  /** SystemModstamp or LastModifiedDate. */
  field: string;
  /** The cursor timestamp, ISO 8601 UTC. */
  ts: string;
  /** The Id of the last record at ts (tie-break). */
  id: string | null;
  /** Digest of object, cursor field, where and fields: a change restarts from the complete history. */
  sig: string;
}

type Row = Record<string, unknown>;
interface Batch { rows: Row[]; csv: boolean; ordered: boolean }

export interface SalesforceSourceOptions { tokenStore?: TokenStore }

export class SalesforceSource implements SourceConnector {
  readonly config: SalesforceConnector;
  readonly client: SalesforceClient;
  private globalCache: Global | undefined;
  private readonly describes = new Map<string, SObjectDescribe>();
  private userEmails: Map<string, string | null> | undefined;
  private corporate: string | null | undefined;

  constructor(config: SalesforceConnector, opts: SalesforceSourceOptions = {}) {
    this.config = config;
    this.client = new SalesforceClient(config, { tokenStore: opts.tokenStore });
  }

  /** The org's API usage from the last response's Sforce-Limit-Info, and the calls this connector made. */
  apiUsage(): { usage: ApiUsage | null; calls: number; refreshes: number; rotations: number } {
    return { usage: this.client.usage, calls: this.client.calls, refreshes: this.client.refreshes, rotations: this.client.rotations };
  }

  apiBudget(): ApiBudget {
    const u = this.client.usage;
    return { calls: this.client.calls, ...(u ? { used: u.used, limit: u.limit } : {}) };
  }

  private tableConfig(name: string): SalesforceTable {
    const t = this.config.tables.find((x) => x.name === name);
    if (!t) throw new ConfigError(`connector ${this.config.id} has no table ${name}`);
    return t;
  }

  private async getJson(path: string): Promise<unknown> {
    const res = await this.client.request("GET", path);
    return parseJsonLossless(res.body);
  }

  private async global(): Promise<Global> {
    if (this.globalCache) return this.globalCache;
    const g = await this.getJson(`${this.client.apiPath}/sobjects`) as { sobjects: GlobalObject[] };
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
      const near = [...g.byName.values()].map((x) => x.name).filter((n) => n.toLowerCase().includes(object.toLowerCase().replace(/__c$/, ""))).slice(0, 5);
      throw new ConfigError(`connector ${this.config.id}: Salesforce object ${object} does not exist or the connected user cannot see it${near.length ? ` (did you mean ${near.join(", ")}?)` : ""}`);
    }
    if (!o.queryable) throw new ConfigError(`connector ${this.config.id}: Salesforce object ${o.name} is not queryable`);
    return o;
  }

  private async describe(object: string): Promise<SObjectDescribe> {
    const o = await this.objectInfo(object);
    let d = this.describes.get(o.name);
    if (!d) {
      try {
        d = await this.getJson(`${this.client.apiPath}/sobjects/${encodeURIComponent(o.name)}/describe`) as SObjectDescribe;
      } catch (e) {
        if (e instanceof SalesforceApiError && e.errorCode === "NOT_FOUND") throw new ConfigError(`connector ${this.config.id}: Salesforce object ${o.name} cannot be described by the connected user`, e);
        throw e;
      }
      this.describes.set(o.name, d);
    }
    return d;
  }

  /** The table's read plan, or the list of what is wrong with its configuration. */
  private async plan(table: SalesforceTable): Promise<{ plan: TablePlan | null; problems: string[]; warnings: string[] }> {
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
        if (type) fields.push({ key: f.name, field: f, type, userKey: undefined });
      }
    } else {
      for (const [key, spec] of configured) {
        const f = get(key);
        if (!f) { problems.push(`field ${key} is not a field of ${d.name} (or the connected user cannot read it)${suggest(key, d.fields)}`); continue; }
        const bad = incompatibility(f, spec.type);
        if (bad) { problems.push(bad); continue; }
        fields.push({ key, field: f, type: spec.type, userKey: spec.userKey });
      }
    }
    const currencyField = get("CurrencyIsoCode") ?? null;
    const currencyColumns: Array<{ key: string; field: SfField }> = [];
    let wantsCorporateCurrency = false;
    for (const [key, spec] of configured) {
      if (spec.type !== "amount" || !spec.currencyColumn) continue;
      const col = spec.currencyColumn;
      if (col === "CurrencyIsoCode") { if (!currencyField) wantsCorporateCurrency = true; continue; }
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
    if (!cursorField) warnings.push(`${d.name} has neither SystemModstamp nor LastModifiedDate: incremental runs read every record (deletes are seen by full runs only)`);
    let where: string | null = null;
    if (table.where) {
      try { where = normalizeWhere(d.name, table.where); } catch (e) { problems.push((e as Error).message); }
    }
    if (problems.length > 0) return { plan: null, problems, warnings };

    const select: string[] = [];
    const add = (f: SfField | null | undefined) => { if (f && !select.some((s) => s.toLowerCase() === f.name.toLowerCase())) select.push(f.name); };
    add(get("Id"));
    add(nameField);
    add(cursorField);
    add(get("IsDeleted"));
    add(currencyField);
    for (const f of fields) add(f.field);
    for (const c of currencyColumns) add(c.field);
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
      .digest("hex").slice(0, 16);
    return {
      plan: {
        table, object: d.name, describe: d, byName, fields, select, nameField, cursorField,
        hasIsDeleted: !!get("IsDeleted"), currencyField, currencyColumns, wantsCorporateCurrency, where, sourceTypes, sig,
      },
      problems, warnings,
    };
  }

  private async planOrThrow(table: SalesforceTable): Promise<TablePlan> {
    const { plan, problems } = await this.plan(table);
    if (!plan) throw new ConfigError(`connector ${this.config.id}, table ${table.name} (${table.object}): ${problems.join("; ")}`);
    return plan;
  }

  async check(): Promise<TableCheck[]> {
    await this.client.connect();
    const out: TableCheck[] = [];
    for (const table of this.config.tables) {
      const problems: string[] = [];
      const warnings: string[] = [];
      try {
        const r = await this.plan(table);
        problems.push(...r.problems);
        warnings.push(...r.warnings);
        if (r.plan) {
          const p = r.plan;
          const d = p.describe;
          const can = [d.createable && "create", d.updateable && "edit", d.deletable && "delete"].filter(Boolean);
          if (can.length > 0) warnings.push(`the connected user can ${can.join(", ")} ${d.name} records; qobra-sync only reads: prefer a read-only user or permission set`);
          if (p.wantsCorporateCurrency && !(await this.corporateCurrency()) && !this.config.defaultCurrency) {
            warnings.push(`${d.name} has no CurrencyIsoCode (single-currency org) and the org's corporate currency could not be read: amounts use the sink's defaultCurrency (set defaultCurrency to be explicit)`);
          }
          // The exact query a read sends, limited to one row: field access, the where's fields and values.
          const soql = `SELECT ${p.select.join(", ")} FROM ${p.object}${p.where ? ` WHERE (${p.where})` : ""} LIMIT 1`;
          try {
            await this.client.request("GET", this.queryPath(soql, false));
          } catch (e) {
            if (e instanceof SalesforceApiError && !e.retriable) problems.push(`Salesforce rejected the table's query (${e.errorCode}): ${e.message.replace(/^connector [^:]+: Salesforce answered [A-Z_]+: /, "")}`);
            else throw e;
          }
        }
      } catch (e) {
        if (e instanceof ConfigError) problems.push(e.message.replace(`connector ${this.config.id}: `, ""));
        else throw e;
      }
      out.push({ table: table.name, ok: problems.length === 0, problems, warnings });
    }
    const u = this.client.usage;
    if (u && u.limit > 0 && u.used / u.limit >= 0.8 && out[0]) {
      out[0].warnings.push(`the org has used ${u.used} of its ${u.limit} daily API requests (${Math.round((100 * u.used) / u.limit)}%)`);
    }
    return out;
  }

  async *read(tableName: string, opts: ReadOptions): AsyncIterable<SourcePage> {
    const table = this.tableConfig(tableName);
    const callsBefore = this.client.calls;
    try {
      const plan = await this.planOrThrow(table);
      if (opts.full || !plan.cursorField) yield* this.readFull(plan, opts);
      else yield* this.readIncremental(plan, opts);
    } catch (e) {
      throw this.contextualize(table, e);
    } finally {
      log.info({ connector: this.config.id, table: tableName, apiCalls: this.client.calls - callsBefore, apiUsage: this.client.usage }, "Salesforce API usage");
    }
  }

  private contextualize(table: SalesforceTable, e: unknown): unknown {
    if (e instanceof SalesforceLimitError || !(e instanceof EtlError)) return e;
    if (e instanceof SalesforceApiError && !e.retriable && /^(MALFORMED_QUERY|INVALID_FIELD|INVALID_TYPE|INVALID_QUERY_FILTER_OPERATOR|INSUFFICIENT_ACCESS\w*|BULK_JOB_FAILED)$/.test(e.errorCode)) {
      return new ConfigError(`connector ${this.config.id}, table ${table.name} (${table.object}): Salesforce rejected the query (${e.errorCode}): `
        + `${e.message.replace(/^connector [^:]+: (Salesforce answered [A-Z_]+: )?/, "")}; check the table's where and fields (qobra-sync check ${this.config.id})`, e);
    }
    return e;
  }

  private queryPath(soql: string, all: boolean): string {
    return `${this.client.apiPath}/${all ? "queryAll" : "query"}?q=${encodeURIComponent(soql)}`;
  }

  private async *readFull(plan: TablePlan, opts: ReadOptions): AsyncGenerator<SourcePage> {
    const conds = [plan.hasIsDeleted ? "IsDeleted = false" : null, plan.where ? `(${plan.where})` : null].filter((c): c is string => c !== null);
    const soql = `SELECT ${plan.select.join(", ")} FROM ${plan.object}${conds.length ? ` WHERE ${conds.join(" AND ")}` : ""}`;
    let max: Cursor | null = null;
    for await (const batch of this.execute(plan, { rest: soql, bulk: soql }, plan.hasIsDeleted, opts)) {
      const page = await this.convert(plan, batch);
      max = maxCursor(max, page.max);
      if (page.records.length > 0) yield { records: page.records, sourceTypes: plan.sourceTypes };
    }
    if (opts.signal.aborted) return;
    const state = this.finalState(plan, max, opts);
    if (state) yield { records: [], sourceTypes: plan.sourceTypes, state };
  }

  private async *readIncremental(plan: TablePlan, opts: ReadOptions): AsyncGenerator<SourcePage> {
    const field = plan.cursorField!.name;
    const state = this.validState(plan, opts.state);
    const bound = state ? cursorCondition(field, state, this.config.lookbackSeconds) : null;
    const all = plan.hasIsDeleted;
    // Records changed since the cursor that no longer match the where: gone from this table.
    if (plan.where && bound) {
      const soql = `SELECT Id FROM ${plan.object} WHERE ${bound} AND (NOT (${plan.where}))`;
      for await (const rows of this.restPages(soql, all, opts)) {
        const ids = rows.map((r) => String(r.Id));
        if (ids.length > 0) yield { records: [], deletedIds: ids, sourceTypes: plan.sourceTypes };
      }
    }
    const conds = [bound, plan.where ? `(${plan.where})` : null].filter((c): c is string => c !== null);
    const base = `SELECT ${plan.select.join(", ")} FROM ${plan.object}${conds.length ? ` WHERE ${conds.join(" AND ")}` : ""}`;
    let max: Cursor | null = null;
    let savedMax: Cursor | null = null;
    for await (const batch of this.execute(plan, { rest: `${base} ORDER BY ${field} ASC, Id ASC`, bulk: base }, all, opts)) {
      const page = await this.convert(plan, batch);
      max = maxCursor(max, page.max);
      const pageState = batch.ordered && page.max ? this.stateOf(plan, page.max) : undefined;
      if (pageState) savedMax = page.max;
      if (page.records.length > 0 || page.deletedIds.length > 0 || pageState) {
        yield { records: page.records, deletedIds: page.deletedIds, sourceTypes: plan.sourceTypes, ...(pageState ? { state: pageState } : {}) };
      }
    }
    if (opts.signal.aborted) return;
    if (max && max === savedMax) return;
    if (!max && state) return; // nothing changed: the saved cursor stays
    const final = this.finalState(plan, max, opts);
    if (final) yield { records: [], sourceTypes: plan.sourceTypes, state: final };
  }

  private validState(plan: TablePlan, raw: unknown): SalesforceState | null {
    if (raw === null || raw === undefined) return null;
    const s = raw as Partial<SalesforceState>;
    const ok = s && s.v === 1 && s.field === plan.cursorField?.name && typeof s.ts === "string" && !Number.isNaN(Date.parse(s.ts))
      && (s.id === null || (typeof s.id === "string" && /^[A-Za-z0-9]{15,18}$/.test(s.id)));
    if (!ok) {
      log.warn({ connector: this.config.id, table: plan.table.name }, "the saved cursor is unreadable: reading the complete history");
      return null;
    }
    if (s.sig !== plan.sig) {
      log.info({ connector: this.config.id, table: plan.table.name }, "the table's object, where or fields changed since the saved cursor: reading the complete history");
      return null;
    }
    return s as SalesforceState;
  }

  private stateOf(plan: TablePlan, c: Cursor): SalesforceState {
    return { v: 1, field: plan.cursorField!.name, ts: new Date(c.ms).toISOString(), id: c.id, sig: plan.sig };
  }

  /** The state a run ends with: the newest record it saw, else (an empty read) shortly before the run started. */
  private finalState(plan: TablePlan, max: Cursor | null, opts: ReadOptions): SalesforceState | null {
    if (!plan.cursorField) return null;
    if (max) return this.stateOf(plan, max);
    const ms = opts.runStartedAt - Math.max(this.config.lookbackSeconds, 900) * 1000;
    return { v: 1, field: plan.cursorField.name, ts: new Date(ms).toISOString(), id: null, sig: plan.sig };
  }

  /**
   * Runs a query and yields batches of rows: REST pages (following nextRecordsUrl), or Bulk API 2.0
   * result pages when the table says so, when the first REST page's totalSize reaches
   * bulkThreshold, or when the query is too long for a URL.
   */
  private async *execute(plan: TablePlan, soql: { rest: string; bulk: string }, all: boolean, opts: ReadOptions): AsyncGenerator<Batch> {
    const mode = plan.table.api;
    const first = this.queryPath(soql.rest, all);
    const tooLong = first.length > MAX_REST_URL;
    if (mode === "rest" && tooLong) {
      throw new ConfigError(`connector ${this.config.id}, table ${plan.table.name}: the query selects too many fields for a REST URL (${first.length} characters); use api: bulk or list fewer fields`);
    }
    if (mode === "bulk" || tooLong) {
      yield* this.bulkBatches(plan, soql.bulk, all, opts);
      return;
    }
    let page = await this.restPage(first);
    if (mode === "auto" && !page.done && page.totalSize >= this.config.bulkThreshold) {
      let yielded = false;
      try {
        for await (const b of this.bulkBatches(plan, soql.bulk, all, opts)) { yielded = true; yield b; }
        return;
      } catch (e) {
        if (!(e instanceof BulkJobFailedError) || yielded) throw e;
        log.warn({ connector: this.config.id, table: plan.table.name, err: e.message }, "the Bulk API 2.0 job failed: reading through REST instead");
        page = await this.restPage(first);
      }
    }
    for (;;) {
      yield { rows: page.records, csv: false, ordered: true };
      if (page.done || !page.nextRecordsUrl || opts.signal.aborted) return;
      page = await this.restPage(page.nextRecordsUrl);
    }
  }

  private async *bulkBatches(plan: TablePlan, soql: string, all: boolean, opts: ReadOptions): AsyncGenerator<Batch> {
    const pages = bulkQuery(this.client, soql, {
      all, signal: opts.signal, heartbeat: opts.heartbeat, pollIntervalMs: this.config.bulkPollIntervalMs, timeoutMs: this.config.bulkTimeoutMs,
    });
    for await (const p of pages) {
      const names = p.columns.map((c) => plan.byName.get(c.toLowerCase())?.name ?? c);
      const rows = p.rows.map((cells) => {
        const r: Row = {};
        for (let i = 0; i < names.length; i++) r[names[i]!] = cells[i] ?? "";
        return r;
      });
      yield { rows, csv: true, ordered: false };
    }
  }

  private async restPage(path: string): Promise<{ records: Row[]; totalSize: number; done: boolean; nextRecordsUrl?: string }> {
    const body = await this.getJson(path) as { records?: Row[]; totalSize?: JsonNumber | number; done?: boolean; nextRecordsUrl?: string };
    const total = body.totalSize instanceof JsonNumber ? Number(body.totalSize.text) : Number(body.totalSize ?? 0);
    return { records: body.records ?? [], totalSize: total, done: body.done !== false, nextRecordsUrl: body.nextRecordsUrl };
  }

  /** Every row of a (small) query through REST pages. */
  private async *restPages(soql: string, all: boolean, opts: ReadOptions): AsyncGenerator<Row[]> {
    let page = await this.restPage(this.queryPath(soql, all));
    for (;;) {
      yield page.records;
      if (page.done || !page.nextRecordsUrl || opts.signal.aborted) return;
      page = await this.restPage(page.nextRecordsUrl);
    }
  }

  /** Raw records of one batch, the ids it reports deleted, and the newest cursor in it. */
  private async convert(plan: TablePlan, batch: Batch): Promise<{ records: SourceRecord[]; deletedIds: string[]; max: Cursor | null }> {
    const { rows, csv } = batch;
    const userRefs = plan.fields.filter((f) => f.type === "user" && f.field.type === "reference" && (!f.userKey || f.userKey === "email"));
    if (userRefs.length > 0) {
      const ids = new Set<string>();
      for (const r of rows) for (const f of userRefs) { const v = r[f.field.name]; if (typeof v === "string" && v !== "") ids.add(v); }
      await this.resolveUsers(ids);
    }
    const corporate = plan.wantsCorporateCurrency ? await this.corporateCurrency() : null;
    const { byPrefix } = await this.global();
    const records: SourceRecord[] = [];
    const deletedIds: string[] = [];
    let max: Cursor | null = null;
    const isDeleted = plan.byName.get("isdeleted");
    for (const r of rows) {
      const id = String(r.Id ?? "");
      let cursor: Cursor | null = null;
      let updatedAt: string | null = null;
      if (plan.cursorField) {
        const v = rawValue(plan.cursorField, r[plan.cursorField.name], csv);
        if (typeof v === "string") {
          updatedAt = normalizeDateTime(v);
          const ms = Date.parse(updatedAt);
          if (!Number.isNaN(ms)) cursor = { ms, id };
        }
      }
      max = maxCursor(max, cursor);
      if (isDeleted && rawValue(isDeleted, r[isDeleted.name], csv) === true) { deletedIds.push(id); continue; }
      const fields: Record<string, RawValue> = {};
      for (const f of plan.fields) {
        const v = rawValue(f.field, r[f.field.name], csv);
        if (f.field.type === "reference") {
          const ref = typeof v === "string" && v !== "" ? v : null;
          if (f.type === "user") {
            fields[`${f.key}__id`] = ref;
            fields[f.key] = ref === null ? null : (!f.userKey || f.userKey === "email") ? (this.userEmails?.get(ref) ?? null) : ref;
          } else {
            fields[f.key] = ref;
            fields[`${f.key}__type`] = ref === null ? null : (byPrefix.get(ref.slice(0, 3)) ?? null);
          }
        } else {
          fields[f.key] = v;
        }
      }
      if (plan.currencyField) fields.CurrencyIsoCode = rawValue(plan.currencyField, r[plan.currencyField.name], csv);
      else if (plan.wantsCorporateCurrency && corporate) fields.CurrencyIsoCode = corporate;
      for (const c of plan.currencyColumns) fields[c.key] = rawValue(c.field, r[c.field.name], csv);
      const name = plan.nameField ? rawValue(plan.nameField, r[plan.nameField.name], csv) : null;
      records.push({ externalId: id, name: name === null ? null : Array.isArray(name) ? name.join(";") : String(name), sourceUpdatedAt: updatedAt, fields });
    }
    return { records, deletedIds, max };
  }

  /** Loads the users' emails (all users once, then any id not seen yet). Ids of non-users (Group, Queue) stay null. */
  private async resolveUsers(ids: Set<string>): Promise<void> {
    const never = new AbortController().signal;
    if (!this.userEmails) {
      const map = new Map<string, string | null>();
      for await (const rows of this.restPages("SELECT Id, Email FROM User", false, { full: true, signal: never, state: null, runStartedAt: 0 })) {
        for (const u of rows) map.set(String(u.Id), typeof u.Email === "string" ? u.Email : null);
      }
      this.userEmails = map;
    }
    const map = this.userEmails;
    const userPrefix = (await this.global()).byName.get("user")?.keyPrefix ?? "005";
    const missing = [...ids].filter((id) => !map.has(id) && id.startsWith(userPrefix) && /^[A-Za-z0-9]{15,18}$/.test(id));
    for (let i = 0; i < missing.length; i += 200) {
      const chunk = missing.slice(i, i + 200);
      for (const id of chunk) map.set(id, null);
      const soql = `SELECT Id, Email FROM User WHERE Id IN (${chunk.map((id) => `'${id}'`).join(", ")})`;
      for await (const rows of this.restPages(soql, false, { full: true, signal: never, state: null, runStartedAt: 0 })) {
        for (const u of rows) map.set(String(u.Id), typeof u.Email === "string" ? u.Email : null);
      }
    }
  }

  /** The org's corporate currency (single-currency orgs have no CurrencyIsoCode fields), or null when it cannot be read. */
  private async corporateCurrency(): Promise<string | null> {
    if (this.corporate !== undefined) return this.corporate;
    try {
      const body = await this.getJson(this.queryPath("SELECT DefaultCurrencyIsoCode FROM Organization", false)) as { records?: Row[] };
      const v = body.records?.[0]?.DefaultCurrencyIsoCode;
      this.corporate = typeof v === "string" && /^[A-Z]{3}$/.test(v) ? v : null;
    } catch (e) {
      if (!(e instanceof SalesforceApiError) || e.retriable) throw e;
      log.debug({ connector: this.config.id, err: e.message }, "the org's corporate currency cannot be read");
      this.corporate = null;
    }
    return this.corporate;
  }

  async close(): Promise<void> {
    await this.client.close();
  }
}

interface Cursor { ms: number; id: string }

function maxCursor(a: Cursor | null, b: Cursor | null): Cursor | null {
  if (!a) return b;
  if (!b) return a;
  if (b.ms !== a.ms) return b.ms > a.ms ? b : a;
  return b.id > a.id ? b : a;
}

/** SOQL dateTime literal (documented form, whole seconds): 2024-01-02T03:04:05Z. */
export function soqlDateTime(ms: number): string {
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, "Z");
}

/**
 * The incremental lower bound: inclusive from (cursor − lookback) rounded down to the second;
 * with no lookback, strictly after the cursor or on it with a greater Id (the tie-break).
 */
export function cursorCondition(field: string, s: SalesforceState, lookbackSeconds: number): string {
  const t = Date.parse(s.ts) - lookbackSeconds * 1000;
  const floor = Math.floor(t / 1000) * 1000;
  const lit = soqlDateTime(floor);
  if (lookbackSeconds === 0 && floor === t && s.id && /^[A-Za-z0-9]{15,18}$/.test(s.id)) {
    return `(${field} > ${lit} OR (${field} = ${lit} AND Id > '${s.id}'))`;
  }
  return `${field} >= ${lit}`;
}

/**
 * A table's custom condition, validated and re-composed by the SOQL parser: what is sent is what
 * the parser understood, wrapped in parentheses by the caller. Anything beyond one condition
 * (LIMIT, ORDER BY, a stray parenthesis, a second statement) is refused with the parser's reason.
 */
export function normalizeWhere(object: string, where: string): string {
  const prefix = `SELECT Id FROM ${object} WHERE `;
  let q: ReturnType<typeof parseQuery>;
  try {
    q = parseQuery(prefix + where);
  } catch (e) {
    throw new ConfigError(`where is not a valid SOQL condition: ${String((e as Error).message).split("\n")[0]} (in: ${where})`, e);
  }
  const extra = Object.keys(q).filter((k) => !["fields", "sObject", "where"].includes(k) && (q as Record<string, unknown>)[k] !== undefined);
  if (extra.length > 0) {
    throw new ConfigError(`where must be a condition only, without ${extra.map(clauseName).join(", ")} (in: ${where})`);
  }
  if (!q.where) throw new ConfigError(`where is empty (in: ${where})`);
  const composed = composeQuery({ fields: q.fields, sObject: q.sObject, where: q.where });
  if (!composed.startsWith(prefix)) throw new ConfigError(`where could not be re-composed safely (in: ${where})`);
  return composed.slice(prefix.length);
}

function clauseName(key: string): string {
  const names: Record<string, string> = { limit: "LIMIT", offset: "OFFSET", orderBy: "ORDER BY", groupBy: "GROUP BY", having: "HAVING", for: "FOR …", update: "UPDATE …", withSecurityEnforced: "WITH SECURITY_ENFORCED", withAccessLevel: "WITH …", withDataCategory: "WITH DATA CATEGORY" };
  return names[key] ?? key;
}

function suggest(name: string, fields: SfField[]): string {
  const n = name.toLowerCase();
  const near = fields.map((f) => f.name)
    .filter((f) => { const l = f.toLowerCase(); return l.includes(n) || n.includes(l) || editDistance(l, n) <= 2; })
    .slice(0, 4);
  return near.length ? `; did you mean ${near.join(", ")}?` : "";
}

function editDistance(a: string, b: string): number {
  if (Math.abs(a.length - b.length) > 2) return 3;
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) cur[j] = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    prev = cur;
  }
  return prev[b.length]!;
}

