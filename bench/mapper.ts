/**
 * Mapper benchmark (`npm run bench`): records/s of the mapper (`qobra-sync run --roles mapper` as
 * its own process) on a pre-filled raw topic, vs a pass-through consumer (bench/passthrough.ts)
 * that decodes and re-produces the same records without mapping: same raw topic, same partitions,
 * same consumer settings, one Kafka transaction per batch for both, same bounded heap. Rates run from
 * the first committed offset to the last (start-up and group join count for neither). The order
 * alternates between runs. Medians of BENCH_RUNS (default 3).
 *
 * BENCH_MAPPER_ROWS (default 200,000); BENCH_MAPPER_PARTITIONS (default: the config default, 3);
 * BENCH_SWEEP=1 adds a sweep of the partition count (one run each). Prints its figures as the last
 * lines; writes bench/results/mapper.json.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { openRuntime } from "../lib/runtime.ts";
import { committedOffsets, endOffsets, type KafkaPort } from "../lib/kafka.ts";
import { groups } from "../lib/topics.ts";
import { rawKey } from "../lib/protocol.ts";
import {
  ROOT,
  benchYaml,
  createTopic,
  deleteTopicsWithPrefix,
  log,
  median,
  peakRssMb,
  prepareBenchDb,
  rawRecord,
  round,
  startRole,
  stopChild,
  timeProgress,
  writeConfig,
  writeResult,
} from "./common.ts";

const ROWS = Number(process.env.BENCH_MAPPER_ROWS ?? 200_000);
const RUNS = Number(process.env.BENCH_RUNS ?? 3);
const PARTITIONS = process.env.BENCH_MAPPER_PARTITIONS ? Number(process.env.BENCH_MAPPER_PARTITIONS) : undefined;

await prepareBenchDb();

async function sumOffsets(port: KafkaPort, group: string, topic: string): Promise<number> {
  const committed = await committedOffsets(await port.admin(), group, topic);
  let n = 0;
  for (const v of committed.values()) n += Math.max(0, v);
  return n;
}

function startPassthrough(file: string, group: string, out: string, mode: "bytes" | "reencode"): ChildProcess {
  return spawn(
    process.execPath,
    ["--max-old-space-size=192", "--max-semi-space-size=16", "--disable-warning=TimeoutNegativeWarning", "bench/passthrough.ts", file, group, out, mode],
    {
      cwd: ROOT,
      stdio: ["ignore", "ignore", "inherit"],
      env: { ...process.env, QOBRA_SYNC_LOG_LEVEL: "error", KAFKAJS_NO_PARTITIONER_WARNING: "1" },
    },
  );
}

interface RunResult {
  mapper: number;
  passthrough: number;
  reencode: number;
  mapperRssMb: number;
  passthroughRssMb: number;
  reencodeRssMb: number;
}

async function oneRun(tag: string, partitions: number | undefined, mapperFirst: boolean): Promise<RunResult> {
  const prefix = `bmap${Date.now().toString(36)}${tag}`;
  const { file, config } = writeConfig(prefix, benchYaml(prefix, { partitions }));
  const rt = await openRuntime(config, "bench-mapper");
  try {
    const rawTopic = rt.port.topics.raw("bench");
    const parts = partitions ?? config.kafka.partitions;
    const out = `${prefix}.passthrough`;
    await createTopic(rt.port, out, parts);
    const producer = await rt.port.producer({ idempotent: true, maxInFlightRequests: 1 });
    for (let i = 1; i <= ROWS; i += 2000) {
      const envelopes = Array.from({ length: Math.min(2000, ROWS - i + 1) }, (_, k) => rawRecord(i + k, "bench-run"));
      const values = await rt.codec.encodeMany(rawTopic, "rawRecord", envelopes);
      await producer.send({ topic: rawTopic, acks: -1, messages: envelopes.map((e, k) => ({ key: rawKey("deals", e.externalId), value: values[k]! })) });
    }
    await producer.disconnect();
    const total = [...(await endOffsets(await rt.port.admin(), rawTopic)).values()].reduce((a, b) => a + b, 0);
    const contenders: Array<["mapper" | "passthrough" | "reencode", () => ChildProcess, string]> = [
      ["mapper", () => startRole("mapper", file), groups(prefix).mapper],
      ["passthrough", () => startPassthrough(file, `${prefix}-passthrough`, out, "bytes"), `${prefix}-passthrough`],
      ["reencode", () => startPassthrough(file, `${prefix}-reencode`, out, "reencode"), `${prefix}-reencode`],
    ];
    if (!mapperFirst) contenders.reverse();
    const res: Partial<RunResult> = {};
    for (const [name, start, group] of contenders) {
      const child = start();
      try {
        const t = await timeProgress(() => sumOffsets(rt.port, group, rawTopic), total, { what: name, pollMs: 100 });
        res[name] = t.rate;
        res[`${name}RssMb`] = peakRssMb(child.pid!);
        log(`${tag}: ${name} ${Math.round(t.rate)} records/s (${t.seconds.toFixed(1)} s, ${parts} partitions)`);
      } finally {
        await stopChild(child);
      }
    }
    return res as RunResult;
  } finally {
    await deleteTopicsWithPrefix(rt.port, prefix);
    await rt.close();
  }
}

const runs: RunResult[] = [];
for (let r = 0; r < RUNS; r++) runs.push(await oneRun(`r${r}`, PARTITIONS, r % 2 === 0));
const sweep: Array<{ partitions: number; mapper: number; passthrough: number; ratio: number }> = []; // ratio vs the bytes pass-through
if (process.env.BENCH_SWEEP === "1") {
  for (const p of [1, 2, 3, 4]) {
    const r = await oneRun(`p${p}`, p, true);
    sweep.push({ partitions: p, mapper: Math.round(r.mapper), passthrough: Math.round(r.passthrough), ratio: round(r.mapper / r.passthrough, 3) });
  }
}
const m = median(runs.map((r) => r.mapper)),
  p = median(runs.map((r) => r.passthrough)),
  re = median(runs.map((r) => r.reencode));
const result = {
  rows: ROWS,
  runs: RUNS,
  partitions: PARTITIONS ?? 3,
  mapperRecordsPerSec: Math.round(m),
  passthroughRecordsPerSec: Math.round(p),
  ratio: round(m / p, 3),
  reencodeRecordsPerSec: Math.round(re),
  ratioVsReencode: round(m / re, 3),
  perRun: runs.map((r) => ({
    mapper: Math.round(r.mapper),
    passthrough: Math.round(r.passthrough),
    reencode: Math.round(r.reencode),
    ratio: round(r.mapper / r.passthrough, 3),
  })),
  peakRssMb: {
    mapper: Math.max(...runs.map((r) => r.mapperRssMb)),
    passthrough: Math.max(...runs.map((r) => r.passthroughRssMb)),
    reencode: Math.max(...runs.map((r) => r.reencodeRssMb)),
  },
  partitionSweep: sweep,
};
writeResult("mapper", result);
if (sweep.length > 0)
  console.log(`mapper partition sweep (records/s mapper/pass-through): ${sweep.map((s) => `${s.partitions}: ${s.mapper}/${s.passthrough}`).join(", ")}`);
console.log(
  `mapper: ${result.mapperRecordsPerSec} records/s vs pass-through consumer (decode, re-produce the same bytes, same transactions) ${result.passthroughRecordsPerSec} records/s = ratio ${result.ratio}; vs decode + re-encode ${result.reencodeRecordsPerSec} records/s = ratio ${result.ratioVsReencode} (median of ${RUNS}, ${ROWS} records, ${result.partitions} partitions; peak RSS mapper ${result.peakRssMb.mapper} MB)`,
);
process.exit(0);
