/**
 * Follows topics from their beginning for as long as the process lives, in a throw-away consumer
 * group (nothing committed; the group is deleted on stop): the operations view is rebuilt from
 * Kafka at every start. `caughtUp` resolves once everything present at start was read.
 */
import { randomUUID } from "node:crypto";
import type { Consumer, KafkaMessage } from "kafkajs";
import { endOffsets, type KafkaPort } from "../lib/kafka.ts";
import { logger } from "../lib/log.ts";

const log = logger.child({ component: "ops-follow" });

export interface Follower { caughtUp: Promise<void>; stop(): Promise<void> }

export async function followTopics(
  port: KafkaPort, groupPrefix: string, topicList: string[],
  onMessage: (topic: string, partition: number, message: KafkaMessage) => Promise<void> | void,
): Promise<Follower> {
  const admin = await port.admin();
  const pending = new Map<string, number>();
  for (const topic of topicList) {
    for (const [p, end] of await endOffsets(admin, topic)) if (end > 0) pending.set(`${topic}\u0000${p}`, end);
  }
  let markCaughtUp!: () => void;
  const caughtUp = new Promise<void>((r) => { markCaughtUp = r; });
  if (pending.size === 0) markCaughtUp();
  const groupId = `${groupPrefix}-ops-${randomUUID()}`;
  const consumer: Consumer = port.kafka.consumer({ groupId, sessionTimeout: 30_000, maxWaitTimeInMs: 500 });
  await consumer.connect();
  await consumer.subscribe({ topics: topicList, fromBeginning: true });
  await consumer.run({
    autoCommit: false,
    eachBatch: async ({ batch, heartbeat }) => {
      for (const m of batch.messages) {
        try {
          await onMessage(batch.topic, batch.partition, m);
        } catch (e) {
          log.warn({ topic: batch.topic, partition: batch.partition, offset: m.offset, err: (e as Error).message }, "message skipped by the operations view");
        }
      }
      await heartbeat();
      const key = `${batch.topic}\u0000${batch.partition}`;
      const end = pending.get(key);
      if (end !== undefined && Number(batch.lastOffset()) + 1 >= end) {
        pending.delete(key);
        if (pending.size === 0) markCaughtUp();
      }
    },
  });
  return {
    caughtUp,
    async stop() {
      await consumer.disconnect().catch(() => {});
      await admin.deleteGroups([groupId]).catch(() => {});
    },
  };
}
