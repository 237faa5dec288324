/**
 * `npm run chaos`, tokens part (run as its own process by chaos/main.ts, which captures everything
 * it prints, logs included, at trace level):
 *
 *  - Salesforce (SalesforceClient against the simulator, through jsforce): once connected, every
 *    access token is expired server-side, then 50 calls go out at once: exactly one refresh-token
 *    grant must reach the token endpoint, and all 50 calls must succeed.
 *  - HubSpot (HubSpotApi against the simulator): the same with the access token expired
 *    server-side (the 50 calls meet 401s), and again with the token reaching its expiry on the
 *    client's own clock (the 50 calls renew it before sending).
 *
 * Writes the secrets it used (refresh tokens, client secrets, access tokens) to SECRETS_FILE, so
 * that the parent can look for them in the captured output; prints one JSON line of results last.
 *
 * Usage: node chaos/tokens.ts SECRETS_FILE
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseConfig } from "../app/config.ts";
import type { SalesforceConnector } from "../producers/connectors/salesforce/config.ts";
import { SalesforceClient } from "../producers/connectors/salesforce/client.ts";
import { HubSpotApi } from "../producers/connectors/hubspot/api.ts";
import { realClock, type HubSpotClock } from "../producers/connectors/hubspot/limits.ts";
import { TokenStore } from "../producers/oauth/token-store.ts";
import { startSalesforceSimulator } from "../simulators/salesforce/server.ts";
import { generateSalesforceData } from "../simulators/salesforce/generate.ts";
import { startHubSpotSimulator } from "../simulators/hubspot/server.ts";
import { generateHubSpotData } from "../simulators/hubspot/generate.ts";
import { stackDefaults } from "../stack/stack.ts";
import { newTokenKey } from "../support/env.ts";

const secretsFile = process.argv[2];
if (!secretsFile) throw new Error("usage: node chaos/tokens.ts SECRETS_FILE");
const CONCURRENT = 50;
const secrets = new Set<string>();
const results: Record<string, { refreshes: number; ok: number; failed: number; errors: string[] }> = {};
const tokenDir = mkdtempSync(join(tmpdir(), "qobra-chaos-tokens-"));

async function burst(name: string, call: () => Promise<unknown>, refreshCount: () => number): Promise<void> {
  const before = refreshCount();
  const settled = await Promise.allSettled(Array.from({ length: CONCURRENT }, () => call()));
  const failed = settled.filter((s) => s.status === "rejected") as PromiseRejectedResult[];
  results[name] = {
    refreshes: refreshCount() - before,
    ok: settled.length - failed.length,
    failed: failed.length,
    errors: [...new Set(failed.map((f) => String((f.reason as Error)?.message ?? f.reason)))].slice(0, 3),
  };
}

// ---- Salesforce
{
  const sim = await startSalesforceSimulator({
    data: generateSalesforceData({ opportunities: 20, accounts: 5, contacts: 5, leads: 2, tasks: 2, users: 2, commissions: 2, seed: 1 }),
    port: 0,
  });
  const t = sim.state.issueTokens();
  for (const s of [t.accessToken, t.refreshToken, t.clientSecret]) secrets.add(s);
  const config = parseConfig(
    `kafka: { brokers: ["127.0.0.1:9092"] }
schemaRegistry: { url: "http://127.0.0.1:8080/apis/ccompat/v7" }
sink: { databaseUrl: "${stackDefaults.postgresUrl}", defaultCurrency: EUR }
connectors:
  - id: sfchaos
    type: salesforce
    loginUrl: "${sim.url}"
    clientId: "${t.clientId}"
    clientSecret: "${t.clientSecret}"
    refreshToken: "${t.refreshToken}"
    tables: [{ name: opportunities, object: Opportunity }]
`,
    "chaos",
    {},
  );
  const client = new SalesforceClient(config.connectors[0] as SalesforceConnector, { tokenStore: new TokenStore({ dir: tokenDir, key: newTokenKey() }) });
  const conn = await client.connect();
  await client.request("GET", `${client.apiPath}/limits`); // the session works
  secrets.add(conn.accessToken!);
  const grants = () => sim.counters()["POST /services/oauth2/token"] ?? 0;
  sim.state.expireAllAccessTokens();
  await burst("salesforce: 50 calls after server-side expiry", () => client.request("GET", `${client.apiPath}/limits`), grants);
  secrets.add(conn.accessToken!);
  await sim.close();
}

// ---- HubSpot
for (const variant of ["server", "client"] as const) {
  const sim = await startHubSpotSimulator({ data: generateHubSpotData({ deals: 20, companies: 2, contacts: 2, owners: 2 }), port: 0 });
  const refresh = sim.addRefreshToken({ token: `chaos-refresh-${variant}-${Date.now()}` });
  secrets.add(refresh);
  secrets.add(sim.settings.oauth.clientSecret);
  let offset = 0;
  const clock: HubSpotClock = { now: () => realClock.now() + offset, sleep: (ms, signal) => realClock.sleep(ms, signal) };
  const api = new HubSpotApi({
    connectorId: `hschaos${variant}`,
    baseUrl: sim.url,
    clientId: sim.settings.oauth.clientId,
    clientSecret: sim.settings.oauth.clientSecret,
    refreshToken: refresh,
    rateLimits: { perTenSeconds: 100, searchPerSecond: 5 },
    tokenStore: async () => null,
    clock,
  });
  await api.listPage("deals", { archived: false, limit: 1 });
  const session = () => (api as unknown as { sessions: { session: { token: string } | null } }).sessions.session?.token;
  secrets.add(session()!);
  const grants = () => sim.counters()["POST /oauth/v1/token"] ?? 0;
  if (variant === "server") sim.expireAccessTokens();
  else {
    offset = 1800_000;
    sim.advanceClock(1800_000);
  } // the token's 30 minutes are over, on both clocks
  await burst(
    `hubspot: 50 calls after ${variant === "server" ? "server-side expiry (401)" : "expiry on the client's clock"}`,
    () => api.listPage("deals", { archived: false, limit: 1 }),
    grants,
  );
  secrets.add(session()!);
  await sim.close();
}

rmSync(tokenDir, { recursive: true, force: true });
writeFileSync(secretsFile, JSON.stringify([...secrets].filter(Boolean)));
console.log(JSON.stringify({ concurrent: CONCURRENT, results }));
process.exit(0);
