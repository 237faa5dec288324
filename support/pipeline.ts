/** Runs a sync through the real pipeline and waits until every record is in the sink (integration tests, bench/, chaos/). */
import type { Runtime } from "../lib/runtime.ts";
import { eventsPosition, waitForRun } from "../lib/wait.ts";
import { newRequest, publishRequest } from "../lib/protocol.ts";
import type { SyncEvent } from "../schemas/index.ts";

export async function syncAndWait(
  rt: Runtime,
  connector: string,
  opts: { full?: boolean; tables?: string[]; timeoutMs?: number; forceDeletes?: boolean } = {},
): Promise<SyncEvent> {
  const producer = await rt.port.producer({ idempotent: true, maxInFlightRequests: 1 });
  try {
    const from = await eventsPosition(rt.port);
    const request = newRequest(connector, { full: opts.full ?? false, tables: opts.tables ?? [], by: "test", forceDeletes: opts.forceDeletes ?? false });
    await publishRequest(producer, rt.codec, rt.port.topics, request);
    const conn = rt.config.connectors.find((c) => c.id === connector)!;
    const tables = (opts.tables && opts.tables.length > 0 ? opts.tables : conn.tables.map((t) => t.name)).map((table) => ({ connector, table }));
    return await waitForRun(rt.port, rt.codec, rt.config.topicPrefix, request.requestId, from, { timeoutMs: opts.timeoutMs ?? 150_000, tables });
  } finally {
    await producer.disconnect();
  }
}
