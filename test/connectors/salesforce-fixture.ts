/**
 * A Salesforce source against a fresh in-process simulator, for the connector tests: the simulator
 * issues the OAuth tokens, the connector gets one table and a scratch token store.
 */
import { randomBytes } from "node:crypto";
import { mkdtemp } from "node:fs/promises";
import { join } from "node:path";
import { SalesforceConnector } from "../../producers/connectors/salesforce/config.ts";
import { SalesforceSource } from "../../producers/connectors/salesforce/source.ts";
import { TokenStore } from "../../producers/oauth/token-store.ts";
import { startSalesforceSimulator, type SalesforceSimulator } from "../../simulators/salesforce/server.ts";
import type { SalesforceSimData } from "../../simulators/salesforce/types.ts";

export async function startSalesforceSource(
  data: SalesforceSimData,
  table: Record<string, unknown>,
  over: Record<string, unknown>,
  tokenDir: string,
): Promise<{ sim: SalesforceSimulator; src: SalesforceSource }> {
  const sim = await startSalesforceSimulator({ data, port: 0 });
  const t = sim.state.issueTokens();
  const config = SalesforceConnector.parse({
    id: "sf",
    type: "salesforce",
    loginUrl: sim.url,
    clientId: t.clientId,
    clientSecret: t.clientSecret,
    refreshToken: t.refreshToken,
    bulkPollIntervalMs: 50,
    tables: [table],
    ...over,
  });
  const store = new TokenStore({ dir: await mkdtemp(join(tokenDir, "t-")), key: randomBytes(32).toString("base64") });
  return { sim, src: new SalesforceSource(config, { tokenStore: store }) };
}
