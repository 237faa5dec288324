/**
 * A run waits out a failure that may pass, and fails at once on one that will not: the producer
 * worker retries a table whose read throws a retriable EtlError (here: the source PostgreSQL
 * refuses connections for a few seconds) with backoff, from its last cursor, for up to
 * `producer.retryForSeconds`; its RUN_FAILED says whether the failure was retriable.
 * The source is reached through a local TCP relay that the test opens late or never.
 */
import { createServer, connect, type Server } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runRoles, type RunHandle } from "../../app/roles.ts";
import type { Config } from "../../lib/config.ts";
import { openRuntime, type Runtime } from "../../lib/runtime.ts";
import type { SyncEvent } from "../../schemas/index.ts";
import { stackDefaults } from "../../stack/stack.ts";
import { readToEnd } from "../../lib/topic-scan.ts";
import { dbUrl, ensureDatabase, testConfig, uniqueId, withDb } from "../../support/env.ts";
import { syncAndWait } from "../../support/pipeline.ts";

const SOURCE_DB = "qobra_it_source";
const SINK_DB = "qobra_it_sink";
const ROWS = 100;

let config: Config;
let rt: Runtime;
let pipeline: RunHandle;
let id: string;
let relayPort: number;
let deadPort: number;
let relay: Server | undefined;

/** A port nothing listens on (yet): taken from the OS, then freed. */
async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
  const port = (s.address() as { port: number }).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

/** Starts relaying `port` to the local PostgreSQL. */
async function openRelay(port: number): Promise<Server> {
  const server = createServer((client) => {
    const upstream = connect(5432, "127.0.0.1");
    client.pipe(upstream).pipe(client);
    client.on("error", () => upstream.destroy());
    upstream.on("error", () => client.destroy());
  });
  await new Promise<void>((r) => server.listen(port, "127.0.0.1", r));
  return server;
}

const sourceUrl = (port: number) => dbUrl(SOURCE_DB).replace(/127\.0\.0\.1:5432|localhost:5432/, `127.0.0.1:${port}`);

beforeAll(async () => {
  id = uniqueId("retry");
  const table = `deals_${id}`;
  relayPort = await freePort();
  deadPort = await freePort();
  expect(sourceUrl(relayPort)).toContain(`:${relayPort}/`);
  await ensureDatabase(SOURCE_DB);
  await ensureDatabase(SINK_DB);
  await withDb(SOURCE_DB, (c) =>
    c.query(`CREATE TABLE public.${table} (id int PRIMARY KEY, title text, amount numeric(12,2));
    INSERT INTO public.${table} SELECT g, 'Deal ' || g, g * 10.25 FROM generate_series(1, ${ROWS}) g;`),
  );
  const tables = (source: string) => `
      - name: deals
        source: ${source}
        idColumn: id
        nameColumn: title
        fields: { amount: amount }`;
  config = testConfig(`
kafka: { brokers: ${JSON.stringify(stackDefaults.kafkaBrokers)}, partitions: 2 }
schemaRegistry: { url: "${stackDefaults.registryUrl}" }
topicPrefix: ${id}
sink: { databaseUrl: "${dbUrl(SINK_DB)}", schema: sink_${id}, defaultCurrency: EUR }
producer: { retryForSeconds: 15 }
connectors:
  - id: late
    type: postgres
    connection: { url: "${sourceUrl(relayPort)}", allowSuperuser: true }
    tables: ${tables(`public.${table}`)}
  - id: gone
    type: postgres
    connection: { url: "${sourceUrl(deadPort)}", allowSuperuser: true }
    tables: ${tables(`public.${table}`)}
  - id: wrong
    type: postgres
    connection: { url: "${dbUrl(SOURCE_DB)}", allowSuperuser: true }
    tables: ${tables("public.no_such_table")}
`);
  rt = await openRuntime(config, "test");
  pipeline = await runRoles(config, ["producer", "mapper", "sink"]);
});

afterAll(async () => {
  await pipeline?.stop();
  await rt?.close();
  await new Promise<void>((r) => (relay ? relay.close(() => r()) : r()));
});

async function runEvents(runId: string): Promise<SyncEvent[]> {
  const out: SyncEvent[] = [];
  await readToEnd(rt.port, rt.port.topics.syncEvents, async (messages) => {
    for (const m of messages) if (m.key?.toString() === runId && m.value) out.push(await rt.codec.decode<SyncEvent>(m.value));
  });
  return out;
}

describe("a run meeting a failure", () => {
  it("that may pass (the source refuses connections for a few seconds) waits it out and completes", async () => {
    const opened = new Promise<void>((resolve) =>
      setTimeout(() => {
        void openRelay(relayPort).then((s) => {
          relay = s;
          resolve();
        });
      }, 4000),
    );
    const started = Date.now();
    const done = await syncAndWait(rt, "late", { full: true, timeoutMs: 90_000 });
    await opened;
    expect(done.type).toBe("RUN_COMPLETED");
    expect(Date.now() - started).toBeGreaterThan(4000);
    const events = await runEvents(done.runId);
    const retried = events.filter((e) => e.type === "PROGRESS" && (e.counts.retries ?? 0) > 0);
    expect(retried.length).toBeGreaterThan(0);
    expect(events.find((e) => e.type === "TABLE_COMPLETED")?.counts.read).toBe(ROWS);
    const rows = await withDb(
      SINK_DB,
      async (c) =>
        (await c.query<{ n: string; total: string }>(`SELECT count(*) AS n, sum(amount)::text AS total FROM sink_${id}.late__deals WHERE _deleted_at IS NULL`))
          .rows[0]!,
    );
    expect(Number(rows.n)).toBe(ROWS);
    expect(rows.total).toBe(((10.25 * ROWS * (ROWS + 1)) / 2).toFixed(2));
  });

  it("that outlasts producer.retryForSeconds fails the run, saying it was retriable and how often it was retried", async () => {
    const started = Date.now();
    const done = await syncAndWait(rt, "gone", { full: true, timeoutMs: 90_000 });
    expect(done.type).toBe("RUN_FAILED");
    expect(done.retriable).toBe(true);
    expect(done.counts.retries).toBeGreaterThan(0);
    expect(done.error).toMatch(/refused the connection/);
    expect(done.error).toMatch(/still failing after \d+ retr(y|ies) within producer\.retryForSeconds = 15/);
    const took = Date.now() - started;
    expect(took).toBeGreaterThan(8_000);
    expect(took).toBeLessThan(60_000);
  });

  it("that will not pass (a table that does not exist) fails at once, not retriable", async () => {
    const started = Date.now();
    const done = await syncAndWait(rt, "wrong", { full: true, timeoutMs: 60_000 });
    expect(done.type).toBe("RUN_FAILED");
    expect(done.retriable).toBe(false);
    expect(done.counts.retries ?? 0).toBe(0);
    expect(done.error).toMatch(/no_such_table/);
    expect(Date.now() - started).toBeLessThan(10_000);
  });
});
