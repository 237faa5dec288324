/**
 * The HubSpot simulator's public contracts (issue #5): the data-file format (portal / apps / owners /
 * properties / schemas / pipelines / objects / associations, missing sections defaulted) and the admin
 * API under /__admin, checked through the real @hubspot/api-client 14 (responses validated against the spec).
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { normalizeHubSpotData } from "../../simulators/hubspot/contract.ts";
import { startHubSpotSimulator, type AdminStats, type HubSpotSimulator } from "../../simulators/hubspot/server.ts";
import type { HubSpotContractData } from "../../simulators/hubspot/types.ts";
import { expectApiError, hubspotClient, testClock } from "../../support/hubspot.ts";

const PORTAL = 13572468;
const APP_SCOPES = [
  "oauth",
  "crm.objects.contacts.read",
  "crm.objects.companies.read",
  "crm.objects.deals.read",
  "crm.objects.owners.read",
  "crm.objects.custom.read",
  "crm.schemas.custom.read",
  "crm.schemas.deals.read",
  "crm.schemas.contacts.read",
  "crm.schemas.companies.read",
  "crm.objects.line_items.read",
  "crm.objects.goals.read",
];
const AT = "2024-01-15T09:00:00.000Z";

/** A portal in the format of issue #5: records as GET returns them, a schema as GET /crm/v3/schemas returns it. */
function issueFormatData(): HubSpotContractData {
  const deal = (id: string | number, name: string, amount: string, currency: string, modified: string) => ({
    id,
    createdAt: "2024-02-01T10:00:00.000Z",
    updatedAt: modified,
    archived: false,
    properties: {
      dealname: name,
      amount,
      deal_currency_code: currency,
      dealstage: "closedwon",
      pipeline: "default",
      hubspot_owner_id: "201",
      createdate: "2024-02-01T10:00:00.000Z",
      hs_lastmodifieddate: modified,
      hs_object_id: String(id),
    },
  });
  return {
    portal: { portalId: PORTAL, companyCurrency: "EUR", searchIndexDelayMs: 1000, rateLimits: { perTenSeconds: 40, searchPerSecond: 2, daily: 100_000 } },
    apps: [
      { clientId: "qobra-app", clientSecret: "qobra-secret", refreshToken: "qobra-refresh", scopes: APP_SCOPES },
      { clientId: "other-app", clientSecret: "other-secret", refreshToken: "other-refresh", scopes: ["oauth", "crm.objects.contacts.read"] },
    ],
    owners: [
      {
        id: "201",
        email: "ana@example.com",
        firstName: "Ana",
        lastName: "Lopez",
        userId: 7001,
        userIdIncludingInactive: 7001,
        type: "PERSON",
        teams: [],
        createdAt: AT,
        updatedAt: AT,
        archived: false,
      },
      {
        id: 202,
        email: "ben@example.com",
        firstName: "Ben",
        lastName: "Okafor",
        userId: 7002,
        type: "PERSON",
        teams: [],
        createdAt: AT,
        updatedAt: AT,
        archived: true,
      },
    ],
    properties: {
      deals: [{ name: "commission_rate", type: "number", fieldType: "number", label: "Commission rate", groupName: "qobra", description: "", options: [] }],
    },
    schemas: [
      {
        id: "5550001",
        objectTypeId: "2-5550001",
        name: "commission_plans",
        fullyQualifiedName: `p${PORTAL}_commission_plans`,
        labels: { singular: "Commission plan", plural: "Commission plans" },
        primaryDisplayProperty: "plan_name",
        requiredProperties: ["plan_name"],
        searchableProperties: ["plan_name"],
        secondaryDisplayProperties: [],
        properties: [
          {
            name: "plan_name",
            type: "string",
            fieldType: "text",
            label: "Plan name",
            groupName: "commission_plans_information",
            description: "",
            options: [],
            hubspotDefined: false,
          },
          { name: "rate", type: "number", fieldType: "number", label: "Rate", groupName: "commission_plans_information", description: "", options: [] },
        ],
        associations: [
          { id: "501", name: "commission_plans_to_deal", fromObjectTypeId: "2-5550001", toObjectTypeId: "0-3", createdAt: AT, updatedAt: AT },
          { id: "502", name: "deal_to_commission_plans", fromObjectTypeId: "0-3", toObjectTypeId: "2-5550001", createdAt: AT, updatedAt: AT },
        ],
        createdAt: AT,
        updatedAt: AT,
        archived: false,
      },
    ],
    objects: {
      deals: [
        deal("1001", "Acme - Platform", "125000.123456789012", "EUR", "2024-04-01T10:00:00.000Z"),
        deal(1002, "Globex - Expansion", "98765.4321", "USD", "2024-04-02T10:00:00.000Z"),
        deal("1003", "Initech - Renewal", "18000.5", "GBP", "2024-04-03T10:00:00.000Z"),
      ],
      companies: [
        { id: "2001", properties: { name: "Acme SAS", domain: "acme.example" }, createdAt: AT, updatedAt: "2024-03-01T12:00:00.000Z", archived: false },
        { id: "2002", properties: { name: "Globex GmbH", domain: "globex.example" }, createdAt: AT, updatedAt: "2024-03-02T12:00:00.000Z", archived: false },
      ],
      contacts: [
        {
          id: "3001",
          properties: { email: "jeanne@acme.example", firstname: "Jeanne", lastname: "Roux" },
          createdAt: AT,
          updatedAt: "2024-03-05T09:00:00.000Z",
          archived: false,
        },
      ],
      [`p${PORTAL}_commission_plans`]: [{ id: "9001", properties: { plan_name: "Gold", rate: "0.1" }, createdAt: AT, updatedAt: AT, archived: false }],
    },
    associations: [
      { fromType: "deals", fromId: "1001", toType: "companies", toId: "2001", associationTypeId: 5 },
      { fromType: "deal", fromId: 1001, toType: "companies", toId: 2001 },
      { fromType: "contacts", fromId: "3001", toType: "0-2", toId: "2001", associationTypeId: 1 },
      { fromType: "2-5550001", fromId: "9001", toType: "deals", toId: "1001", associationTypeId: 501 },
    ],
  };
}

const clock = testClock("2024-06-03T08:00:00.000Z");
let dir: string;
let sim: HubSpotSimulator;
let client: ReturnType<typeof hubspotClient>;

async function admin(method: "GET" | "POST", path: string, body?: unknown): Promise<{ status: number; json: any; headers: Headers }> {
  const init: RequestInit = { method };
  if (body !== undefined) {
    init.body = typeof body === "string" ? body : JSON.stringify(body);
    init.headers = { "Content-Type": "application/json" };
  }
  const res = await fetch(`${sim.url}/__admin/${path}`, init);
  const text = await res.text();
  return { status: res.status, json: text ? JSON.parse(text) : undefined, headers: res.headers };
}

const batchRead = async (type: "deals" | "companies", ids: string[]) =>
  (await client.crm.objects.batchApi.read(type, { inputs: ids.map((id) => ({ id })), properties: [], propertiesWithHistory: [] })).results;
const v4 = async (from: string, to: string, id: string) => {
  const r = await client.crm.associations.v4.batchApi.getPage(from, to, { inputs: [{ id }] });
  return (r.results[0]?.to ?? []).map((t) => [String(t.toObjectId), t.associationTypes.map((x) => [x.category, x.typeId, x.label ?? null])]);
};

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "hs-admin-"));
  const file = join(dir, "portal.json");
  writeFileSync(file, JSON.stringify(issueFormatData(), null, 2));
  sim = await startHubSpotSimulator({ data: file, clock: clock.now, validateResponses: true });
  const token = await hubspotClient(sim.url, "unused").oauth.tokensApi.create(
    "refresh_token",
    undefined,
    undefined,
    "qobra-app",
    "qobra-secret",
    "qobra-refresh",
  );
  client = hubspotClient(sim.url, token.accessToken);
});

afterAll(async () => {
  expect(sim.responseValidationFailures()).toEqual([]);
  await sim.close();
  rmSync(dir, { recursive: true, force: true });
});

describe("the data-file format of issue #5", () => {
  it("reads portal settings and apps (each app its own client, refresh token and scopes)", async () => {
    expect(sim.settings).toMatchObject({
      portalId: PORTAL,
      companyCurrency: "EUR",
      search: { indexDelayMs: 1000 },
      rateLimits: { tenSecondly: 40, searchPerSecond: 2, daily: 100_000 },
    });
    const oauth = hubspotClient(sim.url, "unused").oauth.tokensApi;
    const t = await oauth.create("refresh_token", undefined, undefined, "qobra-app", "qobra-secret", "qobra-refresh");
    expect(t.refreshToken).toBe("qobra-refresh");
    const info = await hubspotClient(sim.url, "unused").oauth.accessTokensApi.get(t.accessToken);
    expect(info.scopes).toEqual(APP_SCOPES);
    expect(info.hubId).toBe(PORTAL);
    // a refresh token belongs to its app
    expect((await expectApiError(oauth.create("refresh_token", undefined, undefined, "qobra-app", "qobra-secret", "other-refresh"), 400)).body.status).toBe(
      "BAD_REFRESH_TOKEN",
    );
    expect((await expectApiError(oauth.create("refresh_token", undefined, undefined, "other-app", "qobra-secret", "other-refresh"), 400)).body.status).toBe(
      "BAD_CLIENT_SECRET",
    );
    const other = await oauth.create("refresh_token", undefined, undefined, "other-app", "other-secret", "other-refresh");
    const contactsOnly = hubspotClient(sim.url, other.accessToken);
    expect((await contactsOnly.crm.contacts.basicApi.getPage(10)).results.map((r) => r.id)).toEqual(["3001"]);
    expect((await expectApiError(contactsOnly.crm.deals.basicApi.getPage(10), 403)).body.category).toBe("MISSING_SCOPES");
    const account = await client.apiRequest({ method: "GET", path: "/account-info/v3/details" });
    expect(await account.json()).toMatchObject({ portalId: PORTAL, companyCurrency: "EUR" });
  });

  it("loads records as GET returns them, owners, the schema as GET /crm/v3/schemas returns it, and flat associations", async () => {
    const deals = await client.crm.deals.basicApi.getPage(10, undefined, ["dealname", "amount", "deal_currency_code", "hs_lastmodifieddate"]);
    expect(deals.results.map((r) => [r.id, r.properties.amount, r.properties.hs_lastmodifieddate])).toEqual([
      ["1001", "125000.123456789012", "2024-04-01T10:00:00.000Z"],
      ["1002", "98765.4321", "2024-04-02T10:00:00.000Z"],
      ["1003", "18000.5", "2024-04-03T10:00:00.000Z"],
    ]);
    const archived = await client.crm.owners.ownersApi.getPage(undefined, undefined, 100, true);
    expect(archived.results.map((o) => [o.id, o.userId ?? null, o.userIdIncludingInactive])).toEqual([["202", null, 7002]]);

    const schemas = await client.crm.schemas.coreApi.getAll();
    expect(schemas.results.map((s) => [s.name, s.objectTypeId, s.fullyQualifiedName])).toEqual([
      ["commission_plans", "2-5550001", `p${PORTAL}_commission_plans`],
    ]);
    expect(schemas.results[0]!.associations.map((a) => [a.id, a.fromObjectTypeId, a.toObjectTypeId])).toEqual([["501", "2-5550001", "0-3"]]);
    const plans = await client.crm.objects.basicApi.getPage("2-5550001", 10, undefined, ["plan_name", "rate"]);
    expect(plans.results.map((r) => [r.id, r.properties.plan_name, r.properties.rate])).toEqual([["9001", "Gold", "0.1"]]);

    expect(await v4("deals", "companies", "1001")).toEqual([
      [
        "2001",
        [
          ["HUBSPOT_DEFINED", 5, "Primary"],
          ["HUBSPOT_DEFINED", 341, null],
        ],
      ],
    ]);
    expect(await v4("companies", "deals", "2001")).toEqual([
      [
        "1001",
        [
          ["HUBSPOT_DEFINED", 6, "Primary"],
          ["HUBSPOT_DEFINED", 342, null],
        ],
      ],
    ]);
    expect(await v4("companies", "contacts", "2001")).toEqual([["3001", [["HUBSPOT_DEFINED", 2, "Primary"]]]]);
    expect(await v4("commission_plans", "deals", "9001")).toEqual([["1001", [["HUBSPOT_DEFINED", 501, null]]]]);
    expect(await v4("deals", "2-5550001", "1001")).toEqual([["9001", [["HUBSPOT_DEFINED", 502, null]]]]);
  });

  it("gives missing sections HubSpot's defaults: standard properties of each standard object, the default deal pipeline", async () => {
    const deals = new Map((await client.crm.properties.coreApi.getAll("deals")).results.map((p) => [p.name, p]));
    expect(deals.get("dealname")).toMatchObject({ type: "string", fieldType: "text", hubspotDefined: true });
    expect(deals.get("amount")).toMatchObject({ type: "number", showCurrencySymbol: true });
    expect(deals.get("closedate")).toMatchObject({ type: "datetime" });
    expect(deals.get("hubspot_owner_id")).toMatchObject({ type: "enumeration", referencedObjectType: "OWNER" });
    expect(deals.get("hs_is_closed_won")).toMatchObject({ type: "bool", calculated: true });
    expect(deals.get("commission_rate")).toMatchObject({ type: "number", groupName: "qobra" }); // given ones are merged in
    // currency options: the company currency, then the records' codes
    expect(deals.get("deal_currency_code")!.options.map((o) => o.value)).toEqual(["EUR", "USD", "GBP"]);
    expect(deals.get("dealstage")!.options.map((o) => o.value)).toEqual([
      "appointmentscheduled",
      "qualifiedtobuy",
      "presentationscheduled",
      "decisionmakerboughtin",
      "contractsent",
      "closedwon",
      "closedlost",
    ]);
    const pipelines = await client.crm.pipelines.pipelinesApi.getAll("deals");
    expect(pipelines.results.map((p) => [p.id, p.label, p.stages.length])).toEqual([["default", "Sales Pipeline", 7]]);

    // object types without records still exist, with their standard properties
    const calls = new Map((await client.crm.properties.coreApi.getAll("calls")).results.map((p) => [p.name, p.type]));
    expect(calls.get("hs_call_title")).toBe("string");
    expect(calls.get("hs_timestamp")).toBe("datetime");
    expect((await client.crm.objects.calls.basicApi.getPage(10)).results).toEqual([]);
    for (const [type, name] of [
      ["contacts", "email"],
      ["companies", "name"],
      ["line_items", "hs_line_item_currency_code"],
      ["meetings", "hs_meeting_title"],
      ["emails", "hs_email_subject"],
      ["tasks", "hs_task_subject"],
      ["goal_targets", "hs_goal_name"],
    ] as const) {
      expect(
        (await client.crm.properties.coreApi.getAll(type)).results.map((p) => p.name),
        type,
      ).toContain(name);
    }
    const plan = new Map((await client.crm.properties.coreApi.getAll("2-5550001")).results.map((p) => [p.name, p.type]));
    expect([plan.get("plan_name"), plan.get("rate")]).toEqual(["string", "number"]);
  });

  it("normalizes idempotently and leaves the simulator's own format alone", () => {
    const once = normalizeHubSpotData(issueFormatData());
    expect(normalizeHubSpotData(once)).toBe(once);
    expect(Array.isArray(once.objects.deals)).toBe(false);
    expect(() => normalizeHubSpotData({ ...issueFormatData(), apps: [{ clientId: "x" } as never] })).toThrow(
      /apps\[0\] needs a string clientId and clientSecret/,
    );
    expect(() => normalizeHubSpotData({ ...issueFormatData(), properties: { unicorns: [] } })).toThrow(/properties\.unicorns: unknown object type/);
  });
});

describe("the admin API (/__admin)", () => {
  it('GET /__admin/stats counts requests per "<METHOD> <route>" and 429s; POST /__admin/stats/reset zeroes them', async () => {
    const reset = await admin("POST", "stats/reset");
    expect(reset.status).toBe(200);
    expect(reset.json).toEqual({ total: 0, requests: {}, rateLimited: 0 });
    const dailyBefore = sim.rateLimitUsage().daily;

    await client.crm.deals.basicApi.getPage(10);
    await client.crm.deals.basicApi.getPage(10);
    await client.crm.deals.basicApi.getById("1001");
    await client.crm.associations.v4.batchApi.getPage("deals", "companies", { inputs: [{ id: "1001" }] });
    const search = () =>
      client.crm.deals.searchApi.doSearch({ filterGroups: [{ filters: [{ propertyName: "amount", operator: "GT" as never, value: "0" }] }] });
    await search();
    await search();
    const limited = await expectApiError(search(), 429); // searchPerSecond: 2
    expect(limited.body).toMatchObject({ policyName: "SECONDLY" });
    clock.advance(1000);
    // admin requests: no auth, not counted, not rate limited (more than perTenSeconds in a row)
    for (let i = 0; i < 45; i++) expect((await admin("GET", "stats")).status).toBe(200);

    const expected: AdminStats = {
      total: 7,
      requests: {
        "GET /crm/v3/objects/deals": 2,
        "GET /crm/v3/objects/deals/{id}": 1,
        "POST /crm/v3/objects/deals/search": 3,
        "POST /crm/v4/associations/deals/companies/batch/read": 1,
      },
      rateLimited: 1,
    };
    const stats = await admin("GET", "stats");
    expect(stats.headers.get("content-type")).toMatch(/^application\/json/);
    expect(stats.json).toEqual(expected);
    expect(sim.stats()).toEqual(expected);
    expect(sim.rateLimitUsage().daily).toBe(dailyBefore + 6);
    // the counters are independent
    expect(sim.counters()["POST /crm/v3/objects/deals/search"]).toBeGreaterThanOrEqual(3);
    expect((await admin("POST", "stats/reset")).json).toEqual({ total: 0, requests: {}, rateLimited: 0 });
    expect(sim.counters()["POST /crm/v3/objects/deals/search"]).toBeGreaterThanOrEqual(3);
  });

  it("POST /__admin/records upserts; a record without a last-modified property gets the current time", async () => {
    clock.advance(60_000);
    const now = new Date(clock.now()).toISOString();
    const res = await admin("POST", "records", {
      objectType: "deals",
      records: [
        { id: "1002", properties: { amount: "2000" } }, // update, no date: now
        { id: "1003", properties: { dealstage: "closedlost", hs_lastmodifieddate: "2024-05-01T00:00:00Z" } }, // kept
        { id: "1010", properties: { dealname: "New deal", amount: "10", deal_currency_code: "EUR" } }, // insert: now
      ],
    });
    expect(res.status).toBe(200);
    expect(res.json.objectType).toBe("deals");
    expect(res.json.results.map((r: { id: string; updatedAt: string }) => [r.id, r.updatedAt])).toEqual([
      ["1002", now],
      ["1003", "2024-05-01T00:00:00.000Z"],
      ["1010", now],
    ]);

    const read = await batchRead("deals", ["1002", "1003", "1010"]);
    const byId = new Map(read.map((r) => [r.id, r]));
    expect(byId.get("1002")!.properties).toMatchObject({ hs_lastmodifieddate: now, createdate: "2024-02-01T10:00:00.000Z" });
    expect(byId.get("1002")!.updatedAt).toEqual(new Date(now));
    expect(byId.get("1003")!.properties.hs_lastmodifieddate).toBe("2024-05-01T00:00:00.000Z");
    expect(byId.get("1010")!.properties).toMatchObject({ hs_lastmodifieddate: now, createdate: now });
    const full = await client.crm.deals.basicApi.getById("1002", ["amount", "dealname"]);
    expect(full.properties).toMatchObject({ amount: "2000", dealname: "Globex - Expansion" });

    // contacts use lastmodifieddate; a record in GET shape with numeric id
    const c = await admin("POST", "records", { objectType: "0-1", records: [{ id: 3001, properties: { jobtitle: "CFO" } }] });
    expect(c.json.results[0]).toMatchObject({ id: "3001", updatedAt: now, properties: { lastmodifieddate: now, jobtitle: "CFO" } });

    // search sees the changes after the index delay (1 s)
    const modifiedSince = () =>
      client.crm.deals.searchApi.doSearch({
        filterGroups: [{ filters: [{ propertyName: "hs_lastmodifieddate", operator: "GTE" as never, value: String(clock.now()) }] }],
        sorts: ["hs_object_id"],
      });
    expect((await modifiedSince()).results.map((r) => r.id)).toEqual([]);
    clock.advance(1000);
    const since = await client.crm.deals.searchApi.doSearch({
      filterGroups: [{ filters: [{ propertyName: "hs_lastmodifieddate", operator: "GTE" as never, value: String(Date.parse(now)) }] }],
      sorts: ["hs_object_id"],
    });
    expect(since.results.map((r) => r.id)).toEqual(["1002", "1010"]);

    // all or nothing, and clear 400s
    const bad = await admin("POST", "records", {
      objectType: "deals",
      records: [
        { id: "1001", properties: { amount: "1" } },
        { id: "abc", properties: {} },
      ],
    });
    expect(bad.status).toBe(400);
    expect(bad.json).toMatchObject({ status: "error", category: "VALIDATION_ERROR" });
    expect(bad.json.message).toContain("records[1].id");
    expect((await client.crm.deals.basicApi.getById("1001", ["amount"])).properties.amount).toBe("125000.123456789012");
    expect((await admin("POST", "records", { objectType: "unicorns", records: [] })).status).toBe(400);
    expect((await admin("POST", "records", "{nope")).status).toBe(400);
  });

  it("POST /__admin/archive archives records", async () => {
    clock.advance(60_000);
    const res = await admin("POST", "archive", { objectType: "deals", ids: ["1003", "999999"] });
    expect(res.status).toBe(200);
    expect(res.json).toEqual({ objectType: "deals", archived: ["1003"], notFound: ["999999"] });
    const read = await client.crm.deals.batchApi.read({ inputs: [{ id: "1003" }], properties: [], propertiesWithHistory: [] });
    expect(read.results).toEqual([]);
    const archived = await client.crm.deals.basicApi.getPage(10, undefined, undefined, undefined, undefined, true);
    expect(archived.results.map((r) => [r.id, r.archived, r.archivedAt])).toEqual([["1003", true, new Date(clock.now())]]);
    expect((await client.crm.deals.basicApi.getPage(10)).results.map((r) => r.id)).toEqual(["1001", "1002", "1010"]);
    expect((await admin("POST", "archive", { objectType: "deals", ids: ["1003"] })).json).toEqual({ objectType: "deals", archived: [], notFound: ["1003"] });
  });

  it("POST /__admin/associations adds and removes associations without touching last-modified dates", async () => {
    clock.advance(60_000);
    const before = new Map(
      [...(await batchRead("deals", ["1001", "1002"])), ...(await batchRead("companies", ["2001", "2002"]))].map((r) => [
        r.id,
        [r.updatedAt.toISOString(), r.properties.hs_lastmodifieddate],
      ]),
    );
    expect(await v4("deals", "companies", "1002")).toEqual([]);

    const add = await admin("POST", "associations", {
      add: [
        { fromType: "deals", fromId: "1002", toType: "companies", toId: "2002" },
        { fromType: "companies", fromId: 2002, toType: "deals", toId: 1002, associationTypeId: 6 },
      ],
    });
    expect(add.status).toBe(200);
    expect(add.json).toEqual({ added: 2, removed: 0 });
    expect(await v4("deals", "companies", "1002")).toEqual([
      [
        "2002",
        [
          ["HUBSPOT_DEFINED", 341, null],
          ["HUBSPOT_DEFINED", 5, "Primary"],
        ],
      ],
    ]);
    expect(await v4("companies", "deals", "2002")).toEqual([
      [
        "1002",
        [
          ["HUBSPOT_DEFINED", 342, null],
          ["HUBSPOT_DEFINED", 6, "Primary"],
        ],
      ],
    ]);
    // the records' last-modified dates did not move, so only an association snapshot can see the change
    const after = await Promise.all([batchRead("deals", ["1001", "1002"]), batchRead("companies", ["2001", "2002"])]);
    expect(new Map(after.flat().map((r) => [r.id, [r.updatedAt.toISOString(), r.properties.hs_lastmodifieddate]]))).toEqual(before);
    const search = await client.crm.deals.searchApi.doSearch({
      filterGroups: [{ filters: [{ propertyName: "associations.company", operator: "EQ" as never, value: "2002" }] }],
    });
    expect(search.results.map((r) => r.id)).toEqual(["1002"]);

    // removing one type removes its inverse; removing without a type removes the pair
    const rm = await admin("POST", "associations", {
      remove: [{ fromType: "companies", fromId: "2001", toType: "deals", toId: "1001", associationTypeId: 6 }],
    });
    expect(rm.json).toEqual({ added: 0, removed: 1 });
    expect(await v4("deals", "companies", "1001")).toEqual([["2001", [["HUBSPOT_DEFINED", 341, null]]]]);
    expect((await admin("POST", "associations", { remove: [{ fromType: "deals", fromId: "1002", toType: "companies", toId: "2002" }] })).json).toEqual({
      added: 0,
      removed: 2,
    });
    expect(await v4("deals", "companies", "1002")).toEqual([]);
    expect(await v4("companies", "deals", "2002")).toEqual([]);
    // a custom object's association, by the schema's type id
    expect(
      (
        await admin("POST", "associations", {
          add: [{ fromType: "deals", fromId: "1002", toType: `p${PORTAL}_commission_plans`, toId: "9001", associationTypeId: 502 }],
        })
      ).json,
    ).toEqual({ added: 1, removed: 0 });
    expect(await v4("commission_plans", "deals", "9001")).toEqual([
      ["1001", [["HUBSPOT_DEFINED", 501, null]]],
      ["1002", [["HUBSPOT_DEFINED", 501, null]]],
    ]);
    expect(new Map((await batchRead("deals", ["1001", "1002"])).map((r) => [r.id, [r.updatedAt.toISOString(), r.properties.hs_lastmodifieddate]]))).toEqual(
      new Map([...before].filter(([id]) => id.startsWith("100"))),
    );

    // everything is checked before anything changes
    const bad = await admin("POST", "associations", {
      add: [
        { fromType: "deals", fromId: "1001", toType: "companies", toId: "2002" },
        { fromType: "deals", fromId: "1001", toType: "companies", toId: "404" },
      ],
    });
    expect(bad.status).toBe(400);
    expect(bad.json.message).toContain("no companies record 404");
    expect(await v4("deals", "companies", "1001")).toEqual([["2001", [["HUBSPOT_DEFINED", 341, null]]]]);
    expect((await admin("POST", "associations", { add: {} })).status).toBe(400);
    expect(
      (await admin("POST", "associations", { add: [{ fromType: "deals", fromId: "1001", toType: "contacts", toId: "3001", associationTypeId: 5 }] })).status,
    ).toBe(400);
  });

  it("answers 404 for unknown admin routes and 405 for wrong methods", async () => {
    expect((await admin("GET", "nope")).status).toBe(404);
    const wrong = await admin("GET", "records");
    expect(wrong.status).toBe(405);
    expect(wrong.headers.get("allow")).toBe("POST");
    expect((await admin("POST", "stats")).status).toBe(405);
  });
});
