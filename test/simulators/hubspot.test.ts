/**
 * HubSpot simulator, CRM read side, driven through the real @hubspot/api-client 14:
 * list paging, archived, batch read, search (filters, sort, 200/page, the 10k cap, index lag),
 * properties, owners, associations v4, schemas, pipelines, request/response spec validation.
 */
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { Ajv } from "ajv";
import formatsModule from "ajv-formats";
import type { FormatsPlugin } from "ajv-formats";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startHubSpotSimulator, generateHubSpotData, type HubSpotSimulator } from "../../simulators/hubspot/server.ts";
import { specRegistry, type OpRef } from "../../simulators/hubspot/spec.ts";
import { DEMO_DATA_PATH, TINY_PORTAL_PATH, demoData, expectApiError, hubspotClient, sortBy, testClock, UUID_RE } from "../../support/hubspot.ts";

const clock = testClock();
let sim: HubSpotSimulator;
let client: ReturnType<typeof hubspotClient>;
const TOKEN = "demo-private-app-token";

beforeAll(async () => {
  // the demo portal, with rate limits out of the way (they have their own tests)
  const data = demoData();
  data.portal!.rateLimits = { tenSecondly: 1_000_000, searchPerSecond: 1_000_000, daily: 100_000_000 };
  sim = await startHubSpotSimulator({ data, clock: clock.now, validateResponses: true });
  client = hubspotClient(sim.url, TOKEN);
});

afterAll(async () => {
  expect(sim.responseValidationFailures()).toEqual([]);
  await sim.close();
});

/** Raw HTTP, for what the client cannot send or hides. */
async function raw(
  method: string,
  path: string,
  body?: unknown,
  headers: Record<string, string> = {},
): Promise<{ status: number; headers: Headers; json: any }> {
  const init: RequestInit = { method, headers: { Authorization: `Bearer ${TOKEN}`, ...headers } };
  if (body !== undefined) {
    init.body = typeof body === "string" ? body : JSON.stringify(body);
    (init.headers as Record<string, string>)["Content-Type"] ??= "application/json";
  }
  const res = await fetch(sim.url + path, init);
  const text = await res.text();
  return { status: res.status, headers: res.headers, json: text ? JSON.parse(text) : undefined };
}

describe("objects list (GET /crm/v3/objects/{type})", () => {
  it("pages with limit and the opaque after cursor until paging disappears", async () => {
    const p1 = await client.crm.deals.basicApi.getPage(2, undefined, ["dealname", "amount", "deal_currency_code"]);
    expect(p1.results.map((r) => r.id)).toEqual(["1001", "1002"]);
    expect(p1.results[0]!.properties).toMatchObject({
      dealname: "Acme - Platform licence",
      amount: "125000.123456789012",
      deal_currency_code: "EUR",
      hs_object_id: "1001",
    });
    expect(p1.results[0]!.createdAt).toBeInstanceOf(Date);
    const after = p1.paging?.next?.after;
    expect(after).toMatch(/%3D$/); // HubSpot-style token the client re-encodes on the wire
    const p2 = await client.crm.deals.basicApi.getPage(2, after, ["dealname"]);
    expect(p2.results.map((r) => r.id)).toEqual(["1003", "1004"]);
    expect(p2.paging).toBeUndefined();
    const all = await client.crm.deals.getAll(1);
    expect(all.map((r) => r.id)).toEqual(["1001", "1002", "1003", "1004"]);
  });

  it("returns default properties when none are asked and null for asked properties without a value", async () => {
    const p = await client.crm.deals.basicApi.getPage(10);
    expect(Object.keys(p.results[0]!.properties).sort()).toEqual([
      "amount",
      "closedate",
      "createdate",
      "dealname",
      "dealstage",
      "hs_lastmodifieddate",
      "hs_object_id",
      "pipeline",
    ]);
    const r = await raw("GET", "/crm/v3/objects/deals?properties=commission_rate&properties=no_such_property&limit=10");
    expect(r.status).toBe(200);
    const d1004 = r.json.results.find((x: { id: string }) => x.id === "1004");
    expect(d1004.properties).toEqual({
      commission_rate: null,
      createdate: "2024-02-04T10:00:00.000Z",
      hs_lastmodifieddate: "2024-04-04T10:00:00.000Z",
      hs_object_id: "1004",
    });
  });

  it("archived=true returns only archived records, with archivedAt", async () => {
    const deals = await client.crm.deals.basicApi.getPage(100, undefined, ["dealname"], undefined, undefined, true);
    expect(deals.results.map((r) => [r.id, r.archived])).toEqual([["1005", true]]);
    expect(deals.results[0]!.archivedAt).toEqual(new Date("2024-04-05T10:00:00.000Z"));
    const contacts = await client.crm.contacts.basicApi.getPage(100, undefined, undefined, undefined, undefined, true);
    expect(contacts.results.map((r) => r.id)).toEqual(["3004"]);
  });

  it("includes associations when asked (v3 type names) for standard and engagement types", async () => {
    const p = await client.crm.deals.basicApi.getPage(1, undefined, undefined, undefined, ["companies", "contacts"]);
    const assoc = p.results[0]!.associations!;
    expect(assoc.companies!.results).toEqual([
      { id: "2001", type: "deal_to_company" },
      { id: "2001", type: "deal_to_company_unlabeled" },
    ]);
    expect(assoc.contacts!.results).toEqual([
      { id: "3001", type: "deal_to_contact" },
      { id: "3001", type: "decision_maker" },
    ]);
    const meetings = await client.crm.objects.meetings.basicApi.getPage(10, undefined, ["hs_meeting_title"], undefined, ["deals"]);
    expect(meetings.results[0]!.associations!.deals!.results).toEqual([{ id: "1001", type: "meeting_to_deal" }]);
  });

  it("clamps limit to 100 and serves goals (goal_targets), calls and tasks", async () => {
    const big = await startHubSpotSimulator({ data: generateHubSpotData({ deals: 250 }), clock: clock.now, validateResponses: true });
    try {
      const c = hubspotClient(big.url, big.issueAccessToken());
      const p = await c.crm.deals.basicApi.getPage(500);
      expect(p.results).toHaveLength(100);
      expect(p.paging?.next?.after).toBeTruthy();
      expect((await c.crm.deals.getAll(100)).length).toBe(250);
      expect(big.counters()["GET /crm/v3/objects/deals"]).toBe(4);
      // propertiesWithHistory lowers the page size to 50
      const hist = await c.crm.deals.basicApi.getPage(100, undefined, ["amount"], ["amount"]);
      expect(hist.results).toHaveLength(50);
      expect(hist.results[0]!.propertiesWithHistory!.amount![0]!.value).toBe(hist.results[0]!.properties.amount);
    } finally {
      await big.close();
    }
    const goals = await client.crm.objects.goals.basicApi.getPage(10, undefined, ["hs_goal_name", "hs_target_amount"]);
    expect(goals.results.map((g) => g.properties.hs_goal_name)).toEqual(["Q1 2024 quota - Alice", "Q1 2024 quota - Bruno"]);
    expect((await client.crm.objects.calls.basicApi.getPage(10)).results.map((r) => r.id)).toEqual(["5101"]);
    expect((await client.crm.objects.tasks.basicApi.getPage(10)).results.map((r) => r.id)).toEqual(["5201"]);
  });

  it("rejects an unknown object type and a bad cursor with HubSpot's 400", async () => {
    const e = await expectApiError(client.crm.objects.basicApi.getPage("unicorns"), 400);
    expect(e.body).toMatchObject({ status: "error", category: "VALIDATION_ERROR", message: "Unable to infer object type from: unicorns" });
    expect(e.body.correlationId).toMatch(UUID_RE);
    await expectApiError(client.crm.deals.basicApi.getPage(10, "not-a-cursor"), 400);
    const nf = await expectApiError(client.crm.deals.basicApi.getById("999999"), 404);
    expect(nf.body.category).toBe("OBJECT_NOT_FOUND");
  });
});

describe("batch read (POST /crm/v3/objects/{type}/batch/read)", () => {
  it("reads by id; unknown ids come back as a 207 with errors", async () => {
    const ok = await client.crm.deals.batchApi.read({ inputs: [{ id: "1002" }, { id: "1001" }], properties: ["amount"], propertiesWithHistory: [] });
    expect(ok.status).toBe("COMPLETE");
    expect(ok.results.map((r) => r.properties.amount)).toEqual(["98765.4321", "125000.123456789012"]);
    const partial = await client.crm.deals.batchApi.read({
      inputs: [{ id: "1001" }, { id: "424242" }, { id: "1005" }],
      properties: ["amount"],
      propertiesWithHistory: [],
    });
    expect(partial.results.map((r) => r.id)).toEqual(["1001"]);
    const withErrors = partial as typeof partial & { numErrors?: number; errors?: Array<{ category: string; context: { ids: string[] } }> };
    expect(withErrors.numErrors).toBe(1);
    expect(withErrors.errors?.[0]).toMatchObject({ category: "OBJECT_NOT_FOUND", context: { ids: ["424242", "1005"] } });
    const archived = await client.crm.deals.batchApi.read({ inputs: [{ id: "1005" }], properties: ["dealname"], propertiesWithHistory: [] }, true);
    expect(archived.results.map((r) => r.id)).toEqual(["1005"]);
  });

  it("reads by a unique property with idProperty", async () => {
    const r = await client.crm.contacts.batchApi.read({
      inputs: [{ id: "max.weber@globex.example" }],
      idProperty: "email",
      properties: ["firstname"],
      propertiesWithHistory: [],
    });
    expect(r.results.map((x) => [x.id, x.properties.firstname])).toEqual([["3002", "Max"]]);
  });

  it("refuses more than 100 inputs", async () => {
    const inputs = Array.from({ length: 101 }, (_, i) => ({ id: String(1000 + i) }));
    const e = await expectApiError(client.crm.deals.batchApi.read({ inputs, properties: [], propertiesWithHistory: [] }), 400);
    expect(e.body.category).toBe("VALIDATION_ERROR");
  });
});

describe("search (POST /crm/v3/objects/{type}/search)", () => {
  const ids = (r: { results: Array<{ id: string }> }) => r.results.map((x) => x.id);

  it("filters with typed operators, sorts, reports total", async () => {
    const s = await client.crm.deals.searchApi.doSearch({
      filterGroups: [{ filters: [{ propertyName: "amount", operator: "GT" as never, value: "1000" }] }],
      sorts: sortBy("amount", "DESCENDING"),
      properties: ["dealname", "amount"],
      limit: 200,
      after: "0",
    });
    expect(s.total).toBe(3);
    expect(s.results.map((r) => [r.id, r.properties.amount])).toEqual([
      ["1001", "125000.123456789012"],
      ["1002", "98765.4321"],
      ["1004", "18000.5"],
    ]);
    expect(s.paging).toBeUndefined();

    const search = (filters: Array<Record<string, unknown>>, extra: Record<string, unknown> = {}) =>
      client.crm.deals.searchApi.doSearch({ filterGroups: [{ filters: filters as never }], sorts: sortBy("hs_object_id"), limit: 200, ...extra });
    expect(ids(await search([{ propertyName: "dealstage", operator: "IN", values: ["closedwon", "closedlost"] }]))).toEqual(["1001", "1004"]);
    expect(ids(await search([{ propertyName: "dealstage", operator: "NOT_IN", values: ["closedwon", "closedlost"] }]))).toEqual(["1002", "1003"]);
    expect(ids(await search([{ propertyName: "deal_currency_code", operator: "EQ", value: "EUR" }]))).toEqual(["1001", "1004"]);
    expect(ids(await search([{ propertyName: "deal_currency_code", operator: "NEQ", value: "EUR" }]))).toEqual(["1002", "1003"]);
    expect(
      ids(
        await search([
          { propertyName: "closedate", operator: "BETWEEN", value: String(Date.parse("2024-03-01T00:00:00Z")), highValue: "2024-05-01T00:00:00.000Z" },
        ]),
      ),
    ).toEqual(["1001", "1002"]);
    expect(ids(await search([{ propertyName: "closedate", operator: "LT", value: String(Date.parse("2024-03-29T00:00:00Z")) }]))).toEqual(["1004"]);
    expect(ids(await search([{ propertyName: "closedate", operator: "LTE", value: String(Date.parse("2024-03-29T00:00:00Z")) }]))).toEqual(["1001", "1004"]);
    expect(ids(await search([{ propertyName: "amount", operator: "GTE", value: "98765.4321" }]))).toEqual(["1001", "1002"]);
    expect(ids(await search([{ propertyName: "commission_rate", operator: "HAS_PROPERTY" }]))).toEqual(["1001", "1002"]);
    expect(ids(await search([{ propertyName: "commission_rate", operator: "NOT_HAS_PROPERTY" }]))).toEqual(["1003", "1004"]);
    expect(ids(await search([{ propertyName: "dealname", operator: "CONTAINS_TOKEN", value: "acme" }]))).toEqual(["1001", "1004"]);
    expect(ids(await search([{ propertyName: "dealname", operator: "CONTAINS_TOKEN", value: "*newal" }]))).toEqual(["1003"]);
    expect(ids(await search([{ propertyName: "deal_tags", operator: "EQ", value: "upsell" }]))).toEqual(["1001"]);
    expect(ids(await search([{ propertyName: "associations.company", operator: "EQ", value: "2001" }]))).toEqual(["1001", "1004"]);
    // IN on a string property: values must be lower-case, as the search guide says
    expect(ids(await search([{ propertyName: "dealname", operator: "IN", values: ["Acme - Services"] }]))).toEqual([]);
    expect(ids(await search([{ propertyName: "dealname", operator: "IN", values: ["acme - services"] }]))).toEqual(["1004"]);
    // groups are OR-ed, filters AND-ed
    const or = await client.crm.deals.searchApi.doSearch({
      filterGroups: [
        { filters: [{ propertyName: "dealstage", operator: "EQ" as never, value: "closedwon" }] },
        {
          filters: [
            { propertyName: "deal_currency_code", operator: "EQ" as never, value: "GBP" },
            { propertyName: "pipeline", operator: "EQ" as never, value: "renewals" },
          ],
        },
      ],
      sorts: sortBy("createdate"),
    });
    expect(ids(or)).toEqual(["1001", "1003"]);
    expect(ids(await client.crm.deals.searchApi.doSearch({ query: "globex" }))).toEqual(["1002"]);
  });

  it("uses lastmodifieddate for contacts and hs_lastmodifieddate for the others", async () => {
    const since = String(Date.parse("2024-03-06T00:00:00Z"));
    const contacts = await client.crm.contacts.searchApi.doSearch({
      filterGroups: [{ filters: [{ propertyName: "lastmodifieddate", operator: "GTE" as never, value: since }] }],
      sorts: sortBy("lastmodifieddate"),
      properties: ["email"],
    });
    expect(contacts.results.map((r) => [r.id, r.properties.lastmodifieddate])).toEqual([
      ["3002", "2024-03-06T09:00:00.000Z"],
      ["3003", "2024-03-07T09:00:00.000Z"],
    ]);
    const e = await expectApiError(
      client.crm.contacts.searchApi.doSearch({
        filterGroups: [{ filters: [{ propertyName: "hs_lastmodifieddate", operator: "GTE" as never, value: since }] }],
      }),
      400,
    );
    expect(e.body.category).toBe("VALIDATION_ERROR");
    const companies = await client.crm.companies.searchApi.doSearch({
      filterGroups: [{ filters: [{ propertyName: "hs_lastmodifieddate", operator: "GTE" as never, value: String(Date.parse("2024-03-02T00:00:00Z")) }] }],
      sorts: sortBy("hs_lastmodifieddate", "DESCENDING"),
    });
    expect(ids(companies)).toEqual(["2003", "2002"]);
  });

  it("enforces the filter, sort and limit rules with 400 VALIDATION_ERROR", async () => {
    const f = { propertyName: "amount", operator: "GT" as never, value: "1" };
    const group = (n: number) => ({ filters: Array.from({ length: n }, () => f) });
    await client.crm.deals.searchApi.doSearch({ filterGroups: [group(6), group(6), group(6)] }); // 18 filters: allowed
    for (const filterGroups of [[group(1), group(1), group(1), group(1), group(1), group(1)], [group(7)], [group(5), group(5), group(5), group(4)]]) {
      const e = await expectApiError(client.crm.deals.searchApi.doSearch({ filterGroups }), 400);
      expect(e.body).toMatchObject({ status: "error", category: "VALIDATION_ERROR" });
    }
    await expectApiError(client.crm.deals.searchApi.doSearch({ limit: 201 }), 400);
    await expectApiError(client.crm.deals.searchApi.doSearch({ sorts: [...sortBy("amount"), ...sortBy("dealname")] }), 400);
    await expectApiError(
      client.crm.deals.searchApi.doSearch({ filterGroups: [{ filters: [{ propertyName: "no_such_prop", operator: "EQ" as never, value: "x" }] }] }),
      400,
    );
    await expectApiError(client.crm.deals.searchApi.doSearch({ query: "x".repeat(3001) }), 400);
  });

  it("never shows archived records", async () => {
    const s = await client.crm.deals.searchApi.doSearch({
      filterGroups: [{ filters: [{ propertyName: "dealname", operator: "CONTAINS_TOKEN" as never, value: "duplicate" }] }],
    });
    expect(s.total).toBe(0);
  });

  it("pages 200 at a time and answers 400 past 10,000 results, total still counting everything", async () => {
    const stamp = "2024-05-01T00:00:00.000Z";
    const big = await startHubSpotSimulator({
      data: generateHubSpotData({ deals: 10_050, sameLastModified: stamp }),
      clock: clock.now,
      validateResponses: true,
    });
    try {
      const c = hubspotClient(big.url, big.issueAccessToken());
      const request = (after: string) =>
        c.crm.deals.searchApi.doSearch({
          filterGroups: [{ filters: [{ propertyName: "hs_lastmodifieddate", operator: "EQ" as never, value: String(Date.parse(stamp)) }] }],
          sorts: sortBy("hs_lastmodifieddate"),
          properties: ["amount"],
          limit: 200,
          after,
        });
      const seen = new Set<string>();
      let after: string | undefined = "0";
      let pages = 0;
      while (after !== undefined && Number(after) < 10_000) {
        const page = await request(after);
        expect(page.total).toBe(10_050);
        expect(page.results.length).toBe(200);
        for (const r of page.results) seen.add(r.id);
        after = page.paging?.next?.after;
        pages++;
        clock.advance(250); // stay under 5 searches per second
      }
      expect(pages).toBe(50);
      expect(seen.size).toBe(10_000); // ties on the sort are broken by id: no duplicates, no gaps
      expect(after).toBe("10000"); // HubSpot still hands out the next cursor...
      const e = await expectApiError(request(after!), 400); // ...and refuses it
      expect(e.body).toMatchObject({ status: "error", category: "VALIDATION_ERROR" });
      clock.advance(1000);
      await expectApiError(request("12000"), 400);
    } finally {
      await big.close();
    }
  });

  it("sees a change only after the index delay (lists and batch read see it at once)", async () => {
    clock.advance(5_000);
    const search = () =>
      client.crm.deals.searchApi.doSearch({
        filterGroups: [{ filters: [{ propertyName: "amount", operator: "GTE" as never, value: "500000" }] }],
        properties: ["amount"],
      });
    expect((await search()).total).toBe(0);
    const before = Date.parse("2024-04-05T10:00:00.000Z"); // after every existing deal
    const updated = sim.upsertRecord("deals", { id: "1002", properties: { amount: "500000.5" } });
    expect(Date.parse(updated.updatedAt)).toBe(clock.now());
    expect(Date.parse(updated.updatedAt)).toBeGreaterThan(before);
    // immediately: search still has the old version, reads have the new one
    expect((await search()).total).toBe(0);
    const stale = await client.crm.deals.searchApi.doSearch({
      filterGroups: [{ filters: [{ propertyName: "hs_object_id", operator: "EQ" as never, value: "1002" }] }],
      properties: ["amount"],
    });
    expect(stale.results[0]!.properties.amount).toBe("98765.4321");
    expect((await client.crm.deals.basicApi.getById("1002", ["amount"])).properties.amount).toBe("500000.5");
    // a new record is not searchable yet either
    sim.upsertRecord("deals", { id: "1006", properties: { dealname: "Fresh", amount: "600000" } });
    clock.advance(1_999);
    expect((await search()).total).toBe(0);
    clock.advance(1);
    const fresh = await search();
    expect(fresh.results.map((r) => [r.id, r.properties.amount])).toEqual([
      ["1002", "500000.5"],
      ["1006", "600000"],
    ]);
    const modified = await client.crm.deals.searchApi.doSearch({
      filterGroups: [{ filters: [{ propertyName: "hs_lastmodifieddate", operator: "GT" as never, value: String(before) }] }],
    });
    expect(modified.results.map((r) => r.id).sort()).toEqual(["1002", "1006"]);
    // archiving: search keeps returning the record until the delay passes
    sim.archiveRecord("deals", "1006");
    expect((await search()).total).toBe(2);
    clock.advance(2_000);
    expect((await search()).total).toBe(1);
    clock.advance(1_000);
  });
});

describe("properties, owners, schemas, pipelines", () => {
  it("lists properties with types, field types and options", async () => {
    const props = await client.crm.properties.coreApi.getAll("deals");
    const byName = new Map(props.results.map((p) => [p.name, p]));
    expect(byName.get("amount")).toMatchObject({ type: "number", fieldType: "number", label: "Amount" });
    expect(byName.get("deal_currency_code")!.options.map((o) => o.value)).toEqual(["EUR", "USD", "GBP"]);
    expect(byName.get("closedate")).toMatchObject({ type: "datetime", fieldType: "date" });
    expect(byName.get("hs_lastmodifieddate")).toMatchObject({ type: "datetime", hubspotDefined: true });
    expect((await client.crm.properties.coreApi.getAll("0-3")).results.length).toBe(props.results.length);
    expect((await client.crm.properties.coreApi.getAll("deals", true)).results).toEqual([]);
    const custom = await client.crm.properties.coreApi.getAll("2-9876543");
    expect(custom.results.map((p) => p.name)).toContain("plan_name");
    expect((await client.crm.properties.coreApi.getByName("contacts", "email")).label).toBe("Email");
  });

  it("pages owners, and archived=true returns archived owners with userId null and userIdIncludingInactive", async () => {
    const p1 = await client.crm.owners.ownersApi.getPage(undefined, undefined, 1);
    expect(p1.results.map((o) => o.id)).toEqual(["101"]);
    const p2 = await client.crm.owners.ownersApi.getPage(undefined, p1.paging?.next?.after, 1);
    expect(p2.results.map((o) => o.id)).toEqual(["102"]);
    expect(p2.paging).toBeUndefined();
    const archived = await client.crm.owners.ownersApi.getPage(undefined, undefined, 100, true);
    expect(archived.results).toHaveLength(1);
    expect(archived.results[0]).toMatchObject({ id: "103", archived: true, userId: null, userIdIncludingInactive: 9003, email: "chloe.bernard@example.com" });
    const byEmail = await client.crm.owners.ownersApi.getPage("BRUNO.dupont@example.com");
    expect(byEmail.results.map((o) => o.userId)).toEqual([9002]);
    const wire = await raw("GET", "/crm/v3/owners/?archived=true");
    expect(wire.json.results[0].userId).toBeNull();
  });

  it("lists custom object schemas and serves the custom object by id, name and fully qualified name", async () => {
    const schemas = await client.crm.schemas.coreApi.getAll();
    expect(schemas.results).toHaveLength(1);
    const s = schemas.results[0]!;
    expect(s).toMatchObject({
      name: "commission_plans",
      objectTypeId: "2-9876543",
      primaryDisplayProperty: "plan_name",
      fullyQualifiedName: "p24681357_commission_plans",
    });
    expect(s.labels).toEqual({ singular: "Commission plan", plural: "Commission plans" });
    expect(s.associations.map((a) => a.toObjectTypeId)).toEqual(["0-3"]);
    expect(s.properties.map((p) => p.name)).toContain("rate");
    const alias = await raw("GET", "/crm/v3/schemas");
    expect(alias.json.results[0].objectTypeId).toBe("2-9876543");
    for (const type of ["2-9876543", "commission_plans", "p24681357_commission_plans"]) {
      const page = await client.crm.objects.basicApi.getPage(type, 10, undefined, ["plan_name", "rate"]);
      expect(page.results.map((r) => r.properties.plan_name)).toEqual(["AE plan 2024", "Partner plan 2024"]);
    }
    const found = await client.crm.objects.searchApi.doSearch("2-9876543", {
      filterGroups: [{ filters: [{ propertyName: "rate", operator: "LT" as never, value: "0.06" }] }],
      properties: ["plan_name"],
    });
    expect(found.results.map((r) => r.id)).toEqual(["7002"]);
  });

  it("serves the account details (company currency, time zone)", async () => {
    const r = await client.apiRequest({ method: "GET", path: "/account-info/v3/details" });
    expect(r.headers.get("content-type")).toMatch(/^application\/json/);
    expect(await r.json()).toMatchObject({
      portalId: 24681357,
      companyCurrency: "EUR",
      additionalCurrencies: ["USD", "GBP"],
      timeZone: "Europe/Paris",
      utcOffset: "+02:00",
    });
  });

  it("lists pipelines and their stages", async () => {
    const pipelines = await client.crm.pipelines.pipelinesApi.getAll("deals");
    expect(pipelines.results.map((p) => p.id)).toEqual(["default", "renewals"]);
    const stages = pipelines.results[0]!.stages;
    expect(stages.map((s) => s.id)).toEqual(["appointmentscheduled", "contractsent", "closedwon", "closedlost"]);
    expect(stages[2]!.metadata).toEqual({ isClosed: "true", probability: "1.0" });
    expect((await client.crm.pipelines.pipelineStagesApi.getAll("deals", "renewals")).results.map((s) => s.id)).toEqual(["renewal_due", "renewed"]);
    await expectApiError(client.crm.pipelines.pipelinesApi.getById("deals", "nope"), 404);
  });
});

describe("associations v4 batch read (POST /crm/v4/associations/{from}/{to}/batch/read)", () => {
  it("returns typed associations with labels, both directions, 207 for inputs without any", async () => {
    const r = await client.crm.associations.v4.batchApi.getPage("deals", "companies", { inputs: [{ id: "1001" }, { id: "1003" }] });
    expect(r.status).toBe("COMPLETE");
    const byFrom = new Map(r.results.map((x) => [x._from.id, x.to]));
    expect(byFrom.get("1001")).toEqual([
      {
        toObjectId: 2001,
        associationTypes: [
          { category: "HUBSPOT_DEFINED", typeId: 5, label: "Primary" },
          { category: "HUBSPOT_DEFINED", typeId: 341, label: null },
        ],
      },
    ]);
    expect(byFrom.get("1003")).toEqual([{ toObjectId: 2003, associationTypes: [{ category: "HUBSPOT_DEFINED", typeId: 341, label: null }] }]);
    const inverse = await client.crm.associations.v4.batchApi.getPage("companies", "deals", { inputs: [{ id: "2001" }] });
    expect(inverse.results[0]!.to.map((t) => [t.toObjectId, t.associationTypes.map((a) => a.typeId)])).toEqual([
      [1001, [6, 342]],
      [1004, [342]],
    ]);
    const labelled = await client.crm.associations.v4.batchApi.getPage("contacts", "deals", { inputs: [{ id: "3001" }] });
    expect(labelled.results[0]!.to[0]!.associationTypes).toEqual([
      { category: "HUBSPOT_DEFINED", typeId: 4, label: null },
      { category: "USER_DEFINED", typeId: 38, label: "Decision maker" },
    ]);
    const partial = await client.crm.associations.v4.batchApi.getPage("deals", "contacts", { inputs: [{ id: "1001" }, { id: "1004" }] });
    const withErrors = partial as typeof partial & { numErrors?: number; errors?: Array<Record<string, unknown>> };
    expect(partial.results.map((x) => x._from.id)).toEqual(["1001"]);
    expect(withErrors.numErrors).toBe(1);
    expect(withErrors.errors?.[0]).toMatchObject({ category: "OBJECT_NOT_FOUND", subCategory: "crm.associations.NO_ASSOCIATIONS_FOUND" });
    const custom = await client.crm.associations.v4.batchApi.getPage("2-9876543", "deals", { inputs: [{ id: "7001" }] });
    expect(custom.results[0]!.to[0]!.toObjectId).toBe(1001);
  });

  it("serves one record's associations and the label definitions", async () => {
    const one = await client.crm.associations.v4.basicApi.getPage("deals", "1001", "contacts");
    expect(one.results).toEqual([
      {
        toObjectId: 3001,
        associationTypes: [
          { category: "HUBSPOT_DEFINED", typeId: 3, label: null },
          { category: "USER_DEFINED", typeId: 37, label: "Decision maker" },
        ],
      },
    ]);
    const labels = await client.crm.associations.v4.schema.definitionsApi.getAll("deals", "contacts");
    expect(labels.results).toEqual(
      expect.arrayContaining([
        { category: "HUBSPOT_DEFINED", typeId: 3, label: null },
        { category: "USER_DEFINED", typeId: 37, label: "Decision maker" },
      ]),
    );
  });

  it("accepts 1,000 inputs and refuses 1,001", async () => {
    const inputs = (n: number) => Array.from({ length: n }, (_, i) => ({ id: String(1001 + i) }));
    const ok = await client.crm.associations.v4.batchApi.getPage("deals", "companies", { inputs: inputs(1000) });
    expect(ok.results.length).toBe(4);
    const e = await expectApiError(client.crm.associations.v4.batchApi.getPage("deals", "companies", { inputs: inputs(1001) }), 400);
    expect(e.body.category).toBe("VALIDATION_ERROR");
  });

  it("pages the associations of one input with after", async () => {
    const tiny = await startHubSpotSimulator({ data: TINY_PORTAL_PATH, clock: clock.now, validateResponses: true });
    try {
      const c = hubspotClient(tiny.url, "tiny-private-app");
      const seen: number[] = [];
      let after: string | undefined;
      do {
        const r = await c.crm.associations.v4.batchApi.getPage("companies", "deals", { inputs: [after ? { id: "1", after } : { id: "1" }] });
        seen.push(...r.results[0]!.to.map((t) => Number(t.toObjectId)));
        after = r.results[0]!.paging?.next?.after;
      } while (after);
      expect(seen).toEqual([11, 12, 13, 14, 15]);
    } finally {
      await tiny.close();
    }
  });
});

describe("OpenAPI validation", () => {
  it("rejects bad request bodies and parameters with HubSpot's 400 shape", async () => {
    const badOp = await expectApiError(
      client.crm.deals.searchApi.doSearch({ filterGroups: [{ filters: [{ propertyName: "amount", operator: "LIKE" as never, value: "1" }] }] }),
      400,
    );
    expect(badOp.body).toMatchObject({ status: "error", category: "VALIDATION_ERROR" });
    expect(String(badOp.body.message)).toContain("operator");
    expect(badOp.body.correlationId).toMatch(UUID_RE);
    await expectApiError(client.crm.deals.searchApi.doSearch({ limit: "ten" as never }), 400);
    const unknown = await raw("POST", "/crm/v3/objects/deals/search", { filterGroups: [], filter: [] });
    expect(unknown.status).toBe(400);
    expect(unknown.json.message).toContain('unrecognized field "filter"');
    const notJson = await raw("POST", "/crm/v3/objects/deals/search", "{not json");
    expect(notJson.status).toBe(400);
    expect(notJson.json.category).toBe("VALIDATION_ERROR");
    const wrongType = await raw("POST", "/crm/v3/objects/deals/search", "{}", { "Content-Type": "text/plain" });
    expect(wrongType.status).toBe(415);
    const noInputs = await raw("POST", "/crm/v3/objects/deals/batch/read", { properties: ["amount"] });
    expect(noInputs.status).toBe(400);
    const badLimit = await raw("GET", "/crm/v3/objects/deals?limit=abc");
    expect(badLimit.status).toBe(400);
    const badBool = await raw("GET", "/crm/v3/objects/deals?archived=maybe");
    expect(badBool.status).toBe(400);
  });

  it("every response validates against the official spec (ajv) and carries a JSON Content-Type", async () => {
    const spec = specRegistry();
    const checks: Array<[string, string, unknown, OpRef]> = [
      [
        "GET",
        "/crm/v3/objects/deals?limit=2&properties=amount&associations=companies",
        undefined,
        { file: "crm-deals-v3.json", path: "/crm/v3/objects/0-3", method: "GET" },
      ],
      [
        "GET",
        "/crm/v3/objects/deals/1001?associations=contacts",
        undefined,
        { file: "crm-deals-v3.json", path: "/crm/v3/objects/0-3/{dealId}", method: "GET" },
      ],
      [
        "POST",
        "/crm/v3/objects/deals/search",
        { limit: 2, properties: ["commission_rate"] },
        { file: "crm-deals-v3.json", path: "/crm/v3/objects/0-3/search", method: "POST" },
      ],
      [
        "POST",
        "/crm/v3/objects/deals/batch/read",
        { inputs: [{ id: "1001" }, { id: "1" }] },
        { file: "crm-deals-v3.json", path: "/crm/v3/objects/0-3/batch/read", method: "POST" },
      ],
      ["GET", "/crm/v3/objects/contacts?limit=100", undefined, { file: "crm-contacts-v3.json", path: "/crm/v3/objects/contacts", method: "GET" }],
      [
        "GET",
        "/crm/v3/objects/line_items?limit=100&properties=hs_line_item_currency_code",
        undefined,
        { file: "crm-line-items-v3.json", path: "/crm/v3/objects/line_items", method: "GET" },
      ],
      ["GET", "/crm/v3/objects/meetings?associations=deals", undefined, { file: "crm-meetings-v3.json", path: "/crm/v3/objects/meetings", method: "GET" }],
      ["GET", "/crm/v3/objects/goal_targets", undefined, { file: "crm-goal-targets-v3.json", path: "/crm/v3/objects/goal_targets", method: "GET" }],
      ["GET", "/crm/v3/objects/2-9876543", undefined, { file: "crm-custom-objects-v3.json", path: "/crm/v3/objects/{objectType}", method: "GET" }],
      ["GET", "/crm/v3/properties/deals", undefined, { file: "crm-properties-v3.json", path: "/crm/v3/properties/{objectType}", method: "GET" }],
      ["GET", "/crm/v3/owners/?archived=true", undefined, { file: "crm-owners-v3.json", path: "/crm/v3/owners", method: "GET" }],
      [
        "POST",
        "/crm/v4/associations/deals/contacts/batch/read",
        { inputs: [{ id: "1001" }, { id: "1004" }] },
        { file: "crm-associations-v4.json", path: "/crm/v4/associations/{fromObjectType}/{toObjectType}/batch/read", method: "POST" },
      ],
      [
        "GET",
        "/crm/v4/associations/deals/contacts/labels",
        undefined,
        { file: "crm-associations-schema-v4.json", path: "/crm/associations/v4/{fromObjectType}/{toObjectType}/labels", method: "GET" },
      ],
      ["GET", "/crm-object-schemas/v3/schemas", undefined, { file: "crm-schemas-v3.json", path: "/crm-object-schemas/v3/schemas", method: "GET" }],
      ["GET", "/crm/v3/pipelines/deals", undefined, { file: "crm-pipelines-v3.json", path: "/crm/v3/pipelines/{objectType}", method: "GET" }],
      ["GET", "/crm/v3/objects/unicorns", undefined, { file: "crm-objects-v3.json", path: "/crm/v3/objects/{objectType}", method: "GET" }],
    ];
    for (const [method, path, body, ref] of checks) {
      clock.advance(250);
      const r = await raw(method, path, body);
      expect(r.headers.get("content-type"), path).toMatch(/^application\/json/);
      expect(spec.validateResponse(ref, r.status, r.json), `${method} ${path} → ${r.status}`).toEqual([]);
    }
  });

  it("a list page validates against the unpatched published schema too", async () => {
    const doc = JSON.parse(readFileSync(fileURLToPath(new URL("../../simulators/hubspot/specs/crm-deals-v3.json", import.meta.url)), "utf8"));
    const ajv = new Ajv({ strict: false, allErrors: true });
    ((formatsModule as unknown as { default?: FormatsPlugin }).default ?? (formatsModule as unknown as FormatsPlugin))(ajv);
    ajv.addFormat("int32", { type: "number", validate: (n: number) => Number.isInteger(n) });
    ajv.addSchema({ $id: "https://test.local/deals", components: doc.components }, "https://test.local/deals");
    const validate = ajv.compile({ $ref: "https://test.local/deals#/components/schemas/CollectionResponseSimplePublicObjectWithAssociationsForwardPaging" });
    const r = await raw("GET", "/crm/v3/objects/deals?limit=3&properties=dealname&properties=amount&associations=companies");
    expect(validate(r.json), JSON.stringify(validate.errors)).toBe(true);
    const search = ajv.compile({ $ref: "https://test.local/deals#/components/schemas/CollectionResponseWithTotalSimplePublicObject" });
    const s = await raw("POST", "/crm/v3/objects/deals/search", { limit: 1, properties: ["dealname"] });
    expect(search(s.json), JSON.stringify(search.errors)).toBe(true);
  });

  it("validateResponses turns a response that breaks the spec into a loud 500", async () => {
    const data = demoData();
    (data.owners![0] as unknown as Record<string, unknown>).userIdIncludingInactive = "not-a-number";
    const lines: string[] = [];
    const broken = await startHubSpotSimulator({ data, clock: clock.now, validateResponses: true, log: (l) => lines.push(l) });
    try {
      const e = await expectApiError(hubspotClient(broken.url, TOKEN).crm.owners.ownersApi.getPage(), 500);
      expect(e.body.category).toBe("SIMULATOR_RESPONSE_INVALID");
      expect(broken.responseValidationFailures()).toHaveLength(1);
      expect(broken.responseValidationFailures()[0]!.problems[0]!.where).toBe("response.results[0].userIdIncludingInactive");
      expect(lines.join("\n")).toContain("does not conform to the spec");
    } finally {
      await broken.close();
    }
    expect(
      specRegistry().validateResponse({ file: "crm-deals-v3.json", path: "/crm/v3/objects/0-3", method: "GET" }, 200, { results: [{ id: 1 }] }).length,
    ).toBeGreaterThan(0);
  });

  it("serves the demo data file as-is (path form of the data option)", async () => {
    const fromFile = await startHubSpotSimulator({ data: DEMO_DATA_PATH, clock: clock.now, validateResponses: true });
    try {
      const c = hubspotClient(fromFile.url, TOKEN);
      expect((await c.crm.deals.getAll(100)).length).toBe(4);
      expect(fromFile.settings).toMatchObject({ portalId: 24681357, companyCurrency: "EUR", rateLimits: { tenSecondly: 190 } });
      expect(fromFile.responseValidationFailures()).toEqual([]);
    } finally {
      await fromFile.close();
    }
  });
});
