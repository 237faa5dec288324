/**
 * The process chaos/cluster.ts starts for the three-broker scenario: its stack settings
 * (QOBRA_SYNC_KAFKA_PORT, QOBRA_SYNC_STACK_DIR) point at the cluster of three brokers, so that the
 * scenario's config, its roles and the `stackUp()` that restarts the killed broker all use it;
 * CHAOS_PHASES=cluster. Writes `{ reports, id, seed }` (or `{ error }`) to the file named by its
 * argument.
 */
import { writeFileSync } from "node:fs";
import { runPipelineFaults } from "./pipeline-faults.ts";

const out = process.argv[2];
if (!out) throw new Error("usage: node chaos/cluster-child.ts REPORT_FILE");
try {
  writeFileSync(out, JSON.stringify(await runPipelineFaults()));
  process.exit(0);
} catch (e) {
  writeFileSync(out, JSON.stringify({ error: e instanceof Error ? (e.stack ?? e.message) : String(e) }));
  process.exit(1);
}
