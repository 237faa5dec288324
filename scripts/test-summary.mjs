// Prints the plain `N passed, N failed` line CI reads, from vitest's JSON report; skipped tests are named with their reason.
import { readFileSync, existsSync } from "node:fs";
const file = process.argv[2];
if (!existsSync(file)) {
  console.log("0 passed, 1 failed");
  console.error(`no test report at ${file}: vitest did not finish`);
  process.exit(1);
}
const r = JSON.parse(readFileSync(file, "utf8"));
const skipped = [];
for (const f of r.testResults ?? [])
  for (const t of f.assertionResults ?? []) if (t.status === "skipped" || t.status === "pending" || t.status === "todo") skipped.push(t.fullName);
if (skipped.length) console.log(`skipped (${skipped.length}): ${skipped.join("; ")}`);
// A file can fail without a failed test (a beforeAll that threw leaves its tests skipped): count it.
let failedSuites = (r.testResults ?? []).filter((f) => f.status === "failed" && !(f.assertionResults ?? []).some((t) => t.status === "failed")).length;
// vitest can stop before any test (a global setup error): that is a failure, not "0 failed".
if (r.success === false && r.numFailedTests === 0 && failedSuites === 0) failedSuites = 1;
console.log(`${r.numPassedTests} passed, ${r.numFailedTests + failedSuites} failed`);
process.exit(r.numFailedTests + failedSuites > 0 ? 1 : 0);
