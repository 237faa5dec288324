/**
 * The local stack's processes: detached java processes with a pid file and a log each, recognised
 * again by their command line (so a reused pid is never taken for ours), stopped by pid only.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { connect } from "node:net";
import { basename, dirname } from "node:path";
import { StackError, describeError } from "../lib/errors.ts";
import { sleep } from "../lib/retry.ts";

export type Print = (line: string) => void;
export const noPrint: Print = () => undefined;

export interface ServiceStatus {
  name: "kafka" | "registry" | "postgres";
  /** `partial`: a cluster with some of its brokers running and some not. */
  state: "running" | "partial" | "stopped" | "external" | "unavailable";
  pid?: number;
  address: string;
  log?: string;
  detail?: string;
  /** A cluster of several brokers: each one's own status (its pid, its log). */
  brokers?: ServiceStatus[];
}

/** One java process the stack manages. */
export interface Managed {
  name: "kafka" | "registry";
  label: string;
  address: string;
  pidFile: string;
  logFile: string;
  /** Recognises our process in /proc/<pid>/cmdline (after pid reuse it would not match). */
  marker: (args: string[]) => boolean;
}

export const READY_TIMEOUT_MS = 120_000;
export const STOP_TIMEOUT_MS = 30_000;
export const LOG_TAIL_LINES = 20;

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
export function isOurs(svc: Managed, pid: number): boolean {
  const args = cmdline(pid);
  if (!args || args.length === 0) return false;
  return basename(args[0]!) === "java" && svc.marker(args);
}

export function readPid(svc: Managed): number | undefined {
  try {
    const n = Number(readFileSync(svc.pidFile, "utf8").trim());
    return Number.isInteger(n) && n > 1 ? n : undefined;
  } catch {
    return undefined;
  }
}

/** Our live pid, or undefined (a stale pid file is removed). */
export function livePid(svc: Managed): number | undefined {
  const pid = readPid(svc);
  if (pid === undefined) {
    if (existsSync(svc.pidFile)) rmSync(svc.pidFile, { force: true });
    return undefined;
  }
  if (isOurs(svc, pid)) return pid;
  rmSync(svc.pidFile, { force: true });
  return undefined;
}

/** SIGTERM, then SIGKILL after STOP_TIMEOUT_MS; only when `pid` is still ours. */
export async function stopPid(svc: Managed, pid: number): Promise<"stopped" | "killed"> {
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

/** Stops `svc` if its pid file names a live process of ours (printed as `who`); removes the pid file. */
export async function stopManaged(svc: Managed, print: Print, who: string = svc.name): Promise<ServiceStatus | undefined> {
  const pid = readPid(svc);
  if (pid === undefined || !isOurs(svc, pid)) {
    rmSync(svc.pidFile, { force: true });
    return undefined;
  }
  print(`${who}: stopping pid ${pid}`);
  const started = Date.now();
  const how = await stopPid(svc, pid);
  rmSync(svc.pidFile, { force: true });
  const secs = ((Date.now() - started) / 1000).toFixed(1);
  print(`${who}: ${how === "killed" ? `killed after ${STOP_TIMEOUT_MS / 1000} s without exiting on SIGTERM` : "stopped"} (${secs} s)`);
  return { name: svc.name, state: "stopped", address: svc.address, log: svc.logFile, detail: `${how} pid ${pid} in ${secs} s` };
}

export function tail(file: string, lines = LOG_TAIL_LINES): string {
  try {
    const all = readFileSync(file, "utf8").split("\n");
    while (all.length > 0 && all[all.length - 1] === "") all.pop();
    return all.slice(-lines).join("\n") || "(log is empty)";
  } catch {
    return "(no log written)";
  }
}

export function failure(svc: Managed, why: string, cause?: unknown): StackError {
  return new StackError(
    `${svc.label} failed: ${why}\nLog: ${svc.logFile}\n--- last ${LOG_TAIL_LINES} lines of ${svc.logFile} ---\n${tail(svc.logFile)}\n---`,
    cause,
  );
}

/** Opens a service's log fresh for a new start, keeping the previous run's log as `.1`. */
function openFreshLog(file: string): number {
  mkdirSync(dirname(file), { recursive: true });
  if (existsSync(file)) renameSync(file, `${file}.1`);
  return openSync(file, "a");
}

export interface Spawned {
  child: ChildProcess;
  /** Why the process is gone, or undefined while it runs. */
  exited: () => string | undefined;
}

/** Spawns a detached java process whose output goes to the service's log; writes the pid file. */
export function spawnJava(svc: Managed, java: string, args: string[], cwd: string): Spawned {
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

/** True when something accepts TCP connections on 127.0.0.1:port. */
export function portOpen(port: number, timeoutMs = 1_000): Promise<boolean> {
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

/**
 * Probes until `probe` resolves; fails at once when a process is gone (`exited` names it and why),
 * or after READY_TIMEOUT_MS with the last probe error.
 */
export async function waitReady(svc: Managed, probe: () => Promise<unknown>, exited: () => { svc: Managed; why: string } | string | undefined): Promise<void> {
  const deadline = Date.now() + READY_TIMEOUT_MS;
  let last: unknown;
  for (;;) {
    const dead = exited();
    if (dead) throw typeof dead === "string" ? failure(svc, `${dead} before it was ready`) : failure(dead.svc, `${dead.why} before it was ready`);
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
