/**
 * `npm run chaos`, infrastructure part: one PostgreSQL source (CHAOS_ROWS, default 300,000) synced by
 * producer, mapper and sink as separate processes, through five phases, each a full run after some
 * source rows changed and some were deleted, each hit by one kind of fault:
 *
 *   roles     SIGKILL of the producer, the mapper and the sink at random points (restarted after a while);
 *             a producer killed mid-run takes its run down: the run is requested again until it completes
 *   broker    the Kafka broker SIGKILLed mid-run (the first one of a cluster), then `stackUp()`
 *   postgres  PostgreSQL stopped mid-run (`pg_ctlcluster 15 main stop -m fast`), started again 5 s later;
 *             CHAOS_PG_CLUSTER="15 other" names another cluster (with QOBRA_SYNC_PG_URL pointing at it),
 *             so that the suite can run beside other work on this machine
 *   registry  the schema registry stopped mid-run, and the mapper and sink SIGKILLed and restarted
 *             while it is down (so they must fetch schemas), then the registry is started again
 *
 *   cluster   one broker of three SIGKILLed mid-run (chosen by the seed) and restarted 10-25 s later
 *             (chaos/cluster-fault.ts); needs a three-broker stack: `npm run chaos` runs it on a
 *             cluster of its own (chaos/cluster.ts), not among the default phases here
 *
 * After each phase: every source record in the sink exactly once with the source's values, deletes
 * applied, no dead letters, no lag, offsets stored with the data at the end. CHAOS_PHASES selects
 * phases (default all); CHAOS_SEED replays a schedule. Writes .stack/logs/chaos/<id>/report.json.
 *
 * Restarting the broker and PostgreSQL disturbs anything else using them on this machine: run it alone.
 */
import { spawnSync } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Runtime } from "../lib/runtime.ts";
import { eventsPosition, waitForRun } from "../lib/wait.ts";
import { newRequest, publishRequest } from "../lib/protocol.ts";
import type { SyncEvent } from "../schemas/index.ts";
import { stackPids, stackUp } from "../stack/stack.ts";
import { brokerDown, replicate, waitGone } from "./cluster-fault.ts";
import {
  dropScenario,
  killMapperAndSink,
  mutateSource,
  rng,
  scenario,
  seedAndStart,
  sleep,
  summarize,
  verdict,
  verdictForReport,
} from "../support/reliability.ts";
import type { Fault, RoleName, RoleProcess, Scenario, Verdict } from "../support/reliability.ts";

const ROWS = Number(process.env.CHAOS_ROWS ?? 300_000);
const SEED = Number(process.env.CHAOS_SEED ?? Math.floor(Math.random() * 2 ** 31));
const PG_CLUSTER = (process.env.CHAOS_PG_CLUSTER ?? "15 main").trim().split(/\s+/);
const PHASES = (process.env.CHAOS_PHASES ?? "roles,broker,postgres,registry")
  .split(",")
  .map((p) => p.trim())
  .filter(Boolean);
const random = rng(SEED);
const say = (line: string) => process.stderr.write(`[chaos ${new Date().toISOString().slice(11, 19)}] ${line}\n`);

export interface PhaseReport {
  phase: string;
  faults: Fault[];
  attempts: number;
  seconds: number;
  verdict: Verdict;
  ok: boolean;
  notes: string[];
  crashes: Array<{ role: string; at: string; code: number | null; signal: string | null; logTail: string }>;
}

/** Signals a process of the local stack (the registry, or the first broker) and waits until it is gone; returns its pid. */
async function stopStackProcess(name: "kafka" | "registry", signal: NodeJS.Signals): Promise<number> {
  const pids = stackPids();
  const pid = name === "registry" ? pids.registry : pids.brokers[0]?.pid;
  if (pid === undefined) throw new Error(`the stack's ${name} is not running, or was not started by qobra-sync: nothing to stop`);
  process.kill(pid, signal);
  await waitGone(pid);
  return pid;
}

/** Requests full runs until one completes (a run a fault took down is requested again), waiting through outages. */
async function syncUntilComplete(rt: Runtime, s: Scenario, notes: string[]): Promise<{ event: SyncEvent; attempts: number }> {
  for (let attempt = 1; attempt <= 5; attempt++) {
    let requestId: string | undefined, from: Map<number, number> | undefined;
    while (!requestId) {
      try {
        from = await eventsPosition(rt.port);
        const producer = await rt.port.producer({ idempotent: true, maxInFlightRequests: 1 });
        const request = newRequest("crm", { full: true, tables: [], by: "chaos" });
        await publishRequest(producer, rt.codec, rt.port.topics, request);
        await producer.disconnect().catch(() => undefined);
        requestId = request.requestId;
      } catch (e) {
        say(`could not publish the request yet (${(e as Error).message}); retrying`);
        await sleep(2000);
      }
    }
    for (;;) {
      try {
        const event = await waitForRun(rt.port, rt.codec, s.prefix, requestId, from!, { timeoutMs: 900_000, tables: [{ connector: "crm", table: "deals" }] });
        if (event.type === "RUN_COMPLETED") return { event, attempts: attempt };
        notes.push(`attempt ${attempt}: run ${requestId} failed: ${event.error}`);
        say(`run ${requestId} failed (${event.error}); requesting another`);
        break;
      } catch (e) {
        say(`waiting for run ${requestId} failed (${(e as Error).message}); waiting again`);
        await sleep(2000);
      }
    }
  }
  throw new Error("no run completed in 5 attempts");
}

/** Waits until the mapper and the sink have committed everything there is (after a late fault). */
async function waitNoLag(rt: Runtime, s: Scenario, ms = 300_000): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    try {
      const v = await verdict(s, rt.port);
      if (v.mapperLag === 0 && v.sinkLag === 0) return;
      if (Date.now() > deadline) {
        say(`lag still mapper ${v.mapperLag}, sink ${v.sinkLag} after ${ms / 1000} s`);
        return;
      }
    } catch (e) {
      if (Date.now() > deadline) throw e;
    }
    await sleep(2000);
  }
}

async function phase(
  name: string,
  rt: Runtime,
  s: Scenario,
  procs: Record<RoleName, RoleProcess>,
  round: number,
  inject: (runDone: Promise<void>) => Promise<Fault[]>,
): Promise<PhaseReport> {
  const changed = await mutateSource(s, { every: 7, deletes: 40, round });
  say(`phase ${name}: ${changed.updated} rows updated, ${changed.deleted.length} deleted; starting a full run`);
  const started = Date.now();
  const notes: string[] = [];
  const crashesBefore = Object.fromEntries(Object.values(procs).map((p) => [p.role, p.crashes.length]));
  let markDone!: () => void;
  const runDone = new Promise<void>((r) => {
    markDone = r;
  });
  const faultsP = inject(runDone);
  const { attempts } = await syncUntilComplete(rt, s, notes).finally(() => markDone());
  const faults = await faultsP;
  // A fault may land after the run's end: wait for every role to be up and every record through.
  for (const p of Object.values(procs)) p.start();
  await waitNoLag(rt, s);
  const v = await verdict(s, rt.port, changed.deleted);
  const ok =
    v.lost.length === 0 &&
    v.duplicated.length === 0 &&
    v.stale.length === 0 &&
    v.notDeleted.length === 0 &&
    v.mapperLag === 0 &&
    v.sinkLag === 0 &&
    v.storedOffsetGap <= 1 &&
    v.dlqMapper === 0 &&
    v.dlqSink === 0 &&
    v.softDeleted === changed.deleted.length;
  const seconds = (Date.now() - started) / 1000;
  const crashes = Object.values(procs).flatMap((p) => p.crashes.slice(crashesBefore[p.role]).map((c) => ({ role: p.role, ...c })));
  for (const c of crashes)
    say(
      `UNPLANNED EXIT of ${c.role} at ${c.at} (code ${c.code}, signal ${c.signal}); restarted by the harness. Log tail:\n${c.logTail.split("\n").slice(-6).join("\n")}`,
    );
  say(
    `phase ${name} (${seconds.toFixed(0)} s, ${attempts} run request(s)): ${summarize(v, faults.length)}; unplanned exits ${crashes.length} => ${ok && crashes.length === 0 ? "OK" : "FAILED"}`,
  );
  return {
    phase: name,
    faults,
    attempts,
    seconds,
    verdict: verdictForReport(v),
    ok: ok && crashes.length === 0,
    notes,
    crashes,
  };
}

export async function runPipelineFaults(): Promise<{ reports: PhaseReport[]; id: string; seed: number }> {
  const id = `chaos${Date.now().toString(36)}`;
  const s = scenario(id, { partitions: 3 });
  // On a three-broker stack the pipeline's topics get three replicas (and min.insync.replicas 2).
  if (stackPids().brokers.length >= 3) replicate(s, 3);
  say(`seed ${SEED}; ${ROWS} source rows; phases ${PHASES.join(", ")}; logs in ${s.logDir}`);
  const { rt, procs } = await seedAndStart(s, ROWS, "chaos");
  const reports: PhaseReport[] = [];
  try {
    // A first clean run, so that every phase updates existing records (newer versions over older ones).
    const notes: string[] = [];
    await syncUntilComplete(rt, s, notes);
    say("initial full run completed");
    let round = 1;
    for (const name of PHASES) {
      round++;
      let inject: (runDone: Promise<void>) => Promise<Fault[]>;
      switch (name) {
        case "roles":
          inject = async (runDone) => {
            // The mapper and the sink die every 1.5-4 s until the run is through; the producer once,
            // while it is reading the source (the run is then requested again if it failed).
            const loop = killMapperAndSink(s, rt.port, procs, { seed: SEED, everyMs: [1500, 4000], downMs: [300, 3000], max: 12, log: say });
            await sleep(2000 + random() * 4000);
            await procs.producer.kill9();
            const producerFault: Fault = { at: new Date().toISOString(), kind: "SIGKILL", target: "producer", downMs: 2000, note: "while reading the source" };
            say("fault: SIGKILL producer while it reads the source");
            await sleep(2000);
            procs.producer.start();
            await runDone;
            return [producerFault, ...(await loop.stop())];
          };
          break;
        case "broker":
          inject = async () => {
            await sleep(3000 + random() * 5000);
            const pid = await stopStackProcess("kafka", "SIGKILL");
            const downMs = 5000;
            say(`fault: Kafka broker (pid ${pid}) SIGKILLed; restarting it in ${downMs / 1000} s`);
            await sleep(downMs);
            const t = Date.now();
            await stackUp({ print: (l) => say(`stack: ${l}`) });
            return [{ at: new Date().toISOString(), kind: "SIGKILL + restart", target: "kafka broker", downMs: downMs + (Date.now() - t) }];
          };
          break;
        case "postgres":
          inject = async () => {
            await sleep(3000 + random() * 5000);
            const stop = spawnSync("pg_ctlcluster", [...PG_CLUSTER, "stop", "-m", "fast"], { encoding: "utf8" });
            if (stop.status !== 0) throw new Error(`pg_ctlcluster stop failed: ${stop.stderr}`);
            say("fault: PostgreSQL stopped (source and sink); starting it in 5 s");
            await sleep(5000);
            const start = spawnSync("pg_ctlcluster", [...PG_CLUSTER, "start"], { encoding: "utf8" });
            if (start.status !== 0) throw new Error(`pg_ctlcluster start failed: ${start.stderr}`);
            return [{ at: new Date().toISOString(), kind: "stop -m fast + start", target: "postgresql", downMs: 5000 }];
          };
          break;
        case "registry":
          inject = async () => {
            await sleep(3000 + random() * 3000);
            const pid = await stopStackProcess("registry", "SIGTERM");
            say(`fault: registry (pid ${pid}) stopped; SIGKILLing mapper and sink so that they restart without it`);
            const faults: Fault[] = [{ at: new Date().toISOString(), kind: "stop", target: "schema registry", downMs: 20_000 }];
            for (const r of ["mapper", "sink"] as const) {
              await procs[r].kill9();
              procs[r].start();
              faults.push({ at: new Date().toISOString(), kind: "SIGKILL", target: r, downMs: 0, note: "restarted while the registry is down" });
            }
            await sleep(20_000);
            await stackUp({ print: (l) => say(`stack: ${l}`) });
            return faults;
          };
          break;
        case "cluster":
          inject = () => brokerDown(rt, s, { random, log: say });
          break;
        default:
          throw new Error(`unknown phase ${name}`);
      }
      reports.push(await phase(name, rt, s, procs, round, inject));
    }
  } finally {
    await Promise.all(Object.values(procs).map((p) => p.stop(5000).catch(() => undefined)));
    const report = { seed: SEED, rows: ROWS, reports, roleErrors: Object.fromEntries(Object.values(procs).map((p) => [p.role, p.errors().length])) };
    writeFileSync(join(s.logDir, "report.json"), JSON.stringify(report, null, 2));
    if (reports.every((r) => r.ok) && process.env.CHAOS_KEEP !== "1") await dropScenario(s, rt.port).catch(() => undefined);
    await rt.close();
  }
  return { reports, id, seed: SEED };
}
