/**
 * The HubSpot records that vanish without any sign in the records read: ids only, at the fewest
 * requests the API allows.
 *
 *  - Reconciliation (`listIds`, SyncRequest.reconcile): every id the portal holds for a table, with
 *    the table's filter, through CRM search with no property but `hs_object_id`, 200 per page (the
 *    list endpoint gives 100), paged by keyset on `hs_object_id` so that every query starts at
 *    offset 0 and the 10,000-result cap never applies. The worker deletes the ids the raw topic
 *    holds that are not listed: purged records, merged ones, and those that left the filter.
 *  - Filter exits, in incremental runs: a record of a filtered table that changed and no longer
 *    matches drops out of the filtered search silently. The changed ids of the run's range are
 *    listed without the filter (ids only); those the pipeline holds and this run did not read
 *    are deleted.
 *  - Merges, in incremental runs: the surviving record names the merged ids in
 *    `hs_merged_object_ids` and its last-modified date moves, so the run reads it; the ids it
 *    names that the pipeline holds are deleted.
 */
import type { ReadOptions } from "../../connector.ts";
import type { HubSpotApi } from "./api.ts";
import type { HubSpotObject, SearchBody } from "./api-types.ts";
import type { HubSpotFilterGroup } from "./filter.ts";
import { MERGED_IDS_PROPERTY, type TablePlan } from "./plan.ts";

/** The most results one search page gives (the list endpoint: 100). */
export const ID_PAGE_SIZE = 200;

type Filter = SearchBody["filterGroups"][number]["filters"][number];

/** Statistics of the ids-only searches (tests, the benchmark). */
export interface IdSearchStats {
  searches: number;
  ids: number;
}

/**
 * Yields, page by page, the records matching any of `groups` AND every `extra` filter, with only
 * `properties`, sorted by hs_object_id and paged by keyset (`hs_object_id > last id`): ⌈n/200⌉
 * searches, and at least one.
 */
async function* searchKeyset(
  api: HubSpotApi,
  objectType: string,
  groups: HubSpotFilterGroup[],
  extra: Filter[],
  properties: string[],
  signal: AbortSignal,
  stats?: IdSearchStats,
): AsyncGenerator<HubSpotObject[]> {
  const base = groups.length > 0 ? groups : [{ filters: [] }];
  let after = "0";
  for (;;) {
    const body: SearchBody = {
      filterGroups: base.map((g) => ({
        filters: [...g.filters.map((f) => ({ ...f })), ...extra, { propertyName: "hs_object_id", operator: "GT", value: after }],
      })),
      sorts: [{ propertyName: "hs_object_id", direction: "ASCENDING" }],
      properties,
      limit: ID_PAGE_SIZE,
    };
    const page = await api.search(objectType, body, signal);
    if (stats) {
      stats.searches++;
      stats.ids += page.results.length;
    }
    if (page.results.length > 0) yield page.results;
    if (!page.paging?.next || page.results.length === 0 || signal.aborted) return;
    after = page.results[page.results.length - 1]!.id;
  }
}

/** The ids of the records matching any of `groups` AND every `extra` filter, page by page (see searchKeyset). */
export async function* searchIds(
  api: HubSpotApi,
  objectType: string,
  groups: HubSpotFilterGroup[],
  extra: Filter[],
  signal: AbortSignal,
  stats?: IdSearchStats,
): AsyncGenerator<string[]> {
  for await (const page of searchKeyset(api, objectType, groups, extra, ["hs_object_id"], signal, stats)) yield page.map((o) => o.id);
}

/** A range of last-modified instants [from, to) as a search filter. */
function rangeFilter(plan: TablePlan, from: number, to: number): Filter {
  return { propertyName: plan.object.lastModifiedProperty, operator: "BETWEEN", value: String(from), highValue: String(to - 1) };
}

/**
 * The ids merged into records modified in [from, to): for runs whose windows were read as tasks by
 * other workers (the coordinating worker did not see the records). One search per 200 survivors.
 */
export async function mergedInRange(api: HubSpotApi, plan: TablePlan, from: number, to: number, signal: AbortSignal): Promise<Set<string>> {
  const out = new Set<string>();
  if (!plan.fetch.includes(MERGED_IDS_PROPERTY) || to <= from) return out;
  const has: Filter = { propertyName: MERGED_IDS_PROPERTY, operator: "HAS_PROPERTY" };
  for await (const page of searchKeyset(api, plan.object.api, [], [rangeFilter(plan, from, to), has], ["hs_object_id", MERGED_IDS_PROPERTY], signal)) {
    for (const id of mergedIdsOf(page)) out.add(id);
  }
  return out;
}

/** Every id of the table (its filter applied), for a reconciliation. */
export function tableIds(api: HubSpotApi, plan: TablePlan, signal: AbortSignal, stats?: IdSearchStats): AsyncGenerator<string[]> {
  return searchIds(api, plan.object.api, plan.table.filter ?? [], [], signal, stats);
}

/** The ids a batch of records names as merged into them (`hs_merged_object_ids`, ";"-separated). */
export function mergedIdsOf(objects: HubSpotObject[]): string[] {
  const out: string[] = [];
  for (const o of objects) {
    const v = o.properties?.[MERGED_IDS_PROPERTY];
    if (typeof v !== "string") continue;
    for (const id of v.split(";")) if (/^\d+$/.test(id.trim()) && id.trim() !== o.id) out.push(id.trim());
  }
  return out;
}

/** What an incremental run gathered for its stale deletes. */
export interface StaleInput {
  /** Ids named by the records read as merged into them. */
  merged: Set<string>;
  /** Ids this connector read in this run (its own pages; the tasks' reads are seen in `published`). */
  read: Set<string>;
  /** The run's range of last-modified instants, [from, to). */
  from: number;
  to: number;
}

/**
 * The ids to delete at the end of an incremental read: the merged ids, and for a filtered table the
 * changed records that no longer match (changed in the range, not read by this run). With
 * `opts.published` (the worker), only ids the pipeline holds alive are deleted, and records some
 * task of this run published are kept; without it, every candidate is.
 */
export async function staleIds(api: HubSpotApi, plan: TablePlan, input: StaleInput, opts: ReadOptions, stats?: IdSearchStats): Promise<string[]> {
  const candidates = new Set(input.merged);
  if (plan.table.filter && plan.table.filter.length > 0 && input.to > input.from) {
    for await (const ids of searchIds(api, plan.object.api, [], [rangeFilter(plan, input.from, input.to)], opts.signal, stats)) {
      for (const id of ids) if (!input.read.has(id)) candidates.add(id);
    }
  }
  for (const id of input.read) candidates.delete(id);
  if (candidates.size === 0 || !opts.published) return [...candidates];
  const alive = new Set<string>();
  await opts.published((r) => {
    if (!candidates.has(r.externalId)) return;
    if (r.fields !== null && !r.thisRun) alive.add(r.externalId);
    else alive.delete(r.externalId);
  });
  return [...alive];
}
