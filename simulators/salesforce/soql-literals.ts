// SOQL literal handling for the WHERE compiler (soql-where.ts): string unescaping, LIKE patterns turned into
// regular expressions, and date literals (TODAY, LAST_N_DAYS:n, ...) as UTC ranges.
// Split from soql-where.ts so the compiler itself stays readable; these are pure functions with no org state.

export const STRINGISH = new Set([
  "string",
  "picklist",
  "multipicklist",
  "textarea",
  "email",
  "phone",
  "url",
  "combobox",
  "encryptedstring",
  "id",
  "reference",
]);

export function unescapeSoqlString(raw: string, keepLikeEscapes: boolean): string {
  const body = raw.startsWith("'") && raw.endsWith("'") ? raw.slice(1, -1) : raw;
  let out = "";
  for (let k = 0; k < body.length; k++) {
    const ch = body[k]!;
    if (ch !== "\\") {
      out += ch;
      continue;
    }
    const nx = body[++k] ?? "";
    switch (nx) {
      case "n":
      case "N":
        out += "\n";
        break;
      case "r":
      case "R":
        out += "\r";
        break;
      case "t":
      case "T":
        out += "\t";
        break;
      case "b":
      case "B":
        out += "\b";
        break;
      case "f":
      case "F":
        out += "\f";
        break;
      case "%":
      case "_":
        out += keepLikeEscapes ? `\\${nx}` : `\\${nx}`;
        break;
      default:
        out += nx;
    }
  }
  return out;
}

export function likeToRegExp(pattern: string): RegExp {
  let re = "";
  for (let k = 0; k < pattern.length; k++) {
    const ch = pattern[k]!;
    if (ch === "\\" && (pattern[k + 1] === "%" || pattern[k + 1] === "_")) {
      re += pattern[++k];
      continue;
    }
    if (ch === "%") re += ".*";
    else if (ch === "_") re += ".";
    else re += ch.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  }
  return new RegExp(`^${re}$`, "is");
}

export type Range = [number, number];

const DAY = 86_400_000;

function startOfDay(ms: number): number {
  return Math.floor(ms / DAY) * DAY;
}

function shiftMonths(ms: number, months: number): number {
  const d = new Date(ms);
  return Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + months, 1);
}

function unitStart(now: number, unit: "DAY" | "WEEK" | "MONTH" | "QUARTER" | "YEAR", offset: number): number {
  const d = new Date(now);
  switch (unit) {
    case "DAY":
      return startOfDay(now) + offset * DAY;
    case "WEEK":
      return startOfDay(now) - d.getUTCDay() * DAY + offset * 7 * DAY;
    case "MONTH":
      return shiftMonths(Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), 1), offset);
    case "QUARTER":
      return shiftMonths(Date.UTC(d.getUTCFullYear(), Math.floor(d.getUTCMonth() / 3) * 3, 1), offset * 3);
    case "YEAR":
      return Date.UTC(d.getUTCFullYear() + offset, 0, 1);
  }
}

/** [start, end) in UTC ms for a SOQL date literal (org time zone taken as UTC, fiscal year = calendar year). */
export function dateLiteralRange(lit: string, n: number | undefined, now: number): Range | null {
  const L = lit.toUpperCase().split(":")[0]!;
  const u = (unit: Parameters<typeof unitStart>[1], from: number, to: number): Range => [unitStart(now, unit, from), unitStart(now, unit, to)];
  const k = n ?? 0;
  switch (L) {
    case "YESTERDAY":
      return u("DAY", -1, 0);
    case "TODAY":
      return u("DAY", 0, 1);
    case "TOMORROW":
      return u("DAY", 1, 2);
    case "LAST_WEEK":
      return u("WEEK", -1, 0);
    case "THIS_WEEK":
      return u("WEEK", 0, 1);
    case "NEXT_WEEK":
      return u("WEEK", 1, 2);
    case "LAST_MONTH":
      return u("MONTH", -1, 0);
    case "THIS_MONTH":
      return u("MONTH", 0, 1);
    case "NEXT_MONTH":
      return u("MONTH", 1, 2);
    case "LAST_90_DAYS":
      return u("DAY", -90, 1);
    case "NEXT_90_DAYS":
      return u("DAY", 1, 91);
    case "THIS_QUARTER":
    case "THIS_FISCAL_QUARTER":
      return u("QUARTER", 0, 1);
    case "LAST_QUARTER":
    case "LAST_FISCAL_QUARTER":
      return u("QUARTER", -1, 0);
    case "NEXT_QUARTER":
    case "NEXT_FISCAL_QUARTER":
      return u("QUARTER", 1, 2);
    case "THIS_YEAR":
    case "THIS_FISCAL_YEAR":
      return u("YEAR", 0, 1);
    case "LAST_YEAR":
    case "LAST_FISCAL_YEAR":
      return u("YEAR", -1, 0);
    case "NEXT_YEAR":
    case "NEXT_FISCAL_YEAR":
      return u("YEAR", 1, 2);
    case "LAST_N_DAYS":
      return u("DAY", -k, 1);
    case "NEXT_N_DAYS":
      return u("DAY", 1, k + 1);
    case "N_DAYS_AGO":
      return u("DAY", -k, -k + 1);
    case "LAST_N_WEEKS":
      return u("WEEK", -k, 0);
    case "NEXT_N_WEEKS":
      return u("WEEK", 1, k + 1);
    case "N_WEEKS_AGO":
      return u("WEEK", -k, -k + 1);
    case "LAST_N_MONTHS":
      return u("MONTH", -k, 0);
    case "NEXT_N_MONTHS":
      return u("MONTH", 1, k + 1);
    case "N_MONTHS_AGO":
      return u("MONTH", -k, -k + 1);
    case "LAST_N_QUARTERS":
    case "LAST_N_FISCAL_QUARTERS":
      return u("QUARTER", -k, 0);
    case "NEXT_N_QUARTERS":
    case "NEXT_N_FISCAL_QUARTERS":
      return u("QUARTER", 1, k + 1);
    case "N_QUARTERS_AGO":
    case "N_FISCAL_QUARTERS_AGO":
      return u("QUARTER", -k, -k + 1);
    case "LAST_N_YEARS":
    case "LAST_N_FISCAL_YEARS":
      return u("YEAR", -k, 0);
    case "NEXT_N_YEARS":
    case "NEXT_N_FISCAL_YEARS":
      return u("YEAR", 1, k + 1);
    case "N_YEARS_AGO":
    case "N_FISCAL_YEARS_AGO":
      return u("YEAR", -k, -k + 1);
    default:
      return null;
  }
}

export function isoDate(ms: number): string {
  return new Date(ms).toISOString().slice(0, 10);
}
