/**
 * The source connector interface. One file per source in producers/connectors/, registered below.
 *
 * Lifecycle, as the producer worker drives it:
 *  1. `create(config, ctx)` builds a connector for one connector config (no I/O).
 *  2. `check()` verifies the connection and every table's requirements; it throws a
 *     ConfigError (fix the config/source) or SourceUnavailableError (retry later).
 *  3. `read(table, opts)` yields pages of records. Connector code never touches Kafka: the worker
 *     produces each page, waits for the broker's acknowledgement, and only then asks for the next.
 *     A thrown error ends the run as failed; nothing after the last acknowledged page is lost
 *     because the run is repeated as a whole.
 *  4. `close()` releases connections; it is idempotent.
 */
import type { ConnectorConfig } from "../lib/config.ts";
import type { RawValue } from "../schemas/index.ts";
import { postgresConnector } from "./connectors/postgres.ts";

/** One record read from a source, before any type conversion. */
export interface SourceRecord {
  externalId: string;
  name: string | null;
  sourceUpdatedAt: string | null;
  fields: Record<string, RawValue>;
}

export interface SourcePage {
  records: SourceRecord[];
  /** Source column → declared type, prefixed with the source kind (`pg:numeric`). Same for every page of a table. */
  sourceTypes: Record<string, string>;
}

export interface ReadOptions {
  full: boolean;
  signal: AbortSignal;
}

export interface TableCheck {
  table: string;
  ok: boolean;
  problems: string[];
  warnings: string[];
}

export interface SourceConnector {
  check(): Promise<TableCheck[]>;
  read(table: string, opts: ReadOptions): AsyncIterable<SourcePage>;
  close(): Promise<void>;
}

export interface ConnectorFactory<C extends ConnectorConfig = ConnectorConfig> {
  type: C["type"];
  create(config: C): SourceConnector;
}

export const connectors = {
  postgres: postgresConnector,
} satisfies Record<ConnectorConfig["type"], ConnectorFactory>;

export function createConnector(config: ConnectorConfig): SourceConnector {
  return connectors[config.type].create(config);
}
