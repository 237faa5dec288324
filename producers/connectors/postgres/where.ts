/**
 * A PostgreSQL connector's custom query is a WHERE condition. The raw text is checked first
 * (length, control characters — a NUL would silently truncate it in the parser —, no semicolon,
 * comment or parameter outside literals); it is then parsed by PostgreSQL's own parser (libpg_query,
 * through pgsql-parser), checked node by node against the allowlist of where-rules.ts (which also
 * pins every function and operator to pg_catalog), and the SQL that runs is deparsed from the
 * checked tree — never the user's text. The deparsed SQL is parsed again and must give the same
 * tree, so a deparser slip can only refuse a condition, never change what it means.
 */
import { deparse, parse } from "pgsql-parser";
import { WhereError, checkCharacters, checkCondition } from "./where-rules.ts";

export { WhereError } from "./where-rules.ts";

export const MAX_CONDITION_LENGTH = 10_000;

type Node = Record<string, unknown>;
type Tree = { version?: number; stmts?: Array<{ stmt: Node }> };

/**
 * Checks `condition` and returns the SQL to put after WHERE, deparsed from the checked tree.
 * `columns` are the table's column names.
 */
export async function compileWhere(condition: string, columns: ReadonlySet<string>): Promise<string> {
  if (condition.trim() === "") throw new WhereError("the condition is empty");
  if (condition.length > MAX_CONDITION_LENGTH) throw new WhereError("the condition is longer than 10,000 characters");
  checkCharacters(condition, "it");
  scanOutsideLiterals(condition);
  const tree = await parseCondition(condition);
  const select = tree.stmts![0]!.stmt.SelectStmt as Node;
  const allowedKeys = new Set(["targetList", "fromClause", "whereClause", "limitOption", "op"]);
  const extra = Object.keys(select).filter((k) => !allowedKeys.has(k));
  if (extra.length > 0 || select.op !== "SETOP_NONE" || (select.limitOption && select.limitOption !== "LIMIT_OPTION_DEFAULT")) {
    throw new WhereError(`it must be one condition, but it adds ${extra.join(", ") || "clauses"} to the query`);
  }
  if ((select.targetList as unknown[]).length !== 1 || (select.fromClause as unknown[]).length !== 1) throw new WhereError("it must be one condition");
  checkCondition(select.whereClause, columns);
  const sql = await deparse({
    version: tree.version,
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
  const rebuilt = sql.slice(at + "WHERE".length).trim();
  const again = await parseCondition(rebuilt).catch(() => undefined);
  const againWhere = (again?.stmts?.[0]?.stmt.SelectStmt as Node | undefined)?.whereClause;
  if (JSON.stringify(withoutLocations(againWhere)) !== JSON.stringify(withoutLocations(select.whereClause)))
    throw new WhereError("it could not be rebuilt faithfully (the rebuilt SQL would not mean the same); write it more simply");
  return rebuilt;
}

/** Parses `SELECT 1 FROM qobra_sync_source WHERE <condition>`: exactly one SELECT statement. */
async function parseCondition(condition: string): Promise<Tree> {
  let tree: Tree;
  try {
    tree = (await parse(`SELECT 1 FROM qobra_sync_source WHERE ${condition}`)) as Tree;
  } catch (e) {
    throw new WhereError(`it is not valid SQL: ${(e as Error).message}`);
  }
  const stmts = tree.stmts ?? [];
  if (stmts.length !== 1) throw new WhereError("it holds more than one statement");
  if (!stmts[0]!.stmt.SelectStmt) throw new WhereError("it is not a condition");
  return tree;
}

/** The tree without source positions, to compare two parses. */
function withoutLocations(node: unknown): unknown {
  if (Array.isArray(node)) return node.map(withoutLocations);
  if (!node || typeof node !== "object") return node;
  const out: Node = {};
  for (const [k, v] of Object.entries(node as Node)) {
    if (k === "location" || k.endsWith("_start") || k.endsWith("_end")) continue;
    out[k] = withoutLocations(v);
  }
  return out;
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
