/**
 * Cursor state of each (connector, table), kept in the compacted topic sync.state so that any
 * producer worker, on any machine, resumes where the last acknowledged page left off.
 */
import { randomUUID } from "node:crypto";
import type { Producer } from "kafkajs";
import type { Codec } from "./codec.ts";
import { endOffsets, type KafkaPort } from "./kafka.ts";
import type { SyncState } from "../schemas/index.ts";

export const stateKey = (connector: string, table: string): string => JSON.stringify([connector, table]);

/** Reads the latest saved state of one table (null when none): the topic up to its current end. */
export async function loadState(port: KafkaPort, codec: Codec, connector: string, table: string): Promise<SyncState | null> {
  const topic = port.topics.syncState;
  const admin = await port.admin();
  const ends = await endOffsets(admin, topic);
  const pending = new Map([...ends].filter(([, end]) => end > 0));
  if (pending.size === 0) return null;
  const key = stateKey(connector, table);
  const groupId = `${topic}-reader-${randomUUID()}`;
  const consumer = port.kafka.consumer({ groupId, sessionTimeout: 10_000 });
  let latest: SyncState | null = null;
  try {
    await consumer.connect();
    await consumer.subscribe({ topic, fromBeginning: true });
    await new Promise<void>((resolve, reject) => {
      consumer.run({
        eachBatch: async ({ batch }) => {
          for (const m of batch.messages) {
            if (m.key?.toString() === key) latest = m.value ? await codec.decode<SyncState>(m.value) : null;
          }
          const end = pending.get(batch.partition);
          if (end !== undefined && Number(batch.lastOffset()) + 1 >= end) pending.delete(batch.partition);
          if (pending.size === 0) resolve();
        },
      }).catch(reject);
    });
  } finally {
    await consumer.disconnect().catch(() => {});
    await admin.deleteGroups([groupId]).catch(() => {});
  }
  return latest;
}

export async function saveState(producer: Producer, port: KafkaPort, codec: Codec, s: SyncState): Promise<void> {
  const topic = port.topics.syncState;
  const value = await codec.encode(topic, "syncState", s);
  await producer.send({ topic, acks: -1, messages: [{ key: stateKey(s.connector, s.table), value }] });
}

/** Forgets a table's state (a full resync starts from scratch). */
export async function clearState(producer: Producer, port: KafkaPort, connector: string, table: string): Promise<void> {
  await producer.send({ topic: port.topics.syncState, acks: -1, messages: [{ key: stateKey(connector, table), value: null }] });
}
