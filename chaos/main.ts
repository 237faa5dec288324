/**
 * `npm run chaos` (scripts/chaos.sh): the reliability suite's heavy part. See docs/reliability.md.
 *
 *   pipeline  chaos/pipeline-faults.ts: SIGKILL of each role, Kafka broker restart, PostgreSQL
 *             restart, registry outage, each during a full run of CHAOS_ROWS records
 *   cluster   chaos/cluster.ts: on a three-broker cluster of its own (replication factor 3,
 *             min.insync.replicas 2), one broker SIGKILLed during a full run and restarted later
 *   fuzz      chaos/fuzz.ts: fast-check hostile source values end in the DLQ with their reasons, the
 *             rest lands exactly
 *   tokens    chaos/tokens.ts (own process, logs captured at trace level): 50 concurrent calls at token
 *             expiry cause exactly one refresh (Salesforce, HubSpot); no secret appears in any log
 *
 * CHAOS_ONLY="cluster fuzz" runs a subset. Prints `0 lost / 0 duplicated / 0 stale` (or what was
 * found) and the number of faults injected as its last lines; exits 1 if anything failed.
 */
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { stackUp } from "../stack/stack.ts";
import { ROOT } from "../support/reliability.ts";
import { runFuzz, type FuzzReport } from "./fuzz.ts";
import { runClusterScenario } from "./cluster.ts";
import { runPipelineFaults, type PhaseReport } from "./pipeline-faults.ts";

const ONLY = ` ${process.env.CHAOS_ONLY ?? "pipeline cluster fuzz tokens"} `;
const say = (line: string) => process.stderr.write(`[chaos] ${line}\n`);
const outDir = join(ROOT, ".stack", "logs", "chaos");
mkdirSync(outDir, { recursive: true });

await stackUp({ print: (l) => say(`stack: ${l}`) });
let failed = false;
let faults = 0,
  lost = 0,
  duplicated = 0,
  stale = 0;
const lines: string[] = [];

/** Adds a phase's counts to the totals and its lines to the summary. */
function addPhase(r: PhaseReport, seed: number | undefined): void {
  faults += r.faults.length;
  lost += r.verdict.lost.length;
  duplicated += r.verdict.duplicated.length;
  stale += r.verdict.stale.length;
  if (!r.ok) failed = true;
  lines.push(
    `${r.phase.padEnd(9)} ${r.ok ? "ok    " : "FAILED"} ${seed === undefined ? "" : `seed ${seed}: `}${r.faults.length} fault(s) [${r.faults.map((f) => `${f.kind} ${f.target}`).join(", ")}], ` +
      `${r.attempts} run request(s), ${r.seconds.toFixed(0)} s; ${r.verdict.sourceRows} records: ${r.verdict.lost.length} lost / ${r.verdict.duplicated.length} duplicated / ${r.verdict.stale.length} stale / ${r.verdict.notDeleted.length} not deleted; ` +
      `lag ${r.verdict.mapperLag + r.verdict.sinkLag}, DLQ ${r.verdict.dlqMapper + r.verdict.dlqSink}; unplanned exits ${r.crashes.length}${r.crashes.length ? ` (${r.crashes.map((c) => c.role).join(", ")})` : ""}` +
      `${r.notes.length ? `; ${r.notes.join("; ")}` : ""}`,
  );
  const rec = r.faults.filter((f) => f.recoveryMs !== undefined);
  if (rec.length > 0)
    lines.push(
      `          recovery (kill to next progress): ${rec.map((f) => `${f.target} ${f.recoveryMs == null ? "n/a" : `${(f.recoveryMs / 1000).toFixed(1)} s`}`).join(", ")}`,
    );
  for (const f of r.faults.filter((f) => f.note && r.phase === "cluster")) lines.push(`          ${f.target}: ${f.note}`);
}

let pipelineId: string | undefined, clusterRunId: string | undefined;
if (ONLY.includes(" pipeline ")) {
  const { reports, id, seed } = await runPipelineFaults();
  pipelineId = id;
  for (const r of reports) addPhase(r, seed);
}

if (ONLY.includes(" cluster ")) {
  const c = await runClusterScenario(say);
  clusterRunId = c.id;
  for (const r of c.reports) addPhase(r, c.seed);
  if (c.error || c.reports.length === 0) {
    failed = true;
    lines.push(`cluster   FAILED ${c.error ?? "no report"}`);
  } else lines.push(`          (three brokers started in ${c.clusterStartSeconds.toFixed(0)} s; logs .stack/logs/chaos/${c.id})`);
}

if (ONLY.includes(" fuzz ")) {
  const f: FuzzReport = await runFuzz();
  if (!f.ok) failed = true;
  lost += f.neither.length;
  duplicated += f.both.length;
  stale += f.wrongValues.length;
  lines.push(
    `fuzz      ${f.ok ? "ok    " : "FAILED"} seed ${f.seed}: ${f.rows} hostile rows, ${f.landed} landed exactly, ${f.dead} dead-lettered with reasons (${f.expectedDead} expected); ` +
      `in both ${f.both.length}, in neither ${f.neither.length}, wrong reasons ${f.wrongIssues.length}, wrong values ${f.wrongValues.length}, lag ${f.lag}`,
  );
}

if (ONLY.includes(" tokens ")) {
  const secretsFile = join(outDir, `tokens-secrets-${process.pid}.json`);
  const r = spawnSync(process.execPath, ["--disable-warning=TimeoutNegativeWarning", "chaos/tokens.ts", secretsFile], {
    cwd: ROOT,
    encoding: "utf8",
    env: { ...process.env, QOBRA_SYNC_LOG_LEVEL: "trace" },
    maxBuffer: 64 * 1024 * 1024,
  });
  const output = `${r.stdout}\n${r.stderr}`;
  writeFileSync(join(outDir, "tokens.log"), output);
  const last = r.stdout.trim().split("\n").at(-1) ?? "{}";
  let results: Record<string, { refreshes: number; ok: number; failed: number; errors: string[] }> = {};
  try {
    results = (JSON.parse(last) as { results: typeof results }).results;
  } catch {
    failed = true;
    say(`tokens: no result (exit ${r.status}): ${output.slice(-2000)}`);
  }
  const secrets = existsSync(secretsFile) ? (JSON.parse(readFileSync(secretsFile, "utf8")) as string[]) : [];
  // Every log written by this suite: the tokens process at trace level, and every role's log.
  const logs = [output];
  const walk = (dir: string) => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = join(dir, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.name.endsWith(".log") && e.name !== "tokens.log") logs.push(readFileSync(p, "utf8"));
    }
  };
  for (const id of [pipelineId, clusterRunId]) if (id && existsSync(join(outDir, id))) walk(join(outDir, id));
  const leaked = secrets.filter((s) => s.length >= 8 && logs.some((l) => l.includes(s)));
  for (const [name, x] of Object.entries(results)) {
    const ok = x.refreshes === 1 && x.ok === 50 && x.failed === 0;
    if (!ok) failed = true;
    lines.push(
      `tokens    ${ok ? "ok    " : "FAILED"} ${name}: ${x.refreshes} refresh(es), ${x.ok} ok, ${x.failed} failed${x.errors.length ? ` (${x.errors.join("; ")})` : ""}`,
    );
  }
  if (leaked.length > 0) failed = true;
  lines.push(
    `logs      ${leaked.length === 0 ? "ok    " : "FAILED"} ${secrets.length} secrets (refresh and access tokens, client secrets) searched in ${logs.length} logs (${Math.round(logs.reduce((a, l) => a + l.length, 0) / 1024)} kB, trace level): ${leaked.length} found`,
  );
}

console.log("==== chaos summary");
for (const l of lines) console.log(l);
console.log(`${lost} lost / ${duplicated} duplicated / ${stale} stale; faults injected: ${faults}${failed ? " — FAILED" : ""}`);
process.exit(failed ? 1 : 0);
