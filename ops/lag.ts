/**
 * Consumer lag, from Kafka alone: each role's consumer group, its committed offsets and the
 * topics' end offsets. Nothing inside the roles is instrumented. The age of the oldest
 * unprocessed record is the timestamp of the record at the committed offset, fetched by a
 * short-lived probe consumer (cached while the committed offset does not move).
 */
import type { Admin, GroupDescription } from "kafkajs";
import type { Config } from "../lib/config.ts";
import { followTopics, type Follower } from "../lib/follow-topic.ts";
import type { KafkaPort } from "../lib/kafka.ts";
import { logger } from "../lib/log.ts";
import { groups, topics as topicNames } from "../lib/topics.ts";

const log = logger.child({ component: "ops-lag" });

export type Role = "producer" | "mapper" | "sink";

export interface GroupSpec {
  group: string;
  role: Role;
  topics: Array<{ topic: string; connector: string | null; tenant: string | null; table: string | null }>;
}

export interface PartitionLag {
  group: string;
  role: Role;
  topic: string;
  connector: string | null;
  /** The connector's tenant (null: a connector without one, or a topic of no connector). */
  tenant: string | null;
  table: string | null;
  partition: number;
  /** Next offset the group will read; -1 when the group never committed on this partition. */
  committed: number;
  /** Log start offset (earliest still stored). */
  low: number;
  /** End offset (high watermark). */
  end: number;
  lag: number;
  /** Kafka timestamp (ms) of the oldest record not yet processed, when known. */
  oldestUnprocessedAt: number | null;
}

export interface GroupState {
  group: string;
  role: Role;
  state: string;
  members: number;
  clients: string[];
}

export interface LagSnapshot {
  at: number;
  partitions: PartitionLag[];
  groups: GroupState[];
}

/** The consumer groups of the pipeline and the topics each one reads. */
export function pipelineGroups(config: Config): GroupSpec[] {
  const t = topicNames(config.topicPrefix);
  const g = groups(config.topicPrefix);
  return [
    { group: g.producers, role: "producer", topics: [{ topic: t.syncRequests, connector: null, tenant: null, table: null }] },
    {
      group: g.mapper,
      role: "mapper",
      topics: config.connectors.map((c) => ({ topic: t.raw(c.id), connector: c.id, tenant: c.tenant ?? null, table: null })),
    },
    {
      group: g.sink,
      role: "sink",
      topics: config.connectors.flatMap((c) =>
        c.tables.map((tb) => ({ topic: t.mapped(c.id, tb.name), connector: c.id, tenant: c.tenant ?? null, table: tb.name })),
      ),
    },
  ];
}

/**
 * What is left to process: from the committed offset (or, where the group never committed, the
 * log start: a new group reads from the beginning) to the end offset. Never negative.
 */
export function computeLag(committed: number, low: number, end: number): number {
  const from = committed < 0 ? low : Math.max(committed, low);
  return Math.max(0, end - from);
}

/** Offsets of every partition of the given topics and the committed offsets of each group. */
export async function snapshotLag(admin: Admin, specs: GroupSpec[], now = Date.now()): Promise<LagSnapshot> {
  const topicSet = [...new Set(specs.flatMap((s) => s.topics.map((t) => t.topic)))];
  const offsets = new Map<string, Array<{ partition: number; low: number; high: number }>>();
  await Promise.all(
    topicSet.map(async (topic) => {
      try {
        const o = await admin.fetchTopicOffsets(topic);
        offsets.set(
          topic,
          o.map((p) => ({ partition: p.partition, low: Number(p.low), high: Number(p.high) })),
        );
      } catch (e) {
        log.debug({ topic, err: (e as Error).message }, "no offsets for topic (not created yet?)");
      }
    }),
  );
  const partitions: PartitionLag[] = [];
  await Promise.all(
    specs.map(async (spec) => {
      const present = spec.topics.filter((t) => offsets.has(t.topic));
      if (present.length === 0) return;
      const committed = new Map<string, number>();
      const res = await admin.fetchOffsets({ groupId: spec.group, topics: present.map((t) => t.topic) });
      for (const t of res) for (const p of t.partitions) committed.set(`${t.topic}\u0000${p.partition}`, Number(p.offset));
      for (const t of present) {
        for (const p of offsets.get(t.topic)!) {
          const c = committed.get(`${t.topic}\u0000${p.partition}`) ?? -1;
          partitions.push({
            group: spec.group,
            role: spec.role,
            topic: t.topic,
            connector: t.connector,
            tenant: t.tenant,
            table: t.table,
            partition: p.partition,
            committed: c,
            low: p.low,
            end: p.high,
            lag: computeLag(c, p.low, p.high),
            oldestUnprocessedAt: null,
          });
        }
      }
    }),
  );
  partitions.sort((a, b) => a.group.localeCompare(b.group) || a.topic.localeCompare(b.topic) || a.partition - b.partition);
  let described: GroupDescription[] = [];
  try {
    described = (await admin.describeGroups(specs.map((s) => s.group))).groups;
  } catch (e) {
    log.debug({ err: (e as Error).message }, "describeGroups failed");
  }
  const groupStates: GroupState[] = specs.map((s) => {
    const d = described.find((x) => x.groupId === s.group);
    return {
      group: s.group,
      role: s.role,
      state: d?.state ?? "Unknown",
      members: d?.members.length ?? 0,
      clients: (d?.members ?? []).map((m) => `${m.clientId}@${m.clientHost.replace(/^\//, "")}`),
    };
  });
  return { at: now, partitions, groups: groupStates };
}

/** Sums per group: lag, committed offsets (what was processed), partitions lagging. */
export function groupTotals(
  snapshot: LagSnapshot,
): Map<string, { role: Role; lag: number; committed: number; partitions: number; lagging: number; oldestUnprocessedAt: number | null }> {
  const out = new Map<string, { role: Role; lag: number; committed: number; partitions: number; lagging: number; oldestUnprocessedAt: number | null }>();
  for (const g of snapshot.groups) out.set(g.group, { role: g.role, lag: 0, committed: 0, partitions: 0, lagging: 0, oldestUnprocessedAt: null });
  for (const p of snapshot.partitions) {
    const t = out.get(p.group)!;
    t.lag += p.lag;
    t.committed += Math.max(0, p.committed);
    t.partitions++;
    if (p.lag > 0) t.lagging++;
    if (p.oldestUnprocessedAt !== null && (t.oldestUnprocessedAt === null || p.oldestUnprocessedAt < t.oldestUnprocessedAt))
      t.oldestUnprocessedAt = p.oldestUnprocessedAt;
  }
  return out;
}

/**
 * Fills `oldestUnprocessedAt` of the lagging partitions: the Kafka timestamp of the first record
 * at or after the committed offset. One probe consumer (a throw-away group, nothing committed)
 * seeks each lagging partition there and reads one batch. Results are cached by
 * topic/partition/offset, so a stuck group costs one probe. Partitions not answered within
 * `timeoutMs` keep null.
 */
export class OldestRecordProbe {
  private readonly cache = new Map<string, number>();
  private readonly port: KafkaPort;
  private readonly prefix: string;
  constructor(port: KafkaPort, prefix: string) {
    this.port = port;
    this.prefix = prefix;
  }

  /** Fills what the cache knows; returns true when some lagging partition is still unknown. */
  applyCached(partitions: PartitionLag[]): boolean {
    let missing = false;
    for (const p of partitions) {
      if (p.lag <= 0) continue;
      const cached = this.cache.get(probeKey(p));
      if (cached !== undefined) p.oldestUnprocessedAt = cached;
      else missing = true;
    }
    return missing;
  }

  async fill(partitions: PartitionLag[], timeoutMs = 5000): Promise<void> {
    const wanted = new Map<string, { topic: string; partition: number; offset: number; rows: PartitionLag[] }>();
    for (const p of partitions) {
      if (p.lag <= 0) continue;
      const offset = p.committed < 0 ? p.low : Math.max(p.committed, p.low);
      const key = probeKey(p);
      const cached = this.cache.get(key);
      if (cached !== undefined) {
        p.oldestUnprocessedAt = cached;
        continue;
      }
      const w = wanted.get(key);
      if (w) w.rows.push(p);
      else wanted.set(key, { topic: p.topic, partition: p.partition, offset, rows: [p] });
    }
    if (wanted.size === 0) return;
    const byTp = new Map<string, { offset: number; key: string }>();
    for (const [key, w] of wanted) byTp.set(`${w.topic}\u0000${w.partition}`, { offset: w.offset, key });
    const topicList = [...new Set([...wanted.values()].map((w) => w.topic))];
    const pending = new Set(byTp.keys());
    let timer: NodeJS.Timeout | undefined;
    let starting: Promise<Follower> | undefined;
    try {
      await new Promise<void>((resolve, reject) => {
        timer = setTimeout(resolve, timeoutMs);
        const seeked = new Set<string>();
        starting = followTopics(this.port, {
          topics: topicList,
          groupPrefix: `${this.prefix}-ops-probe`,
          from: "beginning",
          consumer: { sessionTimeout: 10_000, maxWaitTimeInMs: 200, maxBytesPerPartition: 64 * 1024 },
          onAssign: (assignment, control) => {
            for (const [topic, parts] of Object.entries(assignment)) {
              for (const partition of parts) {
                const tp = `${topic}\u0000${partition}`;
                const target = byTp.get(tp);
                if (target && !seeked.has(tp)) {
                  seeked.add(tp);
                  control.seek(topic, partition, target.offset);
                } else if (!target) control.pause(topic, partition);
              }
            }
          },
          onBatch: ({ topic, partition, messages, pause }) => {
            const tp = `${topic}\u0000${partition}`;
            const target = byTp.get(tp);
            if (!target || !pending.has(tp)) return;
            const first = messages.find((m) => Number(m.offset) >= target.offset);
            if (!first) return;
            const ts = Number(first.timestamp);
            this.cache.set(target.key, ts);
            for (const row of wanted.get(target.key)!.rows) row.oldestUnprocessedAt = ts;
            pending.delete(tp);
            pause();
            if (pending.size === 0) resolve();
          },
        });
        starting.catch(reject);
      });
    } catch (e) {
      log.debug({ err: (e as Error).message }, "oldest-record probe failed");
    } finally {
      if (timer) clearTimeout(timer);
      // A follower still starting when the time is up is stopped once it has started.
      await starting?.then(
        (f) => f.stop(),
        () => {},
      );
    }
    if (this.cache.size > 10_000) this.cache.clear();
  }
}

function probeKey(p: PartitionLag): string {
  const offset = p.committed < 0 ? p.low : Math.max(p.committed, p.low);
  return `${p.topic}\u0000${p.partition}\u0000${offset}`;
}
