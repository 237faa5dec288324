/**
 * The local stack without Docker: Apache Kafka 4.3.1 (KRaft, one combined broker+controller) and
 * Apicurio Registry 3.3.3 run as detached Java processes from Maven Central artifacts; PostgreSQL is
 * the one already on the machine (checked, never started or stopped here).
 *
 *  - Jars are fetched once by Maven into `<cacheDir>/kafka-4.3.1/lib` and `<cacheDir>/apicurio-3.3.3/`
 *    (into a temporary folder first, renamed when complete, so an interrupted fetch leaves no half cache).
 *  - State lives in `<stackDir>`: `kafka/server.properties`, `kafka/data`, `registry/` (the registry's
 *    H2 database file, so schema ids survive restarts like Kafka's messages do), `kafka.pid`, `registry.pid`,
 *    and logs in `<stackDir>/logs/{kafka,registry}.log` (the previous run's log is kept as `.1`).
 *  - `up` is idempotent: a live process from our pid file is reused; a port that already answers
 *    without a pid file of ours is an "external" service, used and left alone.
 *  - `down` stops only the processes whose pid files we wrote, after checking the pid is still that
 *    java process (pid reuse), SIGTERM then SIGKILL after 30 s.
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { closeSync, copyFileSync, existsSync, mkdirSync, openSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { connect } from "node:net";
import { basename, join } from "node:path";
import { Kafka, logLevel } from "kafkajs";
import pg from "pg";
import { StackError, describeError } from "../lib/errors.ts";
import { sleep } from "../lib/retry.ts";
import { describeEndpoint, driverUrl } from "../lib/endpoint.ts";
import { cacheDir, logsDir, projectRoot, stackDir } from "../lib/paths.ts";

export interface ServiceStatus {
  name: "kafka" | "registry" | "postgres";
  state: "running" | "stopped" | "external" | "unavailable";
  pid?: number;
  address: string;
  log?: string;
  detail?: string;
}

type Print = (line: string) => void;

const KAFKA_VERSION = "4.3.1";
const APICURIO_VERSION = "3.3.3";
const READY_TIMEOUT_MS = 120_000;
const STOP_TIMEOUT_MS = 30_000;
const LOG_TAIL_LINES = 20;

// ---------------------------------------------------------------------------------------------
// Addresses (env overrides)

function portFromEnv(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw.trim() === "") return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1 || n > 65534) {
    throw new StackError(`${name}=${JSON.stringify(raw)} is not a valid TCP port (an integer from 1 to 65534)`);
  }
  return n;
}

const kafkaPort = portFromEnv("QOBRA_SYNC_KAFKA_PORT", 9092);
const controllerPort = kafkaPort + 1;
const registryPort = portFromEnv("QOBRA_SYNC_REGISTRY_PORT", 8080);
const registryMgmtPort = portFromEnv("QOBRA_SYNC_REGISTRY_MGMT_PORT", 9000);
const postgresUrl = process.env.QOBRA_SYNC_PG_URL?.trim() || "postgres://postgres@127.0.0.1:5432/postgres";

export const stackDefaults: { kafkaBrokers: string[]; registryUrl: string; postgresUrl: string } = {
  kafkaBrokers: [`127.0.0.1:${kafkaPort}`],
  registryUrl: `http://127.0.0.1:${registryPort}/apis/ccompat/v7`,
  postgresUrl,
};

// ---------------------------------------------------------------------------------------------
// Files

const kafkaHome = join(cacheDir, `kafka-${KAFKA_VERSION}`);
const kafkaLib = join(kafkaHome, "lib");
const apicurioHome = join(cacheDir, `apicurio-${APICURIO_VERSION}`);
const kafkaStateDir = join(stackDir, "kafka");
const kafkaProps = join(kafkaStateDir, "server.properties");
const kafkaDataDir = join(kafkaStateDir, "data");
const kafkaLog4j = join(projectRoot, "stack", "kafka", "log4j2.properties");
/** The registry keeps its schemas in an H2 file here, so schema ids survive a restart like Kafka's data does. */
const registryDataDir = join(stackDir, "registry");

interface Managed {
  name: "kafka" | "registry";
  label: string;
  address: string;
  pidFile: string;
  logFile: string;
  /** Recognises our process in /proc/<pid>/cmdline (after pid reuse it would not match). */
  marker: (args: string[]) => boolean;
}

const KAFKA: Managed = {
  name: "kafka",
  label: `Kafka ${KAFKA_VERSION}`,
  address: stackDefaults.kafkaBrokers[0]!,
  pidFile: join(stackDir, "kafka.pid"),
  logFile: join(logsDir, "kafka.log"),
  marker: (args) => args.includes("kafka.Kafka"),
};

const REGISTRY: Managed = {
  name: "registry",
  label: `Apicurio Registry ${APICURIO_VERSION}`,
  address: stackDefaults.registryUrl,
  pidFile: join(stackDir, "registry.pid"),
  logFile: join(logsDir, "registry.log"),
  marker: (args) => args.some((a) => a === "quarkus-run.jar" || a.endsWith("/quarkus-run.jar")),
};

// ---------------------------------------------------------------------------------------------
// Processes

function cmdline(pid: number): string[] | undefined {
  try {
    const raw = readFileSync(`/proc/${pid}/cmdline`, "utf8");
    if (raw === "") return undefined; // zombie or kernel thread
    return raw.split("\0").filter((a) => a !== "");
  } catch {
    return undefined;
  }
}

/** True when `pid` is alive and is still the java process we started for `svc`. */
function isOurs(svc: Managed, pid: number): boolean {
  const args = cmdline(pid);
  if (!args || args.length === 0) return false;
  return basename(args[0]!) === "java" && svc.marker(args);
}

function readPid(svc: Managed): number | undefined {
  try {
    const n = Number(readFileSync(svc.pidFile, "utf8").trim());
    return Number.isInteger(n) && n > 1 ? n : undefined;
  } catch {
    return undefined;
  }
}

/** Our live pid, or undefined (a stale pid file is removed). */
function livePid(svc: Managed): number | undefined {
  const pid = readPid(svc);
  if (pid === undefined) {
    if (existsSync(svc.pidFile)) rmSync(svc.pidFile, { force: true });
    return undefined;
  }
  if (isOurs(svc, pid)) return pid;
  rmSync(svc.pidFile, { force: true });
  return undefined;
}

async function stopPid(svc: Managed, pid: number): Promise<"stopped" | "killed"> {
  if (!isOurs(svc, pid)) return "stopped";
  try {
    process.kill(pid, "SIGTERM");
  } catch {
    return "stopped";
  }
  const deadline = Date.now() + STOP_TIMEOUT_MS;
  while (Date.now() < deadline) {
    if (!isOurs(svc, pid)) return "stopped";
    await sleep(200);
  }
  if (isOurs(svc, pid)) {
    try {
      process.kill(pid, "SIGKILL");
    } catch {
      /* already gone */
    }
  }
  const killDeadline = Date.now() + 5_000;
  while (Date.now() < killDeadline && isOurs(svc, pid)) await sleep(100);
  if (isOurs(svc, pid)) throw new StackError(`${svc.label} (pid ${pid}) did not exit after SIGKILL`);
  return "killed";
}

function tail(file: string, lines = LOG_TAIL_LINES): string {
  try {
    const all = readFileSync(file, "utf8").split("\n");
    while (all.length > 0 && all[all.length - 1] === "") all.pop();
    return all.slice(-lines).join("\n") || "(log is empty)";
  } catch {
    return "(no log written)";
  }
}

function failure(svc: Managed, why: string, cause?: unknown): StackError {
  return new StackError(
    `${svc.label} failed: ${why}\nLog: ${svc.logFile}\n--- last ${LOG_TAIL_LINES} lines of ${svc.logFile} ---\n${tail(svc.logFile)}\n---`,
    cause,
  );
}

/** Opens `<logsDir>/<name>.log` fresh for a new start, keeping the previous run's log as `.1`. */
function openFreshLog(file: string): number {
  mkdirSync(logsDir, { recursive: true });
  if (existsSync(file)) renameSync(file, `${file}.1`);
  return openSync(file, "a");
}

/** Spawns a detached java process whose output goes to the service's log; writes the pid file. */
function spawnJava(svc: Managed, java: string, args: string[], cwd: string): { child: ChildProcess; exited: () => string | undefined } {
  const fd = openFreshLog(svc.logFile);
  let exitInfo: string | undefined;
  let child: ChildProcess;
  try {
    child = spawn(java, args, { cwd, detached: true, stdio: ["ignore", fd, fd], env: process.env });
  } finally {
    closeSync(fd);
  }
  child.once("error", (err) => {
    exitInfo = `could not start java: ${err.message}`;
  });
  child.once("exit", (code, signal) => {
    exitInfo = signal ? `the java process was killed by ${signal}` : `the java process exited with code ${code}`;
  });
  child.unref();
  if (child.pid === undefined) throw failure(svc, `spawning ${java} returned no pid`);
  writeFileSync(svc.pidFile, `${child.pid}\n`);
  return { child, exited: () => exitInfo ?? (isOurs(svc, child.pid!) ? undefined : "the java process is gone") };
}

// ---------------------------------------------------------------------------------------------
// Tools: java and mvn

/** Major version of a java binary, or undefined when it cannot be run. Cached per binary. */
const javaVersions = new Map<string, number | undefined>();
function javaMajor(bin: string): number | undefined {
  if (javaVersions.has(bin)) return javaVersions.get(bin);
  const r = spawnSync(bin, ["-version"], { encoding: "utf8", timeout: 30_000 });
  let major: number | undefined;
  if (!r.error && r.status === 0) {
    const m = /version "(\d+)(?:\.(\d+))?/.exec(`${r.stderr}${r.stdout}`);
    if (m) major = m[1] === "1" ? Number(m[2]) : Number(m[1]);
  }
  javaVersions.set(bin, major);
  return major;
}

/**
 * A java binary of at least `min`: `java` on PATH first, then `$JAVA_HOME/bin/java`, then the
 * newest JVM under /usr/lib/jvm. (Kafka 4.3.1 runs on 17; Apicurio Registry 3.3.3's classes are
 * compiled for Java 21, class file 65, so it needs 21+ even where the default java is 17.)
 */
function findJava(min: number, who: string): string {
  const candidates = ["java"];
  if (process.env.JAVA_HOME) candidates.push(join(process.env.JAVA_HOME, "bin", "java"));
  let jvms: string[] = [];
  try {
    jvms = readdirSync("/usr/lib/jvm")
      .map((d) => join("/usr/lib/jvm", d, "bin", "java"))
      .filter((b) => existsSync(b));
  } catch {
    /* none */
  }
  const found: string[] = [];
  for (const bin of candidates) {
    const v = javaMajor(bin);
    if (v !== undefined && v >= min) return bin;
    if (v !== undefined) found.push(`${bin} is Java ${v}`);
  }
  const ranked = jvms
    .map((bin) => ({ bin, v: javaMajor(bin) }))
    .filter((x): x is { bin: string; v: number } => x.v !== undefined)
    .sort((a, b) => b.v - a.v);
  const best = ranked[0];
  if (best && best.v >= min) return best.bin;
  for (const x of ranked) found.push(`${x.bin} is Java ${x.v}`);
  const seen = found.length > 0 ? `Found: ${found.join("; ")}.` : "No java was found on PATH, in JAVA_HOME or under /usr/lib/jvm.";
  throw new StackError(
    `${who} needs a Java ${min}+ runtime. ${seen} Install one (Debian/Ubuntu: \`apt-get install openjdk-${min === 17 ? 17 : 21}-jre-headless\` ` +
      "where the distribution has it, or a Temurin build from packages.adoptium.net) and put it on PATH or point JAVA_HOME at it.",
  );
}

function requireMaven(what: string): void {
  const r = spawnSync("mvn", ["-v"], { encoding: "utf8" });
  if (r.error) {
    throw new StackError(
      `mvn was not found on PATH, and it is needed once to fetch ${what} from Maven Central into ${cacheDir}. ` +
        "Install Apache Maven 3.6.3 or later (Debian/Ubuntu: `apt-get install maven`), then run stack up again.",
    );
  }
}

function runMaven(args: string[], logFile: string): Promise<void> {
  return new Promise((resolvePromise, reject) => {
    mkdirSync(logsDir, { recursive: true });
    const fd = openSync(logFile, "w");
    const child = spawn("mvn", ["-B", ...args], { stdio: ["ignore", fd, fd] });
    closeSync(fd);
    child.once("error", reject);
    child.once("exit", (code, signal) => {
      if (code === 0) resolvePromise();
      else reject(new Error(signal ? `mvn was killed by ${signal}` : `mvn exited with code ${code}`));
    });
  });
}

/** Removes temporary fetch folders left by processes that no longer exist. */
function removeStaleTemps(prefix: string): void {
  let entries: string[];
  try {
    entries = readdirSync(cacheDir);
  } catch {
    return;
  }
  for (const e of entries) {
    const m = new RegExp(`^\\.${prefix}\\.tmp-(\\d+)-`).exec(e);
    if (m && !existsSync(`/proc/${m[1]}`)) rmSync(join(cacheDir, e), { recursive: true, force: true });
  }
}

/**
 * Fetches `dest` once: Maven runs against a copy of the POM inside a temporary folder (so its
 * `target/` and markers never land in the project), and the result is renamed into place.
 */
async function fetchOnce(opts: {
  dest: string;
  pom: string;
  what: string;
  print: Print;
  logFile: string;
  mavenArgs: (tmpPom: string, out: string) => string[];
  complete: (dir: string) => boolean;
}): Promise<void> {
  if (opts.complete(opts.dest)) return;
  requireMaven(opts.what);
  mkdirSync(cacheDir, { recursive: true });
  const name = basename(opts.dest);
  removeStaleTemps(name);
  const tmp = join(cacheDir, `.${name}.tmp-${process.pid}-${randomBytes(4).toString("hex")}`);
  const out = join(tmp, name);
  mkdirSync(tmp, { recursive: true });
  const started = Date.now();
  opts.print(`fetching ${opts.what} with Maven into ${opts.dest} (first run only; log: ${opts.logFile})`);
  try {
    const tmpPom = join(tmp, "pom.xml");
    copyFileSync(opts.pom, tmpPom);
    try {
      await runMaven(opts.mavenArgs(tmpPom, out), opts.logFile);
    } catch (e) {
      throw new StackError(
        `fetching ${opts.what} with Maven failed (${describeError(e)}). Maven Central must be reachable (check proxy settings in ~/.m2/settings.xml).\n` +
          `Log: ${opts.logFile}\n--- last ${LOG_TAIL_LINES} lines ---\n${tail(opts.logFile)}\n---`,
        e,
      );
    }
    if (!opts.complete(out)) {
      throw new StackError(`Maven finished but ${opts.what} is incomplete in ${out}. Log: ${opts.logFile}\n${tail(opts.logFile)}`);
    }
    try {
      renameSync(out, opts.dest);
    } catch (e) {
      // Another `stack up` may have finished the same fetch first.
      if (!opts.complete(opts.dest)) throw new StackError(`could not move ${out} to ${opts.dest}: ${describeError(e)}`, e);
    }
    opts.print(`fetched ${opts.what} in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
}

const kafkaComplete = (home: string) =>
  existsSync(join(home, "lib", `kafka_2.13-${KAFKA_VERSION}.jar`)) && existsSync(join(home, "lib", `kafka-clients-${KAFKA_VERSION}.jar`));
const apicurioComplete = (home: string) => existsSync(join(home, "quarkus-run.jar")) && existsSync(join(home, "app")) && existsSync(join(home, "lib"));

function fetchKafka(print: Print): Promise<void> {
  return fetchOnce({
    dest: kafkaHome,
    pom: join(projectRoot, "stack", "kafka", "pom.xml"),
    what: `Apache Kafka ${KAFKA_VERSION} jars`,
    print,
    logFile: join(logsDir, "fetch-kafka.log"),
    complete: kafkaComplete,
    mavenArgs: (pom, out) => ["-q", "-f", pom, "dependency:copy-dependencies", `-DoutputDirectory=${join(out, "lib")}`],
  });
}

function fetchApicurio(print: Print): Promise<void> {
  return fetchOnce({
    dest: apicurioHome,
    pom: join(projectRoot, "stack", "apicurio", "pom.xml"),
    what: `Apicurio Registry ${APICURIO_VERSION}`,
    print,
    logFile: join(logsDir, "fetch-registry.log"),
    complete: apicurioComplete,
    mavenArgs: (pom, out) => ["-q", "-f", pom, "dependency:unpack", `-Dapicurio.outputDirectory=${out}`],
  });
}

// ---------------------------------------------------------------------------------------------
// Probes

/** True when something accepts TCP connections on 127.0.0.1:port. */
function portOpen(port: number, timeoutMs = 1_000): Promise<boolean> {
  return new Promise((resolvePromise) => {
    const sock = connect({ host: "127.0.0.1", port });
    const done = (v: boolean) => {
      sock.destroy();
      resolvePromise(v);
    };
    sock.setTimeout(timeoutMs, () => done(false));
    sock.once("connect", () => done(true));
    sock.once("error", () => done(false));
  });
}

/** Metadata round trip (describeCluster), listTopics and the group coordinator through kafkajs; throws when not ready. */
async function kafkaProbe(opts: { warm?: boolean } = {}): Promise<{ brokers: number; topics: number }> {
  const kafka = new Kafka({
    clientId: "qobra-sync-stack",
    brokers: stackDefaults.kafkaBrokers,
    logLevel: logLevel.NOTHING,
    connectionTimeout: 1_500,
    requestTimeout: 5_000,
    retry: { retries: 0 },
  });
  const admin = kafka.admin();
  try {
    await admin.connect();
    const cluster = await admin.describeCluster();
    if (cluster.brokers.length === 0) throw new Error("no broker registered yet");
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

async function httpGet(url: string, timeoutMs = 3_000): Promise<{ status: number; body: string }> {
  const res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
  return { status: res.status, body: await res.text() };
}

async function registryProbe(): Promise<void> {
  const r = await httpGet(`${stackDefaults.registryUrl}/subjects`);
  if (r.status !== 200) throw new Error(`GET /subjects answered ${r.status}`);
}

async function registryCompatibility(): Promise<string | undefined> {
  const r = await httpGet(`${stackDefaults.registryUrl}/config`);
  if (r.status !== 200) return undefined;
  try {
    const body = JSON.parse(r.body) as { compatibilityLevel?: string; compatibility?: string };
    return body.compatibilityLevel ?? body.compatibility;
  } catch {
    return undefined;
  }
}

/** Makes sure the registry's global compatibility is BACKWARD (the start flag sets it; PUT if not). */
async function ensureBackward(print: Print): Promise<void> {
  if ((await registryCompatibility()) === "BACKWARD") return;
  const res = await fetch(`${stackDefaults.registryUrl}/config`, {
    method: "PUT",
    headers: { "content-type": "application/vnd.schemaregistry.v1+json" },
    body: JSON.stringify({ compatibility: "BACKWARD" }),
    signal: AbortSignal.timeout(5_000),
  });
  await res.text();
  const now = await registryCompatibility();
  if (now !== "BACKWARD") {
    throw new Error(`the global compatibility is ${now ?? "unknown"} and PUT /config answered ${res.status}; expected BACKWARD`);
  }
  print("registry: global compatibility set to BACKWARD through PUT /config");
}

async function waitReady(svc: Managed, probe: () => Promise<unknown>, exited: () => string | undefined): Promise<void> {
  const deadline = Date.now() + READY_TIMEOUT_MS;
  let last: unknown;
  for (;;) {
    const dead = exited();
    if (dead) throw failure(svc, `${dead} before it was ready`);
    try {
      await probe();
      return;
    } catch (e) {
      last = e;
    }
    if (Date.now() >= deadline) break;
    await sleep(500);
  }
  throw failure(svc, `not ready after ${READY_TIMEOUT_MS / 1000} s (last probe error: ${describeError(last)})`, last);
}

// ---------------------------------------------------------------------------------------------
// Kafka

function kafkaProperties(): string {
  return [
    "# Written by qobra-sync stack up (stack/stack.ts) on every start; edits are overwritten.",
    "# Single node, KRaft combined mode, loopback only.",
    "process.roles=broker,controller",
    "node.id=1",
    `controller.quorum.voters=1@127.0.0.1:${controllerPort}`,
    `listeners=PLAINTEXT://127.0.0.1:${kafkaPort},CONTROLLER://127.0.0.1:${controllerPort}`,
    `advertised.listeners=PLAINTEXT://127.0.0.1:${kafkaPort}`,
    "controller.listener.names=CONTROLLER",
    "inter.broker.listener.name=PLAINTEXT",
    "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
    `log.dirs=${kafkaDataDir}`,
    "num.partitions=1",
    "auto.create.topics.enable=true",
    "offsets.topic.replication.factor=1",
    "offsets.topic.num.partitions=1",
    "transaction.state.log.replication.factor=1",
    "transaction.state.log.min.isr=1",
    "transaction.state.log.num.partitions=1",
    "share.coordinator.state.topic.replication.factor=1",
    "share.coordinator.state.topic.min.isr=1",
    "min.insync.replicas=1",
    "log.cleaner.enable=true",
    "group.initial.rebalance.delay.ms=0",
    "",
  ].join("\n");
}

/** A Kafka cluster id: 16 random bytes, base64url without padding (22 chars), not starting with '-'. */
function newClusterId(): string {
  for (;;) {
    const id = randomBytes(16).toString("base64url");
    if (!id.startsWith("-")) return id;
  }
}

function formatKafkaStorage(java: string, print: Print): void {
  if (existsSync(join(kafkaDataDir, "meta.properties"))) return;
  const id = newClusterId();
  print(`kafka: formatting storage in ${kafkaDataDir} (cluster id ${id})`);
  const r = spawnSync(
    java,
    [`-Dlog4j2.configurationFile=${kafkaLog4j}`, "-cp", `${kafkaLib}/*`, "kafka.tools.StorageTool", "format", "-t", id, "-c", kafkaProps, "--ignore-formatted"],
    { encoding: "utf8", timeout: 60_000 },
  );
  if (r.status !== 0) {
    const out = `${r.stdout ?? ""}${r.stderr ?? ""}`.trim().split("\n").slice(-LOG_TAIL_LINES).join("\n");
    throw new StackError(
      `${KAFKA.label} failed: formatting its storage (kafka.tools.StorageTool format) ` +
        `${r.error ? `could not run: ${r.error.message}` : `exited with code ${r.status}`}\n${out}`,
    );
  }
}

async function upKafka(print: Print): Promise<ServiceStatus> {
  const base = { name: "kafka" as const, address: KAFKA.address, log: KAFKA.logFile };
  const pid = livePid(KAFKA);
  if (pid !== undefined) {
    await waitReady(
      KAFKA,
      () => kafkaProbe({ warm: true }),
      () => (isOurs(KAFKA, pid) ? undefined : "the java process is gone"),
    );
    print(`kafka: already running (pid ${pid}) at ${KAFKA.address}`);
    return { ...base, state: "running", pid, detail: "already running" };
  }
  if (await portOpen(kafkaPort)) {
    try {
      await kafkaProbe();
    } catch (e) {
      throw new StackError(
        `${KAFKA.label} failed: port ${kafkaPort} is taken by a program that does not answer as a Kafka broker ` +
          `(${describeError(e)}). Stop it, or set QOBRA_SYNC_KAFKA_PORT to a free port (the controller uses port+1).`,
        e,
      );
    }
    print(`kafka: a broker already answers at ${KAFKA.address} (not started by qobra-sync); using it`);
    return { ...base, state: "external", log: undefined, detail: "answering, but not started by qobra-sync (left alone)" };
  }
  if (await portOpen(controllerPort)) {
    throw new StackError(
      `${KAFKA.label} failed: its controller port ${controllerPort} (QOBRA_SYNC_KAFKA_PORT+1) is taken by another program. ` +
        "Free it, or set QOBRA_SYNC_KAFKA_PORT to another port.",
    );
  }
  const java = findJava(17, KAFKA.label);
  await fetchKafka(print);
  mkdirSync(kafkaDataDir, { recursive: true });
  writeFileSync(kafkaProps, kafkaProperties());
  formatKafkaStorage(java, print);
  const started = Date.now();
  print(`kafka: starting ${KAFKA.label} at ${KAFKA.address} with ${java} (log: ${KAFKA.logFile})`);
  const { child, exited } = spawnJava(
    KAFKA,
    java,
    [
      "-Xms256m",
      "-Xmx768m",
      "-XX:+UseG1GC",
      "-Djava.awt.headless=true",
      `-Dlog4j2.configurationFile=${kafkaLog4j}`,
      "-cp",
      `${kafkaLib}/*`,
      "kafka.Kafka",
      kafkaProps,
    ],
    kafkaStateDir,
  );
  try {
    await waitReady(KAFKA, () => kafkaProbe({ warm: true }), exited);
  } catch (e) {
    await stopPid(KAFKA, child.pid!).catch(() => undefined);
    rmSync(KAFKA.pidFile, { force: true });
    throw e;
  }
  const secs = ((Date.now() - started) / 1000).toFixed(1);
  print(`kafka: ready in ${secs} s (pid ${child.pid})`);
  return { ...base, state: "running", pid: child.pid!, detail: `started, ready in ${secs} s` };
}

// ---------------------------------------------------------------------------------------------
// Registry

async function upRegistry(print: Print): Promise<ServiceStatus> {
  const base = { name: "registry" as const, address: REGISTRY.address, log: REGISTRY.logFile };
  const pid = livePid(REGISTRY);
  if (pid !== undefined) {
    await waitReady(REGISTRY, registryProbe, () => (isOurs(REGISTRY, pid) ? undefined : "the java process is gone"));
    await ensureBackward(print).catch((e: unknown) => {
      throw failure(REGISTRY, describeError(e), e);
    });
    print(`registry: already running (pid ${pid}) at ${REGISTRY.address}`);
    return { ...base, state: "running", pid, detail: "already running" };
  }
  if (await portOpen(registryPort)) {
    try {
      await registryProbe();
    } catch (e) {
      throw new StackError(
        `${REGISTRY.label} failed: port ${registryPort} is taken by a program that does not answer ` +
          `GET /apis/ccompat/v7/subjects (${describeError(e)}). Stop it, or set QOBRA_SYNC_REGISTRY_PORT to a free port.`,
        e,
      );
    }
    const compat = await registryCompatibility().catch(() => undefined);
    print(`registry: a schema registry already answers at ${REGISTRY.address} (not started by qobra-sync); using it`);
    return {
      ...base,
      state: "external",
      log: undefined,
      detail: `answering, but not started by qobra-sync (left alone); global compatibility ${compat ?? "unknown"}`,
    };
  }
  if (await portOpen(registryMgmtPort)) {
    throw new StackError(
      `${REGISTRY.label} failed: its management port ${registryMgmtPort} is taken by another program. ` +
        "Free it, or set QOBRA_SYNC_REGISTRY_MGMT_PORT to another port.",
    );
  }
  const java = findJava(21, REGISTRY.label);
  await fetchApicurio(print);
  mkdirSync(registryDataDir, { recursive: true });
  const started = Date.now();
  print(`registry: starting ${REGISTRY.label} at ${REGISTRY.address} with ${java} (log: ${REGISTRY.logFile})`);
  const { child, exited } = spawnJava(
    REGISTRY,
    java,
    [
      "-Xms128m",
      "-Xmx512m",
      "-Dquarkus.http.host=127.0.0.1",
      `-Dquarkus.http.port=${registryPort}`,
      "-Dquarkus.management.host=127.0.0.1",
      `-Dquarkus.management.port=${registryMgmtPort}`,
      "-Dapicurio.rules.global.compatibility=BACKWARD",
      // Default storage is in-memory H2: every restart would forget the schemas (and reuse their ids)
      // while Kafka keeps the messages that reference them. A file keeps the two in step.
      `-Dapicurio.datasource.url=jdbc:h2:file:${join(registryDataDir, "registry")}`,
      "-jar",
      "quarkus-run.jar",
    ],
    apicurioHome,
  );
  try {
    await waitReady(REGISTRY, registryProbe, exited);
    await ensureBackward(print).catch((e: unknown) => {
      throw failure(REGISTRY, describeError(e), e);
    });
  } catch (e) {
    await stopPid(REGISTRY, child.pid!).catch(() => undefined);
    rmSync(REGISTRY.pidFile, { force: true });
    throw e;
  }
  const secs = ((Date.now() - started) / 1000).toFixed(1);
  print(`registry: ready in ${secs} s (pid ${child.pid})`);
  return { ...base, state: "running", pid: child.pid!, detail: `started, ready in ${secs} s; global compatibility BACKWARD` };
}

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

const noPrint: Print = () => undefined;

/**
 * Starts Kafka and the registry (in parallel) unless already running, waits until both really
 * answer, and checks PostgreSQL. Throws StackError naming the failed service, the reason, its log
 * path and the log's last lines. PostgreSQL being unavailable is reported, not thrown.
 */
export async function stackUp(opts: { print?: Print } = {}): Promise<ServiceStatus[]> {
  const print = opts.print ?? noPrint;
  mkdirSync(logsDir, { recursive: true });
  const [kafka, registry, postgres] = await Promise.allSettled([upKafka(print), upRegistry(print), postgresStatus()]);
  const errors = [kafka, registry].filter((r): r is PromiseRejectedResult => r.status === "rejected").map((r) => r.reason as unknown);
  if (errors.length > 0) {
    for (const e of errors) print(`stack up failed: ${describeError(e).split("\n")[0]}`);
    const message = errors.map((e) => (e instanceof Error ? e.message : String(e))).join("\n\n");
    throw new StackError(message, errors[0]);
  }
  const result = [kafka, registry, postgres].map((r) => (r as PromiseFulfilledResult<ServiceStatus>).value);
  const pgStatus = result[2]!;
  if (pgStatus.state === "unavailable") print(`postgres: unavailable — ${pgStatus.detail}`);
  else print(`postgres: answers at ${pgStatus.address}`);
  return result;
}

async function downOne(svc: Managed, print: Print): Promise<ServiceStatus> {
  const pid = readPid(svc);
  if (pid !== undefined && isOurs(svc, pid)) {
    print(`${svc.name}: stopping pid ${pid}`);
    const started = Date.now();
    const how = await stopPid(svc, pid);
    rmSync(svc.pidFile, { force: true });
    const secs = ((Date.now() - started) / 1000).toFixed(1);
    print(`${svc.name}: ${how === "killed" ? `killed after ${STOP_TIMEOUT_MS / 1000} s without exiting on SIGTERM` : "stopped"} (${secs} s)`);
    return { name: svc.name, state: "stopped", address: svc.address, log: svc.logFile, detail: `${how} pid ${pid} in ${secs} s` };
  }
  rmSync(svc.pidFile, { force: true });
  const answering = await portOpen(svc.name === "kafka" ? kafkaPort : registryPort);
  if (answering) {
    print(`${svc.name}: something answers at ${svc.address} that qobra-sync did not start; left alone`);
    return { name: svc.name, state: "external", address: svc.address, detail: "not started by qobra-sync; left alone" };
  }
  return { name: svc.name, state: "stopped", address: svc.address, log: svc.logFile, detail: "was not running" };
}

/** Stops what `stackUp` started (by pid), removes the pid files; never touches PostgreSQL or external services. */
export async function stackDown(opts: { print?: Print } = {}): Promise<ServiceStatus[]> {
  const print = opts.print ?? noPrint;
  const [kafka, registry, postgres] = await Promise.allSettled([downOne(KAFKA, print), downOne(REGISTRY, print), postgresStatus()]);
  const errors = [kafka, registry].filter((r): r is PromiseRejectedResult => r.status === "rejected").map((r) => r.reason as unknown);
  if (errors.length > 0) {
    throw new StackError(errors.map((e) => describeError(e)).join("\n"), errors[0]);
  }
  return [kafka, registry, postgres].map((r) => (r as PromiseFulfilledResult<ServiceStatus>).value);
}

async function statusOne(svc: Managed, probe: () => Promise<unknown>, port: number): Promise<ServiceStatus> {
  const pid = livePid(svc);
  if (pid !== undefined) {
    const ok = await probe().then(
      () => true,
      () => false,
    );
    return {
      name: svc.name,
      state: "running",
      pid,
      address: svc.address,
      log: svc.logFile,
      detail: ok ? "answering" : "process alive but not answering yet (starting, or unhealthy: see the log)",
    };
  }
  if (await portOpen(port)) {
    return { name: svc.name, state: "external", address: svc.address, detail: "answering, but not started by qobra-sync" };
  }
  return { name: svc.name, state: "stopped", address: svc.address, log: svc.logFile };
}

/** Reports each service without changing anything (stale pid files are removed). */
export async function stackStatus(): Promise<ServiceStatus[]> {
  return Promise.all([statusOne(KAFKA, () => kafkaProbe(), kafkaPort), statusOne(REGISTRY, registryProbe, registryPort), postgresStatus()]);
}
