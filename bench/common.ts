/**
 * Shared parts of the benchmarks (bench/*.ts, run by `npm run bench` = scripts/bench.sh): medians,
 * the benchmark database and the configuration of its deals table (bench/pg-source.ts seeds it), synthetic raw
 * and mapped records through the real mapping code, role processes, and result files.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdirSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import type { Message } from "kafkajs";
import { parseConfig, type Config, type TableConfig } from "../app/config.ts";
import { mapRecord } from "../consumers/mapping/map-record.ts";
import { tableLayout, type TableLayout } from "../consumers/mapping/mapped-schema.ts";
import type { KafkaPort } from "../lib/kafka.ts";
import type { RawRecord } from "../schemas/index.ts";
import { stackDefaults, stackUp } from "../stack/stack.ts";
import { ensureDatabase, withDb } from "../support/env.ts";

export const ROOT = fileURLToPath(new URL("..", import.meta.url));
export const DB = "qobra_bench";
export const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
export const log = (s: string): void => {
  process.stderr.write(`${s}\n`);
};
export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
export const round = (x: number, digits = 0): number => Number(x.toFixed(digits));

export function dbUrl(database: string): string {
  const u = new URL(stackDefaults.postgresUrl);
  u.pathname = `/${database}`;
  return u.toString();
}

/** The benchmark table's fields: the same as bench/pg-source.ts. */
const FIELDS_YAML =
  "{ amount: { type: amount, currencyColumn: currency }, closed_on: date, owner_email: user, stage: picklist, won: bool, probability: percentage }";
const SOURCE_TYPES: Record<string, string> = {
  amount: "pg:numeric",
  currency: "pg:bpchar",
  closed_on: "pg:date",
  owner_email: "pg:text",
  stage: "pg:text",
  won: "pg:bool",
  probability: "pg:float8",
};

/**
 * The benchmarks' configuration: the deals table of `sourceTable` (default the 1,000,000-row table of
 * bench/pg-source.ts) as connector `bench`, sunk into `sinkSchema` (default sink_<prefix>) of the
 * benchmark database. `usersTable` names the users the mapper resolves (default bench_users, see
 * prepareBenchDb); null leaves the users query out (user values keep a null user id).
 */
export function benchYaml(prefix: string, opts: { partitions?: number; sourceTable?: string; sinkSchema?: string; usersTable?: string | null } = {}): string {
  const usersTable = opts.usersTable === undefined ? "bench_users" : opts.usersTable;
  return `
kafka: { brokers: ${JSON.stringify(stackDefaults.kafkaBrokers)}${opts.partitions ? `, partitions: ${opts.partitions}` : ""} }
schemaRegistry: { url: "${stackDefaults.registryUrl}" }
topicPrefix: ${prefix}
sink:
  databaseUrl: "${dbUrl(DB)}"
  schema: ${opts.sinkSchema ?? `sink_${prefix}`}
  defaultCurrency: EUR
${usersTable === null ? "" : `  users: { query: "SELECT id, email FROM public.${usersTable}" }\n`}connectors:
  - id: bench
    type: postgres
    connection: { url: "${dbUrl(DB)}", allowSuperuser: true }
    massDeleteThreshold: 1
    tables:
      - name: deals
        source: public.${opts.sourceTable ?? "bench_deals_1000000"}
        idColumn: id
        nameColumn: title
        updatedAtColumn: updated_at
        fields: ${FIELDS_YAML}
`;
}

/** Starts the stack when it is not up, and prepares the benchmark database with its 40 users (public.bench_users). */
export async function prepareBenchDb(): Promise<void> {
  await stackUp({ print: log });
  await ensureDatabase(DB);
  await withDb(DB, (c) =>
    c.query(`CREATE TABLE IF NOT EXISTS public.bench_users (id text, email text);
  INSERT INTO public.bench_users SELECT 'u' || g, 'rep' || g || '@example.com' FROM generate_series(0, 39) g WHERE NOT EXISTS (SELECT 1 FROM public.bench_users)`),
  );
}

/** Seeds public.bench_deals_<rows> of the benchmark database once (the deals table bench/pg-source.ts and bench/tenants.ts sync). */
export async function seedDeals(rows: number): Promise<string> {
  const table = `bench_deals_${rows}`;
  await ensureDatabase(DB);
  await withDb(DB, async (c) => {
    const exists = await c.query("SELECT to_regclass($1) AS r", [`public.${table}`]);
    if (exists.rows[0].r) return;
    log(`seeding ${rows} rows into ${DB}.public.${table}`);
    await c.query(`CREATE TABLE public.${table} (id bigint PRIMARY KEY, title text, amount numeric(18,4), currency char(3), closed_on date,
      owner_email text, stage text, won boolean, probability double precision, updated_at timestamptz)`);
    await c.query(`INSERT INTO public.${table} SELECT g, 'Deal ' || g, round((g * 12.3457)::numeric, 4), (ARRAY['EUR','USD','GBP'])[1 + g % 3],
      DATE '2026-01-01' + (g % 365), 'rep' || (g % 50) || '@example.com', (ARRAY['new','won','lost'])[1 + g % 3], g % 3 = 1, (g % 100) / 100.0,
      TIMESTAMPTZ '2026-01-01 00:00:00+00' + g * interval '1 second' FROM generate_series(1, ${rows}) g`);
    await c.query(`VACUUM ANALYZE public.${table}`);
  });
  return table;
}

export function writeConfig(prefix: string, yaml: string): { file: string; config: Config } {
  mkdirSync(join(ROOT, ".stack"), { recursive: true });
  const file = join(ROOT, ".stack", `bench-${prefix}.yaml`);
  writeFileSync(file, yaml);
  return { file, config: parseConfig(yaml, file, {}) };
}

/** The raw envelope of benchmark row g, as the PostgreSQL connector publishes it. */
export function rawRecord(g: number, runId: string): RawRecord {
  return {
    connector: "bench",
    table: "deals",
    externalId: String(g),
    op: "UPSERT",
    runId,
    readAt: Date.now(),
    sourceUpdatedAt: new Date(Date.UTC(2026, 0, 1) + g * 1000).toISOString().replace("T", " ").replace(".000Z", "+00"),
    name: `Deal ${g}`,
    fields: {
      amount: (Math.round(g * 123457) / 10000).toFixed(4),
      currency: ["EUR", "USD", "GBP"][g % 3]!,
      closed_on: new Date(Date.UTC(2026, 0, 1 + (g % 365))).toISOString().slice(0, 10),
      owner_email: `rep${g % 50}@example.com`,
      stage: ["new", "won", "lost"][g % 3]!,
      won: g % 3 === 1,
      probability: String((g % 100) / 100),
    },
    sourceTypes: SOURCE_TYPES,
  };
}

function benchTable(config: Config): TableConfig {
  return config.connectors[0]!.tables[0]!;
}

export function benchLayout(config: Config): TableLayout {
  return tableLayout("bench", "deals", benchTable(config).fields, SOURCE_TYPES);
}

/** Mapped values of rows [from, to) through the real mapper's pure core; `_version` = g + versionBase. */
export function mappedValues(config: Config, from: number, to: number, runId: string, versionBase = 0): Record<string, unknown>[] {
  const layout = benchLayout(config);
  const out: Record<string, unknown>[] = [];
  for (let g = from; g < to; g++) {
    const r = mapRecord(rawRecord(g, runId), { fields: benchTable(config).fields, layout, defaultCurrency: "EUR", version: g + versionBase });
    if (!r.ok) throw new Error(`bench row ${g} did not map: ${JSON.stringify(r.issues)}`);
    out.push(r.value);
  }
  return out;
}

/** Sends messages in chunks with acks=all (an idempotent producer). */
export async function produceAll(port: KafkaPort, topic: string, messages: Message[], chunk = 5000): Promise<void> {
  const producer = await port.producer({ idempotent: true, maxInFlightRequests: 1 });
  try {
    for (let i = 0; i < messages.length; i += chunk) await producer.send({ topic, acks: -1, messages: messages.slice(i, i + chunk) });
  } finally {
    await producer.disconnect();
  }
}

export async function createTopic(port: KafkaPort, topic: string, partitions: number): Promise<void> {
  const admin = await port.admin();
  await admin.createTopics({ topics: [{ topic, numPartitions: partitions, replicationFactor: 1 }], waitForLeaders: true });
}

export async function deleteTopicsWithPrefix(port: KafkaPort, prefix: string): Promise<void> {
  const admin = await port.admin();
  const topics = (await admin.listTopics()).filter((t) => t.startsWith(`${prefix}.`) || t.startsWith(`${prefix}-`));
  if (topics.length > 0) await admin.deleteTopics({ topics }).catch(() => undefined);
}

/**
 * Starts `qobra-sync run --roles <role>` as its own process (the launcher re-executes itself with the
 * bounded heap). With BENCH_CPU_PROF=<dir>, the role runs under `node --cpu-prof` and writes its
 * profile into <dir>/<role> when it stops (bench/cpu-profile.ts prints its top frames).
 */
export function startRole(role: string, configFile: string, env: Record<string, string> = {}, logFile?: string): ChildProcess {
  const prof = process.env.BENCH_CPU_PROF ? ["--cpu-prof", `--cpu-prof-dir=${join(process.env.BENCH_CPU_PROF, role)}`] : [];
  return spawn(process.execPath, [...prof, "--disable-warning=TimeoutNegativeWarning", "bin/qobra-sync.js", "-c", configFile, "run", "--roles", role], {
    cwd: ROOT,
    stdio: ["ignore", logFile ? "pipe" : "ignore", "inherit"],
    env: { ...process.env, QOBRA_SYNC_LOG_LEVEL: "error", ...env },
  });
}

/** Stops a child (SIGTERM, forwarded by the launcher to the worker) and waits for it. */
export async function stopChild(p: ChildProcess, graceMs = 20_000): Promise<void> {
  if (p.exitCode !== null || p.signalCode !== null) return;
  const exited = new Promise<void>((r) => p.once("exit", () => r()));
  p.kill("SIGTERM");
  const t = setTimeout(() => p.kill("SIGKILL"), graceMs);
  await exited;
  clearTimeout(t);
}

/** The worker a launcher re-executed (bin/qobra-sync.js runs the roles in a child with the bounded heap). */
export function workerPid(launcherPid: number): number {
  try {
    const children = readFileSync(`/proc/${launcherPid}/task/${launcherPid}/children`, "utf8").trim().split(/\s+/).filter(Boolean).map(Number);
    return children[0] ?? launcherPid;
  } catch {
    return launcherPid;
  }
}

/** Peak RSS (VmHWM) of the worker a launcher re-executed, in MB. */
export function peakRssMb(launcherPid: number): number {
  try {
    return Math.round(Number(/VmHWM:\s+(\d+)/.exec(readFileSync(`/proc/${workerPid(launcherPid)}/status`, "utf8"))?.[1] ?? 0) / 1024);
  } catch {
    return 0;
  }
}

/**
 * CPU seconds (user + system) a process used so far; with `children`, plus those of its children
 * that ended and were waited for (a PostgreSQL server's backends, once their connection closed).
 */
export function cpuSeconds(pid: number, children = false): number {
  try {
    // Fields after the command name (which may hold spaces): state is field 3; utime 14, stime 15, cutime 16, cstime 17.
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    const ticks = Number(f[11]) + Number(f[12]) + (children ? Number(f[13]) + Number(f[14]) : 0);
    return ticks / 100; // USER_HZ: 100 on Linux
  } catch {
    return 0;
  }
}

/** CPU seconds of a server and its children, live or ended: a PostgreSQL server with its backends. */
export function treeCpuSeconds(rootPid: number): number {
  let total = cpuSeconds(rootPid, true);
  for (const pid of readdirSync("/proc").filter((d) => /^\d+$/.test(d))) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
      if (Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]) === rootPid) total += cpuSeconds(Number(pid));
    } catch {
      // gone meanwhile
    }
  }
  return total;
}

/** Busy CPU seconds of the whole machine so far (all cores; /proc/stat), to tell how loaded it was during a measure. */
export function machineBusySeconds(): number {
  const cpu = readFileSync("/proc/stat", "utf8").split("\n")[0]!.trim().split(/\s+/).slice(1).map(Number);
  // user nice system idle iowait irq softirq steal
  return (cpu[0]! + cpu[1]! + cpu[2]! + cpu[5]! + cpu[6]! + cpu[7]!) / 100;
}

/**
 * Waits until `progress()` reaches `total`, polling; returns the rate between the first observed
 * progress and the end, which leaves start-up (JVM, group join) out for every contender alike.
 */
export async function timeProgress(
  progress: () => Promise<number>,
  total: number,
  opts: { timeoutMs?: number; pollMs?: number; what: string },
): Promise<{ seconds: number; rate: number; firstAt: number; doneAt: number }> {
  const deadline = Date.now() + (opts.timeoutMs ?? 1_800_000);
  let first: { at: number; n: number } | undefined;
  let last = -1,
    lastChange = Date.now();
  for (;;) {
    const n = await progress();
    const now = performance.now();
    if (n > 0 && !first) first = { at: now, n };
    if (n !== last) {
      last = n;
      lastChange = Date.now();
    }
    if (n >= total) {
      const seconds = (now - first!.at) / 1000;
      const rate = seconds > 0 ? (total - first!.n) / seconds : Infinity;
      return { seconds, rate, firstAt: first!.at, doneAt: now };
    }
    if (Date.now() > deadline) throw new Error(`${opts.what}: ${n} of ${total} after the time limit`);
    if (Date.now() - lastChange > 180_000) throw new Error(`${opts.what}: stuck at ${n} of ${total} for 3 minutes`);
    await sleep(opts.pollMs ?? 100);
  }
}

export function writeResult(name: string, result: unknown): void {
  mkdirSync(join(ROOT, "bench", "results"), { recursive: true });
  writeFileSync(join(ROOT, "bench", "results", `${name}.json`), `${JSON.stringify({ at: new Date().toISOString(), ...(result as object) }, null, 2)}\n`);
}
