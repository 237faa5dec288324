/**
 * The hand-written raw record codec (lib/raw-codec.ts) against avsc, the reference: the same bytes
 * for any record, the same record back from any encoding, refusals where avsc refuses, and the
 * COPY text reader of the PostgreSQL source (producers/connectors/postgres/copy-reader.ts).
 */
import avro from "avsc";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { RawRecordReader, encodeRawRecord } from "../../lib/raw-codec.ts";
import { parseCopyText, unescapeCopy } from "../../producers/connectors/postgres/copy-reader.ts";
import { type RawRecord, schemas } from "../../schemas/index.ts";

const type = avro.Type.forSchema(schemas.rawRecord);
const text = fc.string({ unit: fc.constantFrom("a", "Z", "0", " ", "é", "€", "😀", "\u0000", "\\", "\t", "\n", '"'), maxLength: 90 });
const anyText = fc.oneof(text, fc.string({ maxLength: 100 }), fc.string({ unit: "grapheme", maxLength: 30 }));
const value = fc.oneof(fc.constant(null), fc.boolean(), anyText, fc.array(fc.option(anyText, { nil: null }), { maxLength: 5 }));
const record: fc.Arbitrary<RawRecord> = fc.record({
  connector: anyText,
  table: anyText,
  externalId: anyText,
  op: fc.constantFrom("UPSERT" as const, "DELETE" as const),
  runId: anyText,
  readAt: fc.oneof(fc.integer(), fc.integer({ min: -9007199254740990, max: 9007199254740990 }), fc.integer({ min: 1_500_000_000_000, max: 2_500_000_000_000 })),
  sourceUpdatedAt: fc.option(anyText, { nil: null }),
  name: fc.option(anyText, { nil: null }),
  fields: fc.dictionary(anyText, value, { maxKeys: 8 }),
  sourceTypes: fc.dictionary(anyText, anyText, { maxKeys: 8 }),
});

function encode(r: RawRecord): Buffer {
  const buf = Buffer.alloc(1 << 16);
  const end = encodeRawRecord(r, buf, 3);
  expect(end).toBeGreaterThan(0);
  return buf.subarray(3, end);
}

describe("raw record codec", () => {
  it("writes the bytes avsc writes, and reads back what avsc reads", () => {
    const reader = new RawRecordReader();
    fc.assert(
      fc.property(record, (r) => {
        const ours = encode(r);
        expect(ours.equals(type.toBuffer(r))).toBe(true);
        expect(reader.read(ours)).toEqual(type.fromBuffer(ours));
      }),
      { numRuns: 2000 },
    );
  });

  it("reads repeated parts as the same strings and the same frozen source types, across records", () => {
    const reader = new RawRecordReader();
    const sourceTypes = { amount: "pg:numeric", closed_on: "pg:date" };
    const a = reader.read(
      encode({
        connector: "c",
        table: "t",
        externalId: "1",
        op: "UPSERT",
        runId: "r",
        readAt: 1,
        sourceUpdatedAt: null,
        name: null,
        fields: { amount: "1.50" },
        sourceTypes,
      }),
    );
    const b = reader.read(
      encode({
        connector: "c",
        table: "t",
        externalId: "2",
        op: "UPSERT",
        runId: "r",
        readAt: 1,
        sourceUpdatedAt: null,
        name: "x",
        fields: { amount: "2" },
        sourceTypes: { ...sourceTypes },
      }),
    );
    expect(b.sourceTypes).toBe(a.sourceTypes);
    expect(Object.isFrozen(b.sourceTypes)).toBe(true);
    expect(b).toEqual({
      connector: "c",
      table: "t",
      externalId: "2",
      op: "UPSERT",
      runId: "r",
      readAt: 1,
      sourceUpdatedAt: null,
      name: "x",
      fields: { amount: "2" },
      sourceTypes,
    });
    const c = reader.read(encode({ ...b, sourceTypes: { amount: "pg:int4" } }));
    expect(c.sourceTypes).toEqual({ amount: "pg:int4" });
  });

  it("refuses truncated, trailing and malformed bytes, and values the schema does not allow", () => {
    const reader = new RawRecordReader();
    const bytes = type.toBuffer({
      connector: "c",
      table: "t",
      externalId: "1",
      op: "DELETE",
      runId: "r",
      readAt: 5,
      sourceUpdatedAt: null,
      name: null,
      fields: {},
      sourceTypes: {},
    });
    expect(() => reader.read(bytes.subarray(0, bytes.length - 2))).toThrow();
    expect(() => reader.read(Buffer.concat([bytes, Buffer.from([0])]))).toThrow(/trailing/);
    expect(() => reader.read(Buffer.from([2, 99, 2, 99, 2, 49, 9]))).toThrow();
    const ok = {
      connector: "c",
      table: "t",
      externalId: "1",
      op: "UPSERT",
      runId: "r",
      readAt: 5,
      sourceUpdatedAt: null,
      name: null,
      fields: {},
      sourceTypes: {},
    } as RawRecord;
    for (const bad of [
      { ...ok, externalId: 1 },
      { ...ok, op: "MERGE" },
      { ...ok, readAt: 1.5 },
      { ...ok, fields: { a: 3 } },
      { ...ok, fields: { a: undefined } },
      { ...ok, readAt: 2 ** 53 - 1 },
    ]) {
      expect(() => encodeRawRecord(bad as unknown as RawRecord, Buffer.alloc(4096), 0)).toThrow();
      expect(() => type.toBuffer(bad)).toThrow();
    }
  });

  it("gives fields with a default their default when undefined, as avsc does", () => {
    const r = { connector: "c", table: "t", externalId: "1", op: "UPSERT", runId: "r", readAt: 5, fields: {} } as unknown as RawRecord;
    expect(encode(r).equals(type.toBuffer(r))).toBe(true);
  });

  it("says how many bytes are missing when the buffer is too short", () => {
    const r = {
      connector: "c",
      table: "t",
      externalId: "x".repeat(500),
      op: "UPSERT",
      runId: "r",
      readAt: 5,
      sourceUpdatedAt: null,
      name: null,
      fields: {},
      sourceTypes: {},
    } as RawRecord;
    expect(encodeRawRecord(r, Buffer.alloc(100), 0)).toBeLessThan(0);
  });
});

describe("COPY text format", () => {
  const copyEscape = (v: string | null) =>
    v === null
      ? "\\N"
      : v
          .replace(/\\/g, "\\\\")
          .replace(/\t/g, "\\t")
          .replace(/\n/g, "\\n")
          .replace(/\r/g, "\\r")
          .replaceAll("\b", "\\b")
          .replace(/\f/g, "\\f")
          .replace(/\v/g, "\\v");

  it("reads back any row written as COPY TO writes it", () => {
    fc.assert(
      fc.property(fc.array(fc.array(fc.option(anyText, { nil: null }), { minLength: 3, maxLength: 3 }), { minLength: 1, maxLength: 20 }), (rows) => {
        const out: (string | null)[][] = [];
        parseCopyText(rows.map((r) => r.map(copyEscape).join("\t")).join("\n"), 3, out);
        expect(out).toEqual(rows);
      }),
    );
  });

  it("decodes octal and hex byte sequences as UTF-8 bytes, and refuses a row of the wrong width", () => {
    expect(unescapeCopy("caf\\303\\251 \\x41\\\\x")).toBe("café A\\x");
    expect(unescapeCopy("a\\\\N")).toBe("a\\N");
    expect(() => parseCopyText("a\tb", 3, [])).toThrow(/2 columns, expected 3/);
  });
});
