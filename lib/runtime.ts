/** Wires the shared parts every role needs: Kafka, the registry, the codec, the topics. */
import type { Config } from "./config.ts";
import { Codec } from "./codec.ts";
import { SinkUnavailableError, describeError } from "./errors.ts";
import { createKafka, ensureTopics, type KafkaPort } from "./kafka.ts";
import { Registry } from "./registry.ts";
import type { ConnectorCatalog } from "./connector-catalog.ts";

export interface Runtime {
  config: Config;
  port: KafkaPort;
  registry: Registry;
  codec: Codec;
  /** The live connectors (file and API) in a process that runs roles (app/roles.ts); absent in tools. */
  catalog?: ConnectorCatalog;
  /** Resolves once this process's roles run with the last change of the connectors (app/roles.ts); absent in tools. */
  whenApplied?(): Promise<void>;
  close(): Promise<void>;
}

export async function openRuntime(config: Config, clientSuffix = ""): Promise<Runtime> {
  // Probe the brokers with few retries first, so a wrong address is reported in seconds.
  const probe = createKafka(config, `${clientSuffix}-probe`, { retries: 2 });
  try {
    await probe.admin();
  } catch (e) {
    throw new SinkUnavailableError(
      `cannot reach the Kafka broker at ${config.kafka.brokers.join(", ")} (${describeError(e)}); start it with \`qobra-sync stack up\` or fix kafka.brokers`,
      e,
    );
  } finally {
    await probe.close();
  }
  const port = createKafka(config, clientSuffix);
  await ensureTopics(port, config);
  const registry = new Registry(config.schemaRegistry);
  return { config, port, registry, codec: new Codec(registry), close: () => port.close() };
}
