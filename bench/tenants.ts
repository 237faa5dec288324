/**
 * `npm run bench:tenants`: many tenants on one machine. 500 connectors across 100 tenants (BENCH_TENANTS,
 * BENCH_CONNECTORS): PostgreSQL source tables in the tenants' schemas of one local PostgreSQL, and
 * BENCH_TENANTS_SF Salesforce orgs and BENCH_TENANTS_HS HubSpot portals (50 each by default) served by one
 * simulator process per API (many orgs in one process, told apart by their credentials), all
 * created through the connectors API of a running pipeline (four role processes: producer, mapper,
 * sink, scheduler with the HTTP server), then measured:
 *  - each role's start-up time and memory (RSS), and the broker's topics, partitions and memory;
 *  - how long the API takes to create the connectors, and until their first runs can start;
 *  - a spread schedule (the first full syncs): every connector's request at its default schedule's
 *    fire time plus its spread offset (scheduler/spread.ts, the default scheduler.spreadMinutes), the
 *    offsets compressed BENCH_TENANTS_SPREAD_SCALE times (6 by default: the 30-minute window played in
 *    5 minutes, six times the real rate); how late each run starts after its own (scaled) fire time
 *    (p50 / p99 / max, goal p99 < 5 s);
 *  - a schedule burst (re-syncs): the request every connector's schedule publishes at a fire time, all at the
 *    same instant (the worst case: tenants pinning the same exact time with spreadMinutes 0), through the
 *    scheduler's own request path; how late each run starts (p50 / p99 / max, goal p99 < 5 s), when it
 *    completes, and the consumer lag over time until the sink has everything;
 *  - interference: the time from a small run's request until its changed rows are in the sink, idle,
 *    then while another tenant's 1,000,000-row table (BENCH_TENANTS_BIG_ROWS) is syncing, for a
 *    connector whose requests share the big one's sync.requests partition and one whose do not
 *    (goal: delayed by under 10 s).
 * BENCH_TENANTS_REQUEST_PARTITIONS and BENCH_TENANTS_CONCURRENT_RUNS override kafka.requestPartitions and
 * producer.concurrentRuns (the defaults otherwise), to compare layouts.
 * Prints the figures, writes bench/results/tenants.json. docs/scaling.md reads them.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { createWriteStream, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { createInterface } from "node:readline";
import kafkajs from "kafkajs";
import { newRequest, publishRequest } from "../lib/protocol.ts";
import { openRuntime } from "../lib/runtime.ts";
import { followTopics } from "../lib/follow-topic.ts";
import { pipelineGroups, snapshotLag } from "../ops/lag.ts";
import { parseConfig, parseConnectorEntry, type Config } from "../app/config.ts";
import { stackDefaults } from "../stack/stack.ts";
import { freePort } from "../support/ops.ts";
import type { SyncEvent } from "../schemas/index.ts";
import {
  DB,
  ROOT,
  cpuSeconds,
  dbUrl,
  deleteTopicsWithPrefix,
  log,
  machineBusySeconds,
  peakRssMb,
  prepareBenchDb,
  round,
  seedDeals,
  sleep,
  stopChild,
  workerPid,
  writeResult,
} from "./common.ts";
import { withDb } from "../support/env.ts";
import { cronRules } from "../scheduler/scheduler.ts";
import { DEFAULT_SPREAD_MINUTES, spreadOffsetSeconds } from "../scheduler/spread.ts";

const TENANTS = Number(process.env.BENCH_TENANTS ?? 100);
const CONNECTORS = Number(process.env.BENCH_CONNECTORS ?? 500);
const ROWS = Number(process.env.BENCH_TENANTS_ROWS ?? 200);
const BIG_ROWS = Number(process.env.BENCH_TENANTS_BIG_ROWS ?? 1_000_000);
const PARTITIONS = Number(process.env.BENCH_TENANTS_PARTITIONS ?? 1);
/** Of the connectors, this many are Salesforce orgs and HubSpot portals (one simulator process each, many orgs in it); the rest PostgreSQL. */
const SF = Number(process.env.BENCH_TENANTS_SF ?? 50);
const HS = Number(process.env.BENCH_TENANTS_HS ?? 50);
const API_RECORDS = Number(process.env.BENCH_TENANTS_API_RECORDS ?? 200);
const LAG_SAMPLE_MS = Number(process.env.BENCH_TENANTS_LAG_SAMPLE_MS ?? 5000);
const PUT_CONCURRENCY = Number(process.env.BENCH_TENANTS_PUT_CONCURRENCY ?? 16);
const REQUEST_PARTITIONS = Number(process.env.BENCH_TENANTS_REQUEST_PARTITIONS ?? 0);
const CONCURRENT_RUNS = Number(process.env.BENCH_TENANTS_CONCURRENT_RUNS ?? 0);
const BURST_TIMEOUT_MS = Number(process.env.BENCH_TENANTS_TIMEOUT_S ?? 900) * 1000;
/** The spread phase plays the spread window this many times faster than real time (6: 30 minutes in 5, six times the real rate of requests). */
const SPREAD_SCALE = Number(process.env.BENCH_TENANTS_SPREAD_SCALE ?? 6);

const prefix = `bt${Date.now().toString(36)}`;
const token = randomBytes(32).toString("base64url");
const tokenKey = randomBytes(32).toString("base64");
const tenantOf = (i: number) => `t${String(i % TENANTS).padStart(3, "0")}`;
const connectorOf = (i: number) => `c${String(Math.floor(i / TENANTS)).padStart(2, "0")}`;
const srcSchema = (tenant: string) => `${prefix}_src_${tenant}`;
const pct = (xs: number[], p: number) =>
  xs.length === 0 ? Number.NaN : [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.ceil((p / 100) * xs.length) - 1)]!;
const secs = (ms: number) => round(ms / 1000, 2);

interface SimCredentials {
  clientId: string;
  clientSecret: string;
  refreshToken: string;
}

/** Starts `qobra-sync simulate <api> --orgs|--portals N` and reads its credentials file. */
async function startSimulator(api: "salesforce" | "hubspot", n: number): Promise<{ child: ChildProcess; url: string; tenants: SimCredentials[] }> {
  const file = join(ROOT, ".stack", `bench-${prefix}-${api}.json`);
  // No record in the recycle bin (the generator's default puts 2 % there): every generated record is
  // live, so the sink must end with exactly the rows the sources hold (checked after the burst).
  const data = api === "salesforce" ? `generate:opportunities=${API_RECORDS},deletedRatio=0` : `generate:deals=${API_RECORDS}`;
  const child = spawn(
    process.execPath,
    ["bin/qobra-sync.js", "simulate", api, api === "salesforce" ? "--orgs" : "--portals", String(n), "--data", data, "--credentials", file],
    {
      cwd: ROOT,
      stdio: ["ignore", "ignore", "inherit"],
    },
  );
  for (let i = 0; i < 240; i++) {
    try {
      const j = JSON.parse(readFileSync(file, "utf8")) as { url: string; orgs?: SimCredentials[]; portals?: SimCredentials[] };
      return { child, url: j.url, tenants: (j.orgs ?? j.portals)! };
    } catch {
      await sleep(250);
    }
  }
  throw new Error(`the ${api} simulator wrote no credentials in 60 s`);
}

function sfEntry(url: string, c: SimCredentials) {
  return {
    type: "salesforce",
    loginUrl: url,
    clientId: c.clientId,
    clientSecret: c.clientSecret,
    refreshToken: c.refreshToken,
    tables: [{ name: "opportunities", object: "Opportunity", fields: { Amount: "amount", CloseDate: "date", StageName: "picklist" } }],
  };
}

function hsEntry(url: string, c: SimCredentials) {
  return {
    type: "hubspot",
    baseUrl: url,
    clientId: c.clientId,
    clientSecret: c.clientSecret,
    refreshToken: c.refreshToken,
    tables: [{ name: "deals", object: "deals", fields: { dealname: "string", amount: "amount", closedate: "date" } }],
  };
}

function entry(table: string) {
  return {
    type: "postgres",
    connection: { url: dbUrl(DB), allowSuperuser: true },
    massDeleteThreshold: 1,
    tables: [
      {
        name: "deals",
        source: table,
        idColumn: "id",
        nameColumn: "title",
        fields: { amount: { type: "amount", currencyColumn: "currency" }, closed_on: "date" },
      },
    ],
  };
}

function yaml(httpPort: number | null): string {
  return `
kafka: { brokers: ${JSON.stringify(stackDefaults.kafkaBrokers)}, partitions: ${PARTITIONS}${REQUEST_PARTITIONS ? `, requestPartitions: ${REQUEST_PARTITIONS}` : ""} }
${CONCURRENT_RUNS ? `producer: { concurrentRuns: ${CONCURRENT_RUNS} }` : ""}
schemaRegistry: { url: "${stackDefaults.registryUrl}" }
topicPrefix: ${prefix}
sink: { databaseUrl: "${dbUrl(DB)}", schema: ${prefix}_sink, tenantSchema: "${prefix}_<tenant>", defaultCurrency: EUR }
connectors: []
tenantNetwork: { allow: ["127.0.0.1", "::1", "localhost"] }
${httpPort === null ? "" : `http: { port: ${httpPort}, tokens: [ { token: "${token}", tenants: ["*"] } ] }`}
`;
}

interface Role {
  name: string;
  child: ChildProcess;
  startupMs: number;
}

/** Starts `run --roles <name>` and waits for its "qobra-sync running" log line. */
async function startRole(name: string, configFile: string): Promise<Role> {
  const started = performance.now();
  const child = spawn(process.execPath, ["--disable-warning=TimeoutNegativeWarning", "bin/qobra-sync.js", "-c", configFile, "run", "--roles", name], {
    cwd: ROOT,
    stdio: ["ignore", "pipe", "inherit"],
    env: { ...process.env, QOBRA_SYNC_LOG_LEVEL: "info", QOBRA_SYNC_TOKEN_KEY: tokenKey },
  });
  // Each role's log is kept (JSON lines, info level) for a look after the run.
  const logFile = createWriteStream(join(ROOT, ".stack", "logs", `bench-${prefix}-${name}.log`));
  child.stdout!.pipe(logFile);
  const lines = createInterface({ input: child.stdout! });
  await new Promise<void>((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`${name} did not start within 120 s`)), 120_000);
    child.once("exit", (code) => reject(new Error(`${name} exited (${code}) while starting`)));
    lines.on("line", (l) => {
      if (l.includes('"qobra-sync running"')) {
        clearTimeout(t);
        resolve();
      }
    });
  });
  return { name, child, startupMs: performance.now() - started };
}

const rssMb = (pid: number): number => {
  try {
    return Math.round(Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1] ?? 0) / 1024);
  } catch {
    return 0;
  }
};
const brokerPid = (): number => Number(readFileSync(join(ROOT, ".stack", "kafka.pid"), "utf8").trim());

async function api(port: number, method: string, path: string, body?: unknown): Promise<{ status: number; json: unknown }> {
  const res = await fetch(`http://127.0.0.1:${port}${path}`, {
    method,
    headers: { authorization: `Bearer ${token}`, ...(body === undefined ? {} : { "content-type": "application/json" }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, json: text ? JSON.parse(text) : null };
}

async function main(): Promise<void> {
  await prepareBenchDb();
  const bigTable = await seedDeals(BIG_ROWS);
  log(`bench:tenants: ${CONNECTORS} connectors across ${TENANTS} tenants, ${ROWS} rows each, topic partitions ${PARTITIONS}, prefix ${prefix}`);
  const tenants = [...new Set(Array.from({ length: CONNECTORS }, (_, i) => tenantOf(i)))];
  await withDb(DB, async (c) => {
    for (const t of tenants) await c.query(`CREATE SCHEMA ${srcSchema(t)}`);
    const ddl: string[] = [];
    for (let i = 0; i < CONNECTORS - SF - HS; i++) {
      const table = `${srcSchema(tenantOf(i))}.deals_${connectorOf(i)}`;
      ddl.push(`CREATE TABLE ${table} (id bigint PRIMARY KEY, title text, amount numeric(18,4), currency char(3), closed_on date);
        INSERT INTO ${table} SELECT g, 'Deal ' || g, g * 10.25, 'EUR', DATE '2026-01-01' + g % 30 FROM generate_series(1, ${ROWS}) g;`);
    }
    await c.query(ddl.join("\n"));
  });

  const httpPort = await freePort();
  const plainFile = join(ROOT, ".stack", `bench-${prefix}.yaml`);
  const httpFile = join(ROOT, ".stack", `bench-${prefix}-http.yaml`);
  writeFileSync(plainFile, yaml(null));
  writeFileSync(httpFile, yaml(httpPort));
  const config = parseConfig(yaml(null), plainFile, {});
  const rt = await openRuntime(config, "bench-tenants");
  const admin = await rt.port.admin();
  const brokerBefore = rssMb(brokerPid());

  const roles: Role[] = [];
  const sims: ChildProcess[] = [];
  try {
    const sf = SF > 0 ? await startSimulator("salesforce", SF) : null;
    const hs = HS > 0 ? await startSimulator("hubspot", HS) : null;
    for (const x of [sf, hs]) if (x) sims.push(x.child);
    const PG = CONNECTORS - SF - HS;
    const entryOf = (i: number) =>
      i < PG
        ? entry(`${srcSchema(tenantOf(i))}.deals_${connectorOf(i)}`)
        : i < PG + SF
          ? sfEntry(sf!.url, sf!.tenants[i - PG]!)
          : hsEntry(hs!.url, hs!.tenants[i - PG - SF]!);
    for (const name of ["sink", "mapper", "producer", "scheduler"]) {
      roles.push(await startRole(name, name === "scheduler" ? httpFile : plainFile));
      log(`  ${name} started in ${secs(roles.at(-1)!.startupMs)} s`);
    }

    // Connectors through the API, one PUT each (the page and Qobra's integration settings do the same).
    const putMs: number[] = [];
    const created = performance.now();
    const connectors: Config["connectors"] = [];
    // PUT_CONCURRENCY requests at a time, as an integration backend creating many would: edits arriving
    // together are applied together (the roles reload once per burst, app/roles.ts).
    const put = async (i: number) => {
      const t0 = performance.now();
      const e = entryOf(i);
      const r = await api(httpPort, "PUT", `/api/tenants/${tenantOf(i)}/connectors/${connectorOf(i)}`, e);
      if (r.status !== 201 && r.status !== 200) throw new Error(`PUT connector ${i}: ${r.status} ${JSON.stringify(r.json)}`);
      putMs.push(performance.now() - t0);
      connectors[i] = parseConnectorEntry(e, { tenant: tenantOf(i), id: connectorOf(i) });
    };
    for (let i = 0; i < CONNECTORS; i += PUT_CONCURRENCY)
      await Promise.all(Array.from({ length: Math.min(PUT_CONCURRENCY, CONNECTORS - i) }, (_, k) => put(i + k)));
    const createMs = performance.now() - created;
    log(`  ${CONNECTORS} connectors created through the API in ${secs(createMs)} s (PUT p50 ${round(pct(putMs, 50))} ms, p99 ${round(pct(putMs, 99))} ms)`);
    const live: Config = { ...config, connectors };
    // The roles reload (debounced) and the topics are created: wait for the last connector's mapped topic.
    const lastTopic = rt.port.topics.mapped(connectors.at(-1)!.id, connectors.at(-1)!.tables[0]!.name);
    const topicsReady = performance.now();
    while (!(await admin.listTopics()).includes(lastTopic)) await sleep(500);
    log(`  topics of every connector exist ${secs(performance.now() - topicsReady)} s after the last PUT`);
    await sleep(5000); // the mapper and sink rejoin their groups with the new subscriptions

    // The runs' events (both phases below: the spread schedule, then the burst at one instant, through the scheduler's request path).
    const events = new Map<string, { started?: number; completed?: number; failed?: string }>();
    const follower = await followTopics(rt.port, {
      topics: [rt.port.topics.syncEvents],
      groupPrefix: `${prefix}-bench-events`,
      from: "end",
      onBatch: async (b) => {
        for (const m of b.messages) {
          if (!m.value) continue;
          const ev = await rt.codec.decode<SyncEvent>(m.value);
          const e = events.get(ev.runId);
          if (!e) continue;
          if (ev.type === "RUN_STARTED" && ev.stage === "producer") e.started ??= Number(ev.at);
          if (ev.type === "RUN_COMPLETED" && ev.stage === "producer") e.completed = Number(ev.at);
          if (ev.type === "RUN_FAILED") e.failed = ev.error ?? "failed";
        }
      },
    });
    await sleep(3000);
    const producer = await rt.port.producer({ idempotent: true, maxInFlightRequests: 1 });

    // Spread schedule: each connector's request at its default schedule's fire time plus its spread
    // offset (what the scheduler does with the default scheduler.spreadMinutes), the offsets divided by
    // SPREAD_SCALE: the window is played SPREAD_SCALE times faster, at SPREAD_SCALE times the real rate
    // of requests. Lateness is each run's start after its own (scaled) fire time. These runs do the
    // connectors' first full syncs; the burst below then measures re-syncs.
    const spreadStart = Date.now() + 2000;
    const spreadRuns = connectors
      .map((c) => {
        const offsetS = spreadOffsetSeconds(c.id, cronRules(c)[0]!.rule, DEFAULT_SPREAD_MINUTES);
        const request = newRequest(c.id, { full: true, by: "schedule" });
        events.set(request.requestId, {});
        return { request, dueAt: spreadStart + Math.round((offsetS * 1000) / SPREAD_SCALE) };
      })
      .sort((a, b) => a.dueAt - b.dueAt);
    const spreadWindowS = secs((DEFAULT_SPREAD_MINUTES * 60_000) / SPREAD_SCALE);
    log(`  spread schedule: ${CONNECTORS} requests over ${spreadWindowS} s (a ${DEFAULT_SPREAD_MINUTES}-minute window at ${SPREAD_SCALE}× the real rate)`);
    let publishLateMax = 0;
    for (const r of spreadRuns) {
      const wait = r.dueAt - Date.now();
      if (wait > 0) await sleep(wait);
      r.request.requestedAt = Date.now();
      publishLateMax = Math.max(publishLateMax, Date.now() - r.dueAt);
      await publishRequest(producer, rt.codec, rt.port.topics, r.request);
    }
    // Until every spread run ended and the sink caught up (the burst then starts from an idle pipeline).
    const spreadGroups = pipelineGroups(live);
    const spreadDeadline = spreadRuns.at(-1)!.dueAt + BURST_TIMEOUT_MS;
    let spreadCaughtUpAt: number | null = null;
    for (let i = 0; ; i++) {
      const snap = await snapshotLag(admin, spreadGroups);
      const lag = snap.partitions.reduce((n, p) => n + (p.lag ?? 0), 0);
      const ended = spreadRuns.filter((r) => {
        const e = events.get(r.request.requestId)!;
        return e.completed !== undefined || e.failed !== undefined;
      }).length;
      if (i % 2 === 0) log(`  spread: t=${secs(Date.now() - spreadStart)}s runs ended ${ended}/${CONNECTORS}, lag ${lag}`);
      if (ended === CONNECTORS && lag === 0) {
        spreadCaughtUpAt = Date.now();
        break;
      }
      if (Date.now() > spreadDeadline) break;
      await sleep(LAG_SAMPLE_MS);
    }
    const spreadLate = spreadRuns.flatMap((r) => {
      const e = events.get(r.request.requestId)!;
      return e.started === undefined ? [] : [e.started - r.dueAt];
    });
    const spreadFailed = spreadRuns.map((r) => events.get(r.request.requestId)!).filter((e) => e.failed !== undefined);
    const spread = {
      spreadMinutes: DEFAULT_SPREAD_MINUTES,
      scale: SPREAD_SCALE,
      playedInS: spreadWindowS,
      publishLateMaxMs: publishLateMax,
      startLateS: { p50: secs(pct(spreadLate, 50)), p99: secs(pct(spreadLate, 99)), max: secs(Math.max(...spreadLate)) },
      started: spreadLate.length,
      completed: spreadRuns.filter((r) => events.get(r.request.requestId)!.completed !== undefined).length,
      failed: spreadFailed.length,
      firstFailure: spreadFailed[0]?.failed ?? null,
      sinkCaughtUpS: spreadCaughtUpAt === null ? null : secs(spreadCaughtUpAt - spreadStart),
    };
    log(`  spread: start late p50 ${spread.startLateS.p50} s, p99 ${spread.startLateS.p99} s, max ${spread.startLateS.max} s`);
    events.clear(); // the burst counts its own runs only
    // CPU seconds of each role, the broker and the machine during the burst: whether it is CPU-bound.
    const cpuNow = (): Record<string, number> => ({
      ...Object.fromEntries(roles.map((r) => [r.name, cpuSeconds(workerPid(r.child.pid!))])),
      broker: cpuSeconds(brokerPid()),
      machine: machineBusySeconds(),
    });
    const cpuBefore = cpuNow();
    const fireAt = Date.now();
    const requests = connectors.map((c) => newRequest(c.id, { full: true, by: "schedule" }));
    for (const r of requests) {
      r.requestedAt = fireAt;
      events.set(r.requestId, {});
    }
    for (const r of requests) await publishRequest(producer, rt.codec, rt.port.topics, r);
    const published = Date.now() - fireAt;
    const lagSeries: Array<{ t: number; mapper: number; sink: number }> = [];
    const groupSpecs = pipelineGroups(live);
    const deadline = fireAt + BURST_TIMEOUT_MS;
    let sinkDoneAt: number | null = null;
    let cpuAtEnd: Record<string, number> | null = null;
    for (;;) {
      const snap = await snapshotLag(admin, groupSpecs);
      const lagOf = (role: string) => snap.partitions.filter((p) => p.role === role).reduce((n, p) => n + (p.lag ?? 0), 0);
      const point = { t: secs(Date.now() - fireAt), mapper: lagOf("mapper"), sink: lagOf("sink") };
      lagSeries.push(point);
      const ended = [...events.values()].filter((e) => e.completed !== undefined || e.failed !== undefined).length;
      if (lagSeries.length % 2 === 1) log(`  t=${point.t}s runs ended ${ended}/${CONNECTORS}, lag mapper ${point.mapper}, sink ${point.sink}`);
      if (ended === CONNECTORS && point.mapper === 0 && point.sink === 0) {
        sinkDoneAt = Date.now();
        cpuAtEnd = cpuNow();
        break;
      }
      if (Date.now() > deadline) break;
      await sleep(LAG_SAMPLE_MS); // each sample asks the broker for every partition's offsets: not too often
    }
    const late = [...events.values()].filter((e) => e.started !== undefined).map((e) => e.started! - fireAt);
    const done = [...events.values()].filter((e) => e.completed !== undefined).map((e) => e.completed! - fireAt);
    const failed = [...events.values()].filter((e) => e.failed !== undefined);
    // Exact counts (pg_stat's are estimates, updated late): every table of the tenants' schemas.
    const expectedRows = (CONNECTORS - SF - HS) * ROWS + (SF + HS) * API_RECORDS;
    const rows = await withDb(DB, async (c) => {
      const tables = await c.query<{ s: string; t: string }>(
        "SELECT schemaname AS s, tablename AS t FROM pg_tables WHERE schemaname LIKE $1 AND schemaname NOT LIKE $2 AND schemaname <> $3",
        [`${prefix}\\_%`, `${prefix}\\_src\\_%`, `${prefix}_sink`],
      );
      let n = 0;
      for (const { s, t } of tables.rows) n += Number((await c.query(`SELECT count(*) AS n FROM "${s}"."${t}"`)).rows[0].n);
      return n;
    });

    // Broker and roles after the burst.
    const meta = await admin.fetchTopicMetadata({ topics: (await admin.listTopics()).filter((t) => t.startsWith(`${prefix}.`)) });
    const partitionCount = meta.topics.reduce((n, t) => n + t.partitions.length, 0);
    const roleMemory = Object.fromEntries(
      roles.map((r) => [r.name, { startupS: secs(r.startupMs), rssMb: rssMb(workerPid(r.child.pid!)), peakRssMb: peakRssMb(r.child.pid!) }]),
    );

    // Interference: a small run's freshness (request → its changed rows in the sink), idle, then beside a big run.
    const reqPartitions = (await admin.fetchTopicMetadata({ topics: [rt.port.topics.syncRequests] })).topics[0]!.partitions.length;
    const partitioner = kafkajs.Partitioners.DefaultPartitioner();
    const partitionOf = (key: string) =>
      partitioner({
        topic: rt.port.topics.syncRequests,
        partitionMetadata: Array.from({ length: reqPartitions }, (_, p) => ({ partitionId: p, leader: 0, replicas: [0], isr: [0], partitionErrorCode: 0 })),
        message: { key, value: null },
      });
    const bigId = "bigtenant.big";
    const bigPartition = partitionOf(bigId);
    const pgConnectors = connectors.filter((c) => c.type === "postgres");
    const same = pgConnectors.find((c) => partitionOf(c.id) === bigPartition)!;
    const other = pgConnectors.find((c) => partitionOf(c.id) !== bigPartition && c.tenant !== same.tenant)!;
    /** Per small run: when its producer run started and completed, from the request (the stages of its delay). */
    const stages: Record<string, { startedS: number | null; producedS: number | null; inSinkS: number }> = {};
    const freshness = async (c: Config["connectors"][number], version: string): Promise<number> => {
      const table = (c.tables[0] as unknown as { source: string }).source;
      await withDb(DB, (db) => db.query(`UPDATE ${table} SET title = $1 || id`, [version]));
      const t0 = Date.now();
      const request = newRequest(c.id, { full: true, by: "bench" });
      const ev: { started?: number; completed?: number } = {};
      events.set(request.requestId, ev);
      await publishRequest(producer, rt.codec, rt.port.topics, request);
      const sinkTable = `"${prefix}_${c.tenant}"."${c.id.slice(c.tenant!.length + 1)}__deals"`;
      for (;;) {
        const n = await withDb(DB, (db) =>
          db.query(`SELECT count(*)::int AS n FROM ${sinkTable} WHERE "_name" = $1 || "_external_id"`, [version]).catch(() => ({ rows: [{ n: 0 }] })),
        );
        if (n.rows[0].n >= ROWS) {
          const at = (t: number | undefined) => (t === undefined ? null : secs(t - t0));
          stages[`${version}${c.id}`] = { startedS: at(ev.started), producedS: at(ev.completed), inSinkS: secs(Date.now() - t0) };
          return Date.now() - t0;
        }
        if (Date.now() - t0 > 600_000) return Number.NaN;
        await sleep(250);
      }
    };
    const idleSame = await freshness(same, "idle-");
    const idleOther = await freshness(other, "idle-");
    log(`  small run idle: ${secs(idleSame)} s / ${secs(idleOther)} s`);
    const r = await api(httpPort, "PUT", `/api/tenants/bigtenant/connectors/big`, entry(`public.${bigTable}`));
    if (r.status !== 201 && r.status !== 200) throw new Error(`PUT big connector: ${r.status} ${JSON.stringify(r.json)}`);
    while (!(await admin.listTopics()).includes(rt.port.topics.mapped(bigId, "deals"))) await sleep(500);
    await sleep(5000);
    const bigStarted = Date.now();
    await publishRequest(producer, rt.codec, rt.port.topics, newRequest(bigId, { full: true, by: "bench" }));
    await sleep(3000);
    const [busyOther, busySame] = await Promise.all([freshness(other, "busy-"), freshness(same, "busy-")]);
    log(`  small run beside the big one: other partition ${secs(busyOther)} s, same partition ${secs(busySame)} s`);
    await producer.disconnect();
    await follower.stop();

    const result = {
      at: new Date().toISOString(),
      connectors: CONNECTORS,
      tenants: TENANTS,
      kinds: { postgres: CONNECTORS - SF - HS, salesforce: SF, hubspot: HS },
      rowsPerConnector: ROWS,
      recordsPerApiConnector: API_RECORDS,
      topicPartitions: PARTITIONS,
      requestPartitions: reqPartitions,
      concurrentRuns: config.producer.concurrentRuns,
      create: { concurrency: PUT_CONCURRENCY, totalS: secs(createMs), putP50Ms: round(pct(putMs, 50)), putP99Ms: round(pct(putMs, 99)) },
      spread,
      burst: {
        cpuSeconds: cpuAtEnd ? Object.fromEntries(Object.entries(cpuAtEnd).map(([k, v]) => [k, round(v - cpuBefore[k]!, 1)])) : null,
        publishedInMs: published,
        startLateS: { p50: secs(pct(late, 50)), p99: secs(pct(late, 99)), max: secs(Math.max(...late)) },
        completedS: { p50: secs(pct(done, 50)), p99: secs(pct(done, 99)), max: secs(Math.max(...done)) },
        started: late.length,
        completed: done.length,
        failed: failed.length,
        firstFailure: failed[0]?.failed ?? null,
        sinkCaughtUpS: sinkDoneAt === null ? null : secs(sinkDoneAt - fireAt),
        sinkRows: rows,
        sinkRowsExpected: expectedRows,
        lag: lagSeries,
      },
      broker: { topics: meta.topics.length, partitions: partitionCount, rssMbBefore: brokerBefore, rssMbAfter: rssMb(brokerPid()) },
      roles: roleMemory,
      interference: {
        bigRows: BIG_ROWS,
        idleS: { samePartition: secs(idleSame), otherPartition: secs(idleOther) },
        besideBigS: { samePartition: secs(busySame), otherPartition: secs(busyOther) },
        delayS: { samePartition: secs(busySame - idleSame), otherPartition: secs(busyOther - idleOther) },
        bigRunElapsedS: secs(Date.now() - bigStarted),
        stages,
      },
    };
    writeResult("tenants", result);
    const b = result.burst;
    console.log(
      `tenants: ${CONNECTORS} connectors / ${TENANTS} tenants created through the API in ${result.create.totalS} s (PUT p50 ${result.create.putP50Ms} ms, p99 ${result.create.putP99Ms} ms)`,
    );
    console.log(
      `tenants: spread schedule (${CONNECTORS} runs, a ${spread.spreadMinutes}-minute spread played in ${spread.playedInS} s: ${spread.scale}× the real rate): start late p50 ${spread.startLateS.p50} s, p99 ${spread.startLateS.p99} s, max ${spread.startLateS.max} s (goal p99 < 5 s); ${spread.completed} completed, ${spread.failed} failed; sink caught up at ${spread.sinkCaughtUpS} s`,
    );
    console.log(
      `tenants: schedule burst of ${CONNECTORS} runs (all at one instant: the worst case, tenants pinning the same time with spreadMinutes 0): start late p50 ${b.startLateS.p50} s, p99 ${b.startLateS.p99} s, max ${b.startLateS.max} s (goal p99 < 5 s); completed p50 ${b.completedS.p50} s, p99 ${b.completedS.p99} s; ${b.completed} completed, ${b.failed} failed; sink caught up at ${b.sinkCaughtUpS} s with ${b.sinkRows} rows of ${b.sinkRowsExpected} expected`,
    );
    console.log(`tenants: CPU seconds during the burst (until the sink caught up): ${JSON.stringify(b.cpuSeconds)}`);
    console.log(
      `tenants: broker ${result.broker.topics} topics, ${result.broker.partitions} partitions, RSS ${result.broker.rssMbBefore} → ${result.broker.rssMbAfter} MB`,
    );
    console.log(
      `tenants: roles ${Object.entries(roleMemory)
        .map(([n, m]) => `${n} start ${m.startupS} s, RSS ${m.rssMb} MB (peak ${m.peakRssMb})`)
        .join("; ")}`,
    );
    console.log(
      `tenants: small runs' stages (s from the request: producer run started / completed / rows in the sink): ${Object.entries(stages)
        .map(([k, v]) => `${k} ${v.startedS}/${v.producedS}/${v.inSinkS}`)
        .join("; ")}`,
    );
    console.log(
      `tenants: a small run beside a ${BIG_ROWS}-row run is delayed by ${result.interference.delayS.otherPartition} s (other request partition) and ${result.interference.delayS.samePartition} s (same partition) (goal < 10 s)`,
    );
  } finally {
    for (const r of roles.reverse()) await stopChild(r.child);
    for (const c of sims) await stopChild(c);
    // What the run made: its topics, and its source and sink schemas.
    if (!process.env.BENCH_TENANTS_KEEP) {
      await deleteTopicsWithPrefix(rt.port, prefix).catch(() => {});
      await withDb(DB, async (c) => {
        const schemas = await c.query<{ s: string }>("SELECT nspname AS s FROM pg_namespace WHERE nspname LIKE $1", [`${prefix}\\_%`]);
        for (const { s } of schemas.rows) await c.query(`DROP SCHEMA "${s}" CASCADE`);
      }).catch(() => {});
    }
    await rt.close();
  }
}

await main();
process.exit(0);
