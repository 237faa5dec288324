/**
 * The Avro schemas of the messages the pipeline owns (the .avsc files beside this one are the
 * source of truth) and the TypeScript types that mirror them. test/unit/schemas.test.ts checks
 * that every type below is valid against its .avsc, so the two cannot drift apart silently.
 */
import { readFileSync } from "node:fs";
import avro from "avsc";

const load = (name: string): avro.Schema => JSON.parse(readFileSync(new URL(`./${name}.avsc`, import.meta.url), "utf8")) as avro.Schema;

export const schemas = {
  syncRequest: load("sync-request"),
  syncTask: load("sync-task"),
  rawRecord: load("raw-record"),
  syncEvent: load("sync-event"),
  deadLetter: load("dead-letter"),
  syncState: load("sync-state"),
} as const;
export type SchemaName = keyof typeof schemas;

export interface SyncRequest {
  requestId: string;
  connector: string;
  tables: string[];
  full: boolean;
  /** Epoch milliseconds. */
  requestedAt: number;
  requestedBy: string;
  forceDeletes: boolean;
  /** A reconciliation run (ids only, deletes for the missing ones); absent in requests of older versions. */
  reconcile?: boolean;
}

export interface SyncTask {
  taskId: string;
  runId: string;
  connector: string;
  table: string;
  full: boolean;
  windowFrom: string | null;
  windowTo: string | null;
}

export type RawValue = null | boolean | string | (string | null)[];

export interface RawRecord {
  connector: string;
  table: string;
  externalId: string;
  op: "UPSERT" | "DELETE";
  runId: string;
  readAt: number;
  sourceUpdatedAt: string | null;
  name: string | null;
  fields: Record<string, RawValue>;
  sourceTypes: Record<string, string>;
}

type SyncEventType = "RUN_STARTED" | "TABLE_COMPLETED" | "RUN_COMPLETED" | "RUN_FAILED" | "PROGRESS" | "TASK_COMPLETED" | "TASK_FAILED";
export interface TopicPartitionOffset {
  topic: string;
  partition: number;
  offset: number;
}
export interface SyncEvent {
  runId: string;
  connector: string;
  type: SyncEventType;
  at: number;
  stage: string;
  table: string | null;
  full: boolean;
  counts: Record<string, number>;
  offsets: TopicPartitionOffset[];
  error: string | null;
  taskId?: string | null;
  retriable?: boolean | null;
}

export interface SyncState {
  connector: string;
  table: string;
  runId: string;
  savedAt: number;
  /** The connector's cursor, as JSON. */
  state: string;
}

export interface DeadLetterIssue {
  path: string;
  code: string;
  message: string;
}
export interface DeadLetter {
  stage: string;
  originalTopic: string;
  originalPartition: number;
  originalOffset: number;
  key: Buffer | null;
  value: Buffer | null;
  connector: string | null;
  table: string | null;
  runId: string | null;
  errorClass: string;
  errorMessage: string;
  issues: DeadLetterIssue[];
  at: number;
}

/** avsc types, for validation in tests and local encoding where no registry is involved. */
export function avroType(name: SchemaName): avro.Type {
  return avro.Type.forSchema(schemas[name]);
}
