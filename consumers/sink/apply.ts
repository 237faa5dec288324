/**
 * Applies one fetched batch of a mapped topic's partition to the sink database, exactly once: in
 * one transaction, the partition's stored offset is locked and read, only the rows at or past it
 * are written, and the offset is moved past the batch. A redelivered batch writes nothing twice.
 *
 * The rows of each schema are streamed with COPY into a staging table of the session and merged
 * into the sink table by one version-guarded INSERT … SELECT … ON CONFLICT (sink-sql.ts). When
 * PostgreSQL refuses the data (not the connection), the batch is applied again row by row under
 * savepoints (one guarded upsert each), and the rows it refuses go to the dead-letter topic, sent
 * before the commit. A table dropped under the sink is created
 * again once per batch. A lost connection is a SinkUnavailableError: the batch is fetched again.
 */
import { Readable } from "node:stream";
import { pipeline } from "node:stream/promises";
import type pg from "pg";
import { from as copyFrom } from "pg-copy-streams";
import { SinkUnavailableError, describeError, isRetriablePgError } from "../../lib/errors.ts";
import { logger } from "../../lib/log.ts";
import { withTransaction, type TransactionSource } from "../../lib/pg.ts";
import type { OffsetStore } from "./offset-store.ts";
import { copyRows, copyStageSql, mergeSql, softDeleteSql, stageDdl, stageName, upsertParams } from "./sink-sql.ts";
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
  /** Rows per COPY chunk written at a time (the merge takes the whole batch of a table at once). */
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
  const staged = new Set<string>();
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
      written += await stageRows(
        client,
        t,
        rows.map((r) => r.value),
        deps.batchSize,
        staged,
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

/** Upserts (COPY into the staging table, one guarded merge) and soft deletes (one statement) of one table. */
async function stageRows(
  client: pg.PoolClient,
  t: TableState,
  values: Array<Record<string, unknown>>,
  chunkRows: number,
  staged: Set<string>,
): Promise<number> {
  const upserts = values.filter((v) => v._deleted !== true);
  const deletes = values.filter((v) => v._deleted === true);
  if (upserts.length > 0) {
    const stage = stageName(t.qualified, t.columns);
    await client.query(stageDdl(stage, t.columns));
    // Emptied at each commit; a second table's batch in the same transaction empties it first.
    if (staged.has(stage)) await client.query(`TRUNCATE ${stage}`);
    staged.add(stage);
    const chunks = function* (): Generator<string> {
      for (let i = 0; i < upserts.length; i += chunkRows) yield copyRows(t.columns, upserts.slice(i, i + chunkRows));
    };
    await pipeline(Readable.from(chunks()), client.query(copyFrom(copyStageSql(stage, t.columns))));
    await client.query(mergeSql(t.qualified, stage, t.columns));
  }
  if (deletes.length > 0) {
    await client.query(softDeleteSql(t.qualified), [deletes.map((d) => d._external_id), deletes.map((d) => d._version), deletes.map((d) => d._run_id)]);
  }
  return values.length;
}

/** Upserts and soft deletes of one table, each in one statement (the row-by-row path). */
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
