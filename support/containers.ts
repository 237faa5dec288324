/**
 * The Docker path of the integration tests' stack (test/global-setup.ts): where a Docker engine
 * answers, Kafka and Apicurio Registry run as containers started through testcontainers, with the
 * images, versions and settings of docker-compose.yml (read from that file, so the two cannot
 * drift), on the same host ports as the Maven-jar stack (stack/stack.ts), so the tests reach them
 * at `stackDefaults` either way. Two differences from the compose file, both for a throwaway test
 * stack: the registry keeps its schemas in memory (compose points it at a PostgreSQL container of
 * its own), and the containers are removed after the run (testcontainers' reaper).
 * PostgreSQL is not started here: as on the Maven path, the one at QOBRA_SYNC_PG_URL must answer.
 * The engine must be local (the tests connect to 127.0.0.1).
 */
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { parse } from "yaml";
import { projectRoot } from "../lib/paths.ts";
import { stackDefaults } from "../stack/stack.ts";

/** How long the Docker engine detection may take before the answer counts as "no engine". */
const DETECT_TIMEOUT_MS = 10_000;

type EngineProbe = { found: true; detail: string } | { found: false; reason: string };

/** Whether a Docker engine answers, by testcontainers' own runtime detection, bounded in time. */
export async function dockerEngine(timeoutMs = DETECT_TIMEOUT_MS): Promise<EngineProbe> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<EngineProbe>((resolve) => {
    timer = setTimeout(() => resolve({ found: false, reason: `no answer within ${timeoutMs / 1000} s` }), timeoutMs);
    timer.unref();
  });
  const detect = (async (): Promise<EngineProbe> => {
    try {
      const { getContainerRuntimeClient } = await import("testcontainers");
      const client = await getContainerRuntimeClient();
      const rt = client.info.containerRuntime;
      return { found: true, detail: `${rt.operatingSystem} ${rt.serverVersion} at ${rt.host}` };
    } catch (e) {
      // testcontainers says only that no strategy worked: add where a local engine would be.
      const where =
        `DOCKER_HOST ${process.env.DOCKER_HOST ? `is ${process.env.DOCKER_HOST}` : "unset"}, ` +
        `/var/run/docker.sock ${existsSync("/var/run/docker.sock") ? "present" : "absent"}`;
      return { found: false, reason: `${(e as Error).message ?? String(e)}; ${where}` };
    }
  })();
  try {
    return await Promise.race([detect, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

interface ComposeService {
  image: string;
  environment?: Record<string, string | number>;
}

function composeServices(): { kafka: ComposeService; registry: ComposeService } {
  const doc = parse(readFileSync(join(projectRoot, "docker-compose.yml"), "utf8")) as { services: Record<string, ComposeService> };
  const { kafka, registry } = doc.services;
  if (!kafka?.image || !registry?.image) throw new Error("docker-compose.yml has no kafka or registry service with an image");
  return { kafka, registry };
}

const portOf = (address: string): number => Number(new URL(address.includes("://") ? address : `tcp://${address}`).port);
const strings = (env: Record<string, string | number> = {}): Record<string, string> => Object.fromEntries(Object.entries(env).map(([k, v]) => [k, String(v)]));

export interface StackContainers {
  images: string[];
  stop(): Promise<void>;
}

/** Starts Kafka and the registry as containers and waits until both are ready. */
export async function startStackContainers(print: (line: string) => void): Promise<StackContainers> {
  const { GenericContainer, Wait } = await import("testcontainers");
  const compose = composeServices();
  const kafkaPort = portOf(stackDefaults.kafkaBrokers[0]!);
  const registryPort = portOf(stackDefaults.registryUrl);

  const kafkaEnv = { ...strings(compose.kafka.environment), KAFKA_ADVERTISED_LISTENERS: `PLAINTEXT://127.0.0.1:${kafkaPort}` };
  // The registry's SQL storage in compose is a PostgreSQL container of its own: in memory here.
  const registryEnv = Object.fromEntries(
    Object.entries(strings(compose.registry.environment)).filter(([k]) => !k.startsWith("APICURIO_STORAGE_") && !k.startsWith("APICURIO_DATASOURCE_")),
  );

  print(`starting ${compose.kafka.image} on 127.0.0.1:${kafkaPort} and ${compose.registry.image} on 127.0.0.1:${registryPort}`);
  const [kafka, registry] = await Promise.allSettled([
    new GenericContainer(compose.kafka.image)
      .withEnvironment(kafkaEnv)
      .withExposedPorts({ container: 9092, host: kafkaPort })
      .withWaitStrategy(Wait.forLogMessage(/Kafka Server started/))
      .withStartupTimeout(180_000)
      .start(),
    new GenericContainer(compose.registry.image)
      .withEnvironment(registryEnv)
      .withExposedPorts({ container: 8080, host: registryPort })
      .withWaitStrategy(Wait.forHttp("/apis/ccompat/v7/config", 8080).forStatusCode(200))
      .withStartupTimeout(180_000)
      .start(),
  ]);
  const started = [kafka, registry].flatMap((r) => (r.status === "fulfilled" ? [r.value] : []));
  const stop = async () => {
    await Promise.all(started.map((c) => c.stop().catch(() => undefined)));
  };
  const failed = [kafka, registry].flatMap((r) => (r.status === "rejected" ? [r.reason as Error] : []));
  if (failed.length > 0) {
    await stop();
    throw new Error(`the test stack's containers did not start: ${failed.map((e) => e.message).join("; ")}`);
  }
  return { images: [compose.kafka.image, compose.registry.image], stop };
}
