/**
 * The end-to-end baseline (`npm run bench`, after bench/pg-source.ts): COPY the benchmark table
 * out (`COPY (SELECT …) TO STDOUT`) and straight into a table of the same columns (`COPY … FROM
 * STDIN`), streamed, in seconds; median of BENCH_RUNS. Set against the end-to-end full sync that
 * bench/pg-source.ts measured in the same `npm run bench` (bench/results/pg-source.json written
 * after BENCH_STARTED_AT), as the ratio COPY-out-then-COPY-in seconds / full-sync seconds.
 *
 * Prints its figures as the last lines; writes bench/results/copy-e2e.json.
 */
import { existsSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { pipeline as streamPipeline } from "node:stream/promises";
import pg from "pg";
import { from as copyFrom, to as copyTo } from "pg-copy-streams";
import { DB, ROOT, dbUrl, log, median, round, writeResult } from "./common.ts";

const ROWS = Number(process.env.BENCH_ROWS ?? 1_000_000);
const RUNS = Number(process.env.BENCH_RUNS ?? 3);
const TABLE = `bench_deals_${ROWS}`;
const COLS = "id, title, amount, currency, closed_on, owner_email, stage, won, probability, updated_at";

const admin = new pg.Client({ connectionString: dbUrl(DB) });
await admin.connect();
const exists = (await admin.query("SELECT to_regclass($1) AS r", [`public.${TABLE}`])).rows[0].r;
if (!exists) throw new Error(`public.${TABLE} does not exist in ${DB}: run bench/pg-source.ts first (it seeds it)`);
const seconds: number[] = [];
for (let r = 0; r < RUNS; r++) {
  await admin.query("DROP TABLE IF EXISTS public.bench_copy_target");
  await admin.query(`CREATE TABLE public.bench_copy_target (LIKE public.${TABLE} INCLUDING ALL)`);
  const out = new pg.Client({ connectionString: dbUrl(DB) });
  const into = new pg.Client({ connectionString: dbUrl(DB) });
  await out.connect();
  await into.connect();
  const started = performance.now();
  try {
    await streamPipeline(
      out.query(copyTo(`COPY (SELECT ${COLS} FROM public.${TABLE}) TO STDOUT`)),
      into.query(copyFrom(`COPY public.bench_copy_target (${COLS}) FROM STDIN`)),
    );
  } finally {
    await out.end();
    await into.end();
  }
  seconds.push((performance.now() - started) / 1000);
  const n = Number((await admin.query("SELECT count(*) AS n FROM public.bench_copy_target")).rows[0].n);
  if (n !== ROWS) throw new Error(`COPY round trip landed ${n} rows, expected ${ROWS}`);
  log(`run ${r + 1}: COPY out then in of ${ROWS} rows: ${seconds.at(-1)!.toFixed(1)} s`);
}
await admin.query("DROP TABLE IF EXISTS public.bench_copy_target");
await admin.end();

const copySeconds = median(seconds);
const pgFile = join(ROOT, "bench", "results", "pg-source.json");
const since = Number(process.env.BENCH_STARTED_AT ?? 0) * 1000;
let e2e: { seconds: number } | null = null;
if (existsSync(pgFile) && statSync(pgFile).mtimeMs >= since) {
  const r = JSON.parse(readFileSync(pgFile, "utf8")) as { rows: number; endToEnd: { seconds: number } | null };
  if (r.rows === ROWS && r.endToEnd) e2e = r.endToEnd;
}
const result = {
  rows: ROWS,
  runs: RUNS,
  copyRoundTripSeconds: round(copySeconds, 2),
  copyRoundTripRowsPerSec: Math.round(ROWS / copySeconds),
  endToEndSeconds: e2e ? round(e2e.seconds, 1) : null,
  endToEndVsCopy: e2e ? round(copySeconds / e2e.seconds, 3) : null,
};
writeResult("copy-e2e", result);
console.log(
  e2e
    ? `end to end full sync of ${ROWS} rows: ${result.endToEndSeconds} s vs COPY out then COPY in ${result.copyRoundTripSeconds} s = ratio ${result.endToEndVsCopy} (COPY seconds / sync seconds; median of ${RUNS})`
    : `COPY out then COPY in of ${ROWS} rows: ${result.copyRoundTripSeconds} s (median of ${RUNS}); no end-to-end figure from bench/pg-source.ts in this run to compare with`,
);
process.exit(0);
