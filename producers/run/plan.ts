/**
 * Step 1 of a producer run: what the request asks for. The connector must be configured and
 * every table named must be one of its tables (no tables named: all of them). A source that does
 * not read incrementally (its plugin's `incremental: false`: PostgreSQL) runs every request as a
 * full one, so every run infers deletes behind the mass-delete guard. A request made before the
 * start of a completed run that covered it is answered by that run (coalesced).
 */
import { findConnector, type Config, type ConnectorConfig } from "../../lib/config.ts";
import { describeError } from "../../lib/errors.ts";
import type { SyncRequest } from "../../schemas/index.ts";
import { pluginFor } from "../connectors/registry.ts";

/** `full`: whether the run reads everything (asked for, or the source has no incremental read). */
type RunPlan = { ok: true; connector: ConnectorConfig; tables: string[]; full: boolean } | { ok: false; error: string };

export function planRun(config: Config, request: SyncRequest): RunPlan {
  let connector: ConnectorConfig;
  try {
    connector = findConnector(config, request.connector);
  } catch (e) {
    return { ok: false, error: describeError(e) };
  }
  const tables = request.tables.length > 0 ? request.tables : connector.tables.map((t) => t.name);
  const unknown = tables.filter((t) => !connector.tables.some((c) => c.name === t));
  if (unknown.length > 0) return { ok: false, error: `connector ${request.connector} has no table ${unknown.join(", ")}` };
  let incremental: boolean;
  try {
    incremental = pluginFor(connector.type).incremental;
  } catch (e) {
    return { ok: false, error: describeError(e) };
  }
  return { ok: true, connector, tables, full: request.full || !incremental };
}

/** The last completed run of a connector, as far as coalescing is concerned. */
export interface LastRun {
  startedAt: number;
  full: boolean;
  tables: string[];
}

/** True when a completed run that started after the request was made read everything it asks for. */
export function coveredBy(request: SyncRequest, last: LastRun): boolean {
  // A reconciliation is never answered by another kind of run (it lists what the others cannot see).
  if (request.requestedAt >= last.startedAt || request.forceDeletes || request.reconcile) return false;
  if (request.full && !last.full) return false;
  if (last.tables.length === 0) return true;
  return request.tables.length > 0 && request.tables.every((t) => last.tables.includes(t));
}
