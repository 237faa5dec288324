/**
 * The pipeline's wire protocol: what one role writes and another reads, defined once so that no
 * role has to import another. Raw topic keys (producers write them, the mapper and the tools read
 * them), dead-letter headers (mapper and sink), sync requests (CLI, web page, scheduler) and the
 * text forms of dates and instants the sink binds to PostgreSQL.
 */
import { randomUUID } from "node:crypto";
import type { Producer } from "kafkajs";
import type { Codec } from "./codec.ts";
import type { Topics } from "./topics.ts";
import type { DeadLetter, SyncRequest } from "../schemas/index.ts";

// ── Raw topic keys ──────────────────────────────────────────────────────────────────────────

/** Raw topics are keyed by (table, external id). */
export function rawKey(table: string, externalId: string): string {
  return JSON.stringify([table, externalId]);
}

export function parseRawKey(key: Buffer | string): { table: string; externalId: string } | null {
  try {
    const v = JSON.parse(key.toString()) as unknown;
    if (Array.isArray(v) && v.length === 2 && typeof v[0] === "string" && typeof v[1] === "string") return { table: v[0], externalId: v[1] };
  } catch {
    /* not ours */
  }
  return null;
}

/** The text every raw key of a table starts with ('["table",'): a cheap filter before JSON.parse. */
export function rawKeyPrefix(table: string): string {
  return JSON.stringify([table, ""]).slice(0, -3);
}

// ── Dead letters ────────────────────────────────────────────────────────────────────────────

/** Kafka Connect-style error headers on dead letters. */
export function dlqHeaders(l: DeadLetter): Record<string, string> {
  return {
    "__connect.errors.topic": l.originalTopic,
    "__connect.errors.partition": String(l.originalPartition),
    "__connect.errors.offset": String(l.originalOffset),
    "__connect.errors.stage": l.stage,
    "__connect.errors.exception.class.name": l.errorClass,
    "__connect.errors.exception.message": l.errorMessage.slice(0, 2000),
  };
}

// ── Sync requests ───────────────────────────────────────────────────────────────────────────

export function newRequest(
  connector: string,
  opts: { full?: boolean; tables?: string[]; by: string; forceDeletes?: boolean; reconcile?: boolean },
): SyncRequest {
  return {
    requestId: randomUUID(),
    connector,
    tables: opts.tables ?? [],
    full: opts.full ?? false,
    requestedAt: Date.now(),
    requestedBy: opts.by,
    forceDeletes: opts.forceDeletes ?? false,
    reconcile: opts.reconcile ?? false,
  };
}

/** Publishes a sync request keyed by connector, so the runs of one connector never overlap. */
export async function publishRequest(producer: Producer, codec: Codec, topics: Topics, request: SyncRequest): Promise<void> {
  const value = await codec.encode(topics.syncRequests, "syncRequest", request);
  await producer.send({ topic: topics.syncRequests, acks: -1, messages: [{ key: request.connector, value }] });
}

// ── Date and instant text forms ─────────────────────────────────────────────────────────────

const DAY_MS = 86_400_000;

/** Formats days since the epoch (Avro `date`) back to YYYY-MM-DD. */
export function formatDate(days: number): string {
  return new Date(days * DAY_MS).toISOString().slice(0, 10);
}

/** Microseconds since the epoch (Avro `timestamp-micros`) → ISO 8601 with all six fractional digits, UTC. */
export function microsToIso(us: number): string {
  const ms = Math.floor(us / 1000);
  const rest = us - ms * 1000;
  const iso = new Date(ms).toISOString(); // …sss Z
  return `${iso.slice(0, -1)}${String(rest).padStart(3, "0")}Z`;
}
