/**
 * Bulk API 2.0 query jobs. The job is created and polled with jsforce's QueryJobV2, but the result
 * pages are fetched here: jsforce's `bulk2.query()` / `QueryJobV2.result()` pipes every page into
 * one stream that ends after the first, and dies with ERR_STREAM_WRITE_AFTER_END on a second page
 * (jsforce#1546, #1693). We follow `Sforce-Locator` until the literal string `null`, asking for
 * `maxRecords` rows per page (so the page size is ours, not the server's), parse each page's CSV as
 * it streams in (csv-parse's stream parser: every value stays text, exact decimals; rows are handed
 * on in batches, never a whole page held), and check the row count against the job's
 * numberRecordsProcessed. Creation and polls wait out the concurrent-request limit
 * (client.withRetry); a job Salesforce refuses at creation is a BulkJobFailedError with `refused`.
 *
 * Every call counts against the org's daily API budget, so a job costs what the API requires and no
 * more: its creation, its status polls (the results answer only once the job is JobComplete), and
 * its result pages. The first poll waits about as long as the table's last job took (`expectedMs`,
 * from the saved state), so a job that runs as long as the last one costs one poll; without that, or
 * when the job is not done yet, the waits double from FIRST_POLL_MS up to `pollIntervalMs`. A job
 * read to the end is not deleted (Salesforce deletes terminal jobs after 7 days; a DELETE would be
 * one more call per run); one abandoned part-way is aborted while it runs, or deleted once complete.
 */
import { pipeline } from "node:stream/promises";
import { parse as csvParser } from "csv-parse";
import { QueryJobV2 } from "jsforce/lib/api/bulk2.js";
import type { Connection } from "jsforce";
import { sleep } from "../../../lib/retry.ts";
import type { SalesforceClient } from "./client.ts";
import { streamGet } from "./results-stream.ts";
import { SalesforceApiError, SalesforceUnavailableError } from "./errors.ts";

/** Rows asked for per results page (the `maxRecords` parameter). */
export const BULK_MAX_RECORDS = 10_000;
/** Rows handed on at a time while a page streams in. */
export const BULK_BATCH_ROWS = 2_000;
/** The first status poll of a job whose duration nothing tells (at most pollIntervalMs); later waits double. */
export const FIRST_POLL_MS = 500;
/** The first poll waits this much longer than the table's last job took (jobs vary). */
const EXPECTED_MARGIN = 1.1;
/** Longest sleep without a heartbeat while a job runs. */
const HEARTBEAT_MS = 5000;

interface BulkPage {
  /** Column names of the page's header row (as in the SELECT). */
  columns: string[];
  rows: string[][];
}

export class BulkJobFailedError extends SalesforceApiError {
  readonly jobId: string | undefined;
  /** Salesforce refused to create the job (nothing ran). */
  readonly refused: boolean;
  constructor(message: string, jobId?: string, cause?: unknown) {
    super(400, "BULK_JOB_FAILED", message, cause);
    this.jobId = jobId;
    this.refused = jobId === undefined;
  }
}

interface JobInfo {
  id: string;
  state: string;
  errorMessage?: string | null;
  numberRecordsProcessed?: number;
  totalProcessingTime?: number;
}

interface BulkQueryOptions {
  all: boolean;
  signal: AbortSignal;
  heartbeat?: () => Promise<void>;
  pollIntervalMs: number;
  timeoutMs: number;
  /** Rows per results page (default BULK_MAX_RECORDS). */
  maxRecords?: number;
  /** How long the table's last job took (ms): the first poll waits about that long. */
  expectedMs?: number;
  /** Called once the job is complete, with how long it took (ms), for the next run's expectedMs. */
  onComplete?: (ms: number) => void;
}

/** Runs one Bulk API 2.0 query job and yields its result pages (the job is left to Salesforce once read to the end). */
export async function* bulkQuery(client: SalesforceClient, soql: string, opts: BulkQueryOptions): AsyncGenerator<BulkPage> {
  const conn: Connection = await client.connect();
  const job = new QueryJobV2(conn, {
    bodyParams: { query: soql, operation: opts.all ? "queryAll" : "query" },
    pollingOptions: { pollInterval: opts.pollIntervalMs, pollTimeout: opts.timeoutMs },
  });
  let info: JobInfo;
  try {
    info = (await client.withRetry(() => job.open())) as unknown as JobInfo;
  } catch (e) {
    const err = client.translate(e);
    if (err instanceof SalesforceApiError) {
      throw new BulkJobFailedError(`Salesforce refused the Bulk API 2.0 query job: ${err.message}`, undefined, err);
    }
    throw err;
  }
  const jobId = info.id;
  const created = Date.now();
  let finished = false;
  try {
    const deadline = created + opts.timeoutMs;
    let wait = opts.expectedMs && opts.expectedMs > 0 ? Math.ceil(opts.expectedMs * EXPECTED_MARGIN) : Math.min(FIRST_POLL_MS, opts.pollIntervalMs);
    // When the job is known not to have been complete: its duration lies between that poll and the one that found it complete.
    let notBefore = 0;
    for (;;) {
      const left = deadline - Date.now();
      if (left <= 0)
        throw new BulkJobFailedError(
          `Bulk API 2.0 job ${jobId} did not complete within ${opts.timeoutMs} ms (state ${info.state}); raise bulkTimeoutMs`,
          jobId,
        );
      await pause(Math.min(wait, left), opts);
      if (opts.signal.aborted) return;
      info = (await client.withRetry(() => job.check(), { signal: opts.signal })) as unknown as JobInfo;
      client.checkBudget();
      const took = Date.now() - created;
      if (info.state === "JobComplete") {
        // Salesforce's own processing time, kept within what the polls saw.
        const reported = typeof info.totalProcessingTime === "number" && info.totalProcessingTime > 0 ? info.totalProcessingTime : took;
        opts.onComplete?.(Math.min(took, Math.max(notBefore, reported)));
        break;
      }
      if (info.state === "Failed") throw new BulkJobFailedError(`Bulk API 2.0 job ${jobId} failed: ${info.errorMessage ?? "no reason given"}`, jobId);
      if (info.state === "Aborted") throw new BulkJobFailedError(`Bulk API 2.0 job ${jobId} was aborted`, jobId);
      notBefore = took;
      wait = Math.min(wait * 2, opts.pollIntervalMs);
    }
    const expected = typeof info.numberRecordsProcessed === "number" ? info.numberRecordsProcessed : null;
    let rows = 0;
    let locator: string | undefined;
    const base = `${client.apiPath}/jobs/query/${jobId}/results?maxRecords=${opts.maxRecords ?? BULK_MAX_RECORDS}`;
    for (;;) {
      if (opts.signal.aborted) return;
      const path = locator ? `${base}&locator=${encodeURIComponent(locator)}` : base;
      const res = await streamGet(client, path, { Accept: "text/csv" }, opts.signal);
      for await (const page of streamPage(res.body, client)) {
        rows += page.rows.length;
        yield page;
        if (opts.signal.aborted) {
          res.body.destroy();
          return;
        }
      }
      const next = res.headers["sforce-locator"];
      if (next === undefined || next === "" || next === "null") {
        if (next === undefined && expected !== null && rows < expected) {
          throw new SalesforceUnavailableError(
            502,
            "BULK_NO_LOCATOR",
            `Bulk API 2.0 job ${jobId}: a results page came without Sforce-Locator after ${rows} of ${expected} rows`,
          );
        }
        break;
      }
      if (next === locator)
        throw new SalesforceUnavailableError(502, "BULK_LOCATOR_LOOP", `Bulk API 2.0 job ${jobId}: the results locator did not advance (${next})`);
      locator = next;
    }
    if (expected !== null && rows !== expected) {
      throw new SalesforceUnavailableError(
        502,
        "BULK_COUNT_MISMATCH",
        `Bulk API 2.0 job ${jobId}: read ${rows} rows but the job processed ${expected}; the run is retried rather than trusted`,
      );
    }
    finished = true;
  } finally {
    // Abandoned part-way (an error, the run stopped): a running job is aborted, a complete one's results deleted
    // (best effort). A failed job is left for the org's admins to see; Salesforce deletes it after 7 days.
    if (!finished && (info!.state === "UploadComplete" || info!.state === "InProgress")) await job.abort().catch(() => undefined);
    else if (!finished && info!.state === "JobComplete") await job.delete().catch(() => undefined);
  }
}

/** Sleeps `ms` (stopped by the run's signal), sending heartbeats at least every HEARTBEAT_MS. */
async function pause(ms: number, opts: BulkQueryOptions): Promise<void> {
  const until = Date.now() + ms;
  for (let left = ms; left > 0 && !opts.signal.aborted; left = until - Date.now()) {
    await opts.heartbeat?.();
    await sleep(Math.min(left, HEARTBEAT_MS), opts.signal);
  }
}

/**
 * One results page (a standalone CSV with its header row) parsed as it arrives: batches of at most
 * BULK_BATCH_ROWS rows, every value a string. The body is destroyed when the reader stops early.
 */
export async function* streamPage(body: NodeJS.ReadableStream & { destroy(): void }, client?: SalesforceClient): AsyncGenerator<BulkPage> {
  const parser = csvParser({ bom: true, relax_quotes: false, skip_empty_lines: true });
  const piping = pipeline(body, parser).catch(() => undefined); // errors surface through the iteration below
  let columns: string[] | null = null;
  let batch: string[][] = [];
  try {
    for await (const record of parser as AsyncIterable<string[]>) {
      if (columns === null) {
        columns = record;
        continue;
      }
      batch.push(record);
      if (batch.length >= BULK_BATCH_ROWS) {
        yield { columns, rows: batch };
        batch = [];
      }
    }
  } catch (e) {
    throw client ? client.translate(e) : e;
  } finally {
    body.destroy();
    await piping;
  }
  if (columns !== null && batch.length > 0) yield { columns, rows: batch };
}
