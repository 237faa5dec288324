/**
 * Pure conversions of HubSpot property values to the raw values the mapper expects
 * (consumers/mapping/convert.ts): numbers stay exact decimal text, `date` properties become
 * `YYYY-MM-DD`, `datetime` properties ISO 8601 instants with `Z`, booleans booleans, owner ids
 * the owners' emails, pipeline stages their labels (picklist fields), associations the
 * associated record's id. No I/O, no clock.
 */
import type { FieldSpec } from "../../../lib/config-common.ts";
import type { RawValue } from "../../../schemas/index.ts";
import type { AssociationTarget, OwnerDef, PropertyDef } from "./api-types.ts";

/** Owner id (and HubSpot user id, archived owners included) → email. */
export interface OwnerIndex {
  byOwnerId: Map<string, string>;
  byUserId: Map<string, string>;
}

export function ownerIndex(owners: OwnerDef[]): OwnerIndex {
  const byOwnerId = new Map<string, string>();
  const byUserId = new Map<string, string>();
  // Active owners first, so an id shared with an archived owner resolves to the active one.
  const sorted = [...owners].sort((a, b) => Number(a.archived ?? false) - Number(b.archived ?? false));
  for (const o of sorted) {
    if (!o.email) continue;
    if (!byOwnerId.has(String(o.id))) byOwnerId.set(String(o.id), o.email);
    for (const u of [o.userId, o.userIdIncludingInactive]) {
      if (u !== null && u !== undefined && !byUserId.has(String(u))) byUserId.set(String(u), o.email);
    }
  }
  return { byOwnerId, byUserId };
}

export interface ValueContext {
  owners: OwnerIndex | null;
  /** Per property: internal value → label (pipelines and stages), for picklist fields. */
  labels: Map<string, Map<string, string>>;
  /** The portal's time zone: the day of a `datetime` read as a calendar date (format: date). */
  timeZone: string;
  /** Owner ids that resolved to no email (reported by the connector). */
  unresolved: Set<string>;
}

const ISO_UTC = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?Z$/;
const DATE_ONLY = /^\d{4}-\d{2}-\d{2}$/;
const EPOCH_MS = /^-?\d{1,15}$/;

/** An instant from HubSpot's forms (epoch-ms text, ISO 8601) → epoch ms, or undefined. */
export function instantMs(value: string): number | undefined {
  const v = value.trim();
  if (EPOCH_MS.test(v)) return Number(v);
  if (DATE_ONLY.test(v)) return Date.parse(`${v}T00:00:00Z`);
  const ms = Date.parse(v);
  return Number.isFinite(ms) ? ms : undefined;
}

/** A `datetime` value → ISO 8601 with Z (an ISO UTC value is kept as is, digits and all). */
export function toIsoInstant(value: string): string | null {
  const v = value.trim();
  if (v === "") return null;
  if (ISO_UTC.test(v)) return v;
  const ms = instantMs(v);
  return ms === undefined ? v : new Date(ms).toISOString();
}

/** A `date` value (midnight UTC in HubSpot: `YYYY-MM-DD`, ISO or epoch ms) → `YYYY-MM-DD`. */
function toCalendarDate(value: string): string | null {
  const v = value.trim();
  if (v === "") return null;
  if (DATE_ONLY.test(v)) return v;
  const ms = instantMs(v);
  return ms === undefined ? v : new Date(ms).toISOString().slice(0, 10);
}

/** The calendar day of an instant in a time zone. */
function dayInZone(ms: number, timeZone: string): string {
  const parts = new Intl.DateTimeFormat("en-CA", { timeZone, year: "numeric", month: "2-digit", day: "2-digit" }).formatToParts(new Date(ms));
  const get = (t: string) => parts.find((p) => p.type === t)?.value ?? "";
  return `${get("year")}-${get("month")}-${get("day")}`;
}

/** Properties holding HubSpot user ids rather than owner ids (goals' hs_assignee_user_id, hs_created_by_user_id, …). */
function holdsUserIds(prop: PropertyDef): boolean {
  return /user_ids?$/.test(prop.name);
}

/**
 * Whether a property names HubSpot users, whatever its `type`: a "HubSpot user" property (the
 * properties API gives it `type: enumeration`, `fieldType: select`, `referencedObjectType: OWNER`),
 * the owner properties (`hubspot_owner_id`, `hs_…_owner_id`) and the user-id ones (goals'
 * `hs_assignee_user_id` is a `number`, as are `hs_created_by_user_id` and `hs_assigned_user…`).
 * Such a property maps to a Qobra user: its ids become the users' e-mails.
 */
export function referencesUsers(prop: PropertyDef): boolean {
  const ref = (prop.referencedObjectType ?? "").toUpperCase();
  return ref === "OWNER" || ref === "USER" || prop.type === "user" || /(^|_)owner_id$|user_ids?$|^hs_assigned_user/.test(prop.name);
}

/** One owner/user id → email (archived owners included); unresolved ids stay as they are, and are reported. */
function ownerEmail(id: string, prop: PropertyDef, ctx: ValueContext): string {
  const v = id.trim();
  if (v.includes("@") || !ctx.owners) return v;
  const { byOwnerId, byUserId } = ctx.owners;
  const email = holdsUserIds(prop) ? (byUserId.get(v) ?? byOwnerId.get(v)) : (byOwnerId.get(v) ?? byUserId.get(v));
  if (email) return email;
  ctx.unresolved.add(v);
  return v;
}

/** Whether a value of this HubSpot property type can feed this Qobra type (null: yes; else why not). */
export function incompatibility(prop: PropertyDef, qobraType: FieldSpec["type"]): string | null {
  const t = prop.type;
  const ok: Record<string, readonly string[]> = {
    number: ["number", "amount", "percentage", "string"],
    string: ["string", "picklist", "multipicklist", "user"],
    phone_number: ["string"],
    enumeration: ["picklist", "multipicklist", "user", "string"],
    bool: ["bool", "string", "picklist"],
    date: ["date", "string"],
    datetime: ["date", "string"],
    object_coordinates: ["string"],
    json: ["string"],
  };
  const allowed = referencesUsers(prop) ? [...new Set([...(ok[t] ?? ["string"]), "user"])] : (ok[t] ?? ["string"]);
  if (qobraType === "object")
    return `${prop.name} is a property (${t}); object fields are associations, named after the associated object type (companies, contacts, deals, …)`;
  if (!allowed.includes(qobraType)) return `property ${prop.name} is a HubSpot ${t}, which cannot be a Qobra ${qobraType} (use ${allowed.join(" or ")})`;
  return null;
}

/** A property's value for a configured field. */
export function convertProperty(value: string | null | undefined, prop: PropertyDef, spec: FieldSpec, ctx: ValueContext): RawValue {
  if (value === null || value === undefined) return null;
  // A user field: the ids (owner or user ids, ";"-separated for several) become e-mails, whatever the property's type.
  if (spec.type === "user") {
    const parts = value
      .split(";")
      .map((p) => p.trim())
      .filter((p) => p !== "");
    return parts.length === 0 ? null : parts.map((p) => ownerEmail(p, prop, ctx)).join(";");
  }
  switch (prop.type) {
    case "number": {
      const v = value.trim();
      return v === "" ? null : v;
    }
    case "bool": {
      const v = value.trim().toLowerCase();
      if (v === "") return null;
      if (spec.type !== "bool") return v;
      return v === "true" ? true : v === "false" ? false : value;
    }
    case "date": {
      const d = toCalendarDate(value);
      if (d === null || spec.type !== "date") return d;
      return spec.format === "datetime" && DATE_ONLY.test(d) ? `${d}T00:00:00.000Z` : d;
    }
    case "datetime": {
      const iso = toIsoInstant(value);
      if (iso === null || spec.type !== "date" || spec.format !== "date") return iso;
      const ms = instantMs(iso);
      return ms === undefined ? iso : dayInZone(ms, ctx.timeZone);
    }
    default: {
      if (prop.type === "enumeration" && value.trim() === "") return null;
      const labels = spec.type === "picklist" ? ctx.labels.get(prop.name) : undefined;
      if (labels) return labels.get(value) ?? value;
      return value;
    }
  }
}

/** `sourceTypes` entry of a property field. */
export function sourceTypeOf(prop: PropertyDef): string {
  return `hs:${prop.type}`;
}

/** HUBSPOT_DEFINED "Primary" association type ids (contact→company 1, company→contact 2, deal→company 5, company→deal 6, company→ticket 25, ticket→company 26). */
const PRIMARY_TYPE_IDS = new Set([1, 2, 5, 6, 25, 26]);

function isPrimary(t: AssociationTarget): boolean {
  return t.types.some((ty) => ty.label === "Primary" || (ty.category === "HUBSPOT_DEFINED" && PRIMARY_TYPE_IDS.has(ty.typeId)));
}

const byIdNum = (a: string, b: string) => a.length - b.length || (a < b ? -1 : a > b ? 1 : 0);

/**
 * The associated id an `object` field carries: the primary association if there is one (several:
 * the lowest id), else the lowest associated id; null without associations.
 */
export function primaryAssociation(targets: AssociationTarget[] | undefined): string | null {
  if (!targets || targets.length === 0) return null;
  const primary = targets
    .filter(isPrimary)
    .map((t) => t.id)
    .sort(byIdNum);
  if (primary.length > 0) return primary[0]!;
  return targets.map((t) => t.id).sort(byIdNum)[0]!;
}

/** Every associated id, numerically sorted and distinct (multipicklist and string association fields). */
export function allAssociations(targets: AssociationTarget[] | undefined): string[] {
  return [...new Set((targets ?? []).map((t) => t.id))].sort(byIdNum);
}

/** The record's display name. Contacts: email, else "first last". */
export function recordName(objectType: string, props: Record<string, string | null>, nameProperties: string[]): string | null {
  for (const p of nameProperties) {
    const v = props[p];
    if (typeof v === "string" && v.trim() !== "") return v;
  }
  if (objectType === "contacts") {
    const full = [props.firstname, props.lastname].filter((x): x is string => typeof x === "string" && x.trim() !== "").join(" ");
    if (full !== "") return full;
  }
  return null;
}
