// Value formatting as Salesforce writes it: REST JSON and Bulk 2.0 CSV.

import type { FieldDescribe } from "./types.ts";

function pad(n: number, w = 2): string {
  return String(n).padStart(w, "0");
}

/** REST JSON datetime: 2024-01-02T03:04:05.000+0000 (UTC, offset without colon). */
export function restDateTime(ms: number): string {
  const d = new Date(ms);
  return `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())}T${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())}.${pad(d.getUTCMilliseconds(), 3)}+0000`;
}

/** Bulk 2.0 CSV datetime: 2024-01-02T03:04:05.000Z. */
function csvDateTime(ms: number): string {
  return new Date(ms).toISOString();
}

/**
 * Number text as Java's Double.toString writes it (Salesforce serializes double/currency/percent values as Java
 * doubles): decimal notation with at least one fractional digit for 1e-3 <= |x| < 1e7 (15000 → "15000.0"),
 * computerized scientific notation otherwise (15000000 → "1.5E7").
 */
function javaDouble(n: number): string {
  if (!Number.isFinite(n)) return "null";
  if (n === 0) return Object.is(n, -0) ? "-0.0" : "0.0";
  const abs = Math.abs(n);
  if (abs >= 1e-3 && abs < 1e7) {
    const s = String(n);
    return s.includes(".") ? s : `${s}.0`;
  }
  const [mant = "0", exp = "0"] = n.toExponential().split("e");
  return `${mant.includes(".") ? mant : `${mant}.0`}E${exp.replace("+", "")}`;
}

/** JSON text of one stored value of a field. */
export function jsonValue(f: FieldDescribe | undefined, v: unknown): string {
  if (v === null || v === undefined) return "null";
  const type = f?.type ?? typeof v;
  switch (type) {
    case "datetime":
      return typeof v === "number" ? `"${restDateTime(v)}"` : JSON.stringify(v);
    case "int":
    case "long":
      return typeof v === "number" ? String(Math.trunc(v)) : JSON.stringify(v);
    case "double":
    case "currency":
    case "percent":
      return typeof v === "number" ? javaDouble(v) : JSON.stringify(v);
    default:
      if (typeof v === "object") return JSON.stringify(v);
      return JSON.stringify(v);
  }
}

/** CSV text (unquoted) of one stored value; null → null (written as an empty quoted field). */
export function csvValue(f: FieldDescribe | undefined, v: unknown): string | null {
  if (v === null || v === undefined) return null;
  const type = f?.type ?? typeof v;
  switch (type) {
    case "datetime":
      return typeof v === "number" ? csvDateTime(v) : String(v);
    case "int":
    case "long":
      return typeof v === "number" ? String(Math.trunc(v)) : String(v);
    case "double":
    case "currency":
    case "percent":
      return typeof v === "number" ? javaDouble(v) : String(v);
    case "boolean":
      return v ? "true" : "false";
    default:
      return typeof v === "object" ? JSON.stringify(v) : String(v);
  }
}

export const COLUMN_DELIMITERS: Record<string, string> = {
  COMMA: ",",
  TAB: "\t",
  SEMICOLON: ";",
  PIPE: "|",
  CARET: "^",
  BACKQUOTE: "`",
};

/** One CSV line, every field double-quoted (quotes doubled), nulls as "". */
export function csvLine(values: (string | null)[], delimiter: string): string {
  let out = "";
  for (let i = 0; i < values.length; i++) {
    if (i > 0) out += delimiter;
    const v = values[i];
    out += v === null || v === undefined ? '""' : `"${v.replace(/"/g, '""')}"`;
  }
  return out;
}
