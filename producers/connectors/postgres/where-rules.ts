/**
 * The allowlist of a custom WHERE condition, checked node by node over PostgreSQL's own parse tree
 * (libpg_query), and the rewrite that pins every call to PostgreSQL's built-ins. Allowed: the
 * table's columns, literals, boolean logic, the comparison and arithmetic operators below, a short
 * list of functions, casts to plain scalar types. Beyond "is it on the list", four rules bound what
 * an allowed condition can cost the source database:
 *  - size: every allowed function returns at most what it is given (plus its constant arguments);
 *    nothing multiplies a string. Concatenation (||, concat) adds, so a condition of at most
 *    10,000 characters builds at most a few times its columns' size per row. repeat, lpad, rpad,
 *    format, overlay, translate, regexp_replace and aggregates such as string_agg are not on the
 *    list; replace is allowed only with constant strings, the replacement no longer (in bytes)
 *    than what it replaces, so nine nested replace calls cannot fold into a 1 GB constant; the
 *    format of to_char, to_date and to_timestamp is a string constant (its output is bounded by it).
 *  - patterns: LIKE/ILIKE (~~, ~~*) and regular expressions (~, ~*, !~, !~*) take a string
 *    constant (or ARRAY[constants] with ANY/ALL) as their pattern, never a column or expression;
 *    a regular expression may not hold a back-reference (\1…\9), the one construct that makes
 *    PostgreSQL's matcher backtrack exponentially (without it the matcher is automaton-based and
 *    refuses over-complex patterns at compile time). SIMILAR TO and the pattern forms of substring
 *    (a text second argument) are refused: substring takes integer constant positions.
 *  - casts: to scalar types of the list, with at most two type modifiers, each an integer constant
 *    from 0 to 32767 (numeric(12,2), varchar(64), interval field masks): never an expression.
 *  - literals: no control or invisible formatting character even after escapes are decoded.
 * The rewrite: every function call becomes pg_catalog.<name>(…) and every operator written as an
 * operator becomes OPERATOR(pg_catalog.<op>) (LIKE and ILIKE included), so a function or operator
 * planted in a schema on the connection's search_path is never chosen. The SQL forms that have no
 * qualified spelling (IN, BETWEEN, IS DISTINCT FROM, NULLIF, CASE x WHEN, casts) are resolved under
 * search_path = pg_catalog, pg_temp, which the read sets for its transaction (source.ts).
 */
import { ConfigError } from "../../../lib/errors.ts";

/** A custom query that is refused: the config must change (never retried). */
export class WhereError extends ConfigError {}

const OPERATORS = new Set(["=", "<>", "!=", "<", "<=", ">", ">=", "+", "-", "*", "/", "%", "||", "~~", "!~~", "~~*", "!~~*", "~", "~*", "!~", "!~*"]);
const LIKE_OPERATORS = new Set(["~~", "!~~", "~~*", "!~~*"]);
const REGEX_OPERATORS = new Set(["~", "~*", "!~", "!~*"]);
// Each returns at most the size of its arguments (or a fixed-size value); replace and substring
// have extra rules in checkFunction.
const FUNCTIONS = new Set(
  (
    "lower upper trim btrim ltrim rtrim length char_length character_length substring substr position strpos replace left right " +
    "concat starts_with abs round floor ceil ceiling trunc date_trunc date_part extract make_date now age to_char to_date " +
    "to_timestamp greatest least timezone"
  ).split(" "),
);
const TYPES = new Set(
  (
    "text varchar bpchar char int2 int4 int8 int integer smallint bigint numeric decimal float4 float8 real bool boolean date " +
    "timestamp timestamptz time timetz interval money"
  ).split(" "),
);
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
const TYPE_NAME_KEYS = new Set(["names", "typmods", "typemod", "location"]);
const MAX_TYPMOD = 32767;
const MAX_DEPTH = 64;

/** Control characters (tabs and line breaks aside), invisible formatting characters, line/paragraph separators, lone surrogates. */
const FORBIDDEN_CHARACTER = /(?![\t\n\r])[\p{Cc}\p{Cf}\p{Cs}\p{Zl}\p{Zp}]/u;

/** Refuses a text holding a forbidden character, naming it by code point (never echoing the text). */
export function checkCharacters(text: string, what: string): void {
  const m = FORBIDDEN_CHARACTER.exec(text);
  if (!m) return;
  const code = m[0].codePointAt(0)!.toString(16).toUpperCase().padStart(4, "0");
  throw new WhereError(
    `${what} holds a control or invisible character (U+${code} at character ${m.index + 1}); only printable characters, tabs and line breaks are allowed`,
  );
}

type Node = Record<string, unknown>;
const strings = (list: unknown): string[] => ((list as Node[] | undefined) ?? []).map((n) => String((n.String as { sval?: string } | undefined)?.sval ?? ""));
const qualified = (name: string): Node[] => [{ String: { sval: "pg_catalog" } }, { String: { sval: name } }];

/** The value of a string constant node, or undefined for anything else. */
function stringConstant(node: unknown): string | undefined {
  const c = (node as Node | undefined)?.A_Const as Node | undefined;
  const s = c?.sval as { sval?: string } | undefined;
  return s ? (s.sval ?? "") : undefined;
}

/** The value of an integer constant node (libpg_query omits a zero ival), or undefined. */
function integerConstant(node: unknown): number | undefined {
  const c = (node as Node | undefined)?.A_Const as Node | undefined;
  const i = c?.ival as { ival?: number } | undefined;
  return i ? (i.ival ?? 0) : undefined;
}

/**
 * Checks the condition's tree against the allowlist and rewrites it in place (qualified functions
 * and operators). `columns` are the table's column names.
 */
export function checkCondition(node: unknown, columns: ReadonlySet<string>, depth = 0): void {
  if (depth > MAX_DEPTH) throw new WhereError("it is nested too deeply");
  if (Array.isArray(node)) {
    for (const n of node) checkCondition(n, columns, depth + 1);
    return;
  }
  if (!node || typeof node !== "object") throw new WhereError("it holds an unexpected element");
  const entries = Object.entries(node as Node);
  if (entries.length !== 1) throw new WhereError("it holds an unexpected element");
  const [type, body] = entries[0]! as [string, Node];
  const sub = (k: string) => {
    if (body[k] !== undefined) checkCondition(body[k], columns, depth + 1);
  };
  switch (type) {
    case "A_Const": {
      const s = stringConstant(node);
      if (s !== undefined) checkCharacters(s, "a string literal");
      return;
    }
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
    case "A_Expr":
      checkOperator(body);
      sub("lexpr");
      sub("rexpr");
      return;
    case "TypeCast":
      checkType(body.typeName as Node);
      sub("arg");
      return;
    case "FuncCall":
      checkFunction(body);
      sub("args");
      return;
    case "SubLink":
      throw new WhereError("subqueries are not allowed");
    case "ParamRef":
      throw new WhereError("parameters ($1…) are not allowed");
    default:
      throw new WhereError(`${type} is not allowed in a condition`);
  }
}

function checkOperator(body: Node): void {
  const kind = String(body.kind);
  if (!A_EXPR_KINDS.has(kind)) throw new WhereError(`the operator kind ${kind} is not allowed`);
  const name = strings(body.name);
  if (name.length !== 1) throw new WhereError(`operators must be written plainly, not as OPERATOR(${name.join(".")})`);
  const op = name[0]!;
  const binary = body.lexpr !== undefined;
  switch (kind) {
    case "AEXPR_LIKE":
    case "AEXPR_ILIKE":
      checkPattern(body.rexpr, op, false);
      // LIKE is an operator lookup (~~) like any other: pin it to the built-in.
      body.kind = "AEXPR_OP";
      body.name = qualified(op);
      return;
    case "AEXPR_OP":
    case "AEXPR_OP_ANY":
    case "AEXPR_OP_ALL":
      if (!OPERATORS.has(op)) throw new WhereError(`the operator ${op} is not allowed`);
      if (binary && (LIKE_OPERATORS.has(op) || REGEX_OPERATORS.has(op))) checkPattern(body.rexpr, op, kind !== "AEXPR_OP");
      body.name = qualified(op === "!=" ? "<>" : op);
      return;
    default:
      // IN, BETWEEN, IS [NOT] DISTINCT FROM, NULLIF: SQL syntax over = < <= > >=, no qualified
      // spelling; resolved under the read's search_path = pg_catalog, pg_temp.
      if (!["=", "<>", "<", "<=", ">", ">=", "BETWEEN", "NOT BETWEEN", "BETWEEN SYMMETRIC", "NOT BETWEEN SYMMETRIC"].includes(op))
        throw new WhereError(`the operator ${op} is not allowed`);
  }
}

/** A LIKE or regular-expression pattern: string constants only, and no back-reference in a regular expression. */
function checkPattern(node: unknown, op: string, anyAll: boolean): void {
  const regex = REGEX_OPERATORS.has(op);
  const what = regex ? "a regular expression" : "a LIKE pattern";
  let patterns: unknown[] = [node];
  if (anyAll) {
    const array = (node as Node | undefined)?.A_ArrayExpr as Node | undefined;
    if (!array) throw new WhereError(`${what} with ANY/ALL must be ARRAY['…', …] of string constants`);
    patterns = (array.elements as unknown[] | undefined) ?? [];
  }
  for (const p of patterns) {
    const text = stringConstant(p);
    if (strings(((p as Node | undefined)?.FuncCall as Node | undefined)?.funcname).pop() === "like_escape")
      throw new WhereError("LIKE … ESCAPE is not allowed: write the pattern with the default escape, a backslash");
    if (text === undefined) throw new WhereError(`${what} must be a string constant, not a column or an expression`);
    if (regex && hasBackReference(text)) throw new WhereError(`${what} may not hold back-references (\\1 to \\9): they make matching take exponential time`);
  }
}

/** True when a regular expression holds \1…\9 (an escaped backslash, \\, is skipped). */
function hasBackReference(pattern: string): boolean {
  for (let i = 0; i < pattern.length; i++) {
    if (pattern[i] !== "\\") continue;
    const next = pattern[i + 1] ?? "";
    if (next >= "1" && next <= "9") return true;
    i++;
  }
  return false;
}

function checkType(typeName: Node): void {
  const names = strings(typeName.names);
  const t = names[names.length - 1]!;
  if (names.length > 2 || (names.length === 2 && names[0] !== "pg_catalog") || !TYPES.has(t))
    throw new WhereError(`casting to ${names.join(".")} is not allowed`);
  if (typeName.arrayBounds) throw new WhereError("casting to arrays is not allowed");
  const extra = Object.keys(typeName).filter((k) => !TYPE_NAME_KEYS.has(k));
  if (extra.length > 0) throw new WhereError(`casting to ${names.join(".")} with ${extra.join(", ")} is not allowed`);
  const mods = (typeName.typmods as unknown[] | undefined) ?? [];
  if (mods.length > 2) throw new WhereError(`casting to ${t} takes at most two type modifiers`);
  for (const m of mods) {
    const v = integerConstant(m);
    if (v === undefined || v < 0 || v > MAX_TYPMOD)
      throw new WhereError(`the type modifiers of a cast to ${t} must be integer constants from 0 to ${MAX_TYPMOD}, such as numeric(12, 2)`);
  }
}

function checkFunction(body: Node): void {
  const names = strings(body.funcname);
  const fn = names[names.length - 1]!;
  if (names.length > 2 || (names.length === 2 && names[0] !== "pg_catalog") || !FUNCTIONS.has(fn)) {
    throw new WhereError(`the function ${names.join(".")} is not allowed (allowed: ${[...FUNCTIONS].join(", ")})`);
  }
  for (const k of ["agg_star", "agg_distinct", "agg_filter", "agg_order", "over", "agg_within_group", "func_variadic"]) {
    if (body[k]) throw new WhereError(`aggregate and window forms of ${fn} are not allowed`);
  }
  const args = (body.args as unknown[] | undefined) ?? [];
  if (fn === "replace") {
    const [from, to] = [stringConstant(args[1]), stringConstant(args[2])];
    if (args.length !== 3 || from === undefined || to === undefined || Buffer.byteLength(to) > Buffer.byteLength(from))
      throw new WhereError(
        "replace takes string constants, the replacement no longer than what it replaces (replace(phone, ' ', '')): a longer one multiplies the string's size at every nesting",
      );
  }
  if ((fn === "to_char" || fn === "to_date" || (fn === "to_timestamp" && args.length === 2)) && stringConstant(args[1]) === undefined)
    throw new WhereError(`the format of ${fn} must be a string constant (${fn}(closed_on, 'YYYY-MM')): a computed format could grow at every nesting`);
  if (fn === "substring" && args.slice(1).some((a) => integerConstant(a) === undefined))
    throw new WhereError("substring takes integer constant positions (substring(name from 1 for 3)); its regular-expression and SIMILAR forms are not allowed");
  body.funcname = qualified(fn);
}
