#!/usr/bin/env node
// qobra-sync's launcher. The sources are TypeScript, run by Node's own type stripping (Node >= 22.18).
const [major, minor] = process.versions.node.split(".").map(Number);
if (major < 22 || (major === 22 && minor < 18)) {
  console.error(`qobra-sync needs Node.js 22.18 or newer (this is ${process.versions.node}); run \`source scripts/node24.sh\` first, which installs Node 24 from the npm registry if needed.`);
  process.exit(2);
}
// kafkajs 2.2.4 schedules a negative timeout on Node >= 24 (harmless, known upstream); keep other warnings.
process.removeAllListeners("warning");
process.on("warning", (w) => { if (w.name !== "TimeoutNegativeWarning") console.warn(`${w.name}: ${w.message}`); });
process.env.KAFKAJS_NO_PARTITIONER_WARNING ??= "1";
await import("../cli/main.ts");
