/**
 * An in-memory stand-in for one table's compacted raw topic (the latest record per external id),
 * for reading a connector without Kafka (connector tests, the API benchmark): it answers
 * ReadOptions.published the way producers/worker.ts does from the real topic.
 */
import type { PublishedRecord, ReadOptions, SourcePage } from "../producers/connector.ts";
import type { RawValue } from "../schemas/index.ts";

export class MemoryPipeline {
  private readonly held = new Map<string, { fields: Record<string, RawValue>; run: number }>();
  private run = 0;

  /** Starts a run; returns its ReadOptions.published. */
  startRun(): NonNullable<ReadOptions["published"]> {
    const run = ++this.run;
    return async (onRecord: (r: PublishedRecord) => void) => {
      for (const [externalId, h] of this.held) onRecord({ externalId, fields: h.fields, thisRun: h.run === run });
    };
  }

  /** What the worker publishes of a page (records, deletes), as part of the current run. */
  apply(page: SourcePage): void {
    for (const r of page.records) this.held.set(r.externalId, { fields: r.fields, run: this.run });
    for (const id of page.deletedIds ?? []) this.held.delete(id);
  }

  get size(): number {
    return this.held.size;
  }
}
