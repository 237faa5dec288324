/** Time parsing and formatting shared by the operations commands, the server and the page's API. */
import { ConfigError } from "../lib/errors.ts";

const UNITS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 7 * 86_400_000 };

/**
 * A point in time given on the command line: an ISO 8601 date or date-time (a date alone, or a
 * date-time without an offset, is read as UTC), epoch milliseconds, or a duration ago (`90s`,
 * `30m`, `2h`, `1d`, `1w`, also `2h30m`). Returns epoch milliseconds.
 */
export function parseSince(text: string, now = Date.now()): number {
  const t = text.trim();
  if (/^\d{12,}$/.test(t)) return Number(t);
  const rel = /^(?:\d+(?:\.\d+)?[smhdw])+$/i;
  if (rel.test(t)) {
    let ms = 0;
    for (const m of t.matchAll(/(\d+(?:\.\d+)?)([smhdw])/gi)) ms += Number(m[1]) * UNITS[m[2]!.toLowerCase()]!;
    return Math.round(now - ms);
  }
  if (/^\d{4}-\d{2}-\d{2}$/.test(t)) return checked(Date.parse(`${t}T00:00:00Z`), text);
  const iso = /^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:?\d{2})?$/i;
  if (iso.test(t)) {
    const hasZone = /(Z|[+-]\d{2}:?\d{2})$/i.test(t);
    return checked(Date.parse(`${t.replace(" ", "T")}${hasZone ? "" : "Z"}`), text);
  }
  throw new ConfigError(
    `--since ${JSON.stringify(text)} is not a time: give an ISO date or date-time (2026-05-01, 2026-05-01T08:00:00+02:00), epoch milliseconds, or a duration ago (30m, 2h, 1d)`,
  );
}

function checked(ms: number, text: string): number {
  if (Number.isNaN(ms)) throw new ConfigError(`--since ${JSON.stringify(text)} is not a valid date`);
  return ms;
}

/** 3 h 04 m, 2 m 05 s, 12 s, 850 ms. */
export function formatDuration(ms: number | null | undefined): string {
  if (ms === null || ms === undefined || !Number.isFinite(ms)) return "—";
  const neg = ms < 0;
  ms = Math.abs(ms);
  let out: string;
  if (ms < 1000) out = `${Math.round(ms)} ms`;
  else if (ms < 60_000) out = `${Math.floor(ms / 1000)} s`;
  else if (ms < 3_600_000) out = `${Math.floor(ms / 60_000)} m ${String(Math.floor((ms % 60_000) / 1000)).padStart(2, "0")} s`;
  else if (ms < 86_400_000) out = `${Math.floor(ms / 3_600_000)} h ${String(Math.floor((ms % 3_600_000) / 60_000)).padStart(2, "0")} m`;
  else out = `${Math.floor(ms / 86_400_000)} d ${Math.floor((ms % 86_400_000) / 3_600_000)} h`;
  return neg ? `-${out}` : out;
}

/** 1,234,567 */
export function formatCount(n: number): string {
  return Math.round(n)
    .toString()
    .replace(/\B(?=(\d{3})+(?!\d))/g, ",");
}

export function isoOrNull(ms: number | null | undefined): string | null {
  return ms === null || ms === undefined || !Number.isFinite(ms) ? null : new Date(ms).toISOString();
}
