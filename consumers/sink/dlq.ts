/**
 * The sink's dead letters: a record PostgreSQL refuses (bad data, a column whose type changed) goes
 * to dlq.sink with why, acknowledged by all replicas before the batch's transaction commits, so a
 * crash can only repeat a dead letter, never lose one.
 */
import type { KafkaMessage, Producer } from "kafkajs";
import type { Codec } from "../../lib/codec.ts";
import { describeError } from "../../lib/errors.ts";
import { logger } from "../../lib/log.ts";
import { dlqHeaders } from "../../lib/protocol.ts";
import type { DeadLetter } from "../../schemas/index.ts";

const log = logger.child({ component: "sink" });

/** The dead letter of one record of a mapped topic. */
function sinkDeadLetter(
  origin: { topic: string; partition: number; connector: string; table: string },
  message: KafkaMessage,
  error: unknown,
  at = Date.now(),
): DeadLetter {
  const code = (error as { code?: string })?.code;
  return {
    stage: "sink",
    originalTopic: origin.topic,
    originalPartition: origin.partition,
    originalOffset: Number(message.offset),
    key: message.key ?? null,
    value: message.value ?? null,
    connector: origin.connector,
    table: origin.table,
    runId: null,
    errorClass: (error as Error)?.name ?? "Error",
    errorMessage: describeError(error),
    issues: code ? [{ path: "", code: String(code), message: describeError(error) }] : [],
    at,
  };
}

/** Sends the dead letters of one batch of a partition in one request. */
export async function sendDeadLetters(
  producer: Pick<Producer, "send">,
  codec: Codec,
  dlqTopic: string,
  origin: { topic: string; partition: number; connector: string; table: string },
  items: Array<{ message: KafkaMessage; error: unknown }>,
): Promise<void> {
  const messages = [];
  for (const { message, error } of items) {
    const letter = sinkDeadLetter(origin, message, error);
    messages.push({ key: message.key ?? null, value: await codec.encode(dlqTopic, "deadLetter", letter), headers: dlqHeaders(letter) });
    log.warn(
      { topic: origin.topic, partition: origin.partition, offset: Number(message.offset), err: describeError(error) },
      "record sent to the sink dead-letter topic",
    );
  }
  await producer.send({ topic: dlqTopic, acks: -1, messages });
}
