/**
 * Applies one fetched batch of a mapped topic's partition to the sink database, exactly once: in
 * one transaction, the partition's stored offset is locked and read, only the rows at or past it
 * are written, and the offset is moved past the batch. A redelivered batch writes nothing twice.
 *
 * Rows are written in one statement per schema. When PostgreSQL refuses the data (not the
 * connection), the batch is applied again row by row under savepoints, and the rows it refuses go
 * to the dead-letter topic, sent before the commit. A table dropped under the sink is created
 * again once per batch. A lost connection is a SinkUnavailableError: the batch is fetched again.
 */
import type pg from "pg";
import { SinkUnavailableError, describeError, isRetriablePgError } from "../../lib/errors.ts";
import { logger } from "../../lib/log.ts";
import { withTransaction, type TransactionSource } from "../../lib/pg.ts";
import type { OffsetStore } from "./offset-store.ts";
import { softDeleteSql, upsertParams } from "./sink-sql.ts";
import { SinkSchemaError, type SinkTables, type TableState } from "./table-evolution.ts";

const log = logger.child({ component: "sink" });

/** A mapped record, decoded, with the offset it was read at and the schema it was written with. */
export interface DecodedRow {
  offset: number;
  schemaId: number;
  value: Record<string, unknown>;
}

interface SinkBatch {
  topic: string;
  partition: number;
  rows: DecodedRow[];
  nextOffset: number;
}

export interface ApplyDeps {
  db: TransactionSource;
  offsets: Pick<OffsetStore, "lock" | "advance">;
  tables: Pick<SinkTables, "tableFor" | "forget">;
  /** Rows per statement (the sweep in docs/benchmarks.md: 2,500-5,000 is best). */
  batchSize: number;
  /** Sends the refused rows to the dead-letter topic (acknowledged before the transaction commits). */
  deadLetter(topic: string, partition: number, items: Array<{ offset: number; error: unknown }>): Promise<void>;
}

interface Applied {
  written: number;
  dead: number;
  skipped: number;
}

export async function applyBatch(deps: ApplyDeps, batch: SinkBatch): Promise<Applied> {
  let safe = false;
  let recreated = false;
  for (;;) {
    try {
      const done = await withTransaction(deps.db, (client) => applyOnce(deps, client, batch, safe));
      log.debug({ topic: batch.topic, partition: batch.partition, written: done.written, dead: done.dead, nextOffset: batch.nextOffset }, "batch written");
      return done;
    } catch (e) {
      if (isRetriablePgError(e)) throw new SinkUnavailableError(`sink PostgreSQL failed: ${describeError(e)}`, e);
      if ((e as { code?: string }).code === "42P01" && !recreated) {
        // A sink table was dropped under us (to rebuild it): forget what we knew and create it again.
        log.warn({ topic: batch.topic, err: describeError(e) }, "a sink table is gone; creating it again");
        deps.tables.forget(batch.topic);
        recreated = true;
        continue;
      }
      if (!safe && isDataError(e)) {
        log.warn(
          { topic: batch.topic, partition: batch.partition, err: describeError(e) },
          "PostgreSQL refused a batch; applying it row by row to isolate the bad rows",
        );
        safe = true;
        continue;
      }
      throw e;
    }
  }
}

/** One attempt, inside the transaction: `safe` applies row by row, dead-lettering what PostgreSQL refuses. */
async function applyOnce(deps: ApplyDeps, client: pg.PoolClient, batch: SinkBatch, safe: boolean): Promise<Applied> {
  const applied = await deps.offsets.lock(client, batch.topic, batch.partition);
  const fresh = batch.rows.filter((d) => d.offset >= applied);
  const bySchema = new Map<number, DecodedRow[]>();
  for (const d of fresh) {
    let l = bySchema.get(d.schemaId);
    if (!l) bySchema.set(d.schemaId, (l = []));
    l.push(d);
  }
  const dead: Array<{ offset: number; error: unknown }> = [];
  let written = 0;
  for (const [schemaId, rows] of bySchema) {
    let t: TableState;
    try {
      t = await deps.tables.tableFor(batch.topic, schemaId);
    } catch (e) {
      if (!(e instanceof SinkSchemaError)) throw e;
      for (const r of rows) dead.push({ offset: r.offset, error: e });
      continue;
    }
    if (!safe) {
      for (let i = 0; i < rows.length; i += deps.batchSize)
        written += await applyRows(
          client,
          t,
          rows.slice(i, i + deps.batchSize).map((r) => r.value),
        );
      continue;
    }
    for (const r of rows) {
      await client.query("SAVEPOINT qobra_row");
      try {
        written += await applyRows(client, t, [r.value]);
        await client.query("RELEASE SAVEPOINT qobra_row");
      } catch (e) {
        if (isRetriablePgError(e)) throw e;
        await client.query("ROLLBACK TO SAVEPOINT qobra_row");
        dead.push({ offset: r.offset, error: e });
      }
    }
  }
  if (dead.length > 0) await deps.deadLetter(batch.topic, batch.partition, dead);
  if (batch.nextOffset > applied) await deps.offsets.advance(client, batch.topic, batch.partition, batch.nextOffset);
  return { written, dead: dead.length, skipped: batch.rows.length - fresh.length };
}

/** Upserts and soft deletes of one table, each in one statement. */
async function applyRows(client: pg.PoolClient, t: TableState, values: Array<Record<string, unknown>>): Promise<number> {
  const upserts = values.filter((v) => v._deleted !== true);
  const deletes = values.filter((v) => v._deleted === true);
  if (upserts.length > 0) await client.query(t.upsert, upsertParams(t.columns, upserts));
  if (deletes.length > 0) {
    await client.query(softDeleteSql(t.qualified), [deletes.map((d) => d._external_id), deletes.map((d) => d._version), deletes.map((d) => d._run_id)]);
  }
  return values.length;
}

/** PostgreSQL refused the data itself (SQLSTATE classes 22 data exception, 23 integrity). */
function isDataError(e: unknown): boolean {
  const code = (e as { code?: unknown })?.code;
  return typeof code === "string" && (code.startsWith("22") || code.startsWith("23"));
}
