/**
 * Zombie fencing (issue 15, item 2): two mapper processes share a large full run; one of them is
 * frozen with SIGSTOP (as a long GC pause or a stalled VM would) past its session timeout, its
 * partitions move to the other mapper, which maps them on, and then it is resumed with SIGCONT,
 * holding batches it had fetched and not committed. Its commits must be refused (its partitions'
 * transactional ids were initialised by the other mapper, lib/partition-transactions.ts).
 *
 * Afterwards the mapped topic, read with read_committed, holds every raw record's mapping exactly
 * once: no key twice, no raw position (headers qobra.raw.partition / qobra.raw.offset) twice, none
 * missing; and the sink verdict holds (nothing lost, doubled or stale, no lag, no dead letter).
 *
 * ZOMBIE_ROWS (default 300,000) sizes the run. The transaction timeout is raised to 60 s here, so
 * that the frozen mapper's open transaction is not rescued by the broker's timeout: only fencing
 * stops it (with a random transactional id per process, as before issue 15, this test fails).
 */
import kafkajs, { type Admin, type KafkaMessage } from "kafkajs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { committedOffsets, endOffsets, type KafkaPort } from "../../lib/kafka.ts";
import { openRuntime, type Runtime } from "../../lib/runtime.ts";
import { groups } from "../../lib/topics.ts";
import { uniqueId } from "../../support/env.ts";
import { syncAndWait } from "../../support/pipeline.ts";
import { dropScenario, RoleProcess, type Scenario, scenario, seedSource, sleep, summarize, verdict } from "../../support/reliability.ts";

const ROWS = Number(process.env.ZOMBIE_ROWS ?? 300_000);
const PARTITIONS = 4;
const SESSION_MS = 6000;

let s: Scenario;
let rt: Runtime;
const procs: RoleProcess[] = [];
const log = (line: string) => process.stderr.write(`[zombie] ${line}\n`);

beforeAll(async () => {
  s = scenario(uniqueId("zombie"), { partitions: PARTITIONS, kafka: { sessionTimeoutMs: SESSION_MS, transactionTimeoutMs: 60_000 } });
  await seedSource(s, ROWS);
  rt = await openRuntime(s.config, "zombie-test");
});

afterAll(async () => {
  for (const p of procs) await p.freeze(false).catch(() => {});
  await Promise.all(procs.map((p) => p.stop(5000)));
  if (rt && process.env.ZOMBIE_KEEP !== "1") await dropScenario(s, rt.port);
  await rt?.close();
});

/** The mapper group's members and the raw partitions each holds. */
async function members(admin: Admin, groupId: string): Promise<Map<string, number[]>> {
  const { groups: described } = await admin.describeGroups([groupId]);
  const out = new Map<string, number[]>();
  const group = described[0];
  if (group?.state !== "Stable") return out;
  for (const m of group.members) {
    const decoded = kafkajs.AssignerProtocol.MemberAssignment.decode(m.memberAssignment);
    out.set(
      m.memberId,
      Object.values(decoded?.assignment ?? {})
        .flat()
        .sort(),
    );
  }
  return out;
}

async function until<T>(what: string, timeoutMs: number, probe: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe().catch(() => undefined);
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

/** Every record of a topic up to its current end, read with read_committed (aborted transactions and markers skipped). */
async function readCommitted(port: KafkaPort, topic: string, each: (m: KafkaMessage, partition: number) => void): Promise<void> {
  const admin = await port.admin();
  const ends = await endOffsets(admin, topic);
  const pending = new Set([...ends].filter(([, end]) => end > 0).map(([p]) => p));
  if (pending.size === 0) return;
  const groupId = `${topic}-check-${Date.now()}`;
  const consumer = port.kafka.consumer({ groupId, readUncommitted: false, maxBytesPerPartition: 8 * 1024 * 1024 });
  let done!: () => void;
  const finished = new Promise<void>((r) => {
    done = r;
  });
  // A batch that holds only a transaction marker never reaches eachBatch: its end is seen here.
  consumer.on(consumer.events.END_BATCH_PROCESS, (e) => {
    if (Number(e.payload.lastOffset) + 1 >= ends.get(e.payload.partition)!) pending.delete(e.payload.partition);
    if (pending.size === 0) done();
  });
  await consumer.connect();
  await consumer.subscribe({ topic, fromBeginning: true });
  await consumer.run({
    eachBatch: async ({ batch }) => {
      for (const m of batch.messages) if (Number(m.offset) < ends.get(batch.partition)!) each(m, batch.partition);
    },
  });
  await Promise.race([finished, sleep(120_000).then(() => Promise.reject(new Error(`reading ${topic} did not reach its end`)))]);
  await consumer.disconnect();
  await admin.deleteGroups([groupId]).catch(() => {});
}

describe("a mapper frozen past its session timeout, then resumed (a zombie)", () => {
  it(`commits nothing after its partitions moved: every raw record of ${ROWS} mapped exactly once`, async () => {
    const started = Date.now();
    const admin = await rt.port.admin();
    const groupId = groups(s.prefix).mapper;
    const rawTopic = rt.port.topics.raw("crm");
    const mappedTopic = rt.port.topics.mapped("crm", "deals");
    const [a, b] = [new RoleProcess("mapper", s, { name: "mapper-a" }), new RoleProcess("mapper", s, { name: "mapper-b" })];
    procs.push(new RoleProcess("producer", s), new RoleProcess("sink", s), a, b);
    for (const p of procs) p.start();
    await until("two mappers sharing the raw partitions", 60_000, async () => {
      const m = await members(admin, groupId);
      return m.size === 2 && [...m.values()].every((parts) => parts.length > 0) ? m : undefined;
    });

    const run = syncAndWait(rt, "crm", { full: true, timeoutMs: 240_000 });
    // Freeze one mapper while both map a backlog (the producer still publishing).
    const mapped = async () => [...(await committedOffsets(admin, groupId, rawTopic)).values()].reduce((x, y) => x + Math.max(0, y), 0);
    await until("the mappers to be under way", 120_000, async () => ((await mapped()) >= ROWS * 0.05 ? true : undefined));
    const before = await members(admin, groupId);
    await a.freeze(true);
    const frozenAt = Date.now();
    log(`mapper-a frozen (SIGSTOP) after ${await mapped()} raw records were committed; group: ${JSON.stringify([...before])}`);

    // Its partitions move to the other mapper once its session expires, and are mapped on there.
    const survivor = await until("the frozen mapper's partitions to move", 60_000, async () => {
      const m = await members(admin, groupId);
      return m.size === 1 && [...m.values()][0]!.length === PARTITIONS ? [...m.keys()][0]! : undefined;
    });
    const moved = [...before].filter(([id]) => id !== survivor).flatMap(([, parts]) => parts);
    const movedAt = Date.now();
    const atMove = await committedOffsets(admin, groupId, rawTopic);
    await until("the other mapper to commit on the moved partitions", 60_000, async () => {
      const now = await committedOffsets(admin, groupId, rawTopic);
      return moved.every((p) => (now.get(p) ?? -1) > (atMove.get(p) ?? -1)) ? true : undefined;
    }).catch(() => log("the moved partitions had nothing left to map"));
    await a.freeze(false);
    log(
      `partitions ${moved.join(", ")} moved ${((movedAt - frozenAt) / 1000).toFixed(1)} s after the freeze; mapper-a resumed (SIGCONT) after ${((Date.now() - frozenAt) / 1000).toFixed(1)} s`,
    );

    const done = await run;
    expect(done.type, done.error ?? "").toBe("RUN_COMPLETED");
    expect(done.counts.read).toBe(ROWS);
    log(`run completed ${((Date.now() - started) / 1000).toFixed(0)} s after the roles started`);

    // Every raw record, and every mapped record with the raw position it came from.
    const raw = new Set<string>();
    await readCommitted(rt.port, rawTopic, (m, p) => {
      raw.add(`${p}:${m.offset}`);
    });
    const byKey = new Map<string, number>();
    const byRaw = new Map<string, number>();
    let records = 0;
    await readCommitted(rt.port, mappedTopic, (m) => {
      records++;
      const key = m.key?.toString() ?? "";
      byKey.set(key, (byKey.get(key) ?? 0) + 1);
      const pos = `${m.headers?.["qobra.raw.partition"]?.toString()}:${m.headers?.["qobra.raw.offset"]?.toString()}`;
      byRaw.set(pos, (byRaw.get(pos) ?? 0) + 1);
    });
    const twiceByKey = [...byKey].filter(([, n]) => n > 1).map(([k]) => k);
    const twiceByRaw = [...byRaw].filter(([, n]) => n > 1).map(([k]) => k);
    const missing = [...raw].filter((pos) => !byRaw.has(pos));
    const unknown = [...byRaw.keys()].filter((pos) => !raw.has(pos));
    const fenced = a.lines(/initialised by another owner/).length;
    log(
      `mapped topic (read_committed): ${records} records for ${raw.size} raw records; ${twiceByKey.length} keys twice, ${twiceByRaw.length} raw positions twice, ${missing.length} missing, ${unknown.length} unknown; mapper-a's commits refused: ${fenced}`,
    );
    const v = await verdict(s, rt.port);
    log(summarize(v, 1));

    expect(raw.size).toBe(ROWS);
    expect(twiceByRaw.slice(0, 10), "raw positions mapped twice").toEqual([]);
    expect(twiceByKey.slice(0, 10), "keys mapped twice").toEqual([]);
    expect(missing.slice(0, 10), "raw records never mapped").toEqual([]);
    expect(unknown.slice(0, 10), "mapped records without a raw record").toEqual([]);
    expect(records).toBe(ROWS);
    // The zombie did try to commit after its partitions moved, and was refused.
    expect(fenced, "mapper-a's commits refused after SIGCONT").toBeGreaterThan(0);
    expect({ lost: v.lost.length, duplicated: v.duplicated.length, stale: v.stale.length, mapperLag: v.mapperLag, sinkLag: v.sinkLag }).toEqual({
      lost: 0,
      duplicated: 0,
      stale: 0,
      mapperLag: 0,
      sinkLag: 0,
    });
    expect({ dlqMapper: v.dlqMapper, dlqSink: v.dlqSink }).toEqual({ dlqMapper: 0, dlqSink: 0 });
    expect(
      procs.flatMap((p) => p.crashes.map((c) => `${p.name}: ${c.logTail}`)),
      "unplanned exits",
    ).toEqual([]);
  }, 180_000);
});
