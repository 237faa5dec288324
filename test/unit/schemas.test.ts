import { describe, expect, it } from "vitest";
import { avroType, type DeadLetter, type RawRecord, type SyncEvent, type SyncRequest, type SyncTask } from "../../schemas/index.ts";
import { mappedSchema, tableLayout } from "../../consumers/mapping/mapped-schema.ts";
import { mapRecord } from "../../consumers/mapping/map-record.ts";
import avro from "avsc";

const raw: RawRecord = {
  connector: "crm",
  table: "deals",
  externalId: "9007199254740993",
  op: "UPSERT",
  runId: "r1",
  readAt: 1,
  sourceUpdatedAt: "2026-01-01 10:00:00+00",
  name: "Deal",
  fields: { amount: "12.3400", currency: "usd", closed_on: "2026-03-29", tags: "a;b", won: true, owner_email: " Rep@Example.com ", n: null },
  sourceTypes: { amount: "pg:numeric", closed_on: "pg:date" },
};

describe("pipeline schemas", () => {
  it("every owned message type is valid against its .avsc and round-trips", () => {
    const samples = {
      syncRequest: {
        requestId: "r",
        connector: "crm",
        tables: [],
        full: true,
        requestedAt: 1,
        requestedBy: "cli",
        forceDeletes: false,
        reconcile: false,
      } satisfies SyncRequest,
      syncTask: { taskId: "t", runId: "r", connector: "c", table: "deals", full: false, windowFrom: null, windowTo: null } satisfies SyncTask,
      rawRecord: raw,
      syncEvent: {
        runId: "r",
        connector: "c",
        type: "RUN_COMPLETED",
        at: 1,
        stage: "producer",
        table: null,
        full: true,
        counts: { read: 3 },
        offsets: [{ topic: "t", partition: 0, offset: 3 }],
        error: null,
        taskId: null,
        retriable: null,
      } satisfies SyncEvent,
      deadLetter: {
        stage: "mapper",
        originalTopic: "t",
        originalPartition: 0,
        originalOffset: 1,
        key: Buffer.from("k"),
        value: null,
        connector: null,
        table: null,
        runId: null,
        errorClass: "E",
        errorMessage: "m",
        issues: [],
        at: 1,
      } satisfies DeadLetter,
    } as const;
    for (const [name, value] of Object.entries(samples)) {
      const type = avroType(name as keyof typeof samples);
      expect(type.isValid(value), name).toBe(true);
      expect(type.fromBuffer(type.toBuffer(value))).toEqual(value);
    }
  });

  it("maps a raw record into a value valid against the table's mapped schema", () => {
    const fields = {
      amount: { type: "amount" as const, currencyColumn: "currency" },
      closed_on: { type: "date" as const },
      tags: { type: "multipicklist" as const },
      won: { type: "bool" as const },
      owner_email: { type: "user" as const },
      n: { type: "number" as const },
    };
    const layout = tableLayout("crm", "deals", fields, raw.sourceTypes);
    const result = mapRecord(raw, { fields, layout, defaultCurrency: "EUR", version: 42 });
    expect(result.ok).toBe(true);
    if (!result.ok) return;
    expect(result.value).toMatchObject({
      _external_id: "9007199254740993",
      amount: "12.34",
      amount_currency: "USD",
      tags: ["a", "b"],
      won: true,
      owner_email: "rep@example.com",
      n: null,
      _version: 42,
    });
    expect(avro.Type.forSchema(mappedSchema(layout)).isValid(result.value)).toBe(true);
  });

  it("maps percentages in percent points, shifting fractions exactly", () => {
    const fields = { p: { type: "percentage" as const }, f: { type: "percentage" as const, scale: "fraction" as const } };
    const layout = tableLayout("crm", "deals", fields, {});
    const r = mapRecord({ ...raw, fields: { p: "12.5", f: "0.125000000000000001" } }, { fields, layout, defaultCurrency: "EUR", version: 1 });
    expect(r.ok && [r.value.p, r.value.f]).toEqual(["12.5", "12.5000000000000001"]);
  });

  it("collects every bad field of a record, not only the first", () => {
    const fields = { amount: { type: "amount" as const, currencyColumn: "currency" }, closed_on: { type: "date" as const } };
    const layout = tableLayout("crm", "deals", fields, raw.sourceTypes);
    const bad = { ...raw, fields: { amount: "NaN", currency: "EURO", closed_on: "infinity" } };
    const result = mapRecord(bad, { fields, layout, defaultCurrency: "EUR", version: 1 });
    expect(result.ok).toBe(false);
    if (result.ok) return;
    expect(result.issues.map((i) => `${i.path}:${i.code}`)).toEqual(["amount:not_finite", "closed_on:out_of_range"]);
  });
});
