/**
 * Salesforce field types → the Qobra types they may be configured as, and the raw text forms the
 * connector emits (the mapper in consumers/mapping/ relies on them):
 *  - int, double, currency, percent: exact decimal text, never through a JS float (REST JSON
 *    numbers are read from the response text; Bulk CSV is text already); exponents are expanded.
 *  - date: YYYY-MM-DD; datetime: ISO 8601 in UTC with `Z` (REST's `+0000` is rewritten).
 *  - boolean: true/false; multipicklist: a list (REST and CSV both give `a;b`).
 *  - reference: the 18-character id; a user-typed reference becomes the user's email.
 * Pure functions, no I/O.
 */
import type { QobraType } from "../../../lib/config-common.ts";
import type { RawValue } from "../../../schemas/index.ts";

/** The part of a field describe the connector reads. */
export interface SfField {
  name: string;
  type: string;
  label?: string;
  referenceTo?: string[] | null;
  relationshipName?: string | null;
  polymorphicForeignKey?: boolean;
  nameField?: boolean;
  calculated?: boolean;
  filterable?: boolean;
  sortable?: boolean;
}

/** The Qobra types a field may be configured as (the default first), or why it cannot be synced. */
interface TypeRule {
  allowed: readonly QobraType[];
  default: QobraType | null;
  excluded?: string;
}

const excluded = (reason: string): TypeRule => ({ allowed: [], default: null, excluded: reason });

const TEXTUAL: readonly QobraType[] = ["string", "picklist", "multipicklist", "user"];

/** Salesforce describe type → the Qobra types allowed (the first is the default), or why it is excluded. */
const SF_TYPE_RULES: Record<string, TypeRule> = {
  int: { allowed: ["number", "amount", "percentage", "string"], default: "number" },
  long: { allowed: ["number", "amount", "percentage", "string"], default: "number" },
  double: { allowed: ["number", "amount", "percentage", "string"], default: "number" },
  currency: { allowed: ["amount", "number", "string"], default: "amount" },
  percent: { allowed: ["percentage", "number", "string"], default: "percentage" },
  boolean: { allowed: ["bool", "string"], default: "bool" },
  date: { allowed: ["date", "string"], default: "date" },
  datetime: { allowed: ["date", "string"], default: "date" },
  time: { allowed: ["string"], default: "string" },
  picklist: { allowed: ["picklist", "string", "multipicklist"], default: "picklist" },
  multipicklist: { allowed: ["multipicklist", "string"], default: "multipicklist" },
  combobox: { allowed: TEXTUAL, default: "string" },
  string: { allowed: TEXTUAL, default: "string" },
  textarea: { allowed: TEXTUAL, default: "string" },
  phone: { allowed: ["string"], default: "string" },
  encryptedstring: { allowed: ["string"], default: "string" },
  email: { allowed: ["string", "user", "picklist"], default: "string" },
  url: { allowed: ["string"], default: "string" },
  id: { allowed: ["string", "object"], default: "string" },
  reference: { allowed: ["object", "user", "string"], default: "object" },
  anyType: { allowed: ["string"], default: "string" },
  datacategorygroupreference: { allowed: ["string"], default: "string" },
  address: excluded("a compound address field: configure its components (e.g. BillingStreet, BillingCity, BillingCountry) instead"),
  location: excluded("a compound geolocation field: configure its components (…__Latitude__s, …__Longitude__s) instead"),
  base64: excluded("binary content (files, attachments) is not synced"),
  complexvalue: excluded("a structured metadata value, not record data"),
  json: excluded("a structured JSON value; Qobra has no type for it"),
};

/** Owners that are not users: a reference may point at them, but they have no email. */
const NON_USER_OWNERS = new Set(["Group", "Queue", "Calendar", "Organization"]);

/** The rule of one field, with reference specifics (User references default to user, others refuse user). */
function ruleOf(f: SfField): TypeRule {
  const base = SF_TYPE_RULES[f.type];
  if (!base) return excluded(`field type ${f.type} is not supported`);
  if (f.type !== "reference" || base.excluded) return base;
  const targets = f.referenceTo ?? [];
  const toUser = targets.includes("User");
  if (!toUser) return { allowed: ["object", "string"], default: "object" };
  const onlyOwners = targets.every((t) => t === "User" || NON_USER_OWNERS.has(t));
  return onlyOwners ? { allowed: ["user", "object", "string"], default: "user" } : { allowed: ["object", "user", "string"], default: "object" };
}

/** Why a field cannot be configured as a Qobra type (null when it can). */
export function incompatibility(f: SfField, type: QobraType): string | null {
  const rule = ruleOf(f);
  if (rule.excluded) return `${f.name} cannot be synced: ${rule.excluded}`;
  if (rule.allowed.includes(type)) return null;
  const why = f.type === "reference" && type === "user" ? ` (it references ${(f.referenceTo ?? []).join(", ") || "no object"}, not User)` : "";
  return `${f.name} is a Salesforce ${f.type} field and cannot be a Qobra ${type}${why}; allowed: ${rule.allowed.join(", ")}`;
}

export function defaultQobraType(f: SfField): QobraType | null {
  const rule = ruleOf(f);
  return rule.excluded ? null : rule.default;
}

/** Types Qobra's integration page gives no default for: a table without `fields` reads them, the mapper leaves them out. */
const NO_PAGE_DEFAULT = new Set(["time", "encryptedstring", "anyType", "datacategorygroupreference"]);

/**
 * The plugin's `defaultFieldType`: the Qobra type of a field of this Salesforce type in a table
 * configured without `fields` (the type's default; references are objects here, the mapper makes
 * user references users from their `__id` companion), or undefined when it is left out.
 */
export function defaultFieldType(type: string): QobraType | undefined {
  const rule = SF_TYPE_RULES[type];
  if (!rule || rule.excluded || NO_PAGE_DEFAULT.has(type)) return undefined;
  return rule.default ?? undefined;
}

/** A JSON number as it was written in the response text (never converted to a float). */
export class JsonNumber {
  readonly text: string;
  constructor(text: string) {
    this.text = text;
  }
  toJSON(): string {
    return this.text;
  }
}

/**
 * JSON.parse that keeps every number's source text (JSON.parse source text access, Node >= 21):
 * `12345.678901234`, `1.5E7` or `90071992547409931.25` arrive as JsonNumber, never as floats.
 */
export function parseJsonLossless(text: string): unknown {
  return JSON.parse(text, function reviver(this: unknown, _key: string, value: unknown, context?: { source?: string }) {
    if (typeof value !== "number") return value;
    if (!context || typeof context.source !== "string") {
      throw new Error("this Node.js has no JSON.parse source text access (needed to read Salesforce numbers exactly); use Node 22 or later");
    }
    return new JsonNumber(context.source);
  } as (this: unknown, key: string, value: unknown) => unknown);
}

const NUMBER_TEXT = /^([+-]?)(\d*)(?:\.(\d*))?(?:[eE]([+-]?\d+))?$/;

/**
 * Canonical exact decimal text: no exponent, no leading zeros, no trailing fractional zeros
 * (`1.5E7` → `15000000`, `20.0` → `20`, `-2.5e-3` → `-0.0025`), so REST (Java-double style) and
 * Bulk CSV give the same text. Text that is not a number is returned trimmed, untouched.
 */
export function plainDecimal(text: string): string {
  const t = text.trim();
  const m = NUMBER_TEXT.exec(t);
  if (!m || (m[2] === "" && (m[3] ?? "") === "")) return t;
  const exp = m[4] === undefined ? 0 : Number(m[4]);
  if (Math.abs(exp) > 10_000) return t;
  const sign = m[1] === "-" ? "-" : "";
  let digits = (m[2] ?? "") + (m[3] ?? "");
  let point = (m[2] ?? "").length + exp;
  if (point < 0) {
    digits = "0".repeat(-point) + digits;
    point = 0;
  }
  if (point > digits.length) digits += "0".repeat(point - digits.length);
  const int = digits.slice(0, point).replace(/^0+/, "") || "0";
  const frac = digits.slice(point).replace(/0+$/, "");
  const out = frac ? `${int}.${frac}` : int;
  return out === "0" ? "0" : sign + out;
}

/** REST `2024-01-02T03:04:05.000+0000` and CSV `…Z` → `2024-01-02T03:04:05.000Z`; other offsets are kept. */
export function normalizeDateTime(text: string): string {
  return text.replace(/(?:\+00:?00|Z)$/i, "Z");
}

const NUMERIC = new Set(["int", "long", "double", "currency", "percent"]);

/**
 * One field value in its raw form. `v` is what the API gave: from REST a JSON value (numbers as
 * JsonNumber), from Bulk CSV a string (`""` is null: Salesforce has no empty strings).
 */
export function rawValue(f: SfField, v: unknown, fromCsv: boolean): RawValue {
  if (v === null || v === undefined) return null;
  if (fromCsv && v === "") return null;
  if (v instanceof JsonNumber) return NUMERIC.has(f.type) ? plainDecimal(v.text) : v.text;
  if (typeof v === "boolean") return f.type === "boolean" ? v : String(v);
  if (typeof v === "number") return String(v); // not produced by our parsers; kept for safety
  if (typeof v === "object") return JSON.stringify(v);
  const s = String(v);
  switch (f.type) {
    case "int":
    case "long":
    case "double":
    case "currency":
    case "percent":
      return plainDecimal(s);
    case "boolean":
      return s.toLowerCase() === "true" ? true : s.toLowerCase() === "false" ? false : s;
    case "datetime":
      return normalizeDateTime(s);
    case "multipicklist":
      return s
        .split(";")
        .map((x) => x.trim())
        .filter((x) => x !== "");
    default:
      return s;
  }
}
