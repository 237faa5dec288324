/**
 * The pieces every Salesforce read shares: what a query is (RestQuery), the rows and batches it yields,
 * what running it needs of the source (QueryContext), one REST query page read losslessly, every page of
 * a small query followed through nextRecordsUrl (never jsforce's autoFetch, which silently stops at
 * maxFetch = 10,000), and the URL limit. The readers built on them: windows.ts (narrower SystemModstamp
 * windows after QUERY_TIMEOUT), chunks.ts (objects too wide for one URL), query.ts (REST or Bulk).
 */
import type { Logger } from "../../../lib/log.ts";
import type { SalesforceClient } from "./client.ts";
import type { SalesforceConnector } from "./config.ts";
import { SalesforceUnavailableError } from "./errors.ts";
import type { SalesforceMetadata } from "./plan.ts";
import { queryPath } from "./soql.ts";
import { JsonNumber } from "./types.ts";

/**
 * REST query URLs longer than this are never sent: Salesforce refuses a request URI over 16,384 bytes
 * (414), and URI plus headers over that (431); this leaves room for the instance's host, the
 * Authorization header and the rest.
 */
export const MAX_REST_URL = 15_000;

export type Row = Record<string, unknown>;
export interface Batch {
  rows: Row[];
  /** Values are Bulk CSV text (else REST JSON values). */
  csv: boolean;
  /** The rows come in (cursor field, Id) order, after every row of the batches before: a batch may carry the cursor state. */
  ordered: boolean;
}

/** What running a query needs of the source: its config, client and metadata (REST pages are read through it), and its log. */
export interface QueryContext {
  config: SalesforceConnector;
  client: SalesforceClient;
  metadata: SalesforceMetadata;
  log: Logger;
}

/** A read of one table, in parts, so that it can be narrowed (windows.ts) or split by fields (chunks.ts). */
export interface RestQuery {
  select: string[];
  /** Conditions AND-ed together, each complete (parenthesized where needed). */
  conds: string[];
  /** REST pages in (cursor field, Id) order, so that each page can carry the cursor state (incremental reads). */
  ordered: boolean;
  /** The earliest cursor-field time (epoch ms) the conds admit; null when they do not bound it (full reads). */
  fromMs: number | null;
}

export interface RestPage {
  records: Row[];
  totalSize: number;
  done: boolean;
  nextRecordsUrl?: string;
}

export async function restPage(ctx: QueryContext, path: string): Promise<RestPage> {
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

/** Salesforce gave up on the query (over about 120 s in its database, mostly a non-selective filter on a large object). */
export function isQueryTimeout(e: unknown): e is SalesforceUnavailableError {
  return e instanceof SalesforceUnavailableError && e.errorCode === "QUERY_TIMEOUT";
}
