/**
 * The source connector interface. One folder per source in producers/connectors/, listed in
 * producers/connectors/registry.ts.
 *
 * Lifecycle, as the producer worker drives it:
 *  1. `create(config, ctx?)` builds a connector for one connector config (no I/O); `ctx` carries
 *     what the worker shares with it (the PostgreSQL-backed rate limits).
 *  2. `check()` verifies the connection and every table's requirements; it throws a
 *     ConfigError (fix the config/source) or SourceUnavailableError (retry later).
 *  3. `read(table, opts)` yields pages of records. Connector code never touches Kafka: the worker
 *     produces each page, waits for the broker's acknowledgement, and only then asks for the next.
 *     A page may carry ids deleted at the source (published as DELETE + tombstone) and a new
 *     cursor `state`, which the worker saves (compacted topic sync.state) only after the page's
 *     records are acknowledged; the next run gets it back in `opts.state`. A thrown error ends
 *     the run as failed; the saved state is the last acknowledged one, so nothing is skipped.
 *  4. `close()` releases connections; it is idempotent.
 *
 * Around the connector, a source is a plugin (`SourcePlugin`, at the end of this file): one folder
 * under producers/connectors/ exporting one plugin object from its index.ts, listed in
 * producers/connectors/registry.ts. The config file, the scheduler, the integration-settings page
 * and the CLI reach a source only through its plugin (docs/adding-a-source.md walks through it).
 */
import type { z } from "zod";
import type { ConnectorBase, QobraType } from "../lib/config.ts";
import type { RawValue } from "../schemas/index.ts";

/** One record read from a source, before any type conversion. */
export interface SourceRecord {
  externalId: string;
  name: string | null;
  sourceUpdatedAt: string | null;
  fields: Record<string, RawValue>;
}

export interface SourcePage {
  records: SourceRecord[];
  /** External ids deleted at the source (e.g. Salesforce IsDeleted rows). */
  deletedIds?: string[];
  /** The cursor to resume from once this page is acknowledged (JSON-serialisable, small). */
  state?: unknown;
  /** Source column → declared type, prefixed with the source kind (`pg:numeric`). Same for every page of a table. */
  sourceTypes: Record<string, string>;
}

export interface ReadOptions {
  /** Full refresh (read everything; the worker infers deletes) rather than incremental. */
  full: boolean;
  signal: AbortSignal;
  /**
   * The state saved after the last acknowledged page of an earlier run of this table, or null. Full
   * reads get null, unless the connector sets `hintsFromState`: then they get it too, never to resume
   * from its cursor (a full read reads everything), only to size the read from what it says.
   */
  state: unknown;
  /** When this run started (epoch ms): incremental cursors that restart from "the start of the last successful import" use it. */
  runStartedAt: number;
  /** Publishes a heartbeat to the worker's consumer group during long reads with no pages. */
  heartbeat?: () => Promise<void>;
  /**
   * Incremental runs: what the pipeline holds for this table, read from the compacted raw topic
   * (the latest message of each record wins: records may come more than once, oldest first). For
   * sources whose changes are not all visible through a cursor, which must compare what was
   * published with the source (HubSpot: associations added or removed move no timestamp).
   */
  published?: (onRecord: (r: PublishedRecord) => void) => Promise<void>;
}

/** A record as the raw topic holds it: its fields (null once deleted), and whether this run published it. */
export interface PublishedRecord {
  externalId: string;
  fields: Record<string, RawValue> | null;
  thisRun: boolean;
}

export interface TableCheck {
  table: string;
  ok: boolean;
  problems: string[];
  warnings: string[];
}

export interface ApiBudget {
  calls: number;
  used?: number;
  limit?: number;
  rateLimited?: number;
}

/** A part of an incremental read that any producer worker may take (a time window). */
export interface ReadSlice {
  from: string;
  to: string;
}

export interface SourceConnector {
  /**
   * Optional: full reads get the table's saved state too (ReadOptions.state), as hints only (the
   * Salesforce connector picks REST or Bulk from the table's last record count, without a call to
   * learn it). Others get null on full reads, which spares the state topic's read.
   */
  readonly hintsFromState?: boolean;
  check(): Promise<TableCheck[]>;
  read(table: string, opts: ReadOptions): AsyncIterable<SourcePage>;
  /**
   * Optional, for sources whose incremental reads split well (HubSpot's date windows): returns the
   * slices of this run, or null to read the table with `read` as usual. The worker publishes each
   * slice as a task on sync.tasks; any producer worker reads it with `readSlice`; once all are
   * done, the coordinating worker calls `finishSlices` for the rest (deletes, the new cursor).
   */
  planSlices?(table: string, opts: ReadOptions): Promise<ReadSlice[] | null>;
  readSlice?(table: string, slice: ReadSlice, opts: ReadOptions): AsyncIterable<SourcePage>;
  finishSlices?(table: string, opts: ReadOptions): AsyncIterable<SourcePage>;
  /**
   * Optional, for reconciliation runs (SyncRequest.reconcile): yields, in batches, the external ids
   * of every record the source holds for the table, with the table's filter applied, at the fewest
   * requests the API allows (ids only). The worker publishes deletes for the records the raw topic
   * holds that are not among them (the mass-delete guard applies). Sources without it reconcile
   * through full runs.
   */
  listIds?(table: string, opts: ReadOptions): AsyncIterable<string[]>;
  /** Optional: the source API budget so far (calls made by this connector, the org/portal's usage and limit). */
  apiBudget?(): ApiBudget;
  close(): Promise<void>;
}

/** What the producer worker shares with the connectors it creates (all optional: tests, bench and `check` pass none). */
export interface ConnectorContext {
  /** Source API budgets counted in PostgreSQL, shared by every worker process (producers/shared-rate-limiter.ts). */
  rateLimits?: SharedBudgets;
}

/**
 * The worker's shared source-API budgets: the operations a plugin's limiters call on
 * producers/shared-rate-limiter.ts's SharedRateLimitStore (as its BudgetStore), restated here so
 * that this contract imports nothing beside it.
 */
export interface SharedBudgets {
  available(now?: number): boolean;
  tryAcquire(
    key: string,
    max: number,
    intervalMs: number,
    staleMs: number,
    pollMs?: number,
  ): Promise<{ id: string; waitMs: 0 } | { id: null; waitMs: number; reason: "paused" | "full" | "in-flight" }>;
  release(key: string, id: string): Promise<void>;
  pause(key: string, ms: number): Promise<void>;
}

// ---- the source plugin ----------------------------------------------------------------------------

/** What every source's schedule has: whether it is armed, and the zone its times are local to. */
export type ScheduleBase = NonNullable<ConnectorBase["schedule"]>;

/**
 * What a scheduled sync does: "full" reads everything (and infers deletes), "incremental" what
 * changed since the last run, "reconcile" lists the ids the source holds and deletes the others
 * (SyncRequest.reconcile; a full read for sources without `listIds`).
 */
export type ScheduleJobKind = "full" | "incremental" | "reconcile";

/** One cron rule (`minute hour * * *`) in a zone, and the kind of sync it requests. */
export interface CronRule {
  rule: string;
  tz: string;
  kind: ScheduleJobKind;
}

/** A time of day (HH:MM, local to the schedule's zone) at which a schedule requests a sync, and its kind. */
export interface ScheduleTime {
  at: string;
  kind: ScheduleJobKind;
}

/** What the scheduler computed of an enabled schedule, for the plugin's sentence about it. */
export interface ScheduleSummaryInput {
  times: ScheduleTime[];
  timezone: string;
}

/**
 * One control of a schedule's edit form on the integration-settings page, described as data (the
 * page renders every kind the same way for every source; `timezone` and `enabled` are added by the
 * page for all). `name` is the schedule key the control edits: its current value is read from the
 * schedule and the submitted value is sent under that key, as the kind's type:
 *  - "hours": one hour-of-day select per refresh (0–23), and a number input (`count`) setting how
 *    many there are; sends the list of hours (the plugin's `prepareScheduleEdit` derives the count).
 *    With no hours in the schedule, `count.name`'s value of hours is spread evenly from midnight.
 *  - "time": a local time of day (HH:MM), sent as text.
 *  - "number": an integer input between `min` and `max`, sent as a number; `suffix` follows it.
 *  - "select": one of `options`, sent as the option's value (number or text).
 */
export type ScheduleFormField =
  | { kind: "hours"; name: string; label: string; count: { name: string; label: string; min: number; max: number } }
  | { kind: "time"; name: string; label: string }
  | { kind: "number"; name: string; label: string; min: number; max: number; suffix?: string }
  | { kind: "select"; name: string; label: string; options: ReadonlyArray<{ value: number | string; label: string }> };

/** A host a connector connects to (`host`), or why a tenant's connector may not connect that way (`problem`). */
export type ConnectorEndpoint = { field: string; host: string } | { field: string; problem: string };

/** `qobra-sync auth <connector>`: where the loopback listener listens, and where to print to the user. */
export interface AuthRunOptions {
  port: number;
  print: (line: string) => void;
}

/** What an authorization code is exchanged for. */
export interface OAuthGrant {
  refreshToken: string;
  /** What to tell the user (org, instance, user: nothing secret), may be empty. */
  summary: string;
}

/** A source's OAuth authorization-code flow (see SourcePlugin.auth). */
export interface SourceAuth<C> {
  run(config: C, opts: AuthRunOptions): Promise<void>;
  /** The provider's authorize URL; `verifier` is the PKCE code verifier to keep for the exchange (when the flow uses PKCE). */
  authorizeUrl(config: C, redirectUri: string, state: string): Promise<{ url: string; verifier?: string }>;
  /** Exchanges the code (throws ConfigError when the provider refuses it); stores nothing. */
  exchange(config: C, code: string, redirectUri: string, verifier?: string): Promise<OAuthGrant>;
}

/**
 * A source, as the rest of the pipeline sees it: one object per source, exported by
 * producers/connectors/<source>/index.ts and listed in producers/connectors/registry.ts.
 * `C` is the source's connector config (its config schema's output), `S` its schedule.
 */
export interface SourcePlugin<C extends ConnectorBase = ConnectorBase, S extends ScheduleBase = ScheduleBase> {
  /** The `type` of a connector in the config file. */
  readonly type: C["type"];
  /** The source's name for people (docs, messages). */
  readonly title: string;
  /** The connector's config schema (zod; every key with a `.describe()` text, from which docs/configuration.md is generated). */
  readonly configSchema: z.ZodType<C>;
  /** The schedule block's schema: the config file and the settings page's edits are validated with it. */
  readonly scheduleSchema: z.ZodType<S>;
  /**
   * The schedule a connector without a schedule block gets (enabled: the source's default; the
   * schema's defaults, so a block naming some keys gets the rest from it). `schedule: { enabled:
   * false }` turns it off.
   */
  readonly defaultSchedule: S;
  /** The cron rules of a schedule, each with the kind of sync it requests (none when it is disabled). */
  cronRules(schedule: S): CronRule[];
  /** What an enabled schedule does, in one sentence (the settings page). */
  describeSchedule(schedule: S, at: ScheduleSummaryInput): string;
  /** Optional: reconciles a schedule edit from the page before validation (throws ConfigError when it contradicts itself). */
  prepareScheduleEdit?(input: Record<string, unknown>): Record<string, unknown>;
  /** Optional: appended to a refused schedule edit's message (the allowed values). */
  readonly scheduleHint?: string;
  /** The schedule's edit form on the settings page, in order (see ScheduleFormField). */
  readonly scheduleForm: readonly ScheduleFormField[];
  /**
   * Whether the source reads incrementally (what changed since the last run). Without, every sync
   * reads everything: the settings page's Refresh asks for a full run.
   */
  readonly incremental: boolean;
  /** Builds a connector for one connector config (no I/O). */
  create(config: C, ctx?: ConnectorContext): SourceConnector;
  /**
   * Optional: the hosts the connector connects to, each with the config field that names it (as
   * `connection.url`), or a problem that keeps a connector given through the API from connecting
   * at all. A tenant's connector is refused when one of them is in a range the network policy
   * refuses (lib/network-policy.ts); its connections are checked again when they are made (lib/egress.ts).
   */
  endpoints?(config: C): ConnectorEndpoint[];
  /**
   * The prefix of this source's raw field types (`sf` in `sf:currency`; see SourcePage.sourceTypes):
   * how the mapper finds the plugin of a raw type.
   */
  readonly typePrefix: string;
  /**
   * Optional: the Qobra type a field of this raw type (without its prefix: `currency`) gets in a
   * table configured without `fields`, or undefined to leave such fields out. Sources without it
   * map no field by default.
   */
  defaultFieldType?(sourceType: string): QobraType | undefined;
  /**
   * Optional: the source's OAuth authorization-code flow. `run` is `qobra-sync auth <connector>`
   * (loopback listener, token store); the settings page's Authorize (ops/oauth-web.ts) uses the
   * two steps it is made of.
   */
  readonly auth?: SourceAuth<C>;
}
