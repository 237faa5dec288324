#!/usr/bin/env node
// qobra-sync's launcher. The sources are TypeScript, run by Node's own type stripping (Node >= 22.18).
const [major, minor] = process.versions.node.split(".").map(Number);
if (major < 22 || (major === 22 && minor < 18)) {
  console.error(
    `qobra-sync needs Node.js 22.18 or newer (this is ${process.versions.node}); run \`source scripts/node24.sh\` first, which installs Node 24 from the npm registry if needed.`,
  );
  process.exit(2);
}
// `run` keeps the pipeline's memory flat: V8 grows its heap lazily far past what the roles hold, so
// the roles run with a bounded old space (QOBRA_SYNC_HEAP_MB, default 192; 0 = Node's default).
// The launcher re-executes itself once with the flag and forwards signals to the child.
// `--liftoff-only`: the SQL parser (libpg_query as WebAssembly, for custom conditions and the users
// query) made V8 tier its large module up with its optimizing compiler in the background, which
// took RSS to ~640 MB for a second after the first parse (measured: 84 MB peak with the flag; the
// few parses a role makes are no slower).
const heapMb = Number(process.env.QOBRA_SYNC_HEAP_MB ?? 192);
const hasHeapFlag = [...process.execArgv, process.env.NODE_OPTIONS ?? ""].some((a) => a.includes("max-old-space-size"));
if (process.argv.includes("run") && heapMb > 0 && !hasHeapFlag) {
  const { spawn } = await import("node:child_process");
  const child = spawn(
    process.execPath,
    [`--max-old-space-size=${heapMb}`, "--max-semi-space-size=16", "--liftoff-only", ...process.execArgv, ...process.argv.slice(1)],
    {
      stdio: "inherit",
    },
  );
  for (const sig of ["SIGINT", "SIGTERM"]) process.on(sig, () => child.kill(sig));
  child.on("exit", (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
} else {
  await start();
}

async function start() {
  // kafkajs 2.2.4 schedules a negative timeout on Node >= 24 (harmless, known upstream); keep other warnings.
  process.removeAllListeners("warning");
  process.on("warning", (w) => {
    if (w.name !== "TimeoutNegativeWarning") console.warn(`${w.name}: ${w.message}`);
  });
  process.env.KAFKAJS_NO_PARTITIONER_WARNING ??= "1";
  // Node's module compile cache (checked against each file's content): a restarted role spends
  // about a third less CPU before it is up, which is most of its recovery on a busy machine.
  (await import("node:module")).enableCompileCache?.();
  // Two kafkajs hot spots replaced by equivalent code, before anything loads kafkajs (lib/kafkajs-speedups.ts).
  const { installKafkajsSpeedups } = await import("../lib/kafkajs-speedups.ts");
  installKafkajsSpeedups();
  await import("../cli/main.ts");
}
