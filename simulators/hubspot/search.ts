/**
 * CRM search semantics (HubSpot search guide): filter groups OR-ed, filters AND-ed, one sort,
 * typed comparisons (number, datetime/date as instants, bool, enumeration exact, strings
 * case-insensitive), IN string values compared with lower-cased stored values, CONTAINS_TOKEN
 * with `*` wildcards, `associations.<type>` pseudo-properties, the free-text `query`.
 * Records are seen as the search index sees them (index lag, see Store.searchVersion).
 */
import { validationError } from "./errors.ts";
import { toInstantMs, type ObjectType, type Property, type RecordVersion, type Settings, type Store, type StoredRecord } from "./store.ts";

interface SearchFilter {
  propertyName: string;
  operator: string;
  value?: string;
  highValue?: string;
  values?: string[];
}

export interface SearchRequest {
  filterGroups?: Array<{ filters: SearchFilter[] }>;
  sorts?: Array<string | { propertyName: string; direction?: "ASCENDING" | "DESCENDING" }>;
  query?: string;
  properties?: string[];
  limit?: number;
  after?: string;
}

export interface SearchHit {
  rec: StoredRecord;
  version: RecordVersion;
}

const VALUE_OPS = new Set(["EQ", "NEQ", "LT", "LTE", "GT", "GTE", "CONTAINS_TOKEN", "NOT_CONTAINS_TOKEN"]);
const LIST_OPS = new Set(["IN", "NOT_IN"]);

/** Checks the limits HubSpot enforces beyond the schema; returns the paging offset. */
export function checkSearchRequest(req: SearchRequest, t: ObjectType, store: Store): { offset: number; limit: number } {
  const s: Settings["search"] = store.settings.search;
  const groups = req.filterGroups ?? [];
  if (groups.length > s.maxFilterGroups) {
    throw validationError(`Too many filter groups: ${groups.length} were given, the maximum is ${s.maxFilterGroups}.`, {
      context: { filterGroups: [String(groups.length)], maxFilterGroups: [String(s.maxFilterGroups)] },
    });
  }
  let total = 0;
  groups.forEach((g, i) => {
    total += g.filters.length;
    if (g.filters.length > s.maxFiltersPerGroup) {
      throw validationError(`Too many filters in filterGroups[${i}]: ${g.filters.length} were given, the maximum per group is ${s.maxFiltersPerGroup}.`, {
        context: { filters: [String(g.filters.length)], maxFiltersPerGroup: [String(s.maxFiltersPerGroup)] },
      });
    }
  });
  if (total > s.maxFilters) {
    throw validationError(`Too many filters: ${total} were given across all filter groups, the maximum is ${s.maxFilters}.`, {
      context: { filters: [String(total)], maxFilters: [String(s.maxFilters)] },
    });
  }
  for (const g of groups) for (const f of g.filters) checkFilter(f, t, store);
  if ((req.sorts ?? []).length > 1)
    throw validationError("Only one sort is supported per search request.", { context: { sorts: [String(req.sorts?.length)] } });
  for (const sort of req.sorts ?? []) {
    const name = typeof sort === "string" ? sort.replace(/^-/, "") : sort.propertyName;
    if (!t.properties.has(name)) throw validationError(`Cannot sort by unknown property '${name}' of ${t.name}.`, { context: { propertyName: [name] } });
  }
  if (req.query !== undefined && req.query.length > s.maxQueryLength) {
    throw validationError(`The query is ${req.query.length} characters long; the maximum is ${s.maxQueryLength}.`);
  }
  const limit = req.limit ?? 10;
  if (limit < 0 || limit > s.maxLimit) {
    throw validationError(`limit must be between 0 and ${s.maxLimit} (got ${limit}).`, { context: { limit: [String(limit)] } });
  }
  let offset = 0;
  if (req.after !== undefined && req.after !== "") {
    if (!/^\d+$/.test(req.after))
      throw validationError(`after must be a non-negative integer offset (got '${req.after}').`, { context: { after: [req.after] } });
    offset = Number(req.after);
  }
  if (offset >= s.maxResults) {
    throw validationError(
      `Paging past ${s.maxResults} results is not supported: the search API returns at most ${s.maxResults} results per query (after=${offset}).`,
      { context: { after: [String(offset)], maxResults: [String(s.maxResults)] } },
    );
  }
  return { offset, limit };
}

function checkFilter(f: SearchFilter, t: ObjectType, store: Store): void {
  if (f.propertyName.startsWith("associations.")) {
    const other = store.resolveType(f.propertyName.slice("associations.".length));
    if (!other) throw validationError(`Unknown association '${f.propertyName}'.`, { context: { propertyName: [f.propertyName] } });
    if (f.operator !== "EQ" && f.operator !== "IN") throw validationError(`Operator ${f.operator} is not supported on ${f.propertyName}; use EQ or IN.`);
  } else if (!t.properties.has(f.propertyName)) {
    throw validationError(`There was a problem with the request: property '${f.propertyName}' does not exist on ${t.name}.`, {
      context: { propertyName: [f.propertyName] },
    });
  }
  if (VALUE_OPS.has(f.operator) && (f.value === undefined || f.value === null)) {
    throw validationError(`Filter on '${f.propertyName}' with operator ${f.operator} needs a value.`);
  }
  if (LIST_OPS.has(f.operator) && (!Array.isArray(f.values) || f.values.length === 0)) {
    throw validationError(`Filter on '${f.propertyName}' with operator ${f.operator} needs a non-empty values list.`);
  }
  if (f.operator === "BETWEEN" && (f.value === undefined || f.highValue === undefined)) {
    throw validationError(`Filter on '${f.propertyName}' with operator BETWEEN needs value and highValue.`);
  }
  const prop = t.properties.get(f.propertyName);
  if (prop && (prop.type === "number" || prop.type === "datetime" || prop.type === "date")) {
    for (const v of [f.value, f.highValue, ...(f.values ?? [])]) {
      if (v === undefined || f.operator === "CONTAINS_TOKEN" || f.operator === "NOT_CONTAINS_TOKEN") continue;
      const ok = prop.type === "number" ? v.trim() !== "" && Number.isFinite(Number(v)) : toInstantMs(v) !== undefined;
      if (!ok) throw validationError(`'${v}' is not a valid ${prop.type} value for property '${prop.name}'.`, { context: { propertyName: [prop.name] } });
    }
  }
}

type Key = number | string;

function keyOf(prop: Property | undefined, v: string): Key {
  if (prop?.type === "number") return Number(v);
  if (prop?.type === "datetime" || prop?.type === "date") return toInstantMs(v) ?? Number.NaN;
  if (prop?.type === "enumeration") return v;
  return v.toLowerCase();
}

function compare(a: Key, b: Key): number {
  if (typeof a === "number" && typeof b === "number") return a - b;
  return String(a) < String(b) ? -1 : String(a) > String(b) ? 1 : 0;
}

function isMulti(prop: Property | undefined): boolean {
  return prop?.type === "enumeration" && prop.fieldType === "checkbox";
}

function tokenMatch(stored: string, pattern: string): boolean {
  const re = new RegExp(
    `^${pattern
      .toLowerCase()
      .split("*")
      .map((p) => p.replace(/[.+?^${}()|[\]\\]/g, "\\$&"))
      .join(".*")}$`,
  );
  const value = stored.toLowerCase();
  if (re.test(value)) return true;
  return value.split(/[\s,;]+/).some((tok) => tok !== "" && re.test(tok));
}

function matchFilter(f: SearchFilter, t: ObjectType, v: RecordVersion, rec: StoredRecord, store: Store): boolean {
  if (f.propertyName.startsWith("associations.")) {
    const other = store.resolveType(f.propertyName.slice("associations.".length))!;
    const ids = new Set(store.associationsOf(t.name, rec.id, other.name).map((a) => a.toId));
    const wanted = f.operator === "EQ" ? [f.value ?? ""] : (f.values ?? []);
    return wanted.some((w) => ids.has(w));
  }
  const prop = t.properties.get(f.propertyName);
  const raw = v.properties[f.propertyName];
  const has = raw !== null && raw !== undefined && raw !== "";
  switch (f.operator) {
    case "HAS_PROPERTY":
      return has;
    case "NOT_HAS_PROPERTY":
      return !has;
    case "CONTAINS_TOKEN":
      return has && tokenMatch(raw, f.value ?? "");
    case "NOT_CONTAINS_TOKEN":
      return !has || !tokenMatch(raw, f.value ?? "");
    default:
      break;
  }
  if (isMulti(prop)) {
    const set = new Set(has ? raw.split(";") : []);
    const wanted = f.operator === "IN" || f.operator === "NOT_IN" ? (f.values ?? []) : [f.value ?? ""];
    const any = wanted.some((w) => set.has(w));
    if (f.operator === "EQ" || f.operator === "IN") return any;
    if (f.operator === "NEQ" || f.operator === "NOT_IN") return !any;
  }
  if (f.operator === "IN" || f.operator === "NOT_IN") {
    // string values must be given lower-case: stored values are compared lower-cased, the filter's as sent
    const stored = has ? (prop?.type === "enumeration" ? raw : prop?.type === "string" || !prop ? raw.toLowerCase() : raw) : undefined;
    const hit =
      stored !== undefined &&
      (f.values ?? []).some((w) =>
        prop?.type === "number" || prop?.type === "datetime" || prop?.type === "date" ? compare(keyOf(prop, stored), keyOf(prop, w)) === 0 : stored === w,
      );
    return f.operator === "IN" ? hit : !hit;
  }
  if (f.operator === "NEQ") return !has || compare(keyOf(prop, raw), keyOf(prop, f.value ?? "")) !== 0;
  if (!has) return false;
  const k = keyOf(prop, raw);
  if (typeof k === "number" && Number.isNaN(k)) return false;
  const c = compare(k, keyOf(prop, f.value ?? ""));
  switch (f.operator) {
    case "EQ":
      return c === 0;
    case "LT":
      return c < 0;
    case "LTE":
      return c <= 0;
    case "GT":
      return c > 0;
    case "GTE":
      return c >= 0;
    case "BETWEEN":
      return c >= 0 && compare(k, keyOf(prop, f.highValue ?? "")) <= 0;
    default:
      throw validationError(`Unsupported operator ${f.operator}.`);
  }
}

function matchQuery(query: string, t: ObjectType, v: RecordVersion): boolean {
  const terms = query
    .toLowerCase()
    .split(/\s+/)
    .filter((s) => s !== "");
  if (terms.length === 0) return true;
  const values = t.queryProperties
    .map((p) => v.properties[p])
    .filter((x): x is string => typeof x === "string" && x !== "")
    .map((x) => x.toLowerCase());
  const tokens = values.flatMap((x) => [x, ...x.split(/[\s@.,;\-_/]+/)]);
  return terms.every((term) => {
    const pattern = term.replace(/\*/g, "");
    return tokens.some((tok) => tok.startsWith(pattern)) || values.some((x) => x.includes(pattern));
  });
}

/** All hits of a search, sorted (one sort, ties by id; values missing sort last), as the index sees them. */
export function runSearch(req: SearchRequest, t: ObjectType, store: Store, now: number): SearchHit[] {
  const hits: SearchHit[] = [];
  const groups = (req.filterGroups ?? []).filter((g) => g.filters.length > 0);
  for (const rec of t.records.values()) {
    const v = store.searchVersion(rec, now);
    if (!v) continue;
    if (groups.length > 0 && !groups.some((g) => g.filters.every((f) => matchFilter(f, t, v, rec, store)))) continue;
    if (req.query && !matchQuery(req.query, t, v)) continue;
    hits.push({ rec, version: v });
  }
  const sort = req.sorts?.[0];
  const name = sort === undefined ? undefined : typeof sort === "string" ? sort.replace(/^-/, "") : sort.propertyName;
  const desc = sort !== undefined && (typeof sort === "string" ? sort.startsWith("-") : sort.direction === "DESCENDING");
  const prop = name ? t.properties.get(name) : undefined;
  hits.sort((a, b) => {
    if (name) {
      const va = a.version.properties[name],
        vb = b.version.properties[name];
      const ma = va === null || va === undefined || va === "",
        mb = vb === null || vb === undefined || vb === "";
      if (ma !== mb) return ma ? 1 : -1;
      if (!ma && !mb) {
        const c = compare(keyOf(prop, va), keyOf(prop, vb));
        if (c !== 0) return desc ? -c : c;
      }
    } else {
      const c = Date.parse(a.version.createdAt) - Date.parse(b.version.createdAt);
      if (c !== 0) return c;
    }
    return a.rec.idNum - b.rec.idNum;
  });
  return hits;
}
