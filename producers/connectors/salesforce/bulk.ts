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
}

interface BulkQueryOptions {
  all: boolean;
  signal: AbortSignal;
  heartbeat?: () => Promise<void>;
  pollIntervalMs: number;
  timeoutMs: number;
  /** Rows per results page (default BULK_MAX_RECORDS). */
  maxRecords?: number;
}

/** Runs one Bulk API 2.0 query job and yields its result pages. The job is deleted afterwards. */
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
  let finished = false;
  try {
    const deadline = Date.now() + opts.timeoutMs;
    for (let wait = Math.min(250, opts.pollIntervalMs); ; wait = Math.min(wait * 2, opts.pollIntervalMs)) {
      info = (await client.withRetry(() => job.check(), { signal: opts.signal })) as unknown as JobInfo;
      client.checkBudget();
      if (info.state === "JobComplete") break;
      if (info.state === "Failed") throw new BulkJobFailedError(`Bulk API 2.0 job ${jobId} failed: ${info.errorMessage ?? "no reason given"}`, jobId);
      if (info.state === "Aborted") throw new BulkJobFailedError(`Bulk API 2.0 job ${jobId} was aborted`, jobId);
      if (opts.signal.aborted) return;
      if (Date.now() + wait > deadline)
        throw new BulkJobFailedError(
          `Bulk API 2.0 job ${jobId} did not complete within ${opts.timeoutMs} ms (state ${info.state}); raise bulkTimeoutMs`,
          jobId,
        );
      await opts.heartbeat?.();
      await sleep(wait, opts.signal);
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
    // Free the job's stored results (best effort; a running job is aborted first).
    if (!finished && info!.state !== "JobComplete" && info!.state !== "Failed" && info!.state !== "Aborted") await job.abort().catch(() => undefined);
    await job.delete().catch(() => undefined);
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
