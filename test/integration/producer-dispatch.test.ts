/**
 * One producer worker runs many connectors at once whatever partition their requests share
 * (producers/request-dispatcher.ts), a connector never twice at once across workers (its run lock
 * in the sink database, producers/connector-lock.ts), and a request is committed only when every
 * older one of its partition has ended. Every request of the test shares sync.requests' one
 * partition (kafka.requestPartitions: 1): one worker served them one after the other before.
 */
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runRoles, type RunHandle } from "../../app/roles.ts";
import type { Config } from "../../lib/config.ts";
import { followTopics, type Follower } from "../../lib/follow-topic.ts";
import { committedOffsets, endOffsets } from "../../lib/kafka.ts";
import { newRequest, publishRequest } from "../../lib/protocol.ts";
import { openRuntime, type Runtime } from "../../lib/runtime.ts";
import { groups } from "../../lib/topics.ts";
import { connectorLockKey } from "../../producers/connector-lock.ts";
import type { SyncEvent } from "../../schemas/index.ts";
import { stackDefaults } from "../../stack/stack.ts";
import { dbUrl, ensureDatabase, testConfig, uniqueId, withDb } from "../../support/env.ts";

const SOURCE_DB = "qobra_it_source";
const SINK_DB = "qobra_it_sink";
const BIG_ROWS = 400_000;

let id: string;
let config: Config;
let rt: Runtime;
let pipeline: RunHandle | undefined;
let follower: Follower;
/** Per run id: when its producer run started and ended (ms), and how. */
const runs = new Map<string, { started?: number; starts?: number; ended?: number; type?: string }>();

const table = (name: string) => `
      - name: deals
        source: public.${name}_${id}
        idColumn: id
        nameColumn: title
        fields: { amount: amount }`;

beforeAll(async () => {
  id = uniqueId("dispatch");
  await ensureDatabase(SOURCE_DB);
  await ensureDatabase(SINK_DB);
  await withDb(SOURCE_DB, (c) =>
    c.query(`CREATE TABLE public.big_${id} (id int PRIMARY KEY, title text, amount numeric(12,2));
      INSERT INTO public.big_${id} SELECT g, 'Deal ' || g, g * 10.25 FROM generate_series(1, ${BIG_ROWS}) g;
      CREATE TABLE public.small_${id} (id int PRIMARY KEY, title text, amount numeric(12,2));
      INSERT INTO public.small_${id} SELECT g, 'Deal ' || g, g * 10.25 FROM generate_series(1, 20) g;`),
  );
  config = testConfig(`
kafka: { brokers: ${JSON.stringify(stackDefaults.kafkaBrokers)}, partitions: 1, requestPartitions: 1 }
schemaRegistry: { url: "${stackDefaults.registryUrl}" }
topicPrefix: ${id}
sink: { databaseUrl: "${dbUrl(SINK_DB)}", schema: sink_${id}, defaultCurrency: EUR }
producer: { concurrentRuns: 2 }
connectors:
  - id: big
    type: postgres
    connection: { url: "${dbUrl(SOURCE_DB)}", allowSuperuser: true }
    tables:${table("big")}
  - id: small
    type: postgres
    connection: { url: "${dbUrl(SOURCE_DB)}", allowSuperuser: true }
    tables:${table("small")}
`);
  rt = await openRuntime(config, "producer-dispatch-test");
  follower = await followTopics(rt.port, {
    topics: [rt.port.topics.syncEvents],
    groupPrefix: `${id}-test-events`,
    from: "end",
    onBatch: async (b) => {
      for (const m of b.messages) {
        if (!m.value) continue;
        const e = await rt.codec.decode<SyncEvent>(m.value);
        if (e.stage !== "producer") continue;
        const r = runs.get(e.runId) ?? {};
        runs.set(e.runId, r);
        if (e.type === "RUN_STARTED") {
          r.started ??= Date.now();
          r.starts = (r.starts ?? 0) + 1;
        }
        if (e.type === "RUN_COMPLETED" || e.type === "RUN_FAILED") {
          r.ended = Date.now();
          r.type = e.type;
        }
      }
    },
  });
  pipeline = await runRoles(config, ["producer"]);
}, 120_000);

afterAll(async () => {
  await pipeline?.stop();
  await follower?.stop();
  await rt?.close();
  await withDb(SOURCE_DB, (c) => c.query(`DROP TABLE IF EXISTS public.big_${id}, public.small_${id}`));
});

async function request(connector: string): Promise<string> {
  const producer = await rt.port.producer({ idempotent: true, maxInFlightRequests: 1 });
  try {
    const r = newRequest(connector, { full: true, by: "test" });
    await publishRequest(producer, rt.codec, rt.port.topics, r);
    return r.requestId;
  } finally {
    await producer.disconnect();
  }
}

async function until(what: string, ok: () => boolean, timeoutMs = 60_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!ok()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe("producer worker dispatch", () => {
  it("runs a small connector's request while a big run holds the same sync.requests partition, then commits past both", async () => {
    const big = await request("big");
    await until("the big run to start", () => runs.get(big)?.started !== undefined);
    const small = await request("small");
    await until("the small run to end", () => runs.get(small)?.ended !== undefined);
    expect(runs.get(small)!.type).toBe("RUN_COMPLETED");
    // Served beside the big run, not after it.
    expect(runs.get(big)!.ended).toBeUndefined();
    await until("the big run to end", () => runs.get(big)?.ended !== undefined, 180_000);
    expect(runs.get(big)!.type).toBe("RUN_COMPLETED");
    expect(runs.get(small)!.ended!).toBeLessThan(runs.get(big)!.ended!);
    // Both requests ended: the group's offset reaches the topic's end.
    const admin = await rt.port.admin();
    const end = (await endOffsets(admin, rt.port.topics.syncRequests)).get(0);
    let committed = -1;
    for (let i = 0; i < 50 && committed !== end; i++) {
      committed = (await committedOffsets(admin, groups(id).producers, rt.port.topics.syncRequests)).get(0) ?? -1;
      if (committed !== end) await new Promise((r) => setTimeout(r, 200));
    }
    expect(committed).toBe(end);
  }, 240_000);

  it("waits while another worker holds the connector's run lock, and runs once it is released", async () => {
    const holder = new pg.Client({ connectionString: dbUrl(SINK_DB) });
    await holder.connect();
    const key = connectorLockKey(id, "small").toString();
    try {
      expect((await holder.query("SELECT pg_try_advisory_lock($1::bigint) AS ok", [key])).rows[0].ok).toBe(true);
      const small = await request("small");
      await new Promise((r) => setTimeout(r, 4000));
      expect(runs.get(small)?.started).toBeUndefined();
      const released = Date.now();
      await holder.query("SELECT pg_advisory_unlock($1::bigint)", [key]);
      await until("the small run to end", () => runs.get(small)?.ended !== undefined);
      expect(runs.get(small)!.type).toBe("RUN_COMPLETED");
      expect(runs.get(small)!.started!).toBeGreaterThanOrEqual(released);
    } finally {
      await holder.end();
    }
  }, 120_000);

  it("a run stopped with its worker is served again by the next one", async () => {
    const big = await request("big");
    await until("the big run to start", () => runs.get(big)?.started !== undefined);
    await pipeline!.stop();
    pipeline = undefined;
    expect(runs.get(big)!.ended).toBeUndefined();
    pipeline = await runRoles(config, ["producer"]);
    await until("the big run to end", () => runs.get(big)?.ended !== undefined, 180_000);
    expect(runs.get(big)!.type).toBe("RUN_COMPLETED");
    // Started again from the start (a full read), by the new worker.
    expect(runs.get(big)!.starts).toBe(2);
  }, 240_000);
});
