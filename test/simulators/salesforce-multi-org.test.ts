// Several Salesforce orgs in one simulator process (multi-org.ts), driven through the real jsforce 3 client:
// requests reach the org their credentials belong to, and each org keeps its own data, tokens, limits, counters
// and faults.
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import jsforce from "jsforce";
import type { Connection } from "jsforce";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { generateSalesforceData } from "../../simulators/salesforce/generate.ts";
import { runMultiOrgSalesforceSimulator, startMultiOrgSalesforceSimulator } from "../../simulators/salesforce/multi-org.ts";
import type { MultiOrgSalesforceSimulator, SalesforceOrgCredentials } from "../../simulators/salesforce/multi-org.ts";
import type { SalesforceSimData } from "../../simulators/salesforce/types.ts";

const DEMO = fileURLToPath(new URL("../../simulators/salesforce/demo-data.json", import.meta.url));
const V = "62.0";

/** A jsforce connection that starts with no access token: its first call refreshes, as a connector does. */
function connect(c: SalesforceOrgCredentials): Connection {
  return new jsforce.Connection({
    instanceUrl: c.instanceUrl,
    loginUrl: c.loginUrl,
    version: V,
    refreshToken: c.refreshToken,
    oauth2: { clientId: c.clientId, clientSecret: c.clientSecret, loginUrl: c.loginUrl, redirectUri: "http://127.0.0.1:9/callback" },
  });
}

async function rejection(p: PromiseLike<unknown>): Promise<Error & { errorCode?: string }> {
  try {
    await p;
  } catch (e) {
    return e as Error & { errorCode?: string };
  }
  throw new Error("expected a rejection");
}

/** Org k: 3 + k opportunities whose names say which org they are in, Bulk jobs that finish at once. */
function orgData(k: number): SalesforceSimData {
  const data = generateSalesforceData({ opportunities: 3 + k, accounts: 2, tasks: 0, commissions: 0, deletedRatio: 0, seed: 100 + k });
  for (const r of data.objects.Opportunity!.records!) r.Name = `org${k} ${String(r.Name)}`;
  data.org = { ...data.org, bulk: { processingMs: 0, processingMsPer1000: 0 } };
  return data;
}

describe("Salesforce simulator: many orgs in one process", () => {
  let sim: MultiOrgSalesforceSimulator;
  beforeAll(async () => {
    sim = await startMultiOrgSalesforceSimulator({ orgs: 3, data: orgData });
  });
  afterAll(async () => {
    await sim.close();
  });

  it("builds no org before it is used, and gives every org its own credentials and org id", () => {
    expect(sim.createdOrgs()).toBe(0);
    expect(sim.credentials).toHaveLength(3);
    expect(new Set(sim.credentials.map((c) => c.clientId)).size).toBe(3);
    expect(new Set(sim.credentials.map((c) => c.refreshToken)).size).toBe(3);
    expect(new Set(sim.credentials.map((c) => c.orgId)).size).toBe(3);
    for (const c of sim.credentials) expect(c.instanceUrl).toBe(sim.url);
  });

  it("routes each org's refresh and queries to that org: a connection reads its own org's records only", async () => {
    const a = connect(sim.credentials[0]!);
    const b = connect(sim.credentials[1]!);
    const ra = await a.query<{ Name: string }>("SELECT Id, Name FROM Opportunity");
    const rb = await b.query<{ Name: string }>("SELECT Id, Name FROM Opportunity");
    expect(ra.totalSize).toBe(3);
    expect(rb.totalSize).toBe(4);
    expect(ra.records.every((r) => r.Name.startsWith("org0 "))).toBe(true);
    expect(rb.records.every((r) => r.Name.startsWith("org1 "))).toBe(true);
    // jsforce took the token response's instance_url and id: the shared URL, and the org's own identity.
    expect(a.instanceUrl).toBe(sim.url);
    expect((await a.identity()).organization_id).toBe(sim.org(0).state.org.org.id);
    expect((await b.identity()).organization_id).toBe(sim.org(1).state.org.org.id);
    expect(sim.org(0).state.org.org.id).not.toBe(sim.org(1).state.org.org.id);
    expect(sim.createdOrgs()).toBe(2);
    // Bulk API 2.0 builds its URLs from instanceUrl with new URL(): the token routes those too.
    const bulk = (await b.bulk2.query("SELECT Name FROM Opportunity")) as unknown as AsyncIterable<{ Name: string }>;
    const names: string[] = [];
    for await (const row of bulk) names.push(row.Name);
    expect(names).toHaveLength(4);
    expect(names.every((n) => n.startsWith("org1 "))).toBe(true);
  });

  it("answers a token no org issued with Salesforce's 401 INVALID_SESSION_ID, and gives it nothing", async () => {
    const res = await fetch(`${sim.url}/services/data/v${V}/query?q=${encodeURIComponent("SELECT Id FROM Opportunity")}`, {
      headers: { Authorization: "Bearer 00DQbM000000000!ARnot-a-real-token" },
    });
    expect(res.status).toBe(401);
    expect(res.headers.get("www-authenticate")).toBe("Token");
    expect(await res.json()).toEqual([{ message: "Session expired or invalid", errorCode: "INVALID_SESSION_ID" }]);
    const orgs401 = () => [0, 1, 2].map((k) => sim.org(k).counters()["status:401"] ?? 0);
    const before = orgs401();
    const conn = new jsforce.Connection({ instanceUrl: sim.url, version: V, accessToken: "made-up" });
    const e = await rejection(conn.query("SELECT Id FROM Opportunity"));
    expect(e.name).toBe("INVALID_SESSION_ID");
    // jsforce retries a 401 before giving up: every try reached no org.
    expect(sim.unrouted.counters()["status:401"]).toBeGreaterThanOrEqual(2);
    expect(orgs401()).toEqual(before);
    // The identity URL answers as Salesforce does for a bad token.
    const id = await fetch(`${sim.url}/id/${sim.credentials[0]!.orgId}/005000000000000`, { headers: { Authorization: "Bearer made-up" } });
    expect(id.status).toBe(403);
    expect(await id.text()).toBe("Bad_OAuth_Token");
  });

  it("keeps tokens to their org: another org's refresh token gets invalid_grant, an expired token 401 only in its org", async () => {
    const [c0, c1] = [sim.credentials[0]!, sim.credentials[1]!];
    const crossed = connect({ ...c1, refreshToken: c0.refreshToken });
    const e = await rejection(crossed.query("SELECT Id FROM Opportunity"));
    expect(e.message).toMatch(/invalid_grant|expired access\/refresh token/);
    const unknownClient = connect({ ...c1, clientId: "3MVG9-nobody" });
    expect((await rejection(unknownClient.query("SELECT Id FROM Opportunity"))).message).toMatch(/invalid_client_id|client identifier invalid/);

    const t0 = sim.org(0).state.issueTokens();
    const t1 = sim.org(1).state.issueTokens();
    expect(sim.org(0).state.expireAllAccessTokens()).toBeGreaterThan(0);
    const q = (token: string) =>
      fetch(`${sim.url}/services/data/v${V}/query?q=${encodeURIComponent("SELECT Name FROM Opportunity")}`, { headers: { Authorization: `Bearer ${token}` } });
    const expired = await q(t0.accessToken);
    expect(expired.status).toBe(401);
    expect(await expired.json()).toEqual([{ message: "Session expired or invalid", errorCode: "INVALID_SESSION_ID" }]);
    const live = await q(t1.accessToken);
    expect(live.status).toBe(200);
    const body = (await live.json()) as { records: { Name: string }[] };
    expect(body.records.every((r) => r.Name.startsWith("org1 "))).toBe(true);
  });

  it("counts each org's daily API usage, limit and requests separately, and injects faults in one org only", async () => {
    const a = connect(sim.credentials[0]!);
    const c = connect(sim.credentials[2]!);
    const before2 = sim.org(2).counters()["api:counted"] ?? 0;
    sim.org(0).state.setDailyApiLimit(50);
    sim.org(0).state.setApiUsage(50);
    const limited = await rejection(a.query("SELECT Id FROM Opportunity"));
    expect(limited.name).toBe("REQUEST_LIMIT_EXCEEDED");
    const r = await c.query("SELECT Id FROM Opportunity");
    expect(r.totalSize).toBe(5);
    const limit2 = sim.org(2).state.apiUsage().limit;
    expect(limit2).toBeGreaterThan(50);
    expect(c.limitInfo.apiUsage).toEqual({ used: before2 + 1, limit: limit2 });
    expect(sim.org(2).state.apiUsage()).toEqual({ used: before2 + 1, limit: limit2 });
    expect(sim.org(0).state.apiUsage()).toEqual({ used: 50, limit: 50 });

    sim.org(2).state.addFault({ method: "GET", path: "/services/data/*/query", status: 400, errorCode: "MALFORMED_QUERY", message: "simulated", count: 1 });
    sim.org(0).state.setDailyApiLimit(100);
    await a.query("SELECT Id FROM Opportunity"); // org 0 does not see org 2's fault
    expect((await rejection(c.query("SELECT Id FROM Opportunity"))).name).toBe("MALFORMED_QUERY");
    expect(sim.org(0).counters()["faults:injected"]).toBeUndefined();
    expect(sim.org(2).counters()["faults:injected"]).toBe(1);
  });

  it("serves each org's controls under /org/<k>/ and lists the credentials at /__orgs", async () => {
    const list = (await (await fetch(`${sim.url}/__orgs`)).json()) as { url: string; orgs: SalesforceOrgCredentials[] };
    expect(list).toEqual({ url: sim.url, orgs: sim.credentials });
    const counters1 = (await (await fetch(`${sim.url}/org/1/__simulator/counters`)).json()) as Record<string, number>;
    expect(counters1).toEqual(sim.org(1).counters());
    const stats2 = await fetch(`${sim.url}/org/2/__admin/stats`);
    expect(stats2.status).toBe(200);
    expect(await stats2.json()).toEqual(sim.org(2).stats());
    expect((await fetch(`${sim.url}/org/3/__admin/stats`)).status).toBe(404);
    expect((await fetch(`${sim.url}/__simulator/counters`)).status).toBe(404);
    expect((await fetch(`${sim.url}/org/1/services/data/v${V}/sobjects`)).status).toBe(404);
  });
});

describe("Salesforce simulator: many orgs from one data file, and the CLI entry", () => {
  it("loads the file once per org with the org's own id and client, and writes the credentials file", async () => {
    const dir = mkdtempSync(join(tmpdir(), "sf-orgs-"));
    const file = join(dir, "credentials.json");
    const stop = new AbortController();
    const running = runMultiOrgSalesforceSimulator({ port: 0, orgs: 2, data: DEMO, credentials: file, signal: stop.signal });
    try {
      let text = "";
      for (let i = 0; i < 200 && !text; i++) {
        try {
          text = readFileSync(file, "utf8");
        } catch {
          await new Promise((r) => setTimeout(r, 25));
        }
      }
      const creds = JSON.parse(text) as { api: string; url: string; orgs: SalesforceOrgCredentials[] };
      expect(creds.api).toBe("salesforce");
      expect(creds.orgs).toHaveLength(2);
      const [a, b] = [connect(creds.orgs[0]!), connect(creds.orgs[1]!)];
      const ra = await a.query<{ Id: string }>("SELECT Id FROM Opportunity");
      const rb = await b.query<{ Id: string }>("SELECT Id FROM Opportunity");
      // Same file, same records, but two orgs: a record deleted in one stays in the other.
      expect(ra.totalSize).toBe(rb.totalSize);
      expect(ra.totalSize).toBeGreaterThan(0);
      expect((await a.identity()).organization_id).toBe(creds.orgs[0]!.orgId);
      expect((await b.identity()).organization_id).toBe(creds.orgs[1]!.orgId);
      // The demo file's own client is not an org's client any more (it would name no single org).
      const demo = JSON.parse(readFileSync(DEMO, "utf8")) as SalesforceSimData;
      const demoClient = demo.oauth?.clientId ?? demo.oauth?.clients?.[0]?.clientId;
      expect(demoClient).toBeTruthy();
      expect(creds.orgs.map((o) => o.clientId)).not.toContain(demoClient);
      const res = await fetch(`${creds.url}/services/oauth2/token`, {
        method: "POST",
        headers: { "Content-Type": "application/x-www-form-urlencoded" },
        body: new URLSearchParams({ grant_type: "refresh_token", client_id: String(demoClient), client_secret: "x", refresh_token: "y" }),
      });
      expect(res.status).toBe(400);
      expect(await res.json()).toEqual({ error: "invalid_client_id", error_description: "client identifier invalid" });
    } finally {
      stop.abort();
      await running;
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
