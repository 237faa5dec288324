/**
 * The raw topic side of reading: a page's records published as UPSERT envelopes keyed by
 * (table, external id), acknowledged by all replicas before the next page is read; and scans of
 * what the raw topic already holds for a table (for delete inference, and for connectors that
 * compare the source with what was published).
 */
import type { Producer } from "kafkajs";
import type { Codec } from "../../lib/codec.ts";
import { sendInChunks } from "../../lib/kafka.ts";
import { parseRawKey, rawKey, rawKeyPrefix } from "../../lib/protocol.ts";
import { readToEnd } from "../../lib/topic-scan.ts";
import type { RawRecord } from "../../schemas/index.ts";
import type { ReadOptions, SourcePage } from "../connector.ts";
import type { RunContext } from "./context.ts";

/** Publishes a page's records to the raw topic, acknowledged by all replicas. */
export async function publishRecords(
  producer: Producer,
  codec: Codec,
  rawTopic: string,
  connector: string,
  table: string,
  runId: string,
  page: SourcePage,
): Promise<void> {
  if (page.records.length === 0) return;
  const readAt = Date.now();
  const envelopes: RawRecord[] = page.records.map((r) => ({
    connector,
    table,
    externalId: r.externalId,
    op: "UPSERT",
    runId,
    readAt,
    sourceUpdatedAt: r.sourceUpdatedAt,
    name: r.name,
    fields: r.fields,
    sourceTypes: page.sourceTypes,
  }));
  const values = await codec.encodeMany(rawTopic, "rawRecord", envelopes);
  // rawKey(table, id), with the table's part written once per page: `[<table>,<id>]` as JSON.
  const head = rawKey(table, "").slice(0, -3);
  await sendInChunks(
    (r) => producer.send(r),
    rawTopic,
    envelopes.map((e, i) => ({ key: `${head}${JSON.stringify(e.externalId)}]`, value: values[i]! })),
  );
}

/** Every message of one table in the raw topic, oldest first per partition (value null: a tombstone). */
export async function scanTable(
  run: Pick<RunContext, "port" | "rawTopic" | "heartbeat">,
  table: string,
  onMessage: (externalId: string, value: Buffer | null) => Promise<void> | void,
): Promise<void> {
  const prefix = rawKeyPrefix(table);
  await readToEnd(
    run.port,
    run.rawTopic,
    async (messages) => {
      for (const m of messages) {
        const k = m.key?.toString();
        if (!k?.startsWith(prefix)) continue;
        const key = parseRawKey(k);
        if (key && key.table === table) await onMessage(key.externalId, m.value);
      }
    },
    { heartbeat: run.heartbeat },
  );
}

/** ReadOptions.published: the table's records as the raw topic holds them, decoded. */
export function publishedRecords(run: RunContext, table: string): NonNullable<ReadOptions["published"]> {
  return (onRecord) =>
    scanTable(run, table, async (externalId, value) => {
      if (value === null) {
        onRecord({ externalId, fields: null, thisRun: false });
        return;
      }
      const r = await run.codec.decode<RawRecord>(value);
      onRecord({ externalId, fields: r.op === "DELETE" ? null : r.fields, thisRun: r.runId === run.request.requestId });
    });
}
