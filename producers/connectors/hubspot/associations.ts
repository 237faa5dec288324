/**
 * HubSpot associations as raw fields, and the incremental runs' association sweep. Adding or
 * removing an association moves no timestamp, so a cursor alone never sees it: the sweep compares
 * the associations of every record the pipeline holds (the raw topic, ReadOptions.published) with
 * the portal's, through a 53-bit digest per record, and reads again the records that differ.
 */
import type { Logger } from "../../../lib/log.ts";
import type { RawValue } from "../../../schemas/index.ts";
import type { ReadOptions, SourcePage, SourceRecord } from "../../connector.ts";
import type { HubSpotApi } from "./api.ts";
import type { AssociationTarget, HubSpotObject } from "./api-types.ts";
import type { ReadStats, TablePlan } from "./plan.ts";
import { allAssociations, primaryAssociation } from "./values.ts";

/** Records per page handed to the worker (and per associations batch read: HubSpot's maximum). */
export const BATCH = 1000;

/** Associations of a batch: associated object type → record id → targets. */
export type Associations = Map<string, Map<string, AssociationTarget[]>>;

/** What the sweep needs of the source: its API client, its log, and its record conversion. */
export interface SweepContext {
  api: HubSpotApi;
  log: Logger;
  convert(plan: TablePlan, objects: HubSpotObject[], stats: ReadStats, signal: AbortSignal, assoc?: Associations): Promise<SourceRecord[]>;
}

/**
 * A 53-bit digest of a record's association fields (cyrb53 over their JSON in the plan's order):
 * the sweep keeps one number per record instead of its association lists, and two digests differ
 * for different lists except with probability 2^-53.
 */
function associationDigest(values: RawValue[]): number {
  const s = JSON.stringify(values);
  let h1 = 0xdeadbeef,
    h2 = 0x41c6ce57;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    h1 = Math.imul(h1 ^ c, 2654435761);
    h2 = Math.imul(h2 ^ c, 1597334677);
  }
  h1 = Math.imul(h1 ^ (h1 >>> 16), 2246822507) ^ Math.imul(h2 ^ (h2 >>> 13), 3266489909);
  h2 = Math.imul(h2 ^ (h2 >>> 16), 2246822507) ^ Math.imul(h1 ^ (h1 >>> 13), 3266489909);
  return 4294967296 * (2097151 & h2) + (h1 >>> 0);
}

/** Associations of up to 1,000 records: one batch read per associated type. */
export async function readAssociations(
  api: HubSpotApi,
  plan: TablePlan,
  ids: string[],
  stats: ReadStats,
  signal: AbortSignal,
): Promise<Map<string, Map<string, AssociationTarget[]>>> {
  const assoc = new Map<string, Map<string, AssociationTarget[]>>();
  if (ids.length === 0) return assoc;
  for (const target of new Set(plan.associationFields.map((a) => a.target.api))) {
    stats.associationCalls++;
    assoc.set(target, await api.associations(plan.object.api, target, ids, signal));
  }
  return assoc;
}

/** The raw values of a record's association fields (and their `__type` companions). */
export function associationValues(plan: TablePlan, id: string, assoc: Map<string, Map<string, AssociationTarget[]>>): Record<string, RawValue> {
  const fields: Record<string, RawValue> = {};
  for (const a of plan.associationFields) {
    const targets = assoc.get(a.target.api)?.get(id);
    if (a.mode === "primary") {
      fields[a.field] = primaryAssociation(targets);
      if (!a.spec.references) fields[`${a.field}__type`] = a.target.key;
    } else if (a.mode === "list") fields[a.field] = allAssociations(targets);
    else fields[a.field] = allAssociations(targets).join(";") || null;
  }
  return fields;
}

/** The values of the association fields in the plan's order (what the sweep digests). */
function associationList(plan: TablePlan, fields: Record<string, RawValue>): RawValue[] {
  const out: RawValue[] = [];
  for (const a of plan.associationFields) {
    out.push(fields[a.field] ?? null);
    if (a.mode === "primary" && !a.spec.references) out.push(fields[`${a.field}__type`] ?? null);
  }
  return out;
}

/**
 * An incremental run's association sweep. HubSpot has no signal for an association added or
 * removed (no timestamp moves), so every record's associations must be read each run to see
 * one: those this run read are current; for the others the pipeline holds (the raw topic, via
 * ReadOptions.published: no API call to list them), the associations are read in batches of
 * 1,000 per associated type and compared with what was published. Records that differ are read
 * again (batch read, 100 per call) and published: the join reaches the sink.
 */
export async function* sweepAssociations(s: SweepContext, plan: TablePlan, stats: ReadStats, opts: ReadOptions): AsyncGenerator<SourcePage> {
  if (!opts.published) {
    s.log.warn(
      { table: plan.table.name },
      "association-only changes cannot be detected: the caller gave no published records (run the table through the producer worker)",
    );
    return;
  }
  const held = new Map<string, number>();
  await opts.published((r) => {
    if (r.fields === null || r.thisRun) held.delete(r.externalId);
    else held.set(r.externalId, associationDigest(associationList(plan, r.fields)));
  });
  const sweep = { held: held.size, changed: 0, republished: 0 };
  stats.sweep = sweep;
  let changed: string[] = [];
  let changedAssoc = new Map<string, Map<string, AssociationTarget[]>>();
  const republish = async (): Promise<SourcePage | null> => {
    const objects: HubSpotObject[] = [];
    for (let i = 0; i < changed.length; i += 100) objects.push(...(await s.api.batchRead(plan.object.api, changed.slice(i, i + 100), plan.fetch, opts.signal)));
    changed = [];
    const assoc = changedAssoc;
    changedAssoc = new Map();
    if (objects.length === 0) return null; // archived meanwhile: the archived listing deletes them
    const records = await s.convert(plan, objects, stats, opts.signal, assoc);
    sweep.republished += records.length;
    return { records, sourceTypes: plan.sourceTypes };
  };
  const ids = [...held.keys()];
  for (let i = 0; i < ids.length; i += BATCH) {
    const batch = ids.slice(i, i + BATCH);
    const assoc = await readAssociations(s.api, plan, batch, stats, opts.signal);
    for (const id of batch) {
      if (associationDigest(associationList(plan, associationValues(plan, id, assoc))) === held.get(id)) continue;
      sweep.changed++;
      changed.push(id);
      for (const [target, byId] of assoc) {
        let m = changedAssoc.get(target);
        if (!m) changedAssoc.set(target, (m = new Map()));
        m.set(id, byId.get(id) ?? []);
      }
    }
    if (changed.length >= BATCH) {
      const page = await republish();
      if (page) yield page;
    }
    await opts.heartbeat?.();
  }
  if (changed.length > 0) {
    const page = await republish();
    if (page) yield page;
  }
  if (sweep.changed > 0) s.log.info({ table: plan.table.name, ...sweep }, "association changes found by the sweep");
}
