/**
 * User fields matched other than by e-mail: `userKey: id` (a source column holding Qobra's user
 * ids) and integer key columns, whatever form the source writes the integer in; and the warning
 * naming a user field whose key the users query does not return.
 */
import { describe, expect, it } from "vitest";
import { mapRecord } from "../../consumers/mapping/map-record.ts";
import { tableLayout } from "../../consumers/mapping/mapped-schema.ts";
import { buildUserIndex, missingUserKeys, normaliseKey, userKeyUses } from "../../consumers/mapping/users.ts";
import type { RawRecord } from "../../schemas/index.ts";

// As pg returns them: an integer id is a number, a bigint text, e-mails in any case.
const users = buildUserIndex([
  { id: 7, email: " Ada@Example.com ", employee_no: 1042 },
  { id: 8, email: "bob@example.com", employee_no: null },
  { id: "9007199254740993", email: "big@example.com", employee_no: 7 },
]);

describe("user keys", () => {
  it("writes integers in one canonical form, other keys trimmed and lower-cased", () => {
    expect(normaliseKey(" 42 ")).toBe("42");
    expect(normaliseKey("0042")).toBe("42");
    expect(normaliseKey("42.000")).toBe("42");
    expect(normaliseKey("+42")).toBe("42");
    expect(normaliseKey("-0")).toBe("0");
    expect(normaliseKey("-12")).toBe("-12");
    expect(normaliseKey("42.5")).toBe("42.5");
    expect(normaliseKey(" Ada@Example.COM")).toBe("ada@example.com");
    expect(normaliseKey("005A000000XyZ12")).toBe("005a000000xyz12");
  });

  it("matches the id column itself (userKey: id), integer or bigint, in any integer form", () => {
    expect(users.lookup("7", "id")).toBe("7");
    expect(users.lookup("007", "ID")).toBe("7");
    expect(users.lookup("8.00", "id")).toBe("8");
    expect(users.lookup("9007199254740993", "id")).toBe("9007199254740993");
    expect(users.lookup("6", "id")).toBeNull();
  });

  it("matches integer key columns and e-mails as before", () => {
    expect(users.lookup("1042", "employee_no")).toBe("7");
    expect(users.lookup("7", "employee_no")).toBe("9007199254740993");
    expect(users.lookup("ADA@example.com")).toBe("7");
    expect(users.lookup("nobody@example.com")).toBeNull();
  });

  it("resolves a mapped user field by id, keeping the source's value", () => {
    const fields = { owner: { type: "user" as const, userKey: "id" }, rep: { type: "user" as const } };
    const raw: RawRecord = {
      op: "UPSERT",
      connector: "crm",
      table: "deals",
      externalId: "1",
      name: "Deal 1",
      sourceUpdatedAt: null,
      runId: "r",
      fields: { owner: " 007 ", rep: "Bob@Example.com" },
      sourceTypes: { owner: "pg:int4", rep: "pg:text" },
    } as unknown as RawRecord;
    const layout = tableLayout("crm", "deals", fields, { owner: "pg:int4", rep: "pg:text" });
    const r = mapRecord(raw, { fields, layout, defaultCurrency: "EUR", version: 1, users });
    expect(r).toMatchObject({ ok: true, unresolvedUsers: [] });
    if (!r.ok) return;
    expect(r.value).toMatchObject({ owner: "007", owner_user_id: "7", rep: "bob@example.com", rep_user_id: "8" });
  });

  it("names a user field whose key the users query does not return", () => {
    const uses = userKeyUses([
      {
        id: "crm",
        tables: [{ name: "deals", fields: { owner: { type: "user", userKey: "id" }, rep: { type: "user" }, seller: { type: "user", userKey: "badge" } } }],
      },
    ]);
    expect(uses.map((u) => u.key)).toEqual(["id", "email", "badge"]);
    expect(missingUserKeys(users, uses)).toEqual([
      'connector crm, table deals, field seller: userKey "badge" is not a column of sink.users.query; add it to the query (or fix the field\'s userKey), else these users stay unresolved',
    ]);
    // nothing loaded (the query failed, or no user yet): no verdict
    expect(missingUserKeys(buildUserIndex([]), uses)).toEqual([]);
  });
});
