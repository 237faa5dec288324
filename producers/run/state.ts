/**
 * A producer run's cursors: an incremental read resumes from the state its table last saved (a
 * full read starts from nothing), and a page's state is saved only after the page's records are
 * acknowledged, so a cursor never runs ahead of what the raw topic holds.
 */
import { loadState, saveState } from "../../lib/state.ts";
import type { RunContext } from "./context.ts";

/** The table's saved cursor (parsed), or null: none saved, or a full run. */
export async function startingState(run: RunContext, table: string): Promise<unknown> {
  if (run.request.full) return null;
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
