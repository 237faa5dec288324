/**
 * The fault of the chaos suite's `cluster` phase: one broker of a three-broker cluster SIGKILLed
 * while a full run goes through (a broker and a KRaft controller lost at once, with whatever
 * partition leaderships and group or transaction coordinators it held), restarted 10-25 s later
 * through `stackUp()`. The pipeline must go on meanwhile on the two others (replication factor 3,
 * min.insync.replicas 2) and lose, double or age nothing.
 *
 * It reports what the broker led when it died and how long the mapper and the sink took to make
 * progress again after the kill (their committed offsets).
 */
import { readFileSync, writeFileSync } from "node:fs";
import kafkajs from "kafkajs";
import { parseConfig } from "../app/config.ts";
import { minInsyncReplicas } from "../lib/kafka.ts";
import type { Runtime } from "../lib/runtime.ts";
import { stackPids, stackUp } from "../stack/stack.ts";
import { progressCounters, sleep, type Fault, type Scenario } from "../support/reliability.ts";

/**
 * Gives the scenario's topics `replicationFactor` replicas (min.insync.replicas follows: 2 from 3),
 * in its config file (which the roles read) and its parsed config; before any topic is created.
 */
export function replicate(s: Scenario, replicationFactor: number): void {
  const yaml = readFileSync(s.configFile, "utf8").replace(/^kafka: \{ (.*) \}$/m, `kafka: { $1, replicationFactor: ${replicationFactor} }`);
  const config = parseConfig(yaml, s.configFile, {});
  if (config.kafka.replicationFactor !== replicationFactor) throw new Error(`could not set replicationFactor ${replicationFactor} in ${s.configFile}`);
  writeFileSync(s.configFile, yaml);
  s.config = config;
}

/** Replicas and min.insync.replicas of the scenario's raw and mapped topics, as the cluster reports them; throws unless as configured. */
async function checkReplication(rt: Runtime, s: Scenario): Promise<string> {
  const admin = await rt.port.admin();
  const topics = [rt.port.topics.raw("crm"), rt.port.topics.mapped("crm", "deals")];
  const { topics: meta } = await admin.fetchTopicMetadata({ topics });
  const { resources } = await admin.describeConfigs({
    includeSynonyms: false,
    resources: topics.map((name) => ({ type: kafkajs.ConfigResourceTypes.TOPIC, name, configNames: ["min.insync.replicas"] })),
  });
  const want = { rf: s.config.kafka.replicationFactor, isr: String(minInsyncReplicas(s.config)) };
  const seen = topics.map((t) => {
    const rf = Math.min(...(meta.find((m) => m.name === t)?.partitions ?? []).map((p) => p.replicas.length));
    const isr = resources.find((r) => r.resourceName === t)?.configEntries.find((e) => e.configName === "min.insync.replicas")?.configValue;
    return { t, rf, isr };
  });
  const bad = seen.filter((x) => x.rf !== want.rf || x.isr !== want.isr);
  if (bad.length > 0)
    throw new Error(`topics not replicated as configured (${want.rf} replicas, min ISR ${want.isr}): ${bad.map((b) => `${b.t} ${b.rf}/${b.isr}`).join(", ")}`);
  return `topics with ${want.rf} replicas, min.insync.replicas ${want.isr}`;
}

/** Waits until process `pid` has exited (after a signal sent to it). */
export async function waitGone(pid: number, ms = 60_000): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    try {
      process.kill(pid, 0);
    } catch {
      return;
    }
    if (Date.now() > deadline) throw new Error(`pid ${pid} still alive ${ms} ms after it was signalled`);
    await sleep(100);
  }
}

/** What `brokerId` leads among the scenario's raw and mapped partitions and the internal topics. */
async function leadership(rt: Runtime, s: Scenario, brokerId: number): Promise<string> {
  const admin = await rt.port.admin();
  const topics = [rt.port.topics.raw("crm"), rt.port.topics.mapped("crm", "deals"), "__consumer_offsets", "__transaction_state"];
  const parts: string[] = [];
  for (const topic of topics) {
    try {
      const { topics: meta } = await admin.fetchTopicMetadata({ topics: [topic] });
      const all = meta[0]?.partitions ?? [];
      const led = all.filter((p) => p.leader === brokerId).length;
      parts.push(`${led}/${all.length} ${topic.replace(`${s.prefix}.`, "")}`);
    } catch (e) {
      parts.push(`${topic}: ${(e as Error).message}`);
    }
  }
  return `leader of ${parts.join(", ")}`;
}

/** Milliseconds from `since` until `counter` goes above `before` (null when it does not within `ms`). */
async function nextProgress(counter: () => Promise<number>, before: number, since: number, ms: number): Promise<number | null> {
  const deadline = since + ms;
  while (Date.now() < deadline) {
    const now = await counter().catch(() => -1);
    if (before >= 0 && now > before) return Date.now() - since;
    await sleep(250);
  }
  return null;
}

export async function brokerDown(rt: Runtime, s: Scenario, opts: { random: () => number; log: (line: string) => void }): Promise<Fault[]> {
  const { brokers } = stackPids();
  if (brokers.length < 3 || brokers.some((b) => b.pid === undefined)) {
    throw new Error(
      `phase cluster needs a running three-broker stack started by qobra-sync (\`stack up --brokers 3\`); this one has ` +
        `${brokers.filter((b) => b.pid !== undefined).length} of ${brokers.length} broker(s) running`,
    );
  }
  await sleep(3000 + opts.random() * 5000);
  const victim = brokers[Math.floor(opts.random() * brokers.length)]!;
  const downMs = 10_000 + Math.round(opts.random() * 15_000);
  const replication = await checkReplication(rt, s);
  const led = await leadership(rt, s, victim.id);
  const counters = progressCounters(s, rt.port);
  const before = { mapper: await counters.mapper!().catch(() => -1), sink: await counters.sink!().catch(() => -1) };
  const killedAt = Date.now();
  process.kill(victim.pid!, "SIGKILL");
  await waitGone(victim.pid!);
  opts.log(`fault: Kafka broker ${victim.id} of 3 (pid ${victim.pid}, ${victim.address}; ${led}) SIGKILLed; restarting it in ${downMs / 1000} s`);
  const recovery = Promise.all([
    nextProgress(counters.mapper!, before.mapper, killedAt, 180_000),
    nextProgress(counters.sink!, before.sink, killedAt, 180_000),
  ]);
  await sleep(downMs);
  const t = Date.now();
  await stackUp({ print: (l) => opts.log(`stack: ${l}`) });
  const restartMs = Date.now() - t;
  opts.log(`broker ${victim.id} back after ${((Date.now() - killedAt) / 1000).toFixed(1)} s (restart took ${(restartMs / 1000).toFixed(1)} s)`);
  const [mapperMs, sinkMs] = await recovery;
  const secs = (ms: number | null) => (ms === null ? "no progress seen" : `${(ms / 1000).toFixed(1)} s`);
  return [
    {
      at: new Date(killedAt).toISOString(),
      kind: "SIGKILL + restart",
      target: `kafka broker ${victim.id}/3`,
      downMs: downMs + restartMs,
      note: `${replication}; ${led}; after the kill the mapper progressed again in ${secs(mapperMs)}, the sink in ${secs(sinkMs)}`,
      recoveryMs: mapperMs === null || sinkMs === null ? null : Math.max(mapperMs, sinkMs),
    },
  ];
}
