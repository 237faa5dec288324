/**
 * Sink benchmark (`npm run bench`), all in the same run, medians of BENCH_RUNS (default 3):
 *
 *  1. The sink's SQL path: the sink's own per-batch transaction (consumers/sink/apply.ts applyBatch:
 *     offsets lock, COPY into the staging table, version-guarded merge, offsets update), into an
 *     empty table (insert) and again over it with newer versions (update), vs a plain
 *     `COPY … FROM STDIN` of the same rows into the same table DDL
 *     (createTableSql). The values are the mapper's (consumers/mapping) output, Avro-encoded and
 *     decoded through the registry, as the sink receives them. Plus a sweep of the batch size.
 *  2. The sink consumer end to end (`qobra-sync run --roles sink` as its own process) from a
 *     pre-filled mapped topic (Avro, Confluent framing, 3 partitions), vs the Debezium JDBC sink
 *     connector on Kafka Connect standalone consuming the same rows (JSON with schemas, same keys,
 *     same partition count) into the same table DDL. Rates run from the first row seen in the
 *     table to the last, so start-up (JVM, group join) counts for neither.
 *
 * BENCH_SINK_ROWS (default 200,000). BENCH_DEBEZIUM=0 skips Debezium. Prints its figures as the
 * last lines; writes bench/results/sink.json.
 */
import { pipeline as streamPipeline } from "node:stream/promises";
import { Readable } from "node:stream";
import pg from "pg";
import { from as copyFrom } from "pg-copy-streams";
import { openRuntime, type Runtime } from "../lib/runtime.ts";
import { ident } from "../lib/pg.ts";
import { mappedSchema } from "../consumers/mapping/mapped-schema.ts";
import { applyBatch, type ApplyDeps, type DecodedRow } from "../consumers/sink/apply.ts";
import { OffsetStore } from "../consumers/sink/offset-store.ts";
import { columnsOf, createTableSql, offsetsDdl, upsertColumns, upsertParams, upsertSql, type SinkColumn } from "../consumers/sink/sink-sql.ts";
import type { TableState } from "../consumers/sink/table-evolution.ts";
import {
  DB,
  benchLayout,
  benchYaml,
  createTopic,
  dbUrl,
  deleteTopicsWithPrefix,
  log,
  mappedValues,
  median,
  prepareBenchDb,
  produceAll,
  round,
  startRole,
  stopChild,
  timeProgress,
  writeConfig,
  writeResult,
} from "./common.ts";
import { DEBEZIUM_VERSION, connectErrors, startDebeziumSink } from "./debezium.ts";

const ROWS = Number(process.env.BENCH_SINK_ROWS ?? 200_000);
const RUNS = Number(process.env.BENCH_RUNS ?? 3);
const BATCH = Number(process.env.BENCH_SINK_BATCH ?? 5000);
const SWEEP = (process.env.BENCH_SINK_SWEEP ?? "1000,2500,5000,10000,20000").split(",").filter(Boolean).map(Number);
const PARTITIONS = 3;
const DBZ_TASKS = 2; // the sink consumes two partitions at a time (partitionsConsumedConcurrently: 2)
const DBZ_BATCH = Number(process.env.BENCH_DEBEZIUM_BATCH ?? 5000);

await prepareBenchDb();

const base = `bsink${Date.now().toString(36)}`;
const schema = `bench_${base}`;
const { config } = writeConfig(base, benchYaml(base));
const rt: Runtime = await openRuntime(config, "bench-sink");
const topic0 = rt.port.topics.mapped("bench", "deals");

log(`sink bench: mapping ${ROWS} rows through the mapper's core and the registry`);
const layout = benchLayout(config);
const schemaId = await rt.registry.register(topic0, mappedSchema(layout));
const values = mappedValues(config, 1, ROWS + 1, "bench-run");
const encoded: Buffer[] = [];
for (const v of values) encoded.push(await rt.registry.encode(schemaId, v));
const decoded: Record<string, unknown>[] = [];
for (const b of encoded) decoded.push(await rt.registry.decode<Record<string, unknown>>(b));
const columns: SinkColumn[] = columnsOf(await rt.registry.schemaJson(schemaId));
const pool = new pg.Pool({ connectionString: dbUrl(DB), max: 2 });
await pool.query(`CREATE SCHEMA IF NOT EXISTS ${ident(schema)}`);
await pool.query(offsetsDdl(schema));

// ---- 1. SQL path vs COPY -------------------------------------------------------------------

async function freshTable(name: string): Promise<string> {
  const q = `${ident(schema)}.${ident(name)}`;
  await pool.query(`DROP TABLE IF EXISTS ${q}`);
  await pool.query(createTableSql(q, columns));
  return q;
}

/** COPY text format of one value. */
function copyText(v: unknown): string {
  if (v === null || v === undefined) return "\\N";
  const s = typeof v === "string" ? v : String(v);
  return s.replace(/\\/g, "\\\\").replace(/\t/g, "\\t").replace(/\n/g, "\\n").replace(/\r/g, "\\r");
}

async function copyIn(q: string, rows: Record<string, unknown>[]): Promise<number> {
  const cols = upsertColumns(columns);
  const started = performance.now();
  const client = await pool.connect();
  try {
    const params = upsertParams(columns, rows); // the same value conversions as the upsert
    const now = new Date().toISOString();
    function* lines(): Generator<string> {
      let chunk = "";
      for (let i = 0; i < rows.length; i++) {
        let line = "";
        for (let c = 0; c < params.length; c++) line += `${copyText(params[c]![i])}\t`;
        chunk += `${line}${now}\n`;
        if (chunk.length > 256 * 1024) {
          yield chunk;
          chunk = "";
        }
      }
      if (chunk) yield chunk;
    }
    await streamPipeline(Readable.from(lines()), client.query(copyFrom(`COPY ${q} (${cols.map((c) => ident(c.name)).join(", ")}, "_synced_at") FROM STDIN`)));
  } finally {
    client.release();
  }
  return (performance.now() - started) / 1000;
}

/**
 * The sink's per-batch transaction, as the sink runs it (consumers/sink/apply.ts applyBatch): the
 * offsets row locked, the rows staged by COPY and merged with the version guard, the offset
 * advanced, commit. `versionBump` gives every row a newer version (and offset): the update pass.
 */
let passes = 0;
async function upsertAll(q: string, rows: Record<string, unknown>[], batch: number, versionBump: number): Promise<number> {
  const state: TableState = { qualified: q, columns, upsert: upsertSql(q, columns), schemaId };
  const deps: ApplyDeps = {
    db: pool,
    // A group of its own per pass over a fresh table: stored offsets would (rightly) skip what an earlier pass applied.
    offsets: new OffsetStore(schema, `bench-${q}-${++passes}`),
    tables: { tableFor: async () => state, forget: () => {} },
    batchSize: batch,
    deadLetter: async (_t, _p, items) => {
      throw new Error(`the sink refused ${items.length} rows: ${String(items[0]?.error)}`);
    },
  };
  const started = performance.now();
  for (let i = 0; i < rows.length; i += batch) {
    const slice = rows.slice(i, i + batch).map(
      (value, k): DecodedRow => ({
        offset: i + k + versionBump,
        schemaId,
        value: versionBump === 0 ? value : { ...value, _version: (value._version as number) + versionBump },
      }),
    );
    await applyBatch(deps, { topic: "t", partition: 0, rows: slice, nextOffset: i + slice.length + versionBump });
  }
  return (performance.now() - started) / 1000;
}

async function countRows(q: string): Promise<number> {
  return Number((await pool.query(`SELECT count(*) AS n FROM ${q}`)).rows[0].n);
}

const copyRates: number[] = [],
  insertRates: number[] = [],
  updateRates: number[] = [];
for (let r = 0; r < RUNS; r++) {
  const qc = await freshTable("copy_target");
  const copySeconds = await copyIn(qc, decoded);
  if ((await countRows(qc)) !== ROWS) throw new Error("COPY did not land every row");
  const qu = await freshTable("upsert_target");
  const ins = await upsertAll(qu, decoded, BATCH, 0);
  const upd = await upsertAll(qu, decoded, BATCH, ROWS);
  const [check] = (await pool.query(`SELECT count(*) AS n, min(_version) AS v FROM ${qu}`)).rows as Array<{ n: string; v: string }>;
  if (Number(check!.n) !== ROWS || Number(check!.v) <= ROWS) throw new Error(`the upsert left ${check!.n} rows, min version ${check!.v}`);
  copyRates.push(ROWS / copySeconds);
  insertRates.push(ROWS / ins);
  updateRates.push(ROWS / upd);
  log(
    `run ${r + 1}: COPY ${Math.round(ROWS / copySeconds)} rows/s; upsert insert ${Math.round(ROWS / ins)} rows/s, update ${Math.round(ROWS / upd)} rows/s (batches of ${BATCH})`,
  );
}
const sweep: Array<{ batch: number; insertRowsPerSec: number; updateRowsPerSec: number }> = [];
for (const b of SWEEP) {
  const q = await freshTable("sweep_target");
  const ins = await upsertAll(q, decoded, b, 0);
  const upd = await upsertAll(q, decoded, b, ROWS);
  sweep.push({ batch: b, insertRowsPerSec: Math.round(ROWS / ins), updateRowsPerSec: Math.round(ROWS / upd) });
  log(`sweep: batches of ${b}: insert ${Math.round(ROWS / ins)} rows/s, update ${Math.round(ROWS / upd)} rows/s`);
}
await pool.query(`DROP TABLE IF EXISTS ${ident(schema)}.copy_target, ${ident(schema)}.sweep_target`);
/** A digest of every row's values (bookkeeping columns aside), to check that each contender wrote the same data. */
async function digest(q: string): Promise<string> {
  const cols = upsertColumns(columns)
    .filter((c) => c.name !== "_version")
    .map((c) => ident(c.name));
  return String((await pool.query(`SELECT md5(string_agg(row(${cols.join(", ")})::text, '|' ORDER BY "_external_id")) AS d FROM ${q}`)).rows[0].d);
}
const reference = await digest(`${ident(schema)}.upsert_target`);

// ---- 2. sink consumer vs Debezium JDBC sink -------------------------------------------------

const sinkRates: number[] = [],
  batchSizes: number[] = [];
for (let r = 0; r < RUNS; r++) {
  const prefix = `${base}r${r}`;
  const { file, config: cfg } = writeConfig(prefix, benchYaml(prefix, { sinkSchema: `${schema}_r${r}` }));
  const rtr = await openRuntime(cfg, "bench-sink");
  const topic = rtr.port.topics.mapped("bench", "deals");
  const id = await rtr.registry.register(topic, mappedSchema(layout));
  const msgs =
    id === schemaId
      ? encoded.map((value, i) => ({ key: String(i + 1), value }))
      : await Promise.all(values.map(async (v, i) => ({ key: String(i + 1), value: await rtr.registry.encode(id, v) })));
  await produceAll(rtr.port, topic, msgs);
  const child = startRole("sink", file, { QOBRA_SYNC_LOG_LEVEL: "debug" }, "stdout");
  const sizes: number[] = [];
  let buf = "";
  child.stdout!.on("data", (d: Buffer) => {
    buf += d.toString();
    let nl;
    while ((nl = buf.indexOf("\n")) >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      if (line.includes('"batch written"')) {
        try {
          sizes.push((JSON.parse(line) as { written: number }).written);
        } catch {
          /* partial */
        }
      }
    }
  });
  const q = `${ident(`${schema}_r${r}`)}.${ident("bench__deals")}`;
  try {
    const t = await timeProgress(() => countRows(q).catch(() => 0), ROWS, { what: "qobra-sync sink", pollMs: 200 });
    sinkRates.push(t.rate);
    batchSizes.push(median(sizes));
    log(`run ${r + 1}: sink consumer ${Math.round(t.rate)} rows/s (${t.seconds.toFixed(1)} s from first to last row; median batch ${median(sizes)} rows)`);
    if ((await digest(q)) !== reference) throw new Error("the sink consumer's table differs from the reference upsert's");
  } finally {
    await stopChild(child);
    await pool.query(`DROP SCHEMA IF EXISTS ${ident(`${schema}_r${r}`)} CASCADE`);
    await deleteTopicsWithPrefix(rtr.port, prefix);
    await rtr.close();
  }
}

interface DbzResult {
  rowsPerSec: number | null;
  runs: number[];
  error?: string;
  sameValues?: boolean;
}
const dbz: DbzResult = { rowsPerSec: null, runs: [] };
if (process.env.BENCH_DEBEZIUM !== "0") {
  const json = jsonWithSchema(decoded);
  for (let r = 0; r < RUNS && !dbz.error; r++) {
    const topic = `${base}.dbz.r${r}`;
    const table = `dbz_r${r}`;
    await createTopic(rt.port, topic, PARTITIONS);
    await produceAll(
      rt.port,
      topic,
      json.map((value, i) => ({ key: String(decoded[i]!._external_id), value })),
      400,
    ); // ~1.6 kB each: stay under the broker's 1 MB batch limit
    const q = `${ident(schema)}.${ident(table)}`;
    await pool.query(createTableSql(q, columns));
    // Debezium writes the record's fields; the sink's own bookkeeping columns take their defaults.
    await pool.query(`ALTER TABLE ${q} ALTER COLUMN "_synced_at" SET DEFAULT now()`);
    let run;
    try {
      run = await startDebeziumSink({ name: `${base}-dbz-r${r}`, topic, table: `${schema}.${table}`, database: DB, tasks: DBZ_TASKS, batchSize: DBZ_BATCH });
      const child = run.child;
      const t = await Promise.race([
        timeProgress(() => countRows(q), ROWS, { what: "Debezium JDBC sink", pollMs: 200, timeoutMs: 900_000 }),
        new Promise<never>((_, reject) => child.once("exit", (code) => reject(new Error(`Kafka Connect exited with code ${code}`)))),
      ]);
      dbz.runs.push(t.rate);
      dbz.sameValues = (await digest(q)) === reference;
      log(`run ${r + 1}: Debezium JDBC sink ${Math.round(t.rate)} rows/s (${t.seconds.toFixed(1)} s from first to last row)`);
    } catch (e) {
      dbz.error = `${(e as Error).message}${run ? `; Connect log ${run.logFile}: ${connectErrors(run.logFile).join(" | ").slice(0, 600)}` : ""}`;
      log(`Debezium run failed: ${dbz.error}`);
    } finally {
      await run?.stop();
      await pool.query(`DROP TABLE IF EXISTS ${q}`);
    }
  }
  if (dbz.runs.length > 0 && !dbz.error) dbz.rowsPerSec = Math.round(median(dbz.runs));
} else {
  dbz.error = "skipped (BENCH_DEBEZIUM=0)";
}

await pool.query(`DROP SCHEMA IF EXISTS ${ident(schema)} CASCADE`);
await deleteTopicsWithPrefix(rt.port, base);
await rt.close();
await pool.end();

/** The same rows as Kafka Connect JSON with schemas: decimals as exact strings, dates as Connect Date, instants as Debezium MicroTimestamp. */
function jsonWithSchema(rows: Record<string, unknown>[]): string[] {
  const cols = upsertColumns(columns);
  const fieldSchema = (c: SinkColumn) => {
    const optional = !["_external_id", "_run_id", "_version"].includes(c.name);
    switch (c.kind) {
      case "bigint":
        return { field: c.name, type: "int64", optional };
      case "bool":
        return { field: c.name, type: "boolean", optional };
      case "date":
        return { field: c.name, type: "int32", optional, name: "org.apache.kafka.connect.data.Date", version: 1 };
      case "timestamptz":
        return { field: c.name, type: "int64", optional, name: "io.debezium.time.MicroTimestamp", version: 1 };
      case "text[]":
        return { field: c.name, type: "array", items: { type: "string", optional: true }, optional };
      default:
        return { field: c.name, type: "string", optional };
    }
  };
  const schemaHead = JSON.stringify({ type: "struct", name: "bench.deals", optional: false, fields: cols.map(fieldSchema) });
  return rows.map((r) => {
    const payload: Record<string, unknown> = {};
    for (const c of cols) payload[c.name] = r[c.name] ?? null;
    return `{"schema":${schemaHead},"payload":${JSON.stringify(payload)}}`;
  });
}

const copy = median(copyRates),
  ins = median(insertRates),
  upd = median(updateRates),
  sinkRate = median(sinkRates);
const best = [...sweep].sort((a, b) => b.insertRowsPerSec + b.updateRowsPerSec - (a.insertRowsPerSec + a.updateRowsPerSec))[0];
const result = {
  rows: ROWS,
  runs: RUNS,
  batch: BATCH,
  sqlPath: {
    copyRowsPerSec: Math.round(copy),
    upsertInsertRowsPerSec: Math.round(ins),
    upsertUpdateRowsPerSec: Math.round(upd),
    insertVsCopy: round(ins / copy, 3),
    updateVsCopy: round(upd / copy, 3),
    runs: { copy: copyRates.map((x) => Math.round(x)), insert: insertRates.map((x) => Math.round(x)), update: updateRates.map((x) => Math.round(x)) },
  },
  batchSweep: sweep,
  bestBatch: best?.batch,
  consumer: {
    sinkRowsPerSec: Math.round(sinkRate),
    sinkMedianBatchRows: median(batchSizes),
    runs: sinkRates.map((x) => Math.round(x)),
    debezium: {
      version: DEBEZIUM_VERSION,
      tasks: DBZ_TASKS,
      batchSize: DBZ_BATCH,
      format: "JSON with schemas (JsonConverter), string keys",
      ...dbz,
      runs: dbz.runs.map((x) => Math.round(x)),
    },
    sinkVsDebezium: dbz.rowsPerSec ? round(sinkRate / dbz.rowsPerSec, 3) : null,
  },
};
writeResult("sink", result);
console.log(
  `sink batch-size sweep (${ROWS} rows, rows/s insert/update): ${sweep.map((s) => `${s.batch}: ${s.insertRowsPerSec}/${s.updateRowsPerSec}`).join(", ")}; best ${best?.batch}`,
);
console.log(
  `sink SQL path (applyBatch: COPY into staging + guarded merge, batches of ${BATCH}, ${ROWS} rows, median of ${RUNS}): insert ${result.sqlPath.upsertInsertRowsPerSec} rows/s, update ${result.sqlPath.upsertUpdateRowsPerSec} rows/s vs COPY ${result.sqlPath.copyRowsPerSec} rows/s = ratio ${result.sqlPath.insertVsCopy} (insert), ${result.sqlPath.updateVsCopy} (update)`,
);
console.log(
  dbz.rowsPerSec
    ? `sink consumer end to end (pre-filled Avro mapped topic, ${PARTITIONS} partitions): ${result.consumer.sinkRowsPerSec} rows/s vs Debezium JDBC sink ${DEBEZIUM_VERSION} (JSON with schemas, ${DBZ_TASKS} tasks, batch.size ${DBZ_BATCH}) ${dbz.rowsPerSec} rows/s = ratio ${result.consumer.sinkVsDebezium}`
    : `sink consumer end to end (pre-filled Avro mapped topic, ${PARTITIONS} partitions): ${result.consumer.sinkRowsPerSec} rows/s; Debezium JDBC sink ${DEBEZIUM_VERSION}: NOT MEASURED: ${dbz.error}`,
);
process.exit(0);
