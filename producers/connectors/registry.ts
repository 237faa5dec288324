/**
 * The list of source plugins: the one place that names every source. Adding a source means a new
 * folder under producers/connectors/ and one line here (docs/adding-a-source.md). The config
 * file's schema (app/config.ts), the scheduler, the settings page and the CLI iterate this list;
 * the producer worker creates connectors through `createConnector`.
 */
import { ConfigError } from "../../lib/errors.ts";
import type { ConnectorBase } from "../../lib/config.ts";
import type { ConnectorContext, SourceConnector, SourcePlugin } from "../connector.ts";
import { hubspotPlugin } from "./hubspot/index.ts";
import { postgresPlugin } from "./postgres/index.ts";
import { salesforcePlugin } from "./salesforce/index.ts";

/** Every source, in the order they are listed to users. */
export const sourcePlugins = [postgresPlugin, hubspotPlugin, salesforcePlugin] as const;

/** A connector config of any listed source (the union of the plugins' config types). */
export type ConnectorConfig = ((typeof sourcePlugins)[number] extends infer P ? (P extends SourcePlugin<infer C, infer _S> ? C : never) : never) & {
  /** The tenant of the connector (lib/tenants.ts); not a source key: the config parser adds it. */
  tenant?: string;
};

/** The plugin of a connector type; a ConfigError names the known types otherwise. */
export function pluginFor(type: string): SourcePlugin {
  const plugin = (sourcePlugins as readonly SourcePlugin[]).find((p) => p.type === type);
  if (!plugin) throw new ConfigError(`unknown connector type ${JSON.stringify(type)}; this version supports ${sourcePlugins.map((p) => p.type).join(", ")}`);
  return plugin;
}

export function createConnector(config: ConnectorBase, ctx?: ConnectorContext): SourceConnector {
  // The config was validated by its plugin's schema (app/config.ts), so it is the plugin's own type.
  return pluginFor(config.type).create(config, ctx);
}
