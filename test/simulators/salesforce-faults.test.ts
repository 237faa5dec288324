/**
 * The Salesforce simulator's model of real-org behaviours issue #13 needs (through the real jsforce client
 * where it matters): purges (`POST /__admin/delete` with `"hard": true`, invisible to queryAll), a
 * single-currency org (`"currency": "single"`: no CurrencyIsoCode, an Organization without
 * DefaultCurrencyIsoCode), the named fault rules (the concurrent-request limit, QUERY_TIMEOUT, a Bulk job
 * refused at creation, and the daily Bulk job limit itself), QUERY_TIMEOUT by result size (`queryTimeout`),
 * the `onApiRequest` hook, and 414 for request URIs over 16,384 bytes.
 */
import jsforce from "jsforce";
import type { Connection } from "jsforce";
import { afterEach, describe, expect, it } from "vitest";
import { generateSalesforceData } from "../../simulators/salesforce/generate.ts";
import { startSalesforceSimulator, type SalesforceSimulator } from "../../simulators/salesforce/server.ts";
import type { SalesforceSimData } from "../../simulators/salesforce/types.ts";

const V = "62.0";
let sim: SalesforceSimulator | undefined;
afterEach(async () => {
  await sim?.close();
  sim = undefined;
});

async function start(data: SalesforceSimData = generateSalesforceData({ opportunities: 20, accounts: 5, contacts: 5, leads: 2, tasks: 5, users: 2, seed: 3 })) {
  sim = await startSalesforceSimulator({ data, port: 0 });
  const t = sim.state.issueTokens();
  const conn = new jsforce.Connection({ instanceUrl: sim.url, version: V, accessToken: t.accessToken });
  return { sim, conn, token: t.accessToken };
}

async function api(s: SalesforceSimulator, token: string, path: string, init: RequestInit = {}) {
  const res = await fetch(`${s.url}${path}`, { ...init, headers: { Authorization: `Bearer ${token}`, ...(init.headers ?? {}) } });
  const text = await res.text();
  let json: unknown = null;
  try {
    json = JSON.parse(text);
  } catch {
    /* HTML */
  }
  return { status: res.status, json: json as Array<{ errorCode: string; message: string }>, text, contentType: res.headers.get("content-type") };
}

const q = (soql: string, all = false) => `/services/data/v${V}/${all ? "queryAll" : "query"}?q=${encodeURIComponent(soql)}`;

async function adminDelete(s: SalesforceSimulator, body: unknown) {
  const res = await fetch(`${s.url}/__admin/delete`, { method: "POST", body: JSON.stringify(body), headers: { "Content-Type": "application/json" } });
  return { status: res.status, json: (await res.json()) as Record<string, unknown> };
}

describe("Salesforce simulator: purges (hard deletes)", () => {
  it('POST /__admin/delete with "hard": true purges records, those in the recycle bin included: queryAll no longer sees them', async () => {
    const { sim: s, conn } = await start();
    const [a, b, c] = s.state.records("Opportunity").map((r) => String(r.Id));
    expect((await adminDelete(s, { object: "Opportunity", ids: [b] })).json.deleted).toEqual([b]);
    const res = await adminDelete(s, { object: "Opportunity", ids: [a, b, "006000000000000AAA"], hard: true });
    expect(res).toEqual({ status: 200, json: { object: "Opportunity", deleted: [a, b], notFound: ["006000000000000AAA"] } });
    const all = await conn.query<{ Id: string }>(`SELECT Id FROM Opportunity WHERE Id IN ('${a}', '${b}', '${c}')`).scanAll(true);
    expect(all.records.map((r) => r.Id)).toEqual([c]);
    // purged ids are unknown from then on: a second purge or a soft delete reports them not found
    expect((await adminDelete(s, { object: "Opportunity", ids: [a], hard: true })).json.notFound).toEqual([a]);
    expect((await adminDelete(s, { object: "Opportunity", ids: [a] })).json.notFound).toEqual([a]);
    expect((await adminDelete(s, { object: "Opportunity", ids: [c], hard: "yes" })).status).toBe(400);
  });
});

describe("Salesforce simulator: single-currency org", () => {
  it('"currency": "single" gives objects without CurrencyIsoCode and an Organization without DefaultCurrencyIsoCode', async () => {
    const data = {
      ...generateSalesforceData({ opportunities: 3, accounts: 2, contacts: 1, leads: 1, tasks: 1, users: 1, seed: 5 }),
      currency: "single" as const,
    };
    data.org = { ...data.org, multiCurrency: undefined };
    const { sim: s, conn, token } = await start(data);
    const d = await conn.describe("Opportunity");
    expect(d.fields.some((f) => f.name === "CurrencyIsoCode")).toBe(false);
    const org = await conn.query<{ Id: string; Name: string }>("SELECT Id, Name FROM Organization");
    expect(org.records).toHaveLength(1);
    expect(org.records[0]!.Id.startsWith("00D")).toBe(true);
    const r = await api(s, token, q("SELECT DefaultCurrencyIsoCode FROM Organization"));
    expect(r.status).toBe(400);
    expect(r.json[0]!.errorCode).toBe("INVALID_FIELD");
    expect((await api(s, token, q("SELECT Id, CurrencyIsoCode FROM Opportunity"))).json[0]!.errorCode).toBe("INVALID_FIELD");
  });

  it("a multi-currency org's Organization tells its corporate currency; contradicting options are refused", async () => {
    const { conn } = await start(
      generateSalesforceData({ opportunities: 2, accounts: 1, contacts: 1, leads: 1, tasks: 1, users: 1, currencies: ["EUR", "USD"] }),
    );
    const org = await conn.query<{ DefaultCurrencyIsoCode: string }>("SELECT DefaultCurrencyIsoCode FROM Organization");
    expect(org.records[0]!.DefaultCurrencyIsoCode).toBe("EUR");
    await expect(startSalesforceSimulator({ data: { currency: "single", org: { multiCurrency: true }, objects: {} }, port: 0 })).rejects.toThrow(
      /contradicts org.multiCurrency/,
    );
  });
});

describe("Salesforce simulator: named faults of real orgs", () => {
  it("concurrentRequests answers REQUEST_LIMIT_EXCEEDED with the ConcurrentRequests message, not the daily budget's", async () => {
    const { sim: s, token } = await start();
    s.state.addFault({ fault: "concurrentRequests", count: 2 } as never);
    for (let i = 0; i < 2; i++) {
      const r = await api(s, token, q("SELECT Id FROM Account"));
      expect(r.status).toBe(403);
      expect(r.json).toEqual([{ errorCode: "REQUEST_LIMIT_EXCEEDED", message: "ConcurrentRequests (Concurrent API Requests) Limit exceeded." }]);
    }
    expect((await api(s, token, q("SELECT Id FROM Account"))).status).toBe(200);
  });

  it("queryTimeout fails the first page of a REST query (query or queryAll) with QUERY_TIMEOUT, never a queryMore page", async () => {
    const { sim: s, token } = await start();
    s.state.queryPageSize = 5;
    const first = await api(s, token, q("SELECT Id FROM Opportunity"));
    const next = (first.json as unknown as { nextRecordsUrl: string }).nextRecordsUrl;
    s.state.addFault({ fault: "queryTimeout", count: 2 } as never);
    expect((await api(s, token, next)).status).toBe(200);
    const r = await api(s, token, q("SELECT Id FROM Opportunity", true));
    expect(r.status).toBe(400);
    expect(r.json).toEqual([{ errorCode: "QUERY_TIMEOUT", message: "Your query request was running for too long." }]);
    expect((await api(s, token, q("SELECT Id FROM Opportunity"))).json[0]!.errorCode).toBe("QUERY_TIMEOUT");
    expect((await api(s, token, q("SELECT Id FROM Opportunity"))).status).toBe(200);
  });

  it("the size-based QUERY_TIMEOUT answers REST queries over an object with more results than allowed, never queryMore pages nor Bulk jobs", async () => {
    const { sim: s, token } = await start();
    const all = s.state
      .records("Opportunity")
      .map((r) => r.SystemModstamp as number)
      .sort((a, b) => a - b);
    const cut = new Date(all[9]!).toISOString().replace(/\.\d{3}Z$/, "Z");
    s.state.queryPageSize = 5;
    const big = await api(s, token, q("SELECT Id FROM Opportunity")); // before the rule: paged, kept for a queryMore below
    s.state.setQueryTimeout({ object: "opportunity", rows: 10 });
    const r = await api(s, token, q("SELECT Id FROM Opportunity", true));
    expect(r.status).toBe(400);
    expect(r.json).toEqual([{ errorCode: "QUERY_TIMEOUT", message: "Your query request was running for too long." }]);
    // a narrower SystemModstamp window (at most 10 records) gets through, and so does another object
    expect((await api(s, token, q(`SELECT Id FROM Opportunity WHERE SystemModstamp < ${cut}`))).status).toBe(200);
    expect((await api(s, token, q("SELECT Id FROM Account"))).status).toBe(200);
    expect((await api(s, token, (big.json as unknown as { nextRecordsUrl: string }).nextRecordsUrl)).status).toBe(200);
    // a Bulk job reads the same query in full
    const job = await api(s, token, `/services/data/v${V}/jobs/query`, {
      method: "POST",
      body: JSON.stringify({ operation: "queryAll", query: "SELECT Id FROM Opportunity" }),
      headers: { "Content-Type": "application/json" },
    });
    const id = (job.json as unknown as { id: string }).id;
    const state = async () => ((await api(s, token, `/services/data/v${V}/jobs/query/${id}`)).json as unknown as { state: string }).state;
    for (let i = 0; i < 50 && (await state()) !== "JobComplete"; i++) await new Promise((r) => setTimeout(r, 100));
    const csv = await api(s, token, `/services/data/v${V}/jobs/query/${id}/results`);
    expect(csv.text.trim().split("\n")).toHaveLength(1 + s.state.records("Opportunity", { includeDeleted: true }).length);
    expect(s.counters()["faults:queryTimeout"]).toBe(1);
    // over HTTP, and off with null; a malformed rule is refused
    const settings = (body: unknown) => fetch(`${s.url}/__simulator/settings`, { method: "POST", body: JSON.stringify(body) });
    expect((await settings({ queryTimeout: { rows: 0 } })).status).toBe(200);
    expect((await api(s, token, q("SELECT Id FROM Account"))).status).toBe(400);
    expect((await settings({ queryTimeout: { rows: "x" } })).status).toBe(400);
    expect((await settings({ queryTimeout: null })).status).toBe(200);
    expect((await api(s, token, q("SELECT Id FROM Opportunity"))).status).toBe(200);
  });

  it("the data file's org.queryTimeout turns it on from the start; onApiRequest sees every API request before it is answered", async () => {
    const data = generateSalesforceData({ opportunities: 20, accounts: 5, contacts: 5, leads: 2, tasks: 5, users: 2, seed: 3 });
    data.org = { ...data.org, queryTimeout: { rows: 3, object: "Account" } };
    const { sim: s, token } = await start(data);
    const seen: string[] = [];
    s.state.onApiRequest = ({ method, path, query }) => seen.push(`${method} ${path} ${query.get("q") ?? ""}`);
    expect((await api(s, token, q("SELECT Id FROM Account"))).json[0]!.errorCode).toBe("QUERY_TIMEOUT");
    expect((await api(s, token, q("SELECT Id FROM Opportunity"))).status).toBe(200);
    expect(seen).toEqual([`GET /services/data/v${V}/query SELECT Id FROM Account`, `GET /services/data/v${V}/query SELECT Id FROM Opportunity`]);
  });

  it("bulkJobRefused refuses the next job creation; the daily job limit refuses creations for real", async () => {
    const { sim: s, token } = await start();
    const create = () =>
      api(s, token, `/services/data/v${V}/jobs/query`, {
        method: "POST",
        body: JSON.stringify({ operation: "query", query: "SELECT Id FROM Account" }),
        headers: { "Content-Type": "application/json" },
      });
    s.state.addFault({ fault: "bulkJobRefused" } as never);
    const refused = await create();
    expect(refused.status).toBe(400);
    expect(refused.json[0]!.errorCode).toBe("LIMIT_EXCEEDED");
    expect((await create()).status).toBe(200);
    s.state.setBulkBehaviour({ dailyQueryJobLimit: 2 });
    expect((await create()).status).toBe(200);
    const limited = await create();
    expect(limited.status).toBe(400);
    expect(limited.json[0]).toEqual({ errorCode: "LIMIT_EXCEEDED", message: "Max bulk v2 query jobs (2) per 24 hrs has been reached (3)" });
    // faults can still be written out in full; an unknown preset is refused
    expect(() => s.state.addFault({ fault: "nope" } as never)).toThrow(/unknown fault/);
  });
});

describe("Salesforce simulator: the 16,384-byte URI limit", () => {
  it("answers 414 to a request URI over 16,384 bytes (authenticated or not, before any fault), 431 when URI and headers exceed it", async () => {
    const { sim: s, token } = await start();
    const base = `/services/data/v${V}/query?q=`;
    const soql = (len: number) => `SELECT Id FROM Account WHERE Name = '${"x".repeat(len)}'`;
    // fetch's URL parser escapes quotes in a query string: escape them first so the length is what is sent
    const enc = (x: string) => encodeURIComponent(x).replace(/'/g, "%27");
    // the largest URI allowed: exactly 16,384 bytes
    const pad = 16_384 - (base.length + enc(soql(0)).length);
    const atLimit = base + enc(soql(pad));
    expect(Buffer.byteLength(atLimit)).toBe(16_384);
    s.state.addFault({ path: "/services/data/**", status: 503 });
    const over = await api(s, token, `${atLimit}x`);
    expect(over.status).toBe(414);
    expect(over.contentType).toMatch(/text\/html/);
    expect(s.state.faults()).toHaveLength(1); // the fault was not reached
    s.state.clearFaults();
    expect((await api(s, "", `${atLimit}x`)).status).toBe(414);
    const usage = s.state.apiUsage().used;
    // at the limit the URI alone passes, but with the headers it does not
    expect((await api(s, token, atLimit)).status).toBe(431);
    const shorter = base + enc(soql(pad - 400));
    expect((await api(s, token, shorter)).status).toBe(200);
    expect(s.state.apiUsage().used).toBe(usage + 1); // refused heads are not charged
  });

  it("jsforce sees a 414 as an error it does not retry", async () => {
    const { conn } = await start();
    const where = Array.from({ length: 1200 }, (_, i) => `'001000000000${String(i).padStart(3, "0")}AAA'`).join(",");
    await expect((conn as Connection).query(`SELECT Id FROM Account WHERE Id IN (${where})`)).rejects.toMatchObject({ name: "ERROR_HTTP_414" });
  });
});
