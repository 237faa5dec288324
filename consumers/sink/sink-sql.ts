/**
 * Pure SQL builders of the sink: table DDL from a mapped schema, and the batched, guarded upsert.
 * Identifiers come from the schema (validated names), never from payloads; values are bound, in
 * the text forms of lib/protocol.ts.
 */
import type avro from "avsc";
import { ident } from "../../lib/pg.ts";
import { formatDate, microsToIso } from "../../lib/protocol.ts";
import { localId, sinkSchemaOf } from "../../lib/tenants.ts";

export interface SinkColumn {
  name: string;
  pgType: string;
  kind: "text" | "numeric" | "bool" | "date" | "timestamptz" | "text[]" | "bigint";
}

/** System columns every sink table has, in order. */
const SYSTEM_COLUMNS: SinkColumn[] = [
  { name: "_external_id", pgType: "text", kind: "text" },
  { name: "_name", pgType: "text", kind: "text" },
  { name: "_source_updated_at", pgType: "timestamptz", kind: "timestamptz" },
  { name: "_synced_at", pgType: "timestamptz", kind: "timestamptz" },
  { name: "_run_id", pgType: "text", kind: "text" },
  { name: "_deleted_at", pgType: "timestamptz", kind: "timestamptz" },
  { name: "_version", pgType: "bigint", kind: "bigint" },
];
const SYSTEM_NAMES = new Set(["_external_id", "_name", "_source_updated_at", "_run_id", "_deleted", "_version"]);

type AvroField = { name: string; type: unknown; [k: string]: unknown };

/** The data columns of a mapped schema (system fields excluded), with their PostgreSQL types. */
export function columnsOf(schema: avro.Schema): SinkColumn[] {
  const fields = (schema as unknown as { fields: AvroField[] }).fields;
  return fields.filter((f) => !SYSTEM_NAMES.has(f.name)).map((f) => ({ name: f.name, ...pgTypeOf(f.type) }));
}

function pgTypeOf(type: unknown): Pick<SinkColumn, "pgType" | "kind"> {
  const t = Array.isArray(type) ? type.find((x) => x !== "null") : type;
  if (t === "string") return { pgType: "text", kind: "text" };
  if (t === "boolean") return { pgType: "boolean", kind: "bool" };
  if (t === "long") return { pgType: "bigint", kind: "bigint" };
  if (t && typeof t === "object") {
    const o = t as { type?: string; logicalType?: string; items?: unknown; "qobra.logical"?: string };
    if (o.type === "string") return o["qobra.logical"] === "decimal" ? { pgType: "numeric", kind: "numeric" } : { pgType: "text", kind: "text" };
    if (o.type === "int" && o.logicalType === "date") return { pgType: "date", kind: "date" };
    if (o.type === "long" && (o.logicalType === "timestamp-micros" || o.logicalType === "timestamp-millis"))
      return { pgType: "timestamptz", kind: "timestamptz" };
    if (o.type === "array") return { pgType: "text[]", kind: "text[]" };
  }
  throw new Error(`the sink cannot store Avro type ${JSON.stringify(type)}`);
}

export function tableName(schema: string, connector: string, table: string): string {
  return `${ident(schema)}.${ident(`${connector}__${table}`)}`;
}

/** A connector's sink table: in its tenant's schema (else sink.schema), named `<local id>__<table>`. */
export interface SinkRelation {
  schema: string;
  /** The bare table name (`crm__deals`). */
  name: string;
  /** The quoted, schema-qualified name for SQL. */
  qualified: string;
}

/**
 * Where a connector's table lands. A tenant's tables keep the connector's own id (`crm__deals` in
 * `qobra_acme`): the schema already tells the tenant, and two tenants' `crm` never meet.
 */
export function sinkRelation(sink: { schema: string; tenantSchema: string }, connector: { id: string; tenant?: string }, table: string): SinkRelation {
  const schema = sinkSchemaOf(sink, connector);
  const local = localId(connector);
  return { schema, name: `${local}__${table}`, qualified: tableName(schema, local, table) };
}

export function createTableSql(qualifiedTable: string, columns: SinkColumn[]): string {
  const cols = [...SYSTEM_COLUMNS, ...columns].map(
    (c) =>
      `${ident(c.name)} ${c.pgType}${c.name === "_external_id" ? " PRIMARY KEY" : c.name === "_version" || c.name === "_run_id" || c.name === "_synced_at" ? " NOT NULL" : ""}`,
  );
  return `CREATE TABLE IF NOT EXISTS ${qualifiedTable} (\n  ${cols.join(",\n  ")}\n)`;
}

export function addColumnSql(qualifiedTable: string, c: SinkColumn): string {
  return `ALTER TABLE ${qualifiedTable} ADD COLUMN IF NOT EXISTS ${ident(c.name)} ${c.pgType}`;
}

/**
 * INSERT … SELECT FROM unnest(arrays) … ON CONFLICT DO UPDATE, guarded so that an older version
 * never overwrites a newer one (`_version` is the raw topic offset of the source record).
 * Parameters: one array per column of `upsertColumns(columns)`, in order.
 */
export function upsertSql(qualifiedTable: string, columns: SinkColumn[]): string {
  const input = upsertColumns(columns);
  const names = input.map((c) => ident(c.name));
  const arrays = input.map((c, i) => `$${i + 1}::${c.kind === "text[]" ? "text" : c.pgType}[]`);
  const select = input.map((c) => (c.kind === "text[]" ? `u.${ident(c.name)}::text[]` : `u.${ident(c.name)}`));
  return [
    `INSERT INTO ${qualifiedTable} AS t (${names.join(", ")}, "_synced_at", "_deleted_at")`,
    `SELECT ${select.join(", ")}, now(), NULL`,
    `FROM unnest(${arrays.join(", ")}) AS u(${names.join(", ")})`,
    ...guardedUpdate(input),
  ].join("\n");
}

/** The ON CONFLICT clause of every upsert: all columns replaced, only by a version at least as new. */
function guardedUpdate(input: SinkColumn[]): string[] {
  const updates = [
    ...input.filter((c) => c.name !== "_external_id").map((c) => `${ident(c.name)} = EXCLUDED.${ident(c.name)}`),
    "_synced_at = EXCLUDED._synced_at",
    "_deleted_at = NULL",
  ];
  return [`ON CONFLICT ("_external_id") DO UPDATE SET ${updates.join(", ")}`, `WHERE t."_version" <= EXCLUDED."_version"`];
}

// ── The batch path: COPY into a staging table, then one guarded INSERT … SELECT ──────────────
// A batch's rows are streamed with COPY … FROM STDIN (text format) into a temporary table of the
// session (ON COMMIT DELETE ROWS: empty again at each commit), then merged into the sink table
// with the same ON CONFLICT … WHERE version guard as the upsert above, in the batch's transaction.
// Dates and instants travel as their Avro numbers (days, microseconds since the epoch) and become
// date and timestamptz in the merge, by exact integer arithmetic.

/** The staging table of a sink table's layout (a new layout, a new staging table), in the session's pg_temp. */
export function stageName(qualifiedTable: string, columns: SinkColumn[]): string {
  const signature = `${qualifiedTable}|${upsertColumns(columns)
    .map((c) => `${c.name}:${c.pgType}`)
    .join(",")}`;
  let h = 0x811c9dc5;
  for (let i = 0; i < signature.length; i++) h = Math.imul(h ^ signature.charCodeAt(i), 0x01000193);
  return `pg_temp.${ident(`qobra_stage_${(h >>> 0).toString(16)}`)}`;
}

/** The staging column type of a sink column (dates and instants as their Avro numbers). */
function stageType(c: SinkColumn): string {
  return c.kind === "date" ? "integer" : c.kind === "timestamptz" ? "bigint" : c.pgType;
}

export function stageDdl(stage: string, columns: SinkColumn[]): string {
  const cols = upsertColumns(columns).map((c) => `${ident(c.name)} ${stageType(c)}`);
  return `CREATE TEMPORARY TABLE IF NOT EXISTS ${stage} (${cols.join(", ")}) ON COMMIT DELETE ROWS`;
}

export function copyStageSql(stage: string, columns: SinkColumn[]): string {
  return `COPY ${stage} (${upsertColumns(columns)
    .map((c) => ident(c.name))
    .join(", ")}) FROM STDIN`;
}

/** The staged rows into the sink table, guarded by version exactly as upsertSql. */
export function mergeSql(qualifiedTable: string, stage: string, columns: SinkColumn[]): string {
  const input = upsertColumns(columns);
  const names = input.map((c) => ident(c.name));
  const select = input.map((c) => {
    const col = `s.${ident(c.name)}`;
    if (c.kind === "date") return `DATE '1970-01-01' + ${col}`;
    if (c.kind === "timestamptz") return `TIMESTAMPTZ '1970-01-01 00:00:00+00' + ${col} * INTERVAL '1 microsecond'`;
    return col;
  });
  return [
    `INSERT INTO ${qualifiedTable} AS t (${names.join(", ")}, "_synced_at", "_deleted_at")`,
    `SELECT ${select.join(", ")}, now(), NULL`,
    `FROM ${stage} AS s`,
    ...guardedUpdate(input),
  ].join("\n");
}

/** COPY text lines of decoded mapped values (each line ends with a newline). */
export function copyRows(columns: SinkColumn[], rows: Record<string, unknown>[]): string {
  const input = upsertColumns(columns);
  let out = "";
  for (const r of rows) {
    let line = "";
    for (let i = 0; i < input.length; i++) {
      const c = input[i]!;
      const v = r[c.name];
      if (i > 0) line += "\t";
      if (v === null || v === undefined) line += "\\N";
      else if (c.kind === "bool") line += v ? "t" : "f";
      else if (c.kind === "text[]") line += copyText(pgTextArray(v as string[]));
      else if (typeof v === "string") line += copyText(v);
      else if (typeof v === "number" && Number.isSafeInteger(v)) line += String(v);
      else throw new Error(`column ${c.name}: cannot stage ${typeof v} ${String(v)}`);
    }
    out += `${line}\n`;
  }
  return out;
}

const COPY_SPECIAL = /[\\\t\n\r]/;

/** A text value in COPY's text format: backslash, tab, newline and carriage return escaped. */
function copyText(v: string): string {
  if (!COPY_SPECIAL.test(v)) return v;
  return v.replace(/\\/g, "\\\\").replace(/\t/g, "\\t").replace(/\n/g, "\\n").replace(/\r/g, "\\r");
}

/** The columns an upsert binds: system columns from the record, then the data columns. */
export function upsertColumns(columns: SinkColumn[]): SinkColumn[] {
  return [...SYSTEM_COLUMNS.filter((c) => c.name !== "_synced_at" && c.name !== "_deleted_at"), ...columns];
}

/** One array per upsert column, from decoded mapped values. */
export function upsertParams(columns: SinkColumn[], rows: Record<string, unknown>[]): unknown[][] {
  return upsertColumns(columns).map((c) => rows.map((r) => sqlValue(c, r[c.name])));
}

function sqlValue(c: SinkColumn, v: unknown): unknown {
  if (v === null || v === undefined) return null;
  switch (c.kind) {
    case "date":
      return formatDate(v as number);
    case "timestamptz":
      return microsToIso(v as number);
    case "text[]":
      return pgTextArray(v as string[]);
    default:
      return v;
  }
}

/** Soft delete: keeps the last values, stamps _deleted_at, guarded by version like the upsert. */
export function softDeleteSql(qualifiedTable: string): string {
  return [
    // An already deleted row keeps the run that deleted it (the tombstone after a DELETE repeats it).
    `UPDATE ${qualifiedTable} AS t SET "_deleted_at" = COALESCE(t."_deleted_at", now()), "_synced_at" = now(),` +
      ` "_run_id" = CASE WHEN t."_deleted_at" IS NULL THEN d.run_id ELSE t."_run_id" END, "_version" = d.version`,
    `FROM unnest($1::text[], $2::bigint[], $3::text[]) AS d(external_id, version, run_id)`,
    `WHERE t."_external_id" = d.external_id AND t."_version" <= d.version`,
  ].join("\n");
}

/** A PostgreSQL array literal of text ({"a","b\"c"}), for text[] columns sent through unnest. */
export function pgTextArray(values: readonly string[]): string {
  return `{${values.map((v) => `"${v.replace(/\\/g, "\\\\").replace(/"/g, '\\"')}"`).join(",")}}`;
}

export const OFFSETS_TABLE = "_qobra_sync_offsets";
export function offsetsDdl(schema: string): string {
  return `CREATE TABLE IF NOT EXISTS ${ident(schema)}.${ident(OFFSETS_TABLE)} (
  consumer_group text NOT NULL, topic text NOT NULL, partition int NOT NULL, next_offset bigint NOT NULL,
  updated_at timestamptz NOT NULL DEFAULT now(), PRIMARY KEY (consumer_group, topic, partition))`;
}
