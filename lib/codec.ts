/**
 * Encoding of the messages the pipeline owns (schemas/*.avsc) through the schema registry, one
 * registration per topic, cached. Any Confluent-compatible client can read every topic.
 */
import type { Producer } from "kafkajs";
import { schemas, type SchemaName, type SyncEvent } from "../schemas/index.ts";
import { maskSecrets } from "./redact.ts";
import type { Registry } from "./registry.ts";

export class Codec {
  private readonly registry: Registry;
  constructor(registry: Registry) {
    this.registry = registry;
  }

  async encode(topic: string, schema: SchemaName, value: unknown): Promise<Buffer> {
    const id = await this.registry.register(topic, schemas[schema]);
    return this.registry.encode(id, value);
  }

  /** Encodes many values of one schema for one topic (one registry lookup). */
  async encodeMany(topic: string, schema: SchemaName, values: unknown[]): Promise<Buffer[]> {
    const id = await this.registry.register(topic, schemas[schema]);
    return Promise.all(values.map((v) => this.registry.encode(id, v)));
  }

  /** Encodes with an already registered schema id (mapped tables register their own schemas). */
  encodeWithId(schemaId: number, value: unknown): Promise<Buffer> {
    return this.registry.encode(schemaId, value);
  }

  decode<T>(buffer: Buffer): Promise<T> {
    return this.registry.decode<T>(buffer);
  }
}

/** A sync event with its defaults. Its error text is masked (lib/redact.ts): no credential reaches the events topic. */
export function newEvent(e: Pick<SyncEvent, "runId" | "connector" | "type"> & Partial<SyncEvent>): SyncEvent {
  const event: SyncEvent = {
    at: Date.now(),
    stage: "producer",
    table: null,
    full: false,
    counts: {},
    offsets: [],
    error: null,
    taskId: null,
    retriable: null,
    ...e,
  };
  return event.error ? { ...event, error: maskSecrets(event.error) } : event;
}

/** Publishes a run lifecycle event, keyed by run id, acknowledged by all replicas. */
export async function publishEvent(producer: Producer, codec: Codec, topic: string, event: SyncEvent): Promise<void> {
  const value = await codec.encode(topic, "syncEvent", event);
  await producer.send({ topic, acks: -1, messages: [{ key: event.runId, value }] });
}
