/**
 * Custom WHERE conditions of the PostgreSQL connector: an attack set that must be refused (with a
 * reason) and a benign set that must pass, checked with PostgreSQL's own parser.
 */
import { describe, expect, it } from "vitest";
import { WhereError, compileWhere } from "../../producers/connectors/postgres/where.ts";
import { ATTACKS } from "../fixtures/postgres/where-attacks.ts";

const COLUMNS = new Set(["id", "stage", "amount", "closed_on", "owner_email", "title", "updated_at", "won", "Mixed Case"]);

const BENIGN: Array<[string, RegExp]> = [
  ["stage = 'won'", /^stage = 'won'$/],
  ["stage = 'it''s'", /'it''s'/],
  ["amount > 1000 AND won", /amount > 1000/],
  ["stage IN ('won', 'closed') OR amount BETWEEN 10 AND 20.5", /BETWEEN 10 AND 20\.5/],
  ["closed_on >= DATE '2026-01-01'", /closed_on >=/],
  ["closed_on >= current_date - 30", /CURRENT_DATE/],
  ["updated_at > now() - interval '7 days'", /now\(\)/],
  ["lower(owner_email) LIKE '%@example.com'", /lower\(owner_email\) LIKE/],
  ["title ILIKE 'deal%' AND NOT won", /ILIKE/],
  ["coalesce(amount, 0) <> 0", /COALESCE|coalesce/],
  ["owner_email IS NOT NULL", /IS NOT NULL/],
  ["won IS TRUE", /IS TRUE/],
  ["date_trunc('month', updated_at) = '2026-01-01'", /date_trunc/],
  ["amount::numeric(12,2) > 5", /numeric/],
  ["stage = $$won$$", /'won'/],
  ["id = ANY (ARRAY[1, 2, 3])", /ANY/],
  ["\"Mixed Case\" = 'x'", /"Mixed Case"/],
  ["CASE WHEN won THEN amount ELSE 0 END > 10", /CASE/],
  ["extract(year FROM closed_on) = 2026", /EXTRACT|extract/],
  ["stage <> 'lost' AND (amount > 5 OR title LIKE 'VIP%')", /OR/],
  ["greatest(amount, 0) > 1", /GREATEST|greatest/],
  ["id IS DISTINCT FROM 3", /DISTINCT FROM/],
  ["stage NOT IN ('a', 'b')", /NOT IN/],
  ["length(title) > 3", /length/],
];

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
    // the rebuilt SQL is itself accepted (idempotent)
    expect(await compileWhere(sql, COLUMNS)).toBe(sql);
  });

  it("explains why", async () => {
    await expect(compileWhere("pg_sleep(1) IS NULL", COLUMNS)).rejects.toThrow(/function pg_sleep is not allowed/);
    await expect(compileWhere("(SELECT 1) = 1", COLUMNS)).rejects.toThrow(/subqueries are not allowed/);
    await expect(compileWhere("a = 1; b", COLUMNS)).rejects.toThrow(/semicolons/);
    await expect(compileWhere("nope = 1", COLUMNS)).rejects.toThrow(/nope is not a column/);
  });
});
