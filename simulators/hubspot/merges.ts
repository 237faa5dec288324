/**
 * The two ways a HubSpot record vanishes without being archived, for the admin API (POST /__admin/merge
 * and POST /__admin/purge): a merge, after which the merged ids are gone from every listing (list, search,
 * batch read, the archived listing), a read of a merged id answers the survivor, and the survivor lists
 * them in `hs_merged_object_ids` (";"-separated) with a new last-modified time; and a permanent delete
 * (GDPR delete, or 90 days in the recycle bin), after which the record is in no listing at all, the
 * archived one included. Kept apart from store.ts, which is already long, because both only remove
 * records and remember where merged ids went.
 */
import { DataError, type ObjectType, type Store, type StoredRecord } from "./store.ts";

function objectTypeOf(store: Store, typeName: unknown): ObjectType {
  if (typeof typeName !== "string" || typeName === "") throw new DataError("objectType must be an object type name or id");
  const t = store.resolveType(typeName);
  if (!t) throw new DataError(`unknown object type ${typeName}`);
  return t;
}

function idList(ids: unknown, what: string): string[] {
  if (!Array.isArray(ids) || ids.some((x) => typeof x !== "string" && typeof x !== "number")) throw new DataError(`${what} must be an array of record ids`);
  return (ids as Array<string | number>).map(String);
}

/** Removes a record from the type's records (every listing reads them) and its associations. */
function removeRecord(store: Store, t: ObjectType, rec: StoredRecord, into?: string): void {
  t.records.delete(rec.id);
  t.sortedIds = null;
  store.dropAssociations(t.name, rec.id, into);
  store.version++;
}

/**
 * Where a read of `id` lands: the record itself, or the record it was merged into (followed through
 * successive merges), or undefined when there is neither.
 */
export function readableRecord(t: ObjectType, id: string): StoredRecord | undefined {
  let at = id;
  for (let hops = 0; hops < 100; hops++) {
    const rec = t.records.get(at);
    if (rec) return rec;
    const next = t.mergedInto?.get(at);
    if (next === undefined) return undefined;
    at = next;
  }
  return undefined;
}

/**
 * POST /__admin/merge: merges `mergedIds` into `primaryId`. Unknown, archived or already merged ids,
 * and the primary's own id, are reported in `notFound`; the primary must exist and not be archived.
 */
export function adminMerge(
  store: Store,
  body: { objectType?: unknown; primaryId?: unknown; mergedIds?: unknown },
  now: number,
): { objectType: string; primaryId: string; merged: string[]; notFound: string[] } {
  const t = objectTypeOf(store, body.objectType);
  if ((typeof body.primaryId !== "string" && typeof body.primaryId !== "number") || !/^\d+$/.test(String(body.primaryId)))
    throw new DataError("primaryId must be a record id");
  const primaryId = String(body.primaryId);
  const primary = t.records.get(primaryId);
  if (!primary || primary.archived) throw new DataError(`no live ${t.name} record ${primaryId} to merge into`);
  const merged: string[] = [];
  const notFound: string[] = [];
  const names = new Set((primary.properties.hs_merged_object_ids ?? "").split(";").filter((x) => x !== ""));
  for (const id of idList(body.mergedIds, "mergedIds")) {
    const rec = t.records.get(id);
    if (!rec || rec.archived || id === primaryId) {
      notFound.push(id);
      continue;
    }
    // The survivor inherits the ids merged into the merged record before.
    for (const earlier of (rec.properties.hs_merged_object_ids ?? "").split(";")) if (earlier !== "") names.add(earlier);
    names.add(id);
    removeRecord(store, t, rec, primaryId);
    t.mergedInto ??= new Map();
    t.mergedInto.set(id, primaryId);
    merged.push(id);
  }
  if (merged.length > 0) {
    const list = [...names].sort((a, b) => a.length - b.length || (a < b ? -1 : 1)).join(";");
    store.upsertRecord(t.name, { id: primaryId, properties: { hs_merged_object_ids: list } }, now);
  }
  return { objectType: t.name, primaryId, merged, notFound };
}

/** POST /__admin/purge: deletes records for good, archived or not; unknown ids are reported in `notFound`. */
export function adminPurge(store: Store, body: { objectType?: unknown; ids?: unknown }): { objectType: string; purged: string[]; notFound: string[] } {
  const t = objectTypeOf(store, body.objectType);
  const purged: string[] = [];
  const notFound: string[] = [];
  for (const id of idList(body.ids, "ids")) {
    const rec = t.records.get(id);
    if (!rec) {
      notFound.push(id);
      continue;
    }
    removeRecord(store, t, rec);
    purged.push(id);
  }
  return { objectType: t.name, purged, notFound };
}
