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
 *    date windows that never meet the 10,000-result cap (search.ts), plus the records
 *    archived since (the list endpoint with `archived=true`; archiving moves no timestamp), plus
 *    the records whose associations changed: adding or removing an association moves no
 *    timestamp either, so the association sweep reads the associations of every record the
 *    pipeline holds and this run did not read, compares them with what the raw topic holds
 *    (ReadOptions.published), and reads again the records that differ.
 *  - Incremental runs also delete the ids merged into the records they read (`hs_merged_object_ids`)
 *    and, for filtered tables, the changed records that no longer match the filter (stale.ts).
 *  - Reconciliation runs list every id the portal holds with the table's filter (`listIds`, ids-only
 *    searches); the worker deletes the others (purged records among them).
 *  - The cursor (the start of this run) is yielded once, after the table's last page: the worker
 *    saves it only once everything before it was acknowledged, so a failed run re-reads.
 *  - Records are enriched per batch of up to 1,000: associations v4 batch reads (one call per
 *    associated type), owner ids → owner emails (archived owners included), pipeline and stage
 *    ids → labels for picklist fields, the record's currency.
 *
 * The portal's metadata and the tables' read plans are in plan.ts, the check in check.ts, the
 * association sweep in associations.ts, the batching and conversion of records in records.ts,
 * the API client in api.ts.
 */
import { type EgressGuard, egressGuardOf } from "../../../lib/egress.ts";
import { ConfigError, TableSkippedError } from "../../../lib/errors.ts";
import { logger, type Logger } from "../../../lib/log.ts";
import type { ApiBudget, ReadSlice, ReadOptions, SourceConnector, SourcePage, TableCheck } from "../../connector.ts";
import type { BudgetStore } from "../../shared-rate-limiter.ts";
import { HubSpotApi } from "./api.ts";
import type { SearchPage } from "./api-types.ts";
import { BATCH, sweepAssociations, type SweepContext } from "./associations.ts";
import { standardObject } from "./catalog.ts";
import { checkHubSpot } from "./check.ts";
import type { HubSpotConnector } from "./config.ts";
import { MissingScopesError } from "./errors.ts";
import { realClock, type HubSpotClock } from "./limits.ts";
import { HubSpotMetadata, type ReadStats, type TablePlan } from "./plan.ts";
import type { HubSpotFilterGroup } from "./filter.ts";
import { convertObjects, inBatches } from "./records.ts";
import { listAll, newWindowStats, planWindows, searchRange } from "./search.ts";
import { mergedIdsOf, mergedInRange, staleIds, tableIds, type IdSearchStats, type StaleInput } from "./stale.ts";
import type { TokenStoreLike } from "./tokens.ts";

interface HubSpotSourceOptions {
  /** Time and sleeping (tests: the simulator's clock). */
  clock?: HubSpotClock;
  tokenStore?: () => Promise<TokenStoreLike | null>;
  log?: Logger;
  maxRateLimitRetries?: number;
  maxTransientRetries?: number;
  /** The worker's PostgreSQL-backed rate limits, shared by every worker process (unless `rateLimits.shared: false`). */
  sharedLimits?: BudgetStore;
}

export function createHubSpotSource(config: HubSpotConnector, options: HubSpotSourceOptions = {}): HubSpotSource {
  return new HubSpotSource(config, options);
}

/**
 * The state saved after a table's read: the start of the run that read it (the next cursor).
 * (States of earlier versions also held an association snapshot; it is ignored: the raw topic is
 * the snapshot now.)
 */
interface HubSpotState {
  v: 1;
  cursor: number;
  cursorAt: string;
}

function parseState(state: unknown): HubSpotState | null {
  if (state && typeof state === "object") {
    const s = state as Partial<HubSpotState>;
    if (s.v === 1 && typeof s.cursor === "number" && Number.isFinite(s.cursor)) {
      return { v: 1, cursor: s.cursor, cursorAt: new Date(s.cursor).toISOString() };
    }
  }
  return null;
}

/** The statistics of one table read, before anything is read. */
function newReadStats(mode: ReadStats["mode"], from: number | null, to: number): ReadStats {
  return { ...newWindowStats(), mode, from, to, deleted: 0, associationCalls: 0, unresolvedOwners: [], sweep: null };
}

/** What every search of a table's date range shares: the object, its last-modified property, the fields, the filter. */
function rangeSearch(api: HubSpotApi, plan: TablePlan, filterGroups: HubSpotFilterGroup[] | undefined, maxWindowRecords: number, signal: AbortSignal) {
  return {
    api,
    objectType: plan.object.api,
    lastModifiedProperty: plan.object.lastModifiedProperty,
    properties: plan.fetch,
    filterGroups: filterGroups ?? [],
    maxWindowRecords,
    signal,
  };
}

/**
 * The ids of the table's archived records, in batches of up to BATCH: all of them when `from` is
 * null, else those archived since `from` (and those whose archive time is unknown).
 */
async function* archivedIds(api: HubSpotApi, plan: TablePlan, from: number | null, signal: AbortSignal): AsyncGenerator<string[]> {
  let deleted: string[] = [];
  for await (const page of listAll(api, plan.object.api, ["hs_object_id"], true, signal)) {
    for (const o of page) {
      const at = o.archivedAt === undefined ? undefined : new Date(o.archivedAt).getTime();
      if (from === null || at === undefined || !Number.isFinite(at) || at >= from) deleted.push(o.id);
    }
    if (deleted.length >= BATCH) {
      yield deleted;
      deleted = [];
    }
  }
  if (deleted.length > 0) yield deleted;
}

export class HubSpotSource implements SourceConnector {
  readonly config: HubSpotConnector;
  readonly api: HubSpotApi;
  /** Statistics of the last read() of each table (tests, benchmarks). */
  readonly lastRead = new Map<string, ReadStats>();
  private readonly log: Logger;
  /** The network guard of a tenant's connector (lib/egress.ts); none for the config file's. */
  private readonly guard: EgressGuard | undefined;
  private readonly clock: HubSpotClock;
  private readonly metadata: HubSpotMetadata;
  private readonly sweepContext: SweepContext;
  /** First pages planSlices read for ranges it left to read() (used once). */
  private readonly firstPages = new Map<string, { from: number; to: number; page: SearchPage }>();

  constructor(config: HubSpotConnector, options: HubSpotSourceOptions = {}) {
    this.config = config;
    this.clock = options.clock ?? realClock;
    this.log = options.log ?? logger.child({ component: "hubspot", connector: config.id });
    this.guard = egressGuardOf(config)?.label(config.baseUrl, "baseUrl");
    this.api = new HubSpotApi({
      connectorId: config.id,
      baseUrl: config.baseUrl,
      clientId: config.clientId,
      clientSecret: config.clientSecret,
      refreshToken: config.refreshToken,
      clock: this.clock,
      rateLimits: config.rateLimits,
      requestTimeoutMs: config.requestTimeoutMs,
      tokenStore: options.tokenStore,
      log: this.log,
      maxRateLimitRetries: options.maxRateLimitRetries,
      maxTransientRetries: options.maxTransientRetries,
      sharedLimits: config.rateLimits.shared === false ? undefined : options.sharedLimits,
      guard: this.guard,
    });
    this.metadata = new HubSpotMetadata(config, this.api, this.log);
    const converter = { api: this.api, metadata: this.metadata };
    this.sweepContext = {
      api: this.api,
      log: this.log,
      convert: (plan, objects, stats, signal, assoc) => convertObjects(converter, plan, objects, stats, signal, assoc),
    };
  }

  // ---- check ------------------------------------------------------------------------------------

  async check(): Promise<TableCheck[]> {
    return checkHubSpot({ config: this.config, api: this.api, metadata: this.metadata, clock: this.clock });
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
      return new TableSkippedError(
        `${(e as Error).message} — table ${tableName} is skipped (its scope is optional); grant the scope and reconnect with \`qobra-sync auth ${this.config.id}\` to sync it`,
        e,
      );
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
      plan = await this.metadata.plan(table, opts.signal);
    } catch (e) {
      throw this.skipIfOptional(tableName, e);
    }
    const state = parseState(opts.state);
    if (!state) return null; // a first run lists the table
    const from = Math.max(0, state.cursor - this.config.lookbackSeconds * 1000);
    const to = opts.runStartedAt;
    const { windows, firstPage } = await planWindows(rangeSearch(this.api, plan, table.filter, this.config.maxWindowRecords, opts.signal), from, to);
    if (windows.length > 1) return windows.map((w) => ({ from: new Date(w.from).toISOString(), to: new Date(w.to).toISOString() }));
    if (firstPage) this.firstPages.set(table.name, { from, to, page: firstPage });
    return null;
  }

  async *readSlice(tableName: string, slice: ReadSlice, opts: ReadOptions): AsyncIterable<SourcePage> {
    const table = this.config.tables.find((t) => t.name === tableName);
    if (!table) throw new ConfigError(`connector ${this.config.id} has no table ${tableName}`);
    const plan = await this.metadata.plan(table, opts.signal);
    const stats = newReadStats("incremental", Date.parse(slice.from), Date.parse(slice.to));
    const pages = searchRange(
      { ...rangeSearch(this.api, plan, table.filter, this.config.maxWindowRecords, opts.signal), concurrency: 1, stats },
      Date.parse(slice.from),
      Date.parse(slice.to),
    );
    for await (const batch of inBatches(pages, opts.heartbeat)) {
      yield { records: await this.sweepContext.convert(plan, batch, stats, opts.signal), sourceTypes: plan.sourceTypes };
    }
  }

  /** After every slice: archived records since the run's window start, then the new cursor. */
  async *finishSlices(tableName: string, opts: ReadOptions): AsyncIterable<SourcePage> {
    const table = this.config.tables.find((t) => t.name === tableName);
    if (!table) throw new ConfigError(`connector ${this.config.id} has no table ${tableName}`);
    const plan = await this.metadata.plan(table, opts.signal);
    const state = parseState(opts.state);
    const from = state ? Math.max(0, state.cursor - this.config.lookbackSeconds * 1000) : 0;
    // The tasks read the records: the merged ids their survivors name are searched for here.
    const merged = await mergedInRange(this.api, plan, from, opts.runStartedAt, opts.signal);
    yield* this.staleDeletes(plan, { merged, read: new Set(), from, to: opts.runStartedAt }, opts);
    if (table.associationChanges && plan.associationFields.length > 0) {
      const stats = newReadStats("incremental", from, opts.runStartedAt);
      this.lastRead.set(table.name, stats);
      yield* sweepAssociations(this.sweepContext, plan, stats, opts);
    }
    for await (const deleted of archivedIds(this.api, plan, from, opts.signal)) yield { records: [], deletedIds: deleted, sourceTypes: plan.sourceTypes };
    const next: HubSpotState = { v: 1, cursor: opts.runStartedAt, cursorAt: new Date(opts.runStartedAt).toISOString() };
    yield { records: [], sourceTypes: plan.sourceTypes, state: next };
  }

  private async *readTable(tableName: string, opts: ReadOptions): AsyncIterable<SourcePage> {
    const table = this.config.tables.find((t) => t.name === tableName);
    if (!table) throw new ConfigError(`connector ${this.config.id} has no table ${tableName}`);
    const plan = await this.metadata.plan(table, opts.signal);
    const state = opts.full ? null : parseState(opts.state);
    if (!opts.full && opts.state != null && !state) this.log.warn({ table: table.name }, "unreadable saved cursor; reading the whole table");
    const to = opts.runStartedAt;
    const from = state ? Math.max(0, state.cursor - this.config.lookbackSeconds * 1000) : null;
    const stats = newReadStats(from === null ? "full" : "incremental", from, to);
    const trackAssociations = table.associationChanges && plan.associationFields.length > 0;
    this.lastRead.set(table.name, stats);
    this.log.info(
      { table: table.name, mode: stats.mode, from: from === null ? null : new Date(from).toISOString(), to: new Date(to).toISOString() },
      "reading HubSpot",
    );

    const planned = this.firstPages.get(table.name);
    this.firstPages.delete(table.name);
    const windows = (lo: number) =>
      searchRange(
        {
          ...rangeSearch(this.api, plan, table.filter, this.config.maxWindowRecords, opts.signal),
          concurrency: this.config.concurrency,
          stats,
          firstPage: planned && planned.from === lo && planned.to === to ? planned.page : undefined,
        },
        lo,
        to,
      );
    const source = from !== null ? windows(from) : table.filter ? windows(0) : listAll(this.api, plan.object.api, plan.fetch, false, opts.signal);

    // Incremental runs note what they read and the merged ids it names, for the stale deletes.
    const stale: StaleInput | null = from !== null ? { merged: new Set(), read: new Set(), from, to } : null;
    for await (const batch of inBatches(source, opts.heartbeat)) {
      if (from === null && !table.filter) stats.records += batch.length;
      if (stale) {
        for (const o of batch) stale.read.add(o.id);
        for (const id of mergedIdsOf(batch)) stale.merged.add(id);
      }
      yield { records: await this.sweepContext.convert(plan, batch, stats, opts.signal), sourceTypes: plan.sourceTypes };
    }

    // Merged ids and filter exits are deleted before the sweep, which then no longer holds them.
    if (stale) {
      for await (const page of this.staleDeletes(plan, stale, opts)) {
        stats.deleted += page.deletedIds?.length ?? 0;
        yield page;
      }
    }

    // Full reads saw every record's associations; incremental runs sweep the others.
    if (trackAssociations && from !== null) yield* sweepAssociations(this.sweepContext, plan, stats, opts);

    // Archived records: deletes. Incremental runs publish those archived since the window's start.
    for await (const deleted of archivedIds(this.api, plan, from, opts.signal)) {
      stats.deleted += deleted.length;
      yield { records: [], deletedIds: deleted, sourceTypes: plan.sourceTypes };
    }
    stats.unresolvedOwners = [...plan.ctx.unresolved].sort();
    if (stats.unresolvedOwners.length > 0) {
      this.log.warn(
        { table: table.name, ownerIds: stats.unresolvedOwners.slice(0, 20), count: stats.unresolvedOwners.length },
        "owner ids with no owner email: kept as ids",
      );
    }
    const next: HubSpotState = { v: 1, cursor: to, cursorAt: new Date(to).toISOString() };
    this.log.info(
      {
        table: table.name,
        mode: stats.mode,
        records: stats.records,
        deleted: stats.deleted,
        windows: stats.windows,
        splits: stats.splits,
        api: { ...this.api.stats },
      },
      "HubSpot table read",
    );
    yield { records: [], sourceTypes: plan.sourceTypes, state: next };
  }

  /** Deletes, in pages of up to BATCH ids, for the merged ids and the filter exits of an incremental run (stale.ts). */
  private async *staleDeletes(plan: TablePlan, input: StaleInput, opts: ReadOptions): AsyncGenerator<SourcePage> {
    const gone = await staleIds(this.api, plan, input, opts);
    if (gone.length > 0) this.log.info({ table: plan.table.name, merged: input.merged.size, deleted: gone.length }, "merged or filtered-out records deleted");
    for (let i = 0; i < gone.length; i += BATCH) yield { records: [], deletedIds: gone.slice(i, i + BATCH), sourceTypes: plan.sourceTypes };
  }

  // ---- reconciliation ---------------------------------------------------------------------------

  /** Statistics of the last listIds() of each table (tests, benchmarks). */
  readonly lastIdList = new Map<string, IdSearchStats>();

  /**
   * Every id the portal holds for the table, with its filter (SourceConnector.listIds): ids-only
   * searches of 200, by keyset on hs_object_id (stale.ts), ⌈n/200⌉ requests.
   */
  async *listIds(tableName: string, opts: ReadOptions): AsyncIterable<string[]> {
    const table = this.config.tables.find((t) => t.name === tableName);
    if (!table) throw new ConfigError(`connector ${this.config.id} has no table ${tableName}`);
    const stats: IdSearchStats = { searches: 0, ids: 0 };
    this.lastIdList.set(table.name, stats);
    try {
      const plan = await this.metadata.plan(table, opts.signal);
      for await (const ids of tableIds(this.api, plan, opts.signal, stats)) {
        yield ids;
        await opts.heartbeat?.();
      }
    } catch (e) {
      throw this.skipIfOptional(tableName, e);
    }
    this.log.info({ table: table.name, ids: stats.ids, searches: stats.searches }, "HubSpot ids listed for reconciliation");
  }

  async close(): Promise<void> {
    // Nothing else held open: the client uses fetch without persistent state.
    await this.guard?.close();
  }
}
