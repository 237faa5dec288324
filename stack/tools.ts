/**
 * The tools the stack needs: a java runtime of the right version, and Maven, which fetches the
 * Kafka jars and the Apicurio Registry once from Maven Central into the cache (into a temporary
 * folder first, renamed when complete, so an interrupted fetch leaves no half cache).
 */
import { spawn, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { closeSync, copyFileSync, existsSync, mkdirSync, openSync, readdirSync, renameSync, rmSync } from "node:fs";
import { basename, join } from "node:path";
import { StackError, describeError } from "../lib/errors.ts";
import { cacheDir, logsDir, projectRoot } from "../lib/paths.ts";
import { LOG_TAIL_LINES, tail, type Print } from "./process.ts";

export const KAFKA_VERSION = "4.3.1";
export const APICURIO_VERSION = "3.3.3";
export const kafkaHome = join(cacheDir, `kafka-${KAFKA_VERSION}`);
export const kafkaLib = join(kafkaHome, "lib");
export const apicurioHome = join(cacheDir, `apicurio-${APICURIO_VERSION}`);

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
export function findJava(min: number, who: string): string {
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

export function fetchKafka(print: Print): Promise<void> {
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

export function fetchApicurio(print: Print): Promise<void> {
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
