/**
 * PostgreSQL source benchmark (`npm run bench`):
 *  1. read rate of the connector vs `COPY (same SELECT) TO STDOUT` of the same table, same run;
 *  2. a full sync of the table end to end (producer, mapper and sink as separate processes),
 *     in seconds, with the peak RSS of each role (VmHWM).
 * Medians of BENCH_RUNS runs (default 3). BENCH_ROWS rows (default 1,000,000).
 * Prints its figures as the last lines and writes bench/results/pg-source.json.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { Writable } from "node:stream";
import { pipeline as streamPipeline } from "node:stream/promises";
import pg from "pg";
import { to as copyTo } from "pg-copy-streams";
import { createConnector } from "../producers/connectors/registry.ts";
import { openRuntime } from "../lib/runtime.ts";
import { parseConfig } from "../app/config.ts";
import { stackUp } from "../stack/stack.ts";
import { syncAndWait } from "../support/pipeline.ts";
import { dbUrl, ensureDatabase, withDb } from "../support/env.ts";
import { DB, benchYaml, log, median } from "./common.ts";

const ROWS = Number(process.env.BENCH_ROWS ?? 1_000_000);
const RUNS = Number(process.env.BENCH_RUNS ?? 3);
const TABLE = `bench_deals_${ROWS}`;
/** The benchmark configuration for this table, without a users query (user values keep a null user id). */
const yaml = (prefix: string) => benchYaml(prefix, { sourceTable: TABLE, usersTable: null });

async function seed(): Promise<void> {
  await ensureDatabase(DB);
  await withDb(DB, async (c) => {
    const exists = await c.query("SELECT to_regclass($1) AS r", [`public.${TABLE}`]);
    if (exists.rows[0].r) return;
    log(`seeding ${ROWS} rows into ${DB}.public.${TABLE}`);
    await c.query(`CREATE TABLE public.${TABLE} (id bigint PRIMARY KEY, title text, amount numeric(18,4), currency char(3), closed_on date,
      owner_email text, stage text, won boolean, probability double precision, updated_at timestamptz)`);
    await c.query(`INSERT INTO public.${TABLE} SELECT g, 'Deal ' || g, round((g * 12.3457)::numeric, 4), (ARRAY['EUR','USD','GBP'])[1 + g % 3],
      DATE '2026-01-01' + (g % 365), 'rep' || (g % 50) || '@example.com', (ARRAY['new','won','lost'])[1 + g % 3], g % 3 = 1, (g % 100) / 100.0,
      TIMESTAMPTZ '2026-01-01 00:00:00+00' + g * interval '1 second' FROM generate_series(1, ${ROWS}) g`);
    await c.query(`VACUUM ANALYZE public.${TABLE}`);
  });
}

async function copyOut(sql: string): Promise<{ seconds: number; bytes: number }> {
  const client = new pg.Client({ connectionString: dbUrl(DB) });
  await client.connect();
  try {
    let bytes = 0;
    const started = performance.now();
    await streamPipeline(
      client.query(copyTo(`COPY (${sql}) TO STDOUT`)),
      new Writable({
        write(chunk: Buffer, _e, cb) {
          bytes += chunk.length;
          cb();
        },
      }),
    );
    return { seconds: (performance.now() - started) / 1000, bytes };
  } finally {
    await client.end();
  }
}

async function connectorRead(): Promise<{ seconds: number; rows: number; peakRssMb: number }> {
  const config = parseConfig(yaml("benchread"), "bench", {});
  const conn = createConnector(config.connectors[0]!);
  let rows = 0,
    peak = 0;
  const started = performance.now();
  try {
    for await (const page of conn.read("deals", { full: true, signal: new AbortController().signal, state: null, runStartedAt: Date.now() })) {
      rows += page.records.length;
      if (rows % 100_000 < page.records.length) peak = Math.max(peak, process.memoryUsage().rss);
    }
  } finally {
    await conn.close();
  }
  return { seconds: (performance.now() - started) / 1000, rows, peakRssMb: Math.round(peak / 2 ** 20) };
}

function startRole(role: string, configFile: string): ChildProcess {
  return spawn(process.execPath, ["--disable-warning=TimeoutNegativeWarning", "bin/qobra-sync.js", "-c", configFile, "run", "--roles", role], {
    stdio: ["ignore", "ignore", "inherit"],
    env: { ...process.env, QOBRA_SYNC_LOG_LEVEL: "error" },
  });
}
/** Peak RSS (VmHWM) of a role: the launcher re-executes itself with a bounded heap, so follow it to its child. */
function peakRssMb(pid: number): number {
  const children = readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8").trim().split(/\s+/).filter(Boolean).map(Number);
  const target = children[0] ?? pid;
  return Math.round(Number(/VmHWM:\s+(\d+)/.exec(readFileSync(`/proc/${target}/status`, "utf8"))?.[1] ?? 0) / 1024);
}

async function endToEnd(): Promise<{ seconds: number; rss: Record<string, number>; sinkRows: number }> {
  const prefix = `bench${Date.now().toString(36)}`;
  const file = `.stack/bench-${prefix}.yaml`;
  mkdirSync(".stack", { recursive: true });
  writeFileSync(file, yaml(prefix));
  const config = parseConfig(yaml(prefix), "bench", {});
  const rt = await openRuntime(config, "bench");
  const roles = Object.fromEntries(["producer", "mapper", "sink"].map((r) => [r, startRole(r, file)]));
  try {
    await new Promise((r) => setTimeout(r, 4000)); // let the groups form
    const started = performance.now();
    const run = await syncAndWait(rt, "bench", { full: true, timeoutMs: 3600_000 });
    const seconds = (performance.now() - started) / 1000;
    if (run.type !== "RUN_COMPLETED") throw new Error(`the run failed: ${run.error}`);
    const rss = Object.fromEntries(Object.entries(roles).map(([r, p]) => [r, peakRssMb(p.pid!)]));
    const sinkRows = await withDb(DB, async (c) => Number((await c.query(`SELECT count(*) AS n FROM "sink_${prefix}"."bench__deals"`)).rows[0].n));
    await withDb(DB, (c) => c.query(`DROP SCHEMA "sink_${prefix}" CASCADE`));
    const admin = await rt.port.admin();
    await admin.deleteTopics({ topics: (await admin.listTopics()).filter((t) => t.startsWith(`${prefix}.`)) }).catch(() => {});
    return { seconds, rss, sinkRows };
  } finally {
    for (const p of Object.values(roles)) p.kill("SIGTERM");
    await rt.close();
  }
}

await stackUp({ print: log });
await seed();
const select = `SELECT id::text, title::text, updated_at::text, amount::text, currency::text, closed_on::text, owner_email::text, stage::text, won::text, probability::text FROM public.${TABLE}`;
const copies: number[] = [],
  reads: number[] = [];
let readPeak = 0;
for (let i = 0; i < RUNS; i++) {
  const c = await copyOut(select);
  copies.push(ROWS / c.seconds);
  const r = await connectorRead();
  if (r.rows !== ROWS) throw new Error(`connector read ${r.rows} rows, expected ${ROWS}`);
  reads.push(ROWS / r.seconds);
  readPeak = Math.max(readPeak, r.peakRssMb);
  log(`run ${i + 1}: COPY ${Math.round(ROWS / c.seconds)} rows/s, connector ${Math.round(ROWS / r.seconds)} rows/s`);
}
const e2e = process.env.BENCH_E2E === "0" ? null : await endToEnd();
const result = {
  rows: ROWS,
  runs: RUNS,
  copyOutRowsPerSec: Math.round(median(copies)),
  connectorRowsPerSec: Math.round(median(reads)),
  connectorVsCopy: Number((median(reads) / median(copies)).toFixed(3)),
  connectorReadPeakRssMb: readPeak,
  endToEnd: e2e,
};
mkdirSync("bench/results", { recursive: true });
writeFileSync("bench/results/pg-source.json", JSON.stringify(result, null, 2));
console.log(
  `PostgreSQL source read: ${result.connectorRowsPerSec} rows/s vs COPY TO STDOUT ${result.copyOutRowsPerSec} rows/s = ratio ${result.connectorVsCopy} (median of ${RUNS}, ${ROWS} rows)`,
);
console.log(`connector read peak RSS (whole bench process): ${readPeak} MB`);
if (e2e)
  console.log(
    `end to end full sync of ${ROWS} rows: ${e2e.seconds.toFixed(1)} s (${Math.round(ROWS / e2e.seconds)} rows/s), sink rows ${e2e.sinkRows}; peak RSS producer ${e2e.rss.producer} MB, mapper ${e2e.rss.mapper} MB, sink ${e2e.rss.sink} MB`,
  );
process.exit(0);
