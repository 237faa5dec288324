/**
 * Checks that a query written in the config is one plain SELECT, with PostgreSQL's own parser
 * (libpg_query through pgsql-parser, the parser the PostgreSQL source's WHERE allowlist uses):
 * exactly one statement, a SelectStmt, and nothing in it that writes or locks — no data-modifying
 * WITH (INSERT/UPDATE/DELETE/MERGE in a CTE, at any depth), no SELECT INTO, no FOR UPDATE/SHARE.
 * Synchronous (the parser's WebAssembly module is loaded once, when this module is imported), so
 * the config can check `sink.users.query` while it loads. producers/connectors/postgres/where.ts
 * could share this loaded parser.
 */
import { loadModule, parseSync } from "pgsql-parser";

await loadModule();

/** Why `sql` is not a single read-only SELECT, or undefined when it is. */
export function singleSelectProblem(sql: string): string | undefined {
  let tree: { stmts?: Array<{ stmt?: Record<string, unknown> }> };
  if (sql.trim() === "") return "must be exactly one SELECT statement, and it is empty";
  try {
    tree = parseSync(sql) as typeof tree;
  } catch (e) {
    return `is not valid SQL (${(e as Error).message})`;
  }
  const stmts = tree.stmts ?? [];
  if (stmts.length !== 1) return `must be exactly one SELECT statement, and it holds ${stmts.length === 0 ? "none" : `${stmts.length} statements`}`;
  const kind = Object.keys(stmts[0]?.stmt ?? {})[0];
  if (kind !== "SelectStmt") return `must be a SELECT statement, and it is a ${kind ?? "statement of no kind"}`;
  return forbiddenIn(stmts[0]!.stmt);
}

/** The first thing in a parse tree that writes or locks: a statement other than SELECT (a data-modifying CTE), INTO, FOR UPDATE/SHARE. */
function forbiddenIn(node: unknown): string | undefined {
  if (Array.isArray(node)) {
    for (const n of node) {
      const found = forbiddenIn(n);
      if (found) return found;
    }
    return undefined;
  }
  if (!node || typeof node !== "object") return undefined;
  for (const [key, value] of Object.entries(node)) {
    if (key.endsWith("Stmt") && key !== "SelectStmt")
      return `must only read, and it holds a ${key.replace(/Stmt$/, "").toUpperCase()} (a data-modifying WITH is refused too)`;
    if (key === "intoClause") return "must only read, and SELECT … INTO creates a table";
    if (key === "lockingClause") return "must only read, and FOR UPDATE / FOR SHARE locks rows";
    const found = forbiddenIn(value);
    if (found) return found;
  }
  return undefined;
}
