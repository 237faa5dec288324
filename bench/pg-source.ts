/**
 * PostgreSQL source benchmark (`npm run bench`):
 *  1. read rate of the connector vs `COPY (same SELECT) TO STDOUT` of the same table, same run;
 *  2. a full sync of the table end to end (producer, mapper and sink as separate processes),
 *     in seconds, with the peak RSS of each role (VmHWM).
 * Medians of BENCH_RUNS runs (default 3) of each. BENCH_ROWS rows (default 1,000,000); BENCH_READ=0
 * or BENCH_E2E=0 leaves out part 1 or 2; BENCH_CPU_PROF=<dir> profiles the roles (bench/common.ts).
 * Prints its figures as the last lines and writes bench/results/pg-source.json.
 */
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { Writable } from "node:stream";
import { pipeline as streamPipeline } from "node:stream/promises";
import pg from "pg";
import { to as copyTo } from "pg-copy-streams";
import { createConnector } from "../producers/connectors/registry.ts";
import { openRuntime } from "../lib/runtime.ts";
import { parseConfig } from "../app/config.ts";
import { stackPids, stackUp } from "../stack/stack.ts";
import { syncAndWait } from "../support/pipeline.ts";
import { dbUrl, withDb } from "../support/env.ts";
import { DB, benchYaml, seedDeals, cpuSeconds, log, machineBusySeconds, median, peakRssMb, startRole, stopChild, treeCpuSeconds, workerPid } from "./common.ts";

const ROWS = Number(process.env.BENCH_ROWS ?? 1_000_000);
const RUNS = Number(process.env.BENCH_RUNS ?? 3);
const TABLE = `bench_deals_${ROWS}`;
/** The benchmark configuration for this table, without a users query (user values keep a null user id). */
const yaml = (prefix: string) => benchYaml(prefix, { sourceTable: TABLE, usersTable: null });

const seed = () => seedDeals(ROWS);

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

/** The PostgreSQL server's pid (the parent of our backend). */
async function postmasterPid(): Promise<number> {
  return withDb(DB, async (c) => {
    const backend = Number((await c.query("SELECT pg_backend_pid() AS p")).rows[0].p);
    const stat = readFileSync(`/proc/${backend}/stat`, "utf8"); // while the backend lives
    return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
  });
}

interface EndToEnd {
  seconds: number;
  rss: Record<string, number>;
  /** CPU seconds used during the run by each role, the broker(s), PostgreSQL, and the whole machine (all cores). */
  cpu: Record<string, number>;
  sinkRows: number;
}

async function endToEnd(): Promise<EndToEnd> {
  const prefix = `bench${Date.now().toString(36)}`;
  const file = `.stack/bench-${prefix}.yaml`;
  mkdirSync(".stack", { recursive: true });
  writeFileSync(file, yaml(prefix));
  const config = parseConfig(yaml(prefix), "bench", {});
  const rt = await openRuntime(config, "bench");
  const roles = Object.fromEntries(["producer", "mapper", "sink"].map((r) => [r, startRole(r, file)]));
  try {
    await new Promise((r) => setTimeout(r, 4000)); // let the groups form
    const pgPid = await postmasterPid();
    const brokers = stackPids()
      .brokers.map((b) => b.pid)
      .filter((p): p is number => p !== undefined);
    const cpuNow = (): Record<string, number> => ({
      ...Object.fromEntries(Object.entries(roles).map(([r, p]) => [r, cpuSeconds(workerPid(p.pid!))])),
      broker: brokers.reduce((a, p) => a + cpuSeconds(p), 0),
      postgres: treeCpuSeconds(pgPid),
      machine: machineBusySeconds(),
    });
    const cpu0 = cpuNow();
    const started = performance.now();
    const run = await syncAndWait(rt, "bench", { full: true, timeoutMs: 3600_000 });
    const seconds = (performance.now() - started) / 1000;
    const cpu1 = cpuNow();
    const cpu = Object.fromEntries(Object.entries(cpu1).map(([k, v]) => [k, Number((v - cpu0[k]!).toFixed(1))]));
    if (run.type !== "RUN_COMPLETED") throw new Error(`the run failed: ${run.error}`);
    const rss = Object.fromEntries(Object.entries(roles).map(([r, p]) => [r, peakRssMb(p.pid!)]));
    log(`end to end: ${seconds.toFixed(1)} s; peak RSS ${JSON.stringify(rss)} MB; CPU seconds ${JSON.stringify(cpu)}`);
    const sinkRows = await withDb(DB, async (c) => Number((await c.query(`SELECT count(*) AS n FROM "sink_${prefix}"."bench__deals"`)).rows[0].n));
    await withDb(DB, (c) => c.query(`DROP SCHEMA "sink_${prefix}" CASCADE`));
    const admin = await rt.port.admin();
    await admin.deleteTopics({ topics: (await admin.listTopics()).filter((t) => t.startsWith(`${prefix}.`)) }).catch(() => {});
    return { seconds, rss, cpu, sinkRows };
  } finally {
    // Waits for the roles to stop (a role under BENCH_CPU_PROF writes its profile as it exits).
    await Promise.all(Object.values(roles).map((p) => stopChild(p)));
    await rt.close();
  }
}

await stackUp({ print: log });
await seed();
const select = `SELECT id::text, title::text, updated_at::text, amount::text, currency::text, closed_on::text, owner_email::text, stage::text, won::text, probability::text FROM public.${TABLE}`;
const copies: number[] = [],
  reads: number[] = [];
let readPeak = 0;
for (let i = 0; i < (process.env.BENCH_READ === "0" ? 0 : RUNS); i++) {
  const c = await copyOut(select);
  copies.push(ROWS / c.seconds);
  const r = await connectorRead();
  if (r.rows !== ROWS) throw new Error(`connector read ${r.rows} rows, expected ${ROWS}`);
  reads.push(ROWS / r.seconds);
  readPeak = Math.max(readPeak, r.peakRssMb);
  log(`run ${i + 1}: COPY ${Math.round(ROWS / c.seconds)} rows/s, connector ${Math.round(ROWS / r.seconds)} rows/s`);
}
const e2eRuns: Awaited<ReturnType<typeof endToEnd>>[] = [];
for (let i = 0; i < (process.env.BENCH_E2E === "0" ? 0 : RUNS); i++) {
  const r = await endToEnd();
  if (r.sinkRows !== ROWS) throw new Error(`end to end: the sink holds ${r.sinkRows} rows, expected ${ROWS}`);
  e2eRuns.push(r);
}
const e2e =
  e2eRuns.length === 0
    ? null
    : {
        seconds: median(e2eRuns.map((r) => r.seconds)),
        perRun: e2eRuns.map((r) => Number(r.seconds.toFixed(1))),
        sinkRows: ROWS,
        rss: Object.fromEntries(["producer", "mapper", "sink"].map((role) => [role, Math.max(...e2eRuns.map((r) => r.rss[role] ?? 0))])),
        cpuPerRun: e2eRuns.map((r) => r.cpu),
      };
const result = {
  rows: ROWS,
  runs: RUNS,
  copyOutRowsPerSec: copies.length ? Math.round(median(copies)) : null,
  connectorRowsPerSec: reads.length ? Math.round(median(reads)) : null,
  connectorVsCopy: reads.length ? Number((median(reads) / median(copies)).toFixed(3)) : null,
  connectorReadPeakRssMb: readPeak,
  endToEnd: e2e,
};
mkdirSync("bench/results", { recursive: true });
writeFileSync("bench/results/pg-source.json", JSON.stringify(result, null, 2));
if (reads.length) {
  console.log(
    `PostgreSQL source read: ${result.connectorRowsPerSec} rows/s vs COPY TO STDOUT ${result.copyOutRowsPerSec} rows/s = ratio ${result.connectorVsCopy} (median of ${RUNS}, ${ROWS} rows)`,
  );
  console.log(`connector read peak RSS (whole bench process): ${readPeak} MB`);
}
if (e2e)
  console.log(
    `end to end full sync of ${ROWS} rows: ${e2e.seconds.toFixed(1)} s (${Math.round(ROWS / e2e.seconds)} rows/s; median of ${e2eRuns.length}: ${e2e.perRun.join(" / ")} s), sink rows ${e2e.sinkRows}; peak RSS producer ${e2e.rss.producer} MB, mapper ${e2e.rss.mapper} MB, sink ${e2e.rss.sink} MB`,
  );
process.exit(0);
