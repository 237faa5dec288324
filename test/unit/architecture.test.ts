/**
 * The import graph is guarded: no import cycle anywhere, and product code depends one way only,
 *
 *   cli → app → ops → roles (producers, consumers, scheduler) → source plugins → lib → schemas
 *
 * Roles never import each other (what they share is a protocol in lib/); lib never imports a role;
 * product code never imports the tools (test/, support/, bench/, chaos/, demo/). The tools may
 * import anything of the product, and support/ (never test/). The table below is the rule; a new
 * top-level folder must be placed in it, or this test fails and says so.
 */
import { readdirSync, readFileSync, statSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { describe, expect, it } from "vitest";

const ROOT = resolve(import.meta.dirname, "../..");

/** Layer of each unit: an edge may only go to a lower layer, or stay inside its unit. */
const LAYERS: Array<{ unit: string; layer: number }> = [
  { unit: "schemas", layer: 0 },
  { unit: "lib", layer: 1 },
  { unit: "stack", layer: 2 }, // starts Kafka and the registry: used by the CLI and the test setup
  { unit: "simulators", layer: 2 }, // stand-ins for Salesforce and HubSpot: used by the CLI's `simulate`
  { unit: "producers/oauth", layer: 2 },
  { unit: "producers/shared-rate-limiter.ts", layer: 2 },
  { unit: "producers/connector.ts", layer: 2 }, // the interface every source plugin implements
  { unit: "producers/connectors", layer: 3 }, // one folder per source, and the registry listing them
  { unit: "producers", layer: 4 },
  { unit: "consumers", layer: 4 },
  { unit: "scheduler", layer: 4 },
  { unit: "ops", layer: 5 },
  { unit: "app", layer: 6 },
  { unit: "cli", layer: 7 },
  { unit: "bin", layer: 8 }, // the executable: starts the CLI
  // Tools: above the product, never imported by it.
  { unit: "support", layer: 8 },
  { unit: "bench", layer: 9 },
  { unit: "chaos", layer: 9 },
  { unit: "demo", layer: 9 },
  { unit: "scripts", layer: 9 },
  { unit: "test", layer: 10 },
];
/** Tools that sit side by side: none of them imports another (they share support/). */
const TOOLS = new Set(["bench", "chaos", "demo", "scripts", "test"]);

function unitOf(file: string): { unit: string; layer: number } | undefined {
  let best: { unit: string; layer: number } | undefined;
  for (const l of LAYERS) {
    if ((file === l.unit || file.startsWith(`${l.unit}/`)) && (!best || l.unit.length > best.unit.length)) best = l;
  }
  return best;
}

function sourceFiles(dir: string, out: string[] = []): string[] {
  for (const name of readdirSync(dir)) {
    if (name === "node_modules" || name.startsWith(".")) continue;
    const path = join(dir, name);
    if (statSync(path).isDirectory()) sourceFiles(path, out);
    else if (/\.(ts|mts|mjs|js)$/.test(name) && !name.endsWith(".d.ts")) out.push(path);
  }
  return out;
}

/** Relative imports of a file: static imports and re-exports, `import type`, and dynamic `import("…")`. */
function importsOf(file: string): string[] {
  const text = readFileSync(file, "utf8")
    .replace(/\/\*[\s\S]*?\*\//g, "")
    .replace(/^\s*\/\/.*$/gm, "");
  const specs = new Set<string>();
  for (const m of text.matchAll(/(?:^|[;\s])(?:import|export)\s[^;"'`]*?from\s*["']([^"']+)["']/g)) specs.add(m[1]!);
  for (const m of text.matchAll(/(?:^|[;\s])import\s*["']([^"']+)["']/g)) specs.add(m[1]!);
  for (const m of text.matchAll(/\bimport\(\s*["']([^"']+)["']\s*\)/g)) specs.add(m[1]!);
  return [...specs].filter((s) => s.startsWith(".")).map((s) => relative(ROOT, resolve(dirname(file), s)));
}

const files = sourceFiles(ROOT)
  .map((f) => relative(ROOT, f))
  .filter((f) => !f.startsWith("node_modules/"));
const graph = new Map(files.map((f) => [f, importsOf(join(ROOT, f)).filter((t) => files.includes(t))]));

/** Tarjan's strongly connected components: every component of two or more files is a cycle. */
function findCycles(g: Map<string, string[]>): string[][] {
  let index = 0;
  const idx = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const cycles: string[][] = [];
  const visit = (v: string) => {
    idx.set(v, index);
    low.set(v, index);
    index++;
    stack.push(v);
    onStack.add(v);
    for (const w of g.get(v) ?? []) {
      if (!idx.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, idx.get(w)!));
    }
    if (low.get(v) === idx.get(v)) {
      const scc: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        onStack.delete(w);
        scc.push(w);
      } while (w !== v);
      if (scc.length > 1 || (g.get(v) ?? []).includes(v)) cycles.push(scc.sort());
    }
  };
  for (const f of g.keys()) if (!idx.has(f)) visit(f);
  return cycles;
}

/** Edges to a higher layer, between two units of one layer (roles), or from a tool into another tool or test/. */
function wrongEdges(g: Map<string, string[]>): string[] {
  const wrong: string[] = [];
  for (const [from, targets] of g) {
    const a = unitOf(from);
    if (!a) continue;
    for (const to of targets) {
      const b = unitOf(to);
      if (!b || a.unit === b.unit) continue;
      const up = b.layer > a.layer;
      const sideways = a.layer === b.layer;
      const intoTool = b.unit === "test" || (TOOLS.has(b.unit) && TOOLS.has(a.unit));
      if (up || sideways || intoTool) wrong.push(`${from} → ${to} (${a.unit} is layer ${a.layer}, ${b.unit} is layer ${b.layer})`);
    }
  }
  return wrong;
}

describe("import graph", () => {
  it("reads the tree (sanity: the scanner finds the roles and their imports)", () => {
    expect(files.length).toBeGreaterThan(100);
    expect(graph.get("cli/main.ts")?.length ?? 0).toBeGreaterThan(3);
  });

  it("places every source file in a layer", () => {
    const unplaced = files.filter((f) => f.includes("/") && !unitOf(f));
    expect(unplaced, "add these folders to LAYERS in test/unit/architecture.test.ts").toEqual([]);
  });

  it("has no import cycle", () => {
    expect(findCycles(graph)).toEqual([]);
  });

  it("points one way: no edge to a higher layer or between roles, product never imports a tool", () => {
    expect(wrongEdges(graph)).toEqual([]);
  });

  it("the checks catch a cycle, a backwards edge, a role-to-role edge and a tool importing test/", () => {
    const g = new Map<string, string[]>([
      ["lib/a.ts", ["lib/b.ts"]],
      ["lib/b.ts", ["lib/c.ts"]],
      ["lib/c.ts", ["lib/a.ts"]],
      ["lib/d.ts", ["producers/worker.ts"]],
      ["consumers/sink/run.ts", ["producers/worker.ts", "lib/d.ts"]],
      ["bench/x.ts", ["test/helpers/y.ts", "support/z.ts"]],
      ["cli/main.ts", ["app/roles.ts"]],
    ]);
    expect(findCycles(g)).toEqual([["lib/a.ts", "lib/b.ts", "lib/c.ts"]]);
    expect(wrongEdges(g).map((w) => w.split(" (")[0])).toEqual([
      "lib/d.ts → producers/worker.ts",
      "consumers/sink/run.ts → producers/worker.ts",
      "bench/x.ts → test/helpers/y.ts",
    ]);
    expect(importsOf(join(ROOT, "test/unit/architecture.test.ts"))).toEqual([]);
  });
});
