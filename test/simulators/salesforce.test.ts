// The Salesforce simulator driven through the real jsforce 3 client.
import { fileURLToPath } from "node:url";
import jsforce from "jsforce";
import type { Connection } from "jsforce";
import { parse as parseCsv } from "csv-parse/sync";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { generateSalesforceData } from "../../simulators/salesforce/generate.ts";
import { to18 } from "../../simulators/salesforce/ids.ts";
import { runSalesforceSimulator } from "../../simulators/salesforce/main.ts";
import { startSalesforceSimulator } from "../../simulators/salesforce/server.ts";
import type { SalesforceSimulator } from "../../simulators/salesforce/server.ts";
import type { SalesforceSimData, SimRecord } from "../../simulators/salesforce/types.ts";

const DEMO = fileURLToPath(new URL("../../simulators/salesforce/demo-data.json", import.meta.url));
const MINI = fileURLToPath(new URL("../fixtures/salesforce/mini-org.json", import.meta.url));
const V = "62.0";

interface Tokens {
  accessToken: string;
  refreshToken: string;
  clientId: string;
  clientSecret: string;
}

function connect(sim: SalesforceSimulator, t: Tokens): Connection {
  return new jsforce.Connection({
    instanceUrl: sim.url,
    loginUrl: sim.url,
    version: V,
    accessToken: t.accessToken,
    refreshToken: t.refreshToken,
    oauth2: { clientId: t.clientId, clientSecret: t.clientSecret, loginUrl: sim.url, redirectUri: "http://127.0.0.1:9/callback" },
  });
}

/** conn.request that also hands back the response headers (Sforce-Locator, ...) and the raw body text. */
async function rawRequest(
  conn: Connection,
  req: { method: string; url: string; body?: string; headers?: Record<string, string> },
): Promise<{ body: string; headers: Record<string, string> }> {
  type Res = { headers: Record<string, string> };
  type Transport = { httpRequest(r: unknown, o?: unknown): Promise<Res> };
  const base = (conn as unknown as { _transport: Transport })._transport;
  let headers: Record<string, string> = {};
  const transport: Transport = {
    httpRequest(r, o) {
      const p = base.httpRequest(r, o);
      p.then(
        (res) => {
          headers = res.headers;
        },
        () => undefined,
      );
      return p;
    },
  };
  const request = { ...req, method: req.method as "GET", headers: req.headers ?? {} };
  const body = await conn.request<string>(request, { transport, responseType: "text/plain" });
  return { body, headers };
}

async function rejection(p: PromiseLike<unknown>): Promise<Error & { errorCode?: string }> {
  try {
    await p;
  } catch (e) {
    return e as Error & { errorCode?: string };
  }
  throw new Error("expected a rejection");
}

function countersDelta(before: Record<string, number>, after: Record<string, number>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(after)) if (v !== (before[k] ?? 0)) out[k] = v - (before[k] ?? 0);
  return out;
}

describe("Salesforce simulator: describes and data files", () => {
  let sim: SalesforceSimulator;
  let conn: Connection;
  beforeAll(async () => {
    sim = await startSalesforceSimulator({ data: DEMO, port: 0 });
    conn = connect(sim, sim.state.issueTokens());
  });
  afterAll(async () => {
    await sim.close();
  });

  it("serves describeGlobal with key prefixes, and a real describe loaded as-is", async () => {
    const g = await conn.describeGlobal();
    const byName = Object.fromEntries(g.sobjects.map((s) => [s.name, s]));
    expect(g.encoding).toBe("UTF-8");
    expect(g.maxBatchSize).toBe(200);
    expect(byName.Account?.keyPrefix).toBe("001");
    expect(byName.Opportunity?.keyPrefix).toBe("006");
    expect(byName.Task?.keyPrefix).toBe("00T");
    expect(byName.Custom__c?.keyPrefix).toBe("aB5");
    expect(byName.Commission__c?.custom).toBe(true);
    expect(byName.Account?.urls.describe).toBe(`/services/data/v${V}/sobjects/Account/describe`);

    const acc = await conn.describe("Account");
    expect(acc.name).toBe("Account");
    expect(acc.keyPrefix).toBe("001");
    // 68 fields in the recorded describe + CurrencyIsoCode (the demo org has multi-currency on)
    expect(acc.fields).toHaveLength(69);
    const rev = acc.fields.find((f) => f.name === "AnnualRevenue");
    expect(rev).toMatchObject({ type: "currency", soapType: "xsd:double", precision: 18 });
    expect(acc.fields.find((f) => f.name === "CurrencyIsoCode")).toMatchObject({ type: "picklist", length: 3 });
    expect(acc.childRelationships.length).toBeGreaterThan(50);
    expect(JSON.stringify(acc)).not.toMatch(/salesforce\.com|vxx\.0|v48\.0/);

    // a trimmed describe (VS Code SOQL cache) is completed to the full shape
    const task = await conn.describe("Task");
    const what = task.fields.find((f) => f.name === "WhatId")!;
    expect(what).toMatchObject({ type: "reference", soapType: "tns:ID", relationshipName: "What", polymorphicForeignKey: true, length: 18 });
    expect(what.referenceTo?.length).toBeGreaterThan(50);

    const err = await rejection(conn.describe("Nope__c"));
    expect(err.name).toBe("NOT_FOUND");
  });

  it("lists versions without counting or limit headers", async () => {
    const before = sim.state.apiUsage().used;
    const res = await fetch(`${sim.url}/services/data`);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/^application\/json/);
    expect(res.headers.get("sforce-limit-info")).toBeNull();
    const list = (await res.json()) as { version: string; url: string; label: string }[];
    expect(list).toContainEqual({ label: "Winter '25", url: "/services/data/v62.0", version: "62.0" });
    expect(list.at(-1)?.version).toBe("66.0");
    expect(sim.state.apiUsage().used).toBe(before);
    // a version above the org's is not found
    const err = await rejection(conn.request("/services/data/v99.0/sobjects"));
    expect(err.name).toBe("NOT_FOUND");
  });

  it("renders records like Salesforce: attributes, nested relationships, polymorphic lookups, Java-style numbers", async () => {
    const res = await rawRequest(conn, {
      method: "GET",
      url: `/services/data/v${V}/query?q=${encodeURIComponent("SELECT Id, Name, Amount, CurrencyIsoCode, CloseDate, SystemModstamp, IsDeleted, Owner.Email, Account.Owner.Name FROM Opportunity WHERE Name LIKE 'Deal 2 %' OR Name LIKE 'Deal 3 %' ORDER BY Name")}`,
    });
    expect(res.headers["content-type"]).toBe("application/json;charset=UTF-8");
    expect(res.headers["sforce-limit-info"]).toMatch(/^api-usage=\d+\/15000$/);
    // many decimals are kept, 15000000 is written as Java writes a double
    expect(res.body).toContain('"Amount":12345.678901234');
    expect(res.body).toContain('"Amount":1.5E7');
    const page = JSON.parse(res.body) as { totalSize: number; done: boolean; records: Record<string, unknown>[] };
    expect(page.totalSize).toBe(2);
    expect(page.done).toBe(true);
    const r0 = page.records[0]!;
    expect(Object.keys(r0)).toEqual(["attributes", "Id", "Name", "Amount", "CurrencyIsoCode", "CloseDate", "SystemModstamp", "IsDeleted", "Owner", "Account"]);
    expect(r0.attributes).toEqual({ type: "Opportunity", url: `/services/data/v${V}/sobjects/Opportunity/${String(r0.Id)}` });
    expect(r0.SystemModstamp).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.000\+0000$/);
    expect(r0.CloseDate).toMatch(/^\d{4}-\d\d-\d\d$/);
    expect((r0.Owner as Record<string, unknown>).attributes).toMatchObject({ type: "User" });
    const acc = r0.Account as Record<string, Record<string, unknown>>;
    expect(acc.Owner?.Name).toEqual(expect.any(String));

    const tasks = await conn.query<Record<string, unknown>>(
      "SELECT Id, WhoId, Who.Name, Who.Type, What.Name, What.Type FROM Task WHERE WhoId != null ORDER BY Id",
    );
    for (const t of tasks.records) {
      const who = t.Who as Record<string, unknown>;
      expect(["Contact", "Lead"]).toContain(who.Type);
      expect((who.attributes as Record<string, unknown>).type).toBe(who.Type);
      expect(who.Name).toEqual(expect.any(String));
      if (t.What !== null) expect(["Account", "Opportunity"]).toContain((t.What as Record<string, unknown>).Type);
    }
    const bad = await rejection(conn.query("SELECT What.Amount FROM Task"));
    expect(bad.name).toBe("INVALID_FIELD");
    expect(bad.message).toContain("No such column 'Amount' on entity 'Name'");
  });

  it("loads a data file with relative describe paths, single currency and a small query page size", async () => {
    const mini = await startSalesforceSimulator({ data: MINI, port: 0 });
    try {
      const c = connect(mini, mini.state.issueTokens({ clientId: "mini-client" }));
      const res = await c.query<{ Id: string; Name: string }>("SELECT Id, Name FROM Account ORDER BY Name");
      expect(res.totalSize).toBe(6);
      expect(res.done).toBe(false);
      expect(res.records).toHaveLength(3);
      expect(res.nextRecordsUrl).toMatch(/\/services\/data\/v62\.0\/query\/0r8[A-Za-z0-9]{15}-3$/);
      // case-insensitive sort, like Salesforce
      expect(res.records.map((r) => r.Name)).toEqual(["Alpha", "beta", "Epsilon"]);
      const more = await c.queryMore<{ Name: string }>(res.nextRecordsUrl!);
      expect(more.done).toBe(true);
      expect(more.records.map((r) => r.Name)).toEqual(["Eta", "Gamma", "Zeta"]);
      // no multi-currency: CurrencyIsoCode does not exist
      expect((await rejection(c.query("SELECT CurrencyIsoCode FROM Account"))).name).toBe("INVALID_FIELD");
      const ev = await c.query<Record<string, Record<string, unknown> | null | string>>(
        "SELECT Subject, ActivityDateTime, Who.Name, What.Name FROM Event ORDER BY Subject",
      );
      expect(ev.records[0]).toMatchObject({
        Subject: "Kick-off",
        ActivityDateTime: "2024-03-10T08:30:00.000+0000",
        Who: { Name: "Carla Contact" },
        What: { Name: "Alpha" },
      });
      expect(ev.records[1]).toMatchObject({ Who: null, What: null });
      // compound address built from its parts
      const addr = await c.query<{ BillingAddress: Record<string, unknown> | null }>("SELECT BillingAddress FROM Account WHERE Name = 'alpha'");
      expect(addr.records[0]?.BillingAddress).toMatchObject({ city: "Paris", country: "France", street: null });
    } finally {
      await mini.close();
    }
  });

  it("rejects data that does not fit the describes", async () => {
    const data: SalesforceSimData = { objects: { Account: { describe: "builtin:Account", records: [{ Name: "x", NoSuchField__c: 1 }] } } };
    await expect(startSalesforceSimulator({ data })).rejects.toThrow(/no field "NoSuchField__c" in the Account describe/);
  });

  it("exposes the CLI entry point", () => {
    expect(typeof runSalesforceSimulator).toBe("function");
  });

  it("generates deterministic data", () => {
    const a = generateSalesforceData({ opportunities: 50, seed: 3 });
    const b = generateSalesforceData({ opportunities: 50, seed: 3 });
    expect(JSON.stringify(a)).toBe(JSON.stringify(b));
    expect(a.objects.Opportunity?.records).toHaveLength(50);
  });
});

describe("Salesforce simulator: SOQL query, paging, queryAll", () => {
  let sim: SalesforceSimulator;
  let conn: Connection;
  let data: SalesforceSimData;
  const opps = () => data.objects.Opportunity!.records!;
  beforeAll(async () => {
    data = generateSalesforceData({ opportunities: 12_000, accounts: 300, tasks: 10, commissions: 10, deletedRatio: 0.05, seed: 11 });
    sim = await startSalesforceSimulator({ data, port: 0, clock: () => Date.parse("2025-01-15T12:00:00Z") });
    conn = connect(sim, sim.state.issueTokens());
  });
  afterAll(async () => {
    await sim.close();
  });

  it("pages by 2,000 with nextRecordsUrl and follows it with autoFetch (which stops at maxFetch 10,000 by default)", async () => {
    const live = opps().filter((o) => o.IsDeleted !== true).length;
    expect(live).toBeGreaterThan(10_000);
    const before = sim.counters();
    const first = await conn.query<{ Id: string }>("SELECT Id FROM Opportunity");
    expect(first.nextRecordsUrl).toMatch(/\/services\/data\/v62\.0\/query\/0r8[A-Za-z0-9]{15}-2000$/);
    expect(first.totalSize).toBe(live);
    expect(first.records).toHaveLength(2000);
    expect(first.done).toBe(false);
    // jsforce makes nextRecordsUrl absolute; on the wire it is the path
    const wire = JSON.parse((await rawRequest(conn, { method: "GET", url: `/services/data/v${V}/query?q=SELECT+Id+FROM+Opportunity` })).body) as {
      nextRecordsUrl: string;
      totalSize: number;
      records: unknown[];
    };
    expect(wire.nextRecordsUrl).toMatch(/^\/services\/data\/v62\.0\/query\/0r8[A-Za-z0-9]{15}-2000$/);
    expect(wire.totalSize).toBe(live);
    expect(wire.records).toHaveLength(2000);

    const capped = await conn.query<{ Id: string }>("SELECT Id FROM Opportunity").run({ autoFetch: true });
    expect(capped.records).toHaveLength(10_000);

    const all = await conn.query<{ Id: string }>("SELECT Id FROM Opportunity").run({ autoFetch: true, maxFetch: 1_000_000 });
    expect(all.records).toHaveLength(live);
    expect(new Set(all.records.map((r) => r.Id)).size).toBe(live);
    const d = countersDelta(before, sim.counters());
    expect(d["GET /services/data/vXX.X/query"]).toBe(4);
    expect(d["GET /services/data/vXX.X/query/{locator}"]).toBe(4 + Math.ceil(live / 2000) - 1);
  });

  it("honours Sforce-Query-Options batchSize within 200..2000", async () => {
    const r500 = await conn.query("SELECT Id FROM Opportunity", { headers: { "Sforce-Query-Options": "batchSize=500" } });
    expect(r500.records).toHaveLength(500);
    expect(r500.nextRecordsUrl).toMatch(/-500$/);
    const r50 = await conn.query("SELECT Id FROM Opportunity", { headers: { "Sforce-Query-Options": "batchSize=50" } });
    expect(r50.records).toHaveLength(200);
    const r9k = await conn.query("SELECT Id FROM Opportunity", { headers: { "Sforce-Query-Options": "batchSize=9000" } });
    expect(r9k.records).toHaveLength(2000);
  });

  it("queryAll returns deleted rows (IsDeleted = true), query does not", async () => {
    const deleted = opps()
      .filter((o) => o.IsDeleted === true)
      .map((o) => o.Id as string)
      .sort();
    expect(deleted.length).toBeGreaterThan(100);
    const viaQuery = await conn.query("SELECT Id FROM Opportunity WHERE IsDeleted = true");
    expect(viaQuery.totalSize).toBe(0);
    const viaQueryAll = await conn
      .query<{ Id: string; IsDeleted: boolean }>("SELECT Id, IsDeleted FROM Opportunity WHERE IsDeleted = true ORDER BY Id", { scanAll: true })
      .run({ autoFetch: true, maxFetch: 100_000 });
    expect(viaQueryAll.records.map((r) => r.Id)).toEqual(deleted);
    expect(viaQueryAll.records.every((r) => r.IsDeleted === true)).toBe(true);
    const total = await conn.query("SELECT COUNT() FROM Opportunity", { scanAll: true });
    expect(total.totalSize).toBe(opps().length);
    expect(total.records).toEqual([]);
  });

  it("filters on datetime literals and orders by several keys like Salesforce", async () => {
    const cut = Date.parse("2024-06-01T00:00:00Z");
    const expected = opps()
      .filter(
        (o) =>
          o.IsDeleted !== true &&
          Date.parse(String(o.SystemModstamp)) > cut &&
          (o.StageName === "Closed Won" || (typeof o.Amount === "number" && o.Amount > 200_000)),
      )
      .sort((a, b) => Date.parse(String(b.SystemModstamp)) - Date.parse(String(a.SystemModstamp)) || (String(a.Id) < String(b.Id) ? -1 : 1))
      .map((o) => o.Id);
    const res = await conn
      .query<{ Id: string }>(
        "SELECT Id, SystemModstamp FROM Opportunity WHERE SystemModstamp > 2024-06-01T00:00:00Z AND (StageName = 'closed won' OR Amount > 200000) ORDER BY SystemModstamp DESC, Id ASC",
      )
      .run({ autoFetch: true, maxFetch: 100_000 });
    expect(res.records.map((r) => r.Id)).toEqual(expected);
    // the same instant written with an offset
    const withOffset = await conn.query(
      "SELECT COUNT() FROM Opportunity WHERE SystemModstamp > 2024-06-01T02:00:00+02:00 AND (StageName = 'Closed Won' OR Amount > 200000)",
    );
    expect(withOffset.totalSize).toBe(expected.length);

    // NULLS FIRST is the default; NULLS LAST on request
    const nullsFirst = await conn.query<{ Amount: number | null }>("SELECT Id, Amount FROM Opportunity ORDER BY Amount LIMIT 5");
    expect(nullsFirst.records[0]?.Amount).toBeNull();
    const nullsLast = await conn.query<{ Amount: number | null }>("SELECT Id, Amount FROM Opportunity ORDER BY Amount DESC NULLS LAST LIMIT 5");
    expect(nullsLast.records.every((r) => typeof r.Amount === "number")).toBe(true);
    expect(nullsLast.records[0]!.Amount!).toBeGreaterThanOrEqual(nullsLast.records[4]!.Amount!);

    const inList = await conn.query<{ StageName: string }>(
      "SELECT StageName FROM Opportunity WHERE StageName IN ('Prospecting', 'Closed Lost') AND NOT (Amount = null) LIMIT 50",
    );
    expect(inList.records.every((r) => r.StageName === "Prospecting" || r.StageName === "Closed Lost")).toBe(true);
    const notIn = await conn.query<{ StageName: string }>("SELECT StageName FROM Opportunity WHERE StageName NOT IN ('Prospecting', 'Closed Lost') LIMIT 50");
    expect(notIn.records.some((r) => r.StageName === "Prospecting")).toBe(false);

    const dates = await conn.query<{ CloseDate: string }>(
      "SELECT CloseDate FROM Opportunity WHERE CloseDate >= 2024-03-01 AND CloseDate < 2024-04-01 LIMIT 100",
    );
    expect(dates.records.length).toBeGreaterThan(0);
    expect(dates.records.every((r) => r.CloseDate >= "2024-03-01" && r.CloseDate < "2024-04-01")).toBe(true);

    const paged = await conn.query<{ Id: string }>("SELECT Id FROM Opportunity ORDER BY Id LIMIT 5 OFFSET 10");
    const ordered = opps()
      .filter((o) => o.IsDeleted !== true)
      .map((o) => String(o.Id))
      .sort();
    expect(paged.records.map((r) => r.Id)).toEqual(ordered.slice(10, 15));

    const owner = (data.users as SimRecord[])[0]!;
    const byOwner = await conn.query(`SELECT COUNT() FROM Opportunity WHERE Owner.Email = '${String(owner.Email).toUpperCase()}'`);
    expect(byOwner.totalSize).toBe(opps().filter((o) => o.IsDeleted !== true && o.OwnerId === owner.Id).length);
  });

  it("answers SOQL errors with Salesforce error codes, surfaced by jsforce as error names", async () => {
    const invalidField = await rejection(conn.query("SELECT Id, Foo__c FROM Opportunity"));
    expect(invalidField.name).toBe("INVALID_FIELD");
    expect(invalidField.errorCode).toBe("INVALID_FIELD");
    expect(invalidField.message).toBe(
      "\nSELECT Id, Foo__c FROM Opportunity\n           ^\nERROR at Row:1:Column:12\nNo such column 'Foo__c' on entity 'Opportunity'. If you are attempting to use a custom field, be sure to append the '__c' after the custom field name. Please reference your WSDL or the describe call for the appropriate names.",
    );

    expect((await rejection(conn.query("SELECT Id FROM"))).name).toBe("MALFORMED_QUERY");
    expect((await rejection(conn.query("SELECT Id FROM Opportunity WHERE Amount > 1 OR Amount < 0 AND IsWon = true"))).name).toBe("MALFORMED_QUERY");
    const badType = await rejection(conn.query("select count() from XYZZY"));
    expect(badType.name).toBe("INVALID_TYPE");
    expect(badType.message).toContain("\nselect count() from XYZZY\n                    ^\nERROR at Row:1:Column:21\nsObject type 'XYZZY' is not supported.");
    const quoted = await rejection(conn.query("SELECT Id FROM Opportunity WHERE SystemModstamp > '2024-01-01T00:00:00Z'"));
    expect(quoted.name).toBe("INVALID_FIELD");
    expect(quoted.message).toContain("value of filter criterion for field 'SystemModstamp' must be of type dateTime and should not be enclosed in quotes");
    expect((await rejection(conn.query("SELECT Id FROM Opportunity WHERE CloseDate > 2024-01-01T00:00:00Z"))).name).toBe("INVALID_FIELD");
    expect((await rejection(conn.query("SELECT Id FROM Opportunity WHERE Id = 'nope'"))).name).toBe("INVALID_QUERY_FILTER_OPERATOR");
    expect((await rejection(conn.query("SELECT Id FROM Opportunity LIMIT 10 OFFSET 2001"))).name).toBe("NUMBER_OUTSIDE_VALID_RANGE");
    expect((await rejection(conn.queryMore("/services/data/v62.0/query/0r8Qb0000000000AAA-2000"))).name).toBe("INVALID_QUERY_LOCATOR");
    // errors carry the limit header and a JSON content type too
    const raw = await fetch(`${sim.url}/services/data/v62.0/query?q=SELECT`, { headers: { Authorization: `Bearer ${sim.state.issueTokens().accessToken}` } });
    expect(raw.status).toBe(400);
    expect(raw.headers.get("content-type")).toBe("application/json;charset=UTF-8");
    expect(raw.headers.get("sforce-limit-info")).toMatch(/^api-usage=\d+\/100000$/);
    expect(await raw.json()).toEqual([expect.objectContaining({ errorCode: "MALFORMED_QUERY" })]);
  });
});

describe("Salesforce simulator: OAuth", () => {
  let sim: SalesforceSimulator;
  let now = Date.parse("2025-01-15T12:00:00Z");
  beforeAll(async () => {
    sim = await startSalesforceSimulator({ data: MINI, port: 0, clock: () => now });
  });
  afterAll(async () => {
    await sim.close();
  });

  it("refreshes an expired access token once and retries the call", async () => {
    const conn = connect(sim, sim.state.issueTokens({ clientId: "mini-client" }));
    let refreshes = 0;
    conn.on("refresh", () => {
      refreshes++;
    });
    await conn.query("SELECT Id FROM Account");
    now += 601_000; // lifetime is 600 s in the fixture
    const before = sim.counters();
    const res = await conn.query("SELECT Id FROM Account");
    expect(res.totalSize).toBe(6);
    expect(refreshes).toBe(1);
    expect(conn.instanceUrl).toBe(sim.url);
    expect(countersDelta(before, sim.counters())).toMatchObject({
      "POST /services/oauth2/token": 1,
      "oauth:grant:refresh_token": 1,
      "status:401": 1,
      "GET /services/data/vXX.X/query": 2,
    });
    // the explicit control does the same
    sim.state.expireAllAccessTokens();
    await conn.query("SELECT Id FROM Account");
    expect(refreshes).toBe(2);
  });

  it("answers invalid_grant for a revoked refresh token, and jsforce gives up after one try", async () => {
    const t = sim.state.issueTokens({ clientId: "mini-client" });
    const conn = connect(sim, t);
    sim.state.revokeRefreshToken(t.refreshToken); // also revokes the access tokens minted from it
    const before = sim.counters();
    const err = await rejection(conn.query("SELECT Id FROM Account"));
    expect(err.message).toBe("Unable to refresh session due to: expired access/refresh token");
    expect(countersDelta(before, sim.counters())).toEqual({
      "GET /services/data/vXX.X/query": 1,
      "status:401": 1,
      "POST /services/oauth2/token": 1,
      "oauth:grant:refresh_token": 1,
      "status:400": 1,
    });
    const direct = await rejection(conn.oauth2.refreshToken(t.refreshToken));
    expect(direct.name).toBe("invalid_grant");
  });

  it("rotates refresh tokens when enabled; jsforce keeps the old one unless the app stores it", async () => {
    sim.state.setRefreshTokenRotation(true);
    try {
      const t = sim.state.issueTokens({ clientId: "mini-client" });
      const naive = connect(sim, t);
      sim.state.expireAllAccessTokens();
      await naive.query("SELECT Id FROM Account"); // refresh #1 uses t.refreshToken, which is now spent
      sim.state.expireAllAccessTokens();
      expect((await rejection(naive.query("SELECT Id FROM Account"))).message).toMatch(/invalid|expired access\/refresh token/);

      const t2 = sim.state.issueTokens({ clientId: "mini-client" });
      const careful = connect(sim, t2);
      const seen: string[] = [];
      careful.on("refresh", (_at: string, res: { refresh_token?: string }) => {
        if (res.refresh_token) {
          seen.push(res.refresh_token);
          careful.refreshToken = res.refresh_token;
        }
      });
      for (let i = 0; i < 3; i++) {
        sim.state.expireAllAccessTokens();
        await careful.query("SELECT Id FROM Account");
      }
      expect(new Set(seen).size).toBe(3);
      expect(seen).not.toContain(t2.refreshToken);
      expect((await rejection(careful.oauth2.refreshToken(t2.refreshToken))).name).toBe("invalid_grant");
    } finally {
      sim.state.setRefreshTokenRotation(false);
    }
  });

  it("runs the authorization-code flow and answers with its own instance_url and id", async () => {
    const redirectUri = "http://127.0.0.1:9/callback";
    const q = new URLSearchParams({ response_type: "code", client_id: "mini-client", redirect_uri: redirectUri, state: "xyz" });
    const page = await fetch(`${sim.url}/services/oauth2/authorize?${q}`, { redirect: "manual" });
    expect(page.status).toBe(200);
    expect(page.headers.get("content-type")).toMatch(/^text\/html/);
    expect(await page.text()).toContain("owner@mini.example.com");
    const form = new URLSearchParams({
      client_id: "mini-client",
      redirect_uri: redirectUri,
      state: "xyz",
      response_type: "code",
      username: "owner@mini.example.com",
      action: "allow",
    });
    const redirect = await fetch(`${sim.url}/services/oauth2/authorize`, { method: "POST", body: form, redirect: "manual" });
    expect(redirect.status).toBe(302);
    const loc = new URL(redirect.headers.get("location")!);
    expect(`${loc.origin}${loc.pathname}`).toBe(redirectUri);
    expect(loc.searchParams.get("state")).toBe("xyz");
    const code = loc.searchParams.get("code")!;

    const conn = new jsforce.Connection({
      loginUrl: sim.url,
      version: V,
      oauth2: { clientId: "mini-client", clientSecret: "mini-secret", loginUrl: sim.url, redirectUri },
    });
    const userInfo = await conn.authorize(code);
    expect(userInfo).toMatchObject({ id: to18("005Qb000001Own1"), organizationId: to18("00DQb000000Mini") });
    expect(conn.instanceUrl).toBe(sim.url);
    expect(conn.refreshToken).toEqual(expect.any(String));
    expect((await conn.query("SELECT Id FROM Account")).totalSize).toBe(6);
    // codes are single-use
    const again = await rejection(conn.oauth2.requestToken(code));
    expect(again.name).toBe("invalid_grant");
    // unknown client: Salesforce's error page
    const bad = await fetch(
      `${sim.url}/services/oauth2/authorize?${new URLSearchParams({ response_type: "code", client_id: "nope", redirect_uri: redirectUri })}`,
    );
    expect(bad.status).toBe(400);
    expect(await bad.text()).toContain("invalid_client_id");
    // wrong secret
    const wrong = new jsforce.OAuth2({ clientId: "mini-client", clientSecret: "bad", loginUrl: sim.url });
    expect((await rejection(wrong.refreshToken("mini-refresh"))).name).toBe("invalid_client");
    // seeded refresh token from the data file works
    const ok = new jsforce.OAuth2({ clientId: "mini-client", clientSecret: "mini-secret", loginUrl: sim.url });
    const tok = await ok.refreshToken("mini-refresh");
    expect(tok).toMatchObject({
      instance_url: sim.url,
      id: `${sim.url}/id/${to18("00DQb000000Mini")}/${to18("005Qb000001Own1")}`,
      token_type: "Bearer",
      scope: "api refresh_token",
    });
    expect(tok).not.toHaveProperty("refresh_token");
  });
});

describe("Salesforce simulator: daily API limit", () => {
  it("counts every API call, reports Sforce-Limit-Info, then answers REQUEST_LIMIT_EXCEEDED", async () => {
    let now = Date.parse("2025-01-15T12:00:00Z");
    const data = generateSalesforceData({ opportunities: 10, org: { dailyApiLimit: 6, apiUsage: 2 } });
    const sim = await startSalesforceSimulator({ data, clock: () => now });
    try {
      const conn = connect(sim, sim.state.issueTokens());
      await conn.query("SELECT Id FROM Account");
      expect(conn.limitInfo).toEqual({ apiUsage: { used: 3, limit: 6 } });
      const limits = await conn.limits();
      expect(limits.DailyApiRequests).toEqual({ Max: 6, Remaining: 2 });
      await conn.describeGlobal();
      await conn.query("SELECT Id FROM Opportunity");
      expect(conn.limitInfo).toEqual({ apiUsage: { used: 6, limit: 6 } });
      const err = await rejection(conn.query("SELECT Id FROM Opportunity"));
      expect(err.name).toBe("REQUEST_LIMIT_EXCEEDED");
      expect(err.message).toBe("TotalRequests Limit exceeded.");
      expect(sim.state.apiUsage()).toEqual({ used: 6, limit: 6 });
      // the budget is a rolling 24 hours
      now += 24 * 3600_000;
      await conn.query("SELECT Id FROM Opportunity");
      expect(conn.limitInfo).toEqual({ apiUsage: { used: 1, limit: 6 } });
    } finally {
      await sim.close();
    }
  });
});

describe("Salesforce simulator: Bulk API 2.0 query jobs", () => {
  let sim: SalesforceSimulator;
  let conn: Connection;
  let data: SalesforceSimData;
  const jobsPath = `/services/data/v${V}/jobs/query`;
  beforeAll(async () => {
    data = generateSalesforceData({ opportunities: 2500, accounts: 50, tasks: 10, commissions: 10, deletedRatio: 0.04, seed: 5 });
    sim = await startSalesforceSimulator({ data, port: 0 });
    // Jobs driven by polls here (one poll per state, no processing time); the time-driven default has its own test.
    sim.state.setBulkBehaviour({ resultsPageSize: 1000, pollsInUploadComplete: 1, pollsInProgress: 1, processingMs: 0, processingMsPer1000: 0 });
    conn = connect(sim, sim.state.issueTokens());
  });
  afterAll(async () => {
    await sim.close();
  });

  const createJob = (query: string, operation = "query") =>
    conn.request<Record<string, unknown>>({
      method: "POST",
      url: jobsPath,
      body: JSON.stringify({ operation, query }),
      headers: { "Content-Type": "application/json; charset=utf-8" },
    });

  async function fetchAllPages(jobId: string, maxRecords?: number): Promise<{ pages: string[]; locators: string[]; counts: number[] }> {
    const pages: string[] = [];
    const locators: string[] = [];
    const counts: number[] = [];
    let locator: string | null = null;
    do {
      const qs = new URLSearchParams();
      if (locator) qs.set("locator", locator);
      if (maxRecords) qs.set("maxRecords", String(maxRecords));
      const res = await rawRequest(conn, { method: "GET", url: `${jobsPath}/${jobId}/results${qs.size ? `?${qs}` : ""}`, headers: { Accept: "text/csv" } });
      expect(res.headers["content-type"]).toBe("text/csv");
      pages.push(res.body);
      locator = res.headers["sforce-locator"] ?? "";
      locators.push(locator);
      counts.push(Number(res.headers["sforce-numberofrecords"]));
      expect(locator).not.toBe("");
    } while (locator !== "null");
    return { pages, locators, counts };
  }

  it("moves a job through UploadComplete → InProgress → JobComplete and serves paged CSV with Sforce-Locator", async () => {
    const soql = "SELECT Id, Name, Amount, CloseDate, SystemModstamp, IsDeleted, Owner.Email, Account.Name FROM Opportunity";
    const job = await createJob(soql);
    expect(job).toMatchObject({
      operation: "query",
      object: "Opportunity",
      state: "UploadComplete",
      concurrencyMode: "Parallel",
      contentType: "CSV",
      apiVersion: 62,
      lineEnding: "LF",
      columnDelimiter: "COMMA",
    });
    expect(String(job.id)).toMatch(/^750[A-Za-z0-9]{15}$/);
    const id = String(job.id);
    const early = await rejection(rawRequest(conn, { method: "GET", url: `${jobsPath}/${id}/results` }));
    expect(early.message).toContain("JOB_NOT_COMPLETE");
    expect((await conn.request<Record<string, unknown>>(`${jobsPath}/${id}`)).state).toBe("InProgress");
    const done = await conn.request<Record<string, unknown>>(`${jobsPath}/${id}`);
    expect(done).toMatchObject({ state: "JobComplete", jobType: "V2Query", retries: 0 });

    const live = data.objects.Opportunity!.records!.filter((o) => o.IsDeleted !== true);
    expect(done.numberRecordsProcessed).toBe(live.length);
    const { pages, locators, counts } = await fetchAllPages(id);
    expect(pages).toHaveLength(Math.ceil(live.length / 1000));
    expect(locators.at(-1)).toBe("null");
    expect(new Set(locators).size).toBe(locators.length);
    expect(counts.reduce((a, b) => a + b, 0)).toBe(live.length);
    // every page is a standalone CSV with the header row; every value quoted
    for (const p of pages) expect(p.startsWith('"Id","Name","Amount","CloseDate","SystemModstamp","IsDeleted","Owner.Email","Account.Name"\n')).toBe(true);
    const rows = pages.flatMap((p) => parseCsv(p, { columns: true }) as Record<string, string>[]);
    expect(rows).toHaveLength(live.length);
    const byId = new Map(live.map((o) => [o.Id as string, o]));
    const nullAmount = rows.find((r) => byId.get(r.Id!)!.Amount === null)!;
    expect(nullAmount.Amount).toBe("");
    expect(pages[0]).toMatch(/\n"006[A-Za-z0-9]{15}","[^"]*","[^"]*","\d{4}-\d\d-\d\d","\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.000Z","false","[^"]+@example\.com",/);
    const sample = rows[0]!;
    expect(sample.SystemModstamp).toBe(new Date(Date.parse(String(byId.get(sample.Id!)!.SystemModstamp))).toISOString());
    // a locator can be re-read, and maxRecords makes pages smaller, never larger than the server's
    const again = await rawRequest(conn, { method: "GET", url: `${jobsPath}/${id}/results?locator=${locators[0]}` });
    expect(again.body).toBe(pages[1]);
    const small = await fetchAllPages(id, 700);
    expect(small.counts.slice(0, 3)).toEqual([700, 700, 700]);
    expect((await fetchAllPages(id, 5000)).counts).toEqual(counts);

    // queryAll includes the deleted rows
    const jobAll = String((await createJob("SELECT Id, IsDeleted FROM Opportunity", "queryAll")).id);
    await conn.request(`${jobsPath}/${jobAll}`);
    await conn.request(`${jobsPath}/${jobAll}`);
    const allRows = (await fetchAllPages(jobAll)).pages.flatMap((p) => parseCsv(p, { columns: true }) as Record<string, string>[]);
    expect(allRows).toHaveLength(data.objects.Opportunity!.records!.length);
    expect(allRows.filter((r) => r.IsDeleted === "true").length).toBe(data.objects.Opportunity!.records!.length - live.length);

    // delete
    await conn.request({ method: "DELETE", url: `${jobsPath}/${id}` });
    expect((await rejection(conn.request(`${jobsPath}/${id}`))).name).toBe("NOT_FOUND");
  });

  it("aborts, fails on demand, rejects what Bulk 2.0 does not support", async () => {
    const a = String((await createJob("SELECT Id FROM Account")).id);
    const aborted = await conn.request<Record<string, unknown>>({
      method: "PATCH",
      url: `${jobsPath}/${a}`,
      body: JSON.stringify({ state: "Aborted" }),
      headers: { "Content-Type": "application/json" },
    });
    expect(aborted.state).toBe("Aborted");

    sim.state.failNextBulkJobs(1, "Simulated: query timed out");
    const f = String((await createJob("SELECT Id FROM Account")).id);
    await conn.request(`${jobsPath}/${f}`);
    expect(await conn.request(`${jobsPath}/${f}`)).toMatchObject({ state: "Failed", errorMessage: "Simulated: query timed out" });

    expect((await rejection(createJob("SELECT COUNT() FROM Account"))).name).toBe("INVALIDJOB");
    expect((await rejection(createJob("SELECT Id FROM Account LIMIT 5 OFFSET 5"))).name).toBe("INVALIDJOB");
    expect((await rejection(createJob("SELECT Nope FROM Account"))).name).toBe("INVALID_FIELD");
  });

  it("by default a job runs on its own time: complete once its processing time has passed, polled or not", async () => {
    const s = await startSalesforceSimulator({ data, port: 0 });
    try {
      s.state.setBulkBehaviour({ processingMs: 800, processingMsPer1000: 80 }); // 2,500 opportunities: 1,000 ms
      const c = connect(s, s.state.issueTokens());
      const job = (q: string) =>
        c.request<Record<string, unknown>>({
          method: "POST",
          url: jobsPath,
          body: JSON.stringify({ operation: "query", query: q }),
          headers: { "Content-Type": "application/json" },
        });
      const id = String((await job("SELECT Id FROM Opportunity")).id);
      const info = () => c.request<Record<string, unknown>>(`${jobsPath}/${id}`);
      expect((await info()).state).toBe("UploadComplete");
      expect((await rejection(rawRequest(c, { method: "GET", url: `${jobsPath}/${id}/results` }))).message).toContain("JOB_NOT_COMPLETE");
      await new Promise((r) => setTimeout(r, 300)); // past a quarter of its time
      expect((await info()).state).toBe("InProgress");
      await new Promise((r) => setTimeout(r, 750));
      expect(await info()).toMatchObject({ state: "JobComplete", totalProcessingTime: 1000 });
      // another job, never polled: its results are there once its time has passed
      const quiet = String((await job("SELECT Id FROM Opportunity")).id);
      await new Promise((r) => setTimeout(r, 1050));
      const res = await rawRequest(c, { method: "GET", url: `${jobsPath}/${quiet}/results?maxRecords=100000` });
      const live = data.objects.Opportunity!.records!.filter((o) => o.IsDeleted !== true).length;
      expect(res.headers["sforce-numberofrecords"]).toBe(String(live)); // the server's page (default 10,000): all of it
      expect(s.counters()["GET /services/data/vXX.X/jobs/query/{jobId}"]).toBe(3);
    } finally {
      await s.close();
    }
  });

  it("works with jsforce bulk2.query for a single-page result", async () => {
    conn.bulk2.pollInterval = 20;
    const records = await conn.bulk2.query("SELECT Id, Name FROM Account");
    const rows: Record<string, string>[] = [];
    for await (const r of records) rows.push(r as Record<string, string>);
    expect(rows).toHaveLength(data.objects.Account!.records!.filter((x) => x.IsDeleted !== true).length);
  });
});

describe("Salesforce simulator: faults and counters", () => {
  let sim: SalesforceSimulator;
  let conn: Connection;
  beforeAll(async () => {
    sim = await startSalesforceSimulator({ data: DEMO, port: 0 });
    conn = connect(sim, sim.state.issueTokens());
  });
  afterAll(async () => {
    await sim.close();
  });

  it("injects 5xx on POST (not retried by jsforce) and on GET (jsforce retries once, then succeeds)", async () => {
    sim.state.addFault({ method: "POST", path: "/services/data/*/jobs/query", status: 503 });
    const err = await rejection(
      conn.request({
        method: "POST",
        url: `/services/data/v${V}/jobs/query`,
        body: JSON.stringify({ operation: "query", query: "SELECT Id FROM Account" }),
        headers: { "Content-Type": "application/json" },
      }),
    );
    expect(err.name).toBe("SERVER_UNAVAILABLE");
    const ok = await conn.request<Record<string, unknown>>({
      method: "POST",
      url: `/services/data/v${V}/jobs/query`,
      body: JSON.stringify({ operation: "query", query: "SELECT Id FROM Account" }),
      headers: { "Content-Type": "application/json" },
    });
    expect(ok.state).toBe("UploadComplete");

    const before = sim.counters();
    sim.state.addFault({ method: "GET", path: "/services/data/v*/query", status: 500, count: 1 });
    const res = await conn.query("SELECT Id FROM Account");
    expect(res.totalSize).toBe(3);
    expect(countersDelta(before, sim.counters())).toMatchObject({ "GET /services/data/vXX.X/query": 2, "faults:injected": 1, "status:500": 1 });
  });

  it("delays, resets, and is driven over HTTP too", async () => {
    const post = (path: string, body: unknown) =>
      fetch(`${sim.url}/__simulator/${path}`, { method: "POST", body: JSON.stringify(body), headers: { "Content-Type": "application/json" } });
    expect((await post("faults", { path: "/services/data/**", delayMs: 150 })).status).toBe(200);
    const t0 = Date.now();
    await conn.query("SELECT Id FROM Account");
    expect(Date.now() - t0).toBeGreaterThanOrEqual(140);

    await post("faults", { method: "GET", path: "/services/data/v*/sobjects", status: 502, count: 1, body: "<html><body>Bad Gateway</body></html>" });
    const html = await fetch(`${sim.url}/services/data/v${V}/sobjects`);
    expect(html.status).toBe(502);
    expect(html.headers.get("content-type")).toMatch(/^text\/html/);

    await post("faults", { path: "/services/data/v*/limits", action: "reset" });
    await expect(fetch(`${sim.url}/services/data/v${V}/limits`)).rejects.toThrow();

    await post("expire-tokens", {});
    let refreshed = 0;
    conn.on("refresh", () => {
      refreshed++;
    });
    await conn.query("SELECT Id FROM Account");
    expect(refreshed).toBe(1);
  });

  it("counts requests per endpoint at /__simulator/counters, without counting the controls as API calls", async () => {
    expect((await fetch(`${sim.url}/__simulator/reset-counters`, { method: "POST" })).status).toBe(200);
    const used = sim.state.apiUsage().used;
    await conn.describeGlobal();
    await conn.describe("Opportunity");
    await conn.query("SELECT Id FROM Opportunity");
    await conn.query("SELECT Id FROM Opportunity", { scanAll: true });
    await fetch(`${sim.url}/services/data`);
    const res = await fetch(`${sim.url}/__simulator/counters`);
    expect(res.headers.get("content-type")).toBe("application/json;charset=UTF-8");
    expect(await res.json()).toEqual({
      "GET /services/data": 1,
      "GET /services/data/vXX.X/sobjects": 1,
      "GET /services/data/vXX.X/sobjects/{sobject}/describe": 1,
      "GET /services/data/vXX.X/query": 1,
      "GET /services/data/vXX.X/queryAll": 1,
      "api:counted": 4,
      "status:200": 5,
    });
    expect(sim.state.apiUsage().used).toBe(used + 4);
  });

  it("lets tests change records: updates bump SystemModstamp, deletes are soft", async () => {
    const [acc] = sim.state.records("Account");
    const id = String(acc!.Id);
    const [updated] = sim.state.upsert("Account", [{ Id: id, Name: "Renamed" }]);
    expect(updated!.Name).toBe("Renamed");
    expect(sim.state.delete("Account", [id])).toBe(1);
    const q = await conn.query<{ Id: string }>(`SELECT Id FROM Account WHERE Id = '${id.slice(0, 15)}'`);
    expect(q.totalSize).toBe(0);
    const qa = await conn.query<{ Id: string; Name: string; IsDeleted: boolean }>(`SELECT Id, Name, IsDeleted FROM Account WHERE Id = '${id}'`, {
      scanAll: true,
    });
    expect(qa.records[0]).toMatchObject({ Id: id, Name: "Renamed", IsDeleted: true });
  });
});
