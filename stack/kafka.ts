/**
 * Apache Kafka 4.3.1 in KRaft mode, as detached java processes: one combined broker+controller
 * (the laptop default), or a cluster of three combined nodes (`stack up --brokers 3`).
 *
 * Three combined nodes rather than three controllers plus three brokers: three JVMs instead of six
 * on a 2-core laptop, and a quorum of three still survives the loss of any one node. Killing a node
 * then takes down a broker and a controller at once (possibly the active one), which is the harder
 * case for the clients: leader election, controller fail-over, group and transaction coordinators
 * moving, all together.
 *
 * Ports: broker n (1-based) answers clients on `port + 2(n-1)` and its controller on the port after:
 * 9092/9093 for the single broker, 9092…9097 for three. State: one broker in `<stateDir>/kafka/`
 * (`server.properties`, `data/`), pid `<stateDir>/kafka.pid`, log `<logsDir>/kafka.log`; broker n
 * of three in `<stateDir>/kafka-n/`, `kafka-n.pid`, `kafka-n.log`. The size last started is kept in
 * `<stateDir>/kafka.brokers`, so that `status`, `down` and a later `up` know it.
 *
 * The three-node cluster replicates everything three times and requires two in-sync replicas:
 * default.replication.factor=3, min.insync.replicas=2, and the same for __consumer_offsets and
 * __transaction_state, so that a transaction or an offset commit acknowledged by the cluster
 * survives the loss of any one node.
 */
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { Kafka, logLevel } from "kafkajs";
import { StackError, describeError } from "../lib/errors.ts";
import {
  bootstrapServers,
  brokersOf,
  CLUSTER_SIZES,
  clusterIdOf,
  formatStorage,
  kafkaLog4j,
  newClusterId,
  properties,
  sizeFile,
  type Broker,
  type KafkaCluster,
} from "./kafka-layout.ts";
import { isOurs, livePid, portOpen, spawnJava, stopManaged, waitReady, type Print, type ServiceStatus, type Spawned } from "./process.ts";
import { findJava, fetchKafka, kafkaLib } from "./tools.ts";

export { bootstrapServers, brokersOf, CLUSTER_SIZES, recordedSize, type Broker, type KafkaCluster } from "./kafka-layout.ts";

/**
 * Metadata round trip (describeCluster, with `expected` brokers registered), listTopics and the
 * group coordinator through kafkajs; throws when not ready.
 */
export async function kafkaProbe(
  servers: string[],
  opts: { expected?: number; warm?: boolean; metadataOnly?: boolean } = {},
): Promise<{ brokers: number; topics: number }> {
  const kafka = new Kafka({
    clientId: "qobra-sync-stack",
    brokers: servers,
    logLevel: logLevel.NOTHING,
    connectionTimeout: 1_500,
    requestTimeout: 5_000,
    retry: { retries: 0 },
  });
  const admin = kafka.admin();
  try {
    await admin.connect();
    const cluster = await admin.describeCluster();
    if (cluster.brokers.length < (opts.expected ?? 1)) throw new Error(`${cluster.brokers.length} of ${opts.expected ?? 1} brokers registered`);
    if (opts.metadataOnly) return { brokers: cluster.brokers.length, topics: 0 };
    const topics = await admin.listTopics();
    // FindCoordinator + DescribeGroups: creates __consumer_offsets on a fresh cluster and fails
    // while the group coordinator is still loading, so the first consumer after `up` joins at once.
    await admin.describeGroups(["qobra-sync-stack-probe"]);
    if (opts.warm) {
      // InitProducerId (what an idempotent producer does on connect) fails while the producer-id
      // manager is still loading on a fresh broker; waiting here keeps that out of the first run.
      const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1, retry: { retries: 1, initialRetryTime: 100, maxRetryTime: 500 } });
      try {
        await producer.connect();
      } finally {
        await producer.disconnect().catch(() => undefined);
      }
    }
    return { brokers: cluster.brokers.length, topics: topics.length };
  } finally {
    await admin.disconnect().catch(() => undefined);
  }
}

/** The other layout's brokers in the same state dir (a single broker while three are asked for, or the reverse). */
function otherLayouts(c: KafkaCluster): Broker[] {
  return CLUSTER_SIZES.filter((n) => n !== c.size).flatMap((size) => brokersOf({ ...c, size }));
}

function clusterStatus(c: KafkaCluster, members: ServiceStatus[], detail: string): ServiceStatus {
  if (c.size === 1) return { ...members[0]!, detail };
  const running = members.filter((m) => m.state === "running").length;
  return {
    name: "kafka",
    state: running === c.size ? "running" : running === 0 ? "stopped" : "partial",
    address: bootstrapServers(c).join(","),
    detail,
    brokers: members,
  };
}

/**
 * Starts the brokers of `c` that are not running (all of them on a cold start, the one that died
 * in a cluster whose others run), and waits until the cluster answers with every broker registered.
 */
export async function upKafka(c: KafkaCluster, print: Print): Promise<ServiceStatus> {
  const brokers = brokersOf(c);
  const first = brokers[0]!;
  const servers = bootstrapServers(c);
  const probe = () => kafkaProbe(servers, { expected: c.size, warm: true });
  // Each broker started must answer itself: the cluster still lists a broker killed a moment ago.
  const probeStarted = async (started: Broker[]) => {
    for (const b of started) await kafkaProbe([b.address], { metadataOnly: true });
    await probe();
  };
  const clash = otherLayouts(c).filter((b) => livePid(b) !== undefined);
  if (clash.length > 0) {
    throw new StackError(
      `Kafka failed: this stack (${c.stateDir}) runs ${clash.length === 1 && clash[0]!.pidFile.endsWith("kafka.pid") ? "a single broker" : "a cluster of brokers"} ` +
        `(${clash.map((b) => `${b.label} pid ${livePid(b)}`).join(", ")}), not ${c.size}: run \`qobra-sync stack down\` first, then \`stack up --brokers ${c.size}\`.`,
    );
  }
  const pids = brokers.map((b) => livePid(b));
  const member = (b: Broker, pid: number, detail: string): ServiceStatus => ({
    name: "kafka",
    state: "running",
    pid,
    address: b.address,
    log: b.logFile,
    detail,
  });
  if (pids.every((p) => p !== undefined)) {
    await waitReady(first, probe, () => {
      const gone = brokers.find((b, i) => !isOurs(b, pids[i]!));
      return gone ? { svc: gone, why: "the java process is gone" } : undefined;
    });
    print(`kafka: already running (${pids.map((p) => `pid ${p}`).join(", ")}) at ${servers.join(",")}`);
    return clusterStatus(
      c,
      brokers.map((b, i) => member(b, pids[i]!, "already running")),
      "already running",
    );
  }
  if (pids.every((p) => p === undefined) && (await portOpen(c.port))) {
    let answered: { brokers: number };
    try {
      answered = await kafkaProbe([first.address]);
    } catch (e) {
      throw new StackError(
        `${first.label} failed: port ${c.port} is taken by a program that does not answer as a Kafka broker ` +
          `(${describeError(e)}). Stop it, or set QOBRA_SYNC_KAFKA_PORT to a free port (the controller uses port+1).`,
        e,
      );
    }
    if (answered.brokers < c.size) {
      throw new StackError(
        `Kafka failed: a cluster of ${answered.brokers} broker(s) not started by qobra-sync answers at ${first.address}, and ${c.size} were asked for. ` +
          "Stop it, or set QOBRA_SYNC_KAFKA_PORT to a free port.",
      );
    }
    print(`kafka: a broker already answers at ${first.address} (not started by qobra-sync); using it`);
    return { name: "kafka", state: "external", address: servers.join(","), detail: "answering, but not started by qobra-sync (left alone)" };
  }
  const missing = brokers.filter((_, i) => pids[i] === undefined);
  for (const b of missing) {
    for (const [port, what] of [
      [b.port, "client"],
      [b.controllerPort, "controller"],
    ] as const) {
      if (await portOpen(port)) {
        throw new StackError(
          `${b.label} failed: its ${what} port ${port} is taken by another program. Free it, or set QOBRA_SYNC_KAFKA_PORT to another port ` +
            `(broker n uses QOBRA_SYNC_KAFKA_PORT + 2(n-1) and the port after for its controller).`,
        );
      }
    }
  }
  const java = findJava(17, first.label);
  await fetchKafka(print);
  mkdirSync(c.stateDir, { recursive: true });
  writeFileSync(sizeFile(c.stateDir), `${c.size}\n`);
  const clusterId = brokers.map(clusterIdOf).find((id) => id !== undefined) ?? newClusterId();
  for (const b of missing) {
    mkdirSync(b.dataDir, { recursive: true });
    writeFileSync(b.props, properties(c, b));
    formatStorage(java, b, clusterId, print);
  }
  const started = Date.now();
  const heap = c.size === 1 ? ["-Xms256m", "-Xmx768m"] : ["-Xms128m", "-Xmx512m"];
  const spawned: Array<{ b: Broker } & Spawned> = [];
  try {
    for (const b of missing) {
      print(`kafka: starting ${b.label} at ${b.address} with ${java} (log: ${b.logFile})`);
      const args = [
        ...heap,
        "-XX:+UseG1GC",
        "-Djava.awt.headless=true",
        `-Dlog4j2.configurationFile=${kafkaLog4j}`,
        "-cp",
        `${kafkaLib}/*`,
        "kafka.Kafka",
        b.props,
      ];
      spawned.push({ b, ...spawnJava(b, java, args, b.dir) });
    }
    await waitReady(
      missing[0]!,
      () => probeStarted(missing),
      () => {
        for (const s of spawned) {
          const why = s.exited();
          if (why) return { svc: s.b, why };
        }
        return undefined;
      },
    );
  } catch (e) {
    await Promise.all(spawned.map((s) => stopManaged(s.b, () => undefined).catch(() => undefined)));
    for (const s of spawned) rmSync(s.b.pidFile, { force: true });
    throw e;
  }
  const secs = ((Date.now() - started) / 1000).toFixed(1);
  print(`kafka: ready in ${secs} s (${spawned.map((s) => `${c.size === 1 ? "" : `broker ${s.b.id} `}pid ${s.child.pid}`).join(", ")})`);
  const fresh = new Map(spawned.map((s) => [s.b.id, s.child.pid!]));
  return clusterStatus(
    c,
    brokers.map((b, i) => member(b, pids[i] ?? fresh.get(b.id)!, pids[i] === undefined ? `started, ready in ${secs} s` : "already running")),
    spawned.length === c.size ? `started, ready in ${secs} s` : `${spawned.map((s) => `broker ${s.b.id}`).join(", ")} started, ready in ${secs} s`,
  );
}

/** Stops every broker this state dir's pid files name (of either layout, so a stale record leaves nothing running). */
export async function downKafka(c: KafkaCluster, print: Print): Promise<ServiceStatus> {
  const brokers = brokersOf(c);
  const all = [...brokers, ...otherLayouts(c)];
  // All at once: a broker stopped alone while the others wait would lose the controller quorum
  // under the last ones, whose controlled shutdown then waits for it.
  const stopped = await Promise.all(all.map((b) => stopManaged(b, print, b.pidFile.endsWith("/kafka.pid") ? "kafka" : `kafka broker ${b.id}`)));
  const mine = stopped.filter((s): s is ServiceStatus => s !== undefined);
  if (mine.length === 0 && (await portOpen(c.port))) {
    print(`kafka: something answers at ${brokers[0]!.address} that qobra-sync did not start; left alone`);
    return { name: "kafka", state: "external", address: bootstrapServers(c).join(","), detail: "not started by qobra-sync; left alone" };
  }
  const members = brokers.map(
    (b) =>
      mine.find((s) => s.log === b.logFile) ?? {
        name: "kafka" as const,
        state: "stopped" as const,
        address: b.address,
        log: b.logFile,
        detail: "was not running",
      },
  );
  return clusterStatus(c, members, mine.length === 0 ? "was not running" : mine.map((s) => s.detail).join("; "));
}

/** Each broker's state without changing anything (stale pid files are removed). */
export async function kafkaStatus(c: KafkaCluster): Promise<ServiceStatus> {
  const brokers = brokersOf(c);
  const members = await Promise.all(
    brokers.map(async (b): Promise<ServiceStatus> => {
      const pid = livePid(b);
      if (pid === undefined) return { name: "kafka", state: "stopped", address: b.address, log: b.logFile };
      const ok = await kafkaProbe([b.address], { metadataOnly: true }).then(
        () => true,
        () => false,
      );
      const detail = ok ? "answering" : "process alive but not answering yet (starting, or unhealthy: see the log)";
      return { name: "kafka", state: "running", pid, address: b.address, log: b.logFile, detail };
    }),
  );
  if (members.every((m) => m.state === "stopped") && (await portOpen(c.port))) {
    return { name: "kafka", state: "external", address: bootstrapServers(c).join(","), detail: "answering, but not started by qobra-sync" };
  }
  if (c.size === 1) return members[0]!;
  const answering = members.filter((m) => m.detail === "answering").length;
  return clusterStatus(c, members, `${answering} of ${c.size} brokers answering`);
}

/** Each broker's id, address and pid (undefined when it is not running): the chaos suite kills them. */
export function brokerPids(c: KafkaCluster): Array<{ id: number; address: string; pid: number | undefined }> {
  return brokersOf(c).map((b) => ({ id: b.id, address: b.address, pid: livePid(b) }));
}
