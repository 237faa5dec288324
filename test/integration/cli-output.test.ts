/**
 * A quiet terminal, end to end against the real broker: a CLI command (`sync --full --wait` of a
 * small PostgreSQL connector, the pipeline running in another process) prints human lines only
 * on standard output and standard error, even at debug level, while its JSON log lines (ours and
 * the Kafka client's) go to the log file; `--verbose` sends them to standard error instead; `run`
 * (a service) keeps writing JSON lines on standard output; a failing command prints one human
 * line that says where the details are.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openRuntime, type Runtime } from "../../lib/runtime.ts";
import { withDb } from "../../support/env.ts";
import { eventually, type OpsFixture, opsFixture } from "../../support/ops.ts";

const dir = mkdtempSync(join(tmpdir(), "qobra-cli-output-"));
const logFile = join(dir, "logs", "cli.log");
const env = { ...process.env, QOBRA_SYNC_LOG_FILE: logFile, QOBRA_SYNC_LOG_LEVEL: "debug", KAFKAJS_NO_PARTITIONER_WARNING: "1" };
let fx: OpsFixture;
let rt: Runtime;
let file: string;
let pipeline: ChildProcess;
let pipelineOut = "";

const lines = (text: string) => text.split("\n").filter((l) => l.trim() !== "");

/** True when the line is a JSON value (what a log line is, and a human line never is). */
function isJson(line: string): boolean {
  try {
    JSON.parse(line);
    return true;
  } catch {
    return false;
  }
}

function cli(args: string[], extraEnv: Record<string, string> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ["--disable-warning=TimeoutNegativeWarning", "bin/qobra-sync.js", ...args], {
      env: { ...env, ...extraEnv },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d: Buffer) => (stdout += d.toString()));
    child.stderr.on("data", (d: Buffer) => (stderr += d.toString()));
    child.on("exit", (code) => resolve({ code: code ?? 1, stdout, stderr }));
  });
}

beforeAll(async () => {
  fx = await opsFixture("clo", 50);
  file = join(dir, "c.yaml");
  writeFileSync(file, fx.yaml);
  rt = await openRuntime(fx.config, "test");
  // The pipeline in another process, at info level, as a service runs.
  pipeline = spawn(process.execPath, ["--disable-warning=TimeoutNegativeWarning", "bin/qobra-sync.js", "-c", file, "run", "--roles", "producer,mapper,sink"], {
    env: { ...env, QOBRA_SYNC_LOG_LEVEL: "info" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  pipeline.stdout!.on("data", (d: Buffer) => (pipelineOut += d.toString()));
  pipeline.stderr!.on("data", () => undefined);
  await eventually(async () => /qobra-sync running/.test(pipelineOut) || (pipeline.exitCode !== null ? "exited" : false), {
    timeoutMs: 60_000,
    what: "the pipeline",
  });
  expect(pipeline.exitCode).toBeNull();
}, 90_000);

afterAll(async () => {
  if (pipeline && pipeline.exitCode === null) {
    pipeline.kill("SIGTERM");
    await new Promise((r) => pipeline.once("exit", r));
  }
  const admin = await rt?.port.admin();
  const topics = (await admin?.listTopics())?.filter((t) => t.startsWith(`${fx.id}.`)) ?? [];
  if (topics.length > 0) await admin?.deleteTopics({ topics }).catch(() => undefined);
  await rt?.close();
  await withDb("qobra_it_source", (c) => c.query(`DROP TABLE IF EXISTS public.${fx.table}`)).catch(() => undefined);
  rmSync(dir, { recursive: true, force: true });
});

describe("a quiet terminal", () => {
  it("sync --wait at debug level prints human lines only; its JSON log lines, kafkajs's among them, are in the log file", async () => {
    const r = await cli(["-c", file, "sync", "crm", "--full", "--wait"]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/completed: 50 records read and committed in the sink/);
    for (const line of [...lines(r.stdout), ...lines(r.stderr)]) expect(isJson(line), line).toBe(false);
    const logged = lines(readFileSync(logFile, "utf8"));
    expect(logged.length).toBeGreaterThan(0);
    for (const line of logged) expect(isJson(line), line).toBe(true);
    expect(logged.some((l) => (JSON.parse(l) as { component?: string }).component === "kafkajs")).toBe(true);
    // Retried broker answers (rebalances, leader elections) are never errors.
    const kafkaErrors = logged.filter((l) => (JSON.parse(l) as { component?: string; level: number }).component === "kafkajs" && JSON.parse(l).level >= 50);
    expect(kafkaErrors).toEqual([]);
  }, 120_000);

  it("--verbose sends the JSON log lines to standard error; standard output stays human", async () => {
    const r = await cli(["-c", file, "--verbose", "sync", "crm", "--wait"]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/completed/);
    for (const line of lines(r.stdout)) expect(isJson(line), line).toBe(false);
    expect(lines(r.stderr).filter(isJson).length).toBeGreaterThan(0);
  }, 120_000);

  it("run, a service, writes JSON log lines on standard output", () => {
    const out = lines(pipelineOut);
    expect(out.length).toBeGreaterThan(0);
    for (const line of out) expect(isJson(line), line).toBe(true);
    expect(out.some((l) => (JSON.parse(l) as { msg?: string }).msg === "qobra-sync running")).toBe(true);
    // Its roles joined their groups on new topics (rebalances): no Kafka client line at error level.
    expect(out.filter((l) => (JSON.parse(l) as { component?: string; level: number }).component === "kafkajs" && JSON.parse(l).level >= 50)).toEqual([]);
  });

  it("a failing command prints one human line saying where the details are, and the log file has them", async () => {
    const broken = join(dir, "broken.yaml");
    writeFileSync(broken, fx.yaml.replace(/brokers: \[[^\]]*\]/, 'brokers: ["127.0.0.1:1"]'));
    const failLog = join(dir, "fail.log");
    const r = await cli(["-c", broken, "sync", "crm", "--wait"], { QOBRA_SYNC_LOG_FILE: failLog });
    expect(r.code).toBe(1);
    expect(r.stdout).toBe("");
    expect(lines(r.stderr)).toHaveLength(1);
    expect(r.stderr).toMatch(/^qobra-sync: cannot reach the Kafka broker at 127\.0\.0\.1:1 .*\(details: \S*fail\.log\)\n$/);
    expect(existsSync(failLog)).toBe(true);
    const failed = lines(readFileSync(failLog, "utf8")).map((l) => JSON.parse(l) as { level: number; msg: string; err?: { stack?: string } });
    expect(failed.some((l) => l.level === 50 && l.msg === "command failed" && /cannot reach the Kafka broker/.test(l.err?.stack ?? ""))).toBe(true);
  }, 60_000);
});
