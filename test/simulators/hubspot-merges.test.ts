/**
 * The HubSpot simulator's record removals other than archiving (issue #13): POST /__admin/merge (merged
 * ids vanish from every listing, a read of one answers the survivor, which lists them in
 * hs_merged_object_ids) and POST /__admin/purge (gone from the archived listing too), and 429 answers
 * without Retry-After, checked through the real @hubspot/api-client 14 with responses validated.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startHubSpotSimulator, type HubSpotSimulator } from "../../simulators/hubspot/server.ts";
import { demoData, expectApiError, hubspotClient, testClock } from "../../support/hubspot.ts";

const TOKEN = "demo-private-app-token";
const clock = testClock("2024-06-03T08:00:00.000Z");
let sim: HubSpotSimulator;

const admin = async (route: string, body: unknown): Promise<{ status: number; body: Record<string, unknown> }> => {
  const res = await fetch(`${sim.url}/__admin/${route}`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
};

async function listedIds(archived: boolean): Promise<string[]> {
  const page = await hubspotClient(sim.url, TOKEN).crm.deals.basicApi.getPage(100, undefined, ["dealname"], undefined, undefined, archived);
  return page.results.map((r) => r.id);
}

async function searchedIds(): Promise<string[]> {
  const page = await hubspotClient(sim.url, TOKEN).crm.deals.searchApi.doSearch({ limit: 100, properties: [], filterGroups: [], sorts: [], after: "0" });
  return page.results.map((r) => r.id);
}

beforeAll(async () => {
  const data = demoData();
  data.portal!.search = { indexDelayMs: 0 };
  sim = await startHubSpotSimulator({ data, clock: clock.now, validateResponses: true });
});

afterAll(async () => {
  expect(sim.responseValidationFailures()).toEqual([]);
  await sim.close();
});

describe("POST /__admin/merge", () => {
  it("removes the merged ids from list, search and the archived listing; the survivor names them and moves", async () => {
    clock.advance(60_000);
    const before = (await hubspotClient(sim.url, TOKEN).crm.deals.basicApi.getById("1001")).updatedAt;
    const res = await admin("merge", { objectType: "deal", primaryId: "1001", mergedIds: ["1002", "9999", "1001"] });
    expect(res).toEqual({ status: 200, body: { objectType: "deals", primaryId: "1001", merged: ["1002"], notFound: ["9999", "1001"] } });
    expect(await listedIds(false)).not.toContain("1002");
    expect(await listedIds(true)).not.toContain("1002");
    expect(await searchedIds()).not.toContain("1002");
    const survivor = await hubspotClient(sim.url, TOKEN).crm.deals.basicApi.getById("1001", ["hs_merged_object_ids", "dealname"]);
    expect(survivor.properties.hs_merged_object_ids).toBe("1002");
    expect(survivor.updatedAt.getTime()).toBe(clock.now());
    expect(survivor.updatedAt.getTime()).toBeGreaterThan(before.getTime());
    expect(survivor.properties.hs_lastmodifieddate).toBe(new Date(clock.now()).toISOString());
  });

  it("a read of a merged id answers the survivor: GET by id and batch read", async () => {
    const c = hubspotClient(sim.url, TOKEN);
    const one = await c.crm.deals.basicApi.getById("1002", ["dealname"]);
    expect(one.id).toBe("1001");
    const batch = await c.crm.deals.batchApi.read({ inputs: [{ id: "1002" }, { id: "1003" }], properties: ["dealname"], propertiesWithHistory: [] });
    expect(batch.results.map((r) => r.id).sort()).toEqual(["1001", "1003"]);
  });

  it("merging again appends (';'-separated, the earlier merged ids kept) and moves the associations", async () => {
    const contactsOf = async (id: string) =>
      (await hubspotClient(sim.url, TOKEN).crm.associations.v4.basicApi.getPage("deals", id, "contacts")).results.map((r) => String(r.toObjectId));
    const moved = await contactsOf("1003");
    const res = await admin("merge", { objectType: "deals", primaryId: 1001, mergedIds: [1003] });
    expect(res.body).toEqual({ objectType: "deals", primaryId: "1001", merged: ["1003"], notFound: [] });
    const survivor = await hubspotClient(sim.url, TOKEN).crm.deals.basicApi.getById("1001", ["hs_merged_object_ids"]);
    expect(survivor.properties.hs_merged_object_ids).toBe("1002;1003");
    for (const id of moved) expect(await contactsOf("1001")).toContain(id);
    // a merged id cannot be merged again, nor be the survivor
    expect((await admin("merge", { objectType: "deals", primaryId: "1001", mergedIds: ["1003"] })).body.notFound).toEqual(["1003"]);
    expect((await admin("merge", { objectType: "deals", primaryId: "1002", mergedIds: ["1004"] })).status).toBe(400);
  });
});

describe("POST /__admin/purge", () => {
  it("deletes records for good, archived ones included: no listing, no read", async () => {
    sim.archiveRecord("deals", "1004");
    expect(await listedIds(true)).toContain("1004");
    const res = await admin("purge", { objectType: "deals", ids: ["1004", "1005", "4242"] });
    expect(res).toEqual({ status: 200, body: { objectType: "deals", purged: ["1004", "1005"], notFound: ["4242"] } });
    expect(await listedIds(true)).not.toContain("1004");
    expect(await listedIds(false)).not.toContain("1005");
    expect(await searchedIds()).not.toContain("1005");
    const c = hubspotClient(sim.url, TOKEN);
    await expectApiError(c.crm.deals.basicApi.getById("1005"), 404);
    const batch = await c.crm.deals.batchApi.read({ inputs: [{ id: "1005" }], properties: [], propertiesWithHistory: [] });
    expect(batch.results).toEqual([]);
    expect((await admin("purge", { objectType: "deals", ids: "1004" })).status).toBe(400);
  });
});

describe("429 without Retry-After", () => {
  it("an injected DAILY or TEN_SECONDLY_ROLLING 429 may come without the header; the body names the policy", async () => {
    const c = hubspotClient(sim.url, TOKEN);
    sim.injectFault({ path: "/crm/v3/objects/deals", method: "GET", status: 429, policy: "DAILY", retryAfter: null });
    const daily = await expectApiError(c.crm.deals.basicApi.getPage(1), 429);
    expect(daily.body).toMatchObject({ policyName: "DAILY", message: "You have reached your daily limit.", errorType: "RATE_LIMIT" });
    expect(daily.headers["retry-after"]).toBeUndefined();
    sim.injectFault({ path: "/crm/v3/objects/deals", method: "GET", status: 429, retryAfter: 7 });
    const burst = await expectApiError(c.crm.deals.basicApi.getPage(1), 429);
    expect(burst.body).toMatchObject({ policyName: "TEN_SECONDLY_ROLLING" });
    expect(burst.headers["retry-after"]).toBe("7");
  });

  it("a portal whose limits send no Retry-After (rateLimits.retryAfter: false): ten-secondly and daily", async () => {
    const data = demoData();
    data.portal!.rateLimits = { tenSecondly: 2, daily: 3, retryAfter: false };
    const quiet = await startHubSpotSimulator({ data, clock: clock.now, validateResponses: true });
    try {
      const c = hubspotClient(quiet.url, TOKEN);
      await c.crm.deals.basicApi.getPage(1);
      await c.crm.deals.basicApi.getPage(1);
      const burst = await expectApiError(c.crm.deals.basicApi.getPage(1), 429);
      expect(burst.body).toMatchObject({ policyName: "TEN_SECONDLY_ROLLING" });
      expect(burst.headers["retry-after"]).toBeUndefined();
      expect(burst.headers["x-hubspot-ratelimit-remaining"]).toBe("0");
      clock.advance(10_000);
      await c.crm.deals.basicApi.getPage(1);
      const daily = await expectApiError(c.crm.deals.basicApi.getPage(1), 429);
      expect(daily.body).toMatchObject({ policyName: "DAILY" });
      expect(daily.headers["retry-after"]).toBeUndefined();
    } finally {
      await quiet.close();
    }
  });
});
