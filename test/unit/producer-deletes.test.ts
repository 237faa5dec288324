/**
 * Delete inference and the mass-delete guard of a full producer run, without Kafka: what the raw
 * topic held as live and the run did not see is deleted, a skipped table infers nothing, and a run
 * that would delete more than the threshold of a table is refused unless forced.
 */
import { describe, expect, it } from "vitest";
import { DeleteInference, MassDeleteError } from "../../producers/run/deletes.ts";
import { coveredBy, planRun } from "../../producers/run/plan.ts";
import type { Config } from "../../lib/config.ts";
import type { SyncRequest } from "../../schemas/index.ts";

const ids = (n: number, from = 0) => Array.from({ length: n }, (_, i) => `id${from + i}`);

describe("delete inference", () => {
  it("infers the records the run did not see, table by table", () => {
    const d = new DeleteInference();
    d.track("deals", new Set(ids(5)));
    d.seen("deals", ["id0", "id1", "id2"]); // read
    d.seen("deals", ["id3"]); // reported deleted by the source (published already)
    d.track("users", new Set(ids(2)));
    d.seen("users", ids(2));
    expect(d.unseenCount("deals")).toBe(1);
    expect(d.pending().map(([t, s]) => [t, [...s]])).toEqual([
      ["deals", ["id4"]],
      ["users", []],
    ]);
  });

  it("infers nothing for a skipped table, or for a table not tracked (incremental runs)", () => {
    const d = new DeleteInference();
    d.track("deals", new Set(ids(3)));
    d.drop("deals");
    d.seen("contacts", ["x"]);
    expect(d.pending()).toEqual([]);
    expect(d.unseenCount("contacts")).toBe(0);
  });
});

describe("mass-delete guard", () => {
  const guarded = (live: number, seen: number, opts: { threshold?: number; force?: boolean } = {}) => {
    const d = new DeleteInference();
    d.track("deals", new Set(ids(live)));
    d.seen("deals", ids(seen));
    return () => d.guard("deals", { threshold: opts.threshold ?? 0.3, force: opts.force ?? false, connector: "crm" });
  };

  it("lets through deletes up to the threshold", () => {
    expect(guarded(10, 7)).not.toThrow(); // 30 %: not above
    expect(guarded(0, 0)).not.toThrow(); // nothing was live
  });

  it("refuses above it, says how many and how to force", () => {
    const run = guarded(10, 6);
    expect(run).toThrow(MassDeleteError);
    expect(run).toThrow(
      "table deals: this full run would delete 4 of 10 records (40%, above the 30% guard); nothing was deleted. If the source really lost them, run `qobra-sync sync crm --full --force-deletes`",
    );
  });

  it("lets a forced run delete everything, and follows the connector's threshold", () => {
    expect(guarded(10, 0, { force: true })).not.toThrow();
    expect(guarded(10, 2, { threshold: 0.9 })).not.toThrow();
  });
});

describe("run plan", () => {
  const config = {
    connectors: [
      {
        id: "crm",
        type: "postgres",
        tables: [
          { name: "deals", fields: {} },
          { name: "users", fields: {} },
        ],
      },
    ],
  } as unknown as Config;
  const request = (r: Partial<SyncRequest>): SyncRequest => ({
    requestId: "r",
    connector: "crm",
    tables: [],
    full: false,
    requestedAt: 1,
    requestedBy: "t",
    forceDeletes: false,
    ...r,
  });

  it("takes every table by default and refuses unknown connectors and tables", () => {
    expect(planRun(config, request({}))).toMatchObject({ ok: true, tables: ["deals", "users"] });
    expect(planRun(config, request({ tables: ["deals", "nope"] }))).toEqual({ ok: false, error: "connector crm has no table nope" });
    expect(planRun(config, request({ connector: "other" })).ok).toBe(false);
  });

  it("coalesces a request into a later run that covered it", () => {
    const last = { startedAt: 10, full: false, tables: [] };
    expect(coveredBy(request({ requestedAt: 5 }), last)).toBe(true);
    expect(coveredBy(request({ requestedAt: 15 }), last)).toBe(false);
    expect(coveredBy(request({ requestedAt: 5, full: true }), last)).toBe(false);
    expect(coveredBy(request({ requestedAt: 5, forceDeletes: true }), last)).toBe(false);
    expect(coveredBy(request({ requestedAt: 5, tables: ["deals"] }), { ...last, tables: ["deals"] })).toBe(true);
    expect(coveredBy(request({ requestedAt: 5 }), { ...last, tables: ["deals"] })).toBe(false);
  });
});
