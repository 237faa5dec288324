/**
 * The connector catalog of a running pipeline: the YAML file's connectors and those given through
 * the API (stored in the connectors topic), bound to the listed sources' schemas (app/config.ts).
 */
import type { Config } from "../lib/config.ts";
import { ConnectorCatalog } from "../lib/connector-catalog.ts";
import { ConnectorStore } from "../lib/connector-store.ts";
import { ensureTopics, type KafkaPort } from "../lib/kafka.ts";
import { parseTokenKey } from "../producers/oauth/token-store.ts";
import { connectorSchema, parseConnectorEntry } from "./config.ts";
import { ConfigError } from "../lib/errors.ts";
import { sinkSchemaOf } from "../lib/tenants.ts";

/** A tenant whose sink schema would be the sink's own (tenant `data` with qobra_<tenant> and qobra_data) would mix its tables with the file's. */
export function tenantSchemaProblem(config: Pick<Config, "sink">, tenant: string | undefined): string | null {
  if (tenant === undefined || sinkSchemaOf(config.sink, { tenant }) !== config.sink.schema) return null;
  return `tenant: ${JSON.stringify(tenant)} would write into ${config.sink.schema}, the sink's own schema (sink.tenantSchema gives it that name); choose another tenant id or change sink.tenantSchema`;
}

/** Reads the connectors topic to its end and follows it; the catalog merges it with the file's connectors. */
export async function openConnectorCatalog(config: Config, port: KafkaPort, env: NodeJS.ProcessEnv = process.env): Promise<ConnectorCatalog> {
  const raw = env.QOBRA_SYNC_TOKEN_KEY;
  const store = new ConnectorStore({
    port,
    connectorSchema,
    parseConnector: (entry, where) => {
      const c = parseConnectorEntry(entry, where);
      const problem = tenantSchemaProblem(config, c.tenant);
      if (problem) throw new ConfigError(problem);
      return c;
    },
    tokenKey: raw === undefined || raw.trim() === "" ? undefined : parseTokenKey(raw),
    prepare: (c) => ensureTopics(port, { ...config, connectors: [c] }),
  });
  await store.start();
  return new ConnectorCatalog(config.connectors, store);
}
