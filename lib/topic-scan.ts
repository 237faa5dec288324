/** Reads a whole topic, from its start to the end offsets it has now, then stops. */
import type { KafkaMessage } from "kafkajs";
import { followTopics } from "./follow-topic.ts";
import type { KafkaPort } from "./kafka.ts";

/** `heartbeat` is called after each batch (a role's own, when the scan runs inside one of its handlers). */
export async function readToEnd(
  port: KafkaPort,
  topic: string,
  onBatch: (messages: KafkaMessage[], partition: number) => Promise<void> | void,
  opts: { heartbeat?: () => Promise<void> } = {},
): Promise<void> {
  const follower = await followTopics(port, {
    topics: [topic],
    groupPrefix: `${topic}-scan`,
    from: "beginning",
    upToEnd: "stop",
    consumer: { sessionTimeout: 30_000, maxBytesPerPartition: 8 * 1024 * 1024 },
    onBatch: async (b) => {
      await onBatch(b.messages, b.partition);
      // The role's membership is the role's business (its own calls report a failed heartbeat);
      // thrown here, it would only make the scan's consumer retry the batch for ever.
      await opts.heartbeat?.().catch(() => {});
    },
  });
  try {
    await follower.caughtUp;
  } finally {
    await follower.stop();
  }
}
