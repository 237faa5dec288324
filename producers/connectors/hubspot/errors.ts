/**
 * How the HubSpot client reads and sorts failures: the API client's exceptions (status, body,
 * headers), the scopes a 403 names, the errors the connector raises (a ConfigError to fix the
 * config or the app's scopes; SourceUnavailableError subclasses for what may pass), and the
 * timeout and abort helpers its calls share. api.ts turns each failed answer into one of these
 * classes, and its retry policies (RETRY there) are chosen by class.
 */
import { ConfigError, SourceUnavailableError } from "../../../lib/errors.ts";

interface ApiExceptionLike {
  code: number;
  body: unknown;
  headers: Record<string, string>;
}

export function asApiException(e: unknown): ApiExceptionLike | null {
  if (e && typeof e === "object" && typeof (e as { code?: unknown }).code === "number" && "body" in e) return e as ApiExceptionLike;
  return null;
}

export function header(headers: Record<string, string> | undefined, name: string): string | undefined {
  if (!headers) return undefined;
  const lower = name.toLowerCase();
  for (const [k, v] of Object.entries(headers)) if (k.toLowerCase() === lower) return v;
  return undefined;
}

export function bodyField(body: unknown, key: string): string | undefined {
  if (body && typeof body === "object") {
    const v = (body as Record<string, unknown>)[key];
    return typeof v === "string" ? v : undefined;
  }
  return undefined;
}

/** The scopes a 403 MISSING_SCOPES body names (errors[].context.requiredGranularScopes). */
export function missingScopesOf(body: unknown): string[] {
  const out = new Set<string>();
  const errors = (body as { errors?: unknown } | null)?.errors;
  if (Array.isArray(errors)) {
    for (const e of errors) {
      const ctx = (e as { context?: Record<string, unknown> } | null)?.context ?? {};
      for (const key of ["requiredGranularScopes", "requiredScopes", "requiredAllScopes", "requiredAnyScopes"]) {
        const v = ctx[key];
        if (Array.isArray(v)) for (const s of v) if (typeof s === "string") out.add(s);
      }
    }
  }
  return [...out];
}

/** A 403 for missing scopes: names the scopes the app lacks and what to do. */
export class MissingScopesError extends ConfigError {
  readonly scopes: string[];
  constructor(message: string, scopes: string[]) {
    super(message);
    this.scopes = scopes;
  }
}

/** HubSpot answered an error that is not retried (4xx other than 401/429). */
export class HubSpotRequestError extends ConfigError {
  readonly status: number;
  readonly category: string | undefined;
  constructor(message: string, status: number, category: string | undefined) {
    super(message);
    this.status = status;
    this.category = category;
  }
}

export function abortError(signal: AbortSignal): Error {
  const reason = signal.reason as unknown;
  return reason instanceof Error ? reason : new Error("the read was aborted");
}

/** A call that got no answer in time: may pass. */
export class TimeoutError extends SourceUnavailableError {}

/**
 * HubSpot refused the access token (401). A fresh token may fix it (api.ts refreshes and retries,
 * at most twice); when it does not, the message is the one the run fails with.
 */
export class HubSpotUnauthorizedError extends ConfigError {
  /** The session the refused call used: a refresh is only needed if no newer one exists. */
  readonly generation: number;
  constructor(message: string, generation: number) {
    super(message);
    this.generation = generation;
  }
}

/** A 429: wait (Retry-After when HubSpot gives one, else backoff) and try again. */
export class HubSpotRateLimitError extends SourceUnavailableError {
  /** HubSpot's policyName (SECONDLY, TEN_SECONDLY_ROLLING, DAILY), or "" when it named none. */
  readonly policy: string;
  readonly retryAfterMs: number | undefined;
  constructor(message: string, policy: string, retryAfterMs: number | undefined, cause?: unknown) {
    super(message, cause);
    this.policy = policy;
    this.retryAfterMs = retryAfterMs;
  }
}

/** The DAILY limit, with a reset too far off to wait for: the run fails at once (not retried in the call). */
export class HubSpotDailyLimitError extends SourceUnavailableError {}

/** A 5xx, a network error, a timeout or an unparseable answer: retried with backoff. */
export class HubSpotUnavailableError extends SourceUnavailableError {}

export function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new TimeoutError(`${what} got no answer within ${ms} ms`)), ms);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

export function describeFailure(e: unknown): string {
  const ex = asApiException(e);
  if (ex) return `HTTP ${ex.code}${bodyField(ex.body, "message") ? `: ${bodyField(ex.body, "message")}` : ""}`;
  const err = e as Error;
  const cause = (err?.cause as Error | undefined)?.message;
  return `${err?.message ?? String(e)}${cause ? ` (${cause})` : ""}`.split("\n")[0]!;
}
