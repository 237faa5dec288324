/**
 * The local stack (stack/stack.ts) against the real processes. Assumes the global setup already ran
 * `stackUp()`. Kafka and the registry are either ours ("running", with pids) or were already
 * answering on their ports when this clone's stack came up ("external": another clone's stack,
 * docker compose…); both paths are asserted.
 */
import { randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import { Kafka, Partitioners, logLevel } from "kafkajs";
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
