// SOQL building blocks shared by the compiler (soql.ts) and the WHERE compiler (soql-where.ts): Salesforce's
// query errors (with the "\n<line>\n<caret>\nERROR at Row:r:Column:c\n<text>" message shape), field paths
// resolved against the describes (relationships, polymorphic lookups, compound fields), the compiled query's
// shape and the value comparison ORDER BY and WHERE share.

import type { ObjectModel, OrgModel } from "./model.ts";
import type { FieldDescribe, SimRecord } from "./types.ts";

export class SfError extends Error {
  readonly status: number;
  readonly errorCode: string;
  readonly fields: string[] | undefined;
  constructor(status: number, errorCode: string, message: string, fields?: string[]) {
    super(message);
    this.status = status;
    this.errorCode = errorCode;
    this.fields = fields;
  }
  body(): Record<string, unknown>[] {
    const b: Record<string, unknown> = { message: this.message, errorCode: this.errorCode };
    if (this.fields) b.fields = this.fields;
    return [b];
  }
}

// ---------- error helpers (Salesforce's "\n<line>\n<caret>\nERROR at Row:r:Column:c\n<text>" shape) ----------

export function positionOf(soql: string, needle: string, from = 0): number {
  if (needle === "") return soql.length;
  const re = new RegExp(`(^|[^A-Za-z0-9_.])(${needle.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")})(?![A-Za-z0-9_])`, "i");
  const m = re.exec(soql.slice(from));
  if (!m) {
    const i = soql.toLowerCase().indexOf(needle.toLowerCase(), from);
    return i >= 0 ? i : from;
  }
  return from + m.index + (m[1]?.length ?? 0);
}

export function queryError(errorCode: string, soql: string, pos: number, text: string, status = 400): SfError {
  const before = soql.slice(0, pos);
  const row = before.split("\n").length;
  const lineStart = before.lastIndexOf("\n") + 1;
  const col = pos - lineStart + 1;
  const lineEnd = soql.indexOf("\n", pos);
  const line = soql.slice(lineStart, lineEnd < 0 ? soql.length : lineEnd);
  return new SfError(status, errorCode, `\n${line}\n${" ".repeat(col - 1)}^\nERROR at Row:${row}:Column:${col}\n${text}`);
}

const NO_SUCH_COLUMN = (f: string, o: string) =>
  `No such column '${f}' on entity '${o}'. If you are attempting to use a custom field, be sure to append the '__c' after the custom field name. Please reference your WSDL or the describe call for the appropriate names.`;
const BAD_RELATIONSHIP = (r: string) =>
  `Didn't understand relationship '${r}' in field path. If you are attempting to use a custom relationship, be sure to append the '__r' after the custom relationship name. Please reference your WSDL or the describe call for the appropriate names.`;
export const NOT_SUPPORTED_TYPE = (o: string) =>
  `sObject type '${o}' is not supported. If you are attempting to use a custom object, be sure to append the '__c' after the entity name. Please reference your WSDL or the describe call for the appropriate names.`;

export function unsupported(what: string): SfError {
  return new SfError(400, "SIMULATOR_UNSUPPORTED", `The Salesforce simulator does not implement ${what}`);
}

// ---------- field paths ----------

/** Fields available through a polymorphic relationship (the Name entity). */
const NAME_ENTITY_FIELDS = [
  "Id",
  "Name",
  "Type",
  "Alias",
  "Email",
  "FirstName",
  "LastName",
  "IsActive",
  "Phone",
  "Title",
  "Username",
  "UserRoleId",
  "ProfileId",
  "RecordTypeId",
  "LastReferencedDate",
  "LastViewedDate",
  "NameOrAlias",
  "CommunityNickname",
];
const NAME_ENTITY_TYPES: Record<string, string> = {
  Id: "id",
  IsActive: "boolean",
  LastReferencedDate: "datetime",
  LastViewedDate: "datetime",
  UserRoleId: "reference",
  ProfileId: "reference",
  RecordTypeId: "reference",
};

export interface RelStep {
  /** The reference field on the source object. */
  refField: FieldDescribe;
  /** Canonical relationship name (JSON key). */
  relName: string;
  polymorphic: boolean;
  /** Target model (non-polymorphic, when loaded). */
  target: ObjectModel | undefined;
}

export interface FieldPath {
  steps: RelStep[];
  /** Canonical final field name. */
  name: string;
  /** Final field describe when known. */
  field: FieldDescribe | undefined;
  /** Column header / dotted path with canonical names, e.g. Owner.Email. */
  header: string;
  get(rec: SimRecord): unknown;
  /** Resolves the record that holds the final field (the parent for relationship paths). */
  holder(rec: SimRecord): { model: ObjectModel | undefined; rec: SimRecord } | null;
}

function fieldOfHolder(model: ObjectModel | undefined, name: string): FieldDescribe | undefined {
  return model?.fields.get(name.toLowerCase());
}

export function readField(model: ObjectModel | undefined, rec: SimRecord, name: string, polymorphic: boolean): unknown {
  if (polymorphic) {
    if (name === "Type") return model?.name ?? null;
    if (name === "Name" && model?.nameField) return rec[model.nameField.name] ?? null;
  }
  const f = fieldOfHolder(model, name);
  if (f && f.type === "address") return compoundAddress(model!, rec, f.name);
  if (f && f.type === "location") return compoundLocation(model!, rec, f.name);
  return rec[f ? f.name : name] ?? null;
}

function compoundAddress(model: ObjectModel, rec: SimRecord, compound: string): Record<string, unknown> | null {
  const out: Record<string, unknown> = {};
  let any = false;
  const prefix = compound.replace(/Address$/, "");
  for (const [key, suffix] of [
    ["city", "City"],
    ["country", "Country"],
    ["geocodeAccuracy", "GeocodeAccuracy"],
    ["latitude", "Latitude"],
    ["longitude", "Longitude"],
    ["postalCode", "PostalCode"],
    ["state", "State"],
    ["street", "Street"],
  ] as const) {
    const f = model.fields.get(`${prefix}${suffix}`.toLowerCase());
    const v = f ? (rec[f.name] ?? null) : null;
    if (v !== null) any = true;
    out[key] = v;
  }
  return any ? out : null;
}

function compoundLocation(model: ObjectModel, rec: SimRecord, compound: string): Record<string, unknown> | null {
  const base = compound.replace(/__c$/, "");
  const lat = model.fields.get(`${base}__latitude__s`.toLowerCase()) ?? model.fields.get(`${base}Latitude`.toLowerCase());
  const lon = model.fields.get(`${base}__longitude__s`.toLowerCase()) ?? model.fields.get(`${base}Longitude`.toLowerCase());
  const la = lat ? (rec[lat.name] ?? null) : null;
  const lo = lon ? (rec[lon.name] ?? null) : null;
  return la === null && lo === null ? null : { latitude: la, longitude: lo };
}

export function resolvePath(org: OrgModel, model: ObjectModel, parts: string[], soql: string, searchFrom: number, rawForError: string): FieldPath {
  const steps: RelStep[] = [];
  let cur: ObjectModel | undefined = model;
  let polymorphic = false;
  for (let i = 0; i < parts.length - 1; i++) {
    const relName = parts[i]!;
    if (polymorphic) throw queryError("INVALID_FIELD", soql, positionOf(soql, rawForError, searchFrom), BAD_RELATIONSHIP(relName));
    if (!cur) break; // target object not loaded: path values are null, names unchecked
    const ref: FieldDescribe | undefined = cur.rels.get(relName.toLowerCase());
    if (!ref) throw queryError("INVALID_FIELD", soql, positionOf(soql, rawForError, searchFrom), BAD_RELATIONSHIP(relName));
    const targets: string[] = ref.referenceTo ?? [];
    const poly: boolean = targets.length > 1 || ref.polymorphicForeignKey === true;
    const target: ObjectModel | undefined = poly ? undefined : org.model(targets[0] ?? "");
    steps.push({ refField: ref, relName: ref.relationshipName!, polymorphic: poly, target });
    polymorphic = poly;
    cur = target;
  }
  const last = parts[parts.length - 1]!;
  let name = last;
  let field: FieldDescribe | undefined;
  if (polymorphic) {
    const canon = NAME_ENTITY_FIELDS.find((n) => n.toLowerCase() === last.toLowerCase());
    if (!canon) throw queryError("INVALID_FIELD", soql, positionOf(soql, rawForError, searchFrom), NO_SUCH_COLUMN(last, "Name"));
    name = canon;
    field = { name: canon, type: NAME_ENTITY_TYPES[canon] ?? "string" };
  } else if (cur) {
    field = cur.fields.get(last.toLowerCase());
    if (!field) {
      const pos = positionOf(soql, rawForError, searchFrom);
      throw queryError("INVALID_FIELD", soql, pos, NO_SUCH_COLUMN(last, cur.name));
    }
    name = field.name;
  } else if (steps.length === 0) {
    throw queryError("INVALID_FIELD", soql, positionOf(soql, rawForError, searchFrom), NO_SUCH_COLUMN(last, model.name));
  }
  const header = [...steps.map((s) => s.relName), name].join(".");
  const holder = (rec: SimRecord): { model: ObjectModel | undefined; rec: SimRecord } | null => {
    let r: SimRecord = rec;
    let m: ObjectModel | undefined = model;
    for (const s of steps) {
      const id = r[s.refField.name];
      if (typeof id !== "string") return null;
      const hit = org.lookup(id);
      if (!hit) return null;
      r = hit.rec;
      m = hit.model;
    }
    return { model: m, rec: r };
  };
  const finalName = name;
  const get =
    steps.length === 0
      ? field && (field.type === "address" || field.type === "location")
        ? (rec: SimRecord) => readField(model, rec, finalName, false)
        : (rec: SimRecord) => rec[finalName] ?? null
      : (rec: SimRecord) => {
          const h = holder(rec);
          return h ? readField(h.model, h.rec, finalName, polymorphic) : null;
        };
  return { steps, name, field, header, get, holder };
}

// ---------- compiled query ----------

export interface AggColumn {
  alias: string;
  fn: string;
  path: FieldPath | null;
}

export interface CompiledQuery {
  soql: string;
  model: ObjectModel;
  kind: "records" | "count" | "aggregate";
  columns: FieldPath[];
  aggregates: AggColumn[];
  where: ((rec: SimRecord) => boolean) | null;
  compare: ((a: SimRecord, b: SimRecord) => number) | null;
  limit: number | undefined;
  offset: number | undefined;
  /** Constructs Bulk API 2.0 rejects. */
  bulkUnsupported: string | null;
  /** Number of long text custom fields selected (two or more cap the REST batch size at 200). */
  longTextFields: number;
}

export function splitPath(raw: string, alias: string | undefined, objectName: string): string[] {
  const parts = raw.split(".");
  if (parts.length > 1) {
    const head = parts[0]!.toLowerCase();
    if ((alias && head === alias.toLowerCase()) || head === objectName.toLowerCase()) parts.shift();
  }
  return parts;
}

export interface CompileOptions {
  /** Clock for date literals such as TODAY. */
  now: number;
}

export function compareValues(a: unknown, b: unknown): number {
  if (typeof a === "number" && typeof b === "number") return a - b;
  if (typeof a === "boolean" && typeof b === "boolean") return a === b ? 0 : a ? 1 : -1;
  const sa = String(a).toUpperCase();
  const sb = String(b).toUpperCase();
  return sa < sb ? -1 : sa > sb ? 1 : 0;
}
