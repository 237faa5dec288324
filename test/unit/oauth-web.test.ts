/**
 * The settings page's Authorize (ops/oauth-web.ts) without Kafka: the routes served by a bare HTTP
 * server, a stored connector in a stand-in store, and the HubSpot simulator as the provider (its
 * seeded authorization code stands for the browser's consent). Also the pending states' rules
 * (single use, 10 minutes, binding) and the Salesforce steps' PKCE (challenge in the URL, verifier
 * in the exchange).
 */
import { createHash } from "node:crypto";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Config } from "../../lib/config.ts";
import type { StoredConnector } from "../../lib/connector-store.ts";
import type { Runtime } from "../../lib/runtime.ts";
import { pluginFor } from "../../producers/connectors/registry.ts";
import { exchangeSalesforceCode, salesforceAuthorizeUrl } from "../../producers/connectors/salesforce/auth.ts";
import { SalesforceConnector } from "../../producers/connectors/salesforce/config.ts";
import { connectorForms } from "../../ops/connector-forms.ts";
import type { Caller } from "../../ops/http-gate.ts";
import { HttpError, parsePath } from "../../ops/http-security.ts";
import { PendingAuthorizations, oauthWebRoutes } from "../../ops/oauth-web.ts";
import { startHubSpotSimulator, type HubSpotSimulator } from "../../simulators/hubspot/server.ts";
import { demoData } from "../../support/hubspot.ts";

describe("pending authorizations", () => {
  const base = { tenant: "acme", id: "hs", updatedAt: "t", by: "token 2", via: "api" as const, redirectUri: "http://x/oauth/callback" };

  it("are used once, expire after 10 minutes, and are unknown by any other state", () => {
    let now = 1_000;
    const p = new PendingAuthorizations({ now: () => now });
    const a = PendingAuthorizations.newState();
    const b = PendingAuthorizations.newState();
    expect(Buffer.from(a, "base64url")).toHaveLength(32); // 256 bits
    expect(a).not.toBe(b);
    p.add(a, base);
    p.add(b, base);
    expect(p.take(a)).toMatchObject({ tenant: "acme", id: "hs", by: "token 2" });
    expect(p.take(a)).toBeUndefined(); // replayed
    expect(p.take("nope")).toBeUndefined();
    expect(p.take(null)).toBeUndefined();
    now += 10 * 60_000;
    expect(p.take(b)).toBeUndefined(); // expired
    expect(p.size).toBe(0);
  });

  it("keep at most 20 per caller, so that one caller's clicks do not push out another's", () => {
    const p = new PendingAuthorizations();
    const other = PendingAuthorizations.newState();
    p.add(other, { ...base, by: "token 3" });
    const mine = Array.from({ length: 25 }, () => PendingAuthorizations.newState());
    for (const s of mine) p.add(s, base);
    expect(p.size).toBe(21);
    expect(p.take(mine[4]!)).toBeUndefined(); // the caller's oldest went
    expect(p.take(mine[5]!)).toBeDefined();
    expect(p.take(other)).toMatchObject({ by: "token 3" });
  });
});

describe("Salesforce OAuth steps", () => {
  let server: Server;
  let seen: URLSearchParams | undefined;
  beforeAll(async () => {
    // A token endpoint that records what the exchange sends.
    server = createServer((req, res) => {
      let body = "";
      req.on("data", (c: Buffer) => (body += c.toString()));
      req.on("end", () => {
        seen = new URLSearchParams(body);
        res.writeHead(200, { "content-type": "application/json" });
        res.end(
          JSON.stringify({
            access_token: "at",
            refresh_token: "rt-1",
            instance_url: "https://x.example",
            id: "https://x.example/id/00Dorg/005user",
            scope: "api",
          }),
        );
      });
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  });
  afterAll(() => new Promise<void>((r) => server.close(() => r())));

  it("puts a PKCE challenge in the URL and sends its verifier with the code", async () => {
    const cfg = SalesforceConnector.parse({
      id: "sf",
      type: "salesforce",
      loginUrl: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
      clientId: "cid",
      clientSecret: "secret",
      tables: [{ name: "o", object: "Opportunity", fields: { Amount: "amount" } }],
    });
    const { url, verifier } = salesforceAuthorizeUrl(cfg, "https://sync.example/oauth/callback", "st");
    const u = new URL(url);
    expect(u.searchParams.get("state")).toBe("st");
    expect(u.searchParams.get("redirect_uri")).toBe("https://sync.example/oauth/callback");
    expect(u.searchParams.get("code_challenge")).toBe(createHash("sha256").update(verifier).digest("base64url"));
    const g = await exchangeSalesforceCode(cfg, "the-code", "https://sync.example/oauth/callback", verifier);
    expect(seen?.get("code_verifier")).toBe(verifier);
    expect(seen?.get("code")).toBe("the-code");
    expect(seen?.get("redirect_uri")).toBe("https://sync.example/oauth/callback");
    expect(g).toMatchObject({ refreshToken: "rt-1", orgId: "00Dorg", userId: "005user" });
    expect(g.summary).not.toContain("rt-1");
  });
});

describe("Authorize and the callback (HubSpot simulator)", () => {
  const REDIRECT = "http://127.0.0.1:7070/oauth/callback";
  let sim: HubSpotSimulator;
  let server: Server;
  let port: number;
  const stored = new Map<string, StoredConnector>();
  let version = 0;
  const puts: Array<{ key: string; entry: Record<string, unknown>; by?: string }> = [];
  const acme: Caller = { principal: { tenants: ["acme"], label: "token 2" }, session: null, key: "token-key" };
  const globex: Caller = { principal: { tenants: ["globex"], label: "token 3" }, session: null, key: "other" };

  const putConnector = (tenant: string, id: string, entry: Record<string, unknown>, by?: string): StoredConnector => {
    const { type } = entry as { type: string };
    const config = pluginFor(type).configSchema.parse({ ...entry, id }) as StoredConnector["config"];
    version += 1;
    const s: StoredConnector = { tenant, id, entry, config, updatedAt: new Date(1_700_000_000_000 + version).toISOString(), ...(by ? { updatedBy: by } : {}) };
    stored.set(`${tenant}/${id}`, s);
    return s;
  };

  beforeAll(async () => {
    const data = demoData();
    delete data.portal!.oauth!.redirectUri;
    data.portal!.oauth!.authorizationCodes = [{ code: "web-code", redirectUri: REDIRECT }];
    sim = await startHubSpotSimulator({ data });
    const entry = {
      type: "hubspot",
      baseUrl: sim.url,
      clientId: "demo-client-id",
      clientSecret: "demo-client-secret",
      tables: [{ name: "deals", object: "deals", fields: { dealname: "string" } }],
    };
    putConnector("acme", "hs", entry);
    putConnector("acme", "pg", {
      type: "postgres",
      connection: { host: "127.0.0.1", database: "d", user: "u" },
      tables: [{ name: "d", source: "public.d", idColumn: "id", nameColumn: "n" }],
    });
    const store = {
      get: (t: string, i: string) => stored.get(`${t}/${i}`),
      put: async (t: string, i: string, e: Record<string, unknown>, by?: string) => {
        puts.push({ key: `${t}/${i}`, entry: e, by });
        return putConnector(t, i, e, by);
      },
    };
    const rt = { catalog: { store, fromFile: () => false } } as unknown as Runtime;
    const routes = oauthWebRoutes({ config: { connectors: [] } as unknown as Config, rt, publicUrl: () => "http://127.0.0.1:7070" });
    server = createServer((req, res) => {
      const seg = parsePath(req.url);
      let params: string[] | null = null;
      const route = routes.find((r) => (params = r.match(seg)) !== null);
      const handler = route?.methods[req.method ?? "GET"];
      const caller = req.headers.authorization === "globex" ? globex : acme;
      if (!handler) return void res.writeHead(404).end();
      handler.run({ req, res, params: params ?? [], caller: handler.access === "public" ? null : caller }).catch((e: unknown) => {
        res.writeHead(e instanceof HttpError ? e.status : 500).end(String(e));
      });
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
    port = (server.address() as AddressInfo).port;
  });
  afterAll(async () => {
    await new Promise<void>((r) => (server ? server.close(() => r()) : r()));
    await sim?.close();
  });

  const at = (path: string, init: RequestInit = {}) => fetch(`http://127.0.0.1:${port}${path}`, init);
  const authorize = (id: string, who?: string) =>
    at(`/api/tenants/acme/connectors/${id}/authorize`, { method: "POST", headers: who ? { authorization: who } : {} });

  it("says which types have OAuth", () => {
    const oauth = Object.fromEntries(connectorForms().map((f) => [f.type, f.oauth]));
    expect(oauth).toEqual({ postgres: false, hubspot: true, salesforce: true });
  });

  it("answers the authorize URL, exchanges the code at the callback and stores the token in the entry", async () => {
    const r = await authorize("hs");
    expect(r.status).toBe(200);
    const u = new URL(((await r.json()) as { url: string }).url);
    expect(u.origin + u.pathname).toBe("https://app.hubspot.com/oauth/authorize");
    expect(u.searchParams.get("redirect_uri")).toBe(REDIRECT);
    expect(u.searchParams.get("client_id")).toBe("demo-client-id");
    const state = u.searchParams.get("state")!;
    expect(state.length).toBeGreaterThanOrEqual(43);

    const page = await at(`/oauth/callback?code=web-code&state=${encodeURIComponent(state)}`);
    const html = await page.text();
    expect(page.status, html).toBe(200);
    expect(html).toMatch(/Connector hs of tenant acme is authorized/);
    expect(html).not.toContain("web-code");
    expect(html).not.toMatch(/<script|<style|style=/);
    expect(puts).toHaveLength(1);
    expect(puts[0]).toMatchObject({ key: "acme/hs", by: "token 2" });
    const token = puts[0]!.entry.refreshToken as string;
    expect(token).toMatch(/.+/);
    expect(html).not.toContain(token);

    // replayed: refused, nothing stored again
    const again = await at(`/oauth/callback?code=web-code&state=${encodeURIComponent(state)}`);
    expect(again.status).toBe(400);
    expect(await again.text()).toMatch(/unknown, expired .* or already used/);
    expect((await at("/oauth/callback?code=x&state=made-up")).status).toBe(400);
    expect((await at("/oauth/callback?code=x")).status).toBe(400);
    expect(puts).toHaveLength(1);
  });

  it("shows a provider's error escaped, and refuses a refused code, a changed connector, other tenants and sources without OAuth", async () => {
    const stateOf = async () => new URL(((await (await authorize("hs")).json()) as { url: string }).url).searchParams.get("state")!;
    const denied = await at(
      `/oauth/callback?state=${encodeURIComponent(await stateOf())}&error=access_denied&error_description=${encodeURIComponent("<script>x</script>")}`,
    );
    const deniedHtml = await denied.text();
    expect(denied.status).toBe(400);
    expect(deniedHtml).toContain("access_denied (&lt;script&gt;x&lt;/script&gt;)");
    expect(deniedHtml).not.toContain("<script>");

    const used = await at(`/oauth/callback?code=web-code&state=${encodeURIComponent(await stateOf())}`); // the code was used above
    expect(used.status).toBe(400);
    expect(await used.text()).toMatch(/HubSpot refused the authorization code/);

    const s = await stateOf();
    putConnector("acme", "hs", stored.get("acme/hs")!.entry); // changed meanwhile
    expect((await at(`/oauth/callback?code=web-code&state=${encodeURIComponent(s)}`)).status).toBe(409);

    expect((await authorize("hs", "globex")).status).toBe(404);
    expect((await authorize("pg")).status).toBe(400);
    expect((await authorize("nope")).status).toBe(404);
    expect(puts).toHaveLength(1);
  });
});
