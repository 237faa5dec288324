/**
 * Prints the top self-time frames of V8 CPU profiles (`node --cpu-prof`, as BENCH_CPU_PROF makes
 * the benchmarks' role processes write them): `node bench/cpu-profile.ts <dir or .cpuprofile>… [--top N]`.
 * Frames are summed by function, file and line across every profile given (one role's process);
 * the launcher's own small profile is among them and weighs nothing.
 */
import { readFileSync, readdirSync, statSync } from "node:fs";
import { join, relative } from "node:path";
import { ROOT } from "./common.ts";

interface ProfileNode {
  id: number;
  children?: number[];
  callFrame: { functionName: string; url: string; lineNumber: number };
}
interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

const args = process.argv.slice(2);
const topAt = args.indexOf("--top");
const top = topAt >= 0 ? Number(args[topAt + 1]) : 12;
const byPackage = args.includes("--by-package");
/** With --by-caller: runtime frames count for the function that called them (not grouped by package). */
const byCaller = byPackage || args.includes("--by-caller");
const inputs = args.filter((a, i) => !a.startsWith("--by-") && a !== "--top" && i !== topAt + 1);

/** With --by-package: the package (node_modules/<name>), our folder, or the runtime, a frame belongs to. */
function packageOf(key: string, where: string): string {
  const m = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(where);
  if (m) return m[1]!;
  if (where.startsWith("node:") || where === "") return key.startsWith("(") ? key.split(" ")[0]! : "node internals";
  return where.split("/")[0]!;
}
const files = inputs.flatMap((p) =>
  statSync(p).isDirectory()
    ? readdirSync(p)
        .filter((f) => f.endsWith(".cpuprofile"))
        .map((f) => join(p, f))
    : [p],
);

const selfUs = new Map<string, number>();
let totalUs = 0;
for (const file of files) {
  const profile = JSON.parse(readFileSync(file, "utf8")) as Profile;
  const byId = new Map(profile.nodes.map((n) => [n.id, n] as const));
  const parent = new Map<number, ProfileNode>();
  for (const n of profile.nodes) for (const c of n.children ?? []) parent.set(c, n);
  // --by-package: a runtime frame (a Buffer allocation, a string decode) counts for the code that called it.
  const caller = (n: ProfileNode): ProfileNode => {
    let at: ProfileNode | undefined = n;
    while (at && !at.callFrame.url.startsWith("file://")) at = parent.get(at.id);
    return at ?? n;
  };
  for (let i = 0; i < profile.samples.length; i++) {
    const sampled = byId.get(profile.samples[i]!)!;
    const node = byCaller && !sampled.callFrame.functionName.startsWith("(") ? caller(sampled) : sampled;
    const dt = profile.timeDeltas[i] ?? 0;
    const { functionName, url, lineNumber } = node.callFrame;
    const where = url ? `${url.startsWith("file://") ? relative(ROOT, new URL(url).pathname) : url}:${lineNumber + 1}` : "";
    const frame = `${functionName || "(anonymous)"} ${where}`.trim();
    const key = byPackage ? packageOf(frame, where) : frame;
    selfUs.set(key, (selfUs.get(key) ?? 0) + dt);
    totalUs += dt;
  }
}
const busyUs = totalUs - (selfUs.get("(idle)") ?? 0) - (selfUs.get("(program)") ?? 0);
console.log(`${files.length} profile(s): ${(totalUs / 1e6).toFixed(1)} s sampled, ${(busyUs / 1e6).toFixed(1)} s not idle`);
for (const [key, us] of [...selfUs].sort((a, b) => b[1] - a[1]).slice(0, top)) {
  console.log(`${(us / 1e6).toFixed(2).padStart(7)} s ${((100 * us) / busyUs).toFixed(1).padStart(5)} %  ${key}`);
}
