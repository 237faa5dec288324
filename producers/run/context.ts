/**
 * What every step of a producer run works with: the Kafka port and producer, the codec, the
 * request being served and the heartbeat of the consumer that received it (a long step calls it
 * so the request's partition is not taken away mid-run).
 */
import type { Producer } from "kafkajs";
import type { Codec } from "../../lib/codec.ts";
import type { KafkaPort } from "../../lib/kafka.ts";
import type { SyncRequest } from "../../schemas/index.ts";

export interface RunContext {
  port: KafkaPort;
  codec: Codec;
  producer: Producer;
  request: SyncRequest;
  /** raw.<connector> of the request's connector. */
  rawTopic: string;
  heartbeat: () => Promise<void>;
}
