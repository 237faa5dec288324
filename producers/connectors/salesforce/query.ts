/**
 * How the Salesforce source runs one query: REST pages followed through nextRecordsUrl one by one
 * (never jsforce's autoFetch, which silently stops at maxFetch = 10,000), or Bulk API 2.0 result
 * pages (bulk.ts) when the table asks for it, when the first REST page's totalSize reaches
 * bulkThreshold, or when the query is too long for a URL; a Bulk job that fails or is refused
 * falls back to REST when nothing was read from it yet (and the query fits a URL), and a REST query
 * Salesforce gives up on (QUERY_TIMEOUT) is run as a Bulk job instead. It is kept apart from source.ts, which decides what to
 * query (full, incremental, deletes) and converts the rows, because running a query is the same
 * whatever it asks.
 */
import { ConfigError } from "../../../lib/errors.ts";
import { SalesforceUnavailableError } from "./errors.ts";
import type { Logger } from "../../../lib/log.ts";
import type { ReadOptions } from "../../connector.ts";
import { BulkJobFailedError, bulkQuery } from "./bulk.ts";
import type { SalesforceClient } from "./client.ts";
import type { SalesforceConnector } from "./config.ts";
import type { SalesforceMetadata, TablePlan } from "./plan.ts";
import { queryPath } from "./soql.ts";
import { JsonNumber } from "./types.ts";

/**
 * REST query URLs longer than this go through Bulk API 2.0 (a POST body) instead: Salesforce refuses
 * a request URI over 16,384 bytes (414), and URI plus headers over that (431); this leaves room for
 * the instance's host, the Authorization header and the rest.
 */
export const MAX_REST_URL = 15_000;

export type Row = Record<string, unknown>;
export interface Batch {
  rows: Row[];
  csv: boolean;
  ordered: boolean;
}

/** What running a query needs of the source: its config, client and metadata (REST pages are read through it), and its log. */
export interface QueryContext {
  config: SalesforceConnector;
  client: SalesforceClient;
  metadata: SalesforceMetadata;
  log: Logger;
}

/**
 * Runs a query and yields batches of rows: REST pages (following nextRecordsUrl), or Bulk API 2.0
 * result pages when the table says so, when the first REST page's totalSize reaches
 * bulkThreshold, or when the query is too long for a URL.
 */
export async function* executeQuery(
  ctx: QueryContext,
  plan: TablePlan,
  soql: { rest: string; bulk: string },
  all: boolean,
  opts: ReadOptions,
): AsyncGenerator<Batch> {
  const mode = plan.table.api;
  const first = queryPath(ctx.client.apiPath, soql.rest, all);
  const tooLong = first.length > MAX_REST_URL;
  if (mode === "rest" && tooLong) {
    throw new ConfigError(
      `connector ${ctx.config.id}, table ${plan.table.name}: the query selects too many fields for a REST URL (${first.length} characters); use api: bulk or list fewer fields`,
    );
  }
  if (tooLong) {
    yield* bulkBatches(ctx, plan, soql.bulk, all, opts);
    return;
  }
  let page: RestPage | null = null;
  if (mode !== "bulk") {
    try {
      page = await restPage(ctx, first);
    } catch (e) {
      // Salesforce gave up on the query: a Bulk job runs it asynchronously, without that time limit.
      if (!(e instanceof SalesforceUnavailableError && e.errorCode === "QUERY_TIMEOUT") || mode === "rest") throw e;
      ctx.log.warn(
        { connector: ctx.config.id, table: plan.table.name, err: e.message },
        "the REST query timed out: reading through a Bulk API 2.0 job instead",
      );
    }
  }
  if (page === null || (mode === "auto" && !page.done && page.totalSize >= ctx.config.bulkThreshold)) {
    let yielded = false;
    try {
      for await (const b of bulkBatches(ctx, plan, soql.bulk, all, opts)) {
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
      page = await restPage(ctx, first);
    }
  }
  for (;;) {
    yield { rows: page.records, csv: false, ordered: true };
    if (page.done || !page.nextRecordsUrl || opts.signal.aborted) return;
    page = await restPage(ctx, page.nextRecordsUrl);
  }
}

async function* bulkBatches(ctx: QueryContext, plan: TablePlan, soql: string, all: boolean, opts: ReadOptions): AsyncGenerator<Batch> {
  const pages = bulkQuery(ctx.client, soql, {
    all,
    signal: opts.signal,
    heartbeat: opts.heartbeat,
    pollIntervalMs: ctx.config.bulkPollIntervalMs,
    timeoutMs: ctx.config.bulkTimeoutMs,
  });
  for await (const p of pages) {
    const names = p.columns.map((c) => plan.byName.get(c.toLowerCase())?.name ?? c);
    const rows = p.rows.map((cells) => {
      const r: Row = {};
      for (let i = 0; i < names.length; i++) r[names[i]!] = cells[i] ?? "";
      return r;
    });
    yield { rows, csv: true, ordered: false };
  }
}

interface RestPage {
  records: Row[];
  totalSize: number;
  done: boolean;
  nextRecordsUrl?: string;
}

async function restPage(ctx: QueryContext, path: string): Promise<RestPage> {
  const body = (await ctx.metadata.getJson(path)) as { records?: Row[]; totalSize?: JsonNumber | number; done?: boolean; nextRecordsUrl?: string };
  const total = body.totalSize instanceof JsonNumber ? Number(body.totalSize.text) : Number(body.totalSize ?? 0);
  return { records: body.records ?? [], totalSize: total, done: body.done !== false, nextRecordsUrl: body.nextRecordsUrl };
}

/** Every row of a (small) query through REST pages. */
export async function* restPages(ctx: QueryContext, soql: string, all: boolean, signal?: AbortSignal): AsyncGenerator<Row[]> {
  let page = await restPage(ctx, queryPath(ctx.client.apiPath, soql, all));
  for (;;) {
    yield page.records;
    if (page.done || !page.nextRecordsUrl || signal?.aborted) return;
    page = await restPage(ctx, page.nextRecordsUrl);
  }
}
