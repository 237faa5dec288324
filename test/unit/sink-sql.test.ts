import { describe, expect, it } from "vitest";
import { columnsOf, copyRows, copyStageSql, createTableSql, mergeSql, pgTextArray, stageDdl, stageName, upsertSql } from "../../consumers/sink/sink-sql.ts";
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
  it("stages a batch by COPY and merges it with the same version guard as the upsert", () => {
    const columns = columnsOf(mappedSchema(layout));
    const stage = stageName('"s"."crm__deals"', columns);
    expect(stage).toMatch(/^pg_temp\."qobra_stage_[0-9a-f]+"$/);
    expect(stageName('"s"."crm__deals"', columns.slice(1))).not.toBe(stage); // a new layout, a new staging table
    expect(stageDdl(stage, columns)).toContain('"closed_on" integer, "updated" bigint');
    expect(stageDdl(stage, columns)).toContain("ON COMMIT DELETE ROWS");
    expect(copyStageSql(stage, columns)).toMatch(
      /^COPY pg_temp\."qobra_stage_[0-9a-f]+" \("_external_id", "_name", "_source_updated_at", "_run_id", "_version", "amount"/,
    );
    const merge = mergeSql('"s"."crm__deals"', stage, columns);
    const upsert = upsertSql('"s"."crm__deals"', columns);
    expect(merge.split("\n").slice(-2)).toEqual(upsert.split("\n").slice(-2));
    expect(merge).toContain(`DATE '1970-01-01' + s."closed_on"`);
    expect(merge).toContain(`TIMESTAMPTZ '1970-01-01 00:00:00+00' + s."updated" * INTERVAL '1 microsecond'`);
  });
  it("writes COPY text: NULL as \\N, escapes, booleans, arrays, numbers as they are", () => {
    const columns = columnsOf(mappedSchema(layout));
    const line = copyRows(columns, [
      {
        _external_id: "a\tb",
        _name: "x\\y\nz",
        _source_updated_at: 1_700_000_000_123_456,
        _run_id: "r",
        _version: 42,
        amount: "-12.50",
        amount_currency: null,
        closed_on: -3,
        updated: null,
        owner_email: "\\N",
        owner_email_user_id: null,
        tags: ["a", 'b"c', "d\\e"],
        won: false,
      },
    ]);
    expect(line).toBe('a\\tb\tx\\\\y\\nz\t1700000000123456\tr\t42\t-12.50\t\\N\t-3\t\\N\t\\\\N\t\\N\t{"a","b\\\\"c","d\\\\\\\\e"}\tf\n');
  });
  it("quotes text arrays", () => {
    expect(pgTextArray(["a", 'b"c', "d\\e", ""])).toBe('{"a","b\\"c","d\\\\e",""}');
  });
});
