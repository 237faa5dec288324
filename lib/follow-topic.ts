/**
 * Follows topics with a throwaway consumer group: the one way the pipeline reads a topic outside
 * a role's own group (scans of a whole topic, waiting for a run's events, the operations view,
 * probes). Nothing is committed that matters: the group gets a random id and is deleted on stop.
 *
 * Where to start: the topics' beginning, their end, or given offsets per partition. With
 * `upToEnd`, the end offsets the topics have when following starts are taken first: `caughtUp`
 * resolves once every partition has been read up to them ("mark" goes on following after them,
 * "stop" delivers nothing past them: a scan of what the topic held).
 */
import { randomUUID } from "node:crypto";
import type { ConsumerConfig, KafkaMessage } from "kafkajs";
import { endOffsets, type KafkaPort } from "./kafka.ts";

interface FollowedBatch {
  topic: string;
  partition: number;
  messages: KafkaMessage[];
  /** Stops fetching this partition (until the follower stops). */
  pause(): void;
}

interface FollowOptions {
  topics: string[];
  /** The throwaway group's id is this prefix, a dash and a random UUID. */
  groupPrefix: string;
  /** "beginning", "end", or offsets per topic and partition (partitions not named start at the end). */
  from: "beginning" | "end" | Map<string, Map<number, number>>;
  upToEnd?: "mark" | "stop";
  consumer?: Partial<Omit<ConsumerConfig, "groupId">>;
  onBatch(batch: FollowedBatch): Promise<void> | void;
  /** Called on each assignment of partitions to the follower, before they are fetched. */
  onAssign?(
    assignment: Record<string, number[]>,
    control: { seek(topic: string, partition: number, offset: number): void; pause(topic: string, partition: number): void },
  ): void;
}

export interface Follower {
  /** With `upToEnd`: resolves once the end offsets taken at start are reached (at once when the topics were empty). */
  caughtUp: Promise<void>;
  stop(): Promise<void>;
}

const key = (topic: string, partition: number) => `${topic}\u0000${partition}`;

export async function followTopics(port: KafkaPort, opts: FollowOptions): Promise<Follower> {
  const admin = await port.admin();
  const pending = new Map<string, number>();
  if (opts.upToEnd) {
    for (const topic of opts.topics) {
      for (const [p, end] of await endOffsets(admin, topic)) if (end > 0) pending.set(key(topic, p), end);
    }
  }
  let markCaughtUp!: () => void;
  const caughtUp = new Promise<void>((r) => {
    markCaughtUp = r;
  });
  // A scan of empty topics needs no consumer at all.
  if (pending.size === 0) {
    markCaughtUp();
    if (opts.upToEnd === "stop") return { caughtUp, stop: async () => {} };
  }
  const groupId = `${opts.groupPrefix}-${randomUUID()}`;
  const consumer = port.kafka.consumer({ sessionTimeout: 30_000, ...opts.consumer, groupId });
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    await consumer.disconnect().catch(() => {});
    await admin.deleteGroups([groupId]).catch(() => {});
  };
  try {
    if (opts.onAssign) {
      const onAssign = opts.onAssign;
      consumer.on(consumer.events.GROUP_JOIN, (ev) => {
        onAssign(ev.payload.memberAssignment as Record<string, number[]>, {
          seek: (topic, partition, offset) => consumer.seek({ topic, partition, offset: String(offset) }),
          pause: (topic, partition) => consumer.pause([{ topic, partitions: [partition] }]),
        });
      });
    }
    await consumer.connect();
    await consumer.subscribe({ topics: opts.topics, fromBeginning: opts.from === "beginning" });
    const running = consumer.run({
      autoCommit: false,
      eachBatch: async ({ batch, heartbeat }) => {
        const k = key(batch.topic, batch.partition);
        const end = pending.get(k);
        if (opts.upToEnd === "stop" && end === undefined) return;
        const messages = opts.upToEnd === "stop" ? batch.messages.filter((m) => Number(m.offset) < end!) : batch.messages;
        await opts.onBatch({
          topic: batch.topic,
          partition: batch.partition,
          messages,
          pause: () => consumer.pause([{ topic: batch.topic, partitions: [batch.partition] }]),
        });
        await heartbeat();
        if (end !== undefined && Number(batch.lastOffset()) + 1 >= end) {
          pending.delete(k);
          if (pending.size === 0) markCaughtUp();
        }
      },
    });
    if (opts.from instanceof Map) {
      for (const [topic, partitions] of opts.from) {
        for (const [partition, offset] of partitions) consumer.seek({ topic, partition, offset: String(offset) });
      }
    }
    await running;
  } catch (e) {
    await stop();
    throw e;
  }
  return { caughtUp, stop };
}
