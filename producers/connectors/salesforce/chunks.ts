/**
 * REST reads of an object too wide for one query URL (hundreds of fields: Salesforce refuses request
 * URIs over 16,384 bytes), used when no Bulk API 2.0 job can carry the query (`api: rest`, or a job
 * refused at creation). The SELECT list is split into chunks whose queries each fit a URL, every chunk
 * carrying Id and the cursor field (SystemModstamp); each chunk is queried over the same conditions,
 * `ORDER BY Id`, and the chunks are joined by Id into whole records before anything is handed on.
 *
 * The join is streamed: the chunk that has handed over the fewest rows is read next, so with every chunk
 * in the same Id order a record's parts meet within about one page per chunk, and memory stays bounded
 * (the join needs no Id comparison of its own, so it does not depend on how Salesforce collates Ids; at
 * most MAX_PENDING records wait for their other parts, beyond which the oldest are re-read instead).
 *
 * The chunks' queries run one after the other, so a record can change between them: its parts then carry
 * different SystemModstamps, or it is missing from some chunks (deleted, or changed out of the `where` or
 * out of the window). Such a record is never handed on half-empty, nor from two versions: it is RE-READ,
 * every chunk again for its Id (`Id IN (…)`, REREAD_IDS at a time, same conditions), until its parts
 * agree; a record found in no chunk any more is left out (a full run then deletes it, which is what
 * happened to it; an incremental run reads its change in a later window or run). A record still changing
 * after MAX_REREADS re-reads fails the run as retriable: we re-read rather than let the next run take it,
 * because a full run that left a live record out would delete it from the sink.
 */
import { ConfigError } from "../../../lib/errors.ts";
import { SalesforceApiError, SalesforceUnavailableError } from "./errors.ts";
import type { TablePlan } from "./plan.ts";
import { MAX_REST_URL, restPage, restPages, type QueryContext, type RestPage, type RestQuery, type Row } from "./rest-pages.ts";
import { queryPath, soqlOf, windowConds } from "./soql.ts";

/** Ids re-read at once (the chunks leave room for this many in their URLs). */
export const REREAD_IDS = 100;
/** Re-reads of a record whose chunks disagree before the run fails (retriable). */
export const MAX_REREADS = 3;
/** Whole records handed on at a time. */
const BATCH_ROWS = 2000;
/** Parts held waiting for the other chunks' parts of their records; beyond, the oldest records are re-read instead. */
const MAX_PENDING = 10_000;

/** One wide read: the chunks' SELECT lists and the conditions every chunk's query carries. */
export interface ChunkedRead {
  ctx: QueryContext;
  plan: TablePlan;
  chunks: string[][];
  conds: string[];
  all: boolean;
  signal: AbortSignal;
}

/**
 * The query's SELECT list as one chunk when its query fits a URL, else chunks that each fit, every one
 * with Id and the cursor field. Fitting counts the longest form a chunk's query takes: with a window's
 * two bounds, a re-read's REREAD_IDS ids and an ORDER BY.
 */
export function planChunks(ctx: QueryContext, plan: TablePlan, q: RestQuery, all: boolean): string[][] {
  const field = plan.cursorField?.name ?? null;
  const ids = Array.from({ length: REREAD_IDS }, () => `'${"0".repeat(18)}'`).join(", ");
  const widest = [...q.conds, ...(field ? windowConds(field, 0, 0) : []), `Id IN (${ids})`];
  const order = field ? `ORDER BY ${field} ASC, Id ASC` : "ORDER BY Id ASC";
  const fits = (select: string[]) => queryPath(ctx.client.apiPath, soqlOf(plan.object, select, widest, order), all).length <= MAX_REST_URL;
  if (fits(q.select)) return [q.select];
  const keys = field ? ["Id", field] : ["Id"];
  const noRoom = () =>
    new ConfigError(
      `connector ${ctx.config.id}, table ${plan.table.name} (${plan.object}): the query's conditions leave no room for its fields in a REST URL; shorten the where`,
    );
  if (!fits(keys)) throw noRoom();
  const chunks: string[][] = [];
  let cur = [...keys];
  for (const f of q.select) {
    if (keys.some((k) => k.toLowerCase() === f.toLowerCase())) continue;
    if (fits([...cur, f])) {
      cur.push(f);
      continue;
    }
    if (!fits([...keys, f])) throw noRoom();
    chunks.push(cur);
    cur = [...keys, f];
  }
  chunks.push(cur);
  return chunks;
}

/** One chunk's query, its pages read as the join consumes them. */
class ChunkStream {
  consumed = 0;
  exhausted = false;
  private page: RestPage;
  private i = 0;
  private readonly ctx: QueryContext;

  private constructor(ctx: QueryContext, page: RestPage) {
    this.ctx = ctx;
    this.page = page;
  }

  static async open(ctx: QueryContext, path: string): Promise<ChunkStream> {
    return new ChunkStream(ctx, await restPage(ctx, path));
  }

  async take(): Promise<Row | null> {
    while (this.i >= this.page.records.length) {
      if (this.page.done || !this.page.nextRecordsUrl) {
        this.exhausted = true;
        return null;
      }
      this.page = await restPage(this.ctx, this.page.nextRecordsUrl);
      this.i = 0;
    }
    this.consumed++;
    return this.page.records[this.i++]!;
  }
}

/** The record whole from its parts, or null when a part is missing or the parts are of different versions. */
function whole(parts: Array<Row | undefined>, stamp: string | null): Row | null {
  if (parts.some((p) => p === undefined)) return null;
  const rows = parts as Row[];
  if (stamp !== null && rows.some((p) => String(p[stamp]) !== String(rows[0]![stamp]))) return null;
  return Object.assign({}, ...rows) as Row;
}

/** Parts by record Id until every chunk's part is in; records that cannot be joined are set aside for a re-read. */
class Join {
  readonly suspects: string[] = [];
  private readonly pending = new Map<string, Array<Row | undefined>>();
  /** Records set aside: parts of them still to come are ignored (the re-read reads them whole). */
  private readonly aside = new Set<string>();
  private readonly n: number;
  private readonly stamp: string | null;

  constructor(n: number, stamp: string | null) {
    this.n = n;
    this.stamp = stamp;
  }

  add(k: number, row: Row): Row | null {
    const id = String(row.Id);
    if (this.aside.has(id)) return null;
    let parts = this.pending.get(id);
    if (!parts) {
      parts = Array.from({ length: this.n }, () => undefined);
      this.pending.set(id, parts);
    }
    parts[k] = row;
    if (parts.some((p) => p === undefined)) {
      if (this.pending.size > MAX_PENDING) for (const old of [...this.pending.keys()].slice(0, MAX_PENDING / 2)) this.setAside(old);
      return null;
    }
    this.pending.delete(id);
    const w = whole(parts, this.stamp);
    if (!w) this.setAside(id);
    return w;
  }

  /** Every record still missing parts: set aside (the chunks are read to the end). */
  flush(): void {
    for (const id of [...this.pending.keys()]) this.setAside(id);
  }

  private setAside(id: string): void {
    this.pending.delete(id);
    this.aside.add(id);
    this.suspects.push(id);
  }
}

/** Every record of the chunks' queries, whole, in batches. Every chunk's query runs before anything is handed on. */
export async function* joinedRows(r: ChunkedRead): AsyncGenerator<Row[]> {
  const stamp = r.plan.cursorField?.name ?? null;
  const streams: ChunkStream[] = [];
  for (const select of r.chunks) {
    // A QUERY_TIMEOUT surfaces here, nothing handed on yet: windows.ts narrows the window and reads it again.
    streams.push(await ChunkStream.open(r.ctx, queryPath(r.ctx.client.apiPath, soqlOf(r.plan.object, select, r.conds, "ORDER BY Id ASC"), r.all)));
  }
  const join = new Join(r.chunks.length, stamp);
  let out: Row[] = [];
  for (;;) {
    if (r.signal.aborted) return;
    let next = -1;
    for (let k = 0; k < streams.length; k++) {
      const s = streams[k]!;
      if (!s.exhausted && (next < 0 || s.consumed < streams[next]!.consumed)) next = k;
    }
    if (next < 0) break;
    const row = await streams[next]!.take();
    if (row === null) continue;
    const w = join.add(next, row);
    if (w) out.push(w);
    if (join.suspects.length >= REREAD_IDS) out.push(...(await reread(r, join.suspects.splice(0, REREAD_IDS))));
    if (out.length >= BATCH_ROWS) {
      yield out;
      out = [];
    }
  }
  join.flush();
  while (join.suspects.length > 0) {
    if (r.signal.aborted) return;
    out.push(...(await reread(r, join.suspects.splice(0, REREAD_IDS))));
    if (out.length >= BATCH_ROWS) {
      yield out;
      out = [];
    }
  }
  if (out.length > 0) yield out;
}

/** A record id as a SOQL literal: ids come from Salesforce's answers, but one that is not 15 or 18 letters and digits is refused, never quoted into a query. */
function idLiteral(id: string): string {
  if (!/^[a-zA-Z0-9]{15}(?:[a-zA-Z0-9]{3})?$/.test(id))
    throw new SalesforceApiError(502, "BAD_ID", `Salesforce answered a record id that is not an id (${JSON.stringify(id.slice(0, 40))})`);
  return `'${id}'`;
}

/**
 * The records of these ids read again, every chunk, until their parts agree: whole records, without those
 * no chunk has any more (deleted, or out of the conditions now). Still disagreeing after MAX_REREADS
 * reads: the run fails, retriable.
 */
async function reread(r: ChunkedRead, ids: string[]): Promise<Row[]> {
  const stamp = r.plan.cursorField?.name ?? null;
  const out: Row[] = [];
  let pending = ids;
  for (let attempt = 1; pending.length > 0; attempt++) {
    if (attempt > MAX_REREADS) {
      throw new SalesforceUnavailableError(
        409,
        "RECORDS_CHANGING",
        `connector ${r.ctx.config.id}, table ${r.plan.table.name} (${r.plan.object}): ${pending.length} record(s) (${pending.slice(0, 3).join(", ")}${pending.length > 3 ? ", …" : ""}) ` +
          `changed between the queries of each of ${MAX_REREADS} reads of their ${r.chunks.length} field chunks; they were not published half-read, and the run is retried`,
      );
    }
    const byId = new Map<string, Array<Row | undefined>>();
    const inList = `Id IN (${pending.map(idLiteral).join(", ")})`;
    for (let k = 0; k < r.chunks.length; k++) {
      for await (const rows of restPages(r.ctx, soqlOf(r.plan.object, r.chunks[k]!, [...r.conds, inList]), r.all, r.signal)) {
        for (const row of rows) {
          const id = String(row.Id);
          let parts = byId.get(id);
          if (!parts) byId.set(id, (parts = Array.from({ length: r.chunks.length }, () => undefined)));
          parts[k] = row;
        }
      }
    }
    const again: string[] = [];
    for (const id of pending) {
      const parts = byId.get(id);
      if (!parts) continue; // in no chunk any more: left out
      const w = whole(parts, stamp);
      if (w) out.push(w);
      else again.push(id);
    }
    if (again.length > 0)
      r.ctx.log.debug(
        { connector: r.ctx.config.id, table: r.plan.table.name, records: again.length, attempt },
        "records changed while their chunks were read: reading them again",
      );
    pending = again;
  }
  return out;
}
