/**
 * The SOQL the Salesforce source writes: the incremental cursor (SalesforceState) and its lower
 * bound, dateTime literals, query paths, and the table's custom `where`, parsed and re-composed by
 * a SOQL parser so that what is sent is what the parser understood.
 */
import { composeQuery, parseQuery } from "@jetstreamapp/soql-parser-js";
import { ConfigError } from "../../../lib/errors.ts";

/** The cursor saved after each acknowledged page (JSON in the sync.state topic). */
export interface SalesforceState {
  v: 1;
  /** SystemModstamp or LastModifiedDate. */
  field: string;
  /** The cursor timestamp, ISO 8601 UTC. */
  ts: string;
  /** The Id of the last record at ts (tie-break). */
  id: string | null;
  /** Digest of object, cursor field, where and fields: a change restarts from the complete history. */
  sig: string;
  /** Records the table's last full read found: the next full read picks REST or Bulk from it, without a REST page to learn it. */
  n?: number;
  /** How long the table's last Bulk API 2.0 job took (ms): the next job's first status poll waits about that long. */
  bulkMs?: number;
}

/** What a read learns for the next run of its table, carried in its state. */
export type ReadMemo = Pick<SalesforceState, "n" | "bulkMs">;

/** The memo of a saved state (any run's, full or incremental) when it describes the same read (same digest), else nothing. */
export function memoOf(raw: unknown, sig: string): ReadMemo {
  const s = raw as Partial<SalesforceState> | null;
  if (!s || typeof s !== "object" || s.sig !== sig) return {};
  const memo: ReadMemo = {};
  if (typeof s.n === "number" && Number.isInteger(s.n) && s.n >= 0) memo.n = s.n;
  if (typeof s.bulkMs === "number" && Number.isFinite(s.bulkMs) && s.bulkMs > 0) memo.bulkMs = Math.round(s.bulkMs);
  return memo;
}

/** A position in the cursor order: (timestamp, Id). */
export interface Cursor {
  ms: number;
  id: string;
}

export function maxCursor(a: Cursor | null, b: Cursor | null): Cursor | null {
  if (!a) return b;
  if (!b) return a;
  if (b.ms !== a.ms) return b.ms > a.ms ? b : a;
  return b.id > a.id ? b : a;
}

/** The REST path of a query (queryAll also returns deleted and archived rows). */
export function queryPath(apiPath: string, soql: string, all: boolean): string {
  return `${apiPath}/${all ? "queryAll" : "query"}?q=${encodeURIComponent(soql)}`;
}

/** SOQL dateTime literal (documented form, whole seconds): 2024-01-02T03:04:05Z. */
export function soqlDateTime(ms: number): string {
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, "Z");
}

/**
 * The incremental lower bound: inclusive from (cursor − lookback) rounded down to the second;
 * with no lookback, strictly after the cursor or on it with a greater Id (the tie-break).
 */
export function cursorCondition(field: string, s: SalesforceState, lookbackSeconds: number): string {
  const t = Date.parse(s.ts) - lookbackSeconds * 1000;
  const floor = cursorLowerMs(s, lookbackSeconds);
  const lit = soqlDateTime(floor);
  if (lookbackSeconds === 0 && floor === t && s.id && /^[A-Za-z0-9]{15,18}$/.test(s.id)) {
    return `(${field} > ${lit} OR (${field} = ${lit} AND Id > '${s.id}'))`;
  }
  return `${field} >= ${lit}`;
}

/** The earliest cursor time cursorCondition admits (epoch ms, a whole second): where narrower windows start. */
export function cursorLowerMs(s: SalesforceState, lookbackSeconds: number): number {
  return Math.floor((Date.parse(s.ts) - lookbackSeconds * 1000) / 1000) * 1000;
}

/** A SOQL query from its parts: the SELECT list, conditions AND-ed together, and an optional ORDER BY clause. */
export function soqlOf(object: string, select: string[], conds: string[], orderBy: string | null = null): string {
  return `SELECT ${select.join(", ")} FROM ${object}${conds.length ? ` WHERE ${conds.join(" AND ")}` : ""}${orderBy ? ` ${orderBy}` : ""}`;
}

/**
 * The conditions of a narrower window of the cursor field: from `fromMs` inclusive to `toMs` exclusive
 * (whole seconds), each side left open when null. Consecutive windows [a, b), [b, c) partition the range.
 */
export function windowConds(field: string, fromMs: number | null, toMs: number | null): string[] {
  const out: string[] = [];
  if (fromMs !== null) out.push(`${field} >= ${soqlDateTime(fromMs)}`);
  if (toMs !== null) out.push(`${field} < ${soqlDateTime(toMs)}`);
  return out;
}

/**
 * A table's custom condition, validated and re-composed by the SOQL parser: what is sent is what
 * the parser understood, wrapped in parentheses by the caller. Anything beyond one condition
 * (LIMIT, ORDER BY, a stray parenthesis, a second statement) is refused with the parser's reason.
 */
export function normalizeWhere(object: string, where: string): string {
  const prefix = `SELECT Id FROM ${object} WHERE `;
  let q: ReturnType<typeof parseQuery>;
  try {
    q = parseQuery(prefix + where);
  } catch (e) {
    throw new ConfigError(`where is not a valid SOQL condition: ${String((e as Error).message).split("\n")[0]} (in: ${where})`, e);
  }
  const extra = Object.keys(q).filter((k) => !["fields", "sObject", "where"].includes(k) && (q as Record<string, unknown>)[k] !== undefined);
  if (extra.length > 0) {
    throw new ConfigError(`where must be a condition only, without ${extra.map(clauseName).join(", ")} (in: ${where})`);
  }
  if (!q.where) throw new ConfigError(`where is empty (in: ${where})`);
  const composed = composeQuery({ fields: q.fields, sObject: q.sObject, where: q.where });
  if (!composed.startsWith(prefix)) throw new ConfigError(`where could not be re-composed safely (in: ${where})`);
  return composed.slice(prefix.length);
}

function clauseName(key: string): string {
  const names: Record<string, string> = {
    limit: "LIMIT",
    offset: "OFFSET",
    orderBy: "ORDER BY",
    groupBy: "GROUP BY",
    having: "HAVING",
    for: "FOR …",
    update: "UPDATE …",
    withSecurityEnforced: "WITH SECURITY_ENFORCED",
    withAccessLevel: "WITH …",
    withDataCategory: "WITH DATA CATEGORY",
  };
  return names[key] ?? key;
}
