/**
 * The sink's tables follow the mapped schemas: a table is created on the first record of a schema,
 * gains the new columns of a later schema, and refuses a column whose type changed (its records
 * are dead-lettered). Known tables are cached per (topic, schema id); a table dropped under the
 * sink is forgotten and created again. A tenant's tables live in the tenant's own schema, created
 * when its first table needs it.
 */
import type avro from "avsc";
import type pg from "pg";
import { SchemaIncompatibleError, SinkUnavailableError, describeError } from "../../lib/errors.ts";
import { ident, withTransaction, type TransactionSource } from "../../lib/pg.ts";
import { addColumnSql, columnsOf, createTableSql, offsetsDdl, upsertSql, type SinkColumn, type SinkRelation } from "./sink-sql.ts";

export interface TableState {
  qualified: string;
  columns: SinkColumn[];
  upsert: string;
  schemaId: number;
}

/** The sink table cannot take a schema (a field's type changed): its records are dead-lettered. */
export class SinkSchemaError extends SchemaIncompatibleError {}

/** The sink database as a transaction source: a failed connection is a SinkUnavailableError. */
export function sinkDb(pool: pg.Pool): TransactionSource {
  return {
    async connect() {
      try {
        return await pool.connect();
      } catch (e) {
        throw new SinkUnavailableError(`cannot connect to the sink PostgreSQL: ${describeError(e)}`, e);
      }
    },
  };
}

/** The sink's schema and its offsets table (once per process start, serialized by an advisory lock). */
export async function ensureSinkSchema(db: TransactionSource, schema: string): Promise<void> {
  await withTransaction(db, async (client) => {
    await client.query(SCHEMA_LOCK);
    await client.query(`CREATE SCHEMA IF NOT EXISTS ${ident(schema)}`);
    await client.query(offsetsDdl(schema));
  });
}

// Two sinks creating the same schema at once would otherwise race (CREATE SCHEMA IF NOT EXISTS
// may still fail on the catalog's unique index): one lock for every schema the sink creates.
const SCHEMA_LOCK = "SELECT pg_advisory_xact_lock(hashtext('qobra-sync:sink-schema'))";

/** A tenant's schema (its tables only: the offsets stay in sink.schema), serialized like ensureSinkSchema. */
export async function ensureTenantSchema(db: TransactionSource, schema: string): Promise<void> {
  await withTransaction(db, async (client) => {
    await client.query(SCHEMA_LOCK);
    await client.query(`CREATE SCHEMA IF NOT EXISTS ${ident(schema)}`);
  });
}

/** What the sink knows of a mapped topic: its connector (pipeline id), table, and where the table lands. */
export interface TopicTable {
  connector: string;
  table: string;
  relation: SinkRelation;
}

export class SinkTables {
  private readonly tables = new Map<string, TableState>(); // key: topic + schema id
  /** Schemas known to exist (sink.schema, made at start, and the tenants' made here). */
  private readonly schemas = new Set<string>();
  private readonly db: TransactionSource;
  private readonly schema: string;
  private readonly schemaJson: (schemaId: number) => Promise<avro.Schema>;
  private readonly byTopic: Map<string, TopicTable>;

  constructor(db: TransactionSource, schema: string, schemaJson: (schemaId: number) => Promise<avro.Schema>, byTopic: Map<string, TopicTable>) {
    this.db = db;
    this.schema = schema;
    this.schemaJson = schemaJson;
    this.byTopic = byTopic;
  }

  /** The table of a topic for records written with a schema: created or evolved on first use. */
  async tableFor(topic: string, schemaId: number): Promise<TableState> {
    const key = `${topic}\u0000${schemaId}`;
    const cached = this.tables.get(key);
    if (cached) return cached;
    const m = this.byTopic.get(topic)!;
    const writer = await this.schemaJson(schemaId);
    const columns = columnsOf(writer);
    const { qualified, name, schema } = m.relation;
    if (schema !== this.schema && !this.schemas.has(schema)) {
      await ensureTenantSchema(this.db, schema);
      this.schemas.add(schema);
    }
    await evolveTable(this.db, qualified, name, schema, columns);
    const state = { qualified, columns, upsert: upsertSql(qualified, columns), schemaId };
    this.tables.set(key, state);
    return state;
  }

  /** Forgets what is known of a topic's table (it was dropped: it will be created again). */
  forget(topic: string): void {
    // The tenant's schema may have gone with it (dropped to rebuild the tenant's tables).
    const schema = this.byTopic.get(topic)?.relation.schema;
    if (schema !== undefined) this.schemas.delete(schema);
    for (const key of [...this.tables.keys()]) if (key.startsWith(`${topic}\u0000`)) this.tables.delete(key);
  }
}

/** Creates the table or adds the schema's new columns; a column whose type changed is refused. */
async function evolveTable(db: TransactionSource, qualified: string, bareName: string, schema: string, columns: SinkColumn[]): Promise<void> {
  await withTransaction(db, async (client) => {
    await client.query("SELECT pg_advisory_xact_lock(hashtext($1))", [qualified]);
    await client.query(createTableSql(qualified, columns));
    const existing = await client.query<{ column_name: string; type: string }>(
      `SELECT a.attname AS column_name, format_type(a.atttypid, a.atttypmod) AS type FROM pg_attribute a
        WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped`,
      [qualified],
    );
    const types = new Map(existing.rows.map((r) => [r.column_name, r.type]));
    for (const c of columns) {
      const have = types.get(c.name);
      if (have === undefined) await client.query(addColumnSql(qualified, c));
      else if (normalizeType(have) !== normalizeType(c.pgType)) {
        throw new SinkSchemaError(
          `sink column ${schema}.${bareName}.${c.name} is ${have} but the mapped schema now says ${c.pgType}; ` +
            "changing a field's type needs a new table version: rename the Qobra table in the config (or drop the sink table) and run `qobra-sync replay`; " +
            "these records wait in dlq.sink (`qobra-sync dlq replay --stage sink` once the table is fixed)",
        );
      }
    }
  });
}

function normalizeType(t: string): string {
  return t
    .replace("timestamp with time zone", "timestamptz")
    .replace("text[]", "text[]")
    .replace(/^numeric.*/, "numeric");
}
