/**
 * Every pipeline error is an EtlError subclass, and its class says whether to try again
 * (`retriable`), never its message text. lib/retry.ts reads it; the producer worker retries a
 * retriable run failure before it fails the run (and its event says which it was).
 *
 *  - ConfigError: bad configuration or credentials; never retried; the message says what to fix.
 *  - SourceUnavailableError / SinkUnavailableError / RegistryUnavailableError: infrastructure
 *    that may come back (refused connections, 5xx, timeouts, restarts); retried with backoff.
 *  - MappingError: one record cannot be mapped; it goes to the mapper's dead-letter topic.
 *  - SinkDataError: one row PostgreSQL refuses; it goes to the sink's dead-letter topic.
 *  - SchemaIncompatibleError: a change the registry or the sink table refuses; needs a person.
 *  - TableSkippedError: one table cannot be read (a missing optional permission); the others go on.
 *  - RunFailedError: a run ended without its result (timeouts waiting for tasks or a replay).
 *  - StackError: the local stack could not start.
 * Third-party errors (pg, kafkajs, HTTP clients) are turned into these where they are caught.
 * EtlError itself is abstract: every error names its kind by its class.
 */
import type { DeadLetterIssue } from "../schemas/index.ts";

export type ErrorCode =
  | "CONFIG"
  | "SOURCE_UNAVAILABLE"
  | "SINK_UNAVAILABLE"
  | "REGISTRY_UNAVAILABLE"
  | "KAFKA_UNAVAILABLE"
  | "SOURCE_DATA"
  | "MAPPING"
  | "SINK_DATA"
  | "SCHEMA_INCOMPATIBLE"
  | "RUN_FAILED"
  | "STACK";

export abstract class EtlError extends Error {
  readonly code: ErrorCode;
  readonly retriable: boolean;
  constructor(code: ErrorCode, message: string, opts: { retriable?: boolean; cause?: unknown } = {}) {
    super(message, { cause: opts.cause });
    this.name = new.target.name;
    this.code = code;
    this.retriable = opts.retriable ?? false;
  }
}

export class ConfigError extends EtlError {
  constructor(message: string, cause?: unknown) {
    super("CONFIG", message, { cause });
  }
}
export class SourceUnavailableError extends EtlError {
  constructor(message: string, cause?: unknown) {
    super("SOURCE_UNAVAILABLE", message, { retriable: true, cause });
  }
}
/** A source answered with an error that trying again will not fix (a 4xx other than auth and limits). */
export class SourceRequestError extends EtlError {
  constructor(message: string, cause?: unknown) {
    super("SOURCE_DATA", message, { cause });
  }
}
export class SinkUnavailableError extends EtlError {
  constructor(message: string, cause?: unknown) {
    super("SINK_UNAVAILABLE", message, { retriable: true, cause });
  }
}
export class RegistryUnavailableError extends EtlError {
  constructor(message: string, cause?: unknown) {
    super("REGISTRY_UNAVAILABLE", message, { retriable: true, cause });
  }
}
export class SchemaIncompatibleError extends EtlError {
  constructor(message: string, cause?: unknown) {
    super("SCHEMA_INCOMPATIBLE", message, { cause });
  }
}
/** One record the mapper cannot map (`kind` names the rule, `issues` the fields): dead-lettered. */
export class MappingError extends EtlError {
  readonly kind: string;
  readonly issues: DeadLetterIssue[];
  constructor(kind: string, message: string, issues: DeadLetterIssue[] = [], cause?: unknown) {
    super("MAPPING", message, { cause });
    this.kind = kind;
    this.issues = issues;
  }
}
/** One row the sink database refuses (a constraint, a value out of range): dead-lettered. */
export class SinkDataError extends EtlError {
  constructor(message: string, cause?: unknown) {
    super("SINK_DATA", message, { cause });
  }
}
/**
 * Thrown by a connector's `read` when a table cannot be read for a reason that must not stop the
 * others (a missing OPTIONAL permission, such as HubSpot's custom-object or e-commerce scopes):
 * the worker reports the table as skipped with this message, infers no deletes for it, and goes on.
 */
export class TableSkippedError extends EtlError {
  constructor(message: string, cause?: unknown) {
    super("SOURCE_DATA", message, { cause });
  }
}
export class RunFailedError extends EtlError {
  constructor(message: string, cause?: unknown) {
    super("RUN_FAILED", message, { cause });
  }
}
export class StackError extends EtlError {
  constructor(message: string, cause?: unknown) {
    super("STACK", message, { cause });
  }
}
/** The Kafka cluster did not answer (a broker restart, a leader election that outlasted the client's own retries). */
export class KafkaUnavailableError extends EtlError {
  constructor(message: string, cause?: unknown) {
    super("KAFKA_UNAVAILABLE", message, { retriable: true, cause });
  }
}

/** PostgreSQL errors sorted by SQLSTATE class: 08 connection and 57P0x shutdown are retriable. */
export function isRetriablePgError(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code !== "string") {
    const msg = String((err as Error | null)?.message ?? "");
    return /ECONNREFUSED|ECONNRESET|ETIMEDOUT|Connection terminated|timeout/i.test(msg);
  }
  return (
    code.startsWith("08") ||
    code.startsWith("57P") ||
    code === "53300" ||
    code === "40001" ||
    code === "40P01" ||
    code === "ECONNREFUSED" ||
    code === "ECONNRESET"
  );
}

/** One sentence for a human: the message, plus the cause's message where it adds something. */
export function describeError(err: unknown): string {
  if (!(err instanceof Error)) return String(err);
  const cause = err.cause instanceof Error ? err.cause.message : undefined;
  return cause && !err.message.includes(cause) ? `${err.message} (${cause})` : err.message;
}
