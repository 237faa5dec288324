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
 *  - REST below bulkThreshold records, Bulk API 2.0 above it, with result pages fetched here
 *    (bulk.ts). A full read decides from the count its table's last full read saved in the state
 *    (no call spent to learn it); otherwise the first REST page's totalSize decides, so small tables
 *    cost no extra call. The state also keeps how long the last Bulk job took, which the next job's
 *    first status poll waits.
 *    REST pages are followed through nextRecordsUrl one by one (never jsforce's autoFetch, which
 *    silently stops at maxFetch = 10,000). A REST query Salesforce gives up on (QUERY_TIMEOUT) goes
 *    through Bulk, or narrower SystemModstamp windows (windows.ts); an object too wide for one URL
 *    goes through Bulk, or REST queries of fewer fields joined by Id (chunks.ts).
 *  - Values leave exact (types.ts): numbers are read from the response text, never
 *    through floats; user references carry the user's email (read with the records through the
 *    relationship, `Owner.Email`); references carry `<field>__type`, the referenced object (the
 *    field's only target, or, for polymorphic WhoId and WhatId, the one describeGlobal's key
 *    prefixes name); CurrencyIsoCode rides along for amounts.
 *  - The custom `where` is parsed with a SOQL parser and re-composed from its syntax tree before
 *    use: a condition that does not parse, or that carries LIMIT/ORDER BY/…, is a ConfigError.
 *
 * The org's metadata and the tables' read plans are in plan.ts, the SOQL pieces in soql.ts, the
 * running of a query (REST pages or Bulk API 2.0) in query.ts, windows.ts and chunks.ts, the HTTP
 * client in client.ts and its errors in errors.ts.
 */
import { ConfigError, EtlError } from "../../../lib/errors.ts";
import { logger } from "../../../lib/log.ts";
import type { RawValue } from "../../../schemas/index.ts";
import type { ApiBudget, ReadOptions, SourceConnector, SourcePage, SourceRecord, TableCheck } from "../../connector.ts";
import type { TokenStore } from "../../oauth/token-store.ts";
import { SalesforceClient } from "./client.ts";
import type { SalesforceConnector, SalesforceTable } from "./config.ts";
import { SalesforceApiError, SalesforceLimitError, type ApiUsage } from "./errors.ts";
import { SalesforceMetadata, type TablePlan } from "./plan.ts";
import { MAX_REST_URL, executeQuery, readRest, restPages, type Batch, type QueryContext } from "./query.ts";
import { cursorCondition, cursorLowerMs, maxCursor, memoOf, queryPath, type Cursor, type ReadMemo, type SalesforceState } from "./soql.ts";
import { normalizeDateTime, rawValue } from "./types.ts";

const log = logger.child({ component: "salesforce" });
/** The key prefix of User ids (the same in every org). */
const USER_PREFIX = "005";

interface SalesforceSourceOptions {
  tokenStore?: TokenStore;
}

export class SalesforceSource implements SourceConnector {
  /** Full reads take their table's last record count and Bulk job duration from the saved state. */
  readonly hintsFromState = true;
  readonly config: SalesforceConnector;
  readonly client: SalesforceClient;
  private readonly metadata: SalesforceMetadata;
  /** What query.ts needs to run this source's queries. */
  private readonly queries: QueryContext;
  private userEmails: Map<string, string | null> | undefined;

  constructor(config: SalesforceConnector, opts: SalesforceSourceOptions = {}) {
    this.config = config;
    this.client = new SalesforceClient(config, { tokenStore: opts.tokenStore });
    this.metadata = new SalesforceMetadata(config, this.client, log);
    this.queries = { config, client: this.client, metadata: this.metadata, log };
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

  async check(): Promise<TableCheck[]> {
    await this.client.connect();
    const out: TableCheck[] = [];
    for (const table of this.config.tables) {
      const problems: string[] = [];
      const warnings: string[] = [];
      try {
        const r = await this.metadata.plan(table);
        problems.push(...r.problems);
        warnings.push(...r.warnings);
        if (r.plan) {
          const p = r.plan;
          const d = p.describe;
          const can = [d.createable && "create", d.updateable && "edit", d.deletable && "delete"].filter(Boolean);
          if (can.length > 0)
            warnings.push(`the connected user can ${can.join(", ")} ${d.name} records; qobra-sync only reads: prefer a read-only user or permission set`);
          if (p.wantsCorporateCurrency && !(await this.metadata.corporateCurrency())) {
            const used = this.config.defaultCurrency
              ? `the connector's defaultCurrency (${this.config.defaultCurrency})`
              : "sink.defaultCurrency (set the connector's defaultCurrency to be explicit)";
            warnings.push(
              `${d.name} has no CurrencyIsoCode (single-currency org) and the org's corporate currency cannot be read (no Organization.DefaultCurrencyIsoCode): amounts get ${used}`,
            );
          }
          await this.checkQuery(p, problems, warnings);
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

  /**
   * The exact query a read sends, limited to one row: field access, the where's fields and values. A
   * SELECT too long for a URL (Salesforce refuses URIs over 16 KB) is checked in narrower SELECTs that
   * each fit, together covering every field.
   */
  private async checkQuery(p: TablePlan, problems: string[], warnings: string[]): Promise<void> {
    const tail = ` FROM ${p.object}${p.where ? ` WHERE (${p.where})` : ""} LIMIT 1`;
    const fits = (select: string[]) => this.queryPath(`SELECT ${select.join(", ")}${tail}`, false).length <= MAX_REST_URL;
    const chunks: string[][] = [];
    for (const f of p.select) {
      const cur = chunks.at(-1);
      if (cur && fits([...cur, f])) cur.push(f);
      else chunks.push(f === "Id" ? [f] : ["Id", f]);
    }
    if (chunks.length > 1) {
      const how =
        p.table.api === "rest"
          ? "reads go through REST queries of fewer fields joined by Id (api: auto or bulk reads it in one Bulk API 2.0 job)"
          : "reads go through Bulk API 2.0 (REST queries of fewer fields joined by Id if a job is refused)";
      warnings.push(`the table's SELECT (${p.select.length} fields) is too long for a REST URL: ${how}; checked in ${chunks.length} narrower queries`);
    }
    for (const select of chunks) {
      try {
        await this.client.request("GET", this.queryPath(`SELECT ${select.join(", ")}${tail}`, false));
      } catch (e) {
        if (!(e instanceof SalesforceApiError)) throw e;
        problems.push(`Salesforce rejected the table's query (${e.errorCode}): ${e.message.replace(/^connector [^:]+: Salesforce answered [A-Z_0-9]+: /, "")}`);
        return;
      }
    }
  }

  async *read(tableName: string, opts: ReadOptions): AsyncIterable<SourcePage> {
    const table = this.tableConfig(tableName);
    const callsBefore = this.client.calls;
    try {
      const plan = await this.metadata.planOrThrow(table);
      // What the table's last runs learnt (its record count, its Bulk job's duration), whatever their kind.
      const memo = memoOf(opts.state, plan.sig);
      if (opts.full || !plan.cursorField) yield* this.readFull(plan, opts, memo);
      else yield* this.readIncremental(plan, opts, memo);
    } catch (e) {
      throw this.contextualize(table, e);
    } finally {
      log.info({ connector: this.config.id, table: tableName, apiCalls: this.client.calls - callsBefore, apiUsage: this.client.usage }, "Salesforce API usage");
    }
  }

  private contextualize(table: SalesforceTable, e: unknown): unknown {
    if (e instanceof SalesforceLimitError || !(e instanceof EtlError)) return e;
    if (
      e instanceof SalesforceApiError &&
      /^(MALFORMED_QUERY|INVALID_FIELD|INVALID_TYPE|INVALID_QUERY_FILTER_OPERATOR|INSUFFICIENT_ACCESS\w*|BULK_JOB_FAILED)$/.test(e.errorCode)
    ) {
      return new ConfigError(
        `connector ${this.config.id}, table ${table.name} (${table.object}): Salesforce rejected the query (${e.errorCode}): ` +
          `${e.message.replace(/^connector [^:]+: (Salesforce answered [A-Z_]+: )?/, "")}; check the table's where and fields (qobra-sync check ${this.config.id})`,
        e,
      );
    }
    return e;
  }

  private queryPath(soql: string, all: boolean): string {
    return queryPath(this.client.apiPath, soql, all);
  }
  private async *readFull(plan: TablePlan, opts: ReadOptions, memo: ReadMemo): AsyncGenerator<SourcePage> {
    const conds = [plan.hasIsDeleted ? "IsDeleted = false" : null, plan.where ? `(${plan.where})` : null].filter((c): c is string => c !== null);
    let max: Cursor | null = null;
    let n = 0;
    const q = { select: plan.select, conds, ordered: false, fromMs: null };
    for await (const batch of executeQuery(this.queries, plan, q, plan.hasIsDeleted, opts, { expected: memo.n ?? null, memo })) {
      const page = await this.convert(plan, batch);
      max = maxCursor(max, page.max);
      n += page.records.length;
      if (page.records.length > 0) yield { records: page.records, sourceTypes: plan.sourceTypes };
    }
    if (opts.signal.aborted) return;
    memo.n = n;
    const state = this.finalState(plan, max, opts, memo);
    if (state) yield { records: [], sourceTypes: plan.sourceTypes, state };
  }

  private async *readIncremental(plan: TablePlan, opts: ReadOptions, memo: ReadMemo): AsyncGenerator<SourcePage> {
    const field = plan.cursorField!.name;
    const state = this.validState(plan, opts.state);
    const bound = state ? cursorCondition(field, state, this.config.lookbackSeconds) : null;
    const fromMs = state ? cursorLowerMs(state, this.config.lookbackSeconds) : null;
    const all = plan.hasIsDeleted;
    // Records changed since the cursor that no longer match the where: gone from this table (REST, in
    // narrower windows if Salesforce gives up on the NOT, which is rarely selective).
    if (plan.where && bound) {
      const exits = { select: ["Id"], conds: [bound, `(NOT (${plan.where}))`], ordered: false, fromMs };
      for await (const { rows } of readRest(this.queries, plan, exits, all, opts)) {
        const ids = rows.map((r) => String(r.Id));
        if (ids.length > 0) yield { records: [], deletedIds: ids, sourceTypes: plan.sourceTypes };
      }
    }
    const conds = [bound, plan.where ? `(${plan.where})` : null].filter((c): c is string => c !== null);
    let max: Cursor | null = null;
    let savedMax: Cursor | null = null;
    const q = { select: plan.select, conds, ordered: true, fromMs };
    // The first REST page decides; a Bulk job (a large change set) is not timed against the full read's, nor remembered.
    for await (const batch of executeQuery(this.queries, plan, q, all, opts, { expected: null, memo: {} })) {
      const page = await this.convert(plan, batch);
      max = maxCursor(max, page.max);
      const pageState = batch.ordered && page.max ? this.stateOf(plan, page.max, memo) : undefined;
      if (pageState) savedMax = page.max;
      if (page.records.length > 0 || page.deletedIds.length > 0 || pageState) {
        yield { records: page.records, deletedIds: page.deletedIds, sourceTypes: plan.sourceTypes, ...(pageState ? { state: pageState } : {}) };
      }
    }
    if (opts.signal.aborted) return;
    if (max && max === savedMax) return;
    if (!max && state) return; // nothing changed: the saved cursor stays
    const final = this.finalState(plan, max, opts, memo);
    if (final) yield { records: [], sourceTypes: plan.sourceTypes, state: final };
  }

  private validState(plan: TablePlan, raw: unknown): SalesforceState | null {
    if (raw === null || raw === undefined) return null;
    const s = raw as Partial<SalesforceState>;
    const ok =
      s &&
      s.v === 1 &&
      s.field === plan.cursorField?.name &&
      typeof s.ts === "string" &&
      !Number.isNaN(Date.parse(s.ts)) &&
      (s.id === null || (typeof s.id === "string" && /^[A-Za-z0-9]{15,18}$/.test(s.id)));
    if (!ok) {
      log.warn({ connector: this.config.id, table: plan.table.name }, "the saved cursor is unreadable: reading the complete history");
      return null;
    }
    if (s.sig !== plan.sig) {
      log.info(
        { connector: this.config.id, table: plan.table.name },
        "the table's object, where or fields changed since the saved cursor: reading the complete history",
      );
      return null;
    }
    return s as SalesforceState;
  }

  private stateOf(plan: TablePlan, c: Cursor, memo: ReadMemo): SalesforceState {
    return { v: 1, field: plan.cursorField!.name, ts: new Date(c.ms).toISOString(), id: c.id, sig: plan.sig, ...memo };
  }

  /** The state a run ends with: the newest record it saw, else (an empty read) shortly before the run started. */
  private finalState(plan: TablePlan, max: Cursor | null, opts: ReadOptions, memo: ReadMemo): SalesforceState | null {
    if (!plan.cursorField) return null;
    if (max) return this.stateOf(plan, max, memo);
    const ms = opts.runStartedAt - Math.max(this.config.lookbackSeconds, 900) * 1000;
    return { v: 1, field: plan.cursorField.name, ts: new Date(ms).toISOString(), id: null, sig: plan.sig, ...memo };
  }

  /** Raw records of one batch, the ids it reports deleted, and the newest cursor in it. */
  private async convert(plan: TablePlan, batch: Batch): Promise<{ records: SourceRecord[]; deletedIds: string[]; max: Cursor | null }> {
    const { rows, csv } = batch;
    // User references without a relationship column for the email (rare): the users are looked up by id.
    const userRefs = plan.fields.filter((f) => f.type === "user" && f.field.type === "reference" && (!f.userKey || f.userKey === "email") && !f.email);
    if (userRefs.length > 0) {
      const ids = new Set<string>();
      for (const r of rows)
        for (const f of userRefs) {
          const v = r[f.field.name];
          if (typeof v === "string" && v !== "") ids.add(v);
        }
      await this.resolveUsers(ids);
    }
    const corporate = plan.wantsCorporateCurrency ? await this.metadata.corporateCurrency() : null;
    const byPrefix = plan.needsPrefixes ? (await this.metadata.global()).byPrefix : null;
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
      if (isDeleted && rawValue(isDeleted, r[isDeleted.name], csv) === true) {
        deletedIds.push(id);
        continue;
      }
      const fields: Record<string, RawValue> = {};
      for (const f of plan.fields) {
        const v = rawValue(f.field, r[f.field.name], csv);
        if (f.field.type === "reference") {
          const ref = typeof v === "string" && v !== "" ? v : null;
          if (f.type === "user") {
            fields[`${f.key}__id`] = ref;
            fields[f.key] = ref === null ? null : f.userKey && f.userKey !== "email" ? ref : this.emailOf(f.email, r, ref, csv);
          } else {
            fields[f.key] = ref;
            const only = f.field.referenceTo?.length === 1 ? f.field.referenceTo[0]! : null;
            fields[`${f.key}__type`] = ref === null ? null : (only ?? byPrefix?.get(ref.slice(0, 3)) ?? null);
          }
        } else {
          fields[f.key] = v;
        }
      }
      if (plan.currencyField) fields.CurrencyIsoCode = rawValue(plan.currencyField, r[plan.currencyField.name], csv);
      else if (plan.wantsCorporateCurrency) fields.CurrencyIsoCode = corporate ?? this.config.defaultCurrency ?? null; // null: the sink's

      for (const c of plan.currencyColumns) fields[c.key] = rawValue(c.field, r[c.field.name], csv);
      const name = plan.nameField ? rawValue(plan.nameField, r[plan.nameField.name], csv) : null;
      records.push({ externalId: id, name: name === null ? null : Array.isArray(name) ? name.join(";") : String(name), sourceUpdatedAt: updatedAt, fields });
    }
    return { records, deletedIds, max };
  }

  /**
   * The email of the user a reference names: from the row's relationship column (`Owner.Email`: REST nests it
   * as `{"Owner": {"Email": …}}`, Bulk CSV has an `Owner.Email` column), else from the users looked up. Only
   * user ids have one: a Group or Queue owner's (the Name entity's Email) is not a user's, so null.
   */
  private emailOf(column: string | null, r: Record<string, unknown>, ref: string, csv: boolean): string | null {
    if (!ref.startsWith(USER_PREFIX)) return null;
    if (column === null) return this.userEmails?.get(ref) ?? null;
    let v: unknown;
    if (csv) v = r[column];
    else {
      const dot = column.indexOf(".");
      const parent = r[column.slice(0, dot)];
      v = parent && typeof parent === "object" ? (parent as Record<string, unknown>)[column.slice(dot + 1)] : null;
    }
    return typeof v === "string" && v !== "" ? v : null;
  }

  /** Loads the users' emails (all users once, then any id not seen yet). Ids of non-users (Group, Queue) stay null. */
  private async resolveUsers(ids: Set<string>): Promise<void> {
    if (!this.userEmails) {
      const map = new Map<string, string | null>();
      for await (const rows of restPages(this.queries, "SELECT Id, Email FROM User", false)) {
        for (const u of rows) map.set(String(u.Id), typeof u.Email === "string" ? u.Email : null);
      }
      this.userEmails = map;
    }
    const map = this.userEmails;
    const missing = [...ids].filter((id) => !map.has(id) && id.startsWith(USER_PREFIX) && /^[A-Za-z0-9]{15,18}$/.test(id));
    for (let i = 0; i < missing.length; i += 200) {
      const chunk = missing.slice(i, i + 200);
      for (const id of chunk) map.set(id, null);
      const soql = `SELECT Id, Email FROM User WHERE Id IN (${chunk.map((id) => `'${id}'`).join(", ")})`;
      for await (const rows of restPages(this.queries, soql, false)) {
        for (const u of rows) map.set(String(u.Id), typeof u.Email === "string" ? u.Email : null);
      }
    }
  }

  async close(): Promise<void> {
    await this.client.close();
  }
}
