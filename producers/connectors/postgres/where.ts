/**
 * A PostgreSQL connector's custom query is a WHERE condition. It is parsed by PostgreSQL's own
 * parser (libpg_query, through pgsql-parser), checked node by node against an allowlist (one
 * boolean expression over the table's columns, literals, a few operators, functions and casts),
 * and the SQL that runs is deparsed from the checked tree — never the user's text. Anything else
 * (statements, subqueries, comments, parameters, unknown functions such as pg_sleep, dblink,
 * lo_*, set_config) is refused with the reason.
 */
import { deparse, parse } from "pgsql-parser";
import { ConfigError } from "../../../lib/errors.ts";

/** A custom query that is refused: the config must change (never retried). */
export class WhereError extends ConfigError {}

const OPERATORS = new Set(["=", "<>", "!=", "<", "<=", ">", ">=", "+", "-", "*", "/", "%", "||", "~~", "!~~", "~~*", "!~~*", "~", "~*", "!~", "!~*"]);
const FUNCTIONS = new Set([
  "lower",
  "upper",
  "trim",
  "btrim",
  "ltrim",
  "rtrim",
  "length",
  "char_length",
  "character_length",
  "substring",
  "substr",
  "position",
  "strpos",
  "replace",
  "left",
  "right",
  "concat",
  "starts_with",
  "abs",
  "round",
  "floor",
  "ceil",
  "ceiling",
  "trunc",
  "date_trunc",
  "date_part",
  "extract",
  "make_date",
  "now",
  "age",
  "to_char",
  "to_date",
  "to_timestamp",
  "coalesce",
  "nullif",
  "greatest",
  "least",
  "timezone",
]);
const TYPES = new Set([
  "text",
  "varchar",
  "bpchar",
  "char",
  "int2",
  "int4",
  "int8",
  "int",
  "integer",
  "smallint",
  "bigint",
  "numeric",
  "decimal",
  "float4",
  "float8",
  "real",
  "bool",
  "boolean",
  "date",
  "timestamp",
  "timestamptz",
  "time",
  "timetz",
  "interval",
  "money",
]);
const A_EXPR_KINDS = new Set([
  "AEXPR_OP",
  "AEXPR_IN",
  "AEXPR_LIKE",
  "AEXPR_ILIKE",
  "AEXPR_BETWEEN",
  "AEXPR_NOT_BETWEEN",
  "AEXPR_BETWEEN_SYM",
  "AEXPR_NOT_BETWEEN_SYM",
  "AEXPR_DISTINCT",
  "AEXPR_NOT_DISTINCT",
  "AEXPR_NULLIF",
  "AEXPR_OP_ANY",
  "AEXPR_OP_ALL",
]);
const SQL_VALUE_FUNCTIONS = new Set([
  "SVFOP_CURRENT_DATE",
  "SVFOP_CURRENT_TIMESTAMP",
  "SVFOP_CURRENT_TIMESTAMP_N",
  "SVFOP_LOCALTIMESTAMP",
  "SVFOP_LOCALTIMESTAMP_N",
]);

type Node = Record<string, unknown>;
const strings = (list: unknown): string[] => ((list as Node[] | undefined) ?? []).map((n) => String((n.String as { sval?: string } | undefined)?.sval ?? ""));

/**
 * Checks `condition` and returns the SQL to put after WHERE, deparsed from the checked tree.
 * `columns` are the table's column names.
 */
export async function compileWhere(condition: string, columns: ReadonlySet<string>): Promise<string> {
  if (condition.trim() === "") throw new WhereError("the condition is empty");
  if (condition.length > 10_000) throw new WhereError("the condition is longer than 10,000 characters");
  scanOutsideLiterals(condition);
  let tree: { stmts?: Array<{ stmt: Node }> };
  try {
    tree = (await parse(`SELECT 1 FROM qobra_sync_source WHERE ${condition}`)) as typeof tree;
  } catch (e) {
    throw new WhereError(`it is not valid SQL: ${(e as Error).message}`);
  }
  const stmts = tree.stmts ?? [];
  if (stmts.length !== 1) throw new WhereError("it holds more than one statement");
  const select = stmts[0]!.stmt.SelectStmt as Node | undefined;
  if (!select) throw new WhereError("it is not a condition");
  const allowedKeys = new Set(["targetList", "fromClause", "whereClause", "limitOption", "op"]);
  const extra = Object.keys(select).filter((k) => !allowedKeys.has(k));
  if (extra.length > 0 || select.op !== "SETOP_NONE" || (select.limitOption && select.limitOption !== "LIMIT_OPTION_DEFAULT")) {
    throw new WhereError(`it must be one condition, but it adds ${extra.join(", ") || "clauses"} to the query`);
  }
  if ((select.targetList as unknown[]).length !== 1 || (select.fromClause as unknown[]).length !== 1) throw new WhereError("it must be one condition");
  check(select.whereClause as Node, columns);
  const sql = await deparse({
    version: (tree as { version?: number }).version,
    stmts: [
      {
        stmt: {
          SelectStmt: {
            targetList: select.targetList,
            fromClause: select.fromClause,
            whereClause: select.whereClause,
            limitOption: "LIMIT_OPTION_DEFAULT",
            op: "SETOP_NONE",
          },
        },
      },
    ],
  } as never);
  const at = sql.search(/\bWHERE\b/);
  if (at < 0) throw new WhereError("it could not be rebuilt");
  return sql.slice(at + "WHERE".length).trim();
}

/** Refuses semicolons and comments outside string literals and quoted identifiers. */
function scanOutsideLiterals(text: string): void {
  let i = 0;
  while (i < text.length) {
    const c = text[i]!;
    if (c === "'") {
      i = skipQuoted(text, i, "'");
      continue;
    }
    if (c === '"') {
      i = skipQuoted(text, i, '"');
      continue;
    }
    if (c === "$") {
      const m = /^\$([A-Za-z_][A-Za-z0-9_]*)?\$/.exec(text.slice(i));
      if (m) {
        const end = text.indexOf(m[0], i + m[0].length);
        if (end < 0) throw new WhereError("it has an unterminated dollar-quoted string");
        i = end + m[0].length;
        continue;
      }
      throw new WhereError("parameters ($1…) are not allowed");
    }
    if (c === ";") throw new WhereError("semicolons are not allowed: the condition must be one expression");
    if (c === "-" && text[i + 1] === "-") throw new WhereError("comments (--) are not allowed");
    if (c === "/" && text[i + 1] === "*") throw new WhereError("comments (/* */) are not allowed");
    if (c === "\\") throw new WhereError("backslashes outside string literals are not allowed");
    i++;
  }
}

function skipQuoted(text: string, start: number, q: string): number {
  let i = start + 1;
  while (i < text.length) {
    if (text[i] === q) {
      if (text[i + 1] === q) {
        i += 2;
        continue;
      }
      return i + 1;
    }
    i++;
  }
  throw new WhereError("it has an unterminated quoted string");
}

function check(node: unknown, columns: ReadonlySet<string>, depth = 0): void {
  if (depth > 64) throw new WhereError("it is nested too deeply");
  if (Array.isArray(node)) {
    for (const n of node) check(n, columns, depth + 1);
    return;
  }
  if (!node || typeof node !== "object") throw new WhereError("it holds an unexpected element");
  const entries = Object.entries(node as Node);
  if (entries.length !== 1) throw new WhereError("it holds an unexpected element");
  const [type, body] = entries[0]! as [string, Node];
  const sub = (k: string) => {
    if (body[k] !== undefined) check(body[k], columns, depth + 1);
  };
  switch (type) {
    case "A_Const":
      return;
    case "ColumnRef": {
      const fields = body.fields as Node[];
      if (fields.length !== 1 || !fields[0]!.String) throw new WhereError("columns must be named plainly (no table prefix, no *)");
      const name = strings(fields)[0]!;
      if (!columns.has(name)) throw new WhereError(`${name} is not a column of the table`);
      return;
    }
    case "BoolExpr":
      sub("args");
      return;
    case "NullTest":
    case "BooleanTest":
      sub("arg");
      return;
    case "List":
      sub("items");
      return;
    case "A_ArrayExpr":
      sub("elements");
      return;
    case "CoalesceExpr":
    case "MinMaxExpr":
      sub("args");
      return;
    case "CaseExpr":
      sub("arg");
      sub("args");
      sub("defresult");
      return;
    case "CaseWhen":
      sub("expr");
      sub("result");
      return;
    case "SQLValueFunction":
      if (!SQL_VALUE_FUNCTIONS.has(String(body.op))) throw new WhereError(`${String(body.op).replace("SVFOP_", "").toLowerCase()} is not allowed`);
      return;
    case "A_Expr": {
      const kind = String(body.kind);
      if (!A_EXPR_KINDS.has(kind)) throw new WhereError(`the operator kind ${kind} is not allowed`);
      const op = strings(body.name);
      if (op.length !== 1 || (kind !== "AEXPR_IN" && kind !== "AEXPR_LIKE" && kind !== "AEXPR_ILIKE" && !kind.includes("BETWEEN") && !OPERATORS.has(op[0]!))) {
        throw new WhereError(`the operator ${op.join(".")} is not allowed`);
      }
      sub("lexpr");
      sub("rexpr");
      return;
    }
    case "TypeCast": {
      const names = strings((body.typeName as Node).names);
      const t = names[names.length - 1]!;
      if (names.length > 2 || (names.length === 2 && names[0] !== "pg_catalog") || !TYPES.has(t))
        throw new WhereError(`casting to ${names.join(".")} is not allowed`);
      if ((body.typeName as Node).arrayBounds) throw new WhereError("casting to arrays is not allowed");
      sub("arg");
      return;
    }
    case "FuncCall": {
      const names = strings(body.funcname);
      const fn = names[names.length - 1]!;
      if (names.length > 2 || (names.length === 2 && names[0] !== "pg_catalog") || !FUNCTIONS.has(fn)) {
        throw new WhereError(`the function ${names.join(".")} is not allowed (allowed: ${[...FUNCTIONS].join(", ")})`);
      }
      for (const k of ["agg_star", "agg_distinct", "agg_filter", "agg_order", "over", "agg_within_group", "func_variadic"]) {
        if (body[k]) throw new WhereError(`aggregate and window forms of ${fn} are not allowed`);
      }
      sub("args");
      return;
    }
    case "SubLink":
      throw new WhereError("subqueries are not allowed");
    case "ParamRef":
      throw new WhereError("parameters ($1…) are not allowed");
    default:
      throw new WhereError(`${type} is not allowed in a condition`);
  }
}
