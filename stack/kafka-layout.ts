/**
 * Where the brokers of a local Kafka cluster live (ports, folders, pid files, logs), what each
 * one's server.properties says, and its storage format (stack/kafka.ts explains the layout).
 */
import { spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { basename, join, resolve } from "node:path";
import { StackError } from "../lib/errors.ts";
import { projectRoot } from "../lib/paths.ts";
import { LOG_TAIL_LINES, type Managed, type Print } from "./process.ts";
import { KAFKA_VERSION, kafkaLib } from "./tools.ts";

export interface KafkaCluster {
  /** Brokers: 1 (the laptop default) or 3. */
  size: number;
  /** Client port of broker 1; broker n answers on port + 2(n-1), its controller on the port after. */
  port: number;
  stateDir: string;
  logsDir: string;
}

export const CLUSTER_SIZES: readonly number[] = [1, 3];

export interface Broker extends Managed {
  id: number;
  port: number;
  controllerPort: number;
  dir: string;
  props: string;
  dataDir: string;
}

export const kafkaLog4j = join(projectRoot, "stack", "kafka", "log4j2.properties");

export function brokersOf(c: KafkaCluster): Broker[] {
  const stateDir = resolve(c.stateDir);
  return Array.from({ length: c.size }, (_, i) => {
    const id = i + 1;
    const one = c.size === 1;
    const dir = join(stateDir, one ? "kafka" : `kafka-${id}`);
    const props = join(dir, "server.properties");
    const port = c.port + 2 * i;
    return {
      name: "kafka" as const,
      id,
      port,
      controllerPort: port + 1,
      dir,
      props,
      dataDir: join(dir, "data"),
      label: one ? `Kafka ${KAFKA_VERSION}` : `Kafka ${KAFKA_VERSION} broker ${id}`,
      address: `127.0.0.1:${port}`,
      pidFile: join(stateDir, one ? "kafka.pid" : `kafka-${id}.pid`),
      logFile: join(resolve(c.logsDir), one ? "kafka.log" : `kafka-${id}.log`),
      // The properties file tells the brokers of one state dir apart (and from another clone's).
      marker: (args: string[]) =>
        args.includes("kafka.Kafka") && (args.at(-1) === props || (args.at(-1) ?? "").endsWith(`/${basename(dir)}/server.properties`)),
    };
  });
}

/** The bootstrap servers of the cluster, as `kafka.brokers` lists them. */
export const bootstrapServers = (c: KafkaCluster): string[] => brokersOf(c).map((b) => b.address);

export const sizeFile = (stateDir: string) => join(stateDir, "kafka.brokers");

/** The number of brokers last started in `stateDir` (undefined before the first `up`). */
export function recordedSize(stateDir: string): number | undefined {
  try {
    const n = Number(readFileSync(sizeFile(stateDir), "utf8").trim());
    return CLUSTER_SIZES.includes(n) ? n : undefined;
  } catch {
    return undefined;
  }
}

export function properties(c: KafkaCluster, b: Broker): string {
  const all = brokersOf(c);
  const replicas = Math.min(3, c.size);
  const isr = c.size >= 3 ? 2 : 1;
  return [
    "# Written by qobra-sync stack up (stack/kafka.ts) on every start; edits are overwritten.",
    `# ${c.size === 1 ? "Single node" : `Node ${b.id} of ${c.size}`}, KRaft combined mode, loopback only.`,
    "process.roles=broker,controller",
    `node.id=${b.id}`,
    `controller.quorum.voters=${all.map((x) => `${x.id}@127.0.0.1:${x.controllerPort}`).join(",")}`,
    `listeners=PLAINTEXT://127.0.0.1:${b.port},CONTROLLER://127.0.0.1:${b.controllerPort}`,
    `advertised.listeners=PLAINTEXT://127.0.0.1:${b.port}`,
    "controller.listener.names=CONTROLLER",
    "inter.broker.listener.name=PLAINTEXT",
    "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
    `log.dirs=${b.dataDir}`,
    "num.partitions=1",
    `default.replication.factor=${replicas}`,
    "auto.create.topics.enable=true",
    `offsets.topic.replication.factor=${replicas}`,
    `offsets.topic.num.partitions=${c.size}`,
    `transaction.state.log.replication.factor=${replicas}`,
    `transaction.state.log.min.isr=${isr}`,
    `transaction.state.log.num.partitions=${c.size}`,
    `share.coordinator.state.topic.replication.factor=${replicas}`,
    `share.coordinator.state.topic.min.isr=${isr}`,
    `min.insync.replicas=${isr}`,
    "unclean.leader.election.enable=false",
    "log.cleaner.enable=true",
    "group.initial.rebalance.delay.ms=0",
    "",
  ].join("\n");
}

/** A Kafka cluster id: 16 random bytes, base64url without padding (22 chars), not starting with '-'. */
export function newClusterId(): string {
  for (;;) {
    const id = randomBytes(16).toString("base64url");
    if (!id.startsWith("-")) return id;
  }
}

export function clusterIdOf(b: Broker): string | undefined {
  try {
    return /^cluster\.id=(.+)$/m.exec(readFileSync(join(b.dataDir, "meta.properties"), "utf8"))?.[1]?.trim();
  } catch {
    return undefined;
  }
}

export function formatStorage(java: string, b: Broker, clusterId: string, print: Print): void {
  if (existsSync(join(b.dataDir, "meta.properties"))) return;
  print(`kafka: formatting storage in ${b.dataDir} (cluster id ${clusterId})`);
  const r = spawnSync(
    java,
    [
      `-Dlog4j2.configurationFile=${kafkaLog4j}`,
      "-cp",
      `${kafkaLib}/*`,
      "kafka.tools.StorageTool",
      "format",
      "-t",
      clusterId,
      "-c",
      b.props,
      "--ignore-formatted",
    ],
    { encoding: "utf8", timeout: 60_000 },
  );
  if (r.status !== 0) {
    const out = `${r.stdout ?? ""}${r.stderr ?? ""}`.trim().split("\n").slice(-LOG_TAIL_LINES).join("\n");
    throw new StackError(
      `${b.label} failed: formatting its storage (kafka.tools.StorageTool format) ` +
        `${r.error ? `could not run: ${r.error.message}` : `exited with code ${r.status}`}\n${out}`,
    );
  }
}
