/**
 * The list of source plugins: the one place that names every source. Adding a source means a new
 * folder under producers/connectors/ and one line here (docs/adding-a-source.md).
 */
import type { ConnectorConfig } from "../../lib/config.ts";
import type { ConnectorContext, ConnectorFactory, SourceConnector } from "../connector.ts";
import { hubspotConnector } from "./hubspot.ts";
import { postgresConnector } from "./postgres.ts";
import { salesforceConnector } from "./salesforce.ts";

export const connectors = {
  postgres: postgresConnector,
  hubspot: hubspotConnector,
  salesforce: salesforceConnector,
} satisfies Record<ConnectorConfig["type"], ConnectorFactory>;

export function createConnector(config: ConnectorConfig, ctx?: ConnectorContext): SourceConnector {
  // The map is keyed by type, so the factory matches the config; TS cannot correlate the two unions.
  return (connectors[config.type] as ConnectorFactory).create(config, ctx);
}
