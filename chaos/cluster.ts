/**
 * `npm run chaos`, three-broker part: a Kafka cluster of its own (three KRaft combined nodes on
 * CHAOS_CLUSTER_KAFKA_PORT, default the stack's Kafka port + 100, and the five ports after it;
 * state in `<stackDir>/chaos-cluster`, wiped before each run so that every run starts from a fresh
 * cluster), the `cluster` phase of chaos/pipeline-faults.ts against it in a process of its own
 * (chaos/cluster-child.ts: a full run of CHAOS_ROWS records with one broker SIGKILLed and restarted
 * meanwhile, topics with replication factor 3 and min.insync.replicas 2), then the cluster stopped.
 * The registry and PostgreSQL are the suite's own. CHAOS_CLUSTER_TIMEOUT_S (2400) bounds the part.
 */
import { spawn } from "node:child_process";
import { existsSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { stackDir } from "../lib/paths.ts";
import { downKafka, upKafka, type KafkaCluster } from "../stack/kafka.ts";
import { stackCluster } from "../stack/stack.ts";
import { ROOT } from "../support/reliability.ts";
import type { PhaseReport } from "./pipeline-faults.ts";

export interface ClusterRun {
  reports: PhaseReport[];
  id?: string;
  seed?: number;
  /** Why the part could not give a verdict (the cluster did not start, the scenario threw or timed out). */
  error?: string;
  clusterStartSeconds: number;
}

/** Runs the child in its own process group, so that a timeout or a Ctrl-C stops its roles too. */
function runChild(args: string[], env: NodeJS.ProcessEnv, timeoutMs: number): Promise<{ code: number | null; signal: string | null; interrupted: boolean }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, { cwd: ROOT, env, stdio: "inherit", detached: true });
    let interrupted = false;
    const killGroup = (signal: NodeJS.Signals) => {
      try {
        process.kill(-child.pid!, signal);
      } catch {
        /* gone */
      }
    };
    const forward = (signal: NodeJS.Signals) => {
      interrupted = true;
      killGroup(signal);
    };
    const onInt = () => forward("SIGINT");
    const onTerm = () => forward("SIGTERM");
    process.on("SIGINT", onInt);
    process.on("SIGTERM", onTerm);
    const timer = setTimeout(() => {
      killGroup("SIGTERM");
      setTimeout(() => killGroup("SIGKILL"), 30_000).unref();
    }, timeoutMs);
    child.once("error", reject);
    child.once("exit", (code, signal) => {
      clearTimeout(timer);
      process.off("SIGINT", onInt);
      process.off("SIGTERM", onTerm);
      // The roles the child started may outlive it when it was killed: end the group.
      killGroup("SIGKILL");
      resolve({ code, signal, interrupted });
    });
  });
}

export async function runClusterScenario(say: (line: string) => void): Promise<ClusterRun> {
  const port = Number(process.env.CHAOS_CLUSTER_KAFKA_PORT ?? stackCluster().port + 100);
  const dir = join(stackDir, "chaos-cluster");
  const cluster: KafkaCluster = { size: 3, port, stateDir: dir, logsDir: join(dir, "logs") };
  const print = (l: string) => say(`cluster: ${l}`);
  await downKafka(cluster, print);
  rmSync(dir, { recursive: true, force: true });
  const started = Date.now();
  try {
    await upKafka(cluster, print);
  } catch (e) {
    await downKafka(cluster, print).catch(() => undefined);
    return { reports: [], error: `the three-broker cluster did not start: ${(e as Error).message}`, clusterStartSeconds: (Date.now() - started) / 1000 };
  }
  const clusterStartSeconds = (Date.now() - started) / 1000;
  say(`cluster: three brokers up in ${clusterStartSeconds.toFixed(1)} s on ports ${port}-${port + 5} (logs in ${cluster.logsDir})`);
  const reportFile = join(dir, "child-report.json");
  try {
    const timeoutMs = Number(process.env.CHAOS_CLUSTER_TIMEOUT_S ?? 2400) * 1000;
    const env = { ...process.env, QOBRA_SYNC_KAFKA_PORT: String(port), QOBRA_SYNC_STACK_DIR: dir, CHAOS_PHASES: "cluster" };
    const exit = await runChild(["--disable-warning=TimeoutNegativeWarning", "chaos/cluster-child.ts", reportFile], env, timeoutMs);
    if (exit.interrupted) {
      await downKafka(cluster, print).catch(() => undefined);
      process.exit(130);
    }
    const result = existsSync(reportFile) ? (JSON.parse(readFileSync(reportFile, "utf8")) as Partial<ClusterRun>) : {};
    if (result.reports) return { reports: result.reports, id: result.id, seed: result.seed, clusterStartSeconds };
    return {
      reports: [],
      error: result.error ?? `the scenario's process ended (code ${exit.code}, signal ${exit.signal}) without a report`,
      clusterStartSeconds,
    };
  } finally {
    await downKafka(cluster, print);
  }
}
