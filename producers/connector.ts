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
 */
import type { ConnectorConfig } from "../lib/config.ts";
import type { SharedRateLimitStore } from "./shared-rate-limiter.ts";
export { TableSkippedError } from "../lib/errors.ts";
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
  /** The state saved after the last acknowledged page of an earlier run of this table, or null. */
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

export interface ApiBudget { calls: number; used?: number; limit?: number; rateLimited?: number }

/** A part of an incremental read that any producer worker may take (a time window). */
export interface ReadSlice { from: string; to: string }

export interface SourceConnector {
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
  /** Optional: the source API budget so far (calls made by this connector, the org/portal's usage and limit). */
  apiBudget?(): ApiBudget;
  close(): Promise<void>;
}

/** What the producer worker shares with the connectors it creates (all optional: tests, bench and `check` pass none). */
export interface ConnectorContext {
  /** Source API budgets counted in PostgreSQL, shared by every worker process (producers/shared-rate-limiter.ts). */
  rateLimits?: SharedRateLimitStore;
}

export interface ConnectorFactory<C extends ConnectorConfig = ConnectorConfig> {
  type: C["type"];
  create(config: C, ctx?: ConnectorContext): SourceConnector;
}
