/**
 * The errors of the Salesforce source, and how any failure of a call becomes one of them. Which
 * class is decided once, in `translateError`, from the HTTP status (a fact of the answer, not its
 * text); callers test the class, never a flag:
 *  - REQUEST_LIMIT_EXCEEDED (or usage past maxApiUsagePercent) → SalesforceLimitError: the run
 *    fails visibly; but the same code for the concurrent long-running request limit (its message
 *    names ConcurrentRequests: the one fact that tells the two apart) → SalesforceConcurrencyError,
 *    which clears in seconds: the client backs off and retries (client.ts RETRY.concurrency);
 *  - QUERY_TIMEOUT (Salesforce gave up on a query) → SalesforceUnavailableError: the reader tries
 *    Bulk API 2.0 instead (query.ts) or narrower SystemModstamp windows (windows.ts), else the run
 *    is retried;
 *  - revoked tokens, a bad client, a disabled API → ConfigError asking to fix or reconnect;
 *  - 5xx and network failures → SalesforceUnavailableError (retriable);
 *  - query errors and other 4xx → SalesforceApiError with Salesforce's code (not retriable).
 * It is kept apart from client.ts (the session: tokens, transport, budget) so that the error
 * policy reads in one place and the modules that only test an error's class import no client.
 */
import { ConfigError, EtlError, SourceRequestError, SourceUnavailableError } from "../../../lib/errors.ts";

export interface ApiUsage {
  used: number;
  limit: number;
}

/** One raw HTTP answer as jsforce's transport gives it. */
export interface HttpResponse {
  statusCode: number;
  headers: Record<string, string>;
  body: string;
}

/**
 * One of the project's error classes given the two facts Salesforce answered with: its errorCode
 * and the HTTP status. SalesforceApiError and SalesforceUnavailableError differ only in that base.
 */
function answeredError(Base: new (message: string, cause?: unknown) => EtlError) {
  return class extends Base {
    readonly errorCode: string;
    readonly status: number;
    constructor(status: number, errorCode: string, message: string, cause?: unknown) {
      super(message, cause);
      this.errorCode = errorCode;
      this.status = status;
    }
  };
}

/** An error Salesforce answered that trying again will not fix (a query error, a 4xx): carries Salesforce's errorCode. */
export class SalesforceApiError extends answeredError(SourceRequestError) {}

/** Salesforce did not answer, or answered 5xx (or its results were inconsistent): may pass, retriable. */
export class SalesforceUnavailableError extends answeredError(SourceUnavailableError) {}

/** The org's daily API budget is spent (or reached maxApiUsagePercent): the run must fail, visibly. */
export class SalesforceLimitError extends SourceUnavailableError {
  readonly usage: ApiUsage | null;
  constructor(message: string, usage: ApiUsage | null, cause?: unknown) {
    super(message, cause);
    this.usage = usage;
  }
}

/**
 * The org's concurrent long-running request limit ("ConcurrentRequests (Concurrent API Requests) Limit
 * exceeded", help article 000389067): not the daily budget; it clears once other requests finish.
 */
export class SalesforceConcurrencyError extends SourceUnavailableError {}

/** The message Salesforce gives REQUEST_LIMIT_EXCEEDED when the concurrent-request limit, not the daily budget, is hit. */
const CONCURRENT_LIMIT = /ConcurrentRequests|Concurrent API Requests/i;

/** What translateError needs to know of the client: the connector, where it was calling, the usage and the last refresh failure. */
interface TranslateContext {
  id: string;
  /** The instance (or login) URL the call went to. */
  where: string;
  usage: ApiUsage | null;
  lastRefreshError: Error | undefined;
}

/** Any error of a call (ours or jsforce's) as one of the project's kinds. */
export function translateError(e: unknown, res: HttpResponse | undefined, ctx: TranslateContext): Error {
  if (e instanceof EtlError) return e;
  const err = e as Error & { errorCode?: string; data?: unknown };
  const id = ctx.id;
  if (typeof err?.message === "string" && err.message.startsWith("Unable to refresh session due to:")) {
    return ctx.lastRefreshError instanceof EtlError
      ? ctx.lastRefreshError
      : new ConfigError(`connector ${id}: the Salesforce session could not be refreshed (${err.message}); reconnect with \`qobra-sync auth ${id}\``, e);
  }
  if (isNetworkError(e)) return new SourceUnavailableError(`connector ${id}: cannot reach Salesforce at ${ctx.where}: ${err.message}`, e);
  const status = res?.statusCode ?? statusOf(err);
  let code = err?.errorCode ?? err?.name ?? "ERROR";
  let message = err?.message ?? String(e);
  const parsed = parseErrorBody(res?.body ?? (code.startsWith("ERROR_HTTP_") ? message : undefined));
  if (parsed) {
    code = parsed.errorCode;
    message = parsed.message;
  }
  if (code === "REQUEST_LIMIT_EXCEEDED" && CONCURRENT_LIMIT.test(message)) {
    return new SalesforceConcurrencyError(
      `connector ${id}: the org's concurrent long-running request limit is reached (REQUEST_LIMIT_EXCEEDED: ${message}); other integrations hold it: waiting and retrying`,
      e,
    );
  }
  if (code === "QUERY_TIMEOUT") {
    return new SalesforceUnavailableError(status ?? 400, code, `connector ${id}: Salesforce answered QUERY_TIMEOUT: ${oneLine(message)}`, e);
  }
  if (code === "REQUEST_LIMIT_EXCEEDED") {
    const u = ctx.usage;
    return new SalesforceLimitError(
      `connector ${id}: the org's daily Salesforce API request limit is exhausted (REQUEST_LIMIT_EXCEEDED${u ? `, api-usage=${u.used}/${u.limit}` : ""}: ${message}); ` +
        "the run stopped before finishing and the synced data is stale until the budget recovers (rolling 24 h) or the limit is raised",
      ctx.usage,
      e,
    );
  }
  if (code === "INVALID_SESSION_ID") {
    return new ConfigError(`connector ${id}: Salesforce rejected the session (INVALID_SESSION_ID: ${message}); reconnect with \`qobra-sync auth ${id}\``, e);
  }
  if (code === "API_DISABLED_FOR_ORG" || code === "API_CURRENTLY_DISABLED") {
    return new ConfigError(`connector ${id}: the Salesforce API is not enabled for this org or user (${code}: ${message})`, e);
  }
  const http = status ?? (/^ERROR_HTTP_(\d{3})$/.exec(code)?.[1] ? Number(/^ERROR_HTTP_(\d{3})$/.exec(code)![1]) : 400);
  const text = `connector ${id}: Salesforce answered ${code}: ${oneLine(message)}`;
  return http >= 500 || http === 0 ? new SalesforceUnavailableError(http, code, text, e) : new SalesforceApiError(http, code, text, e);
}

function statusOf(err: unknown): number | undefined {
  const s = (err as { statusCode?: unknown; status?: unknown })?.statusCode ?? (err as { status?: unknown })?.status;
  return typeof s === "number" ? s : undefined;
}

export function isNetworkError(e: unknown): boolean {
  const code = (e as { code?: unknown })?.code ?? (e as { cause?: { code?: unknown } })?.cause?.code;
  if (typeof code === "string" && /^(ECONNREFUSED|ECONNRESET|ETIMEDOUT|ENOTFOUND|EAI_AGAIN|EPIPE|UND_ERR_\w+)$/.test(code)) return true;
  return /socket hang up|ECONNREFUSED|ECONNRESET|ETIMEDOUT|ENOTFOUND|fetch failed|other side closed/i.test(String((e as Error)?.message ?? ""));
}

/** Salesforce's error body `[{"message","errorCode"}]` (or a single object), when the text is one. */
function parseErrorBody(text: string | undefined): { errorCode: string; message: string } | null {
  if (!text) return null;
  try {
    const v = JSON.parse(text) as unknown;
    const first = Array.isArray(v) ? v[0] : v;
    if (first && typeof first === "object" && typeof (first as { errorCode?: unknown }).errorCode === "string") {
      return { errorCode: (first as { errorCode: string }).errorCode, message: String((first as { message?: unknown }).message ?? "") };
    }
  } catch {
    /* not JSON */
  }
  return null;
}

function oneLine(s: string): string {
  return s.replace(/\s*\n\s*/g, " ").trim();
}
