/**
 * Pure conversions from source text forms to the mapped representation of each Qobra type.
 * No I/O, no clock, no globals. Each converter returns a value or throws a ConversionError that
 * the mapper turns into a per-record issue (dead letter), never a crash and never a silent null.
 *
 * Representations (the public contract of the mapped topics, see README):
 *  - number, percentage, amount value: canonical exact decimal text ("-1234.5", "0.000001"),
 *    never a float; percentage is in percent points (12.5 means 12.5 %).
 *  - date: days since 1970-01-01 (Avro `date`) — a calendar date is never shifted by a zone.
 *  - datetime: microseconds since the epoch, UTC (Avro `timestamp-micros`).
 */
import type { RawValue } from "../../schemas/index.ts";
import { MappingError } from "../../lib/errors.ts";

/** One value that cannot be converted; `kind` is the issue code (invalid_number, no_zone, …). */
export class ConversionError extends MappingError {
  constructor(code: string, message: string) {
    super(code, message);
  }
}

const DECIMAL = /^([+-])?(\d*)(?:\.(\d*))?(?:[eE]([+-]?\d+))?$/;
/** The common form, canonicalized without the general path: optional minus, digits, optional fraction. */
const PLAIN_DECIMAL = /^(-?)(\d+)(?:\.(\d+))?$/;

/** Canonical exact decimal text: no exponent, no leading zeros, no trailing fractional zeros. */
export function toDecimal(value: RawValue | number): string {
  if (typeof value === "string") {
    const m = PLAIN_DECIMAL.exec(value);
    if (m) {
      let int = m[2]!;
      if (int.length > 1 && int.charCodeAt(0) === 48) int = int.replace(/^0+/, "") || "0";
      let frac = m[3] ?? "";
      if (frac !== "" && frac.charCodeAt(frac.length - 1) === 48) frac = frac.replace(/0+$/, "");
      const out = frac ? `${int}.${frac}` : int;
      return out === "0" ? "0" : m[1] + out;
    }
  }
  if (typeof value === "number") {
    if (!Number.isFinite(value)) throw new ConversionError("not_finite", `${value} is not a finite number`);
    value = String(value);
  }
  if (typeof value !== "string") throw new ConversionError("invalid_type", `expected a decimal number, got ${describe(value)}`);
  const text = value.trim().replace(/_/g, "");
  if (/^[+-]?(nan|inf|infinity)$/i.test(text)) throw new ConversionError("not_finite", `${value} is not a finite number`);
  const m = DECIMAL.exec(text);
  if (!m || (m[2] === "" && (m[3] ?? "") === "")) throw new ConversionError("invalid_number", `${JSON.stringify(value)} is not a decimal number`);
  const sign = m[1] === "-" ? "-" : "";
  let digits = (m[2] ?? "") + (m[3] ?? "");
  let point = (m[2] ?? "").length; // position of the decimal point within digits
  const exp = m[4] ? Number(m[4]) : 0;
  if (Math.abs(exp) > 10_000) throw new ConversionError("out_of_range", `${value} is out of range`);
  point += exp;
  if (point < 0) {
    digits = "0".repeat(-point) + digits;
    point = 0;
  }
  if (point > digits.length) {
    digits += "0".repeat(point - digits.length);
  }
  const int = digits.slice(0, point).replace(/^0+/, "") || "0";
  const frac = digits.slice(point).replace(/0+$/, "");
  const out = frac ? `${int}.${frac}` : int;
  return out === "0" ? "0" : sign + out;
}

export function toBool(value: RawValue): boolean {
  if (typeof value === "boolean") return value;
  if (typeof value === "string") {
    const v = value.trim().toLowerCase();
    if (["true", "t", "yes", "y", "1", "on"].includes(v)) return true;
    if (["false", "f", "no", "n", "0", "off"].includes(v)) return false;
  }
  throw new ConversionError("invalid_bool", `${describe(value)} is not a boolean`);
}

export function toText(value: RawValue): string {
  if (typeof value === "string") return value;
  if (typeof value === "boolean") return String(value);
  throw new ConversionError("invalid_type", `expected text, got ${describe(value)}`);
}

/** A multipicklist: a list stays a list; text is split on `;` (Salesforce and HubSpot's separator). */
export function toList(value: RawValue): string[] {
  if (Array.isArray(value))
    return value
      .filter((v): v is string => v !== null)
      .map((v) => v.trim())
      .filter((v) => v !== "");
  if (typeof value === "string")
    return value
      .split(";")
      .map((v) => v.trim())
      .filter((v) => v !== "");
  throw new ConversionError("invalid_type", `expected a list, got ${describe(value)}`);
}

const DATE = /^(\d{4,})-(\d{2})-(\d{2})$/;
const DAY_MS = 86_400_000;
/** Avro `timestamp-micros` must stay exact in a JS number: |µs| < 2^53, i.e. years 1685..2255. */
const MAX_MICROS = Number.MAX_SAFE_INTEGER;

/** A calendar date → days since 1970-01-01. A datetime's date part is NOT taken: that would hide a zone question. */
export function toDate(value: RawValue): number {
  if (typeof value !== "string") throw new ConversionError("invalid_type", `expected a date, got ${describe(value)}`);
  const text = value.trim();
  if (/infinity/i.test(text)) throw new ConversionError("out_of_range", `${text} is not a calendar date`);
  if (/\bBC$/i.test(text)) throw new ConversionError("out_of_range", `${text} is before the common era`);
  const m = DATE.exec(text);
  if (!m) throw new ConversionError("invalid_date", `${JSON.stringify(text)} is not a date (YYYY-MM-DD)`);
  const y = Number(m[1]),
    mo = Number(m[2]),
    d = Number(m[3]);
  if (!realDate(y, mo, d)) throw new ConversionError("invalid_date", `${text} is not a real date`);
  if (y > 9999) throw new ConversionError("out_of_range", `${text} is beyond year 9999`);
  return Math.round(utc(y, mo, d) / DAY_MS);
}

const DATETIME = /^(\d{4,})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,9}))?)?\s*(Z|[+-]\d{2}(?::?\d{2}(?::?\d{2})?)?)?$/i;

/**
 * An instant → microseconds since the epoch (UTC). Accepts ISO 8601 / RFC 3339 and PostgreSQL's
 * output (`2024-01-02 03:04:05.123456+00`), and Salesforce's `+0000`. A value without a zone is
 * refused: the producer must say which zone it was read in.
 */
export function toInstantMicros(value: RawValue): number {
  if (typeof value !== "string") throw new ConversionError("invalid_type", `expected a date-time, got ${describe(value)}`);
  const text = value.trim();
  if (/infinity/i.test(text)) throw new ConversionError("out_of_range", `${text} is not an instant`);
  if (/\bBC$/i.test(text)) throw new ConversionError("out_of_range", `${text} is before the common era`);
  const m = DATETIME.exec(text);
  if (!m) {
    if (DATE.test(text)) throw new ConversionError("no_time", `${text} is a calendar date, not an instant; configure the field with format: date`);
    throw new ConversionError("invalid_datetime", `${JSON.stringify(text)} is not an ISO 8601 date-time`);
  }
  if (!m[8]) throw new ConversionError("no_zone", `${text} has no time zone; cannot tell which instant it is`);
  const y = Number(m[1]),
    mo = Number(m[2]),
    d = Number(m[3]),
    h = Number(m[4]),
    mi = Number(m[5]),
    s = Number(m[6] ?? 0);
  if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 24 || mi > 59 || s > 60) throw new ConversionError("invalid_datetime", `${text} is not a valid date-time`);
  const fraction = (m[7] ?? "").padEnd(6, "0");
  if (fraction.length > 6 && /[1-9]/.test(fraction.slice(6))) throw new ConversionError("precision", `${text} has sub-microsecond digits that would be lost`);
  const micros = Number(fraction.slice(0, 6));
  let offsetMin = 0;
  const zone = m[8].toUpperCase();
  if (zone !== "Z") {
    const sign = zone.startsWith("-") ? -1 : 1;
    const digits = zone.slice(1).replace(/:/g, "");
    offsetMin = sign * (Number(digits.slice(0, 2)) * 60 + Number(digits.slice(2, 4) || "0"));
  }
  const ms = utc(y, mo, d, h, mi, s) - offsetMin * 60_000;
  if (!realDate(y, mo, d)) throw new ConversionError("invalid_datetime", `${text} is not a real date`);
  const total = ms * 1000 + micros;
  if (!Number.isSafeInteger(total) || Math.abs(total) > MAX_MICROS)
    throw new ConversionError("out_of_range", `${text} is outside the representable range (years 1685-2255)`);
  return total;
}

/** ISO 4217 currency code, upper-cased; unknown codes are refused. */
const CURRENCIES = new Set(Intl.supportedValuesOf("currency"));
export function toCurrency(value: RawValue): string {
  if (typeof value !== "string") throw new ConversionError("invalid_currency", `expected an ISO 4217 currency code, got ${describe(value)}`);
  const code = value.trim().toUpperCase();
  if (!/^[A-Z]{3}$/.test(code) || !CURRENCIES.has(code))
    throw new ConversionError("invalid_currency", `${JSON.stringify(value)} is not an ISO 4217 currency code`);
  return code;
}

const MONTH_DAYS = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

/** Whether y-mo-d is a day of the (proleptic Gregorian) calendar. */
function realDate(y: number, mo: number, d: number): boolean {
  if (mo < 1 || mo > 12 || d < 1) return false;
  const leap = y % 4 === 0 && (y % 100 !== 0 || y % 400 === 0);
  return d <= (mo === 2 && leap ? 29 : MONTH_DAYS[mo - 1]!);
}

/** Epoch milliseconds of a UTC wall time; fields past their range roll over (Date's arithmetic). */
function utc(y: number, mo: number, d: number, h = 0, mi = 0, s = 0): number {
  // Date.UTC reads years 0-99 as 1900-1999: those take the longer way.
  if (y >= 100) return Date.UTC(y, mo - 1, d, h, mi, s);
  const dt = new Date(0);
  dt.setUTCFullYear(y, mo - 1, d);
  dt.setUTCHours(h, mi, s, 0);
  return dt.getTime();
}

function describe(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return "a list";
  return `${typeof v} ${JSON.stringify(v)}`;
}
