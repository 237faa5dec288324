/**
 * Serialization through a Confluent-compatible schema registry (Confluent wire format: magic
 * byte 0, 4-byte schema id, Avro body). Works with Confluent's registry, Apicurio's ccompat API,
 * Redpanda and Karapace. Subjects follow TopicNameStrategy: `<topic>-value`.
 */
import { SchemaRegistry, SchemaType, COMPATIBILITY } from "@kafkajs/confluent-schema-registry";
import type avro from "avsc";
import { ConfigError, MappingError, RegistryUnavailableError, SchemaIncompatibleError } from "./errors.ts";
import { credentialsOf, describeEndpoint, withoutCredentials } from "./endpoint.ts";

interface RegistryConfig {
  url: string;
  username?: string | undefined;
  password?: string | undefined;
}

export class Registry {
  readonly client: SchemaRegistry;
  private readonly ids = new Map<string, Promise<number>>();
  private readonly url: string;
  /** Where the registry is, for messages: host and port only (the URL may carry basic-auth credentials). */
  private readonly where: string;
  private readonly auth: { username: string; password: string } | undefined;
  private readonly raw = new Map<number, avro.Schema>();

  constructor(cfg: RegistryConfig) {
    // Credentials written in the URL (https://user:password@host/…) become basic auth, unless
    // username/password say otherwise: the URL the clients see (and could print) carries none.
    const inUrl = credentialsOf(cfg.url);
    this.url = withoutCredentials(cfg.url);
    this.where = describeEndpoint(cfg.url);
    const auth = cfg.username
      ? { username: cfg.username, password: cfg.password ?? "" }
      : inUrl
        ? { username: inUrl.user, password: inUrl.password }
        : undefined;
    this.auth = auth;
    this.client = new SchemaRegistry({ host: this.url, ...(auth ? { auth } : {}) });
  }

  /**
   * Registers `schema` under `<topic>-value` with BACKWARD compatibility (idempotent) and returns
   * its id. An incompatible schema is refused with SchemaIncompatibleError.
   */
  register(topic: string, schema: avro.Schema): Promise<number> {
    // Single flight: concurrent registrations of one schema share one request (two racing
    // registrations of the same new subject can be refused by the registry).
    const subject = `${topic}-value`;
    const cacheKey = `${subject}\u0000${JSON.stringify(schema)}`;
    let pending = this.ids.get(cacheKey);
    if (!pending) {
      pending = this.registerOnce(subject, schema);
      this.ids.set(cacheKey, pending);
      pending.catch(() => this.ids.delete(cacheKey));
    }
    return pending;
  }

  private async registerOnce(subject: string, schema: avro.Schema, attempt = 1): Promise<number> {
    try {
      const { id } = await this.client.register({ type: SchemaType.AVRO, schema: JSON.stringify(schema) }, { subject, compatibility: COMPATIBILITY.BACKWARD });
      return id;
    } catch (e) {
      const status = (e as { status?: number }).status;
      const msg = (e as Error).message ?? String(e);
      // Two processes registering a new subject at once: both set its compatibility, and the
      // registry refuses the second (Apicurio: "A rule named 'COMPATIBILITY' already exists").
      // The subject exists now: registering again finds its configuration and is idempotent.
      if (/already exists/i.test(msg) && !/incompatib/i.test(msg) && attempt < 4) {
        await new Promise((r) => setTimeout(r, 50 * attempt + Math.floor(Math.random() * 50)));
        return this.registerOnce(subject, schema, attempt + 1);
      }
      if (status === 409 || /incompatib/i.test(msg)) {
        throw new SchemaIncompatibleError(
          `the schema registry refused the new schema of ${subject} as incompatible with the registered one (BACKWARD: fields may only be added, with defaults): ${msg}. ` +
            "A field's type cannot change in place: give the table a new name in the config (a new table version), " +
            "run `qobra-sync replay <connector> --table <new name>` to fill it from the raw topic, then move readers to it; " +
            "these records wait in the dead-letter topic (`qobra-sync dlq replay` after the change)",
          e,
        );
      }
      throw new RegistryUnavailableError(`schema registry at ${this.where} failed to register ${subject}: ${msg}`, e);
    }
  }

  async encode(id: number, value: unknown): Promise<Buffer> {
    return this.client.encode(id, value);
  }

  /**
   * Decodes a Confluent-framed message, sorting a failure by the step that failed, not by its
   * text: bytes that are not a framed message, or do not match their writer schema, are a
   * MappingError of kind "decode" (the mapper dead-letters them); a schema lookup the registry
   * does not answer is a RegistryUnavailableError (retriable: the batch is fetched again), or a
   * ConfigError when the registry refuses our credentials.
   */
  async decode<T>(buffer: Buffer): Promise<T> {
    const id = schemaIdOf(buffer);
    let schema: Awaited<ReturnType<SchemaRegistry["getSchema"]>>;
    try {
      schema = await this.client.getSchema(id);
    } catch (e) {
      throw this.lookupError(e, id);
    }
    try {
      // What the client's own decode does once it has the writer schema (we pass no reader schema).
      return schema.fromBuffer(buffer.subarray(5)) as T;
    } catch (e) {
      throw new MappingError("decode", `the message does not decode with its writer schema (id ${id}): ${(e as Error)?.message ?? String(e)}`, [], e);
    }
  }

  /**
   * A failed schema lookup. The client's HTTP layer (mappersmith) answers every failure with a
   * ResponseError carrying `status`: the registry's own status, or 400/408 for a request that got
   * no answer at all (refused, reset, timed out). Only 401/403 say something a retry cannot fix.
   * An unknown id (404) is retried too: our producers register every id they write, so a missing
   * one means the registry lost its storage, which dead-lettering every record would not mend.
   */
  private lookupError(e: unknown, id: number): Error {
    const status = (e as { status?: unknown } | null)?.status;
    const msg = (e as Error)?.message ?? String(e);
    if (status === 401 || status === 403) {
      return new ConfigError(`schema registry at ${this.where} refused our credentials (HTTP ${status}) looking up schema id ${id}: ${msg}`, e);
    }
    return new RegistryUnavailableError(`schema registry at ${this.where} could not give schema id ${id}: ${msg}`, e);
  }

  /**
   * The writer schema behind an id, as the registry stores it (with every attribute, such as
   * logicalType and qobra.type, which avsc's parsed types drop). Cached: ids are immutable.
   */
  async schemaJson(id: number): Promise<avro.Schema> {
    const cached = this.raw.get(id);
    if (cached) return cached;
    const headers: Record<string, string> = { accept: "application/vnd.schemaregistry.v1+json" };
    if (this.auth) headers.authorization = `Basic ${Buffer.from(`${this.auth.username}:${this.auth.password}`).toString("base64")}`;
    let res: Response;
    try {
      res = await fetch(`${this.url.replace(/\/$/, "")}/schemas/ids/${id}`, { headers });
    } catch (e) {
      throw new RegistryUnavailableError(`schema registry at ${this.where} is unreachable: ${(e as Error).message}`, e);
    }
    if (!res.ok) throw new RegistryUnavailableError(`schema registry at ${this.where} answered ${res.status} for schema id ${id}`);
    const body = (await res.json()) as { schema: string };
    const schema = JSON.parse(body.schema) as avro.Schema;
    this.raw.set(id, schema);
    return schema;
  }
}

/** Reads the schema id from a Confluent-framed message. */
export function schemaIdOf(buffer: Buffer): number {
  if (buffer.length < 5 || buffer[0] !== 0) throw new MappingError("decode", "not a Confluent-framed message (magic byte 0 expected)");
  return buffer.readInt32BE(1);
}
