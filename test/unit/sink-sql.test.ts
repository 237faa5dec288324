import { describe, expect, it } from "vitest";
import { columnsOf, createTableSql, pgTextArray, upsertSql } from "../../consumers/sink/sink-sql.ts";
import { mappedSchema, tableLayout } from "../../consumers/mapping/mapped-schema.ts";

const layout = tableLayout(
  "crm",
  "deals",
  {
    amount: { type: "amount", currencyColumn: "currency" },
    closed_on: { type: "date" },
    updated: { type: "date" },
    owner_email: { type: "user" },
    tags: { type: "multipicklist" },
    won: { type: "bool" },
  },
  { closed_on: "pg:date", updated: "pg:timestamptz" },
);

describe("sink SQL", () => {
  it("derives typed columns from the mapped schema", () => {
    expect(columnsOf(mappedSchema(layout)).map((c) => `${c.name}:${c.pgType}`)).toEqual([
      "amount:numeric",
      "amount_currency:text",
      "closed_on:date",
      "updated:timestamptz",
      "owner_email:text",
      "owner_email_user_id:text",
      "tags:text[]",
      "won:boolean",
    ]);
  });
  it("builds a version-guarded upsert over unnest arrays", () => {
    const sql = upsertSql('"s"."crm__deals"', columnsOf(mappedSchema(layout)));
    expect(sql).toContain('ON CONFLICT ("_external_id") DO UPDATE SET');
    expect(sql).toContain('WHERE t."_version" <= EXCLUDED."_version"');
    expect(sql).toContain("$6::numeric[]");
    expect(sql).toContain("$8::date[], $9::timestamptz[]");
    expect(sql).toContain('u."tags"::text[]');
    expect(createTableSql('"s"."crm__deals"', [])).toContain('"_external_id" text PRIMARY KEY');
  });
  it("quotes text arrays", () => {
    expect(pgTextArray(["a", 'b"c', "d\\e", ""])).toBe('{"a","b\\"c","d\\\\e",""}');
  });
});
