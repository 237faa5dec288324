/**
 * A role heals itself, with the real kafkajs: a consumer whose batch handler throws an error that
 * is not retriable is left stopped by kafkajs (CRASH with restart: false: the failure mode the
 * chaos suite met after a broker restart, "Failed to find group coordinator"); whenCrashed sees it,
 * and the supervisor starts the role again, which then consumes the message it crashed on.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import kafkajs from "kafkajs";
import { supervise, type RoleHandle } from "../../app/supervisor.ts";
import type { Config } from "../../lib/config.ts";
import { whenCrashed } from "../../lib/kafka.ts";
import { openRuntime, type Runtime } from "../../lib/runtime.ts";
import { stackDefaults } from "../../stack/stack.ts";
import { dbUrl, testConfig, uniqueId } from "../../support/env.ts";

let config: Config;
let rt: Runtime;
let topic: string;

beforeAll(async () => {
  const id = uniqueId("sup");
  topic = `${id}.input`;
  config = testConfig(`
kafka: { brokers: ${JSON.stringify(stackDefaults.kafkaBrokers)}, partitions: 1 }
schemaRegistry: { url: "${stackDefaults.registryUrl}" }
topicPrefix: ${id}
sink: { databaseUrl: "${dbUrl("postgres")}", schema: sink_${id}, defaultCurrency: EUR }
connectors: []
`);
  rt = await openRuntime(config, "test");
  const admin = await rt.port.admin();
  await admin.createTopics({ waitForLeaders: true, topics: [{ topic, numPartitions: 1 }] });
});

afterAll(async () => {
  await rt?.close();
});

describe("a role whose Kafka consumer crashes for good", () => {
  it("is restarted by its supervisor and goes on with its work", async () => {
    let starts = 0;
    let crashes = 0;
    const processed: string[] = [];
    const start = async (): Promise<RoleHandle> => {
      starts++;
      const consumer = rt.port.kafka.consumer({ groupId: `${topic}-role`, sessionTimeout: 10_000, heartbeatInterval: 1000 });
      await consumer.connect();
      await consumer.subscribe({ topic, fromBeginning: true });
      const crash = whenCrashed([consumer]);
      await consumer.run({
        eachMessage: async ({ message }) => {
          // The first start meets an error kafkajs will not restart from.
          if (starts === 1) {
            crashes++;
            throw new kafkajs.KafkaJSNonRetriableError("simulated: Failed to find group coordinator");
          }
          processed.push(message.value!.toString());
        },
      });
      return {
        crashed: crash.crashed,
        stop: async () => {
          crash.dispose();
          await consumer.disconnect().catch(() => {});
        },
      };
    };
    const role = await supervise("test-role", start, { backoff: { initialMs: 200, maxMs: 1000 } });
    try {
      const producer = await rt.port.producer();
      await producer.send({ topic, messages: [{ key: "k", value: "work" }] });
      await producer.disconnect();
      const deadline = Date.now() + 60_000;
      while (processed.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 200));
      expect(crashes).toBe(1);
      expect(starts).toBe(2);
      expect(role.restarts).toBe(1);
      expect(processed).toEqual(["work"]);
    } finally {
      await role.stop();
    }
  });
});
