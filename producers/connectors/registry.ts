/**
 * The list of source plugins: the one place that names every source. Adding a source means a new
 * folder under producers/connectors/ and one line here (docs/adding-a-source.md). The config
 * file's schema (app/config.ts), the scheduler, the settings page and the CLI iterate this list;
 * the producer worker creates connectors through `createConnector`.
 */
import { ConfigError } from "../../lib/errors.ts";
import type { ConnectorBase } from "../../lib/config.ts";
import { NetworkRefusedError, networkPolicy } from "../../lib/network-policy.ts";
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

/**
 * The network policy applied to a connector given through the API (its config carries `egress`),
 * before it is stored or checked: every host its plugin names (SourcePlugin.endpoints) is resolved
 * and each address checked (lib/network-policy.ts). A ConfigError whose `problems` are
 * "<field>: <why>" (the API answers 400 with them) when one is refused; nothing for the config
 * file's connectors. A host that does not resolve now is left to the connection (checked again there).
 */
export async function admitNetwork(config: ConnectorBase): Promise<void> {
  if (!config.egress) return;
  const plugin = pluginFor(config.type) as SourcePlugin;
  const policy = networkPolicy(config.egress);
  const problems: string[] = [];
  for (const e of plugin.endpoints?.(config) ?? []) {
    if ("problem" in e) {
      problems.push(`${e.field}: ${e.problem}`);
      continue;
    }
    try {
      await policy.resolve(e.host, { field: e.field });
    } catch (err) {
      if (err instanceof NetworkRefusedError) problems.push(err.detail);
    }
  }
  if (problems.length > 0) throw Object.assign(new ConfigError(`the connector is refused: ${problems.join("; ")}`), { problems });
}
