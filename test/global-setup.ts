/**
 * Brings the local stack (Kafka, Apicurio Registry; PostgreSQL must already answer) up before the
 * tests when it is not running, and stops it afterwards if this run started it.
 * QOBRA_SYNC_KEEP_STACK=1 leaves it running.
 */
import { stackDown, stackStatus, stackUp } from "../stack/stack.ts";

let startedHere = false;

export async function setup(): Promise<void> {
  const before = await stackStatus();
  const running = (n: string) => before.some((s) => s.name === n && (s.state === "running" || s.state === "external"));
  if (running("kafka") && running("registry")) return;
  const print = (line: string) => process.stderr.write(`[stack] ${line}\n`);
  let after;
  try {
    after = await stackUp({ print });
  } catch (e) {
    await stackDown({ print }).catch(() => {}); // leave nothing half-started behind
    throw e;
  }
  const bad = after.filter((s) => s.state === "unavailable" || s.state === "stopped");
  if (bad.length > 0) {
    await stackDown({ print }).catch(() => {});
    throw new Error(`the local stack is not ready: ${bad.map((s) => `${s.name}: ${s.detail ?? s.state}`).join("; ")}`);
  }
  startedHere = true;
}

export async function teardown(): Promise<void> {
  if (startedHere && process.env.QOBRA_SYNC_KEEP_STACK !== "1") await stackDown({ print: (l) => process.stderr.write(`[stack] ${l}\n`) });
}
