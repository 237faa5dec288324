/**
 * Cursor state of each (connector, table), kept in the compacted topic sync.state so that any
 * producer worker, on any machine, resumes where the last acknowledged page left off.
 */
import type { Producer } from "kafkajs";
import type { Codec } from "./codec.ts";
import type { KafkaPort } from "./kafka.ts";
import { readToEnd } from "./topic-scan.ts";
import type { SyncState } from "../schemas/index.ts";

const stateKey = (connector: string, table: string): string => JSON.stringify([connector, table]);

/** Reads the latest saved state of one table (null when none): the topic up to its current end. */
export async function loadState(port: KafkaPort, codec: Codec, connector: string, table: string): Promise<SyncState | null> {
  const key = stateKey(connector, table);
  let latest: Buffer | null = null;
  await readToEnd(port, port.topics.syncState, (messages) => {
    for (const m of messages) if (m.key?.toString() === key) latest = m.value;
  });
  return latest ? codec.decode<SyncState>(latest) : null;
}

export async function saveState(producer: Producer, port: KafkaPort, codec: Codec, s: SyncState): Promise<void> {
  const topic = port.topics.syncState;
  const value = await codec.encode(topic, "syncState", s);
  await producer.send({ topic, acks: -1, messages: [{ key: stateKey(s.connector, s.table), value }] });
}
