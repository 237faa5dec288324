import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { ConversionError, toBool, toCurrency, toDate, toDecimal, toInstantMicros, toList } from "../../consumers/mapping/convert.ts";
import { formatDate, microsToIso } from "../../lib/protocol.ts";

describe("toDecimal", () => {
  it.each([
    ["1234.5600", "1234.56"],
    ["-0.000", "0"],
    ["+5", "5"],
    [".5", "0.5"],
    ["5.", "5"],
    ["007", "7"],
    ["1e+20", "100000000000000000000"],
    ["1.5E-7", "0.00000015"],
    ["-12.5e1", "-125"],
    ["9007199254740993", "9007199254740993"],
    ["123456789012345678901234567890.123456789", "123456789012345678901234567890.123456789"],
  ])("%s → %s", (input, out) => expect(toDecimal(input)).toBe(out));

  it.each(["NaN", "Infinity", "-Infinity", "abc", "", "1.2.3", "--1"])("refuses %j", (v) => {
    expect(() => toDecimal(v)).toThrow(ConversionError);
  });

  it("keeps every digit of any integer (property)", () => {
    fc.assert(fc.property(fc.bigInt({ min: -(10n ** 40n), max: 10n ** 40n }), (n) => toDecimal(n.toString()) === n.toString()));
  });

  it("round-trips decimals exactly and is idempotent (property)", () => {
    fc.assert(
      fc.property(fc.bigInt({ min: -(10n ** 30n), max: 10n ** 30n }), fc.integer({ min: 0, max: 20 }), (units, scale) => {
        const s = units.toString().replace("-", "");
        const padded = s.padStart(scale + 1, "0");
        const text = `${units < 0n ? "-" : ""}${padded.slice(0, padded.length - scale)}${scale ? `.${padded.slice(padded.length - scale)}` : ""}`;
        const out = toDecimal(text);
        // the value is unchanged: compare as scaled big integers
        const [i, f = ""] = out.replace("-", "").split(".");
        const back = BigInt(`${out.startsWith("-") ? "-" : ""}${i}${f.padEnd(scale, "0")}`);
        return back === units && toDecimal(out) === out;
      }),
    );
  });
});

describe("dates", () => {
  it("keeps a calendar date whatever the process time zone", () => {
    expect(formatDate(toDate("2026-03-29"))).toBe("2026-03-29");
    expect(toDate("1970-01-01")).toBe(0);
    expect(toDate("1969-12-31")).toBe(-1);
  });
  it.each(["2026-02-30", "infinity", "-infinity", "0044-03-15 BC", "2026-3-1", "20260301"])("refuses date %j", (v) => {
    expect(() => toDate(v)).toThrow(ConversionError);
  });
  it("round-trips every date in 0001..9999 (property)", () => {
    fc.assert(
      fc.property(fc.date({ min: new Date("0001-01-01T00:00:00Z"), max: new Date("9999-12-31T00:00:00Z"), noInvalidDate: true }), (d) => {
        const iso = d.toISOString().slice(0, 10);
        return formatDate(toDate(iso)) === iso;
      }),
    );
  });
  it("reads instants in every form the sources send", () => {
    const expected = Date.UTC(2026, 0, 2, 3, 4, 5) * 1000 + 123456;
    expect(toInstantMicros("2026-01-02 03:04:05.123456+00")).toBe(expected);
    expect(toInstantMicros("2026-01-02T04:04:05.123456+01:00")).toBe(expected);
    expect(toInstantMicros("2026-01-02T03:04:05.123456Z")).toBe(expected);
    expect(toInstantMicros("2026-01-01T22:04:05.123456-0500")).toBe(expected);
    expect(toInstantMicros("2026-01-02T03:04:05.000+0000")).toBe(Date.UTC(2026, 0, 2, 3, 4, 5) * 1000);
  });
  it.each(["2026-01-02 03:04:05", "2026-01-02", "infinity", "2026-13-01T00:00:00Z", "2300-01-01T00:00:00Z", "2026-01-02T03:04:05.1234567Z"])(
    "refuses instant %j",
    (v) => {
      expect(() => toInstantMicros(v)).toThrow(ConversionError);
    },
  );
  it("round-trips instants through the sink's ISO form (property)", () => {
    fc.assert(fc.property(fc.integer({ min: -8_000_000_000_000_000, max: 8_000_000_000_000_000 }), (us) => toInstantMicros(microsToIso(us)) === us));
  });
});

describe("bool, list, currency", () => {
  it("reads booleans", () => {
    expect(toBool(true)).toBe(true);
    expect(toBool("f")).toBe(false);
    expect(() => toBool("maybe")).toThrow(ConversionError);
  });
  it("splits multipicklists on ;", () => {
    expect(toList("a; b;;c ")).toEqual(["a", "b", "c"]);
    expect(toList(["x", null, " y "])).toEqual(["x", "y"]);
  });
  it("checks ISO 4217 codes", () => {
    expect(toCurrency(" eur ")).toBe("EUR");
    expect(() => toCurrency("EURO")).toThrow(ConversionError);
    expect(() => toCurrency("ZZZ")).toThrow(ConversionError);
  });
});
