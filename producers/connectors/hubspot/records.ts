/**
 * From HubSpot API pages to source records: pages regrouped into batches of up to 1,000 objects,
 * and each batch enriched (associations v4 batch reads, owner ids → owner emails with the archived
 * owners read once when an id is unknown, the record's currency) and converted (values.ts). It is
 * kept apart from source.ts, which decides what to read and when (full, incremental, slices,
 * deletes), because the conversion is the same whichever way the objects were read.
 */
import type { RawValue } from "../../../schemas/index.ts";
import type { SourceRecord } from "../../connector.ts";
import type { HubSpotApi } from "./api.ts";
import type { HubSpotObject } from "./api-types.ts";
import { BATCH, associationValues, readAssociations, type Associations } from "./associations.ts";
import { CURRENCY_FIELD } from "./catalog.ts";
import type { HubSpotMetadata, ReadStats, TablePlan } from "./plan.ts";
import { convertProperty, recordName, toIsoInstant } from "./values.ts";

/** What the conversion reads besides the objects: the API (associations) and the portal's metadata (owners, currency). */
export interface ConvertContext {
  api: HubSpotApi;
  metadata: HubSpotMetadata;
}

/** Enriches and converts one batch (≤ 1,000 records); `assoc`: their associations when already read. */
export async function convertObjects(
  ctx: ConvertContext,
  plan: TablePlan,
  objects: HubSpotObject[],
  stats: ReadStats,
  signal: AbortSignal,
  assoc?: Associations,
): Promise<SourceRecord[]> {
  assoc ??= await readAssociations(
    ctx.api,
    plan,
    objects.map((o) => o.id),
    stats,
    signal,
  );
  const currencyProp = plan.object.currencyProperty;
  const ownCurrency = (props: Record<string, unknown>): string | null => {
    const own = currencyProp ? props[currencyProp] : null;
    return typeof own === "string" && own.trim() !== "" ? own.trim() : null;
  };
  if (plan.needsCurrency && plan.currencyFallback === undefined && objects.some((o) => ownCurrency(o.properties ?? {}) === null)) {
    plan.currencyFallback = (await ctx.metadata.account(signal)).currency;
  }
  const unresolvedBefore = plan.ctx.unresolved.size;
  let records = convertBatch(plan, objects, assoc, ownCurrency);
  if (plan.ctx.unresolved.size > unresolvedBefore && plan.ctx.owners && !ctx.metadata.archivedOwnersRead) {
    // an owner id the active owners lack: read the archived owners once, convert the batch again
    await ctx.metadata.archivedOwners(signal);
    plan.ctx.unresolved.clear();
    records = convertBatch(plan, objects, assoc, ownCurrency);
  }
  return records;
}

function convertBatch(
  plan: TablePlan,
  objects: HubSpotObject[],
  assoc: Associations,
  ownCurrency: (props: Record<string, unknown>) => string | null,
): SourceRecord[] {
  return objects.map((o) => {
    const props = o.properties ?? {};
    const fields: Record<string, RawValue> = {};
    for (const f of plan.propertyFields) fields[f.field] = convertProperty(props[f.prop.name], f.prop, f.spec, plan.ctx);
    for (const c of plan.currencyColumns) fields[c.name] ??= props[c.name] ?? null;
    const associated = associationValues(plan, o.id, assoc);
    Object.assign(fields, associated);
    if (plan.needsCurrency) fields[CURRENCY_FIELD] = ownCurrency(props) ?? plan.currencyFallback ?? null;
    const modified = props[plan.object.lastModifiedProperty];
    const updatedAt = typeof modified === "string" && modified !== "" ? toIsoInstant(modified) : o.updatedAt ? new Date(o.updatedAt).toISOString() : null;
    return { externalId: o.id, name: recordName(plan.object.key, props, plan.nameProperties), sourceUpdatedAt: updatedAt, fields };
  });
}

/** Regroups API pages into batches of BATCH records (one associations read per type each), heartbeating per page. */
export async function* inBatches(pages: AsyncIterable<HubSpotObject[]>, heartbeat?: () => Promise<void>): AsyncIterable<HubSpotObject[]> {
  let buffer: HubSpotObject[] = [];
  for await (const page of pages) {
    buffer.push(...page);
    while (buffer.length >= BATCH) {
      yield buffer.slice(0, BATCH);
      buffer = buffer.slice(BATCH);
    }
    await heartbeat?.();
  }
  if (buffer.length > 0) yield buffer;
}
