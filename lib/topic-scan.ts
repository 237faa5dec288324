/** Reads a whole topic, from its start to the end offsets it has now, then stops. */
import { randomUUID } from "node:crypto";
import type { KafkaMessage } from "kafkajs";
import { endOffsets, type KafkaPort } from "./kafka.ts";

export async function readToEnd(
  port: KafkaPort, topic: string, onBatch: (messages: KafkaMessage[], partition: number) => Promise<void> | void,
  opts: { heartbeat?: () => Promise<void> } = {},
): Promise<void> {
  const admin = await port.admin();
  const pending = new Map([...(await endOffsets(admin, topic))].filter(([, end]) => end > 0));
  if (pending.size === 0) return;
  const groupId = `${topic}-scan-${randomUUID()}`;
  const consumer = port.kafka.consumer({ groupId, sessionTimeout: 30_000, maxBytesPerPartition: 8 * 1024 * 1024 });
  try {
    await consumer.connect();
    await consumer.subscribe({ topic, fromBeginning: true });
    await new Promise<void>((resolve, reject) => {
      consumer.run({
        autoCommit: false,
        eachBatch: async ({ batch }) => {
          const end = pending.get(batch.partition);
          if (end === undefined) return;
          await onBatch(batch.messages.filter((m) => Number(m.offset) < end), batch.partition);
          await opts.heartbeat?.();
          if (Number(batch.lastOffset()) + 1 >= end) pending.delete(batch.partition);
          if (pending.size === 0) resolve();
        },
      }).catch(reject);
    });
  } finally {
    await consumer.disconnect().catch(() => {});
    await admin.deleteGroups([groupId]).catch(() => {});
  }
}
