// The Salesforce simulator's public contracts (issue #4): the data-file format (org / clients / objects with real
// describes loaded unchanged) and the admin API under /__admin/, checked through the real jsforce client.
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import jsforce from "jsforce";
import type { Connection } from "jsforce";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { to18 } from "../../simulators/salesforce/ids.ts";
import { startSalesforceSimulator } from "../../simulators/salesforce/server.ts";
import type { AdminStats, SalesforceSimulator } from "../../simulators/salesforce/server.ts";

/** `../shared/api-fixtures/salesforce/extracted/` beside the repository: real recorded describes (CumulusCI cassettes). */
const FIXTURES = fileURLToPath(new URL("../../../shared/api-fixtures/salesforce/extracted/", import.meta.url));
const V = "62.0";
const ORG_ID = "00DQb000000Adm1";
const T0 = Date.parse("2025-03-01T12:00:00Z");

/** A recorded describe, exactly as GET /sobjects/<Name>/describe returned it. */
function realDescribe(name: string): Record<string, unknown> {
  return JSON.parse(readFileSync(join(FIXTURES, `GET_sobjects_${name}_describe.response.json`), "utf8")) as Record<string, unknown>;
}

const ids = {
  acme: to18("001Qb00000Adm01"),
  globex: to18("001Qb00000Adm02"),
  carla: to18("003Qb00000Adm01"),
  lead: to18("00QQb00000Adm01"),
  oppWon: to18("006Qb00000Adm01"),
  oppOpen: to18("006Qb00000Adm02"),
  event: to18("00UQb00000Adm01"),
  custom: to18("aB5Qb00000Adm01"),
};

/** Records as the REST API returns them: attributes, 18-char ids, +0000 datetimes, parent relationships. */
const attrs = (type: string, id: string) => ({ type, url: `/services/data/v${V}/sobjects/${type}/${id}` });
const stamp = (iso: string) => ({ CreatedDate: iso, LastModifiedDate: iso, SystemModstamp: iso });

function issueFormatData() {
  return {
    org: { organizationId: ORG_ID, multiCurrency: true, corporateCurrency: "EUR", dailyApiLimit: 5000 },
    clients: [
      { clientId: "admin-app", clientSecret: "admin-secret", refreshToken: "admin-refresh", rotateRefreshTokens: true },
      { clientId: "plain-app", clientSecret: "plain-secret", refreshToken: "plain-refresh", rotateRefreshTokens: false },
    ],
    objects: {
      Account: {
        describe: realDescribe("Account"),
        records: [
          {
            attributes: attrs("Account", ids.acme),
            Id: ids.acme,
            Name: "Acme",
            Industry: "Technology",
            AnnualRevenue: 1500000.0,
            BillingCity: "Paris",
            BillingAddress: null,
            IsDeleted: false,
            ...stamp("2024-01-02T09:00:00.000+0000"),
          },
          { attributes: attrs("Account", ids.globex), Id: ids.globex, Name: "Globex", CurrencyIsoCode: "USD", ...stamp("2024-01-03T09:00:00.000+0000") },
        ],
      },
      Contact: {
        describe: realDescribe("Contact"),
        records: [
          {
            attributes: attrs("Contact", ids.carla),
            Id: ids.carla,
            FirstName: "Carla",
            LastName: "Contact",
            AccountId: ids.acme,
            Account: { attributes: attrs("Account", ids.acme), Name: "Acme" },
            ...stamp("2024-01-04T09:00:00.000+0000"),
          },
        ],
      },
      Lead: {
        describe: realDescribe("Lead"),
        records: [{ Id: ids.lead, LastName: "Lead", Company: "Initech", Status: "Open", ...stamp("2024-01-05T09:00:00.000+0000") }],
      },
      Opportunity: {
        describe: realDescribe("Opportunity"),
        records: [
          {
            attributes: attrs("Opportunity", ids.oppWon),
            Id: ids.oppWon,
            Name: "Acme - Platform",
            StageName: "Closed Won",
            CloseDate: "2024-03-29",
            Amount: 125000.5,
            CurrencyIsoCode: "GBP",
            AccountId: ids.acme,
            Account: { attributes: attrs("Account", ids.acme), Name: "Acme" },
            Owner: null,
            ...stamp("2024-02-01T10:00:00.000+0000"),
          },
          {
            Id: ids.oppOpen,
            Name: "Globex - Expansion",
            StageName: "Prospecting",
            CloseDate: "2024-06-30",
            Amount: 98765.4321,
            AccountId: ids.globex,
            ...stamp("2024-02-02T10:00:00.000+0000"),
          },
        ],
      },
      Event: {
        describe: realDescribe("Event"),
        records: [
          {
            Id: ids.event,
            Subject: "Kick-off",
            WhoId: ids.carla,
            WhatId: ids.acme,
            ActivityDateTime: "2024-03-10T08:30:00.000+0000",
            DurationInMinutes: 30,
            ...stamp("2024-03-01T09:00:00.000+0000"),
          },
        ],
      },
      Custom__c: { describe: realDescribe("Custom__c"), records: [{ Id: ids.custom, Name: "Custom one", CustomField__c: "x" }] },
    },
  };
}

async function admin(
  sim: SalesforceSimulator,
  method: "GET" | "POST",
  path: string,
  body?: unknown,
): Promise<{ status: number; json: any; contentType: string | null }> {
  const init: RequestInit = { method };
  if (body !== undefined) {
    init.body = typeof body === "string" ? body : JSON.stringify(body);
    init.headers = { "Content-Type": "application/json" };
  }
  const res = await fetch(`${sim.url}/__admin/${path}`, init);
  const text = await res.text();
  return { status: res.status, json: text ? JSON.parse(text) : undefined, contentType: res.headers.get("content-type") };
}

async function rejection(p: PromiseLike<unknown>): Promise<Error & { errorCode?: string }> {
  try {
    await p;
  } catch (e) {
    return e as Error & { errorCode?: string };
  }
  throw new Error("expected a rejection");
}

describe("Salesforce simulator: the data-file format of issue #4, with real describes", () => {
  let dir: string;
  let sim: SalesforceSimulator;
  let conn: Connection;
  let now = T0;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), "sf-admin-"));
    const file = join(dir, "org.json");
    writeFileSync(file, JSON.stringify(issueFormatData(), null, 2));
    sim = await startSalesforceSimulator({ data: file, port: 0, clock: () => now });
    const oauth = new jsforce.OAuth2({ clientId: "plain-app", clientSecret: "plain-secret", loginUrl: sim.url });
    const tok = await oauth.refreshToken("plain-refresh");
    conn = new jsforce.Connection({ instanceUrl: tok.instance_url, version: V, accessToken: tok.access_token });
  });
  afterAll(async () => {
    await sim.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("loads org settings, clients and the describes unchanged", async () => {
    const plain = new jsforce.OAuth2({ clientId: "plain-app", clientSecret: "plain-secret", loginUrl: sim.url });
    const tok = await plain.refreshToken("plain-refresh");
    expect(tok.id).toMatch(new RegExp(`/id/${to18(ORG_ID)}/005[A-Za-z0-9]{15}$`));
    expect(tok).not.toHaveProperty("refresh_token"); // rotateRefreshTokens: false for this client

    // rotateRefreshTokens: true for the other client only
    const rotating = new jsforce.OAuth2({ clientId: "admin-app", clientSecret: "admin-secret", loginUrl: sim.url });
    const r1 = await rotating.refreshToken("admin-refresh");
    expect(r1.refresh_token).toEqual(expect.any(String));
    expect(r1.refresh_token).not.toBe("admin-refresh");
    expect((await rejection(rotating.refreshToken("admin-refresh"))).name).toBe("invalid_grant");
    expect((await rotating.refreshToken(r1.refresh_token!)).refresh_token).toEqual(expect.any(String));

    // dailyApiLimit
    await conn.query("SELECT Id FROM Account");
    expect(conn.limitInfo?.apiUsage?.limit).toBe(5000);

    // describes served as recorded (multi-currency adds CurrencyIsoCode), describeGlobal derived from them
    for (const name of ["Account", "Contact", "Lead", "Opportunity", "Event", "Custom__c"]) {
      const real = realDescribe(name) as { fields: { name: string; type: string }[]; keyPrefix: string };
      const served = await conn.describe(name);
      expect(served.keyPrefix).toBe(real.keyPrefix);
      expect(served.fields.filter((f) => f.name !== "CurrencyIsoCode").map((f) => [f.name, f.type])).toEqual(real.fields.map((f) => [f.name, f.type]));
      expect(served.fields.some((f) => f.name === "CurrencyIsoCode")).toBe(true);
    }
    const global = await conn.describeGlobal();
    expect(
      Object.fromEntries(
        global.sobjects.filter((s) => s.name !== "User" && s.name !== "CurrencyType" && s.name !== "Organization").map((s) => [s.name, s.keyPrefix]),
      ),
    ).toEqual({
      Account: "001",
      Contact: "003",
      Custom__c: "aB5",
      Event: "00U",
      Lead: "00Q",
      Opportunity: "006",
    });

    // records as the REST API returns them: attributes and parent relationships ignored, currencies kept
    const opp = await conn.query<Record<string, any>>(
      `SELECT Id, Name, Amount, CurrencyIsoCode, SystemModstamp, Account.Name FROM Opportunity WHERE Id = '${ids.oppWon}'`,
    );
    expect(opp.records[0]).toMatchObject({
      Id: ids.oppWon,
      Amount: 125000.5,
      CurrencyIsoCode: "GBP",
      SystemModstamp: "2024-02-01T10:00:00.000+0000",
      Account: { Name: "Acme" },
    });
    const currencies = await conn.query<{ IsoCode: string; IsCorporate: boolean }>("SELECT IsoCode, IsCorporate FROM CurrencyType ORDER BY IsoCode");
    expect(currencies.records.map((c) => [c.IsoCode, c.IsCorporate])).toEqual([
      ["EUR", true],
      ["GBP", false],
      ["USD", false],
    ]);
    const ev = await conn.query<Record<string, any>>("SELECT Subject, Who.Name, What.Name FROM Event");
    expect(ev.records[0]).toMatchObject({ Subject: "Kick-off", Who: { Name: "Carla Contact" }, What: { Name: "Acme" } });
  });

  it('GET /__admin/stats counts requests per "<METHOD> <route>"; POST /__admin/stats/reset zeroes them', async () => {
    const reset = await admin(sim, "POST", "stats/reset");
    expect(reset.status).toBe(200);
    expect(reset.json).toEqual({ total: 0, requests: {} });
    const used = sim.state.apiUsage().used;

    await conn.describeGlobal();
    await conn.describe("Opportunity");
    await conn.query("SELECT Id FROM Opportunity");
    await conn.query("SELECT Id FROM Opportunity");
    await conn.query("SELECT Id FROM Opportunity", { scanAll: true });
    await new jsforce.OAuth2({ clientId: "plain-app", clientSecret: "plain-secret", loginUrl: sim.url }).refreshToken("plain-refresh");
    expect((await fetch(`${sim.url}/services/data`)).status).toBe(200);
    expect((await fetch(`${sim.url}/services/data/v${V}/limits`)).status).toBe(401); // counted too: a request is a request
    // admin calls are neither counted nor charged, and need no authentication
    for (let i = 0; i < 3; i++) expect((await admin(sim, "GET", "stats")).status).toBe(200);

    const stats = await admin(sim, "GET", "stats");
    expect(stats.contentType).toMatch(/^application\/json/);
    const expected: AdminStats = {
      total: 8,
      requests: {
        "GET /services/data": 1,
        "GET /services/data/vXX.X/limits": 1,
        "GET /services/data/vXX.X/query": 2,
        "GET /services/data/vXX.X/queryAll": 1,
        "GET /services/data/vXX.X/sobjects": 1,
        "GET /services/data/vXX.X/sobjects/{sobject}/describe": 1,
        "POST /services/oauth2/token": 1,
      },
    };
    expect(stats.json).toEqual(expected);
    expect(sim.stats()).toEqual(expected);
    expect(sim.state.apiUsage().used).toBe(used + 5);
    // independent of /__simulator/counters, which keep counting
    expect(sim.counters()["GET /services/data/vXX.X/query"]).toBeGreaterThanOrEqual(2);
    expect((await admin(sim, "POST", "stats/reset")).json).toEqual({ total: 0, requests: {} });
    expect(sim.counters()["GET /services/data/vXX.X/query"]).toBeGreaterThanOrEqual(2);
  });

  it("POST /__admin/records upserts; a record without SystemModstamp/LastModifiedDate gets the current time", async () => {
    now = T0 + 60_000;
    const res = await admin(sim, "POST", "records", {
      object: "Opportunity",
      records: [
        // update without audit fields: bumped to now
        { Id: ids.oppOpen.slice(0, 15), StageName: "Negotiation/Review", Amount: 100000 },
        // insert without audit fields: now
        {
          attributes: { type: "Opportunity" },
          Name: "Initech - New",
          StageName: "Prospecting",
          CloseDate: "2025-06-30",
          Amount: 5000,
          AccountId: ids.globex,
          CurrencyIsoCode: "USD",
        },
        // insert with explicit audit fields: kept
        {
          Name: "Backdated",
          StageName: "Prospecting",
          CloseDate: "2025-01-31",
          LastModifiedDate: "2025-01-15T08:00:00.000+0000",
          SystemModstamp: "2025-01-15T08:00:00.000+0000",
        },
      ],
    });
    expect(res.status).toBe(200);
    expect(res.json).toMatchObject({ object: "Opportunity", created: 2, updated: 1 });
    const [updatedId, newId, backdatedId] = res.json.ids as string[];
    expect(updatedId).toBe(ids.oppOpen);
    expect(newId).toMatch(/^006[A-Za-z0-9]{15}$/);

    const q = await conn.query<Record<string, any>>(
      `SELECT Id, Name, StageName, Amount, CurrencyIsoCode, CreatedDate, LastModifiedDate, SystemModstamp, Account.Name FROM Opportunity WHERE Id IN ('${updatedId}', '${newId}', '${backdatedId}') ORDER BY Name`,
    );
    const byName = Object.fromEntries(q.records.map((r) => [r.Name, r]));
    const nowText = "2025-03-01T12:01:00.000+0000";
    expect(byName["Globex - Expansion"]).toMatchObject({
      StageName: "Negotiation/Review",
      Amount: 100000,
      CreatedDate: "2024-02-02T10:00:00.000+0000",
      LastModifiedDate: nowText,
      SystemModstamp: nowText,
      CurrencyIsoCode: "EUR",
    });
    expect(byName["Initech - New"]).toMatchObject({
      Id: newId,
      CreatedDate: nowText,
      LastModifiedDate: nowText,
      SystemModstamp: nowText,
      CurrencyIsoCode: "USD",
      Account: { Name: "Globex" },
    });
    expect(byName.Backdated).toMatchObject({
      LastModifiedDate: "2025-01-15T08:00:00.000+0000",
      SystemModstamp: "2025-01-15T08:00:00.000+0000",
      CreatedDate: nowText,
    });
    // an incremental on SystemModstamp sees the two changes made now
    const since = await conn.query<{ Id: string }>("SELECT Id FROM Opportunity WHERE SystemModstamp >= 2025-03-01T12:00:00Z ORDER BY Id");
    expect(since.records.map((r) => r.Id).sort()).toEqual([updatedId, newId].sort());

    // objects without audit fields (Custom__c's recorded describe has none) upsert too
    const custom = await admin(sim, "POST", "records", { object: "custom__c", records: [{ Id: ids.custom, CustomField__c: "y" }] });
    expect(custom.json).toEqual({ object: "Custom__c", ids: [ids.custom], created: 0, updated: 1 });
    expect((await conn.query<Record<string, any>>("SELECT CustomField__c FROM Custom__c")).records[0]?.CustomField__c).toBe("y");

    // all or nothing: a bad record rejects the whole request with 400
    const before = (await conn.query("SELECT COUNT() FROM Opportunity")).totalSize;
    const bad = await admin(sim, "POST", "records", {
      object: "Opportunity",
      records: [
        { Name: "ok", StageName: "Prospecting", CloseDate: "2025-01-01" },
        { Name: "bad", NoSuchField__c: 1 },
      ],
    });
    expect(bad.status).toBe(400);
    expect(bad.json[0]).toMatchObject({ errorCode: "INVALID_ADMIN_REQUEST" });
    expect(bad.json[0].message).toContain("records[1]");
    expect((await conn.query("SELECT COUNT() FROM Opportunity")).totalSize).toBe(before);
    expect((await admin(sim, "POST", "records", { object: "Nope__c", records: [] })).status).toBe(400);
    expect((await admin(sim, "POST", "records", { object: "Opportunity" })).status).toBe(400);
    expect((await admin(sim, "POST", "records", "{not json")).status).toBe(400);
  });

  it("POST /__admin/delete moves records to the recycle bin: queryAll returns them with IsDeleted = true, query does not", async () => {
    now = T0 + 120_000;
    const res = await admin(sim, "POST", "delete", { object: "Opportunity", ids: [ids.oppWon.slice(0, 15), "006Qb00000Nope1"] });
    expect(res.status).toBe(200);
    expect(res.json).toEqual({ object: "Opportunity", deleted: [ids.oppWon], notFound: ["006Qb00000Nope1"] });

    const live = await conn.query<{ Id: string }>("SELECT Id FROM Opportunity");
    expect(live.records.map((r) => r.Id)).not.toContain(ids.oppWon);
    const all = await conn.query<{ Id: string; IsDeleted: boolean; SystemModstamp: string }>(
      `SELECT Id, IsDeleted, SystemModstamp FROM Opportunity WHERE Id = '${ids.oppWon}'`,
      { scanAll: true },
    );
    expect(all.records).toEqual([expect.objectContaining({ Id: ids.oppWon, IsDeleted: true, SystemModstamp: "2025-03-01T12:02:00.000+0000" })]);
    const deletedSince = await conn.query<{ Id: string }>("SELECT Id FROM Opportunity WHERE IsDeleted = true AND SystemModstamp >= 2025-03-01T12:00:00Z", {
      scanAll: true,
    });
    expect(deletedSince.records.map((r) => r.Id)).toEqual([ids.oppWon]);
    expect((await rejection(conn.sobject("Opportunity").retrieve(ids.oppWon))).name).toBe("NOT_FOUND");

    // deleting again is a no-op reported as not found
    expect((await admin(sim, "POST", "delete", { object: "Opportunity", ids: [ids.oppWon] })).json).toEqual({
      object: "Opportunity",
      deleted: [],
      notFound: [ids.oppWon],
    });
    expect((await admin(sim, "POST", "delete", { object: "Nope__c", ids: [] })).status).toBe(400);
    expect((await admin(sim, "POST", "delete", { object: "Opportunity", ids: "x" })).status).toBe(400);
  });

  it("answers 404 for unknown admin routes and 405 for wrong methods", async () => {
    expect((await admin(sim, "GET", "nope")).status).toBe(404);
    expect((await admin(sim, "POST", "stats")).status).toBe(405);
    expect((await admin(sim, "GET", "records")).status).toBe(405);
    expect(sim.stats()).toEqual({ total: expect.any(Number), requests: expect.not.objectContaining({ "GET /__admin/nope": expect.anything() }) });
  });
});

describe("Salesforce simulator: both data-file formats", () => {
  it("accepts the issue-#4 format as an object too, and rejects contradictions", async () => {
    const data = issueFormatData();
    const sim = await startSalesforceSimulator({ data: data as never, port: 0 });
    try {
      expect(sim.state.org.org.id).toBe(to18(ORG_ID));
      expect(sim.state.summary()).toMatchObject({
        oauth: {
          clients: [
            { clientId: "admin-app", rotateRefreshTokens: true },
            { clientId: "plain-app", rotateRefreshTokens: false },
          ],
        },
      });
      // the data object given is not modified
      expect(data.org).toEqual({ organizationId: ORG_ID, multiCurrency: true, corporateCurrency: "EUR", dailyApiLimit: 5000 });
    } finally {
      await sim.close();
    }
    await expect(startSalesforceSimulator({ data: { ...data, org: { ...data.org, id: "00DQb000000Oth1" } } as never })).rejects.toThrow(
      /org\.id .* and org\.organizationId .* differ/,
    );
    await expect(startSalesforceSimulator({ data: { ...data, clients: [{ clientId: "x" }] } as never })).rejects.toThrow(
      /clients\[0\] needs a string clientId and clientSecret/,
    );
  });
});
