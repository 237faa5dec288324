/**
 * The HubSpot connector against the simulator, on its clock, for issue #13: reconciliation's id
 * listing (ids only, ⌈n/200⌉ searches, the table's filter applied), an incremental run's deletes of
 * merged ids and of records that left a filtered table, batch reads of merged ids, user-typed
 * properties of every HubSpot type, and 429s without Retry-After (ten-secondly: wait the window;
 * daily: fail at once).
 */
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { HubSpotConnector } from "../../producers/connectors/hubspot/config.ts";
import { HubSpotDailyLimitError } from "../../producers/connectors/hubspot/errors.ts";
import type { HubSpotClock } from "../../producers/connectors/hubspot/limits.ts";
import { createHubSpotSource, type HubSpotSource } from "../../producers/connectors/hubspot/source.ts";
import type { SourcePage } from "../../producers/connector.ts";
import { startHubSpotSimulator, type HubSpotSimulator } from "../../simulators/hubspot/server.ts";
import type { HubSpotSimData } from "../../simulators/hubspot/types.ts";
import { demoData, testClock } from "../../support/hubspot.ts";

function simClock(): ReturnType<typeof testClock> & HubSpotClock {
  const c = testClock("2024-06-03T08:00:00.000Z");
  return {
    ...c,
    sleep: async (ms: number) => {
      const target = c.now() + Math.max(0, ms);
      await new Promise<void>((r) => setImmediate(r));
      if (c.now() < target) c.set(target);
    },
  };
}

const CLOSED_WON = [{ propertyName: "dealstage", operator: "IN", values: ["closedwon"] }];

let clock: ReturnType<typeof simClock>;
let sim: HubSpotSimulator;

async function start(data: HubSpotSimData = demoData()): Promise<void> {
  data.portal!.search = { indexDelayMs: 0 };
  sim = await startHubSpotSimulator({ data, clock: clock.now });
}

function source(tables: unknown[]): HubSpotSource {
  const config = HubSpotConnector.parse({
    id: "hs",
    type: "hubspot",
    baseUrl: sim.url,
    clientId: "demo-client-id",
    clientSecret: "demo-client-secret",
    refreshToken: "demo-refresh-token",
    tables,
  });
  return createHubSpotSource(config, { clock });
}

const opts = (extra: Partial<{ full: boolean; state: unknown; runStartedAt: number }> = {}) => ({
  full: false,
  signal: new AbortController().signal,
  state: null as unknown,
  runStartedAt: clock.now(),
  ...extra,
});

async function drain(pages: AsyncIterable<SourcePage>): Promise<{ ids: string[]; deleted: string[]; state: unknown }> {
  const out = { ids: [] as string[], deleted: [] as string[], state: undefined as unknown };
  for await (const p of pages) {
    out.ids.push(...p.records.map((r) => r.externalId));
    out.deleted.push(...(p.deletedIds ?? []));
    if (p.state !== undefined) out.state = p.state;
  }
  return out;
}

beforeEach(() => {
  clock = simClock();
});
afterEach(async () => {
  await sim?.close();
});

describe("reconciliation: listIds", () => {
  it("lists every id with the table's filter, ids only, in ⌈n/200⌉ searches", async () => {
    const data = demoData();
    const deals = data.objects.deals!.records!;
    for (let i = 0; i < 450; i++)
      deals.push({ id: String(20_000 + i), properties: { dealname: `d${i}`, dealstage: i % 3 === 0 ? "closedlost" : "closedwon" } });
    await start(data);
    const all = source([{ name: "deals", object: "deals", fields: { dealname: "string" } }]);
    const ids: string[] = [];
    for await (const batch of all.listIds("deals", opts())) ids.push(...batch);
    expect(ids).toHaveLength(454); // the demo portal's four live deals (one is archived) and 450 more
    expect(all.lastIdList.get("deals")).toEqual({ searches: 3, ids: 454 });
    const won = source([{ name: "won", object: "deals", filter: CLOSED_WON, fields: { dealname: "string" } }]);
    sim.resetCounters();
    const wonIds: string[] = [];
    for await (const batch of won.listIds("won", opts())) wonIds.push(...batch);
    expect(wonIds).toHaveLength(301); // 1001 and two thirds of the generated ones
    expect(new Set(wonIds).has("1002")).toBe(false);
    expect(sim.counters()["POST /crm/v3/objects/deals/search"]).toBe(2);
  });
});

describe("incremental runs: merges and filter exits", () => {
  it("deletes the merged ids the survivor names, and never reads a merged id as the survivor", async () => {
    await start();
    const src = source([{ name: "deals", object: "deals", fields: { dealname: "string", hubspot_owner_id: "user" } }]);
    const first = await drain(src.read("deals", opts({ full: true })));
    expect(first.ids).toContain("1002");
    clock.advance(60_000);
    const merged = sim.mergeRecords("deals", "1001", ["1002"]);
    expect(merged.merged).toEqual(["1002"]);
    clock.advance(60_000);
    const next = await drain(src.read("deals", opts({ state: first.state })));
    expect(next.ids).toEqual(["1001"]);
    expect(next.deleted).toEqual(["1002"]);
    // a batch read of the merged id answers the survivor: dropped
    expect(await src.api.batchRead("deals", ["1002"], ["dealname"])).toEqual([]);
    expect((await src.api.batchRead("deals", ["1002", "1001"], ["dealname"])).map((o) => o.id)).toEqual(["1001"]);
  });

  it("deletes a record that changed and left a filtered table, in the next incremental run", async () => {
    await start();
    const src = source([{ name: "won", object: "deals", filter: CLOSED_WON, fields: { dealname: "string" } }]);
    const first = await drain(src.read("won", opts({ full: true })));
    expect(first.ids).toEqual(["1001"]);
    clock.advance(60_000);
    sim.upsertRecord("deals", { id: "1001", properties: { dealstage: "closedlost" } });
    sim.upsertRecord("deals", { id: "1004", properties: { dealname: "still lost" } }); // changed, never matched
    clock.advance(60_000);
    const next = await drain(src.read("won", opts({ state: first.state })));
    expect(next.ids).toEqual([]);
    // without the worker's published records every changed non-matching id is a candidate
    expect(next.deleted.sort()).toEqual(["1001", "1004"]);
  });
});

describe("user-typed properties", () => {
  it("a HubSpot user property, an owner id and goals' numeric assignee all map to e-mails", async () => {
    const data = demoData();
    data.objects.deals!.properties!.push({ name: "sales_engineer", type: "enumeration", fieldType: "select", label: "SE", referencedObjectType: "OWNER" });
    data.objects.deals!.records!.find((r) => r.id === "1001")!.properties!.sales_engineer = "102";
    await start(data);
    const src = source([
      { name: "deals", object: "deals", fields: { dealname: "string", sales_engineer: "user", hubspot_owner_id: "user" } },
      { name: "goals", object: "goals" },
    ]);
    const deals = await drain(src.read("deals", opts({ full: true })));
    expect(deals.ids.length).toBeGreaterThan(0);
    const pages: SourcePage[] = [];
    for await (const p of src.read("deals", opts({ full: true }))) pages.push(p);
    const d1001 = pages.flatMap((p) => p.records).find((r) => r.externalId === "1001")!;
    expect(d1001.fields.sales_engineer).toMatch(/@example\.com$/);
    expect(d1001.fields.hubspot_owner_id).toMatch(/@example\.com$/);
    const goals: SourcePage[] = [];
    for await (const p of src.read("goals", opts({ full: true }))) goals.push(p);
    const assignees = goals.flatMap((p) => p.records).map((r) => r.fields.hs_assignee_user_id);
    expect(assignees.length).toBeGreaterThan(0);
    for (const a of assignees) if (a !== null) expect(a).toMatch(/@/);
  });
});

describe("429 without Retry-After", () => {
  it("TEN_SECONDLY_ROLLING waits the 10 s window and goes on", async () => {
    await start();
    const src = source([{ name: "deals", object: "deals", fields: { dealname: "string" } }]);
    sim.injectFault({ path: "/crm/v3/objects/deals", method: "GET", status: 429, policy: "TEN_SECONDLY_ROLLING", retryAfter: null });
    const t0 = clock.now();
    const page = await src.api.listPage("deals", { limit: 10, properties: ["dealname"], archived: false });
    expect(page.results.length).toBeGreaterThan(0);
    expect(clock.now() - t0).toBeGreaterThanOrEqual(10_000);
    expect(clock.now() - t0).toBeLessThan(11_000);
    expect(src.api.stats.rateLimited).toBe(1);
  });

  it("DAILY fails at once with the daily-limit message", async () => {
    await start();
    const src = source([{ name: "deals", object: "deals", fields: { dealname: "string" } }]);
    sim.injectFault({ path: "/crm/v3/objects/deals", method: "GET", status: 429, policy: "DAILY", retryAfter: null, count: 5 });
    const t0 = clock.now();
    const e = await src.api.listPage("deals", { limit: 10, properties: ["dealname"], archived: false }).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(HubSpotDailyLimitError);
    expect((e as Error).message).toMatch(/daily API limit is reached \(it resets at midnight in the portal's time zone\)/);
    expect(clock.now() - t0).toBeLessThan(1000);
    expect(sim.requestLog().filter((r) => r.status === 429)).toHaveLength(1);
  });
});
