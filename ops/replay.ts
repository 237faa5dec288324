/**
 * `qobra-sync replay`: a full resync of the sink from the compacted raw topic, with no call to
 * the source. The raw topic holds the latest state of every record the source still has (and
 * the tombstones of recent deletes), so mapping it again from the start and writing the result
 * rebuilds the sink: after a mapping change, or a lost sink table.
 *
 * Procedure (Kafka resets a consumer group's offsets only while no member of the group runs):
 *  1. Refuse unless the mapper group `<prefix>-mapper` has no running member, naming the members.
 *     If a sink is running and a sink table of the connector is missing, refuse too: a running
 *     sink knows the table and would not create it again; it must be restarted.
 *  2. Publish RUN_STARTED (stage "replay") on sync.events, so the page and the metrics show it.
 *  3. Move the mapper group's offsets on raw.<connector> back to the log start (or, with
 *     --since, to the first record written at or after that time).
 *  4. Run the mapper role in this process (and the sink role when none is running; the roles are
 *     started by the composition root's starter, passed in: app/replay.ts) until the
 *     mapper has passed the raw end offsets taken at step 3 and the sink has passed the mapped
 *     topics' end offsets taken when the mapper was done; report progress meanwhile.
 *  5. Publish RUN_COMPLETED (stage "replay") with the counts, stop the roles it started.
 *
 * The mapper stamps every mapped record with its raw offset as `_version`, so replayed records
 * carry the versions they had; the sink's guard (`_version <=`) re-applies equal versions and
 * never lets an older one win. A record deleted at the source is a DELETE envelope and a
 * tombstone in the raw topic (or nothing at all once compaction removed both): it is written
 * again as a soft delete, or not at all; it never comes back to life.
 */
import { randomUUID } from "node:crypto";
import type { Admin } from "kafkajs";
import { findConnector, type Config } from "../lib/config.ts";
import { newEvent, publishEvent } from "../lib/codec.ts";
import { ConfigError, RunFailedError, describeError } from "../lib/errors.ts";
import { committedOffsets, endOffsets, topicOffsets } from "../lib/kafka.ts";
import { logger } from "../lib/log.ts";
import { createPool } from "../lib/pg.ts";
import { openRuntime, type Runtime } from "../lib/runtime.ts";
import { groups } from "../lib/topics.ts";
import type { SyncEvent } from "../schemas/index.ts";
import { sinkTableStats } from "./sink-stats.ts";

const log = logger.child({ component: "replay" });

export interface ReplayProgress {
  phase: "mapping" | "writing" | "done";
  /** Raw records to map again. */
  total: number;
  mapped: number;
  /** Mapped records (offsets, transaction markers included) the sink still has to write. */
  sinkLag: number | null;
  written: number;
}

/** The roles replay may run itself. */
type ReplayRole = "mapper" | "sink";

/** Starts roles in this process until stopped (app/roles.ts `runRoles`). */
type StartRoles = (config: Config, roles: readonly ReplayRole[]) => Promise<{ stop(): Promise<void> }>;

export interface ReplayOptions {
  tables?: string[];
  /** Epoch ms: replay only the raw records written at or after this time. */
  since?: number;
  timeoutMs?: number;
  onProgress?: (p: ReplayProgress) => void;
  pollMs?: number;
  by?: string;
}

export interface ReplayResult {
  runId: string;
  connector: string;
  tables: string[];
  since: string | null;
  records: number;
  durationMs: number;
  /** Roles this command ran itself. */
  ranRoles: ReplayRole[];
  rows: Record<string, { live: number; deleted: number }>;
  from: Array<{ partition: number; offset: number }>;
  to: Array<{ partition: number; offset: number }>;
}

/** Replay would be unsafe now (a mapper or sink is running): the run fails and says what to stop. */
export class ReplayRefused extends RunFailedError {}

export async function replayFromRaw(startRoles: StartRoles, config: Config, connectorId: string, opts: ReplayOptions = {}): Promise<ReplayResult> {
  const connector = findConnector(config, connectorId);
  const tables = opts.tables && opts.tables.length > 0 ? opts.tables : connector.tables.map((t) => t.name);
  for (const t of tables) {
    if (!connector.tables.some((x) => x.name === t))
      throw new ConfigError(`connector ${connectorId} has no table ${t}; tables: ${connector.tables.map((x) => x.name).join(", ")}`);
  }
  const rt = await openRuntime(config, "replay");
  const g = groups(config.topicPrefix);
  const rawTopic = rt.port.topics.raw(connectorId);
  const started = Date.now();
  const runId = randomUUID();
  let published = false;
  let handle: { stop(): Promise<void> } | undefined;
  const producer = await rt.port.producer({ idempotent: true, maxInFlightRequests: 1 });
  const base = { runId, connector: connectorId, stage: "replay", full: true };
  /** Publishes one of this replay's lifecycle events to sync.events. */
  const emit = (type: SyncEvent["type"], fields: Partial<SyncEvent>) =>
    publishEvent(producer, rt.codec, rt.port.topics.syncEvents, newEvent({ ...base, type, ...fields }));
  try {
    const admin = await rt.port.admin();
    const { groups: described } = await admin.describeGroups([g.mapper, g.sink]);
    const members = (id: string) => described.find((d) => d.groupId === id)?.members ?? [];
    const mapperMembers = members(g.mapper);
    if (mapperMembers.length > 0) {
      throw new ReplayRefused(
        `replay needs the mapper stopped: consumer group ${g.mapper} has ${mapperMembers.length} running member(s) ` +
          `(${mapperMembers.map((m) => `${m.clientId} on ${m.clientHost.replace(/^\//, "")}`).join(", ")}), and Kafka resets a group's offsets only while none runs. ` +
          `Stop every \`qobra-sync run\` that runs the mapper role, run \`qobra-sync replay ${connectorId}\` again (it runs the mapper, and the sink when none is running, until the sink has caught up), then start them again`,
      );
    }
    const sinkRunning = members(g.sink).length > 0;
    if (sinkRunning) {
      const pool = createPool(config.sink.databaseUrl, { max: 1 });
      try {
        const missing = (await sinkTableStats(pool, config, { exactCounts: false })).filter(
          (s) => s.connector === connectorId && tables.includes(s.table) && !s.exists,
        );
        if (missing.length > 0) {
          throw new ReplayRefused(
            `the sink table${missing.length > 1 ? "s" : ""} ${missing.map((m) => m.relation).join(", ")} ${missing.length > 1 ? "are" : "is"} missing and a sink is running ` +
              `(group ${g.sink}); a running sink does not create a table it already knows. Stop the sink role too and run replay again`,
          );
        }
      } finally {
        await pool.end().catch(() => {});
      }
    }

    // Where to start and where to stop, per partition of the raw topic.
    const offsets = await topicOffsets(admin, rawTopic);
    const low = new Map(offsets.map((o) => [o.partition, o.low]));
    const end = new Map(offsets.map((o) => [o.partition, o.high]));
    const start = new Map(low);
    if (opts.since !== undefined) {
      for (const o of await admin.fetchTopicOffsetsByTimestamp(rawTopic, opts.since))
        start.set(o.partition, Math.max(Number(o.offset), low.get(o.partition) ?? 0));
    }
    const total = [...end].reduce((n, [p, e]) => n + Math.max(0, e - (start.get(p) ?? 0)), 0);
    const mappedTopics = tables.map((t) => rt.port.topics.mapped(connectorId, t));
    const sinkBaseline = new Map<string, Map<number, number>>();
    for (const topic of mappedTopics) sinkBaseline.set(topic, await endOffsets(admin, topic));

    await emit("RUN_STARTED", { counts: { records: total, tables: tables.length, ...(opts.since !== undefined ? { since: opts.since } : {}) } });
    published = true;
    log.info({ connector: connectorId, runId, total, since: opts.since }, "replay started");

    const roles: ReplayRole[] = total === 0 ? [] : sinkRunning ? ["mapper"] : ["mapper", "sink"];
    if (total > 0) await resetGroupOffsets(rt, g.mapper, rawTopic, start);

    // Nothing written to the raw topic in the window: nothing to map, no role to run. One
    // runtime per role, so that they stop in parallel.
    const handles: Array<{ stop(): Promise<void> }> = [];
    handle = {
      stop: async () => {
        await Promise.all(handles.map((h) => h.stop()));
      },
    };
    for (const role of roles) handles.push(await startRoles({ ...config, http: undefined }, [role]));
    const deadline = Date.now() + (opts.timeoutMs ?? 6 * 3600_000);
    const poll = opts.pollMs ?? 500;
    let lastEvent = Date.now();
    const report = async (p: ReplayProgress) => {
      opts.onProgress?.(p);
      if (Date.now() - lastEvent > 2000) {
        lastEvent = Date.now();
        await emit("PROGRESS", { counts: { records: total, mapped: p.mapped, ...(p.sinkLag !== null ? { sinkLag: p.sinkLag } : {}) } }).catch(() => {});
      }
    };

    // 1. the mapper past the raw end offsets
    for (;;) {
      if (total === 0) break;
      const c = await committedOffsets(admin, g.mapper, rawTopic);
      let mapped = 0,
        left = 0;
      for (const [p, e] of end) {
        const s = start.get(p) ?? 0;
        const at = Math.min(e, Math.max(c.get(p) ?? -1, s));
        mapped += at - s;
        left += e - at;
      }
      const written = await sinkProgress(admin, g.sink, sinkBaseline, null);
      await report({ phase: "mapping", total, mapped, sinkLag: null, written: written.done });
      if (left === 0) break;
      if (Date.now() > deadline) throw new RunFailedError(`replay of ${connectorId} timed out while mapping (${left} records left)`);
      await sleep(poll);
    }
    // 2. the sink past the mapped topics' end offsets
    const targets = new Map<string, Map<number, number>>();
    for (const topic of mappedTopics) targets.set(topic, await endOffsets(admin, topic));
    for (;;) {
      if (total === 0) break;
      const s = await sinkProgress(admin, g.sink, sinkBaseline, targets);
      await report({ phase: "writing", total, mapped: total, sinkLag: s.left, written: s.done });
      if (s.left === 0) break;
      if (Date.now() > deadline) throw new RunFailedError(`replay of ${connectorId} timed out while writing (${s.left} records left)`);
      await sleep(poll);
    }

    const pool = createPool(config.sink.databaseUrl, { max: 1 });
    const rows: ReplayResult["rows"] = {};
    try {
      for (const s of await sinkTableStats(pool, config))
        if (s.connector === connectorId && tables.includes(s.table)) rows[s.table] = { live: s.live, deleted: s.deleted };
    } finally {
      await pool.end().catch(() => {});
    }
    const durationMs = Date.now() - started;
    opts.onProgress?.({ phase: "done", total, mapped: total, sinkLag: 0, written: total });
    const counts: Record<string, number> = { records: total, mapped: total, durationMs };
    for (const [t, r] of Object.entries(rows)) counts[`rows.${t}`] = r.live;
    await emit("RUN_COMPLETED", { counts });
    log.info({ connector: connectorId, runId, counts }, "replay completed");
    return {
      runId,
      connector: connectorId,
      tables,
      since: opts.since !== undefined ? new Date(opts.since).toISOString() : null,
      records: total,
      durationMs,
      ranRoles: roles,
      rows,
      from: [...start].map(([partition, offset]) => ({ partition, offset })),
      to: [...end].map(([partition, offset]) => ({ partition, offset })),
    };
  } catch (e) {
    if (published) {
      await emit("RUN_FAILED", { error: describeError(e), counts: { durationMs: Date.now() - started } }).catch(() => {});
    }
    throw e;
  } finally {
    await handle?.stop().catch((e: unknown) => log.warn({ err: describeError(e) }, "stopping the replay's roles failed"));
    await rt.close();
  }
}

async function sinkProgress(
  admin: Admin,
  group: string,
  baseline: Map<string, Map<number, number>>,
  targets: Map<string, Map<number, number>> | null,
): Promise<{ done: number; left: number }> {
  let done = 0,
    left = 0;
  for (const [topic, base] of baseline) {
    const c = await committedOffsets(admin, group, topic);
    for (const [p, b] of base) done += Math.max(0, (c.get(p) ?? -1) - b);
    if (targets) for (const [p, t] of targets.get(topic) ?? new Map<number, number>()) left += Math.max(0, t - Math.max(c.get(p) ?? -1, 0));
  }
  return { done, left };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Moves a consumer group's committed offsets on one topic, as kafkajs's admin.setOffsets does (a
 * member joins the empty group, seeks, which commits, and leaves) but without its 5 s fetch wait.
 * Refuses when the group has a running member: moving offsets under a running consumer is undone
 * by its next commit.
 */
async function resetGroupOffsets(rt: Runtime, groupId: string, topic: string, offsets: Map<number, number>): Promise<void> {
  const admin = await rt.port.admin();
  const {
    groups: [d],
  } = await admin.describeGroups([groupId]);
  if (d && d.members.length > 0)
    throw new ReplayRefused(
      `a mapper joined group ${groupId} while replay was starting (${d.members.map((m) => m.clientId).join(", ")}); stop it and run replay again`,
    );
  const consumer = rt.port.kafka.consumer({ groupId, maxWaitTimeInMs: 100, sessionTimeout: 10_000 });
  try {
    await consumer.connect();
    await consumer.subscribe({ topic, fromBeginning: true });
    await new Promise<void>((resolve, reject) => {
      consumer.on(consumer.events.FETCH, () => {
        consumer.stop().then(resolve, reject);
      });
      consumer.run({ eachBatchAutoResolve: false, eachBatch: async () => {} }).catch(reject);
      consumer.pause([{ topic }]);
      for (const [partition, offset] of offsets) consumer.seek({ topic, partition, offset: String(offset) });
    });
  } finally {
    await consumer.disconnect().catch(() => {});
  }
  const committed = await committedOffsets(admin, groupId, topic);
  const wrong = [...offsets].filter(([p, o]) => committed.get(p) !== o);
  if (wrong.length > 0)
    throw new RunFailedError(
      `could not move ${groupId}'s offsets on ${topic} (partition ${wrong.map(([p, o]) => `${p}: wanted ${o}, has ${committed.get(p)}`).join(", ")})`,
    );
}
