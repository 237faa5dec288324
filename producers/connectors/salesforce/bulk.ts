/**
 * Bulk API 2.0 query jobs. The job is created and polled with jsforce's QueryJobV2, but the result
 * pages are fetched here: jsforce's `bulk2.query()` / `QueryJobV2.result()` pipes every page into
 * one stream that ends after the first, and dies with ERR_STREAM_WRITE_AFTER_END on a second page
 * (jsforce#1546, #1693). We follow `Sforce-Locator` until the literal string `null`, parse each
 * page's CSV ourselves (every value stays text: exact decimals), and check the row count against
 * the job's numberRecordsProcessed.
 */
import { parse as parseCsv } from "csv-parse/sync";
import { QueryJobV2 } from "jsforce/lib/api/bulk2.js";
import type { Connection } from "jsforce";
import { sleep } from "../../../lib/retry.ts";
import type { SalesforceClient } from "./client.ts";
import { SalesforceApiError, SalesforceUnavailableError } from "./errors.ts";

interface BulkPage {
  /** Column names of the page's header row (as in the SELECT). */
  columns: string[];
  rows: string[][];
}

export class BulkJobFailedError extends SalesforceApiError {
  readonly jobId: string | undefined;
  constructor(message: string, jobId?: string, cause?: unknown) {
    super(400, "BULK_JOB_FAILED", message, cause);
    this.jobId = jobId;
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
    info = (await job.open()) as unknown as JobInfo;
  } catch (e) {
    const err = client.translate(e);
    if (err instanceof SalesforceApiError && err.errorCode !== "REQUEST_LIMIT_EXCEEDED") {
      throw new BulkJobFailedError(`Salesforce refused the Bulk API 2.0 query job: ${err.message}`, undefined, err);
    }
    throw err;
  }
  const jobId = info.id;
  let finished = false;
  try {
    const deadline = Date.now() + opts.timeoutMs;
    for (let wait = Math.min(250, opts.pollIntervalMs); ; wait = Math.min(wait * 2, opts.pollIntervalMs)) {
      try {
        info = (await job.check()) as unknown as JobInfo;
      } catch (e) {
        throw client.translate(e);
      }
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
    const base = `${client.apiPath}/jobs/query/${jobId}/results`;
    for (;;) {
      if (opts.signal.aborted) return;
      const path = locator ? `${base}?locator=${encodeURIComponent(locator)}` : base;
      const res = await client.request("GET", path, { headers: { Accept: "text/csv" } });
      const page = parsePage(res.body);
      rows += page.rows.length;
      if (page.rows.length > 0) yield page;
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

/** One results page: a standalone CSV with its header row, every value a string. */
function parsePage(text: string): BulkPage {
  if (text.trim() === "") return { columns: [], rows: [] };
  const records = parseCsv(text, { bom: true, relax_quotes: false, skip_empty_lines: true }) as string[][];
  const [columns = [], ...rows] = records;
  return { columns, rows };
}
