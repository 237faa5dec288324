/**
 * A producer run's cursors: an incremental read resumes from the state its table last saved, and a
 * page's state is saved only after the page's records are acknowledged, so a cursor never runs ahead
 * of what the raw topic holds. A full read starts from nothing, unless its connector asks for the
 * saved state on full reads (`SourceConnector.hintsFromState`): it reads everything all the same and
 * only takes hints from it (the Salesforce connector: the table's last record count, which picks REST
 * or Bulk without a call to learn it).
 */
import { loadState, saveState } from "../../lib/state.ts";
import type { SourceConnector } from "../connector.ts";
import type { RunContext } from "./context.ts";

/** The table's saved state (parsed), or null: none saved, or a full run of a connector that takes no hints from it. */
export async function startingState(run: RunContext, table: string, source: SourceConnector): Promise<unknown> {
  if (run.request.full && source.hintsFromState !== true) return null;
  const saved = await loadState(run.port, run.codec, run.request.connector, table);
  return saved ? (JSON.parse(saved.state) as unknown) : null;
}

export async function saveCursor(run: RunContext, table: string, state: unknown): Promise<void> {
  await saveState(run.producer, run.port, run.codec, {
    connector: run.request.connector,
    table,
    runId: run.request.requestId,
    savedAt: Date.now(),
    state: JSON.stringify(state),
  });
}
