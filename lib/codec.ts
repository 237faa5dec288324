/**
 * Encoding of the messages the pipeline owns (schemas/*.avsc) through the schema registry, one
 * registration per topic, cached. Any Confluent-compatible client can read every topic.
 *
 * The hot paths run without a promise or a copy per record: the Avro type of a schema id is looked
 * up once (the registry client's, so the bytes are the same), values are written with their
 * Confluent framing (magic byte 0, 4-byte schema id) straight into a shared slab and handed out as
 * views of it, and decoding reads with the cached type. A value the type refuses is encoded again
 * through the registry client, whose error says which field is wrong.
 */
import avro from "avsc";
import type { Producer } from "kafkajs";
import { schemas, type SchemaName, type SyncEvent } from "../schemas/index.ts";
import { MappingError } from "./errors.ts";
import { maskSecrets } from "./redact.ts";
import { RawRecordReader, encodeRawRecord } from "./raw-codec.ts";
import { schemaIdOf, type Registry } from "./registry.ts";

/** Writes a value at `pos` of `buf`: the end, or minus the bytes missing (avsc's Type#encode contract). */
type Encoder = (value: unknown, buf: Buffer, pos: number) => number;

/** The parsing canonical form's fingerprint of raw-record.avsc: the ids whose bytes raw-codec.ts reads. */
const RAW_FINGERPRINT = avro.Type.forSchema(schemas.rawRecord).fingerprint().toString("hex");

/** Slabs the encoded messages are views of; a new one starts when the current one is full. */
const SLAB_BYTES = 256 * 1024;

export class Codec {
  private readonly registry: Registry;
  /** Encoders and decoders by schema id, once looked up (ids are immutable). */
  private readonly types = new Map<number, { encode: Encoder; decode: (body: Buffer) => unknown }>();
  private readonly rawReader = new RawRecordReader();
  private slab = Buffer.allocUnsafe(SLAB_BYTES);
  private slabPos = 0;

  constructor(registry: Registry) {
    this.registry = registry;
  }

  async encode(topic: string, schema: SchemaName, value: unknown): Promise<Buffer> {
    const id = await this.registry.register(topic, schemas[schema]);
    return this.encodeWithId(id, value);
  }

  /** Encodes many values of one schema for one topic (one registry lookup). */
  async encodeMany(topic: string, schema: SchemaName, values: unknown[]): Promise<Buffer[]> {
    const id = await this.registry.register(topic, schemas[schema]);
    const { encode } = this.types.get(id) ?? (await this.typeOf(id));
    const out: Buffer[] = new Array(values.length);
    for (let i = 0; i < values.length; i++) out[i] = this.framed(encode, id, values[i]) ?? (await this.registry.encode(id, values[i]));
    return out;
  }

  /** Encodes with an already registered schema id (mapped tables register their own schemas). */
  async encodeWithId(schemaId: number, value: unknown): Promise<Buffer> {
    const { encode } = this.types.get(schemaId) ?? (await this.typeOf(schemaId));
    return this.framed(encode, schemaId, value) ?? this.registry.encode(schemaId, value);
  }

  /**
   * Decodes a Confluent-framed message with its writer schema. Bytes that are not a framed message
   * or do not match their schema are a MappingError of kind "decode"; a schema the registry does not
   * give is the registry's error (Registry.decode).
   */
  async decode<T>(buffer: Buffer): Promise<T> {
    const id = schemaIdOf(buffer);
    const type = this.types.get(id);
    if (!type) {
      const value = await this.registry.decode<T>(buffer);
      await this.typeOf(id);
      return value;
    }
    try {
      return type.decode(buffer.subarray(5)) as T;
    } catch (e) {
      throw new MappingError("decode", `the message does not decode with its writer schema (id ${id}): ${(e as Error)?.message ?? String(e)}`, [], e);
    }
  }

  private async typeOf(id: number): Promise<{ encode: Encoder; decode: (body: Buffer) => unknown }> {
    const type = (await this.registry.client.getSchema(id)) as unknown as avro.Type;
    const raw = type.fingerprint().toString("hex") === RAW_FINGERPRINT;
    const coder = {
      encode: raw ? (encodeRawRecord as Encoder) : (value: unknown, buf: Buffer, pos: number) => type.encode(value, buf, pos),
      decode: raw ? (body: Buffer) => this.rawReader.read(body) : (body: Buffer) => type.fromBuffer(body),
    };
    this.types.set(id, coder);
    return coder;
  }

  /** The framed encoding of `value` as a view of the slab, or undefined when the type refuses it. */
  private framed(encode: Encoder, id: number, value: unknown): Buffer | undefined {
    for (let attempt = 0; ; attempt++) {
      const start = this.slabPos;
      if (start + 5 >= this.slab.length) {
        this.newSlab(SLAB_BYTES);
        continue;
      }
      let end: number;
      try {
        end = encode(value, this.slab, start + 5);
      } catch {
        return undefined;
      }
      if (end < 0) {
        // Not enough room: a fresh slab, at least twice the message's size.
        if (attempt > 2) return undefined;
        this.newSlab(Math.max(SLAB_BYTES, 2 * (this.slab.length - start - end)));
        continue;
      }
      this.slab[start] = 0;
      this.slab.writeInt32BE(id, start + 1);
      this.slabPos = end;
      return this.slab.subarray(start, end);
    }
  }

  private newSlab(bytes: number): void {
    this.slab = Buffer.allocUnsafe(bytes);
    this.slabPos = 0;
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
