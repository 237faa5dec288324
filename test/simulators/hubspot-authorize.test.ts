/**
 * HubSpot simulator: the install page (GET/POST /oauth/authorize, routes/authorize.ts) and the codes it issues,
 * exchanged through the real client (client.oauth.tokensApi.create): the consent form, the error page (no redirect)
 * for an unknown client_id, an unregistered redirect_uri or a missing scope, Deny (error=access_denied), single-use
 * codes bound to the app and the redirect URI that expire, and the same through the multi-portal router and its CLI.
 */
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runMultiPortalHubSpotSimulator, startMultiPortalHubSpotSimulator, type HubSpotPortalCredentials } from "../../simulators/hubspot/multi-portal.ts";
import { startHubSpotSimulator, type HubSpotSimulator } from "../../simulators/hubspot/server.ts";
import { DEMO_DATA_PATH, demoData, expectApiError, hubspotClient, testClock } from "../../support/hubspot.ts";

const REDIRECT = "https://sync.example.com/oauth/callback";
const clock = testClock();

/** The authorize URL as a connector builds it. */
function authorizeUrl(base: string, params: Record<string, string>): string {
  const u = new URL("/oauth/authorize", base);
  for (const [k, v] of Object.entries(params)) u.searchParams.set(k, v);
  return u.href;
}

/** The browser: loads the consent page, submits it with `action`; returns the answer (not followed). */
async function consent(url: string, action: "approve" | "deny", portal?: string): Promise<Response> {
  const page = await fetch(url);
  const html = await page.text();
  expect(page.status, html).toBe(200);
  const form = new URLSearchParams();
  for (const m of html.matchAll(/<input type="hidden" name="([^"]+)" value="([^"]*)">/g))
    form.set(
      m[1]!,
      m[2]!
        .replace(/&quot;/g, '"')
        .replace(/&lt;/g, "<")
        .replace(/&gt;/g, ">")
        .replace(/&#39;/g, "'")
        .replace(/&amp;/g, "&"),
    );
  form.set("portal", portal ?? /<option value="(\d+)"/.exec(html)![1]!);
  form.set("action", action);
  return fetch(new URL("/oauth/authorize", url), { method: "POST", body: form, redirect: "manual" });
}

function codeOf(r: Response): string {
  expect(r.status).toBe(302);
  const code = new URL(r.headers.get("location")!).searchParams.get("code");
  expect(code).toMatch(/^na1-/);
  return code!;
}

describe("the install page (one portal)", () => {
  let sim: HubSpotSimulator;
  const params = { client_id: "demo-client-id", redirect_uri: REDIRECT, scope: "oauth crm.objects.deals.read", state: "st&<1>" };
  beforeAll(async () => {
    const data = demoData();
    Object.assign(data.portal!.oauth!, { redirectUris: [REDIRECT], requiredScopes: ["oauth"], authorizationCodeTtlSeconds: 60 });
    data.portal!.oauth!.apps = [{ clientId: "other-app", clientSecret: "other-secret", redirectUris: [REDIRECT] }];
    sim = await startHubSpotSimulator({ data, clock: clock.now, validateResponses: true });
  });
  afterAll(async () => {
    expect(sim.responseValidationFailures()).toEqual([]);
    await sim.close();
  });

  const exchange = (code: string, redirectUri = REDIRECT, clientId = "demo-client-id", secret = "demo-client-secret") =>
    hubspotClient(sim.url, "unused").oauth.tokensApi.create("authorization_code", code, redirectUri, clientId, secret);

  it("shows a consent form: the account to install into, Connect app and Deny, the request's fields kept, no script", async () => {
    const r = await fetch(authorizeUrl(sim.url, { ...params, optional_scope: "e-commerce crm.objects.goals.read" }));
    const html = await r.text();
    expect(r.status).toBe(200);
    expect(r.headers.get("content-type")).toMatch(/^text\/html/);
    expect(html).toContain('<form method="POST" action="/oauth/authorize">');
    expect(html).toContain(`<option value="${sim.settings.portalId}" selected>`);
    expect(html).toContain('<button type="submit" name="action" value="approve">Connect app</button>');
    expect(html).toContain('<button type="submit" name="action" value="deny">Deny</button>');
    expect(html).toContain('<input type="hidden" name="state" value="st&amp;&lt;1&gt;">');
    expect(html).toContain('<input type="hidden" name="optional_scope" value="e-commerce crm.objects.goals.read">');
    expect(html).not.toMatch(/<script/i);
    expect(sim.counters()["GET /oauth/authorize"]).toBe(1);
  });

  it("answers an error page, never a redirect, for an unknown client_id, an unregistered redirect_uri or a missing scope", async () => {
    const cases: Array<[Record<string, string>, RegExp]> = [
      [{ ...params, client_id: "nobody" }, /does not belong to any app/],
      [{ ...params, redirect_uri: "https://evil.example.com/oauth/callback" }, /does not match any of the app&#39;s redirect URLs/],
      [{ ...params, redirect_uri: "javascript:alert(1)" }, /not an http\(s\) URL/],
      [{ ...params, scope: "" }, /has no scope/],
      [{ ...params, scope: "crm.objects.deals.read" }, /lacks scopes the app requires: oauth/],
    ];
    for (const [q, text] of cases) {
      const r = await fetch(authorizeUrl(sim.url, q), { redirect: "manual" });
      const html = await r.text();
      expect(r.status, html).toBe(400);
      expect(r.headers.get("location")).toBeNull();
      expect(html).toMatch(text);
    }
    // The form's fields are checked again on POST: a tampered redirect_uri gets the error page too.
    const form = new URLSearchParams({ ...params, redirect_uri: "https://evil.example.com/cb", portal: String(sim.settings.portalId), action: "approve" });
    const posted = await fetch(`${sim.url}/oauth/authorize`, { method: "POST", body: form, redirect: "manual" });
    expect(posted.status).toBe(400);
    expect(posted.headers.get("location")).toBeNull();
  });

  it("Deny redirects with error=access_denied and the state", async () => {
    const r = await consent(authorizeUrl(sim.url, params), "deny");
    expect(r.status).toBe(302);
    const to = new URL(r.headers.get("location")!);
    expect(`${to.origin}${to.pathname}`).toBe(REDIRECT);
    expect(to.searchParams.get("error")).toBe("access_denied");
    expect(to.searchParams.get("error_description")).toMatch(/denied/);
    expect(to.searchParams.get("state")).toBe("st&<1>");
    expect(to.searchParams.get("code")).toBeNull();
  });

  it("Connect app issues a code for the portal, exchanged once for a refresh token and an access token with the asked scopes", async () => {
    const r = await consent(authorizeUrl(sim.url, { ...params, optional_scope: "e-commerce crm.objects.goals.read" }), "approve");
    expect(new URL(r.headers.get("location")!).searchParams.get("state")).toBe("st&<1>");
    const code = codeOf(r);
    // bound to the app and the redirect URI: neither another app nor another redirect_uri gets the tokens
    expect((await expectApiError(exchange(code, REDIRECT, "other-app", "other-secret"), 400)).body.status).toBe("BAD_AUTH_CODE");
    expect((await expectApiError(exchange(code, "https://sync.example.com/other"), 400)).body.status).toBe("BAD_REDIRECT_URI");
    const t = await exchange(code);
    expect(t.refreshToken).toMatch(/.+/);
    expect(t.expiresIn).toBe(1800);
    const oauth = hubspotClient(sim.url, "unused").oauth;
    const info = await oauth.accessTokensApi.get(t.accessToken);
    expect(info.hubId).toBe(sim.settings.portalId);
    // scope, plus the optional scopes the portal has (the demo portal has goals, not e-commerce)
    expect([...info.scopes].sort()).toEqual(["crm.objects.deals.read", "crm.objects.goals.read", "oauth"]);
    expect((await hubspotClient(sim.url, t.accessToken).crm.deals.basicApi.getPage(10)).results.length).toBeGreaterThan(0);
    const refreshed = await oauth.tokensApi.create("refresh_token", undefined, undefined, "demo-client-id", "demo-client-secret", t.refreshToken);
    expect(refreshed.refreshToken).toBe(t.refreshToken);
    // single use
    const reused = await expectApiError(exchange(code), 400);
    expect(reused.body).toMatchObject({ status: "BAD_AUTH_CODE" });
  });

  it("refuses a code after its lifetime (authorizationCodeTtlSeconds)", async () => {
    const late = codeOf(await consent(authorizeUrl(sim.url, params), "approve"));
    const inTime = codeOf(await consent(authorizeUrl(sim.url, params), "approve"));
    clock.advance(59_000);
    await exchange(inTime);
    clock.advance(1_000);
    expect((await expectApiError(exchange(late), 400)).body.status).toBe("BAD_AUTH_CODE");
  });

  it("refuses an account the app cannot be installed into, and a form without Connect app or Deny", async () => {
    const r = await consent(authorizeUrl(sim.url, params), "approve", "99999");
    expect(r.status).toBe(400);
    expect(r.headers.get("location")).toBeNull();
    const form = new URLSearchParams({ ...params, portal: String(sim.settings.portalId) });
    expect((await fetch(`${sim.url}/oauth/authorize`, { method: "POST", body: form, redirect: "manual" })).status).toBe(400);
  });
});

describe("the install page of a multi-portal simulator", () => {
  it("routes by client_id: the page offers the app's portal, whose code gives that portal's tokens; unknown apps get the error page", async () => {
    const sim = await startMultiPortalHubSpotSimulator({ portals: 2, data: DEMO_DATA_PATH, redirectUris: [REDIRECT] });
    try {
      const c = sim.credentials[1]!;
      expect(c.authorizeUrl).toBe(`${sim.url}/oauth/authorize`);
      expect(c.redirectUris).toEqual([REDIRECT]);
      const url = authorizeUrl(sim.url, { client_id: c.clientId, redirect_uri: REDIRECT, scope: "oauth crm.objects.deals.read", state: "s1" });
      const page = await (await fetch(url)).text();
      expect(page).toContain(`<option value="${c.portalId}" selected>`);
      const code = codeOf(await consent(url, "approve"));
      const t = await hubspotClient(sim.url, "unused").oauth.tokensApi.create("authorization_code", code, REDIRECT, c.clientId, c.clientSecret);
      expect((await hubspotClient(sim.url, "unused").oauth.accessTokensApi.get(t.accessToken)).hubId).toBe(c.portalId);
      // another portal's app cannot use the code; an unregistered redirect or an unknown app: the error page
      const other = sim.credentials[0]!;
      const code2 = codeOf(await consent(url, "approve"));
      await expectApiError(
        hubspotClient(sim.url, "unused").oauth.tokensApi.create("authorization_code", code2, REDIRECT, other.clientId, other.clientSecret),
        400,
      );
      const bad = await fetch(url.replace(encodeURIComponent(REDIRECT), encodeURIComponent("https://evil.example.com/cb")), { redirect: "manual" });
      expect(bad.status).toBe(400);
      expect(bad.headers.get("location")).toBeNull();
      const unknown = await fetch(authorizeUrl(sim.url, { client_id: "nobody", redirect_uri: REDIRECT, scope: "oauth" }), { redirect: "manual" });
      expect(unknown.status).toBe(400);
      expect(await unknown.text()).toMatch(/does not belong to any app/);
      expect(sim.portal(1).counters()["POST /oauth/authorize"]).toBe(2);
    } finally {
      await sim.close();
    }
  });

  it("the CLI entry writes each portal's install page and redirect URIs to the credentials file", async () => {
    const dir = mkdtempSync(join(tmpdir(), "hs-authorize-"));
    const file = join(dir, "credentials.json");
    const stop = new AbortController();
    const running = runMultiPortalHubSpotSimulator({
      port: 0,
      portals: 2,
      data: DEMO_DATA_PATH,
      credentials: file,
      redirectUris: [REDIRECT],
      signal: stop.signal,
    });
    try {
      let text = "";
      for (let i = 0; i < 200 && !text; i++) {
        try {
          text = readFileSync(file, "utf8");
        } catch {
          await new Promise((r) => setTimeout(r, 25));
        }
      }
      const creds = JSON.parse(text) as { url: string; portals: HubSpotPortalCredentials[] };
      for (const p of creds.portals) expect(p).toMatchObject({ authorizeUrl: `${creds.url}/oauth/authorize`, redirectUris: [REDIRECT] });
      const url = authorizeUrl(creds.url, { client_id: creds.portals[0]!.clientId, redirect_uri: REDIRECT, scope: "oauth", state: "x" });
      codeOf(await consent(url, "approve"));
    } finally {
      stop.abort();
      await running;
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
