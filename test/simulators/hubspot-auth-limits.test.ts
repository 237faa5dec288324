/**
 * HubSpot simulator: OAuth (refresh / authorization_code through client.oauth.tokensApi.create),
 * token expiry, scopes, the ten-secondly / search-secondly / daily rate limits with their 429
 * bodies and headers (on a controlled clock), fault injection, counters, the CLI entry point.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { startHubSpotSimulator, type HubSpotSimulator } from "../../simulators/hubspot/server.ts";
import { runHubSpotSimulator } from "../../simulators/hubspot/main.ts";
import { DEMO_DATA_PATH, TINY_PORTAL_PATH, demoData, expectApiError, hubspotClient, testClock, UUID_RE } from "../../support/hubspot.ts";

const clock = testClock();

describe("OAuth", () => {
  let sim: HubSpotSimulator;
  beforeAll(async () => {
    sim = await startHubSpotSimulator({ data: DEMO_DATA_PATH, clock: clock.now, validateResponses: true });
  });
  afterAll(async () => {
    expect(sim.responseValidationFailures()).toEqual([]);
    await sim.close();
  });

  it("refreshes through client.oauth.tokensApi.create and the new token works for 30 minutes", async () => {
    const oauth = hubspotClient(sim.url, "unused");
    // v14 signature: create(grantType, code, redirectUri, clientId, clientSecret, refreshToken)
    const t = await oauth.oauth.tokensApi.create("refresh_token", undefined, undefined, "demo-client-id", "demo-client-secret", "demo-refresh-token");
    expect(t.expiresIn).toBe(1800);
    expect(t.tokenType).toBe("bearer");
    expect(t.refreshToken).toBe("demo-refresh-token"); // HubSpot does not rotate refresh tokens
    expect(t.accessToken).toMatch(/^CO/);
    const api = hubspotClient(sim.url, t.accessToken);
    expect((await api.crm.deals.basicApi.getPage(1)).results).toHaveLength(1);

    clock.advance(1_799_000);
    await api.crm.deals.basicApi.getPage(1);
    clock.advance(1_000);
    const expired = await expectApiError(api.crm.deals.basicApi.getPage(1), 401);
    expect(expired.body).toMatchObject({
      status: "error",
      category: "EXPIRED_AUTHENTICATION",
      message: "The OAuth token used to make this call expired 0 second(s) ago.",
    });
    expect(expired.body.correlationId).toMatch(UUID_RE);
    clock.advance(75_000);
    const later = await expectApiError(api.crm.deals.basicApi.getPage(1), 401);
    expect(later.body.message).toBe("The OAuth token used to make this call expired 75 second(s) ago.");

    const again = await oauth.oauth.tokensApi.create("refresh_token", undefined, undefined, "demo-client-id", "demo-client-secret", "demo-refresh-token");
    expect(again.accessToken).not.toBe(t.accessToken);
    await hubspotClient(sim.url, again.accessToken).crm.deals.basicApi.getPage(1);
  });

  it("answers 400 BAD_REFRESH_TOKEN for unknown and revoked refresh tokens, and checks the client", async () => {
    const oauth = hubspotClient(sim.url, "unused");
    const create = (refresh: string, clientId = "demo-client-id", secret = "demo-client-secret") =>
      oauth.oauth.tokensApi.create("refresh_token", undefined, undefined, clientId, secret, refresh);
    const unknown = await expectApiError(create("nope"), 400);
    expect(unknown.body).toMatchObject({ status: "BAD_REFRESH_TOKEN", message: "missing or invalid refresh token" });
    expect(unknown.headers["content-type"]).toMatch(/^application\/json/);
    const rt = sim.addRefreshToken();
    const ok = await create(rt);
    expect(sim.revokeRefreshToken(rt)).toBe(true);
    const revoked = await expectApiError(create(rt), 400);
    expect(revoked.body.status).toBe("BAD_REFRESH_TOKEN");
    // access tokens already minted keep working until they expire (unless revoked with them)
    await hubspotClient(sim.url, ok.accessToken).crm.deals.basicApi.getPage(1);
    expect((await expectApiError(create("demo-refresh-token", "other-client"), 400)).body.status).toBe("BAD_CLIENT_ID");
    expect((await expectApiError(create("demo-refresh-token", "demo-client-id", "wrong"), 400)).body.status).toBe("BAD_CLIENT_SECRET");
  });

  it("serves token metadata and revokes refresh tokens through the v1 token APIs", async () => {
    const oauth = hubspotClient(sim.url, "unused");
    const rt = sim.addRefreshToken({ scopes: ["crm.objects.deals.read"] });
    const t = await oauth.oauth.tokensApi.create("refresh_token", undefined, undefined, "demo-client-id", "demo-client-secret", rt);
    const info = await oauth.oauth.accessTokensApi.get(t.accessToken);
    expect(info).toMatchObject({ hubId: 24681357, scopes: ["crm.objects.deals.read"], expiresIn: 1800 });
    expect((await oauth.oauth.refreshTokensApi.get(rt)).clientId).toBe("demo-client-id");
    await oauth.oauth.refreshTokensApi.archive(rt);
    expect(
      (await expectApiError(oauth.oauth.tokensApi.create("refresh_token", undefined, undefined, "demo-client-id", "demo-client-secret", rt), 400)).body.status,
    ).toBe("BAD_REFRESH_TOKEN");
    await expectApiError(hubspotClient(sim.url, t.accessToken).crm.deals.basicApi.getPage(1), 401); // uninstall-like: its access tokens go too
  });

  it("exchanges an authorization code once", async () => {
    const oauth = hubspotClient(sim.url, "unused");
    const redirect = "http://localhost:3000/oauth/callback";
    const t = await oauth.oauth.tokensApi.create("authorization_code", "demo-auth-code", redirect, "demo-client-id", "demo-client-secret");
    expect(t.refreshToken).toBeTruthy();
    const refreshed = await oauth.oauth.tokensApi.create("refresh_token", undefined, undefined, "demo-client-id", "demo-client-secret", t.refreshToken);
    await hubspotClient(sim.url, refreshed.accessToken).crm.contacts.basicApi.getPage(1);
    const reused = await expectApiError(
      oauth.oauth.tokensApi.create("authorization_code", "demo-auth-code", redirect, "demo-client-id", "demo-client-secret"),
      400,
    );
    expect(reused.body.status).toBe("BAD_AUTH_CODE");
  });

  it("rejects a form without the form content type, and missing / unknown / expired bearer tokens with 401", async () => {
    const json = await fetch(`${sim.url}/oauth/v1/token`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ grant_type: "refresh_token" }),
    });
    expect(json.status).toBe(415);
    const none = await fetch(`${sim.url}/crm/v3/objects/deals`);
    expect(none.status).toBe(401);
    expect(none.headers.get("content-type")).toMatch(/^application\/json/);
    expect((await none.json()).category).toBe("INVALID_AUTHENTICATION");
    const bad = await expectApiError(hubspotClient(sim.url, "made-up-token").crm.deals.basicApi.getPage(), 401);
    expect(bad.body.category).toBe("INVALID_AUTHENTICATION");
    const token = sim.issueAccessToken();
    await hubspotClient(sim.url, token).crm.deals.basicApi.getPage();
    expect(sim.expireAccessTokens(token)).toBe(1);
    const exp = await expectApiError(hubspotClient(sim.url, token).crm.deals.basicApi.getPage(), 401);
    expect(exp.body.category).toBe("EXPIRED_AUTHENTICATION");
    const info = await fetch(`${sim.url}/oauth/v1/refresh-tokens/demo-refresh-token`);
    expect(await info.json()).toMatchObject({ client_id: "demo-client-id", hub_id: 24681357, token_type: "refresh" });
  });

  it("answers 403 MISSING_SCOPES when a scope is not granted", async () => {
    const contactsOnly = hubspotClient(sim.url, sim.issueAccessToken({ scopes: ["crm.objects.contacts.read"] }));
    await contactsOnly.crm.contacts.basicApi.getPage(1);
    await contactsOnly.crm.objects.meetings.basicApi.getPage(1); // engagements need the contacts scope
    const e = await expectApiError(contactsOnly.crm.deals.basicApi.getPage(1), 403);
    expect(e.body).toMatchObject({ status: "error", category: "MISSING_SCOPES" });
    expect(JSON.stringify(e.body.errors)).toContain("crm.objects.deals.read");
    await expectApiError(contactsOnly.crm.deals.searchApi.doSearch({}), 403);
    await expectApiError(contactsOnly.crm.properties.coreApi.getAll("deals"), 403);
    await expectApiError(contactsOnly.crm.objects.basicApi.getPage("2-9876543"), 403);
    await expectApiError(contactsOnly.crm.associations.v4.batchApi.getPage("contacts", "deals", { inputs: [{ id: "3001" }] }), 403);
    await contactsOnly.crm.properties.coreApi.getAll("contacts");

    // a portal that did not grant the optional owners scope to the app
    const data = demoData();
    data.portal!.grantedScopes = (data.portal!.grantedScopes ?? []).filter((s) => s !== "crm.objects.owners.read");
    const noOwners = await startHubSpotSimulator({ data, clock: clock.now, validateResponses: true });
    try {
      const t = await hubspotClient(noOwners.url, "unused").oauth.tokensApi.create(
        "refresh_token",
        undefined,
        undefined,
        "demo-client-id",
        "demo-client-secret",
        "demo-refresh-token",
      );
      const c = hubspotClient(noOwners.url, t.accessToken);
      await c.crm.deals.basicApi.getPage(1);
      const owners = await expectApiError(c.crm.owners.ownersApi.getPage(), 403);
      expect(owners.body.category).toBe("MISSING_SCOPES");
    } finally {
      await noOwners.close();
    }
  });
});

describe("rate limits", () => {
  let sim: HubSpotSimulator;
  beforeAll(async () => {
    sim = await startHubSpotSimulator({ data: TINY_PORTAL_PATH, clock: clock.now, validateResponses: true });
  });
  afterEach(() => {
    sim.resetRateLimits();
    clock.advance(60_000);
  });
  afterAll(async () => {
    expect(sim.responseValidationFailures()).toEqual([]);
    await sim.close();
  });

  it("TEN_SECONDLY_ROLLING: 429 with HubSpot's body and headers, then recovers after the window", async () => {
    const c = hubspotClient(sim.url, "tiny-private-app");
    for (let i = 0; i < 10; i++) {
      const r = await c.crm.deals.basicApi.getPageWithHttpInfo(1);
      expect(r.httpStatusCode).toBe(200);
      expect(r.headers["x-hubspot-ratelimit-max"]).toBe("10");
      expect(r.headers["x-hubspot-ratelimit-remaining"]).toBe(String(9 - i));
      expect(r.headers["x-hubspot-ratelimit-interval-milliseconds"]).toBe("10000");
      expect(r.headers["x-hubspot-ratelimit-daily"]).toBe("1000");
      expect(r.headers["x-hubspot-ratelimit-daily-remaining"]).toBe(String(999 - i));
      expect(r.headers["x-hubspot-ratelimit-secondly"]).toBe("1");
      clock.advance(500);
    }
    const e = await expectApiError(c.crm.deals.basicApi.getPage(1), 429);
    expect(e.body).toMatchObject({
      status: "error",
      message: "You have reached your ten_secondly_rolling limit.",
      errorType: "RATE_LIMIT",
      policyName: "TEN_SECONDLY_ROLLING",
    });
    expect(e.body.correlationId).toMatch(UUID_RE);
    expect(e.headers["content-type"]).toMatch(/^application\/json/);
    expect(e.headers["x-hubspot-ratelimit-remaining"]).toBe("0");
    expect(e.headers["x-hubspot-ratelimit-max"]).toBe("10");
    expect(e.headers["retry-after"]).toBe("5"); // the oldest call leaves the window in 5 s
    // searches are exempt from the ten-secondly budget (x-hubspot-rate-limit-exemptions)
    await c.crm.deals.searchApi.doSearch({});
    // the window is rolling: 5 s later the first call has left it, and only that one
    clock.advance(5_000);
    await c.crm.deals.basicApi.getPage(1);
    await expectApiError(c.crm.deals.basicApi.getPage(1), 429);
    clock.advance(10_000);
    await c.crm.deals.basicApi.getPage(1);
  });

  it("OAuth calls carry no daily headers; budgets are per app", async () => {
    const oauthClient = hubspotClient(sim.url, "tiny-oauth");
    const r = await oauthClient.crm.deals.basicApi.getPageWithHttpInfo(1);
    expect(r.headers["x-hubspot-ratelimit-max"]).toBe("10");
    expect(r.headers["x-hubspot-ratelimit-daily"]).toBeUndefined();
    expect(r.headers["x-hubspot-ratelimit-daily-remaining"]).toBeUndefined();
    for (let i = 0; i < 9; i++) await oauthClient.crm.deals.basicApi.getPage(1);
    await expectApiError(oauthClient.crm.deals.basicApi.getPage(1), 429);
    await hubspotClient(sim.url, "tiny-private-app").crm.deals.basicApi.getPage(1); // another app's budget
  });

  it("SECONDLY: the sixth search within a second is refused with the secondly body", async () => {
    const c = hubspotClient(sim.url, "tiny-private-app");
    for (let i = 0; i < 5; i++) {
      const r = await c.crm.deals.searchApi.doSearchWithHttpInfo({ limit: 1 });
      expect(r.httpStatusCode).toBe(200);
      clock.advance(100);
    }
    const e = await expectApiError(c.crm.deals.searchApi.doSearch({ limit: 1 }), 429);
    expect(e.body).toMatchObject({ status: "error", message: "You have reached your secondly limit.", errorType: "RATE_LIMIT", policyName: "SECONDLY" });
    expect(e.headers["retry-after"]).toBe("1");
    expect(e.headers["content-type"]).toMatch(/^application\/json/);
    // other endpoints are not affected by the search limit
    await c.crm.deals.basicApi.getPage(1);
    clock.advance(600);
    await c.crm.deals.searchApi.doSearch({ limit: 1 });
  });

  it("specExemptions=false makes searches consume the ten-secondly budget too", async () => {
    const data = demoData();
    data.portal!.rateLimits = { tenSecondly: 3, searchPerSecond: 100, specExemptions: false };
    const strict = await startHubSpotSimulator({ data, clock: clock.now, validateResponses: true });
    try {
      const c = hubspotClient(strict.url, "demo-private-app-token");
      for (let i = 0; i < 3; i++) await c.crm.deals.searchApi.doSearch({});
      const e = await expectApiError(c.crm.deals.basicApi.getPage(1), 429);
      expect(e.body.policyName).toBe("TEN_SECONDLY_ROLLING");
    } finally {
      await strict.close();
    }
  });

  it("DAILY: once the day's budget is spent every call is refused until midnight (account time zone)", async () => {
    const data = demoData();
    data.portal!.rateLimits = { tenSecondly: 100, daily: 3 };
    data.portal!.timeZone = "UTC";
    const daily = await startHubSpotSimulator({ data, clock: clock.now, validateResponses: true });
    try {
      clock.set(Date.parse("2024-07-01T23:59:00.000Z"));
      const c = hubspotClient(daily.url, "demo-private-app-token");
      for (let i = 0; i < 3; i++) await c.crm.deals.basicApi.getPage(1);
      const e = await expectApiError(c.crm.deals.basicApi.getPage(1), 429);
      expect(e.body).toMatchObject({ message: "You have reached your daily limit.", policyName: "DAILY", errorType: "RATE_LIMIT" });
      expect(e.headers["x-hubspot-ratelimit-daily-remaining"]).toBe("0");
      expect(e.headers["retry-after"]).toBe("60");
      await expectApiError(c.crm.deals.searchApi.doSearch({}), 429);
      clock.advance(60_000);
      await c.crm.deals.basicApi.getPage(1);
    } finally {
      await daily.close();
    }
  });
});

describe("simulator controls", () => {
  let sim: HubSpotSimulator;
  beforeAll(async () => {
    sim = await startHubSpotSimulator({ data: TINY_PORTAL_PATH, clock: clock.now, validateResponses: true });
  });
  afterEach(() => {
    sim.resetRateLimits();
    sim.clearFaults();
  });
  afterAll(async () => {
    expect(sim.responseValidationFailures()).toEqual([]);
    await sim.close();
  });

  it("counts requests per endpoint, not counting /__simulator nor against rate limits", async () => {
    sim.resetCounters();
    const c = hubspotClient(sim.url, "tiny-private-app");
    await c.crm.deals.basicApi.getPage(2);
    await c.crm.deals.basicApi.getPage(2);
    await c.crm.deals.searchApi.doSearch({});
    await c.crm.owners.ownersApi.getPage();
    for (let i = 0; i < 20; i++) await fetch(`${sim.url}/__simulator/counters`);
    const counters = await (await fetch(`${sim.url}/__simulator/counters`)).json();
    expect(counters).toEqual({ "GET /crm/v3/objects/deals": 2, "GET /crm/v3/owners": 1, "POST /crm/v3/objects/deals/search": 1 });
    expect(sim.counters()).toEqual(counters);
    expect(sim.rateLimitUsage().daily).toBe(4);
    const reset = await fetch(`${sim.url}/__simulator/reset-counters`, { method: "POST" });
    expect(reset.status).toBe(200);
    expect(sim.counters()).toEqual({});
  });

  it("injects 5xx, 429, delays and broken bodies for the next N calls to a path", async () => {
    const c = hubspotClient(sim.url, "tiny-private-app");
    const post = await fetch(`${sim.url}/__simulator/faults`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ path: "/crm/v3/objects/deals", status: 503, count: 2 }),
    });
    expect(post.status).toBe(200);
    for (let i = 0; i < 2; i++) {
      const e = await expectApiError(c.crm.deals.basicApi.getPage(1), 503);
      expect(e.headers["content-type"]).toMatch(/^application\/json/);
    }
    await c.crm.deals.basicApi.getPage(1);

    sim.injectFault({ path: "/crm/v3/objects/deals/search", status: 429, policy: "SECONDLY" });
    const throttled = await expectApiError(c.crm.deals.searchApi.doSearch({}), 429);
    expect(throttled.body).toMatchObject({ message: "You have reached your secondly limit.", policyName: "SECONDLY" });

    sim.injectFault({ path: "/crm/v3/objects/*", method: "GET", body: "truncated" });
    await expect(c.crm.deals.basicApi.getPage(1)).rejects.toThrow(SyntaxError);
    sim.injectFault({ path: "/crm/v3/objects/deals", body: "malformed" });
    await expect(c.crm.deals.basicApi.getPage(1)).rejects.toThrow(SyntaxError);
    sim.injectFault({ path: "/crm/v3/objects/deals", body: "no-content-type" });
    await expect(c.crm.deals.basicApi.getPage(1)).rejects.toThrow("Cannot parse content. No Content-Type defined.");

    sim.injectFault({ path: "/crm/v3/objects/deals", delayMs: 150 });
    const started = Date.now();
    expect((await c.crm.deals.basicApi.getPage(1)).results).toHaveLength(1);
    expect(Date.now() - started).toBeGreaterThanOrEqual(140);
    expect(await (await fetch(`${sim.url}/__simulator/faults`)).json()).toEqual([]);
  });

  it("exposes clock, token and record controls over HTTP for out-of-process use", async () => {
    const token = await (
      await fetch(`${sim.url}/__simulator/tokens`, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ scopes: ["crm.objects.deals.read"] }),
      })
    ).json();
    expect(token).toMatchObject({ expires_in: 1800, kind: "oauth" });
    const c = hubspotClient(sim.url, token.access_token);
    const created = await (
      await fetch(`${sim.url}/__simulator/records/deals`, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ id: "99", properties: { dealname: "via http", amount: "1.23456789" } }),
      })
    ).json();
    expect(created).toMatchObject({ id: "99", properties: { dealname: "via http", amount: "1.23456789", hs_object_id: "99" } });
    expect((await c.crm.deals.basicApi.getById("99", ["amount"])).properties.amount).toBe("1.23456789");
    const before = sim.now();
    await fetch(`${sim.url}/__simulator/clock/advance`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ ms: 1_800_000 }),
    });
    expect(sim.now() - before).toBe(1_800_000);
    await expectApiError(c.crm.deals.basicApi.getPage(1), 401);
    await fetch(`${sim.url}/__simulator/records/deals/99/archive`, { method: "POST" });
    const archived = await hubspotClient(sim.url, "tiny-private-app").crm.deals.basicApi.getPage(100, undefined, undefined, undefined, undefined, true);
    expect(archived.results.map((r) => r.id)).toEqual(["99"]);
  });
});

describe("CLI entry point (runHubSpotSimulator)", () => {
  it("prints the URL, serves the data file and stops on abort", async () => {
    const out = vi.spyOn(process.stdout, "write").mockImplementation(() => true);
    const err = vi.spyOn(process.stderr, "write").mockImplementation(() => true);
    try {
      const ac = new AbortController();
      let url = "";
      const running = runHubSpotSimulator({
        port: 0,
        data: DEMO_DATA_PATH,
        signal: ac.signal,
        onListening: (u) => {
          url = u;
        },
      });
      await vi.waitFor(() => expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/));
      expect(out.mock.calls.map((c) => String(c[0]))).toContain(`${url}\n`);
      const page = await hubspotClient(url, "demo-private-app-token").crm.companies.basicApi.getPage(10);
      expect(page.results.map((r) => r.id)).toEqual(["2001", "2002", "2003"]);
      ac.abort();
      await running;
      await expect(fetch(`${url}/crm/v3/objects/deals`)).rejects.toThrow();
      const generated = new AbortController();
      let genUrl = "";
      const gen = runHubSpotSimulator({
        port: 0,
        data: "generate:deals=120,companies=3,seed=7",
        signal: generated.signal,
        onListening: (u) => {
          genUrl = u;
        },
      });
      await vi.waitFor(() => expect(genUrl).not.toBe(""));
      const token = await (await fetch(`${genUrl}/__simulator/tokens`, { method: "POST" })).json();
      expect((await hubspotClient(genUrl, token.access_token).crm.deals.getAll(100)).length).toBe(120);
      generated.abort();
      await gen;
    } finally {
      out.mockRestore();
      err.mockRestore();
    }
  });
});
