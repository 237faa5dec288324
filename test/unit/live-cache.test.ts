/** The live-id cache of full runs (producers/run/live-cache.ts): valid only at the same end offsets, bounded, copies out. */
import { describe, expect, it } from "vitest";
import { LiveIdCache } from "../../producers/run/live-cache.ts";

const ends = (...offsets: number[]) => offsets.map((offset, partition) => ({ partition, offset }));

describe("LiveIdCache", () => {
  it("answers only at the end offsets it was stored with, on every partition, and forgets on a mismatch", () => {
    const c = new LiveIdCache();
    c.set("raw.crm", "deals", ends(10, 20), new Set(["1", "2"]));
    expect(c.get("raw.crm", "deals", ends(10, 21))).toBeUndefined();
    expect(c.get("raw.crm", "deals", ends(10, 20))).toBeUndefined(); // dropped by the mismatch
    c.set("raw.crm", "deals", ends(10, 20), new Set(["1", "2"]));
    expect(c.get("raw.crm", "deals", [...ends(10, 20)].reverse())).toEqual(new Set(["1", "2"]));
    expect(c.get("raw.crm", "other", ends(10, 20))).toBeUndefined();
  });

  it("hands out a copy: a run that marks ids seen does not change what is stored", () => {
    const c = new LiveIdCache();
    c.set("t", "x", ends(5), new Set(["a", "b"]));
    const got = c.get("t", "x", ends(5))!;
    got.delete("a");
    expect(c.get("t", "x", ends(5))).toEqual(new Set(["a", "b"]));
  });

  it("keeps at most maxIds ids, the least recently used dropped first, and never a table over a quarter of it", () => {
    const c = new LiveIdCache(8);
    const ids = (n: number, p: string) => new Set(Array.from({ length: n }, (_, i) => `${p}${i}`));
    c.set("t", "a", ends(1), ids(2, "a"));
    c.set("t", "b", ends(1), ids(2, "b"));
    c.set("t", "c", ends(1), ids(2, "c"));
    c.get("t", "a", ends(1)); // a is now the most recently used
    c.set("t", "d", ends(1), ids(2, "d"));
    c.set("t", "e", ends(1), ids(2, "e"));
    expect(c.size).toBeLessThanOrEqual(8);
    expect(c.get("t", "b", ends(1))).toBeUndefined();
    expect(c.get("t", "a", ends(1))?.size).toBe(2);
    c.set("t", "big", ends(1), ids(3, "z"));
    expect(c.get("t", "big", ends(1))).toBeUndefined();
  });
});
