/**
 * The settings page's Authorize (ops/oauth-web.ts) against the whole pipeline run in-process
 * (runRoles) and the Salesforce and HubSpot simulators. Salesforce, first without a browser: a
 * Salesforce connector PUT for a tenant without a refresh token; POST …/authorize answers the
 * simulator's authorize URL (PKCE, redirect to this server's /oauth/callback); the consent form is
 * posted as a browser would; the callback stores the refresh token in the stored entry (shown
 * masked), and a sync then lands the rows. A replayed or unknown state is refused; another tenant's
 * token gets 404; a page session needs its CSRF token; then the page's Authorize button in headless
 * Chromium. HubSpot, end to end in Chromium: a HubSpot connector (portal 1 of a multi-portal
 * simulator whose app registers only this server's callback) PUT without a refresh token, the
 * page's Authorize opens the simulator's install page (appUrl), "Connect app" lands on the callback,
 * the entry then holds the token and a sync lands the portal's deals; Deny comes back as
 * access_denied and stores nothing. No code or token appears in an answer or the log.
 */
import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { type RunHandle, runRoles } from "../../app/roles.ts";
import type { Config } from "../../lib/config.ts";
import { logTo } from "../../lib/log.ts";
import { openRuntime, type Runtime } from "../../lib/runtime.ts";
import { sinkSchemaOf } from "../../lib/tenants.ts";
import { eventsPosition, waitForRun } from "../../lib/wait.ts";
import { type MultiPortalHubSpotSimulator, startMultiPortalHubSpotSimulator } from "../../simulators/hubspot/multi-portal.ts";
import { type SalesforceSimulator, startSalesforceSimulator } from "../../simulators/salesforce/server.ts";
import { ensureDatabase, pipelineHeaderYaml, testConfig, uniqueId, useScratchTokenStore, withDb } from "../../support/env.ts";
import { type RawAnswer, bearer, loginSession, rawRequest } from "../../support/http-client.ts";
import { ensureChromium, launchChromium } from "../../support/chromium.ts";
import { DEMO_DATA_PATH as HUBSPOT_DEMO, demoData } from "../../support/hubspot.ts";
import { eventually, freePort } from "../../support/ops.ts";

vi.hoisted(() => {
  process.env.QOBRA_SYNC_LOG_LEVEL = "info";
});

const DEMO = fileURLToPath(new URL("../../simulators/salesforce/demo-data.json", import.meta.url));
const SINK_DB = "qobra_it_sink";
const ACME = `acme-${randomBytes(20).toString("hex")}`;
const GLOBEX = `globex-${randomBytes(20).toString("hex")}`;
const ACME_SF = "/api/tenants/acme/connectors/sf";
const ACME_HS = "/api/tenants/acme/connectors/hs";

let sim: SalesforceSimulator;
/** Two portals; the tests install the app of portal 1, whose redirect URIs are this server's callback only. */
let hs: MultiPortalHubSpotSimulator;
let config: Config;
let rt: Runtime;
let pipeline: RunHandle;
let port: number;
let logDir: string;
let logFile: string;
let sinkSchema: string;
let tokens: ReturnType<typeof useScratchTokenStore> | undefined;
const answers: RawAnswer[] = [];
/** Every authorization code the simulator redirected with, and every state the server gave. */
const codes: string[] = [];
const states: string[] = [];

async function call(method: string, path: string, headers: Record<string, string>, body?: unknown): Promise<RawAnswer & { json: () => any }> {
  const r = await rawRequest(port, {
    method,
    path,
    headers: body === undefined ? headers : { "content-type": "application/json", ...headers },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  answers.push(r);
  return { ...r, json: () => JSON.parse(r.body) };
}

/**
 * The page in headless Chromium: logs in as acme, clicks the connector's Authorize, checks the provider's window
 * opened at `providerUrl`, clicks `consentButton` there and waits for the callback's page to say the connector is
 * authorized. Returns the callback URL the provider redirected to (its code and state are remembered).
 */
async function authorizeInChromium(id: string, providerUrl: string, consentButton: string): Promise<URL> {
  const missing = ensureChromium();
  expect(missing, "this test drives the page in Chromium").toBeNull();
  const browser = await launchChromium();
  try {
    const page = await browser.context.newPage();
    const errors: string[] = [];
    page.on("pageerror", (e) => errors.push(e.message));
    page.on("console", (m) => {
      if (m.type() === "error" && /Content Security Policy|Refused to/i.test(m.text())) errors.push(m.text());
    });
    await page.goto(`http://127.0.0.1:${port}/`);
    await page.locator("#login-token").fill(ACME);
    await page.locator('#login-form button[type="submit"]').click();
    const row = page.locator(`tr[data-tenant-connector="${id}"]`);
    await row.waitFor({ state: "visible", timeout: 20_000 });
    const opened = browser.context.waitForEvent("page", { timeout: 20_000 });
    await row.locator('button[data-editor="authorize"]').click();
    const provider = await opened;
    await provider.waitForLoadState();
    expect(provider.url()).toContain(providerUrl);
    await expect
      .poll(async () => (await page.locator('[data-testid="tenant-message"]').textContent()) ?? "")
      .toContain(`Authorize ${id} in the provider's window`);
    await provider.locator(consentButton).click();
    await provider.waitForURL(/\/oauth\/callback\?/, { timeout: 20_000 });
    const landed = new URL(provider.url());
    codes.push(landed.searchParams.get("code")!);
    states.push(landed.searchParams.get("state")!);
    await expect
      .poll(async () => (await provider.locator("body").textContent()) ?? "", { timeout: 20_000 })
      .toContain(`Connector ${id} of tenant acme is authorized`);
    expect(errors).toEqual([]);
    return landed;
  } finally {
    await browser.close();
  }
}

/** Asks a full sync of acme's connector `id` through the API, waits for it to complete and for `rows` rows in its sink table. */
async function syncAndCount(id: string, table: string, rows: number): Promise<void> {
  const from = await eventsPosition(rt.port);
  const sync = await call("POST", `/api/tenants/acme/connectors/${id}/sync`, bearer(ACME), { full: true });
  expect(sync.status, sync.body).toBe(202);
  const run = await waitForRun(rt.port, rt.codec, config.topicPrefix, sync.json().runId, from, {
    timeoutMs: 120_000,
    tables: [{ connector: `acme.${id}`, table }],
  });
  expect(run.type, run.error ?? "").toBe("RUN_COMPLETED");
  const schema = sinkSchemaOf(config.sink, { tenant: "acme" });
  await eventually(
    async () => Number((await withDb(SINK_DB, async (c) => (await c.query(`SELECT count(*) AS n FROM "${schema}"."${id}__${table}"`)).rows))[0]!.n) === rows,
    { timeoutMs: 90_000, what: `${rows} rows in ${schema}.${id}__${table}` },
  );
}

/** The browser at the simulator: the consent page, "Allow"; returns the redirect (to our callback). */
async function consent(authorizeUrl: string): Promise<URL> {
  const page = await (await fetch(authorizeUrl)).text();
  const form = new URLSearchParams();
  for (const m of page.matchAll(/<input type="hidden" name="([^"]+)" value="([^"]*)">/g)) form.set(m[1]!, m[2]!.replace(/&amp;/g, "&"));
  form.set("username", "grace.thompson1@qobra-sim.example.com");
  form.set("action", "allow");
  const r = await fetch(`${sim.url}/services/oauth2/authorize`, { method: "POST", body: form, redirect: "manual" });
  expect(r.status).toBe(302);
  const location = new URL(r.headers.get("location")!);
  const code = location.searchParams.get("code");
  if (code) codes.push(code);
  return location;
}

beforeAll(async () => {
  const id = uniqueId("oauthweb");
  sinkSchema = `sink_${id}`;
  // No token store holds a Salesforce token: the one the sync uses can only be the entry's.
  tokens = useScratchTokenStore("qobra-oauth-web-");
  logDir = mkdtempSync(join(tmpdir(), "qobra-oauth-web-log-"));
  logFile = join(logDir, "log.jsonl");
  logTo({ file: logFile });
  await ensureDatabase(SINK_DB);
  sim = await startSalesforceSimulator({ data: DEMO, port: 0 });
  port = await freePort();
  hs = await startMultiPortalHubSpotSimulator({ portals: 2, data: HUBSPOT_DEMO, redirectUris: [`http://127.0.0.1:${port}/oauth/callback`] });
  config = testConfig(
    `${pipelineHeaderYaml({ prefix: id, sinkDb: SINK_DB, sinkSchema })}  tenantSchema: ${sinkSchema}_<tenant>
http:
  port: ${port}
  host: 127.0.0.1
  tokens:
    - { token: "${ACME}", tenants: ["acme"] }
    - { token: "${GLOBEX}", tenants: ["globex"] }
# the simulators listen on this machine: open it to the tenants' connectors (refused by default)
tenantNetwork: { allow: ["127.0.0.1", "::1", "localhost"] }
`,
  );
  rt = await openRuntime(config, "test");
  pipeline = await runRoles(config, ["producer", "mapper", "sink", "scheduler"]);
}, 120_000);

afterAll(async () => {
  await pipeline?.stop();
  await rt?.close();
  await sim?.close();
  await hs?.close();
  logTo("stdout");
  if (logDir) rmSync(logDir, { recursive: true, force: true });
  tokens?.restore();
});

describe("Authorize from the settings page (Salesforce)", () => {
  it("stores the refresh token of the flow in the stored entry, and the connector then syncs", async () => {
    const t = sim.state.issueTokens();
    const put = await call("PUT", ACME_SF, bearer(ACME), {
      type: "salesforce",
      loginUrl: sim.url,
      clientId: t.clientId,
      clientSecret: t.clientSecret,
      schedule: { enabled: false },
      tables: [{ name: "opportunities", object: "Opportunity", fields: { Amount: "amount", StageName: "picklist" } }],
    });
    expect(put.status, put.body).toBe(201);
    expect(put.json().entry.refreshToken).toBeUndefined();

    // another tenant's token does not reach it; a page session's write needs its CSRF token
    expect((await call("POST", `${ACME_SF}/authorize`, bearer(GLOBEX))).status).toBe(404);
    const session = await loginSession(port, ACME);
    const page = { cookie: session.cookie, origin: `http://127.0.0.1:${port}` };
    expect((await call("POST", `${ACME_SF}/authorize`, page)).status).toBe(403);
    expect((await call("POST", `${ACME_SF}/authorize`, { ...page, "x-csrf-token": session.csrf })).status).toBe(200);

    const started = await call("POST", `${ACME_SF}/authorize`, bearer(ACME));
    expect(started.status, started.body).toBe(200);
    const url = new URL(started.json().url);
    expect(url.origin + url.pathname).toBe(`${sim.url}/services/oauth2/authorize`);
    expect(url.searchParams.get("redirect_uri")).toBe(`http://127.0.0.1:${port}/oauth/callback`);
    expect(url.searchParams.get("code_challenge")).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(url.searchParams.get("state")!.length).toBeGreaterThanOrEqual(43);
    states.push(url.searchParams.get("state")!);

    const redirect = await consent(url.href);
    expect(`${redirect.origin}${redirect.pathname}`).toBe(`http://127.0.0.1:${port}/oauth/callback`);
    const callbackPath = `${redirect.pathname}${redirect.search}`;
    const done = await call("GET", callbackPath, {});
    expect(done.status, done.body).toBe(200);
    expect(done.headers["content-type"]).toMatch(/^text\/html/);
    expect(done.headers["content-security-policy"]).toMatch(/script-src/);
    expect(done.body).toMatch(/Connector sf of tenant acme is authorized/);

    // single use: the same redirect again is refused, as is a state never given
    const replay = await call("GET", callbackPath, {});
    expect(replay.status).toBe(400);
    expect(replay.body).toMatch(/already used/);
    expect((await call("GET", `/oauth/callback?code=x&state=${randomBytes(32).toString("base64url")}`, {})).status).toBe(400);

    const view = await call("GET", ACME_SF, bearer(ACME));
    expect(view.json()).toMatchObject({ updatedBy: "token 1", entry: { refreshToken: "********" } });

    // The run reads with the entry's token (the scratch token store holds none).
    await syncAndCount("sf", "opportunities", 7);
  }, 240_000);

  it("shows the provider's refusal escaped, and uses up the state", async () => {
    const started = await call("POST", `${ACME_SF}/authorize`, bearer(ACME));
    const state = new URL(started.json().url).searchParams.get("state")!;
    states.push(state);
    const path = `/oauth/callback?state=${encodeURIComponent(state)}&error=access_denied&error_description=${encodeURIComponent('<img src=x onerror="alert(1)">')}`;
    const denied = await call("GET", path, {});
    expect(denied.status).toBe(400);
    expect(denied.body).toContain("access_denied (&lt;img src=x onerror=&quot;alert(1)&quot;&gt;)");
    expect(denied.body).not.toContain("<img");
    expect((await call("GET", path, {})).body).toMatch(/already used/);
  });

  it("the page's Authorize opens the provider, whose consent lands on the callback (headless Chromium)", async () => {
    await authorizeInChromium("sf", `${sim.url}/services/oauth2/authorize?`, 'button[value="allow"]');
  }, 120_000);

  it("shows no authorization code or refresh token in an answer or the log, and no state in the log", async () => {
    const refreshTokens = [...sim.state.oauth.refresh.keys()];
    expect(codes.length).toBeGreaterThan(0);
    expect(refreshTokens.length).toBeGreaterThan(0);
    const log = readFileSync(logFile, "utf8");
    expect(log).toMatch(/connector authorized through the settings page/);
    for (const secret of [...codes, ...refreshTokens]) {
      expect(log).not.toContain(secret);
      for (const a of answers) expect(a.body).not.toContain(secret);
    }
    for (const state of states) expect(log).not.toContain(state);
  });
});

describe("Authorize from the settings page (HubSpot)", () => {
  const portal = () => hs.credentials[1]!;

  it("installs the app through the simulator's install page in headless Chromium; the entry holds the token and the portal's deals sync", async () => {
    const c = portal();
    const put = await call("PUT", ACME_HS, bearer(ACME), {
      type: "hubspot",
      baseUrl: hs.url,
      appUrl: hs.url,
      clientId: c.clientId,
      clientSecret: c.clientSecret,
      schedule: { enabled: false },
      tables: [{ name: "deals", object: "deals", fields: { dealname: "string", amount: "amount", closedate: "date" } }],
    });
    expect(put.status, put.body).toBe(201);
    expect(put.json().entry.refreshToken).toBeUndefined();

    const started = await call("POST", `${ACME_HS}/authorize`, bearer(ACME));
    expect(started.status, started.body).toBe(200);
    const url = new URL(started.json().url);
    states.push(url.searchParams.get("state")!);
    expect(url.origin + url.pathname).toBe(c.authorizeUrl);
    expect(url.searchParams.get("client_id")).toBe(c.clientId);
    expect(url.searchParams.get("redirect_uri")).toBe(`http://127.0.0.1:${port}/oauth/callback`);
    expect(url.searchParams.get("scope")!.split(" ")).toContain("crm.objects.deals.read");

    const landed = await authorizeInChromium("hs", `${c.authorizeUrl}?`, 'button[value="approve"]');
    expect(landed.searchParams.get("code")).toMatch(/^na1-/);
    // installed into portal 1 (the page offered the app's portal), whose token endpoint exchanged the code
    expect(hs.portal(1).counters()).toMatchObject({ "GET /oauth/authorize": 1, "POST /oauth/authorize": 1, "POST /oauth/v1/token": 1 });

    const view = await call("GET", ACME_HS, bearer(ACME));
    expect(view.json()).toMatchObject({ updatedBy: "token 1", entry: { refreshToken: "********", appUrl: hs.url } });

    // The run refreshes the entry's token at portal 1 and reads its deals (the demo portal: 4 live ones).
    await syncAndCount("hs", "deals", 4);
    const schema = sinkSchemaOf(config.sink, { tenant: "acme" });
    const rows = await withDb(SINK_DB, async (c) => (await c.query(`SELECT * FROM "${schema}"."hs__deals"`)).rows);
    const values = new Set(rows.flatMap((r) => Object.values(r as Record<string, unknown>).map(String)));
    const live = (demoData().objects.deals?.records ?? []).filter((d) => !d.archived).map((d) => String(d.properties?.dealname));
    expect(live).toHaveLength(4);
    for (const name of live) expect(values.has(name), `deal ${name} in ${schema}.hs__deals`).toBe(true);
    expect(hs.portal(1).counters()["POST /oauth/v1/token"]).toBeGreaterThanOrEqual(2);
  }, 240_000);

  it("Deny on the install page comes back as access_denied, and nothing is stored", async () => {
    const before = (await call("GET", ACME_HS, bearer(ACME))).json().updatedAt;
    const started = await call("POST", `${ACME_HS}/authorize`, bearer(ACME));
    const url = started.json().url as string;
    states.push(new URL(url).searchParams.get("state")!);
    const page = await (await fetch(url)).text();
    const form = new URLSearchParams();
    for (const m of page.matchAll(/<input type="hidden" name="([^"]+)" value="([^"]*)">/g)) form.set(m[1]!, m[2]!.replace(/&amp;/g, "&"));
    form.set("portal", String(portal().portalId));
    form.set("action", "deny");
    const r = await fetch(`${hs.url}/oauth/authorize`, { method: "POST", body: form, redirect: "manual" });
    expect(r.status).toBe(302);
    const back = new URL(r.headers.get("location")!);
    expect(back.searchParams.get("error")).toBe("access_denied");
    const denied = await call("GET", `${back.pathname}${back.search}`, {});
    expect(denied.status).toBe(400);
    expect(denied.body).toMatch(/Access not granted/);
    expect(denied.body).toContain("access_denied");
    expect((await call("GET", ACME_HS, bearer(ACME))).json().updatedAt).toBe(before);
  });

  it("shows no HubSpot authorization code in an answer or the log", () => {
    const hubspotCodes = codes.filter((c) => c.startsWith("na1-"));
    expect(hubspotCodes.length).toBeGreaterThan(0);
    const log = readFileSync(logFile, "utf8");
    for (const code of hubspotCodes) {
      expect(log).not.toContain(code);
      for (const a of answers) expect(a.body).not.toContain(code);
    }
    for (const state of states) expect(log).not.toContain(state);
  });
});
