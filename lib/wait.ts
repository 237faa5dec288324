/**
 * Follows a run to the end: the producer's RUN_COMPLETED (or RUN_FAILED), then the mapper's
 * committed offsets past the run's raw records, then the sink's committed offsets past the
 * mapped records they produced. Returns only when every record of the run is committed in the
 * sink (or dead-lettered with its reason).
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

export async function waitForRun(
  port: KafkaPort,
  codec: Codec,
  prefix: string,
  runId: string,
  from: Map<number, number>,
  opts: { timeoutMs?: number; onProgress?: (p: Progress) => void; tables: Array<{ connector: string; table: string }> },
): Promise<SyncEvent> {
  const deadline = Date.now() + (opts.timeoutMs ?? 6 * 3600_000);
  const admin = await port.admin();
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
  if (final.type === "RUN_FAILED") return final;

  const g = groups(prefix);
  const rawTargets = new Map<string, Map<number, number>>();
  for (const o of final.offsets) {
    let m = rawTargets.get(o.topic);
    if (!m) rawTargets.set(o.topic, (m = new Map()));
    m.set(o.partition, o.offset);
  }
  await waitCaughtUp(admin, g.mapper, rawTargets, deadline, (lag) => opts.onProgress?.({ phase: "mapping", read, mappedLag: lag, sinkLag: 0 }));
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
