/**
 * The Debezium JDBC sink connector (io.debezium:debezium-connector-jdbc) on Kafka Connect
 * standalone, from the same Kafka version as the local stack, for bench/sink.ts.
 *
 * Jars are fetched once by Maven (bench/debezium/pom.xml) into `<cache>/connect-<kafka>/lib`
 * (connect-runtime, connect-json, connect-file and their dependencies) and
 * `<cache>/connect-<kafka>/plugins/debezium-connector-jdbc` (a plugin.path folder: the connector
 * with its own Hibernate, c3p0 and JDBC drivers, isolated from Connect's classpath).
 *
 * Version: 3.5.0.Final. 3.6.0.Final and 3.7.0.Final are not usable from Maven Central here:
 * 3.7.0.Final's connector jar is not served, and 3.6.0.Final depends on
 * org.hibernate:hibernate-agroal:7.2.6.Final, which Central does not serve either.
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { randomBytes } from "node:crypto";
import { copyFileSync, existsSync, mkdirSync, openSync, closeSync, readdirSync, renameSync, rmSync, writeFileSync, readFileSync } from "node:fs";
import { createServer } from "node:net";
import { homedir } from "node:os";
import { join } from "node:path";
import { cacheDir } from "../lib/paths.ts";
import { stackDefaults } from "../stack/stack.ts";
import { ROOT, log } from "./common.ts";

const KAFKA_VERSION = "4.3.1";
export const DEBEZIUM_VERSION = process.env.BENCH_DEBEZIUM_VERSION ?? "3.5.0.Final";
const home = join(cacheDir, `connect-${KAFKA_VERSION}`);
const libDir = join(home, "lib");
const pluginsDir = join(home, `plugins-${DEBEZIUM_VERSION}`);
const pluginDir = join(pluginsDir, "debezium-connector-jdbc");

function mvn(args: string[], logFile: string): void {
  // Debezium's POMs declare Confluent's repository, which this machine cannot reach; when the user
  // has no Maven settings of their own, resolve everything from Maven Central only.
  const settings = join(homedir(), ".m2", "settings.xml");
  const extra: string[] = [];
  if (!existsSync(settings)) {
    const own = join(home, "central-only-settings.xml");
    mkdirSync(home, { recursive: true });
    writeFileSync(
      own,
      "<settings><mirrors><mirror><id>central-only</id><mirrorOf>*</mirrorOf><url>https://repo.maven.apache.org/maven2</url></mirror></mirrors></settings>\n",
    );
    extra.push("-s", own);
  }
  const fd = openSync(logFile, "w");
  const r = spawnSync("mvn", ["-B", "-q", ...extra, ...args], { stdio: ["ignore", fd, fd], timeout: 1_200_000 });
  closeSync(fd);
  if (r.error) throw new Error(`Maven could not run (${r.error.message}); install Apache Maven to fetch Kafka Connect and Debezium`);
  if (r.status !== 0)
    throw new Error(
      `Maven failed (exit ${r.status}); see ${logFile}:\n${readFileSync(logFile, "utf8")
        .split("\n")
        .filter((l) => l.includes("ERROR"))
        .slice(0, 3)
        .join("\n")}`,
    );
}

/** Fetches Kafka Connect and the Debezium JDBC sink once (into a temporary folder, renamed when complete). */
function ensureConnect(): void {
  const logs = join(ROOT, ".stack", "logs");
  mkdirSync(logs, { recursive: true });
  for (const [dest, profile, ok] of [
    [libDir, "connect", () => existsSync(join(libDir, `connect-runtime-${KAFKA_VERSION}.jar`))],
    [pluginDir, "debezium", () => existsSync(join(pluginDir, `debezium-connector-jdbc-${DEBEZIUM_VERSION}.jar`))],
  ] as const) {
    if (ok()) continue;
    const tmp = join(cacheDir, `.connect.tmp-${process.pid}-${randomBytes(4).toString("hex")}`);
    mkdirSync(tmp, { recursive: true });
    log(
      `fetching ${profile === "connect" ? `Kafka Connect ${KAFKA_VERSION}` : `Debezium JDBC sink ${DEBEZIUM_VERSION}`} with Maven into ${dest} (first run only)`,
    );
    try {
      copyFileSync(join(ROOT, "bench", "debezium", "pom.xml"), join(tmp, "pom.xml"));
      mvn(
        [
          "-f",
          join(tmp, "pom.xml"),
          "-P",
          profile,
          `-Dkafka.version=${KAFKA_VERSION}`,
          `-Ddebezium.version=${DEBEZIUM_VERSION}`,
          "dependency:copy-dependencies",
          `-DoutputDirectory=${join(tmp, "out")}`,
        ],
        join(logs, `fetch-${profile}.log`),
      );
      mkdirSync(join(dest, ".."), { recursive: true });
      renameSync(join(tmp, "out"), dest);
    } finally {
      rmSync(tmp, { recursive: true, force: true });
    }
  }
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.listen(0, "127.0.0.1", () => {
      const p = (srv.address() as { port: number }).port;
      srv.close(() => resolve(p));
    });
    srv.on("error", reject);
  });
}

function java17(): string {
  const candidates = ["java", ...(process.env.JAVA_HOME ? [join(process.env.JAVA_HOME, "bin", "java")] : [])];
  try {
    candidates.push(...readdirSync("/usr/lib/jvm").map((d) => join("/usr/lib/jvm", d, "bin", "java")));
  } catch {
    /* none */
  }
  for (const bin of candidates) {
    const r = spawnSync(bin, ["-version"], { encoding: "utf8" });
    const m = /version "(\d+)/.exec(`${r.stderr ?? ""}${r.stdout ?? ""}`);
    if (m && Number(m[1]) >= 17) return bin;
  }
  throw new Error("Kafka Connect and Debezium need Java 17+; none found");
}

interface DebeziumRun {
  child: ChildProcess;
  logFile: string;
  stop(): Promise<void>;
}

/**
 * Starts Kafka Connect standalone with one Debezium JDBC sink connector consuming `topic` (string
 * keys, JSON values with schemas) into `table` (schema.table, created beforehand), upserting on
 * the record key (`_external_id`).
 */
export async function startDebeziumSink(opts: {
  name: string;
  topic: string;
  table: string;
  database: string;
  tasks: number;
  batchSize: number;
  rewriteBatches?: boolean;
}): Promise<DebeziumRun> {
  ensureConnect();
  const dir = join(ROOT, ".stack", "connect", opts.name);
  mkdirSync(dir, { recursive: true });
  const restPort = await freePort();
  writeFileSync(
    join(dir, "worker.properties"),
    [
      `bootstrap.servers=${stackDefaults.kafkaBrokers.join(",")}`,
      "key.converter=org.apache.kafka.connect.storage.StringConverter",
      "value.converter=org.apache.kafka.connect.json.JsonConverter",
      "value.converter.schemas.enable=true",
      `offset.storage.file.filename=${join(dir, "connect.offsets")}`,
      "offset.flush.interval.ms=10000",
      `plugin.path=${pluginsDir}`,
      `listeners=http://127.0.0.1:${restPort}`,
      "connector.client.config.override.policy=All",
      "",
    ].join("\n"),
  );
  const pgUrl = new URL(stackDefaults.postgresUrl);
  writeFileSync(
    join(dir, "connector.properties"),
    [
      `name=${opts.name}`,
      "connector.class=io.debezium.connector.jdbc.JdbcSinkConnector",
      `tasks.max=${opts.tasks}`,
      `topics=${opts.topic}`,
      // stringtype=unspecified: decimals travel as exact decimal strings (as in the mapped topics) and PostgreSQL casts them to numeric;
      // reWriteBatchedInserts: pgjdbc's usual batch tuning (multi-row INSERTs).
      `connection.url=jdbc:postgresql://${pgUrl.hostname}:${pgUrl.port || 5432}/${opts.database}?stringtype=unspecified${opts.rewriteBatches === false ? "" : "&reWriteBatchedInserts=true"}`,
      `connection.username=${decodeURIComponent(pgUrl.username || "postgres")}`,
      `connection.password=${decodeURIComponent(pgUrl.password)}`,
      "insert.mode=upsert",
      "delete.enabled=false",
      "primary.key.mode=record_value", // record_key with a string key fails in 3.5.0.Final (KafkaDebeziumSinkRecord.keyAsStruct casts it to a Struct)
      "primary.key.fields=_external_id",
      "schema.evolution=none",
      `collection.name.format=${opts.table}`,
      `batch.size=${opts.batchSize}`,
      `consumer.override.max.poll.records=${opts.batchSize}`,
      "consumer.override.auto.offset.reset=earliest",
      "use.time.zone=UTC",
      "",
    ].join("\n"),
  );
  writeFileSync(
    join(dir, "log4j2.properties"),
    [
      "status = warn",
      "appender.file.type = File",
      "appender.file.name = FILE",
      `appender.file.fileName = ${join(dir, "connect.log")}`,
      "appender.file.layout.type = PatternLayout",
      "appender.file.layout.pattern = [%d] %p %m (%c)%n",
      "rootLogger.level = INFO",
      "rootLogger.appenderRef.file.ref = FILE",
      "logger.kafka.name = org.apache.kafka",
      "logger.kafka.level = WARN",
      "logger.hibernate.name = org.hibernate",
      "logger.hibernate.level = WARN",
      "logger.c3p0.name = com.mchange",
      "logger.c3p0.level = WARN",
      "",
    ].join("\n"),
  );
  const logFile = join(dir, "stdout.log");
  const fd = openSync(logFile, "w");
  const child = spawn(
    java17(),
    [
      "-Xms256m",
      "-Xmx768m",
      "-XX:+UseG1GC",
      "-Djava.awt.headless=true",
      `-Dlog4j2.configurationFile=${join(dir, "log4j2.properties")}`,
      "-cp",
      `${libDir}/*`,
      "org.apache.kafka.connect.cli.ConnectStandalone",
      join(dir, "worker.properties"),
      join(dir, "connector.properties"),
    ],
    { cwd: dir, stdio: ["ignore", fd, fd] },
  );
  closeSync(fd);
  return {
    child,
    logFile: join(dir, "connect.log"),
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise<void>((r) => child.once("exit", () => r()));
      child.kill("SIGTERM");
      const t = setTimeout(() => child.kill("SIGKILL"), 20_000);
      await exited;
      clearTimeout(t);
    },
  };
}

/** Task failures Connect logged (the reason Debezium stopped), if any. */
export function connectErrors(logFile: string): string[] {
  try {
    return readFileSync(logFile, "utf8")
      .split("\n")
      .filter((l) => / ERROR /.test(l))
      .slice(0, 5);
  } catch {
    return [];
  }
}
