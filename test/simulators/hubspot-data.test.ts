/**
 * HubSpot simulator data: the generator (deterministic, decimals, shared last-modified dates),
 * the data-file checks (clear errors naming the path) and derived associations.
 */
import { describe, expect, it } from "vitest";
import { generateHubSpotData, startHubSpotSimulator } from "../../simulators/hubspot/server.ts";
import { DataError } from "../../simulators/hubspot/store.ts";
import type { HubSpotSimData } from "../../simulators/hubspot/types.ts";
import { demoData, hubspotClient, testClock } from "../../support/hubspot.ts";

describe("generateHubSpotData", () => {
  it("is deterministic per seed and produces HubSpot-shaped records", () => {
    const a = generateHubSpotData({ deals: 50, companies: 5, contacts: 10, lineItemsPerDeal: 2, meetings: 5, customRecords: 3, goalTargets: 2, seed: 42 });
    const b = generateHubSpotData({ deals: 50, companies: 5, contacts: 10, lineItemsPerDeal: 2, meetings: 5, customRecords: 3, goalTargets: 2, seed: 42 });
    expect(a).toEqual(b);
    expect(generateHubSpotData({ deals: 50, seed: 43 })).not.toEqual(generateHubSpotData({ deals: 50, seed: 42 }));
    const deals = a.objects.deals!.records!;
    expect(deals).toHaveLength(50);
    for (const d of deals) {
      expect(d.id).toMatch(/^\d+$/);
      expect(String(d.properties.amount)).toMatch(/^\d+\.\d{2,12}$/);
      expect(["EUR", "USD", "GBP", "JPY"]).toContain(d.properties.deal_currency_code);
    }
    expect(deals.some((d) => String(d.properties.amount).split(".")[1]!.length > 10)).toBe(true);
    expect(a.objects.line_items!.records!.every((l) => typeof l.properties.hs_line_item_currency_code === "string")).toBe(true);
    expect(a.owners!.filter((o) => o.archived).map((o) => [o.userId, typeof o.userIdIncludingInactive])).toEqual([[null, "number"]]);
    expect(a.schemas?.[0]?.primaryDisplayProperty).toBe("plan_name");
  });

  it("can give every record one hs_lastmodifieddate", () => {
    const stamp = "2024-05-01T00:00:00.000Z";
    const d = generateHubSpotData({ deals: 30, contacts: 3, sameLastModified: stamp });
    expect(new Set(d.objects.deals!.records!.map((r) => r.properties.hs_lastmodifieddate))).toEqual(new Set([stamp]));
    expect(new Set(d.objects.contacts!.records!.map((r) => r.properties.lastmodifieddate))).toEqual(new Set([stamp]));
  });

  it("loads into the simulator and serves associations both ways", async () => {
    const clock = testClock();
    const sim = await startHubSpotSimulator({
      data: generateHubSpotData({ deals: 20, companies: 2, lineItemsPerDeal: 1, customRecords: 2 }),
      clock: clock.now,
      validateResponses: true,
    });
    try {
      const c = hubspotClient(sim.url, sim.issueAccessToken());
      const r = await c.crm.associations.v4.batchApi.getPage("deals", "line_items", { inputs: [{ id: "3000001" }] });
      expect(r.results[0]!.to.map((t) => [t.toObjectId, t.associationTypes.map((x) => x.typeId)])).toEqual([[4000001, [19]]]);
      const companies = await c.crm.associations.v4.batchApi.getPage("companies", "deals", { inputs: [{ id: "1000001" }] });
      expect(companies.results[0]!.to).toHaveLength(10);
      expect(companies.results[0]!.to[0]!.associationTypes.map((x) => x.label)).toEqual(["Primary", null]);
      expect(sim.responseValidationFailures()).toEqual([]);
    } finally {
      await sim.close();
    }
  });
});

describe("data file checks", () => {
  const load = (mutate: (d: HubSpotSimData) => void) => {
    const d = demoData();
    mutate(d);
    return startHubSpotSimulator({ data: d });
  };

  it("names the offending path", async () => {
    await expect(
      load((d) => {
        d.objects.deals!.records![0]!.id = "abc";
      }),
    ).rejects.toThrow(/objects\.deals\.records\[0\]\.id must be a numeric string/);
    await expect(
      load((d) => {
        d.objects.deals!.records![0]!.updatedAt = "yesterday";
      }),
    ).rejects.toThrow(/updatedAt must be an ISO 8601 instant/);
    await expect(
      load((d) => {
        d.objects.unicorns = { records: [] };
      }),
    ).rejects.toThrow(/objects\.unicorns is not a standard object type/);
    await expect(
      load((d) => {
        d.owners![2]!.userId = 9003;
      }),
    ).rejects.toThrow(/archived owner has userId null/);
    await expect(
      load((d) => {
        d.associations!.push({ from: { type: "deals", id: "1001" }, to: { type: "companies", id: "404" } });
      }),
    ).rejects.toThrow(/no companies record 404/);
    await expect(
      load((d) => {
        d.associations!.push({ from: { type: "deals", id: "1001" }, to: { type: "companies", id: "2002" }, types: [{ typeId: 3 }] });
      }),
    ).rejects.toThrow(/HUBSPOT_DEFINED type 3 links deals→contacts/);
    await expect(startHubSpotSimulator({ data: "/nonexistent/hubspot.json" })).rejects.toThrow(DataError);
  });
});
