/**
 * The Salesforce connector's real read() and check() against the Salesforce API simulator, driven
 * through jsforce (no Kafka): exact values, user emails, polymorphic references, currencies,
 * incremental cursors and deletes, token expiry and rotation, the API limit, bad conditions, and
 * the API calls spent per 10,000 records.
 */
import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { SalesforceConnector } from "../../producers/connectors/salesforce/config.ts";
import { ConfigError } from "../../lib/errors.ts";
import type { SourcePage, SourceRecord } from "../../producers/connector.ts";
import { runSalesforceAuth } from "../../producers/connectors/salesforce/auth.ts";
import { SalesforceLimitError } from "../../producers/connectors/salesforce/errors.ts";
import { memoOf, type SalesforceState } from "../../producers/connectors/salesforce/soql.ts";
import { SalesforceSource } from "../../producers/connectors/salesforce/source.ts";
import { parseJsonLossless, plainDecimal } from "../../producers/connectors/salesforce/types.ts";
import { TokenStore } from "../../producers/oauth/token-store.ts";
import { generateSalesforceData } from "../../simulators/salesforce/generate.ts";
import { startSalesforceSimulator, type SalesforceSimulator } from "../../simulators/salesforce/server.ts";

/** The token store's key: 32 random bytes, as the store requires. */
const TOKEN_KEY = randomBytes(32).toString("base64");

const DEMO = fileURLToPath(new URL("../../simulators/salesforce/demo-data.json", import.meta.url));

// Demo org ids (simulators/salesforce/demo-data.json)
const ADA = "ada.lovelace@example.com",
  GRACE = "grace.thompson@example.com",
  ALAN = "alan.sprckjones@example.com";
const OPP = { d1: "006Gn00000002bJIAQ", d2: "006Gn00000002bKIAQ", d3: "006Gn00000002bLIAQ", d4: "006Gn00000002bMIAQ", d7: "006Gn00000002bPIAQ" };

let dir: string;
let store: TokenStore;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "qobra-sf-tokens-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

function connectorConfig(sim: SalesforceSimulator, over: Record<string, unknown> = {}, tokens = sim.state.issueTokens()): SalesforceConnector {
  return SalesforceConnector.parse({
    id: "sf",
    type: "salesforce",
    loginUrl: sim.url,
    clientId: tokens.clientId,
    clientSecret: tokens.clientSecret,
    refreshToken: tokens.refreshToken,
    bulkPollIntervalMs: 50,
    tables: [
      {
        name: "opportunities",
        object: "Opportunity",
        fields: {
          Amount: "amount",
          CloseDate: "date",
          CreatedDate: "date",
          OwnerId: "user",
          AccountId: "object",
          StageName: "picklist",
          Probability: "percentage",
          IsWon: "bool",
        },
      },
      { name: "tasks", object: "Task", fields: { Subject: "string", WhoId: "object", WhatId: "object", OwnerId: "user", ActivityDate: "date" } },
      {
        name: "commissions",
        object: "Commission__c",
        fields: { Amount__c: "amount", Rate__c: "percentage", Payee__c: "user", Opportunity__c: "object", Paid__c: "bool" },
      },
    ],
    ...over,
  });
}

interface Collected {
  records: SourceRecord[];
  deletedIds: string[];
  states: SalesforceState[];
  pages: SourcePage[];
}

async function collect(
  src: SalesforceSource,
  table: string,
  opts: { full?: boolean; state?: unknown; onPage?: (p: SourcePage, i: number) => void | Promise<void> } = {},
): Promise<Collected> {
  const out: Collected = { records: [], deletedIds: [], states: [], pages: [] };
  let i = 0;
  for await (const p of src.read(table, {
    full: opts.full ?? true,
    signal: new AbortController().signal,
    state: opts.state ?? null,
    runStartedAt: Date.now(),
  })) {
    out.pages.push(p);
    out.records.push(...p.records);
    out.deletedIds.push(...(p.deletedIds ?? []));
    if (p.state !== undefined) out.states.push(p.state as SalesforceState);
    await opts.onPage?.(p, i++);
  }
  return out;
}

const byId = (rs: SourceRecord[]) => new Map(rs.map((r) => [r.externalId, r]));

async function rejection(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (e) {
    return e as Error;
  }
  throw new Error("expected a rejection");
}

describe("Salesforce connector against the simulator (demo org)", () => {
  let sim: SalesforceSimulator;
  let now: number;
  beforeEach(async () => {
    now = Date.parse("2026-02-01T10:00:00Z");
    sim = await startSalesforceSimulator({ data: DEMO, port: 0, clock: () => now });
    store = new TokenStore({ dir: await mkdtemp(join(dir, "s-")), key: TOKEN_KEY });
  });
  afterEach(async () => {
    await sim.close();
  });
  const source = (over: Record<string, unknown> = {}) => new SalesforceSource(connectorConfig(sim, over), { tokenStore: store });

  it("reads opportunities in full with exact decimals, dates, datetimes, user emails, references and currencies", async () => {
    const src = source();
    const r = await collect(src, "opportunities");
    const recs = byId(r.records);
    expect(recs.size).toBe(7); // 8 in the org, one in the recycle bin
    expect(recs.has(OPP.d7)).toBe(false);
    const d2 = recs.get(OPP.d2)!;
    expect(d2.name).toBe("Deal 2 - Umbrella");
    expect(d2.fields.Amount).toBe("12345.678901234");
    expect(d2.fields.CurrencyIsoCode).toBe("USD");
    expect(recs.get(OPP.d3)!.fields.Amount).toBe("15000000"); // served as 1.5E7
    expect(recs.get(OPP.d4)!.fields.CurrencyIsoCode).toBe("GBP");
    const d1 = recs.get(OPP.d1)!;
    expect(d1.fields).toMatchObject({
      CloseDate: "2024-01-19",
      CreatedDate: "2024-01-09T19:44:31.000Z",
      OwnerId: ALAN,
      OwnerId__id: "005Gn00000002bLIAQ",
      AccountId: "001Gn00000002bKIAQ",
      AccountId__type: "Account",
      StageName: "Qualification",
      Probability: "20",
      IsWon: false,
    });
    expect(d1.sourceUpdatedAt).toBe("2024-01-09T19:44:31.000Z");
    expect(r.pages[0]!.sourceTypes).toMatchObject({
      Amount: "sf:currency",
      CloseDate: "sf:date",
      CreatedDate: "sf:datetime",
      OwnerId: "sf:reference",
      CurrencyIsoCode: "sf:picklist",
    });
    // a full run ends with a cursor: the newest SystemModstamp it saw
    expect(r.states).toHaveLength(1);
    const newest = [...recs.values()]
      .map((x) => x.sourceUpdatedAt!)
      .sort()
      .at(-1)!;
    expect(r.states[0]).toMatchObject({ v: 1, field: "SystemModstamp", ts: newest });
    // amounts default to the record's CurrencyIsoCode
    expect(src.config.tables[0]!.fields.Amount).toEqual({ type: "amount", currencyColumn: "CurrencyIsoCode" });
  });

  it("resolves polymorphic WhoId/WhatId to their object through the key prefixes, and users to emails", async () => {
    const r = await collect(source(), "tasks");
    const types = r.records.map((t) => [t.fields.WhoId__type, t.fields.WhatId__type]);
    expect(r.records).toHaveLength(7);
    expect(types).toContainEqual(["Lead", null]);
    expect(types).toContainEqual(["Contact", "Opportunity"]);
    expect(types).toContainEqual(["Contact", "Account"]);
    expect(types).toContainEqual([null, "Opportunity"]);
    for (const t of r.records) {
      expect([ADA, GRACE, ALAN]).toContain(t.fields.OwnerId);
      if (t.fields.WhoId !== null) expect(String(t.fields.WhoId)).toMatch(/^(003|00Q)\w{15}$/);
    }
    const c = await collect(source(), "commissions");
    expect(c.records.length).toBeGreaterThan(0);
    for (const x of c.records) {
      expect(x.fields.Payee__c).toMatch(/@example\.com$/);
      expect(x.fields.Opportunity__c__type).toBe("Opportunity");
      expect(x.fields.Amount__c).toMatch(/^\d+(\.\d+)?$/);
    }
  });

  it("keeps numbers beyond 2^53 and long decimals exact (REST JSON read from its text)", async () => {
    const id = OPP.d1;
    const body =
      `{"totalSize":1,"done":true,"records":[{"attributes":{"type":"Opportunity","url":"/x"},"Id":"${id}","Name":"Big",` +
      `"SystemModstamp":"2025-01-01T00:00:00.000+0000","IsDeleted":false,"CurrencyIsoCode":"EUR","Amount":90071992547409931.25,` +
      `"CloseDate":"2025-01-31","CreatedDate":"2025-01-01T00:00:00.000+0000","OwnerId":"005Gn00000002bJIAQ","AccountId":null,` +
      `"Owner":{"attributes":{"type":"User","url":"/x"},"Email":"${ADA}"},` +
      `"StageName":"Closed Won","Probability":1.0E-7,"IsWon":true}]}`;
    sim.state.addFault({ method: "GET", path: "/services/data/*/queryAll", status: 200, body });
    const r = await collect(
      source({
        tables: [
          {
            name: "opportunities",
            object: "Opportunity",
            api: "rest",
            fields: {
              Amount: "amount",
              CloseDate: "date",
              CreatedDate: "date",
              OwnerId: "user",
              AccountId: "object",
              StageName: "picklist",
              Probability: "percentage",
              IsWon: "bool",
            },
          },
        ],
      }),
      "opportunities",
    );
    expect(r.records).toHaveLength(1);
    expect(r.records[0]!.fields).toMatchObject({
      Amount: "90071992547409931.25",
      Probability: "0.0000001",
      OwnerId: ADA,
      AccountId: null,
      AccountId__type: null,
      IsWon: true,
    });
    // the pieces, directly
    expect((parseJsonLossless('{"a":123456789012345678901234567890.123456789}') as { a: { text: string } }).a.text).toBe(
      "123456789012345678901234567890.123456789",
    );
    expect(plainDecimal("1.5E7")).toBe("15000000");
    expect(plainDecimal("-2.5e-3")).toBe("-0.0025");
    expect(plainDecimal("15000.0")).toBe("15000");
    expect(plainDecimal("007.50")).toBe("7.5");
  });

  it("incremental: only the rows changed since the saved cursor, plus the deleted ids", async () => {
    const src = source({ lookbackSeconds: 0 });
    const full = await collect(src, "opportunities");
    const state = full.states.at(-1)!;
    now += 60_000;
    sim.state.upsert("Opportunity", [{ Id: OPP.d1, Amount: 777.125, StageName: "Closed Won" }]);
    sim.state.delete("Opportunity", [OPP.d4]);
    now += 60_000;
    const inc = await collect(source({ lookbackSeconds: 0 }), "opportunities", { full: false, state });
    expect(inc.records.map((r) => r.externalId)).toEqual([OPP.d1]);
    expect(inc.records[0]!.fields).toMatchObject({ Amount: "777.125", StageName: "Closed Won" });
    // Deal 7 sits in the recycle bin with a SystemModstamp after the cursor: it is reported too (harmless)
    expect(inc.deletedIds.filter((id) => id !== OPP.d7)).toEqual([OPP.d4]);
    const last = inc.states.at(-1)!;
    expect(Date.parse(last.ts)).toBeGreaterThan(Date.parse(state.ts));
    // the full read's record count rides along in every later state (the next full read picks REST or Bulk from it)
    expect(state.n).toBe(7);
    expect(last.n).toBe(7);
    expect(memoOf(last, last.sig)).toEqual({ n: 7 });
    expect(memoOf(last, "another digest")).toEqual({}); // another object, where or fields: not the same read
    // nothing changed since: nothing read, the cursor stays
    const again = await collect(source({ lookbackSeconds: 0 }), "opportunities", { full: false, state: last });
    expect(again.records).toEqual([]);
    expect(again.deletedIds).toEqual([]);
    expect(again.states).toEqual([]);
    // with the default lookback (600 s) the edge is read again, harmlessly
    const lb = await collect(source(), "opportunities", { full: false, state: last });
    expect(lb.records.map((r) => r.externalId).sort()).toEqual([OPP.d1]);
    expect(lb.deletedIds).toEqual([OPP.d4]);
  });

  it("incremental: records on the cursor edge (same SystemModstamp, greater Id) are not missed; a record changed during the run is read next time", async () => {
    const edge = "2025-06-01T12:00:00.000Z";
    const [a, b, c] = sim.state
      .upsert("Opportunity", [
        { Name: "Edge A", StageName: "Prospecting", CloseDate: "2025-07-01", Amount: 1, SystemModstamp: edge, LastModifiedDate: edge },
        { Name: "Edge B", StageName: "Prospecting", CloseDate: "2025-07-01", Amount: 2, SystemModstamp: edge, LastModifiedDate: edge },
        { Name: "Edge C", StageName: "Prospecting", CloseDate: "2025-07-01", Amount: 3, SystemModstamp: edge, LastModifiedDate: edge },
      ])
      .map((r) => String(r.Id))
      .sort();
    // a run that stopped after acknowledging the page that ended with record A
    const cut: SalesforceState = {
      v: 1,
      field: "SystemModstamp",
      ts: edge,
      id: a!,
      sig: (await collect(source({ lookbackSeconds: 0 }), "opportunities")).states[0]!.sig,
    };
    sim.state.queryPageSize = 1; // one record per REST page: a state after each
    let changedDuringRun = "";
    const inc = await collect(source({ lookbackSeconds: 0 }), "opportunities", {
      full: false,
      state: cut,
      onPage: (_p, i) => {
        if (i === 0) {
          now += 1000;
          changedDuringRun = String(sim.state.upsert("Opportunity", [{ Id: a!, Amount: 11 }])[0]!.Id);
        }
      },
    });
    expect(inc.records.map((r) => r.externalId)).toEqual([b, c]);
    expect(inc.states.map((s) => [s.ts, s.id])).toEqual([
      [edge, b],
      [edge, c],
    ]);
    now += 1000;
    const next = await collect(source({ lookbackSeconds: 0 }), "opportunities", { full: false, state: inc.states.at(-1) });
    expect(next.records.map((r) => [r.externalId, r.fields.Amount])).toEqual([[changedDuringRun, "11"]]);
  });

  it("incremental with a where: rows that stop matching it are deleted; a changed where restarts from the complete history", async () => {
    const won = {
      tables: [{ name: "opportunities", object: "Opportunity", where: "StageName = 'Closed Won'", fields: { Amount: "amount", StageName: "picklist" } }],
      lookbackSeconds: 0,
    };
    sim.state.upsert("Opportunity", [{ Id: OPP.d2, StageName: "Closed Won" }]);
    now += 1000;
    const full = await collect(source(won), "opportunities");
    expect(full.records.map((r) => r.externalId)).toContain(OPP.d2);
    now += 60_000;
    sim.state.upsert("Opportunity", [
      { Id: OPP.d2, StageName: "Closed Lost" },
      { Id: OPP.d3, StageName: "Closed Won" },
    ]);
    now += 1000;
    const inc = await collect(source(won), "opportunities", { full: false, state: full.states.at(-1) });
    expect(inc.records.map((r) => r.externalId)).toEqual([OPP.d3]);
    expect(inc.deletedIds).toEqual([OPP.d2]);
    // another where: the saved cursor no longer applies, every matching record (and every deleted one) is read
    const other = { ...won, tables: [{ ...won.tables[0], where: "Amount > 100000" }] };
    const restart = await collect(source(other), "opportunities", { full: false, state: inc.states.at(-1) });
    const big = sim.state
      .records("Opportunity")
      .filter((o) => Number(o.Amount) > 100000)
      .map((o) => String(o.Id))
      .sort();
    expect(restart.records.map((r) => r.externalId).sort()).toEqual(big);
    expect(big.length).toBeGreaterThanOrEqual(3);
  });

  it("refreshes an access token that expires mid-read exactly once, and the read goes on", async () => {
    sim.state.queryPageSize = 2;
    const src = source({ tables: [{ name: "opportunities", object: "Opportunity", api: "rest", fields: { Amount: "amount" } }] });
    const before = sim.counters()["oauth:grant:refresh_token"] ?? 0;
    const r = await collect(src, "opportunities", {
      onPage: (_p, i) => {
        if (i === 0) sim.state.expireAllAccessTokens();
      },
    });
    expect(r.records).toHaveLength(7);
    expect(src.apiUsage().refreshes).toBe(1);
    expect((sim.counters()["oauth:grant:refresh_token"] ?? 0) - before).toBe(2); // the login, then the one refresh
    expect(sim.counters()["status:401"]).toBe(1);
  });

  it("does not loop when Salesforce keeps refusing a fresh token (jsforce would refresh forever)", async () => {
    sim.state.addFault({ method: "GET", path: "/services/data/*/queryAll", status: 401, count: 50 });
    const before = sim.counters()["oauth:grant:refresh_token"] ?? 0;
    const e = await rejection(collect(source(), "opportunities"));
    expect(e).toBeInstanceOf(ConfigError);
    expect(e.message).toMatch(/refused a freshly issued access token/);
    expect((sim.counters()["oauth:grant:refresh_token"] ?? 0) - before).toBe(2); // the login and one refresh, no more
  });

  it("persists a rotated refresh token (atomically, encrypted) and uses it on the next run", async () => {
    sim.state.setRefreshTokenRotation(true);
    const tokens = sim.state.issueTokens();
    const cfg = () => connectorConfig(sim, { tables: [{ name: "opportunities", object: "Opportunity", fields: { Amount: "amount" } }] }, tokens);
    const first = new SalesforceSource(cfg(), { tokenStore: store });
    sim.state.queryPageSize = 3;
    await collect(first, "opportunities", {
      onPage: (_p, i) => {
        if (i === 0) sim.state.expireAllAccessTokens();
      },
    });
    expect(first.apiUsage().rotations).toBe(2); // login + mid-run refresh, each rotated and stored
    const stored = await store.load("sf");
    expect(stored!.refreshToken).not.toBe(tokens.refreshToken);
    expect(stored!.instanceUrl).toBe(sim.url);
    // the config's token is spent; a new run (same config) continues from the stored one
    const second = await collect(new SalesforceSource(cfg(), { tokenStore: store }), "opportunities");
    expect(second.records).toHaveLength(7);
    // the file is not readable without the key
    const wrongKey = new TokenStore({ dir: store.dir, key: randomBytes(32).toString("base64") });
    expect(await rejection(wrongKey.load("sf"))).toBeInstanceOf(ConfigError);
  });

  it("fails with a reconnect message when the refresh token is revoked", async () => {
    const tokens = sim.state.issueTokens();
    sim.state.revokeRefreshToken(tokens.refreshToken);
    const e = await rejection(collect(new SalesforceSource(connectorConfig(sim, {}, tokens), { tokenStore: store }), "opportunities"));
    expect(e).toBeInstanceOf(ConfigError);
    expect(e.message).toMatch(/refused the refresh token.*reconnect with `qobra-sync auth sf`/);
    expect(e.message).not.toContain(tokens.refreshToken);
  });

  it("fails the run visibly when the daily API budget runs out, and never hands out a final cursor", async () => {
    sim.state.queryPageSize = 2;
    const src = source({ tables: [{ name: "opportunities", object: "Opportunity", api: "rest", fields: { Amount: "amount" } }] });
    const limit = sim.state.apiUsage().limit;
    let pages = 0;
    const e = await rejection(
      collect(src, "opportunities", {
        onPage: () => {
          pages++;
          sim.state.setApiUsage(limit);
        },
      }),
    );
    expect(e).toBeInstanceOf(SalesforceLimitError);
    expect(e.message).toMatch(/REQUEST_LIMIT_EXCEEDED.*stale/);
    expect(pages).toBe(1);
    // maxApiUsagePercent stops earlier, with the same kind of error
    sim.state.setApiUsage(Math.floor(limit * 0.9));
    const early = await rejection(collect(source({ maxApiUsagePercent: 80 }), "opportunities"));
    expect(early).toBeInstanceOf(SalesforceLimitError);
    expect(early.message).toMatch(/maxApiUsagePercent is 80/);
  });

  it("refuses a malformed or hostile where with a ConfigError before sending it, and names Salesforce's reason otherwise", async () => {
    const withWhere = (where: string) => source({ tables: [{ name: "opportunities", object: "Opportunity", where, fields: { Amount: "amount" } }] });
    const before = sim.counters()["GET /services/data/vXX.X/queryAll"] ?? 0;
    const hostile = await rejection(collect(withWhere("StageName = 'x') OR (Id != null"), "opportunities"));
    expect(hostile).toBeInstanceOf(ConfigError);
    expect(hostile.message).toMatch(/where is not a valid SOQL condition/);
    const limit = await rejection(collect(withWhere("StageName = 'x' LIMIT 1"), "opportunities"));
    expect(limit).toBeInstanceOf(ConfigError);
    expect(limit.message).toMatch(/without LIMIT/);
    expect(await rejection(collect(withWhere("Amount > 1; DELETE FROM Opportunity"), "opportunities"))).toBeInstanceOf(ConfigError);
    expect(sim.counters()["GET /services/data/vXX.X/queryAll"] ?? 0).toBe(before); // nothing was sent
    const unknown = await rejection(collect(withWhere("Nope__c = 1"), "opportunities"));
    expect(unknown).toBeInstanceOf(ConfigError);
    expect(unknown.message).toMatch(/INVALID_FIELD/);
  });

  it("check(): login, objects, fields and their types, the where (a LIMIT 1 query), and write permissions", async () => {
    const src = source({
      tables: [
        { name: "ok", object: "Opportunity", where: "Amount > 0", fields: { Amount: "amount", OwnerId: "user", StageName: "picklist" } },
        { name: "bad_fields", object: "Opportunity", fields: { StageName: "amount", Amout: "amount", AccountId: "user", BillingAddress__x: "string" } },
        { name: "bad_where", object: "Opportunity", where: "Nope__c = 1", fields: { Amount: "amount" } },
        { name: "no_object", object: "Nope__c", fields: {} },
        { name: "compound", object: "Account", fields: { BillingAddress: "string" } },
      ],
    });
    const checks = Object.fromEntries((await src.check()).map((c) => [c.table, c]));
    expect(checks.ok!.ok).toBe(true);
    expect(checks.ok!.warnings.join(" ")).toMatch(/can create, edit, delete Opportunity records/);
    expect(checks.bad_fields!.ok).toBe(false);
    const problems = checks.bad_fields!.problems.join("\n");
    expect(problems).toMatch(/StageName is a Salesforce picklist field and cannot be a Qobra amount/);
    expect(problems).toMatch(/Amout is not a field of Opportunity.*did you mean Amount/);
    expect(problems).toMatch(/AccountId is a Salesforce reference field and cannot be a Qobra user \(it references Account, not User\)/);
    expect(checks.bad_where!.problems.join(" ")).toMatch(/INVALID_FIELD/);
    expect(checks.no_object!.problems.join(" ")).toMatch(/Nope__c does not exist/);
    expect(checks.compound!.problems.join(" ")).toMatch(/compound address field/);
  });

  it("with no fields configured, reads every readable field with its default type", async () => {
    const r = await collect(source({ tables: [{ name: "accounts", object: "Account" }] }), "accounts");
    expect(r.records).toHaveLength(3);
    const t = r.pages[0]!.sourceTypes;
    expect(t).toMatchObject({ Name: "sf:string", AnnualRevenue: "sf:currency", OwnerId: "sf:reference", CreatedDate: "sf:datetime" });
    expect(t.BillingAddress).toBeUndefined(); // compound: its components are there instead
    expect(t.BillingCity).toBe("sf:string");
    const acc = r.records.find((x) => x.name === "Acme Group 1")!;
    expect(acc.fields).toMatchObject({ AnnualRevenue: "233116316", NumberOfEmployees: "4798", OwnerId: GRACE, CurrencyIsoCode: "USD" });
  });

  it("runs the OAuth authorization-code flow on a loopback callback and stores the refresh token", async () => {
    const cfg = { ...connectorConfig(sim), refreshToken: undefined };
    const printed: string[] = [];
    await runSalesforceAuth(cfg, {
      port: 0,
      tokenStore: store,
      print: (s) => printed.push(s),
      open: (url) => {
        void (async () => {
          // the user's browser: the consent page, "Allow", then Salesforce's redirect to our callback
          const page = await (await fetch(url)).text();
          const form = new URLSearchParams();
          for (const m of page.matchAll(/<input type="hidden" name="([^"]+)" value="([^"]*)">/g)) form.set(m[1]!, m[2]!.replace(/&amp;/g, "&"));
          form.set("username", "grace.thompson1@qobra-sim.example.com");
          form.set("action", "allow");
          const consent = await fetch(`${sim.url}/services/oauth2/authorize`, { method: "POST", body: form, redirect: "manual" });
          const callback = await fetch(consent.headers.get("location")!);
          expect(await callback.text()).toMatch(/connected to Salesforce/);
        })();
      },
    });
    expect(printed.join("\n")).toMatch(/services\/oauth2\/authorize\?.*code_challenge=/);
    const stored = await store.load("sf");
    expect(stored).toMatchObject({ instanceUrl: sim.url, userId: "005Gn00000002bKIAQ", source: "auth" });
    expect(printed.join("\n")).not.toContain(stored!.refreshToken);
    // a connector without refreshToken in its config uses the stored one
    const r = await collect(new SalesforceSource(cfg, { tokenStore: store }), "opportunities");
    expect(r.records).toHaveLength(7);
  });
});

describe("Salesforce connector: Bulk API 2.0 for large reads", () => {
  let sim: SalesforceSimulator;
  beforeAll(async () => {
    const data = generateSalesforceData({ opportunities: 25_000, accounts: 300, contacts: 300, leads: 50, tasks: 100, users: 20, commissions: 10, seed: 7 });
    sim = await startSalesforceSimulator({ data, port: 0 });
    store = new TokenStore({ dir: await mkdtemp(join(dir, "b-")), key: TOKEN_KEY });
  });
  afterAll(async () => {
    await sim.close();
  });

  const opportunities = (api: string) => ({
    tables: [
      {
        name: "opportunities",
        object: "Opportunity",
        api,
        fields: { Amount: "amount", CloseDate: "date", OwnerId: "user", AccountId: "object", Probability: "percentage", StageName: "picklist" },
      },
    ],
  });

  it("reads 25,000 records through Bulk API 2.0 pages (the multi-page case jsforce breaks on) at the fewest calls the API allows, and REST agrees value for value", async () => {
    const live = sim.state.records("Opportunity").length;
    const pages = Math.ceil(live / 10_000); // the simulator's results page (maxRecords cannot make it larger)
    const calls = () => Object.fromEntries(Object.entries(sim.counters()).filter(([k]) => /^(GET|POST|PATCH|DELETE) \/services\/data\//.test(k)));
    const DESCRIBE = "GET /services/data/vXX.X/sobjects/{sobject}/describe",
      CREATE = "POST /services/data/vXX.X/jobs/query",
      POLL = "GET /services/data/vXX.X/jobs/query/{jobId}",
      RESULTS = "GET /services/data/vXX.X/jobs/query/{jobId}/results";
    const bulkSource = () => new SalesforceSource(connectorConfig(sim, { ...opportunities("auto"), bulkPollIntervalMs: 2000 }), { tokenStore: store });
    // A table's first run knows nothing: the first REST page's totalSize picks Bulk, polls back off from 500 ms.
    sim.state.resetCounters();
    const cold = await collect(bulkSource(), "opportunities");
    expect(cold.records).toHaveLength(live);
    const first = calls();
    const { [POLL]: coldPolls, ...rest0 } = first;
    expect(rest0).toEqual({ [DESCRIBE]: 1, "GET /services/data/vXX.X/queryAll": 1, [CREATE]: 1, [RESULTS]: pages }); // no describeGlobal, users query nor job DELETE
    expect(coldPolls).toBeGreaterThanOrEqual(1);
    expect(coldPolls).toBeLessThanOrEqual(3); // a job of about 2.5 s: polls at 0.5, 1.5 and 3.5 s
    const state = cold.states.at(-1)!;
    expect(state).toMatchObject({ n: live });
    expect(state.bulkMs).toBeGreaterThan(0);
    // Every later run: from the state, exactly what the API requires: one describe, the job's creation,
    // one status poll (waiting about as long as the last job took), the result pages.
    sim.state.resetCounters();
    const bulk = await collect(bulkSource(), "opportunities", { state });
    expect(bulk.records).toHaveLength(live);
    expect(calls()).toEqual({ [DESCRIBE]: 1, [CREATE]: 1, [POLL]: 1, [RESULTS]: pages });
    const bulkCalls = sim.counters()["api:counted"] ?? 0;
    expect(bulkCalls).toBe(3 + pages);
    expect(bulk.states.at(-1)).toMatchObject({ n: live });

    sim.state.resetCounters();
    const rest = await collect(new SalesforceSource(connectorConfig(sim, opportunities("rest")), { tokenStore: store }), "opportunities");
    const restCalls = sim.counters()["api:counted"] ?? 0;
    expect(rest.records).toHaveLength(live);
    expect(restCalls).toBe(1 + Math.ceil(live / 2000)); // the describe, then every page: no describeGlobal, no users query
    expect(sim.counters()["GET /services/data/vXX.X/query/{locator}"]).toBe(Math.ceil(live / 2000) - 1); // every page followed, past maxFetch's 10,000
    const restById = byId(rest.records);
    for (const r of bulk.records) {
      const x = restById.get(r.externalId)!;
      expect(r.fields).toEqual(x.fields);
      expect([r.name, r.sourceUpdatedAt]).toEqual([x.name, x.sourceUpdatedAt]);
    }
    const cursor = ({ v, field, ts, id, sig }: SalesforceState) => ({ v, field, ts, id, sig });
    expect(cursor(bulk.states.at(-1)!)).toEqual(cursor(rest.states.at(-1)!));
  });

  it("falls back to REST when the Bulk job fails", async () => {
    sim.state.failNextBulkJobs(1, "simulated failure");
    const r = await collect(new SalesforceSource(connectorConfig(sim, opportunities("auto")), { tokenStore: store }), "opportunities");
    expect(r.records).toHaveLength(sim.state.records("Opportunity").length);
    const forced = await rejection(
      (async () => {
        sim.state.failNextBulkJobs(1, "simulated failure");
        await collect(new SalesforceSource(connectorConfig(sim, opportunities("bulk")), { tokenStore: store }), "opportunities");
      })(),
    );
    expect(forced).toBeInstanceOf(ConfigError);
    expect(forced.message).toMatch(/BULK_JOB_FAILED.*simulated failure/);
  });
});
