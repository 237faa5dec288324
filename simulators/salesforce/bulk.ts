// Bulk API 2.0 query jobs: create, poll (UploadComplete → InProgress → JobComplete | Failed), paged CSV results
// with Sforce-Locator ("null" on the last page), abort, delete, list.
//
// A job runs on its own, as Salesforce's do: it completes once its processing time has passed (real time,
// from its creation: `processingMs` plus `processingMsPer1000` per thousand records of the object it scans),
// whether or not anyone polls it, so one status poll after that time finds it JobComplete. The poll-count and
// simulated-clock knobs (`pollsInUploadComplete`, `pollsInProgress`, `minMsPerState`) can hold it back further.
// A results page holds at most `resultsPageSize` rows: `maxRecords` only makes pages smaller.

import { COLUMN_DELIMITERS, restDateTime } from "./format.ts";
import { IdFactory } from "./ids.ts";
import type { OrgModel } from "./model.ts";
import { compileQuery, csvHeader, csvRow, executeQuery, SfError } from "./soql.ts";
import type { CompiledQuery } from "./soql.ts";
import type { SimBulkSettings, SimRecord } from "./types.ts";

type JobState = "UploadComplete" | "InProgress" | "JobComplete" | "Failed" | "Aborted";

interface BulkJob {
  id: string;
  operation: "query" | "queryAll";
  object: string;
  soql: string;
  cq: CompiledQuery;
  createdById: string;
  createdDate: number;
  systemModstamp: number;
  state: JobState;
  apiVersion: string;
  lineEnding: "LF" | "CRLF";
  columnDelimiter: string;
  polls: number;
  stateSince: number;
  /** performance.now() at creation, and the real milliseconds the job takes to process. */
  startedAt: number;
  processingMs: number;
  completedAt: number | null;
  rows: SimRecord[] | null;
  errorMessage: string | null;
  failWith: string | null;
}

export interface BulkBehaviour {
  pollsInUploadComplete: number;
  pollsInProgress: number;
  minMsPerState: number;
  processingMs: number;
  processingMsPer1000: number;
  resultsPageSize: number;
  failQueriesMatching: RegExp | null;
  dailyQueryJobLimit: number;
}

export function bulkBehaviour(s: SimBulkSettings | undefined): BulkBehaviour {
  return {
    pollsInUploadComplete: s?.pollsInUploadComplete ?? 0,
    pollsInProgress: s?.pollsInProgress ?? 0,
    minMsPerState: s?.minMsPerState ?? 0,
    processingMs: s?.processingMs ?? 2000,
    processingMsPer1000: s?.processingMsPer1000 ?? 20,
    resultsPageSize: s?.resultsPageSize ?? 10_000,
    failQueriesMatching: s?.failQueriesMatching ? new RegExp(s.failQueriesMatching, "i") : null,
    dailyQueryJobLimit: s?.dailyQueryJobLimit ?? 10_000,
  };
}

const NOT_FOUND = () => new SfError(404, "NOT_FOUND", "The requested resource does not exist");

function jsonWithVersion(obj: Record<string, unknown>): string {
  // apiVersion is a JSON number written with its fractional digit, e.g. 62.0
  return JSON.stringify(obj).replace(/"apiVersion":"(\d+\.\d)"/, '"apiVersion":$1');
}

export class BulkJobs {
  readonly jobs = new Map<string, BulkJob>();
  behaviour: BulkBehaviour;
  private failNext: { count: number; message: string } = { count: 0, message: "" };
  private readonly ids = new IdFactory("Qb");
  private readonly org: OrgModel;
  private readonly clock: () => number;
  /** Timestamps of job creations (for the rolling 24 h DailyBulkV2QueryJobs figure). */
  readonly created: number[] = [];

  constructor(org: OrgModel, behaviour: BulkBehaviour, clock: () => number) {
    this.org = org;
    this.behaviour = behaviour;
    this.clock = clock;
  }

  failNextJobs(count: number, message: string): void {
    this.failNext = { count, message };
  }

  jobsInLast24h(): number {
    const since = this.clock() - 86_400_000;
    while (this.created.length > 0 && this.created[0]! < since) this.created.shift();
    return this.created.length;
  }

  create(body: unknown, userId: string, version: string): string {
    if (!body || typeof body !== "object") throw new SfError(400, "JSON_PARSER_ERROR", "The request body is not a JSON object");
    const b = body as Record<string, unknown>;
    const operation = b.operation;
    if (operation !== "query" && operation !== "queryAll") {
      throw new SfError(400, "INVALIDJOB", `Invalid job operation: ${String(operation)}. Query jobs accept query or queryAll`);
    }
    if (typeof b.query !== "string" || b.query.trim() === "") throw new SfError(400, "INVALIDJOB", "A query is required");
    if (b.contentType !== undefined && b.contentType !== "CSV") throw new SfError(400, "INVALIDJOB", `Unsupported content type: ${String(b.contentType)}`);
    const delim = (b.columnDelimiter as string | undefined) ?? "COMMA";
    if (!(delim in COLUMN_DELIMITERS)) throw new SfError(400, "INVALIDJOB", `Invalid column delimiter: ${delim}`);
    const le = (b.lineEnding as string | undefined) ?? "LF";
    if (le !== "LF" && le !== "CRLF") throw new SfError(400, "INVALIDJOB", `Invalid line ending: ${le}`);
    const cq = compileQuery(this.org, b.query, { now: this.clock() });
    const jobs = this.jobsInLast24h();
    if (jobs >= this.behaviour.dailyQueryJobLimit) {
      // Airbyte's recorded answer for the rolling 24 h job limit.
      throw new SfError(400, "LIMIT_EXCEEDED", `Max bulk v2 query jobs (${this.behaviour.dailyQueryJobLimit}) per 24 hrs has been reached (${jobs + 1})`);
    }
    if (cq.bulkUnsupported) throw new SfError(400, "INVALIDJOB", `Bulk API 2.0 query jobs do not support ${cq.bulkUnsupported}`);
    const now = this.clock();
    const job: BulkJob = {
      id: this.ids.next("750"),
      operation,
      object: cq.model.name,
      soql: b.query,
      cq,
      createdById: userId,
      createdDate: now,
      systemModstamp: now,
      state: "UploadComplete",
      apiVersion: version,
      lineEnding: le,
      columnDelimiter: delim,
      polls: 0,
      stateSince: now,
      startedAt: performance.now(),
      processingMs: this.behaviour.processingMs + (this.behaviour.processingMsPer1000 * cq.model.records.size) / 1000,
      completedAt: null,
      rows: null,
      errorMessage: null,
      failWith: null,
    };
    if (this.failNext.count > 0) {
      this.failNext.count--;
      job.failWith = this.failNext.message;
    } else if (this.behaviour.failQueriesMatching?.test(job.soql)) {
      job.failWith = "Simulated failure (failQueriesMatching)";
    }
    this.jobs.set(job.id, job);
    this.created.push(now);
    return this.infoJson(job, false);
  }

  /** The job, moved along to where its time (and the knobs) put it. */
  get(id: string): BulkJob {
    const job = this.jobs.get(id);
    if (!job) throw NOT_FOUND();
    this.advance(job);
    return job;
  }

  private transition(job: BulkJob, state: JobState): void {
    const now = this.clock();
    job.state = state;
    job.polls = 0;
    job.stateSince = now;
    job.systemModstamp = now;
  }

  /** One status poll (counted against the poll knobs). */
  poll(id: string): string {
    const job = this.jobs.get(id);
    if (!job) throw NOT_FOUND();
    job.polls++;
    this.advance(job);
    return this.infoJson(job, true);
  }

  /**
   * Moves a running job along: UploadComplete → InProgress after a quarter of its processing time,
   * InProgress → JobComplete (or Failed) once all of it has passed, each also held until the poll and
   * simulated-clock knobs are met.
   */
  private advance(job: BulkJob): void {
    const b = this.behaviour;
    for (;;) {
      const elapsed = this.clock() - job.stateSince;
      const ran = performance.now() - job.startedAt;
      if (job.state === "UploadComplete" && job.polls >= b.pollsInUploadComplete && elapsed >= b.minMsPerState && ran >= job.processingMs / 4) {
        this.transition(job, "InProgress");
        continue;
      }
      if (job.state === "InProgress" && job.polls >= b.pollsInProgress && elapsed >= b.minMsPerState && ran >= job.processingMs) this.complete(job);
      return;
    }
  }

  private complete(job: BulkJob): void {
    if (job.failWith !== null) {
      job.errorMessage = job.failWith;
      this.transition(job, "Failed");
      return;
    }
    job.rows = executeQuery(job.cq, job.operation === "queryAll");
    job.completedAt = this.clock();
    this.transition(job, "JobComplete");
  }

  /** Test control: fail a job now (if it has not finished). */
  fail(id: string, message: string): boolean {
    const job = this.jobs.get(id);
    if (!job || job.state === "JobComplete" || job.state === "Aborted" || job.state === "Failed") return false;
    job.errorMessage = message;
    this.transition(job, "Failed");
    return true;
  }

  abort(id: string, body: unknown): string {
    const job = this.get(id);
    const state = (body as Record<string, unknown> | null)?.state;
    if (state !== "Aborted") throw new SfError(400, "INVALIDJOBSTATE", `Invalid state: ${String(state)}. Only Aborted can be set on a query job`);
    if (job.state !== "UploadComplete" && job.state !== "InProgress") {
      throw new SfError(400, "INVALIDJOBSTATE", `Job ${job.id} is ${job.state} and can no longer be aborted`);
    }
    this.transition(job, "Aborted");
    return this.infoJson(job, false);
  }

  delete(id: string): void {
    const job = this.get(id);
    // Salesforce deletes jobs in UploadComplete, JobComplete, Aborted or Failed state
    if (job.state === "InProgress") {
      throw new SfError(400, "INVALIDJOBSTATE", `Job ${job.id} is InProgress: abort it before deleting it`);
    }
    this.jobs.delete(id);
  }

  list(): string {
    const records = [...this.jobs.values()].map((j) => {
      this.advance(j);
      return this.infoJson(j, false);
    });
    return `{"done":true,"records":[${records.join(",")}],"nextRecordsUrl":null}`;
  }

  results(id: string, version: string, locator: string | null, maxRecordsRaw: string | null): { csv: string; locator: string; count: number } {
    const job = this.get(id);
    if (job.apiVersion !== version) {
      throw new SfError(409, "INVALIDVERSION", `Job ${job.id} was created with API version ${job.apiVersion}; get its results with the same version`);
    }
    if (job.state !== "JobComplete" || !job.rows) {
      throw new SfError(412, "JOB_NOT_COMPLETE", `Job ${job.id} is ${job.state}: results are available once it is JobComplete`);
    }
    let offset = 0;
    if (locator !== null && locator !== "") {
      const decoded = Buffer.from(locator, "base64url").toString("utf8").split(":");
      const n = Number(decoded[2]);
      if (decoded.length !== 3 || decoded[1] !== job.id || !Number.isInteger(n) || n < 0 || n > job.rows.length) {
        throw new SfError(400, "INVALIDLOCATOR", `Invalid locator: ${locator}`);
      }
      offset = n;
    }
    // The server's page is its limit: maxRecords splits results into smaller pages, never larger ones.
    let pageSize = this.behaviour.resultsPageSize;
    if (maxRecordsRaw !== null) {
      const m = Number(maxRecordsRaw);
      if (!Number.isInteger(m) || m <= 0) throw new SfError(400, "INVALID_PARAMETER", `maxRecords must be a positive integer: ${maxRecordsRaw}`);
      pageSize = Math.min(m, pageSize);
    }
    const end = Math.min(job.rows.length, offset + pageSize);
    const delim = COLUMN_DELIMITERS[job.columnDelimiter] ?? ",";
    const eol = job.lineEnding === "CRLF" ? "\r\n" : "\n";
    const lines = [csvHeader(job.cq, delim)];
    for (let k = offset; k < end; k++) lines.push(csvRow(job.cq, job.rows[k]!, delim));
    const next = end < job.rows.length ? Buffer.from(`${Math.floor(end / pageSize)}:${job.id}:${end}`).toString("base64url") : "null";
    return { csv: lines.join(eol) + eol, locator: next, count: end - offset };
  }

  private info(job: BulkJob, detailed: boolean): Record<string, unknown> {
    const o: Record<string, unknown> = {
      id: job.id,
      operation: job.operation,
      object: job.object,
      createdById: job.createdById,
      createdDate: restDateTime(job.createdDate),
      systemModstamp: restDateTime(job.systemModstamp),
      state: job.state,
      concurrencyMode: "Parallel",
      contentType: "CSV",
      apiVersion: job.apiVersion,
    };
    if (detailed) o.jobType = "V2Query";
    o.lineEnding = job.lineEnding;
    o.columnDelimiter = job.columnDelimiter;
    if (detailed) {
      o.numberRecordsProcessed = job.rows?.length ?? 0;
      o.retries = 0;
      o.totalProcessingTime = job.completedAt !== null ? Math.round(job.processingMs) : 0;
      o.isPkChunkingSupported = true;
      if (job.errorMessage !== null) o.errorMessage = job.errorMessage;
    }
    return o;
  }

  infoJson(job: BulkJob, detailed: boolean): string {
    return jsonWithVersion(this.info(job, detailed));
  }
}
