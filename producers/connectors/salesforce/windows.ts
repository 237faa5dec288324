/**
 * REST reads that survive QUERY_TIMEOUT: Salesforce gives up on a query that runs over about 120 s in its
 * database, mostly a non-selective filter on a large object. A condition on SystemModstamp, which
 * Salesforce indexes, makes a query selective again once it spans few enough records, so a read that
 * timed out is read again in narrower windows of the cursor field (SystemModstamp, else LastModifiedDate):
 *
 *  - the windows are consecutive [a, b), [b, c), … in whole seconds, the first open below (the read's own
 *    lower bound, the incremental cursor minus its lookback, stays in the conditions untouched) and the
 *    last open above: together they are exactly the original read, each record in one window only;
 *  - they are read in ascending order, each REST query ordered by (cursor field, Id) when the read is,
 *    so the pages keep the order of the original read and each page's (timestamp, Id) state is as valid
 *    as before: every record before it was read. A record changed during the run moves to a later
 *    window and is read again there (its newer version), as a later run would; it is never skipped;
 *  - a window that times out is halved; after a window succeeds the next one is twice as wide, but not
 *    as wide as one that timed out until WIDEN_AFTER windows in a row succeeded (density changes over
 *    time), so a dense stretch does not cost a timeout per window;
 *  - a window of one second (a single instant: SOQL dateTime literals are whole seconds) that still times
 *    out cannot be narrowed: the run fails as retriable, naming the object and suggesting `api: bulk` or
 *    a more selective `where`. So does a timeout after a window's first page (nothing of it can be
 *    read again without repeating what was handed on) and one on an object without a cursor field.
 *
 * Each window is one REST query, or, for an object too wide for one URL, chunked queries joined by Id
 * (chunks.ts).
 */
import type { ReadOptions } from "../../connector.ts";
import { SalesforceUnavailableError } from "./errors.ts";
import { joinedRows, planChunks } from "./chunks.ts";
import type { TablePlan } from "./plan.ts";
import { isQueryTimeout, restPage, type Batch, type QueryContext, type RestQuery } from "./rest-pages.ts";
import { queryPath, soqlDateTime, soqlOf, windowConds } from "./soql.ts";

const SECOND = 1000;
/** Windows in a row that must succeed before one as wide as a window that timed out is tried again. */
export const WIDEN_AFTER = 4;

const second = (ms: number) => Math.floor(ms / SECOND) * SECOND;

interface ReadRestOptions {
  /** The whole read already timed out (query.ts tried it), with this error: start with narrower windows. */
  timedOut?: SalesforceUnavailableError;
}

/** The query read through REST (chunked when too wide for a URL), in narrower windows whenever Salesforce gives up on it. */
export async function* readRest(
  ctx: QueryContext,
  plan: TablePlan,
  q: RestQuery,
  all: boolean,
  opts: ReadOptions,
  o: ReadRestOptions = {},
): AsyncGenerator<Batch> {
  const chunks = planChunks(ctx, plan, q, all);
  const field = plan.cursorField?.name ?? null;
  const window = (from: number | null, to: number | null): AsyncGenerator<Batch> => {
    const conds = field ? [...q.conds, ...windowConds(field, from, to)] : q.conds;
    return chunks.length > 1 ? joined(ctx, plan, chunks, conds, all, opts.signal) : single(ctx, plan, q, conds, all, opts.signal);
  };
  // The range narrower windows divide: from the read's own lower bound (else the epoch) to the run's
  // start (the last window is open above, so what changed since, or a clock ahead of ours, is read too).
  let lo = second(q.fromMs ?? 0);
  const end = Math.max(second(opts.runStartedAt) + SECOND, lo + SECOND);
  let width = end - lo;
  let ceiling = Number.POSITIVE_INFINITY;
  let streak = 0;
  let first = true;
  let timeouts = 0;
  const narrow = (e: SalesforceUnavailableError): void => {
    if (!field) throw failure(ctx, plan, `${plan.object} has neither SystemModstamp nor LastModifiedDate to read it in narrower windows`, e);
    if (width <= SECOND) throw failure(ctx, plan, `even over a single second of ${field} (from ${soqlDateTime(lo)}), which cannot be narrowed further`, e);
    if (timeouts++ === 0)
      ctx.log.warn({ connector: ctx.config.id, table: plan.table.name, err: e.message }, `the REST query timed out: reading in narrower windows of ${field}`);
    ceiling = width;
    streak = 0;
    width = Math.max(SECOND, second(width / 2));
  };
  if (o.timedOut) narrow(o.timedOut);
  for (;;) {
    const hi = lo + width;
    const last = hi >= end;
    let handedOn = false;
    try {
      for await (const b of window(first ? null : lo, last ? null : hi)) {
        handedOn = true;
        yield b;
      }
    } catch (e) {
      if (!isQueryTimeout(e)) throw e;
      if (handedOn) throw failure(ctx, plan, "after part of a window was read (a later page)", e);
      narrow(e);
      continue;
    }
    if (last || opts.signal.aborted) {
      if (timeouts > 0) ctx.log.info({ connector: ctx.config.id, table: plan.table.name, timeouts }, "read in narrower windows after QUERY_TIMEOUT");
      return;
    }
    lo = hi;
    first = false;
    streak++;
    if (width * 2 < ceiling) width *= 2;
    else if (streak >= WIDEN_AFTER) {
      ceiling = Number.POSITIVE_INFINITY;
      width *= 2;
    }
  }
}

function failure(ctx: QueryContext, plan: TablePlan, where: string, cause: SalesforceUnavailableError): SalesforceUnavailableError {
  return new SalesforceUnavailableError(
    cause.status,
    "QUERY_TIMEOUT",
    `connector ${ctx.config.id}, table ${plan.table.name}: Salesforce gave up on the REST query of ${plan.object} (QUERY_TIMEOUT) ${where}; ` +
      "set the table's api: bulk (Bulk API 2.0 jobs have no such time limit), or make its where more selective (on an indexed field)",
    cause,
  );
}

/** One window as one REST query, its pages followed through nextRecordsUrl. */
async function* single(ctx: QueryContext, plan: TablePlan, q: RestQuery, conds: string[], all: boolean, signal: AbortSignal): AsyncGenerator<Batch> {
  const field = plan.cursorField?.name;
  const order = q.ordered && field ? `ORDER BY ${field} ASC, Id ASC` : null;
  let page = await restPage(ctx, queryPath(ctx.client.apiPath, soqlOf(plan.object, q.select, conds, order), all));
  for (;;) {
    yield { rows: page.records, csv: false, ordered: q.ordered };
    if (page.done || !page.nextRecordsUrl || signal.aborted) return;
    page = await restPage(ctx, page.nextRecordsUrl);
  }
}

/** One window as chunked queries joined by Id (in Id order, so without a resumable cursor per batch). */
async function* joined(ctx: QueryContext, plan: TablePlan, chunks: string[][], conds: string[], all: boolean, signal: AbortSignal): AsyncGenerator<Batch> {
  for await (const rows of joinedRows({ ctx, plan, chunks, conds, all, signal })) yield { rows, csv: false, ordered: false };
}
