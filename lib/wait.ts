/**
 * Follows a run to the end: the producer's RUN_COMPLETED (or RUN_FAILED), then the mapper's
 * committed offsets past the run's raw records, then the sink's committed offsets past the
 * mapped records they produced. Returns only when every record of the run is committed in the
 * sink (or dead-lettered with its reason).
 *
 * Nobody serves a request when no producer runs: `requireProducer` says so within seconds instead
 * of letting `sync --wait` wait for ever, and while a run is followed, `onWarning` is told when a
 * role's consumer group has had no member for `absentWarnMs` (the run waits for that role).
 */
import type { Admin } from "kafkajs";
import type { Codec } from "./codec.ts";
import { RunFailedError } from "./errors.ts";
import { followTopics, type Follower } from "./follow-topic.ts";
import { committedOffsets, endOffsets, type KafkaPort } from "./kafka.ts";
import { groups } from "./topics.ts";
import type { SyncEvent } from "../schemas/index.ts";

export interface Progress {
  phase: "reading" | "mapping" | "writing" | "done";
  read: number;
  mappedLag: number;
  sinkLag: number;
  event?: SyncEvent;
}

/** Snapshot of the events topic's end offsets: take it BEFORE publishing the request. */
export async function eventsPosition(port: KafkaPort): Promise<Map<number, number>> {
  return endOffsets(await port.admin(), port.topics.syncEvents);
}

/** The pipeline's Kafka roles, each one consumer group (lib/topics.ts). */
export type PipelineRole = "producer" | "mapper" | "sink";

function roleGroups(prefix: string): Record<PipelineRole, string> {
  const g = groups(prefix);
  return { producer: g.producers, mapper: g.mapper, sink: g.sink };
}

/** Members of each role's consumer group now (0 for a group that does not exist). */
export async function roleMembers(admin: Admin, prefix: string): Promise<Record<PipelineRole, number>> {
  const ids = roleGroups(prefix);
  const { groups: described } = await admin.describeGroups(Object.values(ids));
  const count = (id: string) => described.find((d) => d.groupId === id)?.members.length ?? 0;
  return { producer: count(ids.producer), mapper: count(ids.mapper), sink: count(ids.sink) };
}

const startHint = (role: PipelineRole) => `\`qobra-sync run --roles ${role}\` (or \`qobra-sync run\` for the whole pipeline, or \`npm run demo\`)`;

/**
 * Resolves as soon as the producer group has a member; fails with a RunFailedError that says how
 * to start one when it has none for `graceMs` (a producer may be starting up, or rejoining).
 */
export async function requireProducer(port: KafkaPort, prefix: string, opts: { graceMs?: number; pollMs?: number } = {}): Promise<void> {
  const admin = await port.admin();
  const deadline = Date.now() + (opts.graceMs ?? 6000);
  for (;;) {
    if ((await roleMembers(admin, prefix)).producer > 0) return;
    if (Date.now() >= deadline) break;
    await new Promise((r) => setTimeout(r, opts.pollMs ?? 500));
  }
  throw new RunFailedError(
    `no producer is running for topic prefix ${prefix} (consumer group ${roleGroups(prefix).producer} has no member), so nobody would serve the request; it was not sent. Start one with ${startHint("producer")}, then sync again`,
  );
}

/**
 * Calls `warn` once for each role still `needed` whose group has had no member for `absentWarnMs`,
 * and again after it came back and went away again. Returns the function that stops watching.
 */
function watchRoles(admin: Admin, prefix: string, needed: Set<PipelineRole>, warn: (text: string) => void, absentWarnMs: number): () => void {
  const ids = roleGroups(prefix);
  const absentSince = new Map<PipelineRole, number>();
  const warned = new Set<PipelineRole>();
  let busy = false;
  let stopped = false;
  const check = async () => {
    if (busy || stopped) return;
    busy = true;
    try {
      const members = await roleMembers(admin, prefix);
      for (const role of Object.keys(members) as PipelineRole[]) {
        if (members[role] > 0 || !needed.has(role)) {
          absentSince.delete(role);
          warned.delete(role);
          continue;
        }
        const since = absentSince.get(role) ?? Date.now();
        absentSince.set(role, since);
        if (!stopped && !warned.has(role) && Date.now() - since >= absentWarnMs) {
          warned.add(role);
          warn(
            `no ${role} is running (consumer group ${ids[role]} has had no member for ${Math.round((Date.now() - since) / 1000)} s): the run waits for one; start it with ${startHint(role)}`,
          );
        }
      }
    } catch {
      // A broker hiccup: the next check tells.
    } finally {
      busy = false;
    }
  };
  void check();
  const timer = setInterval(() => void check(), Math.min(2000, absentWarnMs));
  return () => {
    stopped = true;
    clearInterval(timer);
  };
}

export async function waitForRun(
  port: KafkaPort,
  codec: Codec,
  prefix: string,
  runId: string,
  from: Map<number, number>,
  opts: {
    timeoutMs?: number;
    onProgress?: (p: Progress) => void;
    /** Told when a role the run needs has had no member for `absentWarnMs` (default 10 s). */
    onWarning?: (text: string) => void;
    absentWarnMs?: number;
    tables: Array<{ connector: string; table: string }>;
  },
): Promise<SyncEvent> {
  const admin = await port.admin();
  // The roles the run still waits for: the producer until its last event, then the mapper until it
  // has caught up, then the sink.
  const needed = new Set<PipelineRole>(["producer", "mapper", "sink"]);
  const unwatch = opts.onWarning ? watchRoles(admin, prefix, needed, opts.onWarning, opts.absentWarnMs ?? 10_000) : () => {};
  try {
    return await followRun(port, codec, prefix, runId, from, admin, needed, opts);
  } finally {
    unwatch();
  }
}

async function followRun(
  port: KafkaPort,
  codec: Codec,
  prefix: string,
  runId: string,
  from: Map<number, number>,
  admin: Admin,
  needed: Set<PipelineRole>,
  opts: { timeoutMs?: number; onProgress?: (p: Progress) => void; tables: Array<{ connector: string; table: string }> },
): Promise<SyncEvent> {
  const deadline = Date.now() + (opts.timeoutMs ?? 6 * 3600_000);
  let read = 0;
  const final = await new Promise<SyncEvent>((resolve, reject) => {
    let follower: Follower | undefined;
    let settled = false;
    const finish = (fn: () => void) => {
      if (settled) return;
      settled = true;
      clearInterval(timer);
      // The follower may still be starting: it is stopped as soon as it exists.
      void started.then(() => follower?.stop()).finally(fn);
    };
    const timer = setInterval(() => {
      if (Date.now() > deadline) finish(() => reject(new RunFailedError(`run ${runId} did not finish in time`)));
    }, 1000);
    const started = followTopics(port, {
      topics: [port.topics.syncEvents],
      groupPrefix: `${prefix}-wait`,
      from: new Map([[port.topics.syncEvents, from]]),
      consumer: { sessionTimeout: 10_000 },
      onBatch: async ({ messages }) => {
        for (const message of messages) {
          if (settled) return;
          if (message.key?.toString() !== runId || !message.value) continue;
          const e = await codec.decode<SyncEvent>(message.value);
          if (e.type === "TABLE_COMPLETED") read += e.counts.read ?? 0;
          opts.onProgress?.({ phase: "reading", read, mappedLag: 0, sinkLag: 0, event: e });
          if (e.type === "RUN_COMPLETED" || e.type === "RUN_FAILED") finish(() => resolve(e));
        }
      },
    }).then(
      (f) => {
        follower = f;
      },
      (e: unknown) => finish(() => reject(e)),
    );
  });
  needed.delete("producer");
  if (final.type === "RUN_FAILED") return final;

  const g = groups(prefix);
  const rawTargets = new Map<string, Map<number, number>>();
  for (const o of final.offsets) {
    let m = rawTargets.get(o.topic);
    if (!m) rawTargets.set(o.topic, (m = new Map()));
    m.set(o.partition, o.offset);
  }
  await waitCaughtUp(admin, g.mapper, rawTargets, deadline, (lag) => opts.onProgress?.({ phase: "mapping", read, mappedLag: lag, sinkLag: 0 }));
  needed.delete("mapper");
  const mappedTargets = new Map<string, Map<number, number>>();
  for (const t of opts.tables) {
    const topic = port.topics.mapped(t.connector, t.table);
    mappedTargets.set(topic, await endOffsets(admin, topic));
  }
  await waitCaughtUp(admin, g.sink, mappedTargets, deadline, (lag) => opts.onProgress?.({ phase: "writing", read, mappedLag: 0, sinkLag: lag }));
  opts.onProgress?.({ phase: "done", read, mappedLag: 0, sinkLag: 0 });
  return final;
}

async function waitCaughtUp(
  admin: Admin,
  groupId: string,
  targets: Map<string, Map<number, number>>,
  deadline: number,
  onLag: (lag: number) => void,
): Promise<void> {
  for (;;) {
    let lag = 0;
    for (const [topic, parts] of targets) {
      const committed = await committedOffsets(admin, groupId, topic);
      for (const [p, end] of parts) {
        const c = committed.get(p) ?? -1;
        lag += Math.max(0, end - Math.max(c, 0));
      }
    }
    onLag(lag);
    if (lag === 0) return;
    if (Date.now() > deadline) throw new RunFailedError(`${groupId} did not catch up in time (lag ${lag})`);
    await new Promise((r) => setTimeout(r, 250));
  }
}
