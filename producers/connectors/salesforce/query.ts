/**
 * How the Salesforce source runs one read: REST pages followed through nextRecordsUrl one by one (never
 * jsforce's autoFetch, which silently stops at maxFetch = 10,000), or Bulk API 2.0 result pages (bulk.ts)
 * when the table asks for it, when the read is expected to reach bulkThreshold (a full read whose
 * table's last full read did: no REST page is spent to learn it), when the first REST page's totalSize
 * reaches it, or when the query is too long for a URL. A REST query Salesforce gives up on
 * (QUERY_TIMEOUT) is run as a Bulk job instead (api: auto), or read in narrower SystemModstamp windows
 * (windows.ts: api: rest, or no Bulk job to be had). A Bulk job that fails before anything was read
 * from it (api: auto), or that Salesforce refuses at creation (api: auto and bulk), is read through
 * REST instead: in chunks of fields joined by Id when the query is too wide for one URL (chunks.ts),
 * which is also how api: rest reads such objects.
 * It is kept apart from source.ts, which decides what to read (full, incremental, deletes) and converts
 * the rows, because running a read is the same whatever it asks.
 */
import type { ReadOptions } from "../../connector.ts";
import { BulkJobFailedError, bulkQuery } from "./bulk.ts";
import type { SalesforceUnavailableError } from "./errors.ts";
import type { TablePlan } from "./plan.ts";
import { MAX_REST_URL, isQueryTimeout, restPage, type Batch, type QueryContext, type RestPage, type RestQuery, type Row } from "./rest-pages.ts";
import { queryPath, soqlOf, type ReadMemo } from "./soql.ts";
import { readRest } from "./windows.ts";

export { MAX_REST_URL, restPages, type Batch, type QueryContext, type RestQuery, type Row } from "./rest-pages.ts";
export { readRest } from "./windows.ts";

/** What a read knows beforehand, and what it learns for the next run (saved in the table's state). */
export interface ReadHint {
  /** Records the read is expected to find (the table's last full read), or null: the first REST page tells. */
  expected: number | null;
  memo: ReadMemo;
}

/**
 * Runs a read and yields batches of rows: REST pages (following nextRecordsUrl), or Bulk API 2.0
 * result pages when the table says so, when the read is expected to reach bulkThreshold, when the
 * first REST page's totalSize reaches it, or when the query is too long for a URL.
 */
export async function* executeQuery(
  ctx: QueryContext,
  plan: TablePlan,
  q: RestQuery,
  all: boolean,
  opts: ReadOptions,
  hint: ReadHint = { expected: null, memo: {} },
): AsyncGenerator<Batch> {
  const mode = plan.table.api;
  const field = plan.cursorField?.name;
  const first = queryPath(ctx.client.apiPath, soqlOf(plan.object, q.select, q.conds, q.ordered && field ? `ORDER BY ${field} ASC, Id ASC` : null), all);
  const tooLong = first.length > MAX_REST_URL;
  const expectedBulk = mode === "auto" && hint.expected !== null && hint.expected >= ctx.config.bulkThreshold;
  if (expectedBulk && !tooLong)
    ctx.log.info(
      { connector: ctx.config.id, table: plan.table.name, expected: hint.expected },
      "the table's last full read reached bulkThreshold: reading through a Bulk API 2.0 job",
    );
  let page: RestPage | null = null;
  let timedOut: SalesforceUnavailableError | undefined;
  if (mode !== "bulk" && !tooLong && !expectedBulk) {
    try {
      page = await restPage(ctx, first);
    } catch (e) {
      if (!isQueryTimeout(e)) throw e;
      timedOut = e;
      if (mode === "auto")
        ctx.log.warn(
          { connector: ctx.config.id, table: plan.table.name, err: e.message },
          "the REST query timed out: reading through a Bulk API 2.0 job instead (no such time limit)",
        );
    }
  }
  if (mode !== "rest" && (page === null || (mode === "auto" && !page.done && page.totalSize >= ctx.config.bulkThreshold))) {
    let yielded = false;
    try {
      for await (const b of bulkBatches(ctx, plan, soqlOf(plan.object, q.select, q.conds), all, opts, hint.memo)) {
        yielded = true;
        yield b;
      }
      return;
    } catch (e) {
      // api: bulk asked for Bulk: only a job never created (refused) is read through REST instead.
      if (!(e instanceof BulkJobFailedError) || yielded || (mode === "bulk" && !e.refused)) throw e;
      ctx.log.warn(
        { connector: ctx.config.id, table: plan.table.name, err: e.message },
        `the Bulk API 2.0 job ${e.refused ? "was refused" : "failed"}: reading through REST instead`,
      );
      page = null; // read through REST from the start
    }
  }
  if (page === null) {
    yield* readRest(ctx, plan, q, all, opts, { timedOut });
    return;
  }
  for (;;) {
    yield { rows: page.records, csv: false, ordered: q.ordered };
    if (page.done || !page.nextRecordsUrl || opts.signal.aborted) return;
    page = await restPage(ctx, page.nextRecordsUrl);
  }
}

async function* bulkBatches(ctx: QueryContext, plan: TablePlan, soql: string, all: boolean, opts: ReadOptions, memo: ReadMemo): AsyncGenerator<Batch> {
  const pages = bulkQuery(ctx.client, soql, {
    all,
    signal: opts.signal,
    heartbeat: opts.heartbeat,
    pollIntervalMs: ctx.config.bulkPollIntervalMs,
    timeoutMs: ctx.config.bulkTimeoutMs,
    expectedMs: memo.bulkMs,
    onComplete: (ms) => {
      memo.bulkMs = ms;
    },
  });
  // Columns by the SELECT's spelling (relationship columns such as Owner.Email included).
  const selected = new Map(plan.select.map((n) => [n.toLowerCase(), n] as const));
  for await (const p of pages) {
    const names = p.columns.map((c) => selected.get(c.toLowerCase()) ?? plan.byName.get(c.toLowerCase())?.name ?? c);
    const rows = p.rows.map((cells) => {
      const r: Row = {};
      for (let i = 0; i < names.length; i++) r[names[i]!] = cells[i] ?? "";
      return r;
    });
    yield { rows, csv: true, ordered: false };
  }
}
