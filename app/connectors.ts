/**
 * The connector catalog of a running pipeline: the YAML file's connectors and those given through
 * the API (stored in the connectors topic), bound to the listed sources' schemas (app/config.ts).
 */
import type { Config } from "../lib/config.ts";
import { ConnectorCatalog } from "../lib/connector-catalog.ts";
import { ConnectorStore } from "../lib/connector-store.ts";
import { ensureTopics, type KafkaPort } from "../lib/kafka.ts";
import { openRuntime } from "../lib/runtime.ts";
import { admitNetwork } from "../producers/connectors/registry.ts";
import { parseTokenKey } from "../producers/oauth/token-store.ts";
import { connectorSchema, findConnector, parseConnectorEntry, type Config as AppConfig, type ConnectorConfig } from "./config.ts";
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
      // A tenant's connector: its connections are checked against tenantNetwork (lib/egress.ts).
      return { ...c, egress: { allow: [...(config.tenantNetwork?.allow ?? [])] } };
    },
    admit: admitNetwork,
    tokenKey: raw === undefined || raw.trim() === "" ? undefined : parseTokenKey(raw),
    prepare: (c) => ensureTopics(port, { ...config, connectors: [c] }),
  });
  await store.start();
  return new ConnectorCatalog(config.connectors, store);
}

/**
 * A connector by its pipeline id, for the one-shot commands (`qobra-sync sync`, `check`, `replay`):
 * the YAML file's, else, for `<tenant>.<id>`, one given through the API, read from the connectors
 * topic to its end (through `port`, or a runtime of its own opened and closed here). A ConfigError
 * naming the connector and where it looked when there is none (an id without a dot: the file's
 * error, listing its ids), or why a stored one cannot be used.
 */
export async function lookupConnector(config: AppConfig, id: string, port?: KafkaPort): Promise<ConnectorConfig> {
  const inFile = config.connectors.find((c) => c.id === id);
  if (inFile) return inFile;
  if (!id.includes(".")) return findConnector(config, id);
  const rt = port ? undefined : await openRuntime(config, "cli");
  const kafka = port ?? rt!.port;
  try {
    const catalog = await openConnectorCatalog(config, kafka);
    try {
      // The store parsed the entry with the file's connector schema (parseConnectorEntry).
      const c = catalog.list().find((x) => x.id === id) as ConnectorConfig | undefined;
      if (c) return c;
      const problem = catalog.store?.problems().find((p) => p.key === id.replace(".", "/"));
      throw new ConfigError(
        problem
          ? `connector ${id} is stored but cannot be used: ${problem.problem}`
          : `no connector ${JSON.stringify(id)}: neither in the config file (${config.connectors.map((x) => x.id).join(", ") || "none"}) nor among the connectors given through the API (topic ${kafka.topics.connectors})`,
      );
    } finally {
      await catalog.store?.stop();
    }
  } finally {
    await rt?.close();
  }
}
