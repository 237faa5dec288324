/**
 * `qobra-sync sync <c> --wait` when the pipeline is not (all) running, as a user runs it (the CLI
 * and the roles as separate processes, against the real broker): without a producer it says so
 * within 10 s, says how to start one, sends nothing and exits 1; with a producer but neither mapper
 * nor sink, it warns after 10 s naming both missing roles, and completes once they start.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { endOffsets } from "../../lib/kafka.ts";
import { openRuntime, type Runtime } from "../../lib/runtime.ts";
import { withDb } from "../../support/env.ts";
import { eventually, type OpsFixture, opsFixture, sinkQuery } from "../../support/ops.ts";

const dir = mkdtempSync(join(tmpdir(), "qobra-cli-wait-"));
const env = { ...process.env, QOBRA_SYNC_LOG_FILE: join(dir, "cli.log"), QOBRA_SYNC_LOG_LEVEL: "info", KAFKAJS_NO_PARTITIONER_WARNING: "1" };
const children: ChildProcess[] = [];
let fx: OpsFixture;
let rt: Runtime;
let file: string;

interface Proc {
  child: ChildProcess;
  out: () => string;
  err: () => string;
  exit: Promise<number>;
}

function start(args: string[]): Proc {
  const child = spawn(process.execPath, ["--disable-warning=TimeoutNegativeWarning", "bin/qobra-sync.js", "-c", file, ...args], {
    env,
    stdio: ["ignore", "pipe", "pipe"],
  });
  children.push(child);
  let out = "";
  let err = "";
  child.stdout!.on("data", (d: Buffer) => (out += d.toString()));
  child.stderr!.on("data", (d: Buffer) => (err += d.toString()));
  const exit = new Promise<number>((resolve) => child.on("exit", (code, signal) => resolve(code ?? (signal ? 128 : 0))));
  return { child, out: () => out, err: () => err, exit };
}

/** Starts `run --roles <roles>` and waits until it says it runs. */
async function startRoles(roles: string): Promise<Proc> {
  const p = start(["run", "--roles", roles]);
  await eventually(async () => /qobra-sync running/.test(p.out()) || (p.child.exitCode !== null ? "exited" : false), {
    timeoutMs: 60_000,
    what: `run --roles ${roles}`,
  });
  expect(p.child.exitCode, p.err()).toBeNull();
  return p;
}

async function stop(p: Proc): Promise<void> {
  if (p.child.exitCode === null) p.child.kill("SIGTERM");
  await p.exit;
}

beforeAll(async () => {
  fx = await opsFixture("clw", 5);
  file = join(dir, "c.yaml");
  writeFileSync(file, fx.yaml);
  // The topics exist, as after any earlier run: the command's time is its own.
  rt = await openRuntime(fx.config, "test");
});

afterAll(async () => {
  for (const c of children) if (c.exitCode === null) c.kill("SIGTERM");
  const admin = await rt?.port.admin();
  const topics = (await admin?.listTopics())?.filter((t) => t.startsWith(`${fx.id}.`)) ?? [];
  if (topics.length > 0) await admin?.deleteTopics({ topics }).catch(() => undefined);
  await rt?.close();
  await withDb("qobra_it_source", (c) => c.query(`DROP TABLE IF EXISTS public.${fx.table}`)).catch(() => undefined);
  rmSync(dir, { recursive: true, force: true });
});

describe("sync --wait without a pipeline", () => {
  it("with no producer running: says so within 10 s, how to start one, sends no request, exits 1", async () => {
    const started = Date.now();
    const p = start(["sync", "crm", "--wait"]);
    const code = await p.exit;
    const elapsed = Date.now() - started;
    expect(code).toBe(1);
    expect(elapsed).toBeLessThan(10_000);
    const lines = p.err().trim().split("\n");
    expect(lines, p.err()).toHaveLength(1);
    expect(lines[0]).toMatch(/^qobra-sync: no producer is running for topic prefix \S+ \(consumer group \S+-producers has no member\)/);
    expect(lines[0]).toContain("`qobra-sync run --roles producer`");
    expect(lines[0]).toContain("`npm run demo`");
    expect(p.out()).toBe("");
    const requests = await endOffsets(await rt.port.admin(), rt.port.topics.syncRequests);
    expect([...requests.values()].reduce((a, b) => a + b, 0)).toBe(0);
  }, 30_000);

  it("with a producer but no mapper or sink: warns after 10 s naming both, and completes once they run", async () => {
    const producer = await startRoles("producer");
    try {
      const started = Date.now();
      const sync = start(["sync", "crm", "--full", "--wait", "--timeout", "120"]);
      await eventually(async () => /no mapper is running/.test(sync.err()) && /no sink is running/.test(sync.err()), {
        timeoutMs: 30_000,
        what: "the warnings",
      });
      const warnedAfter = Date.now() - started;
      expect(warnedAfter).toBeGreaterThanOrEqual(10_000);
      expect(warnedAfter).toBeLessThan(25_000);
      expect(sync.child.exitCode).toBeNull(); // a warning, not a failure: it still waits
      expect(sync.err()).toMatch(/qobra-sync: warning: no mapper is running \(consumer group \S+-mapper has had no member for \d+ s\)/);
      expect(sync.err()).toContain("`qobra-sync run --roles mapper`");
      expect(sync.err()).toContain("`qobra-sync run --roles sink`");
      expect(sync.err()).not.toMatch(/no producer is running/);
      const rest = await startRoles("mapper,sink");
      try {
        expect(await sync.exit, sync.err()).toBe(0);
        expect(sync.out()).toMatch(/completed: 5 records read and committed in the sink/);
        const [row] = await sinkQuery<{ n: number }>(`SELECT count(*)::int AS n FROM "${fx.sinkSchema}"."crm__deals"`);
        expect(row!.n).toBe(5);
      } finally {
        await stop(rest);
      }
    } finally {
      await stop(producer);
    }
  }, 150_000);
});
