/**
 * Custom WHERE conditions of the PostgreSQL connector: an attack set that must be refused (with a
 * reason) and a benign set that must pass, checked with PostgreSQL's own parser; then one block per
 * rule of issue 14 (string growth, patterns, control characters, type modifiers, pg_catalog
 * pinning), each with cases the previous allowlist let through. The same conditions against a
 * real database: test/security.
 */
import { parse } from "pgsql-parser";
import { describe, expect, it } from "vitest";
import { WhereError, compileWhere } from "../../producers/connectors/postgres/where.ts";
import { ATTACKS } from "../fixtures/postgres/where-attacks.ts";

const COLUMNS = new Set(["id", "stage", "amount", "closed_on", "owner_email", "title", "updated_at", "won", "Mixed Case", "phone", "tags"]);

const BENIGN: Array<[string, RegExp]> = [
  ["stage = 'won'", /^stage OPERATOR\(pg_catalog\.=\) 'won'$/],
  ["stage = 'it''s'", /'it''s'/],
  ["amount > 1000 AND won", /amount OPERATOR\(pg_catalog\.>\) 1000/],
  ["stage IN ('won', 'closed') OR amount BETWEEN 10 AND 20.5", /BETWEEN 10 AND 20\.5/],
  ["closed_on >= DATE '2026-01-01'", /closed_on OPERATOR\(pg_catalog\.>=\)/],
  ["closed_on >= current_date - 30", /CURRENT_DATE/],
  ["updated_at > now() - interval '7 days'", /pg_catalog\.now\(\)/],
  ["lower(owner_email) LIKE '%@example.com'", /pg_catalog\.lower\(owner_email\) OPERATOR\(pg_catalog\.~~\) '%@example\.com'/],
  ["title ILIKE 'deal%' AND NOT won", /OPERATOR\(pg_catalog\.~~\*\) 'deal%'/],
  ["title NOT LIKE 'x%' AND title NOT ILIKE 'y%'", /OPERATOR\(pg_catalog\.!~~\) 'x%'.*OPERATOR\(pg_catalog\.!~~\*\) 'y%'/s],
  ["coalesce(amount, 0) <> 0", /COALESCE|coalesce/],
  ["owner_email IS NOT NULL", /IS NOT NULL/],
  ["won IS TRUE", /IS TRUE/],
  ["date_trunc('month', updated_at) = '2026-01-01'", /pg_catalog\.date_trunc/],
  ["amount::numeric(12,2) > 5", /numeric\(12, 2\)/],
  ["stage = $$won$$", /'won'/],
  ["id = ANY (ARRAY[1, 2, 3])", /OPERATOR\(pg_catalog\.=\) ANY/],
  ["\"Mixed Case\" = 'x'", /"Mixed Case"/],
  ["CASE WHEN won THEN amount ELSE 0 END > 10", /CASE/],
  ["extract(year FROM closed_on) = 2026", /EXTRACT|extract/],
  ["stage <> 'lost' AND (amount > 5 OR title LIKE 'VIP%')", /OR/],
  ["greatest(amount, 0) > 1", /GREATEST|greatest/],
  ["id IS DISTINCT FROM 3", /DISTINCT FROM/],
  ["stage NOT IN ('a', 'b')", /NOT IN/],
  ["length(title) > 3", /pg_catalog\.length/],
  // allowed by the new rules
  ["replace(phone, ' ', '') = '0102'", /pg_catalog\.replace\(phone, ' ', ''\)/],
  ["replace(stage, 'won', 'ok') = 'ok'", /pg_catalog\.replace/],
  ["substring(title from 1 for 3) = 'VIP'", /SUBSTRING\(title FROM 1 FOR 3\)|substring/],
  ["title ~* '^[a-z0-9.]+@acme\\.com$'", /OPERATOR\(pg_catalog\.~\*\) E'\^\[a-z0-9\.\]\+@acme\\\\\.com\$'/],
  ["title ~ '\\\\1'", /OPERATOR\(pg_catalog\.~\)/], // an escaped backslash, then 1: not a back-reference
  ["stage ~ ANY (ARRAY['^w', 'n$'])", /OPERATOR\(pg_catalog\.~\) ANY \(ARRAY\['\^w', 'n\$'\]\)/],
  ["stage = 'won'\n  AND\tamount > 1\r\n", /AND/],
  ["updated_at > interval '1' day + now()", /interval day/],
  ["title::varchar(64) = 'x'", /varchar\(64\)/],
  ["stage || 'x' LIKE 'wonx'", /\(stage OPERATOR\(pg_catalog\.\|\|\) 'x'\) OPERATOR\(pg_catalog\.~~\)/],
  ["id - 1 - 2 = 0 AND id = 1 + 2 * 3", /\(\(id OPERATOR\(pg_catalog\.-\) 1\) OPERATOR\(pg_catalog\.-\) 2\)/],
];

/** The condition's error message, or "" when it is accepted. */
async function refusal(condition: string): Promise<string> {
  try {
    await compileWhere(condition, COLUMNS);
    return "";
  } catch (e) {
    expect(e, condition).toBeInstanceOf(WhereError);
    return (e as Error).message;
  }
}

describe("custom WHERE conditions", () => {
  it(`refuses every one of the ${ATTACKS.length} hostile conditions, with a reason`, async () => {
    expect(ATTACKS.length).toBeGreaterThanOrEqual(60);
    const accepted: string[] = [];
    for (const attack of ATTACKS) {
      try {
        const sql = await compileWhere(attack, COLUMNS);
        accepted.push(`${attack} => ${sql}`);
      } catch (e) {
        expect(e, attack).toBeInstanceOf(WhereError);
        expect((e as Error).message.length, attack).toBeGreaterThan(5);
      }
    }
    expect(accepted).toEqual([]);
  });

  it.each(BENIGN)("accepts %s and rebuilds it from the parse tree", async (condition, shape) => {
    const sql = await compileWhere(condition, COLUMNS);
    expect(sql).toMatch(shape);
  });

  it("explains why", async () => {
    await expect(compileWhere("pg_sleep(1) IS NULL", COLUMNS)).rejects.toThrow(/function pg_sleep is not allowed/);
    await expect(compileWhere("(SELECT 1) = 1", COLUMNS)).rejects.toThrow(/subqueries are not allowed/);
    await expect(compileWhere("a = 1; b", COLUMNS)).rejects.toThrow(/semicolons/);
    await expect(compileWhere("nope = 1", COLUMNS)).rejects.toThrow(/nope is not a column/);
    await expect(compileWhere("stage OPERATOR(pg_catalog.=) 'x'", COLUMNS)).rejects.toThrow(/operators must be written plainly/);
  });
});

describe("no function or operator resolved through search_path", () => {
  /** Every function call and every operator of the rebuilt SQL that has a qualified spelling, unqualified. */
  async function unqualified(sql: string): Promise<string[]> {
    const tree = await parse(`SELECT 1 FROM t WHERE ${sql}`);
    const found: string[] = [];
    const names = (list: unknown) => ((list as Array<{ String: { sval: string } }>) ?? []).map((n) => n.String.sval);
    const walk = (n: unknown): void => {
      if (Array.isArray(n)) {
        n.forEach(walk);
        return;
      }
      if (!n || typeof n !== "object") return;
      const o = n as Record<string, Record<string, unknown>>;
      if (o.FuncCall && names(o.FuncCall.funcname)[0] !== "pg_catalog") found.push(names(o.FuncCall.funcname).join("."));
      if (o.A_Expr && ["AEXPR_OP", "AEXPR_OP_ANY", "AEXPR_OP_ALL", "AEXPR_LIKE", "AEXPR_ILIKE"].includes(String(o.A_Expr.kind))) {
        if (names(o.A_Expr.name)[0] !== "pg_catalog") found.push(names(o.A_Expr.name).join("."));
      }
      Object.values(o).forEach(walk);
    };
    walk(tree);
    return found;
  }

  it.each([
    "lower(title) = 'abc'",
    "title = 'abc'",
    "upper(title) = 'ABC' AND length(title) > 0",
    "title LIKE 'a%' OR title ILIKE 'b%'",
    "- amount < 0 AND amount * 2 >= 10 AND id % 2 <> 0",
    "id = ANY (ARRAY[1, 2]) AND stage <> ALL (ARRAY['x'])",
    "stage || 'x' = 'wonx' AND now() > updated_at AND abs(amount) > 1",
  ])("%s: every call is pg_catalog's", async (condition) => {
    const sql = await compileWhere(condition, COLUMNS);
    expect(await unqualified(sql)).toEqual([]);
    expect(sql).toMatch(/pg_catalog\./);
  });
});

describe("the string-size rule", () => {
  const nested = (n: number, inner: string) => {
    let s = inner;
    for (let i = 0; i < n; i++) s = `replace(${s}, 'a', 'aaaaaaaaaa')`;
    return `length(${s}) > 0`;
  };
  it.each([
    [nested(9, "'a'"), "nine nested replace calls fold into a 1 GB constant at plan time"],
    [nested(8, "'a' || stage"), "~100 MB per row"],
    ["replace(stage, 'o', 'oo') = 'x'", "a replacement longer than what it replaces"],
    ["replace(stage, 'é', 'éé') = 'x'", "longer in bytes"],
    ["replace(stage, stage, 'x') = 'x'", "a column as the searched string"],
    ["replace(stage, 'x', title) = 'x'", "a column as the replacement"],
  ])("refuses %s (%s)", async (condition) => {
    expect(await refusal(condition)).toMatch(/replace takes string constants, the replacement no longer than what it replaces/);
  });

  it.each([
    "to_char(updated_at, to_char(updated_at, 'RNRNRNRN')) = ''",
    "to_char(amount, title) = ''",
    "to_date(title, stage) IS NULL",
    "to_timestamp(title, stage) IS NULL",
  ])("refuses a format that is not a constant: %s", async (condition) => {
    expect(await refusal(condition)).toMatch(/the format of to_\w+ must be a string constant/);
  });

  it.each(["repeat(stage, 1000000) = ''", "lpad(stage, 100000000) = ''", "rpad(stage, 9) = ''", "format('%s', stage) = ''", "translate(stage, 'a', 'b') = ''"])(
    "keeps refusing %s (not on the list)",
    async (condition) => {
      expect(await refusal(condition)).toMatch(/is not allowed/);
    },
  );
});

describe("the pattern rule", () => {
  it.each([
    "title ~ '(.+).*\\1.*\\1.*\\1$'",
    "title ~ '(..+)(..+)\\2\\1'",
    "title ~* '^(.*?)(.*?)\\2\\1$'",
    "title !~ '(a)\\1'",
    "title ~ ANY (ARRAY['x', '(a)\\1'])",
  ])("refuses back-references: %s", async (condition) => {
    expect(await refusal(condition)).toMatch(/may not hold back-references/);
  });

  it.each(["title ~ stage", "title LIKE stage", "title ILIKE lower(stage)", "title ~~ stage || '%'", "'x' ~ title", "title !~* stage"])(
    "refuses a pattern that is not a constant: %s",
    async (condition) => {
      expect(await refusal(condition)).toMatch(/must be a string constant, not a column or an expression/);
    },
  );

  it("refuses a pattern list that is not ARRAY[constants]", async () => {
    expect(await refusal("'x' ~~ ANY (tags)")).toMatch(/ARRAY\['…', …\] of string constants/);
  });

  it.each([
    "substring(title from '(.+)\\1') = 'a'",
    "substring(title, 'a.') = 'a'",
    "substring(title similar 'a%' escape '#') = 'a'",
    "substring(title from id) = 'a'",
  ])("refuses the pattern forms of substring: %s", async (condition) => {
    expect(await refusal(condition)).toMatch(/substring takes integer constant positions/);
  });
});

describe("the character rule (checked on the raw text: a NUL truncates the parser's input)", () => {
  it("refuses a NUL that would cut the condition short", async () => {
    expect(await refusal("stage = 'open'\u0000 AND amount > 1000")).toMatch(/control or invisible character \(U\+0000 at character 15\)/);
    expect(await refusal("id = 1\u0000 OR public.canary('nul') IS NULL")).toMatch(/U\+0000/);
    expect(await refusal("stage = 'a\u0000b'")).toMatch(/U\+0000/);
  });

  it.each([
    ["\u0001", "0001"],
    ["\u001b", "001B"],
    ["\u007f", "007F"],
    ["\u0085", "0085"],
    ["\ufeff", "FEFF"],
    ["\u202e", "202E"],
    ["\u200b", "200B"],
    ["\u2028", "2028"],
    ["\ud800", "D800"],
  ])("refuses %j anywhere, even inside a literal", async (char, code) => {
    expect(await refusal(`stage = 'a${char}b'`)).toMatch(new RegExp(`U\\+${code}`));
    expect(await refusal(`${char}stage = 'ab'`)).toMatch(new RegExp(`U\\+${code}`));
  });

  it("refuses a control character produced by an escape in a literal", async () => {
    expect(await refusal("stage = E'a\\x01b'")).toMatch(/a string literal holds a control or invisible character \(U\+0001/);
    expect(await refusal("stage = U&'a\\0007b'")).toMatch(/U\+0007/);
  });
});

describe("the type-modifier rule", () => {
  it.each([
    "amount::numeric(1, pg_sleep(1)) > 0",
    "amount::numeric((SELECT 1)) > 0",
    "amount::numeric(public.canary('typmod')) > 0",
    "stage::text(public.canary('typmod2')) = 'x'",
    'amount::numeric("x") > 0',
    "amount::numeric('12') > 0",
    "amount::numeric(12.5) > 0",
    "amount::numeric(1 + 1) > 0",
    "amount::numeric(40000) > 0",
    "amount::numeric(1, 2, 3) > 0",
  ])("refuses %s", async (condition) => {
    expect(await refusal(condition)).toMatch(/type modifiers of a cast to .* must be integer constants|takes at most two type modifiers/);
  });
});
