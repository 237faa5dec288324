/**
 * The local stack (stack/stack.ts) against the real processes. Assumes the global setup already ran
 * `stackUp()`. Kafka and the registry are either ours ("running", with pids) or were already
 * answering on their ports when this clone's stack came up ("external": another clone's stack,
 * docker compose…); both paths are asserted.
 *
 * Then a cluster of three brokers of its own (`stack up --brokers 3`) on spare ports and in a
 * temporary state dir: the pipeline's topics created with replication factor 3 and
 * min.insync.replicas 2, checked through the admin API, acks=all writes going on with one broker
 * SIGKILLed, and the cluster stopped.
 */
import { randomBytes } from "node:crypto";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ConfigResourceTypes, ConfigSource, Kafka, logLevel, Partitioners } from "kafkajs";
import { describe, expect, it } from "vitest";
import { parseConfig } from "../../app/config.ts";
import { createKafka, ensureTopics } from "../../lib/kafka.ts";
import { brokerPids, downKafka, type KafkaCluster, kafkaStatus, recordedSize, upKafka } from "../../stack/kafka.ts";
import { portOpen } from "../../stack/process.ts";
import { stackDefaults, stackStatus, stackUp } from "../../stack/stack.ts";

const unique = (prefix: string) => `${prefix}-${Date.now()}-${randomBytes(4).toString("hex")}`;

describe("local stack", () => {
  it("reports kafka and the registry running, with pids and logs", async () => {
    const status = await stackStatus();
    const kafka = status.find((s) => s.name === "kafka");
    const registry = status.find((s) => s.name === "registry");
    for (const [s, address] of [
      [kafka, stackDefaults.kafkaBrokers[0]],
      [registry, stackDefaults.registryUrl],
    ] as const) {
      expect(s?.address).toBe(address);
      if (s?.state === "external") {
        console.log(`${s.name} is external (started outside this clone): pid checks do not apply`);
        expect(s.pid).toBeUndefined();
      } else {
        expect(s).toMatchObject({ state: "running", detail: "answering" });
        expect(s?.pid).toBeTypeOf("number");
      }
    }
    expect(status.map((s) => s.name)).toContain("postgres");
  }, 15_000);

  it("stackUp a second time is a no-op that keeps the same pids", async () => {
    const before = await stackStatus();
    const after = await stackUp();
    for (const name of ["kafka", "registry"] as const) {
      const b = before.find((s) => s.name === name);
      const a = after.find((s) => s.name === name);
      expect(a?.state).toBe(b?.state);
      if (b?.state === "running") expect(a?.detail).toBe("already running");
      expect(a?.pid).toBe(b?.pid);
    }
  }, 20_000);

  it("the registry's global compatibility is BACKWARD", async () => {
    const res = await fetch(`${stackDefaults.registryUrl}/config`);
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ compatibilityLevel: "BACKWARD" });
  });

  it("kafkajs produces and consumes one message on a fresh topic", async () => {
    const kafka = new Kafka({ clientId: "stack-test", brokers: stackDefaults.kafkaBrokers, logLevel: logLevel.ERROR });
    const topic = unique("stack-test");
    const value = unique("hello");
    const admin = kafka.admin();
    const producer = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner, idempotent: true });
    const consumer = kafka.consumer({ groupId: unique("stack-test-group") });
    try {
      await admin.connect();
      expect(await admin.createTopics({ topics: [{ topic, numPartitions: 1 }], waitForLeaders: true })).toBe(true);
      expect(await admin.listTopics()).toContain(topic);

      await producer.connect();
      await producer.send({ topic, acks: -1, messages: [{ key: "k", value }] });

      await consumer.connect();
      await consumer.subscribe({ topics: [topic], fromBeginning: true });
      const received = new Promise<{ key: string | undefined; value: string | undefined }>((resolve) => {
        void consumer.run({
          eachMessage: async ({ message }) => resolve({ key: message.key?.toString(), value: message.value?.toString() }),
        });
      });
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`no message consumed from ${topic} within 20 s`)), 20_000);
      });
      try {
        expect(await Promise.race([received, timeout])).toEqual({ key: "k", value });
      } finally {
        clearTimeout(timer);
      }
    } finally {
      await consumer.disconnect().catch(() => undefined);
      await producer.disconnect().catch(() => undefined);
      await admin.deleteTopics({ topics: [topic] }).catch(() => undefined);
      await admin.disconnect().catch(() => undefined);
    }
  }, 30_000);
});

/**
 * A base port with itself and the five ports after it free (three brokers, each with its controller),
 * below Linux's ephemeral range (32768 and up): a port there that is free now may be taken by any
 * outgoing connection before the broker binds it (a CI run failed so).
 */
async function spareBasePort(): Promise<number> {
  for (let attempt = 0; attempt < 50; attempt++) {
    const base = 21_000 + 2 * Math.floor(Math.random() * 4_000);
    const taken = await Promise.all(Array.from({ length: 6 }, (_, i) => portOpen(base + i, 300)));
    if (!taken.some(Boolean)) return base;
  }
  throw new Error("no six free consecutive ports found between 21000 and 29000");
}

describe("three-broker cluster (stack up --brokers 3)", () => {
  it("starts three KRaft brokers, creates the pipeline's topics with 3 replicas and min.insync.replicas 2, writes with one broker down, stops", async () => {
    const stateDir = mkdtempSync(join(tmpdir(), "qobra-stack3-"));
    const cluster: KafkaCluster = { size: 3, port: await spareBasePort(), stateDir, logsDir: join(stateDir, "logs") };
    const lines: string[] = [];
    const print = (l: string) => lines.push(l);
    const started = Date.now();
    const servers = [0, 2, 4].map((d) => `127.0.0.1:${cluster.port + d}`);
    const prefix = unique("rf3").replace(/-/g, "");
    const config = parseConfig(
      `
kafka: { brokers: ${JSON.stringify(servers)}, partitions: 3, replicationFactor: 3 }
schemaRegistry: { url: "http://127.0.0.1:1/apis/ccompat/v7" }
topicPrefix: ${prefix}
sink: { databaseUrl: "postgres://postgres@127.0.0.1:1/none", defaultCurrency: EUR }
connectors:
  - id: crm
    type: postgres
    connection: { url: "postgres://reader@127.0.0.1:1/crm" }
    tables: [{ name: deals, source: public.deals, idColumn: id, nameColumn: title }]
`,
      "rf3.yaml",
      {},
    );
    const port = createKafka(config, "stack-rf3");
    try {
      const up = await upKafka(cluster, print);
      const upSeconds = (Date.now() - started) / 1000;
      expect(up).toMatchObject({ name: "kafka", state: "running", address: servers.join(",") });
      expect(up.brokers?.map((b) => [b.address, b.state])).toEqual(servers.map((a) => [a, "running"]));
      expect(new Set(up.brokers?.map((b) => b.pid)).size).toBe(3);
      expect(recordedSize(stateDir)).toBe(3);
      for (const id of [1, 2, 3]) expect(existsSync(join(stateDir, `kafka-${id}`, "data", "meta.properties"))).toBe(true);

      await ensureTopics(port, config);
      const admin = await port.admin();
      expect((await admin.describeCluster()).brokers.map((b) => b.nodeId).sort()).toEqual([1, 2, 3]);
      const topics = [port.topics.raw("crm"), port.topics.mapped("crm", "deals"), port.topics.syncState, port.topics.syncEvents];
      const { topics: meta } = await admin.fetchTopicMetadata({ topics: [...topics, "__consumer_offsets"] });
      for (const t of meta) for (const p of t.partitions) expect({ topic: t.name, replicas: p.replicas.length }).toEqual({ topic: t.name, replicas: 3 });
      const { resources } = await admin.describeConfigs({
        includeSynonyms: false,
        resources: [
          ...topics.map((name) => ({ type: ConfigResourceTypes.TOPIC, name, configNames: ["min.insync.replicas"] })),
          {
            type: ConfigResourceTypes.BROKER,
            name: "1",
            configNames: ["offsets.topic.replication.factor", "transaction.state.log.replication.factor", "transaction.state.log.min.isr"],
          },
        ],
      });
      const value = (name: string, key: string) => resources.find((r) => r.resourceName === name)?.configEntries.find((e) => e.configName === key)?.configValue;
      // Set on each topic by the pipeline (lib/kafka.ts), not inherited from the brokers' default (also 2 here).
      const source = (name: string, key: string) =>
        resources.find((r) => r.resourceName === name)?.configEntries.find((e) => e.configName === key)?.configSource;
      for (const t of topics)
        expect({ topic: t, minIsr: value(t, "min.insync.replicas"), source: source(t, "min.insync.replicas") }).toEqual({
          topic: t,
          minIsr: "2",
          source: ConfigSource.TOPIC_CONFIG,
        });
      expect(value("1", "offsets.topic.replication.factor")).toBe("3");
      expect(value("1", "transaction.state.log.replication.factor")).toBe("3");
      expect(value("1", "transaction.state.log.min.isr")).toBe("2");

      // One broker SIGKILLed: once the controllers have fenced it (broker.session.timeout.ms, 9 s)
      // and moved its leaderships, two in-sync replicas remain, so acks=all writes to every
      // partition go on. (Until then a client may still be sent to it: the pipeline's roles retry.)
      const victim = brokerPids(cluster)[2]!;
      const killedAt = Date.now();
      process.kill(victim.pid!, "SIGKILL");
      for (;;) {
        const live = await admin.describeCluster().then(
          (c) => c.brokers.length,
          () => 3,
        );
        if (live === 2) break;
        if (Date.now() - killedAt > 60_000) throw new Error("broker 3 still registered 60 s after its SIGKILL");
        await new Promise((r) => setTimeout(r, 500));
      }
      const fencedSeconds = (Date.now() - killedAt) / 1000;
      const producer = await port.producer({ idempotent: true, maxInFlightRequests: 1 });
      const sendAt = Date.now();
      await producer.send({
        topic: port.topics.raw("crm"),
        acks: -1,
        messages: [0, 1, 2].map((partition) => ({ key: `k${partition}`, value: "v", partition })),
      });
      const writeSeconds = (Date.now() - sendAt) / 1000;
      await producer.disconnect();
      const partial = await kafkaStatus(cluster);
      expect(partial.state).toBe("partial");
      expect(partial.brokers?.map((b) => b.state)).toEqual(["running", "running", "stopped"]);
      console.log(
        `three brokers up in ${upSeconds.toFixed(1)} s; broker 3 fenced ${fencedSeconds.toFixed(1)} s after its SIGKILL; acks=all writes to 3 partitions then took ${writeSeconds.toFixed(1)} s`,
      );
    } finally {
      await port.close();
      const down = await downKafka(cluster, print);
      expect(down.brokers?.map((b) => b.state)).toEqual(["stopped", "stopped", "stopped"]);
      expect(brokerPids(cluster).map((b) => b.pid)).toEqual([undefined, undefined, undefined]);
      console.log(`three-broker test: ${((Date.now() - started) / 1000).toFixed(1)} s in all`);
      rmSync(stateDir, { recursive: true, force: true });
    }
  }, 180_000);
});
