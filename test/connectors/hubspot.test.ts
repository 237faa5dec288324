/**
 * The HubSpot connector's real read() and check() against the HubSpot simulator (no Kafka):
 * full reads with exact values, owners (archived included), associations, currencies, custom
 * objects; incremental reads past the search API's 10,000-result cap (more than 10,000 records
 * sharing one timestamp included), parallel windows under the rate limits with injected 429s,
 * the search index lag, token expiry mid-run, missing scopes. Time is the simulator's clock:
 * the connector's sleeps advance it, nothing waits for real.
 */
import { randomBytes } from "node:crypto";
import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { HubSpotConnector } from "../../producers/connectors/hubspot/config.ts";
import { TableSkippedError } from "../../lib/errors.ts";
import { createHubSpotSource, type HubSpotSource } from "../../producers/connectors/hubspot/source.ts";
import type { HubSpotClock } from "../../producers/connectors/hubspot/limits.ts";
import { exchangeHubSpotCode, hubspotAuthorizeUrl, runHubSpotAuth } from "../../producers/connectors/hubspot/auth.ts";
import { TokenStore } from "../../producers/oauth/token-store.ts";
import { cronRules } from "../../scheduler/scheduler.ts";
import type { SourcePage, SourceRecord } from "../../producers/connector.ts";
import { generateHubSpotData, startHubSpotSimulator, type HubSpotSimulator } from "../../simulators/hubspot/server.ts";
import type { HubSpotSimData } from "../../simulators/hubspot/types.ts";
import { demoData, testClock } from "../../support/hubspot.ts";
import { MemoryPipeline } from "../../support/memory-pipeline.ts";

/** A manual clock whose sleeps jump forward (to the wake-up time, never past it). */
function simClock(startIso = "2024-06-03T08:00:00.000Z"): ReturnType<typeof testClock> & HubSpotClock {
  const c = testClock(startIso);
  return {
    ...c,
    sleep: async (ms: number) => {
      const target = c.now() + Math.max(0, ms);
      await new Promise<void>((r) => setImmediate(r));
      if (c.now() < target) c.set(target);
    },
  };
}

function hubspotConfig(url: string, tables: unknown[], extra: Record<string, unknown> = {}): HubSpotConnector {
  return HubSpotConnector.parse({
    id: "hs",
    type: "hubspot",
    baseUrl: url,
    clientId: "demo-client-id",
    clientSecret: "demo-client-secret",
    refreshToken: "demo-refresh-token",
    tables,
    ...extra,
  });
}

interface ReadResult {
  pages: SourcePage[];
  records: SourceRecord[];
  deleted: string[];
  state: unknown;
}

async function readAll(
  src: HubSpotSource,
  table: string,
  opts: { full?: boolean; state?: unknown; runStartedAt: number; onPage?: (n: number) => void; pipeline?: MemoryPipeline },
): Promise<ReadResult> {
  const out: ReadResult = { pages: [], records: [], deleted: [], state: undefined };
  const published = opts.pipeline?.startRun();
  for await (const page of src.read(table, {
    full: opts.full ?? false,
    signal: new AbortController().signal,
    state: opts.state ?? null,
    runStartedAt: opts.runStartedAt,
    published,
  })) {
    opts.pipeline?.apply(page);
    out.pages.push(page);
    out.records.push(...page.records);
    out.deleted.push(...(page.deletedIds ?? []));
    if (page.state !== undefined) out.state = page.state;
    opts.onPage?.(out.pages.length);
  }
  return out;
}

const byId = (records: SourceRecord[]) => new Map(records.map((r) => [r.externalId, r]));

// ---------------------------------------------------------------------------------------------------

describe("full read of the demo portal", () => {
  const clock = simClock();
  let sim: HubSpotSimulator;
  let src: HubSpotSource;

  beforeAll(async () => {
    const data = demoData();
    data.portal!.companyCurrency = "CHF";
    const deals = data.objects.deals!;
    deals.properties!.push(
      { name: "contract_start", type: "date", fieldType: "date", label: "Contract start" },
      {
        name: "is_renewal",
        type: "bool",
        fieldType: "booleancheckbox",
        label: "Renewal?",
        options: [
          { label: "Yes", value: "true" },
          { label: "No", value: "false" },
        ],
      },
    );
    const rec = (id: string) => deals.records!.find((r) => r.id === id)!;
    Object.assign(rec("1001").properties, { contract_start: "2024-03-01", is_renewal: "false" });
    Object.assign(rec("1002").properties, { contract_start: "1709251200000", is_renewal: "true", closedate: "2024-04-30T23:30:00.000Z" });
    Object.assign(rec("1003").properties, { contract_start: "2024-02-29T00:00:00.000Z" });
    delete rec("1004").properties.deal_currency_code;
    data.associations!.push({ from: { type: "deals", id: "1001" }, to: { type: "companies", id: "2002" } });
    data.objects.goal_targets!.records!.push({
      id: "6003",
      createdAt: "2024-01-01T00:00:00.000Z",
      updatedAt: "2024-01-15T00:00:00.000Z",
      properties: { hs_goal_name: "Q1 2024 quota - Chloé", hs_target_amount: "99999.999999999999", hs_assignee_user_id: "9003" },
    });
    data.objects.contacts!.records!.push({ id: "3005", createdAt: "2024-01-09T09:00:00.000Z", properties: { firstname: "No", lastname: "Email" } });
    sim = await startHubSpotSimulator({ data, clock: clock.now, validateResponses: true });
    src = createHubSpotSource(
      hubspotConfig(sim.url, [
        {
          name: "deals",
          object: "deals",
          fields: {
            dealname: "string",
            amount: "amount",
            hs_tcv: { type: "amount", currency: "USD" },
            closedate: "date",
            contract_start: "date",
            is_renewal: "bool",
            dealstage: "picklist",
            pipeline: "picklist",
            hubspot_owner_id: "user",
            deal_tags: "multipicklist",
            commission_rate: "percentage",
            companies: "object",
            contacts: "object",
          },
        },
        {
          name: "deals_by_day",
          object: "deals",
          pipelineLabels: false,
          fields: { closedate: { type: "date", format: "date" }, dealstage: "picklist", companies: "multipicklist", contacts: "string" },
        },
        { name: "companies", object: "companies" },
        { name: "contacts", object: "contacts" },
        { name: "line_items", object: "line_items" },
        { name: "goals", object: "goals" },
        { name: "plans", object: "commission_plans", fields: { plan_name: "string", rate: "number", plan_year: "number", deals: "object" } },
        {
          name: "won_or_sent",
          object: "deals",
          fields: { dealname: "string", amount: "amount" },
          filter: [
            { filters: [{ propertyName: "dealstage", operator: "IN", values: ["closedwon", "contractsent"] }] },
            { filters: [{ propertyName: "amount", operator: "LT", value: "0.001" }] },
          ],
        },
      ]),
      { clock },
    );
  });
  afterAll(async () => {
    expect(sim.responseValidationFailures()).toEqual([]);
    await sim.close();
  });

  it("check() passes every table", async () => {
    const checks = await src.check();
    expect(checks.map((c) => [c.table, c.ok, c.problems])).toEqual([
      ["deals", true, []],
      ["deals_by_day", true, []],
      ["companies", true, []],
      ["contacts", true, []],
      ["line_items", true, []],
      ["goals", true, []],
      ["plans", true, []],
      ["won_or_sent", true, []],
    ]);
  });

  it("reads deals with exact decimals, dates, owners (archived too) as emails, stage labels, associations and currencies", async () => {
    const r = await readAll(src, "deals", { full: true, runStartedAt: clock.now() });
    const deals = byId(r.records);
    expect([...deals.keys()]).toEqual(["1001", "1002", "1003", "1004"]);
    expect(r.deleted).toEqual(["1005"]); // archived
    expect(deals.get("1001")).toEqual({
      externalId: "1001",
      name: "Acme - Platform licence",
      sourceUpdatedAt: "2024-04-01T10:00:00.000Z",
      fields: {
        dealname: "Acme - Platform licence",
        amount: "125000.123456789012",
        hs_tcv: "375000.370370367036",
        closedate: "2024-03-29T00:00:00.000Z",
        contract_start: "2024-03-01",
        is_renewal: false,
        dealstage: "Closed Won",
        pipeline: "Sales Pipeline",
        hubspot_owner_id: "alice.martin@example.com",
        deal_tags: "strategic;upsell",
        commission_rate: "0.075",
        companies: "2001", // the primary company, although 2002 is associated too
        contacts: "3001",
        __currency: "EUR",
      },
    });
    expect(deals.get("1002")!.fields).toMatchObject({
      amount: "98765.4321",
      contract_start: "2024-03-01",
      is_renewal: true,
      closedate: "2024-04-30T23:30:00.000Z",
      __currency: "USD",
      companies: "2002",
    });
    // owner 103 is archived: still resolved through the archived owners
    expect(deals.get("1003")!.fields).toMatchObject({
      amount: "0.000000001",
      hubspot_owner_id: "chloe.bernard@example.com",
      contract_start: "2024-02-29",
      dealstage: "Renewal due",
      pipeline: "Renewals",
      companies: "2003",
      contacts: null,
      is_renewal: null,
      __currency: "GBP",
    });
    // no deal currency: the portal's company currency
    expect(deals.get("1004")!.fields).toMatchObject({ amount: "18000.5", __currency: "CHF", commission_rate: null });
    expect(r.pages[0]!.sourceTypes).toEqual({
      dealname: "hs:string",
      amount: "hs:number",
      hs_tcv: "hs:number",
      closedate: "hs:datetime",
      contract_start: "hs:date",
      is_renewal: "hs:bool",
      dealstage: "hs:enumeration",
      pipeline: "hs:enumeration",
      hubspot_owner_id: "hs:enumeration",
      deal_tags: "hs:enumeration",
      commission_rate: "hs:number",
      companies: "hs:association",
      contacts: "hs:association",
    });
    expect(r.state).toEqual({ v: 1, cursor: clock.now(), cursorAt: new Date(clock.now()).toISOString() }); // small: no snapshot, the raw topic is one
  });

  it("reads a datetime as the portal's calendar day (format: date), stage ids, and every association", async () => {
    const r = await readAll(src, "deals_by_day", { full: true, runStartedAt: clock.now() });
    const deals = byId(r.records);
    // 2024-04-30T23:30Z is 1 May in Paris (the portal's zone)
    expect(deals.get("1002")!.fields).toEqual({ closedate: "2024-05-01", dealstage: "contractsent", companies: ["2002"], contacts: "3002" });
    expect(deals.get("1001")!.fields).toEqual({ closedate: "2024-03-29", dealstage: "closedwon", companies: ["2001", "2002"], contacts: "3001" });
    expect(deals.get("1004")!.fields.contacts).toBeNull();
  });

  it("names contacts by email, else first and last name; resolves goal assignees' user ids (archived owner too)", async () => {
    const contacts = byId((await readAll(src, "contacts", { full: true, runStartedAt: clock.now() })).records);
    expect(contacts.get("3001")!.name).toBe("jeanne.roux@acme.example");
    expect(contacts.get("3005")!.name).toBe("No Email");
    expect(contacts.get("3001")!.fields).toMatchObject({
      companies: "2001",
      hubspot_owner_id: "alice.martin@example.com",
      meetings: "5001",
      meetings__type: "meetings",
    });
    expect(Object.keys(contacts.get("3001")!.fields)).not.toContain("companies__type"); // the companies table is its reference
    const goals = byId((await readAll(src, "goals", { full: true, runStartedAt: clock.now() })).records);
    expect(goals.get("6001")!.fields).toMatchObject({ hs_assignee_user_id: "alice.martin@example.com", hs_target_amount: "150000.00", __currency: "CHF" });
    expect(goals.get("6003")!.fields).toMatchObject({ hs_assignee_user_id: "chloe.bernard@example.com", hs_target_amount: "99999.999999999999" });
    expect(goals.get("6003")!.name).toBe("Q1 2024 quota - Chloé");
  });

  it("reads line items in their own currency, and a custom object named by its primaryDisplayProperty", async () => {
    const items = byId((await readAll(src, "line_items", { full: true, runStartedAt: clock.now() })).records);
    // two tables sync deals here, so the reference is not fixed by config: the raw field says the object type
    expect(items.get("4001")!.fields).toEqual({
      name: "Platform licence (3 years)",
      quantity: "3",
      price: "41666.707818929670",
      amount: "125000.123456789012",
      deals: "1001",
      deals__type: "deals",
      __currency: "EUR",
    });
    expect(items.get("4002")!.fields).toMatchObject({ price: "8230.452675", __currency: "USD" });
    const plans = await readAll(src, "plans", { full: true, runStartedAt: clock.now() });
    expect(plans.records.map((p) => [p.externalId, p.name, p.fields])).toEqual([
      ["7001", "AE plan 2024", { plan_name: "AE plan 2024", rate: "0.075", plan_year: "2024", deals: "1001", deals__type: "deals" }],
      ["7002", "Partner plan 2024", { plan_name: "Partner plan 2024", rate: "0.05", plan_year: "2024", deals: "1002", deals__type: "deals" }],
    ]);
  });

  it("reads a filtered table through search (full and incremental), each group combined with the window", async () => {
    const full = await readAll(src, "won_or_sent", { full: true, runStartedAt: clock.now() });
    expect(full.records.map((r) => r.externalId)).toEqual(["1001", "1002", "1003"]);
    expect(src.lastRead.get("won_or_sent")!.searchPages).toBe(1);
    clock.advance(60_000);
    sim.upsertRecord("deals", { id: "1004", properties: { dealstage: "closedwon" } });
    sim.upsertRecord("companies", { id: "2001", properties: { name: "Acme SA" } });
    clock.advance(5_000); // past the index lag
    const next = await readAll(src, "won_or_sent", { state: full.state, runStartedAt: clock.now() });
    expect(next.records.map((r) => [r.externalId, r.fields.dealname])).toEqual([["1004", "Acme - Services"]]);
  });

  it("reads contacts' changes by lastmodifieddate (contacts have no hs_lastmodifieddate)", async () => {
    const full = await readAll(src, "contacts", { full: true, runStartedAt: clock.now() });
    clock.advance(60_000);
    sim.upsertRecord("contacts", { id: "3002", properties: { email: "max.weber@globex.example.org" } });
    clock.advance(5_000);
    const next = await readAll(src, "contacts", { state: full.state, runStartedAt: clock.now() });
    expect(next.records.map((r) => [r.externalId, r.name])).toEqual([["3002", "max.weber@globex.example.org"]]);
  });

  it("check() rejects unknown properties, incompatible types and bad filters, naming each", async () => {
    const bad = createHubSpotSource(
      hubspotConfig(sim.url, [
        { name: "deals", object: "deals", fields: { dealnme: "string", amount: "bool", closedate: "number", dealstage: "object", widgets: "object" } },
        {
          name: "filtered",
          object: "deals",
          filter: [
            { propertyName: "amount", operator: "GT", value: "lots" },
            { propertyName: "no_such", operator: "HAS_PROPERTY" },
          ],
          fields: { dealname: "string" },
        },
        { name: "nothing", object: "widgets", fields: { a: "string" } },
      ]),
      { clock },
    );
    const [deals, filtered, nothing] = await bad.check();
    expect(deals!.ok).toBe(false);
    expect(deals!.problems).toEqual([
      "field dealnme is not a property of deals (did you mean dealname?)",
      "field amount: property amount is a HubSpot number, which cannot be a Qobra bool (use number or amount or percentage or string)",
      "field closedate: property closedate is a HubSpot datetime, which cannot be a Qobra number (use date or string)",
      "field dealstage: object fields are associations named after the associated object type (companies, contacts, deals, line_items, meetings, or a custom object's name), and HubSpot has no object dealstage",
      "field widgets: object fields are associations named after the associated object type (companies, contacts, deals, line_items, meetings, or a custom object's name), and HubSpot has no object widgets",
    ]);
    expect(filtered!.problems).toEqual(['filter 1: "lots" is not a number (amount is a number)', "filter 2: no_such is not a property"]);
    expect(nothing!.problems).toEqual(['HubSpot has no object "widgets"']);
    await expect(readAll(bad, "deals", { full: true, runStartedAt: clock.now() })).rejects.toThrow(/field dealnme is not a property of deals/);
  });
});

// ---------------------------------------------------------------------------------------------------

describe("incremental reads past the 10,000-result cap", () => {
  const clock = simClock("2024-06-03T08:00:00.000Z");
  const hourStart = Date.parse("2024-06-03T06:00:00.000Z");
  const shared = "2024-06-03T06:30:00.000Z";
  const N = 14_000,
    SHARED = 11_000;
  let sim: HubSpotSimulator;
  let data: HubSpotSimData;
  const fields = { dealname: "string", amount: "amount", hubspot_owner_id: "user", companies: "object", contacts: "object" };
  // (association sweeps are tested on their own below: these tests measure the windows)
  const table = { name: "deals", object: "deals", fields, associationChanges: false };
  const newSource = () =>
    createHubSpotSource(hubspotConfig(sim.url, [table], { clientId: "sim-client-id", clientSecret: "sim-client-secret", refreshToken: "rt" }), { clock });
  const lastRun = { v: 1, cursor: hourStart - 10 * 60_000 };

  beforeAll(async () => {
    data = generateHubSpotData({ deals: N, companies: 30, contacts: 30, start: "2024-06-03T05:00:00.000Z", stepMs: 100 });
    // every deal modified within one hour; 11,000 of them at the same millisecond (a bulk update)
    data.objects.deals!.records!.forEach((d, i) => {
      const lm = i % 14 < 11 ? shared : new Date(hourStart + Math.floor((i * 3_600_000) / N) + 1).toISOString();
      d.updatedAt = lm;
      d.properties.hs_lastmodifieddate = lm;
    });
    data.portal!.oauth = { refreshTokens: ["rt"] };
    sim = await startHubSpotSimulator({ data, clock: clock.now });
  });
  afterAll(async () => {
    await sim.close();
  });

  it("reads every record exactly once, cutting windows by total and paging 11,000 same-timestamp records by id, near the minimum of requests", async () => {
    sim.resetCounters();
    const src = newSource();
    const started = clock.now();
    const r = await readAll(src, "deals", { state: lastRun, runStartedAt: started });
    const counts = new Map<string, number>();
    for (const rec of r.records) counts.set(rec.externalId, (counts.get(rec.externalId) ?? 0) + 1);
    expect(counts.size).toBe(N);
    expect([...counts.values()].every((n) => n === 1)).toBe(true);
    const stats = src.lastRead.get("deals")!;
    expect(stats.mode).toBe("incremental");
    expect(stats.from).toBe(lastRun.cursor - 300_000); // lookback
    expect(stats.largestUnsplittable).toBe(SHARED); // one 1 ms window held them all: paged by hs_object_id
    expect(stats.splits).toBeGreaterThanOrEqual(1);
    expect(r.state).toEqual({ v: 1, cursor: started, cursorAt: new Date(started).toISOString() });
    // values survive (exact decimals) and associations were read in batches of 1,000
    const one = r.records.find((x) => x.externalId === "3000001")!;
    expect(one.fields.amount).toBe(data.objects.deals!.records![0]!.properties.amount);
    expect(one.fields.amount).toMatch(/^\d+\.\d{2,12}$/);
    expect(one.fields.companies).toBe("1000001");

    // Requests: ⌈N/200⌉ search pages is the floor; windows add a probe per cut and a partial last page each.
    const c = sim.counters();
    const searches = c["POST /crm/v3/objects/deals/search"]!;
    const minSearches = Math.ceil(N / 200);
    expect(searches).toBeLessThanOrEqual(minSearches + stats.probes + stats.windows + 1);
    expect(searches / minSearches).toBeLessThan(1.1);
    expect(c["POST /crm/v4/associations/deals/companies/batch/read"]).toBe(Math.ceil(N / 1000));
    expect(c["POST /crm/v4/associations/deals/contacts/batch/read"]).toBe(Math.ceil(N / 1000));
    const total = Object.values(c).reduce((a, b) => a + b, 0);
    // The floor for this data: ⌈N/200⌉ search pages, ⌈N/1000⌉ association reads per associated type, and 6 fixed
    // calls (token, properties, active and archived owners, account details, archived records).
    const floor = minSearches + 2 * Math.ceil(N / 1000) + 6;
    expect(total).toBeLessThanOrEqual(Math.ceil(floor * 1.05));
    expect(total / (N / 10_000)).toBeLessThan(80); // requests per 10,000 records
    expect(sim.requestLog().filter((x) => x.status === 429)).toEqual([]); // the client-side limiter kept within 5 searches/s
  });

  it("retries injected 429s (search secondly, ten-secondly, daily with a short Retry-After) and 5xx, reading every record once", async () => {
    const src = newSource();
    sim.injectFault({ path: "/crm/v3/objects/deals/search", method: "POST", count: 4, status: 429, policy: "SECONDLY" });
    sim.injectFault({ path: "/crm/v4/associations/deals/companies/batch/read", method: "POST", count: 2, status: 429, policy: "TEN_SECONDLY_ROLLING" });
    sim.injectFault({ path: "/crm/v4/associations/deals/contacts/batch/read", method: "POST", count: 1, status: 502 });
    sim.injectFault({ path: "/crm/v3/owners", method: "GET", count: 1, status: 429, policy: "DAILY" }); // Retry-After: 1 s, within reach
    sim.resetCounters();
    const r = await readAll(src, "deals", { state: lastRun, runStartedAt: clock.now() });
    expect(new Set(r.records.map((x) => x.externalId)).size).toBe(N);
    expect(r.records).toHaveLength(N);
    expect(src.api.stats.rateLimited).toBe(7);
    expect(src.api.stats.retries).toBe(8);
    expect(sim.requestLog().filter((x) => x.status === 429)).toHaveLength(7);
  });

  it("refreshes an access token that expires mid-run exactly once, while windows run in parallel", async () => {
    const src = newSource();
    sim.resetCounters();
    const r = await readAll(src, "deals", {
      state: lastRun,
      runStartedAt: clock.now(),
      onPage: (n) => {
        if (n === 2) expect(sim.expireAccessTokens()).toBeGreaterThan(0);
      },
    });
    expect(r.records).toHaveLength(N);
    expect(sim.counters()["POST /oauth/v1/token"]).toBe(2); // the first token, and one refresh
    expect(src.api.stats.tokenRefreshes).toBe(2);
    // several requests in flight were refused with the expired token; they all waited for the same refresh
    expect(sim.requestLog().filter((x) => x.status === 401).length).toBeGreaterThanOrEqual(2);
  });

  it("fails clearly when 429s outlast the retries", async () => {
    const src = createHubSpotSource(hubspotConfig(sim.url, [table], { clientId: "sim-client-id", clientSecret: "sim-client-secret", refreshToken: "rt" }), {
      clock,
      maxRateLimitRetries: 2,
    });
    sim.injectFault({ path: "/crm/v3/properties/deals", method: "GET", count: 3, status: 429, policy: "TEN_SECONDLY_ROLLING" });
    await expect(readAll(src, "deals", { state: lastRun, runStartedAt: clock.now() })).rejects.toThrow(
      /still rate limited by HubSpot \(TEN_SECONDLY_ROLLING\) after 2 retries/,
    );
    sim.clearFaults();
  });
});

// ---------------------------------------------------------------------------------------------------

describe("association-only changes", () => {
  const clock = simClock();
  const sims: HubSpotSimulator[] = [];
  afterAll(async () => {
    for (const s of sims) await s.close();
  });
  const tables = [{ name: "deals", object: "deals", fields: { dealname: "string", companies: "object", contacts: "multipicklist" } }];
  const source = (sim: HubSpotSimulator) => createHubSpotSource(hubspotConfig(sim.url, tables), { clock });

  it("an association added, removed or made primary without any property change reaches the next incremental run", async () => {
    // The simulator has no control to change associations in place: the "after" portal is a second
    // simulator holding the same records (same timestamps) with other associations.
    const before = await startHubSpotSimulator({ data: demoData(), clock: clock.now });
    sims.push(before);
    const pipeline = new MemoryPipeline();
    const full = await readAll(source(before), "deals", { full: true, runStartedAt: clock.now(), pipeline });
    expect(byId(full.records).get("1002")!.fields.contacts).toEqual(["3002"]);

    const data = demoData();
    data.associations = data.associations!.filter((a) => !(a.from.id === "1002" && a.to.id === "3002"));
    data.associations.push(
      { from: { type: "deals", id: "1003" }, to: { type: "contacts", id: "3003" } },
      { from: { type: "deals", id: "1004" }, to: { type: "companies", id: "2002" }, types: [{ category: "HUBSPOT_DEFINED", typeId: 5, label: "Primary" }] },
    );
    const after = await startHubSpotSimulator({ data, clock: clock.now });
    sims.push(after);
    clock.advance(3_600_000);
    const src = source(after);
    after.resetCounters();
    const next = await readAll(src, "deals", { state: full.state, runStartedAt: clock.now(), pipeline });
    expect(next.records.map((r) => [r.externalId, r.fields.companies, r.fields.contacts]).sort()).toEqual([
      ["1002", "2002", []],
      ["1003", "2003", ["3003"]],
      ["1004", "2002", []],
    ]);
    expect(src.lastRead.get("deals")!.sweep).toEqual({ held: 4, changed: 3, republished: 3 });
    // the sweep's cost: no listing (the pipeline knows the ids), one association read per associated type, one batch read
    expect(after.counters()["POST /crm/v3/objects/deals/batch/read"]).toBe(1);
    expect(after.counters()["POST /crm/v4/associations/deals/contacts/batch/read"]).toBe(1); // the re-read records reuse the sweep's
    expect(after.counters()["POST /crm/v4/associations/deals/companies/batch/read"]).toBe(1);

    clock.advance(3_600_000);
    const quiet = await readAll(source(after), "deals", { state: next.state, runStartedAt: clock.now(), pipeline });
    expect(quiet.records).toEqual([]);

    // a record this run read through search is not swept again (its associations are current)
    after.upsertRecord("deals", { id: "1002", properties: { dealname: "Renamed" } });
    after.changeAssociations({
      add: [
        { fromType: "deals", fromId: "1003", toType: "contacts", toId: "3001", associationTypeId: 3 },
        { fromType: "deals", fromId: "1002", toType: "contacts", toId: "3001", associationTypeId: 3 },
      ],
    });
    clock.advance(3_600_000);
    after.resetCounters();
    const third = await readAll(src, "deals", { state: quiet.state, runStartedAt: clock.now(), pipeline });
    expect(third.records.map((r) => [r.externalId, r.fields.dealname, r.fields.contacts]).sort()).toEqual(
      [
        ["1002", "Renamed", ["3001"]],
        ["1003", "Closed deal 1003", ["3001", "3003"]],
      ].map((x) => [x[0], x[0] === "1003" ? byId(next.records).get("1003")!.fields.dealname : x[1], x[2]]),
    );
    expect(src.lastRead.get("deals")!.sweep).toEqual({ held: 3, changed: 1, republished: 1 });
    expect(after.counters()["POST /crm/v4/associations/deals/contacts/batch/read"]).toBe(2); // the searched page's, and the sweep's
  });
});

// ---------------------------------------------------------------------------------------------------

describe("search index lag", () => {
  const clock = simClock("2024-06-03T08:00:00.000Z");
  let sim: HubSpotSimulator;

  beforeAll(async () => {
    const data = demoData();
    data.portal!.search = { indexDelayMs: 60_000 };
    sim = await startHubSpotSimulator({ data, clock: clock.now });
  });
  afterAll(async () => {
    await sim.close();
  });

  const run = async (lookbackSeconds: number, state: unknown) => {
    const src = createHubSpotSource(
      hubspotConfig(sim.url, [{ name: "deals", object: "deals", fields: { dealname: "string", amount: "amount" } }], { lookbackSeconds }),
      { clock },
    );
    return readAll(src, "deals", { state, runStartedAt: clock.now() });
  };

  it("picks up, on the next run, a change the search index had not seen yet, thanks to the lookback", async () => {
    const first = await run(300, null); // no cursor yet: the list API reads everything
    expect(first.records.map((r) => r.externalId)).toEqual(["1001", "1002", "1003", "1004"]);
    clock.advance(10 * 60_000);
    sim.upsertRecord("deals", { id: "1002", properties: { amount: "111.000000000001" } });
    clock.advance(1_000);
    // the index has not caught up: this run's search still sees the old version (modified long ago)
    const second = await run(300, first.state);
    expect(second.records).toEqual([]);
    clock.advance(5 * 60_000);
    // without lookback, the next run starts after the change and misses it for good…
    const noLookback = await run(0, second.state);
    expect(noLookback.records).toEqual([]);
    // …with it, the next run starts 5 minutes before the last one did, and finds the change
    const third = await run(300, second.state);
    expect(third.records.map((r) => [r.externalId, r.fields.amount])).toEqual([["1002", "111.000000000001"]]);
  });

  it("reports records archived since the window's start as deletes", async () => {
    const before = await run(300, null);
    clock.advance(60_000);
    sim.archiveRecord("deals", "1004");
    clock.advance(60_000);
    const r = await run(300, before.state);
    expect(r.deleted).toEqual(["1004"]); // not 1005, archived long before
  });
});

// ---------------------------------------------------------------------------------------------------

describe("scopes", () => {
  const clock = simClock();
  let sim: HubSpotSimulator;

  beforeAll(async () => {
    const data = demoData();
    data.portal!.grantedScopes = data.portal!.grantedScopes!.filter((s) => s !== "crm.objects.line_items.read");
    sim = await startHubSpotSimulator({ data, clock: clock.now });
  });
  afterAll(async () => {
    await sim.close();
  });

  it("reports the missing scope per table, and the others pass", async () => {
    const src = createHubSpotSource(
      hubspotConfig(sim.url, [
        { name: "deals", object: "deals" },
        { name: "line_items", object: "line_items" },
      ]),
      { clock },
    );
    const [deals, items] = await src.check();
    expect(deals).toMatchObject({ ok: true, problems: [] });
    expect(items!.ok).toBe(false);
    expect(items!.problems).toHaveLength(1);
    expect(items!.problems[0]).toMatch(
      /^connector hs: the HubSpot app lacks a scope: HubSpot asks for one of .*crm\.objects\.line_items\.read.*, needed for GET \/crm\/v3\/properties\/line_items; grant it to the app and run `qobra-sync auth hs` again \(granted: .*crm\.objects\.deals\.read/,
    );
    // line items need an OPTIONAL scope: the read skips the table (the worker reports it and goes on)
    const err = await readAll(src, "line_items", { full: true, runStartedAt: clock.now() }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TableSkippedError);
    expect((err as Error).message).toMatch(
      /lacks a scope: HubSpot asks for one of .*crm\.objects\.line_items\.read.*table line_items is skipped \(its scope is optional\)/,
    );
  });

  it("says what to do when the refresh token is refused or missing", async () => {
    const revoked = createHubSpotSource(hubspotConfig(sim.url, [{ name: "deals", object: "deals" }], { refreshToken: "not-a-token" }), { clock });
    const [c] = await revoked.check();
    expect(c!.problems[0]).toBe(
      "connector hs: HubSpot refused to refresh the access token (BAD_REFRESH_TOKEN: missing or invalid refresh token); check clientId/clientSecret, or run `qobra-sync auth hs` again",
    );
    const none = createHubSpotSource(hubspotConfig(sim.url, [{ name: "deals", object: "deals" }], { refreshToken: undefined }), {
      clock,
      tokenStore: async () => ({ loadToken: async () => null }),
    });
    await expect(readAll(none, "deals", { full: true, runStartedAt: clock.now() })).rejects.toThrow(
      "connector hs: no HubSpot refresh token: set refreshToken in the config, or run `qobra-sync auth hs`",
    );
    const stored = createHubSpotSource(hubspotConfig(sim.url, [{ name: "deals", object: "deals" }], { refreshToken: undefined }), {
      clock,
      tokenStore: async () => ({ loadToken: async () => ({ refreshToken: "demo-refresh-token" }) }),
    });
    expect((await readAll(stored, "deals", { full: true, runStartedAt: clock.now() })).records).toHaveLength(4);
  });
});

// ---------------------------------------------------------------------------------------------------

describe("the ten-secondly budget", () => {
  const clock = simClock();
  let sim: HubSpotSimulator;

  beforeAll(async () => {
    const data = generateHubSpotData({ deals: 2_000, companies: 10, portal: { rateLimits: { tenSecondly: 10 }, oauth: { refreshTokens: ["rt"] } } });
    sim = await startHubSpotSimulator({ data, clock: clock.now });
  });
  afterAll(async () => {
    await sim.close();
  });

  it("learns the portal's budget from X-HubSpot-RateLimit-Max and stays under it: no 429", async () => {
    const src = createHubSpotSource(
      hubspotConfig(sim.url, [{ name: "deals", object: "deals", fields: { dealname: "string", amount: "amount", companies: "object" } }], {
        clientId: "sim-client-id",
        clientSecret: "sim-client-secret",
        refreshToken: "rt",
        rateLimits: { perTenSeconds: 100, searchPerSecond: 5 },
      }),
      { clock },
    );
    const started = clock.now();
    const r = await readAll(src, "deals", { full: true, runStartedAt: clock.now() });
    expect(r.records).toHaveLength(2_000);
    expect(sim.requestLog().filter((x) => x.status === 429)).toEqual([]);
    const listed = sim.counters()["GET /crm/v3/objects/deals"]!; // 20 pages + 1 archived page
    expect(listed).toBe(21);
    // 10 per rolling 10 s: the 27 budgeted calls (pages, properties, account, owners) took at least 20 s of simulator time
    expect(clock.now() - started).toBeGreaterThanOrEqual(20_000);
  });
});

// ---------------------------------------------------------------------------------------------------

describe("auth flow pieces (qobra-sync auth)", () => {
  const clock = simClock();
  let sim: HubSpotSimulator;
  let dir: string;

  beforeAll(async () => {
    const data = demoData();
    delete data.portal!.oauth!.redirectUri; // the loopback listener's port is only known at run time
    data.portal!.oauth!.authorizationCodes = [{ code: "demo-auth-code", redirectUri: "http://localhost:3000/oauth/callback" }, { code: "loopback-code" }];
    sim = await startHubSpotSimulator({ data, clock: clock.now });
    dir = await mkdtemp(join(tmpdir(), "qobra-hs-tokens-"));
  });
  afterAll(async () => {
    await sim.close();
    await rm(dir, { recursive: true, force: true });
  });

  it("builds the authorize URL with the required and the tables' optional scopes", () => {
    const config = hubspotConfig(sim.url, [
      { name: "deals", object: "deals" },
      { name: "items", object: "line_items" },
      { name: "plans", object: "commission_plans", fields: { plan_name: "string" } },
    ]);
    const u = new URL(hubspotAuthorizeUrl(config, { redirectUri: "http://localhost:3000/oauth/callback", state: "xyz" }));
    expect(u.origin + u.pathname).toBe("https://app.hubspot.com/oauth/authorize");
    expect(u.searchParams.get("scope")!.split(" ")).toContain("crm.objects.deals.read");
    expect(u.searchParams.get("optional_scope")!.split(" ")).toEqual(["crm.objects.custom.read", "crm.schemas.custom.read", "e-commerce"]); // issue #13: line items ask for e-commerce
    // appUrl (a simulator's install page in tests) replaces HubSpot's app origin
    const local = new URL(
      hubspotAuthorizeUrl({ ...config, appUrl: "http://127.0.0.1:8089" }, { redirectUri: "http://localhost:3000/oauth/callback", state: "xyz" }),
    );
    expect(local.origin + local.pathname).toBe("http://127.0.0.1:8089/oauth/authorize");
    expect(local.search).toBe(u.search);
  });

  it("exchanges the code, stores the refresh token encrypted, and the connector uses it", async () => {
    const store = new TokenStore({ dir, key: randomBytes(32).toString("base64") });
    const config = hubspotConfig(sim.url, [{ name: "deals", object: "deals", fields: { dealname: "string" } }], { refreshToken: undefined });
    await exchangeHubSpotCode(config, { code: "demo-auth-code", redirectUri: "http://localhost:3000/oauth/callback", save: (id, t) => store.save(id, t) });
    expect((await readFile(join(dir, "hs.json"), "utf8")).includes("demo-refresh-token")).toBe(false);
    const src = createHubSpotSource(config, { clock, tokenStore: async () => ({ loadToken: (id) => store.load(id) }) });
    expect((await readAll(src, "deals", { full: true, runStartedAt: clock.now() })).records).toHaveLength(4);
    await expect(
      exchangeHubSpotCode(config, { code: "demo-auth-code", redirectUri: "http://localhost:3000/oauth/callback", save: (id, t) => store.save(id, t) }),
    ).rejects.toThrow(/HubSpot refused the authorization code \(BAD_AUTH_CODE/);
  });

  it("runs the loopback flow end to end (the browser is a fetch of the redirect)", async () => {
    const store = new TokenStore({ dir, key: randomBytes(32).toString("base64") });
    const config = hubspotConfig(sim.url, [{ name: "deals", object: "deals", fields: { dealname: "string" } }], { id: "hs2", refreshToken: undefined });
    const lines: string[] = [];
    let visited: Promise<Response> | undefined;
    await runHubSpotAuth(config, {
      port: 0,
      tokenStore: store,
      print: (l) => lines.push(l),
      open: (url) => {
        const u = new URL(url);
        expect(u.searchParams.get("redirect_uri")).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/oauth\/callback$/);
        visited = fetch(`${u.searchParams.get("redirect_uri")}?code=loopback-code&state=${u.searchParams.get("state")}`);
      },
    });
    expect((await visited!).status).toBe(200);
    expect(lines.join("\n")).not.toContain("demo-refresh-token");
    const src = createHubSpotSource(config, { clock, tokenStore: async () => ({ loadToken: (id) => store.load(id) }) });
    expect((await readAll(src, "deals", { full: true, runStartedAt: clock.now() })).records).toHaveLength(4);
  });
});

// ---------------------------------------------------------------------------------------------------

describe("configuration", () => {
  const base = { id: "hs", type: "hubspot", clientId: "c", clientSecret: "s" };
  const problems = (tables: unknown[]) => {
    const r = HubSpotConnector.safeParse({ ...base, tables });
    return r.success ? [] : r.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`);
  };

  it("fills the standard fields, the currency column and association references", () => {
    const c = HubSpotConnector.parse({
      ...base,
      tables: [
        { name: "deals", object: "deals" },
        { name: "companies", object: "company" },
      ],
    });
    expect(c.baseUrl).toBe("https://api.hubapi.com");
    expect(c.tables[0]!.fields).toEqual({
      dealname: { type: "string" },
      amount: { type: "amount", currencyColumn: "__currency" },
      closedate: { type: "date" },
      pipeline: { type: "picklist" },
      dealstage: { type: "picklist" },
      hubspot_owner_id: { type: "user" },
      companies: { type: "object", references: "companies" },
      contacts: { type: "multipicklist" }, // issue #13: every associated contact by default
    });
    expect(c.rateLimits).toEqual({ perTenSeconds: 100, searchPerSecond: 5 });
  });

  it("validates filters against HubSpot's operators and limits, leaving room for the connector's own filters", () => {
    expect(problems([{ name: "d", object: "deals", filter: [{ propertyName: "dealstage", operator: "IN", values: ["closedwon"] }] }])).toEqual([]);
    expect(problems([{ name: "d", object: "deals", filter: [{ propertyName: "amount", operator: "BIGGER", value: 1 }] }])).toEqual([
      'tables.0.filter.0.operator: unknown operator "BIGGER"; HubSpot accepts EQ, NEQ, LT, LTE, GT, GTE, BETWEEN, IN, NOT_IN, HAS_PROPERTY, NOT_HAS_PROPERTY, CONTAINS_TOKEN, NOT_CONTAINS_TOKEN',
    ]);
    expect(problems([{ name: "d", object: "deals", filter: [{ propertyName: "amount", operator: "IN", value: "1" }] }])).toEqual([
      "tables.0.filter.0.values: is required: IN compares with a non-empty list",
      "tables.0.filter.0.value: is not used by operator IN; remove it",
    ]);
    expect(problems([{ name: "d", object: "deals", filter: [{ propertyName: "amount", operator: "BETWEEN", value: 1 }] }])).toEqual([
      "tables.0.filter.0.highValue: is required: BETWEEN's upper bound",
    ]);
    const five = Array.from({ length: 5 }, (_, i) => ({ propertyName: `p${i}`, operator: "HAS_PROPERTY" }));
    expect(problems([{ name: "d", object: "deals", filter: five }])).toEqual([
      "tables.0.filter: has 5 filters in one group; HubSpot allows 6 per group and the connector adds 2 (the date window and the id keyset), so at most 4",
    ]);
    const groups = Array.from({ length: 6 }, () => ({ filters: [{ propertyName: "a", operator: "HAS_PROPERTY" }] }));
    expect(problems([{ name: "d", object: "deals", filter: groups }])).toEqual(["tables.0.filter: has 6 filter groups; HubSpot's search accepts at most 5"]);
    const heavy = Array.from({ length: 5 }, () => ({
      filters: [
        { propertyName: "a", operator: "HAS_PROPERTY" },
        { propertyName: "b", operator: "HAS_PROPERTY" },
      ],
    }));
    expect(problems([{ name: "d", object: "deals", filter: heavy }])).toEqual([
      "tables.0.filter: needs 20 filters in total once the connector adds 2 per group; HubSpot allows 18: use fewer groups or filters",
    ]);
  });

  it("schedules incrementals every N minutes in the schedule's zone, and no full run", () => {
    const at = (minutes: number) =>
      cronRules(
        HubSpotConnector.parse({ ...base, schedule: { incrementalEveryMinutes: minutes, timezone: "Europe/Paris" }, tables: [{ name: "d", object: "deals" }] }),
      );
    // Each with the nightly reconciliation (03:00 by default); without a schedule block, the source's default.
    const reconcile = (tz: string) => ({ rule: "0 3 * * *", tz, kind: "reconcile" });
    expect(at(15)).toEqual([{ rule: "*/15 * * * *", tz: "Europe/Paris", kind: "incremental" }, reconcile("Europe/Paris")]);
    expect(at(120)).toEqual([{ rule: "0 */2 * * *", tz: "Europe/Paris", kind: "incremental" }, reconcile("Europe/Paris")]);
    expect(at(1440)).toEqual([{ rule: "0 0 * * *", tz: "Europe/Paris", kind: "incremental" }, reconcile("Europe/Paris")]);
    expect(cronRules(HubSpotConnector.parse({ ...base, tables: [{ name: "d", object: "deals" }] }))).toEqual([
      { rule: "0 */2 * * *", tz: "UTC", kind: "incremental" },
      reconcile("UTC"),
    ]);
  });

  it("requires fields for custom objects and a schedulable interval", () => {
    expect(problems([{ name: "plans", object: "commission_plans" }])).toEqual([
      "tables.0.fields: is required for the custom object commission_plans: list the properties to sync (e.g. { plan_name: string, rate: number })",
    ]);
    const r = HubSpotConnector.safeParse({ ...base, schedule: { incrementalEveryMinutes: 7 }, tables: [{ name: "d", object: "deals" }] });
    expect(r.success).toBe(false);
  });
});
