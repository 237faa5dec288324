/**
 * The local stack without Docker: Apache Kafka 4.3.1 (KRaft: one combined broker+controller by
 * default, or three with `stack up --brokers 3`; stack/kafka.ts) and Apicurio Registry 3.3.3
 * (stack/registry.ts) run as detached Java processes from Maven Central artifacts (stack/tools.ts);
 * PostgreSQL is the one already on the machine (checked, never started or stopped here).
 *
 *  - Jars are fetched once by Maven into `<cacheDir>/kafka-4.3.1/lib` and `<cacheDir>/apicurio-3.3.3/`.
 *  - State lives in `<stackDir>` (QOBRA_SYNC_STACK_DIR, default `.stack`): the brokers' folders,
 *    `registry/` (the registry's H2 database file, so schema ids survive restarts like Kafka's
 *    messages do), the pid files, `kafka.brokers` (how many brokers were last started), and logs in
 *    `<stackDir>/logs/` (the previous run's log is kept as `.1`).
 *  - Ports: QOBRA_SYNC_KAFKA_PORT (9092; broker n uses port + 2(n-1), its controller the port after),
 *    QOBRA_SYNC_REGISTRY_PORT (8080), QOBRA_SYNC_REGISTRY_MGMT_PORT (9000).
 *  - `up` is idempotent: a live process from our pid file is reused (a cluster missing one broker
 *    gets that one started); a port that already answers without a pid file of ours is an
 *    "external" service, used and left alone.
 *  - `down` stops only the processes whose pid files we wrote, after checking the pid is still that
 *    java process (pid reuse), SIGTERM then SIGKILL after 30 s.
 */
import pg from "pg";
import { StackError, describeError } from "../lib/errors.ts";
import { describeEndpoint, driverUrl } from "../lib/endpoint.ts";
import { logsDir, stackDir } from "../lib/paths.ts";
import { CLUSTER_SIZES, bootstrapServers, brokerPids, downKafka, kafkaStatus, recordedSize, upKafka, type KafkaCluster } from "./kafka.ts";
import { noPrint, type Print, type ServiceStatus } from "./process.ts";
import { downRegistry, registryPid, registryStatus, registryUrl, upRegistry, type RegistrySpec } from "./registry.ts";

export type { ServiceStatus } from "./process.ts";
export type { KafkaCluster } from "./kafka.ts";

// ---------------------------------------------------------------------------------------------
// Addresses (env overrides)

function portFromEnv(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw.trim() === "") return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1 || n > 65530) {
    throw new StackError(`${name}=${JSON.stringify(raw)} is not a valid TCP port (an integer from 1 to 65530: the brokers use the ports after it)`);
  }
  return n;
}

const kafkaPort = portFromEnv("QOBRA_SYNC_KAFKA_PORT", 9092);
const registry: RegistrySpec = {
  port: portFromEnv("QOBRA_SYNC_REGISTRY_PORT", 8080),
  mgmtPort: portFromEnv("QOBRA_SYNC_REGISTRY_MGMT_PORT", 9000),
  stateDir: stackDir,
  logsDir,
};
const postgresUrl = process.env.QOBRA_SYNC_PG_URL?.trim() || "postgres://postgres@127.0.0.1:5432/postgres";

/** This stack's Kafka cluster: `size` brokers, else as many as were last started here, else one. */
export function stackCluster(size?: number): KafkaCluster {
  const n = size ?? recordedSize(stackDir) ?? 1;
  if (!CLUSTER_SIZES.includes(n)) throw new StackError(`--brokers ${n}: the local stack runs ${CLUSTER_SIZES.join(" or ")} Kafka brokers`);
  return { size: n, port: kafkaPort, stateDir: stackDir, logsDir };
}

/**
 * Where the stack's services answer. `kafkaBrokers` lists every broker of the cluster last
 * started (read at each access, so it follows `stack up --brokers 3` in the same process).
 */
export const stackDefaults: { readonly kafkaBrokers: string[]; readonly registryUrl: string; readonly postgresUrl: string } = {
  get kafkaBrokers() {
    return bootstrapServers(stackCluster());
  },
  registryUrl: registryUrl(registry),
  postgresUrl,
};

// ---------------------------------------------------------------------------------------------
// PostgreSQL (never started or stopped here)

async function postgresStatus(): Promise<ServiceStatus> {
  // A refused connection is final; a slow answer (a loaded machine) gets three tries of 10 s.
  let last: ServiceStatus | undefined;
  for (let attempt = 0; attempt < 3; attempt++) {
    last = await postgresStatusOnce();
    if (last.state === "external" || !/timeout/i.test(last.detail ?? "")) return last;
  }
  return last!;
}

async function postgresStatusOnce(): Promise<ServiceStatus> {
  const address = describeEndpoint(postgresUrl);
  const client = new pg.Client({ connectionString: driverUrl(postgresUrl), connectionTimeoutMillis: 10_000 });
  client.on("error", () => undefined);
  try {
    await client.connect();
    await client.query("SELECT 1");
    return { name: "postgres", state: "external", address, detail: "answers SELECT 1 (not managed by qobra-sync)" };
  } catch (e) {
    return {
      name: "postgres",
      state: "unavailable",
      address,
      detail:
        `PostgreSQL at ${address} did not answer SELECT 1 (${describeError(e)}). qobra-sync does not start PostgreSQL: ` +
        "start the local server (e.g. `pg_ctlcluster 15 main start`), or point QOBRA_SYNC_PG_URL at a running one " +
        "(e.g. one started with `docker compose up -d postgres`).",
    };
  } finally {
    await client.end().catch(() => undefined);
  }
}

// ---------------------------------------------------------------------------------------------
// Public API

/**
 * Starts Kafka (`brokers` of them; default: as many as were last started here, else one) and the
 * registry, in parallel, unless already running; waits until both really answer, and checks
 * PostgreSQL. Throws StackError naming the failed service, the reason, its log path and the log's
 * last lines. PostgreSQL being unavailable is reported, not thrown.
 */
export async function stackUp(opts: { print?: Print; brokers?: number } = {}): Promise<ServiceStatus[]> {
  const print = opts.print ?? noPrint;
  const cluster = stackCluster(opts.brokers);
  if (opts.brokers === undefined && cluster.size > 1)
    print(`kafka: ${cluster.size} brokers, as last started in ${stackDir} (\`stack up --brokers 1\` for one)`);
  const [kafka, reg, postgres] = await Promise.allSettled([upKafka(cluster, print), upRegistry(registry, print), postgresStatus()]);
  const errors = [kafka, reg].filter((r): r is PromiseRejectedResult => r.status === "rejected").map((r) => r.reason as unknown);
  if (errors.length > 0) {
    for (const e of errors) print(`stack up failed: ${describeError(e).split("\n")[0]}`);
    const message = errors.map((e) => (e instanceof Error ? e.message : String(e))).join("\n\n");
    throw new StackError(message, errors[0]);
  }
  const result = [kafka, reg, postgres].map((r) => (r as PromiseFulfilledResult<ServiceStatus>).value);
  const pgStatus = result[2]!;
  if (pgStatus.state === "unavailable") print(`postgres: unavailable — ${pgStatus.detail}`);
  else print(`postgres: answers at ${pgStatus.address}`);
  if (cluster.size > 1) print(`kafka bootstrap servers (kafka.brokers): ${JSON.stringify(bootstrapServers(cluster))}`);
  return result;
}

/** Stops what `stackUp` started (by pid), removes the pid files; never touches PostgreSQL or external services. */
export async function stackDown(opts: { print?: Print } = {}): Promise<ServiceStatus[]> {
  const print = opts.print ?? noPrint;
  const [kafka, reg, postgres] = await Promise.allSettled([downKafka(stackCluster(), print), downRegistry(registry, print), postgresStatus()]);
  const errors = [kafka, reg].filter((r): r is PromiseRejectedResult => r.status === "rejected").map((r) => r.reason as unknown);
  if (errors.length > 0) {
    throw new StackError(errors.map((e) => describeError(e)).join("\n"), errors[0]);
  }
  return [kafka, reg, postgres].map((r) => (r as PromiseFulfilledResult<ServiceStatus>).value);
}

/** Reports each service without changing anything (stale pid files are removed). */
export async function stackStatus(): Promise<ServiceStatus[]> {
  return Promise.all([kafkaStatus(stackCluster()), registryStatus(registry), postgresStatus()]);
}

/** Pids of this stack's brokers and registry (undefined when not running, or not started by qobra-sync): the chaos suite's targets. */
export function stackPids(): { brokers: Array<{ id: number; address: string; pid: number | undefined }>; registry: number | undefined } {
  return { brokers: brokerPids(stackCluster()), registry: registryPid(registry) };
}
