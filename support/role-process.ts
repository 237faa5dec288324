/**
 * The pipeline's roles as processes, for the reliability suite (support/reliability.ts, the crash,
 * zombie and SIGTERM tests, `npm run chaos`): `node bin/qobra-sync.js -c FILE run --roles X`, its
 * log kept per process, SIGKILL (worker and launcher), SIGTERM, SIGSTOP/SIGCONT, and an optional
 * restart after an exit nobody asked for (as systemd's Restart=always would).
 */
import { spawn, type ChildProcess } from "node:child_process";
import { closeSync, existsSync, openSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

export const ROOT = fileURLToPath(new URL("..", import.meta.url));
export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Where a role process finds its config and writes its log (a reliability Scenario has both). */
export interface RoleSetting {
  configFile: string;
  logDir: string;
}

export type RoleName = "producer" | "mapper" | "sink";

/** The process `bin/qobra-sync.js` re-executes itself into (bounded heap): the one doing the work. */
function workerPid(launcherPid: number): number | undefined {
  try {
    const kids = readFileSync(`/proc/${launcherPid}/task/${launcherPid}/children`, "utf8").trim().split(/\s+/).filter(Boolean).map(Number);
    return kids[0];
  } catch {
    return undefined;
  }
}

function alive(pid: number | undefined): boolean {
  if (!pid) return false;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return !/^\d+ \(.*\) Z/.test(stat);
  } catch {
    return false;
  }
}

/** One role of the pipeline as its own process (the CLI launcher and the worker it re-executes). */
export class RoleProcess {
  readonly role: RoleName;
  /** The role, or a name of its own when a scenario runs two processes of one role (its log file). */
  readonly name: string;
  private readonly s: RoleSetting;
  private child: ChildProcess | undefined;
  starts = 0;
  kills = 0;
  lastExit: { code: number | null; signal: string | null } | undefined;
  /** Exits nobody asked for (a crash), with the end of the log; restarted after 1 s when `supervise` is on (as systemd's Restart=always would). */
  readonly crashes: Array<{ at: string; code: number | null; signal: string | null; logTail: string }> = [];
  supervise: boolean;
  private expectingExit = false;

  constructor(role: RoleName, s: RoleSetting, opts: { supervise?: boolean; name?: string } = {}) {
    this.role = role;
    this.name = opts.name ?? role;
    this.s = s;
    this.supervise = opts.supervise ?? true;
  }

  get log(): string {
    return join(this.s.logDir, `${this.name}.log`);
  }

  start(): void {
    if (this.child && this.child.exitCode === null && this.child.signalCode === null) return;
    const fd = openSync(this.log, "a");
    writeFileSync(fd, `\n===== start #${++this.starts} of ${this.name} at ${new Date().toISOString()} =====\n`);
    try {
      this.child = spawn(
        process.execPath,
        ["--disable-warning=TimeoutNegativeWarning", "bin/qobra-sync.js", "-c", this.s.configFile, "run", "--roles", this.role],
        {
          cwd: ROOT,
          stdio: ["ignore", fd, fd],
          env: { ...process.env, QOBRA_SYNC_LOG_LEVEL: process.env.CHAOS_LOG_LEVEL ?? "info", KAFKAJS_NO_PARTITIONER_WARNING: "1" },
        },
      );
    } finally {
      closeSync(fd);
    }
    const child = this.child;
    this.expectingExit = false;
    child.on("exit", (code, signal) => {
      this.lastExit = { code, signal };
      if (this.expectingExit || this.child !== child) return;
      const tail = existsSync(this.log) ? readFileSync(this.log, "utf8").split("\n").filter(Boolean).slice(-12).join("\n") : "";
      this.crashes.push({ at: new Date().toISOString(), code, signal, logTail: tail });
      if (this.supervise)
        setTimeout(() => {
          if (!this.expectingExit && this.child === child) this.start();
        }, 1000);
    });
  }

  get running(): boolean {
    return !!this.child && this.child.exitCode === null && this.child.signalCode === null;
  }
  get pid(): number | undefined {
    return this.child?.pid;
  }

  /** The worker process (the one doing the work), once the launcher has started it. */
  async worker(): Promise<number | undefined> {
    const launcher = this.child?.pid;
    for (let i = 0; i < 100 && launcher !== undefined && this.running; i++) {
      const w = workerPid(launcher);
      if (w !== undefined) return w;
      await sleep(50);
    }
    return undefined;
  }

  /** SIGSTOP (freeze, as a long GC pause or a stalled VM would) or SIGCONT the worker process. */
  async freeze(on: boolean): Promise<void> {
    const w = await this.worker();
    if (w === undefined) throw new Error(`${this.name} has no worker process to ${on ? "stop" : "continue"}`);
    process.kill(w, on ? "SIGSTOP" : "SIGCONT");
  }

  /** SIGKILLs the worker process (as an OOM kill or a power cut would), then the launcher if it is still there. */
  async kill9(): Promise<void> {
    const launcher = this.child;
    if (!launcher?.pid) return;
    this.expectingExit = true;
    // The worker appears a moment after the launcher starts; a kill that early hits the launcher alone.
    let worker = workerPid(launcher.pid);
    for (let i = 0; i < 20 && worker === undefined && this.running; i++) {
      await sleep(50);
      worker = workerPid(launcher.pid);
    }
    if (worker) {
      try {
        process.kill(worker, "SIGKILL");
      } catch {
        /* gone */
      }
    }
    try {
      launcher.kill("SIGKILL");
    } catch {
      /* gone */
    }
    const deadline = Date.now() + 10_000;
    while ((this.running || alive(worker)) && Date.now() < deadline) await sleep(50);
    if (alive(worker)) throw new Error(`${this.role} worker ${worker} survived SIGKILL`);
    this.kills++;
  }

  /** SIGTERM (clean stop), then SIGKILL after `graceMs`. */
  async stop(graceMs = 35_000): Promise<void> {
    const launcher = this.child;
    if (!launcher?.pid || !this.running) return;
    this.expectingExit = true;
    const worker = workerPid(launcher.pid);
    launcher.kill("SIGTERM");
    const deadline = Date.now() + graceMs;
    while ((this.running || alive(worker)) && Date.now() < deadline) await sleep(100);
    if (this.running || alive(worker)) await this.kill9();
  }

  /** The log lines (all starts) that match. */
  lines(re: RegExp): string[] {
    if (!existsSync(this.log)) return [];
    return readFileSync(this.log, "utf8")
      .split("\n")
      .filter((l) => re.test(l));
  }

  /** The worker's log lines at error level or above (pino JSON, level >= 50). */
  errors(): string[] {
    if (!existsSync(this.log)) return [];
    return readFileSync(this.log, "utf8")
      .split("\n")
      .filter((l) => {
        try {
          return (JSON.parse(l) as { level?: number }).level! >= 50;
        } catch {
          return false;
        }
      });
  }
}

export function startRoles(s: RoleSetting, roles: RoleName[], opts: { supervise?: boolean } = {}): Record<RoleName, RoleProcess> {
  const out = {} as Record<RoleName, RoleProcess>;
  for (const r of roles) {
    out[r] = new RoleProcess(r, s, opts);
    out[r].start();
  }
  return out;
}
