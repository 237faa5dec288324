/**
 * A producer run's lifecycle on sync.events, keyed by run id: RUN_STARTED, PROGRESS (at most every
 * two seconds), TABLE_COMPLETED (or skipped), then RUN_COMPLETED with the raw topic's end offsets
 * (what the mapper and the sink must pass for the run to be done) or RUN_FAILED with why. The
 * why names a connection by host, port and database only; newEvent masks any credential that
 * would still slip into it (lib/redact.ts).
 */
import { newEvent, publishEvent } from "../../lib/codec.ts";
import { endOffsets } from "../../lib/kafka.ts";
import type { SyncEvent, TopicPartitionOffset } from "../../schemas/index.ts";
import type { ApiBudget } from "../connector.ts";
import type { RunContext } from "./context.ts";

type EventFields = Pick<SyncEvent, "type"> & Partial<Omit<SyncEvent, "runId" | "connector" | "type">>;

export class RunEvents {
  private readonly run: RunContext;
  private lastProgress = Date.now();
  constructor(run: RunContext) {
    this.run = run;
  }

  /** Publishes one event of the run (run id, connector and full filled in). */
  async publish(e: EventFields): Promise<void> {
    const { request } = this.run;
    await publishEvent(
      this.run.producer,
      this.run.codec,
      this.run.port.topics.syncEvents,
      newEvent({
        runId: request.requestId,
        connector: request.connector,
        full: request.full,
        ...e,
      }),
    );
  }

  /** A PROGRESS event, unless one was published less than two seconds ago. */
  async progress(table: string, read: number): Promise<void> {
    if (Date.now() - this.lastProgress <= 2000) return;
    this.lastProgress = Date.now();
    await this.publish({ type: "PROGRESS", table, counts: { read } });
  }

  /** RUN_COMPLETED, with the raw topic's end offsets. */
  async completed(counts: Record<string, number>): Promise<void> {
    await this.publish({ type: "RUN_COMPLETED", counts, offsets: await rawEndOffsets(this.run) });
  }
}

/** The raw topic's end offsets: every record of the run is before them. */
export async function rawEndOffsets(run: Pick<RunContext, "port" | "rawTopic">): Promise<TopicPartitionOffset[]> {
  return [...(await endOffsets(await run.port.admin(), run.rawTopic))].map(([partition, offset]) => ({ topic: run.rawTopic, partition, offset }));
}

/** The source API budget a table's read used, as event counts (only what the connector knows). */
export function apiCounts(budget: ApiBudget | undefined): Record<string, number> {
  if (!budget) return {};
  return Object.fromEntries(
    Object.entries({ apiCalls: budget.calls, apiUsed: budget.used, apiLimit: budget.limit, apiRateLimited: budget.rateLimited }).filter(
      (e): e is [string, number] => e[1] !== undefined,
    ),
  );
}
