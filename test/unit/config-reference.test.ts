/**
 * docs/configuration.md is generated from the zod schemas: this fails when the checked-in file
 * differs from what the schemas say now (a key, a default or a description changed without the
 * reference being regenerated).
 */
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { renderConfigReference } from "../../app/config-reference.ts";

describe("configuration reference", () => {
  it("docs/configuration.md matches the schemas (run `npm run docs:config` after changing one)", () => {
    const checkedIn = readFileSync(new URL("../../docs/configuration.md", import.meta.url), "utf8");
    expect(checkedIn === renderConfigReference(), "docs/configuration.md is out of date: run `npm run docs:config` and commit the result").toBe(true);
  });

  it("documents every key of every source", () => {
    const text = renderConfigReference();
    for (const key of [
      "`kafka.brokers`",
      "`sink.databaseUrl`",
      "`connection.url`",
      "`tables[].object`",
      "`schedule.incrementalEveryMinutes`",
      "`schedule.fullAt`",
    ]) {
      expect(text).toContain(key);
    }
    // Every key row carries a description.
    const undocumented = text.split("\n").filter((l) => l.startsWith("| `") && l.trimEnd().endsWith("|  |"));
    expect(undocumented).toEqual([]);
  });
});
