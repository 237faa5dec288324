/**
 * The mapper benchmark's baseline (bench/mapper.ts): a consumer shaped like the mapper
 * (consumers/mapping/run.ts) — same consumer settings, two partitions at a time, one Kafka
 * transaction per fetched batch with the offsets sent in it — that decodes every raw record
 * through the registry and re-produces it without mapping: MODE `bytes` (default) re-produces the
 * record's own bytes once decoded (the strictest baseline: no encoding at all), `reencode`
 * encodes the decoded envelope again.
 *
 * Usage: node bench/passthrough.ts CONFIG_FILE GROUP_ID OUTPUT_TOPIC [bytes|reencode]
 */
import { randomUUID } from "node:crypto";
import { Partitioners, type EachBatchPayload, type Message } from "kafkajs";
import { loadConfig } from "../app/config.ts";
import { TransactionLock, commitBatchTransaction } from "../lib/kafka.ts";
import { openRuntime } from "../lib/runtime.ts";

const [file, groupId, outTopic, mode = "bytes"] = process.argv.slice(2);
if (!file || !groupId || !outTopic) throw new Error("usage: node bench/passthrough.ts CONFIG_FILE GROUP_ID OUTPUT_TOPIC");
const { config } = loadConfig(file);
const rt = await openRuntime(config, "passthrough");
const rawTopics = config.connectors.map((c) => rt.port.topics.raw(c.id));
const producer = rt.port.kafka.producer({
  createPartitioner: Partitioners.DefaultPartitioner,
  transactionalId: `${config.topicPrefix}-passthrough-${randomUUID()}`,
  idempotent: true,
  maxInFlightRequests: 1,
});
await producer.connect();
const consumer = rt.port.kafka.consumer({ groupId, readUncommitted: false });
await consumer.connect();
await consumer.subscribe({ topics: rawTopics, fromBeginning: true });

const lock = new TransactionLock();

await consumer.run({
  autoCommit: false,
  eachBatchAutoResolve: false,
  partitionsConsumedConcurrently: 2,
  eachBatch: async ({ batch, resolveOffset }: EachBatchPayload) => {
    if (batch.messages.length === 0) return;
    const out: Message[] = [];
    for (const m of batch.messages) {
      if (!m.value) continue;
      const value = await rt.codec.decode<unknown>(m.value);
      out.push({ key: m.key, value: mode === "reencode" ? await rt.codec.encode(outTopic, "rawRecord", value) : m.value });
    }
    await commitBatchTransaction(producer, lock, groupId, batch, async (txn) => {
      await txn.send({ topic: outTopic, acks: -1, messages: out });
    });
    resolveOffset(batch.lastOffset());
  },
});

const stop = async () => {
  await consumer.disconnect().catch(() => {});
  await producer.disconnect().catch(() => {});
  await rt.close();
  process.exit(0);
};
process.once("SIGTERM", () => void stop());
process.once("SIGINT", () => void stop());
