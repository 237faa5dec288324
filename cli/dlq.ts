/**
 * `qobra-sync dlq list|replay`: inspect the dead letters of the mapper and the sink, and re-drive
 * them to the topic they came from once the cause is fixed (a config change, a sink table fix).
 * A letter whose record has a newer message in its original topic (a later version, or a delete)
 * is superseded and is not re-driven: that would put an old version back.
 */
import type { Command } from "commander";
import type { Config } from "../lib/config.ts";
import { ConfigError } from "../lib/errors.ts";
import { openRuntime, type Runtime } from "../lib/runtime.ts";
import { readToEnd } from "../lib/topic-scan.ts";
import type { DeadLetter } from "../schemas/index.ts";

interface LetterFilter {
  stage?: "mapper" | "sink";
  connector?: string;
  table?: string;
  run?: string;
}
interface StoredLetter {
  dlqTopic: string;
  dlqOffset: number;
  letter: DeadLetter;
}

export async function readDeadLetters(rt: Runtime, filter: LetterFilter = {}): Promise<StoredLetter[]> {
  const stages = filter.stage ? [filter.stage] : (["mapper", "sink"] as const);
  const out: StoredLetter[] = [];
  for (const stage of stages) {
    const topic = stage === "mapper" ? rt.port.topics.dlqMapper : rt.port.topics.dlqSink;
    await readToEnd(rt.port, topic, async (messages) => {
      for (const m of messages) {
        if (!m.value) continue;
        const letter = await rt.codec.decode<DeadLetter>(m.value);
        if (filter.connector && letter.connector !== filter.connector) continue;
        if (filter.table && letter.table !== filter.table) continue;
        if (filter.run && letter.runId !== filter.run) continue;
        out.push({ dlqTopic: topic, dlqOffset: Number(m.offset), letter });
      }
    });
  }
  return out.sort((a, b) => a.letter.at - b.letter.at);
}

interface ReplayOutcome {
  replayed: number;
  superseded: number;
  letters: number;
}

/** Re-publishes each selected letter's original record to its original topic, unless superseded. */
export async function replayDeadLetters(rt: Runtime, filter: LetterFilter = {}): Promise<ReplayOutcome> {
  const letters = await readDeadLetters(rt, filter);
  // Latest offset of every key of the topics involved (one pass per topic).
  const latest = new Map<string, Map<string, number>>();
  for (const topic of new Set(letters.map((l) => l.letter.originalTopic))) {
    const keys = new Map<string, number>();
    await readToEnd(rt.port, topic, (messages) => {
      for (const m of messages) if (m.key) keys.set(m.key.toString("base64"), Number(m.offset));
    });
    latest.set(topic, keys);
  }
  const producer = await rt.port.producer({ idempotent: true, maxInFlightRequests: 1 });
  let replayed = 0,
    superseded = 0;
  const seen = new Set<string>();
  try {
    for (const { letter } of letters) {
      const k = letter.key ? letter.key.toString("base64") : "";
      const newest = letter.key ? latest.get(letter.originalTopic)?.get(k) : undefined;
      const id = `${letter.originalTopic}\u0000${k}`;
      if ((newest !== undefined && newest > letter.originalOffset) || seen.has(id)) {
        superseded++;
        continue;
      }
      seen.add(id);
      await producer.send({
        topic: letter.originalTopic,
        acks: -1,
        messages: [
          {
            key: letter.key,
            value: letter.value,
            headers: { "qobra.replayed-from": `${letter.originalTopic}:${letter.originalPartition}:${letter.originalOffset}` },
          },
        ],
      });
      replayed++;
    }
  } finally {
    await producer.disconnect();
  }
  return { replayed, superseded, letters: letters.length };
}

export function registerDlqCommands(program: Command, loadConfig: () => Config): void {
  const dlq = program.command("dlq").description("inspect and re-drive dead letters (records a stage could not process, with why)");
  const filters = (c: Command) =>
    c
      .option("--stage <stage>", "mapper or sink (default: both)")
      .option("--connector <id>", "only this connector")
      .option("--table <name>", "only this table")
      .option("--run <runId>", "only this run");
  const filterOf = (o: { stage?: string; connector?: string; table?: string; run?: string }): LetterFilter => {
    if (o.stage && o.stage !== "mapper" && o.stage !== "sink") throw new ConfigError(`--stage must be mapper or sink, got ${o.stage}`);
    return { stage: o.stage as LetterFilter["stage"], connector: o.connector, table: o.table, run: o.run };
  };
  filters(dlq.command("list").description("list dead letters, oldest first"))
    .option("--limit <n>", "only the newest N", "100")
    .option("--json", "one JSON object per line", false)
    .action(async (o: { stage?: string; connector?: string; table?: string; run?: string; limit: string; json: boolean }) => {
      const rt = await openRuntime(loadConfig(), "cli");
      try {
        const all = await readDeadLetters(rt, filterOf(o));
        const shown = all.slice(-Number(o.limit));
        for (const { letter: l, dlqTopic, dlqOffset } of shown) {
          if (o.json) {
            console.log(JSON.stringify({ ...l, key: l.key?.toString() ?? null, value: undefined, dlqTopic, dlqOffset, at: new Date(l.at).toISOString() }));
          } else {
            console.log(
              `${new Date(l.at).toISOString()} ${l.stage.padEnd(6)} ${l.connector ?? "?"}.${l.table ?? "?"} ${l.originalTopic}[${l.originalPartition}]@${l.originalOffset} key=${l.key?.toString() ?? "-"} run=${l.runId ?? "-"}`,
            );
            console.log(`    ${l.errorClass}: ${l.errorMessage}`);
            for (const i of l.issues) console.log(`    - ${i.path}: ${i.code}: ${i.message}`);
          }
        }
        if (!o.json) console.log(`${shown.length} of ${all.length} dead letter(s) shown`);
      } finally {
        await rt.close();
      }
    });
  filters(dlq.command("replay").description("re-drive dead letters to their original topic (after fixing the cause); superseded ones are skipped"))
    .option("--json", "print the outcome as JSON", false)
    .action(async (o: { stage?: string; connector?: string; table?: string; run?: string; json: boolean }) => {
      const rt = await openRuntime(loadConfig(), "cli");
      try {
        const r = await replayDeadLetters(rt, filterOf(o));
        console.log(
          o.json ? JSON.stringify(r) : `${r.replayed} dead letter(s) re-driven, ${r.superseded} superseded by a newer version (skipped), of ${r.letters}`,
        );
      } finally {
        await rt.close();
      }
    });
}
