/**
 * The connector catalog of a running pipeline: the YAML file's connectors and those given through
 * the API (stored in the connectors topic), bound to the listed sources' schemas (app/config.ts).
 */
import type { Config } from "../lib/config.ts";
import { ConnectorCatalog } from "../lib/connector-catalog.ts";
import { ConnectorStore } from "../lib/connector-store.ts";
import type { KafkaPort } from "../lib/kafka.ts";
import { parseTokenKey } from "../producers/oauth/token-store.ts";
import { connectorSchema, parseConnectorEntry } from "./config.ts";

/** Reads the connectors topic to its end and follows it; the catalog merges it with the file's connectors. */
export async function openConnectorCatalog(config: Config, port: KafkaPort, env: NodeJS.ProcessEnv = process.env): Promise<ConnectorCatalog> {
  const raw = env.QOBRA_SYNC_TOKEN_KEY;
  const store = new ConnectorStore({
    port,
    connectorSchema,
    parseConnector: parseConnectorEntry,
    tokenKey: raw === undefined || raw.trim() === "" ? undefined : parseTokenKey(raw),
  });
  await store.start();
  return new ConnectorCatalog(config.connectors, store);
}
