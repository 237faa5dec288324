/**
 * Several HubSpot portals in one simulator process (multi-portal.ts), driven through the real
 * @hubspot/api-client: requests reach the portal their credentials belong to, and each portal keeps its own
 * data, tokens, rate limits, counters and faults.
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { generateHubSpotData } from "../../simulators/hubspot/generate.ts";
import {
  runMultiPortalHubSpotSimulator,
  startMultiPortalHubSpotSimulator,
  type HubSpotPortalCredentials,
  type MultiPortalHubSpotSimulator,
} from "../../simulators/hubspot/multi-portal.ts";
import type { HubSpotSimData } from "../../simulators/hubspot/types.ts";
import { DEMO_DATA_PATH, demoData, expectApiError, hubspotClient, testClock, UUID_RE } from "../../support/hubspot.ts";

const clock = testClock();

/** Refreshes as a connector does (client.oauth.tokensApi.create) and returns a client with the new access token. */
async function connect(c: HubSpotPortalCredentials): Promise<{ api: ReturnType<typeof hubspotClient>; accessToken: string }> {
  const t = await hubspotClient(c.basePath, "unused").oauth.tokensApi.create("refresh_token", undefined, undefined, c.clientId, c.clientSecret, c.refreshToken);
  return { api: hubspotClient(c.basePath, t.accessToken), accessToken: t.accessToken };
}

async function dealNames(api: ReturnType<typeof hubspotClient>): Promise<string[]> {
  const page = await api.crm.deals.basicApi.getPage(100, undefined, ["dealname"]);
  return page.results.map((d) => String(d.properties.dealname));
}

/** Portal k: 2 + k deals whose names say which portal they are in; portal 0 has a daily budget of 5 calls. */
function portalData(k: number): HubSpotSimData {
  const data = generateHubSpotData({ deals: 2 + k, companies: 1, contacts: 1, seed: 10 + k });
  for (const d of data.objects.deals?.records ?? []) d.properties = { ...d.properties, dealname: `portal${k} ${String(d.properties?.dealname)}` };
  if (k === 0) data.portal = { ...data.portal, rateLimits: { ...(data.portal?.rateLimits ?? {}), daily: 5 } };
  return data;
}

describe("HubSpot simulator: many portals in one process", () => {
  let sim: MultiPortalHubSpotSimulator;
  beforeAll(async () => {
    sim = await startMultiPortalHubSpotSimulator({ portals: 3, data: portalData, clock: clock.now, validateResponses: true });
  });
  afterAll(async () => {
    for (let k = 0; k < sim.createdPortals(); k++) expect(sim.portal(k).responseValidationFailures()).toEqual([]);
    await sim.close();
  });

  it("builds no portal before it is used, and gives every portal its own credentials and hub id", () => {
    expect(sim.createdPortals()).toBe(0);
    expect(sim.credentials).toHaveLength(3);
    expect(new Set(sim.credentials.map((c) => c.clientId)).size).toBe(3);
    expect(new Set(sim.credentials.map((c) => c.refreshToken)).size).toBe(3);
    expect(new Set(sim.credentials.map((c) => c.portalId)).size).toBe(3);
    for (const c of sim.credentials) {
      expect(c.clientId).toMatch(UUID_RE);
      expect(c.basePath).toBe(sim.url);
    }
  });

  it("routes each portal's refresh and calls to that portal: a client reads its own portal's records only", async () => {
    const a = await connect(sim.credentials[0]!);
    const b = await connect(sim.credentials[1]!);
    const na = await dealNames(a.api);
    const nb = await dealNames(b.api);
    expect(na).toHaveLength(2);
    expect(nb).toHaveLength(3);
    expect(na.every((n) => n.startsWith("portal0 "))).toBe(true);
    expect(nb.every((n) => n.startsWith("portal1 "))).toBe(true);
    const oauth = hubspotClient(sim.url, "unused").oauth;
    expect((await oauth.accessTokensApi.get(a.accessToken)).hubId).toBe(sim.credentials[0]!.portalId);
    expect((await oauth.accessTokensApi.get(b.accessToken)).hubId).toBe(sim.credentials[1]!.portalId);
    expect((await oauth.refreshTokensApi.get(sim.credentials[1]!.refreshToken)).clientId).toBe(sim.credentials[1]!.clientId);
    expect(sim.createdPortals()).toBe(2);
  });

  it("answers a token no portal issued with HubSpot's 401 INVALID_AUTHENTICATION, and moves no portal's counters", async () => {
    const before = [0, 1].map((k) => JSON.stringify(sim.portal(k).counters()));
    const e = await expectApiError(hubspotClient(sim.url, "CO-not-a-token").crm.deals.basicApi.getPage(1), 401);
    expect(e.body).toMatchObject({
      status: "error",
      category: "INVALID_AUTHENTICATION",
      message: "The OAuth token used to make this call is invalid or has been revoked. Refresh the token or re-authorize the app.",
    });
    expect(e.body.correlationId).toMatch(UUID_RE);
    expect(e.headers["content-type"]).toMatch(/^application\/json/);
    expect(e.headers["x-hubspot-correlation-id"]).toMatch(UUID_RE);
    const none = await fetch(`${sim.url}/crm/v3/objects/deals`);
    expect(none.status).toBe(401);
    expect(((await none.json()) as { message: string }).message).toMatch(/^Authentication credentials not found/);
    expect([0, 1].map((k) => JSON.stringify(sim.portal(k).counters()))).toEqual(before);
    expect(sim.unrouted.counters()).toMatchObject({ "GET /crm/v3/objects/deals": 2, "status:401": 2 });
    // Token metadata of an unknown token: 404, as in one portal.
    await expectApiError(hubspotClient(sim.url, "unused").oauth.accessTokensApi.get("CO-not-a-token"), 404);
  });

  it("keeps tokens to their portal: another portal's refresh token gets BAD_REFRESH_TOKEN, an expired token 401 only in its portal", async () => {
    const [c0, c1] = [sim.credentials[0]!, sim.credentials[1]!];
    const crossed = await expectApiError(connect({ ...c1, refreshToken: c0.refreshToken }), 400);
    expect(crossed.body).toMatchObject({ status: "BAD_REFRESH_TOKEN", message: "missing or invalid refresh token" });
    const unknownClient = await expectApiError(connect({ ...c1, clientId: "00000000-0000-4000-a000-000000000000" }), 400);
    expect(unknownClient.body.status).toBe("BAD_CLIENT_ID");

    const t0 = sim.portal(0).issueAccessToken();
    const t1 = sim.portal(1).issueAccessToken();
    expect(sim.portal(0).expireAccessTokens(t0)).toBe(1);
    const expired = await expectApiError(hubspotClient(sim.url, t0).crm.deals.basicApi.getPage(1), 401);
    expect(expired.body.category).toBe("EXPIRED_AUTHENTICATION");
    expect((await dealNames(hubspotClient(sim.url, t1))).every((n) => n.startsWith("portal1 "))).toBe(true);
  });

  it("keeps each portal's rate limits, counters and faults to itself", async () => {
    const a = hubspotClient(sim.url, sim.portal(0).issueAccessToken());
    const c = hubspotClient(sim.url, sim.portal(2).issueAccessToken());
    // Portal 0's day allows 5 calls: spend what is left, then it refuses; portal 2 does not notice.
    while (sim.portal(0).rateLimitUsage().daily < 5) await a.crm.deals.basicApi.getPage(1);
    const refused = await expectApiError(a.crm.deals.basicApi.getPage(1), 429);
    expect(refused.body).toMatchObject({ policyName: "DAILY" });
    expect((await c.crm.deals.basicApi.getPage(10)).results).toHaveLength(4);
    expect(sim.portal(2).rateLimitUsage().daily).toBe(1);
    expect(sim.portal(2).counters()["GET /crm/v3/objects/deals"]).toBe(1);

    sim.portal(2).injectFault({ path: "/crm/v3/objects/deals", status: 500, count: 1 });
    const b = hubspotClient(sim.url, sim.portal(1).issueAccessToken());
    await b.crm.deals.basicApi.getPage(1); // portal 1 does not see portal 2's fault
    await expectApiError(c.crm.deals.basicApi.getPage(1), 500);
    await c.crm.deals.basicApi.getPage(1);
  });

  it("serves each portal's controls under /portal/<k>/ and lists the credentials at /__portals", async () => {
    const list = (await (await fetch(`${sim.url}/__portals`)).json()) as { url: string; portals: HubSpotPortalCredentials[] };
    expect(list).toEqual({ url: sim.url, portals: sim.credentials });
    const counters2 = (await (await fetch(`${sim.url}/portal/2/__simulator/counters`)).json()) as Record<string, number>;
    expect(counters2).toEqual(sim.portal(2).counters());
    const stats1 = await fetch(`${sim.url}/portal/1/__admin/stats`);
    expect(stats1.status).toBe(200);
    expect(await stats1.json()).toEqual(sim.portal(1).stats());
    expect((await fetch(`${sim.url}/portal/3/__admin/stats`)).status).toBe(404);
    expect((await fetch(`${sim.url}/__simulator/counters`)).status).toBe(404);
  });
});

describe("HubSpot simulator: many portals from one data file, and the CLI entry", () => {
  it("loads the file once per portal with the portal's own hub id and app, and writes the credentials file", async () => {
    const dir = mkdtempSync(join(tmpdir(), "hs-portals-"));
    const file = join(dir, "credentials.json");
    const stop = new AbortController();
    const running = runMultiPortalHubSpotSimulator({ port: 0, portals: 2, data: DEMO_DATA_PATH, credentials: file, signal: stop.signal });
    try {
      let text = "";
      for (let i = 0; i < 200 && !text; i++) {
        try {
          text = readFileSync(file, "utf8");
        } catch {
          await new Promise((r) => setTimeout(r, 25));
        }
      }
      const creds = JSON.parse(text) as { api: string; url: string; portals: HubSpotPortalCredentials[] };
      expect(creds.api).toBe("hubspot");
      expect(creds.portals).toHaveLength(2);
      const a = await connect(creds.portals[0]!);
      const b = await connect(creds.portals[1]!);
      expect(await dealNames(a.api)).toEqual(await dealNames(b.api));
      const oauth = hubspotClient(creds.url, "unused").oauth;
      expect((await oauth.accessTokensApi.get(a.accessToken)).hubId).toBe(creds.portals[0]!.portalId);
      expect((await oauth.accessTokensApi.get(b.accessToken)).hubId).toBe(creds.portals[1]!.portalId);
      // The demo file's own app, refresh token and private-app token would name no single portal: none is served.
      const demo = demoData().portal!.oauth!;
      const demoRefresh = await expectApiError(
        oauth.tokensApi.create("refresh_token", undefined, undefined, String(demo.clientId), String(demo.clientSecret), "demo-refresh-token"),
        400,
      );
      expect(demoRefresh.body.status).toBe("BAD_CLIENT_ID");
      await expectApiError(hubspotClient(creds.url, "demo-private-app-token").crm.deals.basicApi.getPage(1), 401);
    } finally {
      stop.abort();
      await running;
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
