/**
 * Global setup of the integration tier only (vitest.config.ts; the unit tier has none): brings
 * Kafka and Apicurio Registry up before the tests when they do not answer yet, and stops them
 * afterwards if this run started them. PostgreSQL must already answer. It prints which path ran:
 *  - both already answer (`qobra-sync stack up`, docker compose, …): used as they are (the Docker
 *    detection still runs, to say which path a cold start would take);
 *  - a Docker engine answers (testcontainers' own detection, bounded to a few seconds): containers
 *    with the images and versions of docker-compose.yml (support/containers.ts);
 *  - otherwise: the Maven-jar processes of stack/stack.ts.
 * QOBRA_SYNC_TEST_STACK=jars skips the Docker detection. QOBRA_SYNC_KEEP_STACK=1 leaves the
 * Maven-jar processes running (containers always go with the run).
 */
import { stackDown, stackStatus, stackUp, type ServiceStatus } from "../stack/stack.ts";
import { dockerEngine, startStackContainers, type StackContainers } from "../support/containers.ts";

const print = (line: string) => process.stderr.write(`[stack] ${line}\n`);

let startedHere: "jars" | StackContainers | undefined;

function notReady(status: ServiceStatus[]): ServiceStatus[] {
  return status.filter((s) => s.state === "unavailable" || s.state === "stopped");
}

export async function setup(): Promise<void> {
  const [before, engine] = await Promise.all([
    stackStatus(),
    process.env.QOBRA_SYNC_TEST_STACK === "jars"
      ? Promise.resolve({ found: false as const, reason: "detection skipped, QOBRA_SYNC_TEST_STACK=jars" })
      : dockerEngine(),
  ]);
  const running = (n: string) => before.some((s) => s.name === n && (s.state === "running" || s.state === "external"));
  if (running("kafka") && running("registry")) {
    const docker = engine.found ? `Docker engine found (testcontainers: ${engine.detail})` : `no Docker engine (testcontainers: ${engine.reason})`;
    print(
      `stack: ${docker}; Kafka and Apicurio already answer at ${before
        .filter((s) => s.name !== "postgres")
        .map((s) => s.address)
        .join(" and ")} -> used as they are`,
    );
    return;
  }
  if (engine.found) {
    print(`stack: Docker engine found (testcontainers: ${engine.detail}) -> Kafka and Apicurio as containers, images of docker-compose.yml`);
    const containers = await startStackContainers(print);
    const bad = notReady(await stackStatus());
    if (bad.length > 0) {
      await containers.stop();
      throw new Error(`the test stack is not ready: ${bad.map((s) => `${s.name}: ${s.detail ?? s.state}`).join("; ")}`);
    }
    startedHere = containers;
    return;
  }
  print(`stack: no Docker engine (testcontainers: ${engine.reason}) -> Kafka and Apicurio from the Maven jars (stack/stack.ts)`);
  let after;
  try {
    after = await stackUp({ print });
  } catch (e) {
    await stackDown({ print }).catch(() => {}); // leave nothing half-started behind
    throw e;
  }
  const bad = notReady(after);
  if (bad.length > 0) {
    await stackDown({ print }).catch(() => {});
    throw new Error(`the local stack is not ready: ${bad.map((s) => `${s.name}: ${s.detail ?? s.state}`).join("; ")}`);
  }
  startedHere = "jars";
}

export async function teardown(): Promise<void> {
  if (startedHere === "jars") {
    if (process.env.QOBRA_SYNC_KEEP_STACK !== "1") await stackDown({ print });
  } else if (startedHere) {
    print(`stopping the containers (${startedHere.images.join(", ")})`);
    await startedHere.stop();
  }
}
