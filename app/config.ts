/**
 * The configuration file, bound to the listed sources: lib/config.ts knows the core of the file
 * and how to parse it, the source plugins (producers/connectors/registry.ts) know their connector
 * schemas; this is where the two meet. The CLI, the tests and the tools (bench, chaos) read config
 * files through here, and get connectors typed by their source.
 */
import { configParser, findConnector as findIn, type Config as CoreConfig } from "../lib/config.ts";
import { sourcePlugins, type ConnectorConfig } from "../producers/connectors/registry.ts";

export type { ConnectorConfig } from "../producers/connectors/registry.ts";
export type { TableConfig } from "../lib/config.ts";

/** A parsed config whose connectors are typed by their source. */
export type Config = CoreConfig<ConnectorConfig>;

const parser = configParser(sourcePlugins);

/** The config file's schema (every listed source's connectors). */
export const configSchema = parser.schema;

/** One connector entry's schema (the plugins' connector schemas; `tenant` allowed). */
export const connectorSchema = parser.connectorSchema;

/** Validates a connector entry given through the API, for that tenant and id (ConfigError naming each bad field). */
export function parseConnectorEntry(entry: unknown, where: { tenant: string; id: string }): ConnectorConfig {
  return parser.parseConnector(entry, where) as ConnectorConfig;
}

/** Parses and validates a configuration document. Throws ConfigError listing every problem. */
export function parseConfig(text: string, source = "config", env: NodeJS.ProcessEnv = process.env): Config {
  // Each connector was validated by its own plugin's schema, so it has that plugin's type.
  return parser.parse(text, source, env) as Config;
}

/** Reads the config file named by --config, QOBRA_SYNC_CONFIG, or ./qobra-sync.yaml. */
export function loadConfig(file?: string, env: NodeJS.ProcessEnv = process.env): { config: Config; file: string } {
  const r = parser.load(file, env);
  return { config: r.config as Config, file: r.file };
}

/** The connector of that id; a ConfigError lists the known ids otherwise. */
export function findConnector(config: Config, id: string): ConnectorConfig {
  return findIn(config, id);
}
