// SOQL WHERE clauses compiled into predicates over in-memory records: AND/OR/NOT, comparison and LIKE, IN / NOT IN
// (with semi-join sub-selects), INCLUDES/EXCLUDES, date literals, with Salesforce's error codes for a field that
// cannot be filtered, a value of the wrong type, and so on. Literal parsing (strings, LIKE, date ranges) is in soql-literals.ts.

import { composeQuery } from "@jetstreamapp/soql-parser-js";
import type { Query, WhereClause } from "@jetstreamapp/soql-parser-js";
import { isIdString, normalizeId } from "./ids.ts";
import { parseDateTime } from "./sim-data.ts";
import type { ObjectModel, OrgModel } from "./model.ts";
import type { SimRecord } from "./types.ts";
import { compareValues, positionOf, queryError, resolvePath, splitPath, unsupported } from "./soql-base.ts";
import type { CompileOptions, CompiledQuery } from "./soql-base.ts";
import { STRINGISH, dateLiteralRange, isoDate, likeToRegExp, unescapeSoqlString, type Range } from "./soql-literals.ts";

/** What the WHERE compiler needs besides the clock: sub-selects are compiled and run by soql.ts (passed in, so the modules do not import each other). */
interface WhereOptions extends CompileOptions {
  compileSubquery(soql: string): CompiledQuery;
  runSubquery(cq: CompiledQuery): SimRecord[];
}

// ---------- WHERE ----------

type Tok = { t: "(" } | { t: ")" } | { t: "AND" } | { t: "OR" } | { t: "NOT" } | { t: "cond"; c: Record<string, unknown> };

function flattenWhere(w: WhereClause | undefined, out: Tok[]): void {
  if (!w) return;
  const left = (w as { left: Record<string, unknown> | null }).left;
  if (left) {
    const open = Number(left.openParen ?? 0);
    for (let i = 0; i < open; i++) out.push({ t: "(" });
    if ("field" in left || "fn" in left) {
      out.push({ t: "cond", c: left });
      const close = Number(left.closeParen ?? 0);
      for (let i = 0; i < close; i++) out.push({ t: ")" });
    }
  }
  const op = (w as { operator?: string }).operator;
  if (op === "AND" || op === "OR" || op === "NOT") out.push({ t: op });
  flattenWhere((w as { right?: WhereClause }).right, out);
}

type Pred = (rec: SimRecord) => boolean;

export function compileWhere(
  org: OrgModel,
  model: ObjectModel,
  alias: string | undefined,
  w: WhereClause,
  soql: string,
  wherePos: number,
  opts: WhereOptions,
): Pred {
  const toks: Tok[] = [];
  flattenWhere(w, toks);
  let i = 0;
  const malformed = (tok: Tok | undefined): never => {
    const name = tok ? (tok.t === "cond" ? String(tok.c.field ?? "") : tok.t) : "";
    throw queryError(
      "MALFORMED_QUERY",
      soql,
      tok ? positionOf(soql, name, wherePos) : soql.length,
      tok ? `unexpected token: '${name}'` : "unexpected token: <EOF>",
    );
  };
  const parseExpr = (): Pred => {
    const first = parseUnary();
    const preds = [first];
    let op: "AND" | "OR" | null = null;
    while (i < toks.length && (toks[i]!.t === "AND" || toks[i]!.t === "OR")) {
      const t = toks[i]!.t as "AND" | "OR";
      if (op && op !== t) malformed(toks[i]);
      op = t;
      i++;
      preds.push(parseUnary());
    }
    if (preds.length === 1) return first;
    return op === "AND" ? (r) => preds.every((p) => p(r)) : (r) => preds.some((p) => p(r));
  };
  const parseUnary = (): Pred => {
    const tok = toks[i];
    if (!tok) return malformed(undefined);
    if (tok.t === "NOT") {
      i++;
      const inner = parseUnary();
      return (r) => !inner(r);
    }
    if (tok.t === "(") {
      i++;
      const e = parseExpr();
      if (toks[i]?.t !== ")") malformed(toks[i]);
      i++;
      return e;
    }
    if (tok.t === "cond") {
      i++;
      return compileCondition(org, model, alias, tok.c, soql, wherePos, opts);
    }
    return malformed(tok);
  };
  const pred = parseExpr();
  if (i < toks.length) malformed(toks[i]);
  return pred;
}

function compileCondition(
  org: OrgModel,
  model: ObjectModel,
  alias: string | undefined,
  c: Record<string, unknown>,
  soql: string,
  wherePos: number,
  opts: WhereOptions,
): Pred {
  if ("fn" in c) throw unsupported("functions in WHERE");
  const rawField = String(c.field);
  const parts = splitPath(rawField, alias, model.name);
  const lastPart = parts[parts.length - 1]!;
  const path = resolvePath(org, model, parts, soql, wherePos, lastPart);
  const f = path.field;
  const type = f?.type ?? "string";
  const fpos = () => positionOf(soql, lastPart, wherePos);
  if (f && f.filterable === false) throw queryError("INVALID_FIELD", soql, fpos(), `field '${path.name}' can not be filtered in a query call`);
  const operator = String(c.operator).toUpperCase();
  const get = path.get;

  if (c.valueQuery) {
    if (operator !== "IN" && operator !== "NOT IN") throw unsupported(`${operator} with a subquery`);
    const inner = opts.compileSubquery(composeQuery(c.valueQuery as Query));
    const col = inner.columns[0];
    if (inner.kind !== "records" || inner.columns.length !== 1 || !col) {
      throw queryError("MALFORMED_QUERY", soql, fpos(), "semi join sub-selects must select exactly one field");
    }
    const set = new Set(
      opts
        .runSubquery(inner)
        .map((r) => col.get(r))
        .filter((v) => v !== null && v !== undefined)
        .map((v) => String(v).toUpperCase()),
    );
    const neg = operator === "NOT IN";
    return (rec) => {
      const x = get(rec);
      const hit = x !== null && x !== undefined && set.has(String(x).toUpperCase());
      return hit !== neg;
    };
  }

  const values = Array.isArray(c.value) ? (c.value as string[]) : [String(c.value)];
  const ltRaw = c.literalType;
  const lts = (Array.isArray(ltRaw) ? ltRaw : values.map(() => ltRaw)) as (string | undefined)[];
  const dateVars = Array.isArray(c.dateLiteralVariable) ? (c.dateLiteralVariable as number[]) : values.map(() => c.dateLiteralVariable as number | undefined);

  const typeName = type === "datetime" ? "dateTime" : type === "int" ? "integer" : ["double", "currency", "percent", "long"].includes(type) ? "double" : type;
  const literal = (raw: string, lt: string | undefined, k: number): { v: unknown; range?: Range } => {
    const L = (lt ?? "STRING").toUpperCase();
    if (L === "NULL") return { v: null };
    const bad = (quoted: boolean) => {
      const needQuotes = STRINGISH.has(type);
      const text = needQuotes
        ? `value of filter criterion for field '${path.name}' must be of type ${type === "id" || type === "reference" ? "id" : "string"} and should be enclosed in quotes`
        : `value of filter criterion for field '${path.name}' must be of type ${typeName} and should not be enclosed in quotes`;
      void quoted;
      return queryError("INVALID_FIELD", soql, positionOf(soql, raw, wherePos), text);
    };
    if (L === "APEX_BIND_VARIABLE") throw queryError("MALFORMED_QUERY", soql, positionOf(soql, raw, wherePos), `unexpected token: '${raw}'`);
    switch (type) {
      case "datetime":
        if (L === "DATETIME") return { v: parseDateTime(raw) };
        if (L === "DATE_LITERAL" || L === "DATE_N_LITERAL") {
          const r = dateLiteralRange(raw, dateVars[k], opts.now);
          if (!r) throw unsupported(`the date literal ${raw}`);
          return { v: null, range: r };
        }
        throw bad(L === "STRING");
      case "date":
        if (L === "DATE") return { v: raw };
        if (L === "DATE_LITERAL" || L === "DATE_N_LITERAL") {
          const r = dateLiteralRange(raw, dateVars[k], opts.now);
          if (!r) throw unsupported(`the date literal ${raw}`);
          return { v: null, range: r };
        }
        throw bad(L === "STRING");
      case "boolean":
        if (L === "BOOLEAN") return { v: raw.toUpperCase() === "TRUE" };
        throw bad(L === "STRING");
      case "int":
      case "long":
      case "double":
      case "currency":
      case "percent":
        if (L === "INTEGER" || L === "DECIMAL") return { v: Number(raw) };
        if ((L === "INTEGER_WITH_CURRENCY_PREFIX" || L === "DECIMAL_WITH_CURRENCY_PREFIX") && type === "currency") return { v: Number(raw.slice(3)) };
        throw bad(L === "STRING");
      default:
        if (L !== "STRING") throw bad(false);
        if (type === "id" || type === "reference") {
          const s = unescapeSoqlString(raw, false);
          if (operator === "LIKE") return { v: s };
          if (!isIdString(s)) {
            if (s === "") return { v: null };
            throw queryError("INVALID_QUERY_FILTER_OPERATOR", soql, positionOf(soql, raw, wherePos), `invalid ID field: ${s}`);
          }
          return { v: normalizeId(s) };
        }
        return { v: unescapeSoqlString(raw, operator === "LIKE") };
    }
  };

  const lits = values.map((raw, k) => literal(raw, lts[k], k));
  const isStr = STRINGISH.has(type) && type !== "id" && type !== "reference";
  const eq = (a: unknown, b: unknown): boolean => {
    if (a === null || a === undefined) return b === null;
    if (b === null) return false;
    if (isStr) return String(a).toUpperCase() === String(b).toUpperCase();
    if (type === "id" || type === "reference") return String(a).toUpperCase() === String(b).toUpperCase();
    return a === b;
  };
  const inRange = (v: unknown, r: Range): boolean => {
    if (v === null || v === undefined) return false;
    if (type === "date") return String(v) >= isoDate(r[0]) && String(v) < isoDate(r[1]);
    return (v as number) >= r[0] && (v as number) < r[1];
  };
  const rangeCmp = (v: unknown, r: Range, op: string): boolean => {
    if (v === null || v === undefined) return op === "!=";
    const lo = type === "date" ? isoDate(r[0]) : r[0];
    const hi = type === "date" ? isoDate(r[1]) : r[1];
    const x = v as number | string;
    switch (op) {
      case "=":
        return x >= lo && x < hi;
      case "!=":
        return !(x >= lo && x < hi);
      case "<":
        return x < lo;
      case "<=":
        return x < hi;
      case ">":
        return x >= hi;
      case ">=":
        return x >= lo;
      default:
        return false;
    }
  };
  const cmp = (a: unknown, b: unknown): number => (isStr ? compareValues(a, b) : compareValues(a, b));

  const one = lits[0]!;
  switch (operator) {
    case "=":
    case "!=": {
      const neg = operator === "!=";
      if (one.range) {
        const r = one.range;
        return (rec) => rangeCmp(get(rec), r, operator);
      }
      const v = one.v;
      return (rec) => eq(get(rec), v) !== neg;
    }
    case "<":
    case "<=":
    case ">":
    case ">=": {
      if (one.range) {
        const r = one.range;
        return (rec) => rangeCmp(get(rec), r, operator);
      }
      const v = one.v;
      if (v === null) return () => false;
      return (rec) => {
        const x = get(rec);
        if (x === null || x === undefined) return false;
        const c2 = cmp(x, v);
        return operator === "<" ? c2 < 0 : operator === "<=" ? c2 <= 0 : operator === ">" ? c2 > 0 : c2 >= 0;
      };
    }
    case "LIKE": {
      if (!STRINGISH.has(type)) throw queryError("INVALID_FIELD", soql, fpos(), `invalid operator on field '${path.name}' of type ${typeName}`);
      const re = likeToRegExp(String(one.v ?? ""));
      return (rec) => {
        const x = get(rec);
        return x !== null && x !== undefined && re.test(String(x));
      };
    }
    case "IN":
    case "NOT IN": {
      const neg = operator === "NOT IN";
      return (rec) => {
        const x = get(rec);
        const hit = lits.some((l) => (l.range ? inRange(x, l.range) : eq(x, l.v)));
        return hit !== neg;
      };
    }
    case "INCLUDES":
    case "EXCLUDES": {
      if (type !== "multipicklist") throw queryError("INVALID_FIELD", soql, fpos(), `invalid operator on field '${path.name}' of type ${typeName}`);
      const sets = lits.map((l) =>
        String(l.v ?? "")
          .split(";")
          .map((s) => s.trim().toUpperCase()),
      );
      const neg = operator === "EXCLUDES";
      return (rec) => {
        const x = get(rec);
        const have = new Set(
          x === null || x === undefined
            ? []
            : String(x)
                .split(";")
                .map((s) => s.trim().toUpperCase()),
        );
        const hit = sets.some((s) => s.every((v) => have.has(v)));
        return hit !== neg;
      };
    }
    default:
      throw queryError("MALFORMED_QUERY", soql, fpos(), `unexpected token: '${operator}'`);
  }
}
