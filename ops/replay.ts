/**
 * `qobra-sync replay` (and `POST /api/connectors/<id>/replay`): a full resync of the sink from the
 * compacted raw topic, with no call to the source and without stopping any role. The raw topic
 * holds the latest state of every record the source still has (and the tombstones of recent
 * deletes), so mapping it again from the start and writing the result rebuilds the sink: after a
 * mapping change, or a lost sink table.
 *
 * Procedure (the running mapper, sink, producers and scheduler keep serving every connector):
 *  1. Refuse if a replay of the same connector is running (its group has members); delete the
 *     empty groups crashed replays of the connector left.
 *  2. Take the raw topic's end offsets, publish RUN_STARTED (stage "replay") on sync.events.
 *  3. Map raw.<connector> from the log start (or, with --since, the first record written at or
 *     after that time) up to those end offsets with the mapper's own code (consumers/mapping/run.ts
 *     under a MapperScope), in the replay's own consumer group `<prefix>-replay-<connector>-<8 hex
 *     of the run id>`, through per-partition transactions, into the same mapped topics (only the
 *     requested tables'). Run the sink role in this process too when none is running.
 *  4. Catch up (see below), stop the replay's consumer and delete its group, then wait until the
 *     sink has passed the mapped topics' end offsets taken at that moment; report progress meanwhile.
 *  5. Publish RUN_COMPLETED (stage "replay") with the counts, stop the sink if it ran one.
 *
 * Why the sink stays right: the mapper stamps every mapped record with its raw offset as
 * `_version`, so replayed records carry the versions they had; the sink's guard (`_version <=`)
 * re-applies equal versions and never lets an older one win, whatever the order in which the
 * replay's and the live mapper's records arrive. A record deleted at the source is a DELETE
 * envelope and a tombstone in the raw topic (or nothing once compaction removed both): it is
 * written again as a soft delete, or not at all; it never comes back to life.
 *
 * Why the mapped topics stay right: they are compacted, and a key's last record is its value. The
 * live mapper maps in raw order, so a record it maps after the replay's one of the same key is at
 * least as new. The other way round, the replay could write an older version of a key after the
 * live mapper wrote a newer one (raw offset at or past the end offsets): so, once its window is
 * mapped, the replay maps what the raw topic received meanwhile (catch-up round 1: every record
 * from the end offsets to the new ones), then, round after round, the records of the keys the
 * previous round wrote, received during it; it stops when a round wrote no key or the raw topic
 * received nothing. A live write newer than the replay's last write of a key is then always
 * followed by a replay write at least as new. Under a key updated without pause this may not end:
 * after `maxRounds` the replay stops and says so (the sink is right regardless; the key's value in
 * the compacted topic is right again at its next change).
 *
 * Transactional ids: `<prefix>-replay-<connector>.<raw topic>.<partition>`, one base per connector
 * and not per run, and never the mapper's, so the replay never fences the running mapper, while a
 * re-run of a crashed replay fences the crashed run's open transactions at once (they would
 * otherwise hold every read_committed reader of the connector's mapped topics, the live sink
 * included, until kafka.transactionTimeoutMs). That is why two replays of one connector never run
 * at once (step 1).
 */
import { randomUUID } from "node:crypto";
import type { Admin, Producer } from "kafkajs";
import { startMapper, type MapperScope } from "../consumers/mapping/run.ts";
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

/** The role replay may run itself: the sink, when none is running (the mapping is always its own). */
type ReplayRole = "sink";

/** Starts roles in this process until stopped (app/roles.ts `runRoles`). */
export type StartRoles = (config: Config, roles: readonly ReplayRole[]) => Promise<{ stop(): Promise<void> }>;

export interface ReplayOptions {
  tables?: string[];
  /** Epoch ms: replay only the raw records written at or after this time. */
  since?: number;
  timeoutMs?: number;
  onProgress?: (p: ReplayProgress) => void;
  pollMs?: number;
  by?: string;
  /** The run's id (default: a new one). */
  runId?: string;
  /** Called once RUN_STARTED is published: the HTTP API answers then, while the replay goes on. */
  onStarted?: (runId: string) => void;
  /** Catch-up rounds at most (see the top of this file); default 20. */
  maxRounds?: number;
  /** Ends the replay early (the server stops): it fails, its group is deleted. */
  signal?: AbortSignal;
}

export interface ReplayResult {
  runId: string;
  connector: string;
  tables: string[];
  since: string | null;
  records: number;
  durationMs: number;
  /** Roles this command ran itself: the sink when none was running. */
  ranRoles: ReplayRole[];
  /** The replay's consumer group (deleted when it ended). */
  group: string;
  /** Raw records received during the replay and read again by its catch-up rounds. */
  caughtUp: number;
  /** Whether the catch-up ended before maxRounds (see the top of this file). */
  converged: boolean;
  rows: Record<string, { live: number; deleted: number }>;
  from: Array<{ partition: number; offset: number }>;
  to: Array<{ partition: number; offset: number }>;
}

/** Replay cannot run now (another replay of the connector is running): the run fails and says why. */
export class ReplayRefused extends RunFailedError {}

/** The replays of this process, by prefix and connector: another process's are seen by their groups' members. */
const running = new Set<string>();

/**
 * Replays a connector (see the top of this file). `startRoles` runs the sink in this process when
 * none is running; null: this process cannot, and the replay is refused then.
 */
export async function replayFromRaw(startRoles: StartRoles | null, config: Config, connectorId: string, opts: ReplayOptions = {}): Promise<ReplayResult> {
  const connector = findConnector(config, connectorId);
  const tables = opts.tables && opts.tables.length > 0 ? [...new Set(opts.tables)] : connector.tables.map((t) => t.name);
  for (const t of tables) {
    if (!connector.tables.some((x) => x.name === t))
      throw new ConfigError(`connector ${connectorId} has no table ${t}; tables: ${connector.tables.map((x) => x.name).join(", ")}`);
  }
  // Between a replay's start and its consumer's join, its group has no member yet: within one
  // process (the settings server) this set closes that window.
  const slot = `${config.topicPrefix}\u0000${connectorId}`;
  if (running.has(slot)) throw new ReplayRefused(`a replay of ${connectorId} is already running in this process; wait for it to end`);
  running.add(slot);
  try {
    return await replayOnce(startRoles, config, connectorId, tables, opts);
  } finally {
    running.delete(slot);
  }
}

async function replayOnce(startRoles: StartRoles | null, config: Config, connectorId: string, tables: string[], opts: ReplayOptions): Promise<ReplayResult> {
  const rt = await openRuntime(config, "replay");
  const g = groups(config.topicPrefix);
  const rawTopic = rt.port.topics.raw(connectorId);
  const started = Date.now();
  const runId = opts.runId ?? randomUUID();
  const groupId = g.replay(connectorId, runId);
  let published = false;
  let mapperStop: (() => Promise<void>) | undefined;
  let sinkHandle: { stop(): Promise<void> } | undefined;
  let producer: Producer;
  let admin: Admin;
  try {
    producer = await rt.port.producer({ idempotent: true, maxInFlightRequests: 1 });
    admin = await rt.port.admin();
  } catch (e) {
    await rt.close();
    throw e;
  }
  const base = { runId, connector: connectorId, stage: "replay", full: true };
  /** Publishes one of this replay's lifecycle events to sync.events. */
  const emit = (type: SyncEvent["type"], fields: Partial<SyncEvent>) =>
    publishEvent(producer, rt.codec, rt.port.topics.syncEvents, newEvent({ ...base, type, ...fields }));
  try {
    await claimReplay(admin, g.replayTransactions(connectorId), connectorId);
    const { groups: described } = await admin.describeGroups([g.sink]);
    // A running sink also creates a sink table dropped under it again (consumers/sink/apply.ts).
    const sinkRunning = (described.find((d) => d.groupId === g.sink)?.members.length ?? 0) > 0;

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
    if (total > 0 && !sinkRunning && !startRoles)
      throw new ReplayRefused(
        `no sink is running (group ${g.sink} has no member) and this process runs none: start \`qobra-sync run\` with the sink role first`,
      );
    const mappedTopics = tables.map((t) => rt.port.topics.mapped(connectorId, t));
    const sinkBaseline = new Map<string, Map<number, number>>();
    for (const topic of mappedTopics) sinkBaseline.set(topic, await endOffsets(admin, topic));

    await emit("RUN_STARTED", {
      counts: { records: total, tables: tables.length, ...(opts.since !== undefined ? { since: opts.since } : {}) },
      ...(opts.tables && opts.tables.length > 0 ? { tables } : {}),
    });
    published = true;
    log.info({ connector: connectorId, runId, group: groupId, total, since: opts.since, tables }, "replay started");
    opts.onStarted?.(runId);

    // Nothing written to the raw topic in the window: nothing to map, no role to run.
    const roles: ReplayRole[] = total === 0 || sinkRunning ? [] : ["sink"];
    if (roles.length > 0) sinkHandle = await startRoles!({ ...config, http: undefined }, roles);
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

    // 1. the replay's own mapping, up to the end offsets, then its catch-up rounds
    let caughtUp = 0;
    let converged = true;
    if (total > 0) {
      if (opts.since !== undefined) await resetGroupOffsets(rt, groupId, rawTopic, start);
      const until = new Map(end);
      const position = new Map(start);
      let filter: Set<string> | null = null;
      let written: Set<string> | null = null;
      const scope: MapperScope = {
        groupId,
        transactionalIdBase: g.replayTransactions(connectorId),
        connectors: [connectorId],
        tables: opts.tables && opts.tables.length > 0 ? tables : undefined,
        until: new Map([[rawTopic, until]]),
        accept: (key) => filter === null || (key !== null && filter.has(key.toString("base64"))),
        onPosition: (_topic, partition, next, keys) => {
          position.set(partition, Math.max(position.get(partition) ?? 0, next));
          if (written) for (const k of keys) written.add(k.toString("base64"));
        },
      };
      const mapper = await startMapper(config, rt.port, rt.codec, rt.registry, scope);
      mapperStop = () => mapper.stop();
      let crash: Error | undefined;
      void mapper.crashed.then((e) => (crash = e));
      const mappedSoFar = () => [...end].reduce((n, [p, e]) => n + Math.max(0, Math.min(e, position.get(p) ?? 0) - (start.get(p) ?? 0)), 0);
      /** Waits until every partition reached its end, reporting progress. */
      const reachEnd = async (what: string) => {
        for (;;) {
          if (crash) throw new RunFailedError(`replay of ${connectorId} failed while mapping: ${describeError(crash)}`, crash);
          if (opts.signal?.aborted) throw new RunFailedError(`replay of ${connectorId} stopped: ${describeError(opts.signal.reason)}`);
          const left = [...until].reduce((n, [p, e]) => n + Math.max(0, e - (position.get(p) ?? 0)), 0);
          const sink = await sinkProgress(admin, g.sink, sinkBaseline, null);
          await report({ phase: "mapping", total, mapped: mappedSoFar(), sinkLag: null, written: sink.done });
          if (left === 0) return;
          if (Date.now() > deadline) throw new RunFailedError(`replay of ${connectorId} timed out while ${what} (${left} records left)`);
          await sleep(poll);
        }
      };
      await reachEnd("mapping");
      const maxRounds = opts.maxRounds ?? 20;
      for (let round = 1; ; round++) {
        const now = await endOffsets(admin, rawTopic);
        const received = [...now].reduce((n, [p, e]) => n + Math.max(0, e - (until.get(p) ?? 0)), 0);
        if (received === 0 || (round > 1 && written!.size === 0)) break;
        if (round > maxRounds) {
          converged = false;
          log.warn(
            { connector: connectorId, runId, rounds: maxRounds, keys: written?.size ?? "all" },
            "replay stopped catching up after its last round: these keys kept changing; the sink is right, their value in the compacted mapped topics is right again at their next change",
          );
          break;
        }
        // Round 1 reads everything received during the window; later rounds only the keys the previous round wrote.
        filter = round === 1 ? null : written;
        written = new Set();
        for (const [p, e] of now) until.set(p, Math.max(e, until.get(p) ?? 0));
        caughtUp += received;
        log.debug({ connector: connectorId, runId, round, received, keys: filter?.size ?? "all" }, "replay catching up");
        mapper.resume();
        await reachEnd("catching up");
      }
      await mapper.stop();
      mapperStop = undefined;
      await deleteGroup(admin, groupId);
    }
    // 2. the sink past the mapped topics' end offsets
    const targets = new Map<string, Map<number, number>>();
    for (const topic of mappedTopics) targets.set(topic, await endOffsets(admin, topic));
    for (;;) {
      if (total === 0) break;
      const s = await sinkProgress(admin, g.sink, sinkBaseline, targets);
      await report({ phase: "writing", total, mapped: total, sinkLag: s.left, written: s.done });
      if (s.left === 0) break;
      if (opts.signal?.aborted) throw new RunFailedError(`replay of ${connectorId} stopped: ${describeError(opts.signal.reason)}`);
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
    const counts: Record<string, number> = { records: total, mapped: total, caughtUp, durationMs };
    for (const [t, r] of Object.entries(rows)) counts[`rows.${t}`] = r.live;
    await emit("RUN_COMPLETED", { counts });
    log.info({ connector: connectorId, runId, counts, converged }, "replay completed");
    return {
      runId,
      connector: connectorId,
      tables,
      since: opts.since !== undefined ? new Date(opts.since).toISOString() : null,
      records: total,
      durationMs,
      ranRoles: roles,
      group: groupId,
      caughtUp,
      converged,
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
    if (mapperStop) {
      await mapperStop().catch((e: unknown) => log.warn({ err: describeError(e) }, "stopping the replay's mapping failed"));
      await deleteGroup(admin, groupId);
    }
    await sinkHandle?.stop().catch((e: unknown) => log.warn({ err: describeError(e) }, "stopping the replay's sink failed"));
    await producer.disconnect().catch(() => {});
    await rt.close();
  }
}

/**
 * Starts a replay in the background (the HTTP API): `started` resolves with its run id once
 * RUN_STARTED is published, or rejects if the replay fails before (refused, a wrong table);
 * `done` settles when it ends (its outcome is on sync.events too).
 */
export function startReplay(
  startRoles: StartRoles | null,
  config: Config,
  connectorId: string,
  opts: ReplayOptions = {},
): { started: Promise<string>; done: Promise<ReplayResult> } {
  let resolveStarted!: (runId: string) => void;
  const started = new Promise<string>((resolve) => (resolveStarted = resolve));
  const done = replayFromRaw(startRoles, config, connectorId, {
    ...opts,
    onStarted: (runId) => {
      opts.onStarted?.(runId);
      resolveStarted(runId);
    },
  });
  return { started: Promise.race([started, done.then((r) => r.runId)]), done };
}

/**
 * Refuses when a replay of the connector is running (a group `<base>-<8 hex>` with members), and
 * deletes the empty ones crashed replays left (they would show in lag reports for ever).
 */
async function claimReplay(admin: Admin, base: string, connectorId: string): Promise<void> {
  const ours = new RegExp(`^${base.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}-[0-9a-f]{8}$`);
  const { groups: listed } = await admin.listGroups();
  const ids = listed.map((l) => l.groupId).filter((id) => ours.test(id));
  if (ids.length === 0) return;
  const { groups: described } = await admin.describeGroups(ids);
  const running = described.filter((d) => d.members.length > 0);
  if (running.length > 0)
    throw new ReplayRefused(
      `a replay of ${connectorId} is already running (consumer group ${running.map((d) => d.groupId).join(", ")}); wait for it to end (its run is on the page and in sync.events)`,
    );
  for (const d of described) await deleteGroup(admin, d.groupId);
}

/** Deletes the replay's group once its member left (the broker may take a moment to see it gone). */
async function deleteGroup(admin: Admin, groupId: string): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    try {
      await admin.deleteGroups([groupId]);
      return;
    } catch (e) {
      const notEmpty = /NON_EMPTY_GROUP|not empty/i.test(describeError(e));
      if (/GROUP_ID_NOT_FOUND|does not exist/i.test(describeError(e))) return;
      if (!notEmpty || attempt >= 20) {
        log.warn({ group: groupId, err: describeError(e) }, "could not delete the replay's consumer group; it holds no member and can be deleted by hand");
        return;
      }
      await sleep(500);
    }
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
    throw new ReplayRefused(`a consumer joined group ${groupId} while replay was starting (${d.members.map((m) => m.clientId).join(", ")}); run replay again`);
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
