/**
 * Deletes of a producer run. A page may name deleted records (the source reports them); a full
 * run also infers them: whatever the raw topic holds as live and the run did not see was deleted
 * at the source. Inferred deletes are published only once every table of the run was read in
 * full, and never when they would remove more than the connector's mass-delete threshold of a
 * table (a source that suddenly returns nothing must not empty the sink) unless forced.
 * A delete is a DELETE envelope, then a tombstone, so compaction forgets the record.
 */
import { EtlError } from "../../lib/errors.ts";
import { sendInChunks } from "../../lib/kafka.ts";
import { rawKey } from "../../lib/protocol.ts";
import type { RawRecord } from "../../schemas/index.ts";
import type { RunContext } from "./context.ts";
import { scanTable } from "./read.ts";

export class MassDeleteError extends EtlError {
  constructor(message: string) {
    super("SOURCE_DATA", message);
  }
}

/** What a full run has not seen yet, per table: the candidates for deletion. */
export class DeleteInference {
  private readonly unseen = new Map<string, Set<string>>();
  private readonly before = new Map<string, number>();

  /** Starts tracking a table with the ids the raw topic holds as live. */
  track(table: string, live: Set<string>): void {
    this.unseen.set(table, live);
    this.before.set(table, live.size);
  }

  isTracked(table: string): boolean {
    return this.unseen.has(table);
  }

  /** The run saw these records (read, or reported deleted by the source). */
  seen(table: string, ids: Iterable<string>): void {
    const live = this.unseen.get(table);
    if (live) for (const id of ids) live.delete(id);
  }

  /** A skipped table: no deletes are inferred for it. */
  drop(table: string): void {
    this.unseen.delete(table);
  }

  unseenCount(table: string): number {
    return this.unseen.get(table)?.size ?? 0;
  }

  /**
   * After a table was read in full: refuses (MassDeleteError) when the unseen records are more
   * than `threshold` of those the raw topic held, unless `force`.
   */
  guard(table: string, opts: { threshold: number; force: boolean; connector: string }): void {
    const live = this.unseen.get(table);
    const before = this.before.get(table) ?? 0;
    if (!live || before === 0 || live.size / before <= opts.threshold || opts.force) return;
    throw new MassDeleteError(
      `table ${table}: this full run would delete ${live.size} of ${before} records (${Math.round((100 * live.size) / before)}%, above the ${Math.round(opts.threshold * 100)}% guard); nothing was deleted. If the source really lost them, run \`qobra-sync sync ${opts.connector} --full --force-deletes\``,
    );
  }

  /** The inferred deletes, table by table in the order tables were tracked. */
  pending(): Array<[string, Set<string>]> {
    return [...this.unseen];
  }
}

/** Publishes deletes in chunks of 1,000 (heartbeat between them); returns how many. */
export async function publishDeletes(run: RunContext, table: string, ids: Iterable<string>): Promise<number> {
  const { request, rawTopic } = run;
  let n = 0;
  let chunk: string[] = [];
  const flush = async () => {
    if (chunk.length === 0) return;
    const envelopes: RawRecord[] = chunk.map((id) => ({
      connector: request.connector,
      table,
      externalId: id,
      op: "DELETE",
      runId: request.requestId,
      readAt: Date.now(),
      sourceUpdatedAt: null,
      name: null,
      fields: {},
      sourceTypes: {},
    }));
    const values = await run.codec.encodeMany(rawTopic, "rawRecord", envelopes);
    await sendInChunks(
      (r) => run.producer.send(r),
      rawTopic,
      envelopes.flatMap((e, i) => [
        { key: rawKey(table, e.externalId), value: values[i]! },
        { key: rawKey(table, e.externalId), value: null },
      ]),
    );
    n += chunk.length;
    chunk = [];
    await run.heartbeat();
  };
  for (const id of ids) {
    chunk.push(id);
    if (chunk.length >= 1000) await flush();
  }
  await flush();
  return n;
}

/** The external ids of a table that the raw topic holds as live (latest message not a tombstone). */
export async function liveIds(run: RunContext, table: string): Promise<Set<string>> {
  const live = new Set<string>();
  await scanTable(run, table, (id, value) => {
    if (value === null) live.delete(id);
    else live.add(id);
  });
  return live;
}
