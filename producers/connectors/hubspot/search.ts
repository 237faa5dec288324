/**
 * Incremental reads through CRM search, safe from the 10,000-result cap, in parallel:
 *
 *  - The range [from, to) of last-modified instants is read as date windows. The whole range's
 *    first page reports its `total`; if it is at most `maxWindowRecords` the range is read as one
 *    window (no request wasted). Otherwise the range is cut adaptively using the totals: one
 *    probe (limit 1, sorted by last-modified, offset maxWindowRecords − 1) returns the timestamp
 *    t* of the maxWindowRecords-th record, so [from, t*) holds fewer than maxWindowRecords records
 *    and is read while [t*, to) is probed again. That costs one probe per maxWindowRecords records,
 *    where halving the range blindly costs log2(range in ms) probes to isolate a dense timestamp.
 *  - Inside a window, records are paged by keyset on the tie-break key: sorted by hs_object_id,
 *    asking for `hs_object_id > last id seen`, so every query starts at offset 0 and no query
 *    pages towards the 10,000 cap, even when more than 10,000 records share one timestamp (that
 *    1 ms window cannot be cut; it pages through its ids). The order of the whole read is
 *    (last-modified window, hs_object_id).
 *  - Keyset paging also keeps a window stable while records change under it: a record modified
 *    during the read leaves the window (its new timestamp is after `to`, the run's start) without
 *    shifting the others (offset paging would skip one), and the next run picks it up.
 *  - Windows are read `concurrency` at a time; the API layer keeps every search within the
 *    portal's per-second search limit and retries 429s.
 */
import type { HubSpotApi } from "./api.ts";
import type { HubSpotObject, SearchBody, SearchPage } from "./api-types.ts";
import { CONNECTOR_FILTERS_PER_GROUP, type HubSpotFilterGroup } from "./filter.ts";
import { instantMs } from "./values.ts";

const SEARCH_PAGE_SIZE = 200;

export interface WindowStats {
  /** Windows whose first page was read (split ones included). */
  windows: number;
  splits: number;
  searchPages: number;
  /** Records read (before any de-duplication; with keyset paging each record is read once). */
  records: number;
  /** Cut probes (one per window cut off a larger one). */
  probes: number;
  /** The largest total a 1 ms window had (> maxWindowRecords means the hs_object_id tie-break carried it). */
  largestUnsplittable: number;
}

interface WindowReadOptions {
  api: HubSpotApi;
  objectType: string;
  lastModifiedProperty: string;
  properties: string[];
  /** The table's filter groups (OR-ed); each gets the window and keyset filters added. */
  filterGroups: HubSpotFilterGroup[];
  maxWindowRecords: number;
  concurrency: number;
  signal: AbortSignal;
  stats?: WindowStats;
  /** The whole range's first page, when planWindows already read it (no request twice). */
  firstPage?: SearchPage;
}

export function newWindowStats(): WindowStats {
  return { windows: 0, splits: 0, probes: 0, searchPages: 0, records: 0, largestUnsplittable: 0 };
}

interface Window {
  from: number;
  to: number;
}

/** The search body of one page of a window: every group AND (lastmodified in [from, to)) AND (id > afterId). */
export function windowSearchBody(
  o: Pick<WindowReadOptions, "lastModifiedProperty" | "properties" | "filterGroups">,
  w: Window,
  afterId: string,
  limit = SEARCH_PAGE_SIZE,
): SearchBody {
  const groups = o.filterGroups.length > 0 ? o.filterGroups : [{ filters: [] }];
  const added = [
    { propertyName: o.lastModifiedProperty, operator: "BETWEEN", value: String(w.from), highValue: String(w.to - 1) },
    { propertyName: "hs_object_id", operator: "GT", value: afterId },
  ];
  if (added.length !== CONNECTOR_FILTERS_PER_GROUP) throw new Error("CONNECTOR_FILTERS_PER_GROUP is out of date");
  return {
    filterGroups: groups.map((g) => ({ filters: [...g.filters.map((f) => ({ ...f })), ...added] })),
    sorts: [{ propertyName: "hs_object_id", direction: "ASCENDING" }],
    properties: o.properties,
    limit,
  };
}

/** A bounded queue between the window workers and the reader. */
class PageChannel<T> {
  private readonly items: T[] = [];
  private readonly capacity: number;
  private waitingReader: (() => void) | null = null;
  private waitingWriters: Array<() => void> = [];
  private closed = false;
  private error: unknown = undefined;

  constructor(capacity: number) {
    this.capacity = capacity;
  }

  async push(item: T): Promise<void> {
    while (this.items.length >= this.capacity && !this.closed) await new Promise<void>((r) => this.waitingWriters.push(r));
    if (this.closed) return;
    this.items.push(item);
    this.wakeReader();
  }

  close(error?: unknown): void {
    if (this.closed) return;
    this.closed = true;
    this.error = error;
    this.wakeReader();
    for (const w of this.waitingWriters.splice(0)) w();
  }

  private wakeReader(): void {
    const r = this.waitingReader;
    this.waitingReader = null;
    r?.();
  }

  async next(): Promise<T | undefined> {
    for (;;) {
      const item = this.items.shift();
      if (item !== undefined) {
        this.waitingWriters.shift()?.();
        return item;
      }
      if (this.closed) {
        if (this.error !== undefined) throw this.error;
        return undefined;
      }
      await new Promise<void>((r) => {
        this.waitingReader = r;
      });
    }
  }
}

type Task = { kind: "read"; w: Window; check: boolean } | { kind: "cut"; w: Window };

/** The search body of a cut probe: the window's record at rank `rank` (0-based) by last-modified. */
function cutProbeBody(o: Pick<WindowReadOptions, "lastModifiedProperty" | "filterGroups">, w: Window, rank: number): SearchBody {
  const body = windowSearchBody({ ...o, properties: [o.lastModifiedProperty] }, w, "0", 1);
  return { ...body, sorts: [{ propertyName: o.lastModifiedProperty, direction: "ASCENDING" }], after: String(rank) };
}

/** Yields pages of records modified in [from, to), each exactly once, windows read in parallel. */
export async function* searchRange(o: WindowReadOptions, from: number, to: number): AsyncGenerator<HubSpotObject[]> {
  const stats = o.stats ?? newWindowStats();
  if (to <= from) return;
  const stop = new AbortController();
  const onAbort = () => stop.abort(o.signal.reason);
  o.signal.addEventListener("abort", onAbort, { once: true });
  const channel = new PageChannel<HubSpotObject[]>(Math.max(2, o.concurrency * 2));
  // The whole range is read at once if its first page says it is small enough (no request wasted).
  const queue: Task[] = [{ kind: "read", w: { from, to }, check: true }];
  let active = 0;
  const idle: Array<() => void> = [];
  const wake = () => {
    for (const r of idle.splice(0)) r();
  };
  const push = (...tasks: Task[]) => {
    queue.push(...tasks);
    wake();
  };

  /**
   * Cuts a window at its maxWindowRecords-th record by last-modified (t*, read with one probe of
   * limit 1 at offset maxWindowRecords − 1, below the 10,000 cap): [from, t*) holds fewer than
   * maxWindowRecords records and is read; [t*, to) is cut again. When the window's first
   * maxWindowRecords records all share `from`, the 1 ms window [from, from+1) is read by keyset on
   * hs_object_id, however many records it holds, and [from+1, to) is cut again.
   */
  async function cut(w: Window): Promise<void> {
    const at = await probeCut(o, w, stats, stop.signal);
    if (at === null) {
      push({ kind: "read", w, check: false });
      return;
    }
    if (at <= w.from) {
      const tied: Window = { from: w.from, to: w.from + 1 };
      push({ kind: "read", w: tied, check: false });
      if (tied.to < w.to) push({ kind: "cut", w: { from: tied.to, to: w.to } });
    } else {
      push({ kind: "read", w: { from: w.from, to: at }, check: false }, { kind: "cut", w: { from: at, to: w.to } });
    }
  }

  let prefetched = o.firstPage;
  async function read(w: Window, check: boolean): Promise<void> {
    let afterId = "0";
    let first = true;
    for (;;) {
      let page: SearchPage;
      if (first && prefetched && w.from === from && w.to === to) {
        page = prefetched;
        prefetched = undefined;
      } else {
        page = await o.api.search(o.objectType, windowSearchBody(o, w, afterId), stop.signal);
        stats.searchPages++;
      }
      if (first) {
        first = false;
        stats.windows++;
        if (check && page.total > o.maxWindowRecords && w.to - w.from > 1) {
          push({ kind: "cut", w });
          return;
        }
        if (w.to - w.from === 1) stats.largestUnsplittable = Math.max(stats.largestUnsplittable, page.total);
      }
      if (page.results.length > 0) {
        stats.records += page.results.length;
        afterId = page.results[page.results.length - 1]!.id;
        await channel.push(page.results);
      }
      if (!page.paging?.next || page.results.length === 0 || stop.signal.aborted) return;
    }
  }

  async function worker(): Promise<void> {
    for (;;) {
      if (stop.signal.aborted) return;
      // Cuts first: they feed the other workers.
      const i = queue.findIndex((t) => t.kind === "cut");
      const task = i >= 0 ? queue.splice(i, 1)[0] : queue.shift();
      if (!task) {
        if (active === 0) {
          wake();
          return;
        }
        await new Promise<void>((r) => idle.push(r));
        continue;
      }
      active++;
      try {
        if (task.kind === "cut") await cut(task.w);
        else await read(task.w, task.check);
      } finally {
        active--;
        wake();
      }
    }
  }

  const workers = Array.from({ length: Math.max(1, o.concurrency) }, () => worker());
  const all = Promise.all(workers).then(
    () => channel.close(),
    (e: unknown) => {
      stop.abort(e);
      channel.close(e);
    },
  );
  try {
    for (;;) {
      const page = await channel.next();
      if (page === undefined) break;
      yield page;
    }
  } finally {
    stop.abort(new Error("the search read ended"));
    channel.close();
    wake();
    await all.catch(() => {});
    o.signal.removeEventListener("abort", onAbort);
  }
}

/**
 * One cut probe of window w (see searchRange): the last-modified instant of its
 * maxWindowRecords-th record, or null when the window needs no cut (it holds no more than
 * maxWindowRecords records, or the probe found no instant inside it). Counts the request, and
 * the split when there is one.
 */
async function probeCut(o: Omit<WindowReadOptions, "concurrency">, w: Window, stats: WindowStats, signal: AbortSignal): Promise<number | null> {
  const probe = await o.api.search(o.objectType, cutProbeBody(o, w, o.maxWindowRecords - 1), signal);
  stats.searchPages++;
  stats.probes++;
  const hit = probe.results[0];
  const at = hit ? instantMs(String(hit.properties?.[o.lastModifiedProperty] ?? "")) : undefined;
  if (probe.total <= o.maxWindowRecords || at === undefined || at >= w.to) return null;
  stats.splits++;
  return at;
}

/**
 * Cuts [from, to) into windows of at most maxWindowRecords records each (a 1 ms window may hold
 * more: it is read by keyset on hs_object_id), for reading them as separate tasks. One request
 * when the range is small enough — its first page, returned for the read to start from — else that
 * page plus one cut probe (see searchRange) per window.
 */
export async function planWindows(o: Omit<WindowReadOptions, "concurrency">, from: number, to: number): Promise<{ windows: Window[]; firstPage?: SearchPage }> {
  const stats = o.stats ?? newWindowStats();
  if (to <= from) return { windows: [] };
  const firstPage = await o.api.search(o.objectType, windowSearchBody(o, { from, to }, "0"), o.signal);
  stats.searchPages++;
  if (firstPage.total <= o.maxWindowRecords || to - from === 1) return { windows: [{ from, to }], firstPage };
  const windows: Window[] = [];
  let w: Window = { from, to };
  for (;;) {
    const at = await probeCut(o, w, stats, o.signal);
    if (at === null) {
      windows.push(w);
      break;
    }
    const cutAt = at <= w.from ? w.from + 1 : at; // the first maxWindowRecords records share w.from: that millisecond alone
    windows.push({ from: w.from, to: cutAt });
    if (cutAt >= w.to) break;
    w = { from: cutAt, to: w.to };
  }
  return { windows };
}

/** Yields every page of the list endpoint (100 records each), archived or not. */
export async function* listAll(
  api: HubSpotApi,
  objectType: string,
  properties: string[],
  archived: boolean,
  signal: AbortSignal,
): AsyncGenerator<HubSpotObject[]> {
  let after: string | undefined;
  do {
    const page = await api.listPage(objectType, { after, properties, archived, limit: 100 }, signal);
    if (page.results.length > 0) yield page.results;
    after = page.paging?.next?.after;
  } while (after && !signal.aborted);
}
