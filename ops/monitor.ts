/**
 * The operations view of a pipeline, derived from Kafka and PostgreSQL only: sync.events (runs,
 * their counts and errors, the mapper's counts), the dead-letter topics, the consumer groups'
 * committed offsets against the end offsets (lag, progress, health), and the sink tables
 * (rows, freshness). One monitor serves /metrics, /healthz and the web page's API.
 */
import type { KafkaMessage } from "kafkajs";
import type pg from "pg";
import type { Config, ConnectorConfig } from "../lib/config.ts";
import { describeError } from "../lib/errors.ts";
import { followTopics, type Follower } from "../lib/follow-topic.ts";
import { logger } from "../lib/log.ts";
import { createPool } from "../lib/pg.ts";
import type { Runtime } from "../lib/runtime.ts";
import type { DeadLetter, SyncEvent } from "../schemas/index.ts";
import { StallTracker, type Health } from "./health.ts";
import { groupTotals, OldestRecordProbe, pipelineGroups, snapshotLag, type GroupSpec, type LagSnapshot, type PartitionLag } from "./lag.ts";
import { RunBook, staleness, type ConnectorTotals, type RunView, type TableSuccess } from "./runs.ts";
import { ScheduleStore, effectiveConfig, scheduleView, type ScheduleOverride, type ScheduleView } from "../scheduler/schedules.ts";
import { sinkTableStats, type SinkTableStats } from "./sink-stats.ts";

const log = logger.child({ component: "ops-monitor" });

export interface MonitorOptions {
  /** Lag sampling interval (default 2 s). */
  sampleMs?: number;
  /** Sink table statistics interval (default 10 s; also right after a run lands in the sink). */
  dbSampleMs?: number;
  /** /healthz: a group with lag whose offsets have not moved for this long is unhealthy (default 60 s). */
  stallMs?: number;
  /** The same for the producer group, whose commits wait for the end of a run (default 15 min). */
  producerStallMs?: number;
  /** Fetch the timestamp of the oldest unprocessed record of lagging partitions (default true). */
  ageProbe?: boolean;
  /** At most one such probe every this long (default 10 s); the timestamps are cached by offset. */
  ageProbeMs?: number;
}

interface TableState {
  name: string;
  relation: string;
  exists: boolean;
  live: number | null;
  deleted: number | null;
  lastSyncedAt: number | null;
  lastSuccess: TableSuccess | null;
  stalenessMs: number | null;
  dlq: number;
}

interface ConnectorState {
  id: string;
  type: ConnectorConfig["type"];
  tables: TableState[];
  schedule: ScheduleView;
  runs: RunView[];
  active: RunView | null;
  totals: ConnectorTotals;
  dlq: { mapper: number; sink: number };
}

interface GroupLagState {
  group: string;
  role: string;
  state: string;
  members: number;
  clients: string[];
  lag: number;
  lagging: number;
  partitions: number;
  oldestUnprocessedAt: number | null;
  healthy: boolean;
  stalledMs: number;
}

interface OpsState {
  generatedAt: number;
  ready: boolean;
  topicPrefix: string;
  sinkSchema: string;
  health: Health;
  connectors: ConnectorState[];
  lag: { at: number | null; groups: GroupLagState[]; partitions: PartitionLag[] };
  dlq: { mapper: number; sink: number };
  errors: string[];
}

interface SinkTarget {
  targets: Map<string, number>;
  kind: "mapper" | "sink";
}

export class OpsMonitor {
  readonly config: Config;
  readonly rt: Runtime;
  readonly book = new RunBook();
  readonly pool: pg.Pool;
  readonly schedules: ScheduleStore;
  private readonly opts: Required<MonitorOptions>;
  private readonly specs: GroupSpec[];
  private readonly tracker: StallTracker;
  private readonly probe: OldestRecordProbe;
  private follower: Follower | undefined;
  private timers: NodeJS.Timeout[] = [];
  private lagSnapshot: LagSnapshot | null = null;
  private tableStats: SinkTableStats[] = [];
  private overrides: ScheduleOverride[] = [];
  private readonly dlqCounts = new Map<string, number>(); // stage \0 connector \0 table
  private producerActivityAt: number | null = null;
  private readonly runTargets = new Map<string, SinkTarget>();
  private readonly errors = new Map<string, string>();
  private ready = false;
  private sampling: Promise<void> | undefined;
  private dbSampling: Promise<void> | undefined;
  private probing: Promise<void> | undefined;
  private dbAgain = false;
  private lastProbeAt = 0;
  private stopped = false;
  /** Listeners told after each lag sample (the server's SSE stream). */
  readonly listeners = new Set<() => void>();

  constructor(config: Config, rt: Runtime, opts: MonitorOptions = {}) {
    this.config = config;
    this.rt = rt;
    this.opts = {
      sampleMs: opts.sampleMs ?? 2000,
      dbSampleMs: opts.dbSampleMs ?? 10_000,
      stallMs: opts.stallMs ?? 60_000,
      producerStallMs: opts.producerStallMs ?? 15 * 60_000,
      ageProbe: opts.ageProbe ?? true,
      ageProbeMs: opts.ageProbeMs ?? 10_000,
    };
    this.specs = pipelineGroups(config);
    this.tracker = new StallTracker({ stallMs: this.opts.stallMs, producerStallMs: this.opts.producerStallMs });
    this.probe = new OldestRecordProbe(rt.port, config.topicPrefix);
    this.pool = createPool(config.sink.databaseUrl, { max: 2, statement_timeout: 15_000 } as pg.PoolConfig);
    this.schedules = new ScheduleStore(config, this.pool);
  }

  async start(): Promise<void> {
    const t = this.rt.port.topics;
    // The operations view is rebuilt from Kafka at every start: the topics from their beginning,
    // in a throwaway group; a message it cannot read is skipped (and logged), never fatal.
    this.follower = await followTopics(this.rt.port, {
      topics: [t.syncEvents, t.dlqMapper, t.dlqSink],
      groupPrefix: `${this.config.topicPrefix}-ops`,
      from: "beginning",
      upToEnd: "mark",
      consumer: { sessionTimeout: 30_000, maxWaitTimeInMs: 500 },
      onBatch: async ({ topic, partition, messages }) => {
        for (const m of messages) {
          try {
            await this.read(topic, m);
          } catch (e) {
            log.warn({ topic, partition, offset: m.offset, err: (e as Error).message }, "message skipped by the operations view");
          }
        }
      },
    });
    void this.follower.caughtUp.then(() => {
      this.ready = true;
      log.info("operations view caught up with sync.events");
    });
    await Promise.all([this.sample(), this.sampleDb()]);
    this.timers.push(
      setInterval(() => {
        void this.sample();
      }, this.opts.sampleMs),
    );
    this.timers.push(
      setInterval(() => {
        void this.sampleDb();
      }, this.opts.dbSampleMs),
    );
    for (const timer of this.timers) timer.unref();
  }

  /** One message of sync.events or a dead-letter topic, into the run book and the counts. */
  private async read(topic: string, m: KafkaMessage): Promise<void> {
    const t = this.rt.port.topics;
    if (!m.value) return;
    if (topic === t.syncEvents) {
      const e = await this.rt.codec.decode<SyncEvent>(m.value);
      this.book.apply(e);
      if (e.stage === "producer" && e.type !== "RUN_COMPLETED" && e.type !== "RUN_FAILED")
        this.producerActivityAt = Math.max(this.producerActivityAt ?? 0, e.at);
      return;
    }
    const stage = topic === t.dlqMapper ? "mapper" : "sink";
    let connector = "",
      table = "";
    try {
      const l = await this.rt.codec.decode<DeadLetter>(m.value);
      connector = l.connector ?? "";
      table = l.table ?? "";
    } catch {
      /* counted without its coordinates */
    }
    const key = `${stage}\u0000${connector}\u0000${table}`;
    this.dlqCounts.set(key, (this.dlqCounts.get(key) ?? 0) + 1);
  }

  /** Resolves once the history in sync.events present at start has been read. */
  async whenReady(timeoutMs = 30_000): Promise<boolean> {
    if (!this.follower) return false;
    return Promise.race([this.follower.caughtUp.then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), timeoutMs).unref())]);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    for (const timer of this.timers) clearInterval(timer);
    this.timers = [];
    await this.sampling?.catch(() => {});
    await this.dbSampling?.catch(() => {});
    await this.probing?.catch(() => {});
    await this.follower?.stop();
    await this.pool.end().catch(() => {});
  }

  /** Takes a lag sample now (coalesced with one in flight). */
  sample(): Promise<void> {
    this.sampling ??= this.doSample().finally(() => {
      this.sampling = undefined;
    });
    return this.sampling;
  }

  /** Reads the sink tables now; a request during a read in flight runs once more after it (fresh data). */
  sampleDb(): Promise<void> {
    if (this.dbSampling) {
      this.dbAgain = true;
      return this.dbSampling;
    }
    this.dbSampling = this.doSampleDb().finally(() => {
      this.dbSampling = undefined;
      if (this.dbAgain) {
        this.dbAgain = false;
        void this.sampleDb();
      }
    });
    return this.dbSampling;
  }

  private async doSample(): Promise<void> {
    if (this.stopped) return;
    try {
      const snap = await snapshotLag(await this.rt.port.admin(), this.specs);
      if (this.opts.ageProbe && this.probe.applyCached(snap.partitions)) this.startProbe(snap);
      this.lagSnapshot = snap;
      this.tracker.observe(snap, this.producerActivityAt);
      this.errors.delete("kafka");
      if (this.trackRuns(snap)) void this.sampleDb();
    } catch (e) {
      const message = describeError(e);
      this.tracker.observeError(message);
      this.errors.set("kafka", `lag sample failed: ${message}`);
      log.warn({ err: message }, "lag sample failed");
    }
    for (const l of this.listeners) l();
  }

  /**
   * The oldest unprocessed records' timestamps, fetched in the background (a probe consumer joins
   * a throw-away group), at most every ageProbeMs; the results are cached by offset.
   */
  private startProbe(snap: LagSnapshot): void {
    if (this.probing || Date.now() - this.lastProbeAt < this.opts.ageProbeMs) return;
    this.lastProbeAt = Date.now();
    this.probing = this.probe
      .fill(
        snap.partitions.map((p) => ({ ...p })),
        5000,
      )
      .then(() => {
        if (this.lagSnapshot) this.probe.applyCached(this.lagSnapshot.partitions);
      })
      .catch(() => {})
      .finally(() => {
        this.probing = undefined;
      });
  }

  private async doSampleDb(): Promise<void> {
    if (this.stopped) return;
    try {
      this.tableStats = await sinkTableStats(this.pool, this.config);
      this.errors.delete("sink");
    } catch (e) {
      this.errors.set("sink", `sink statistics failed: ${describeError(e)}`);
    }
    try {
      this.overrides = await this.schedules.list();
      this.errors.delete("settings");
    } catch (e) {
      this.errors.set("settings", `schedule edits unreadable: ${describeError(e)}`);
    }
  }

  /**
   * Moves completed runs through mapping → writing → done from the groups' committed offsets, as
   * `sync --wait` does: the mapper past the run's raw end offsets, then the sink past the mapped
   * topics' end offsets taken when the mapper got there. Returns true when a run reached the sink.
   */
  private trackRuns(snap: LagSnapshot): boolean {
    const committed = new Map<string, number>();
    const ends = new Map<string, number>();
    for (const p of snap.partitions) {
      committed.set(`${p.group}\u0000${p.topic}\u0000${p.partition}`, p.committed);
      ends.set(`${p.topic}\u0000${p.partition}`, p.end);
    }
    const g = this.specs;
    const mapperGroup = g.find((s) => s.role === "mapper")!.group;
    const sinkSpec = g.find((s) => s.role === "sink")!;
    let landed = false;
    for (const run of this.book.list()) {
      if (run.kind !== "sync" || run.status !== "completed" || (run.phase !== "mapping" && run.phase !== "writing")) continue;
      if (Date.now() - (run.endedAt ?? 0) > 86_400_000) {
        run.phase = "unknown";
        continue;
      }
      let target = this.runTargets.get(run.runId);
      if (!target) {
        target = { kind: "mapper", targets: new Map(run.offsets.map((o) => [`${o.topic}\u0000${o.partition}`, o.offset])) };
        this.runTargets.set(run.runId, target);
      }
      const group = target.kind === "mapper" ? mapperGroup : sinkSpec.group;
      let remaining = 0;
      for (const [tp, end] of target.targets) remaining += Math.max(0, end - Math.max(0, committed.get(`${group}\u0000${tp}`) ?? 0));
      run.remaining = remaining;
      if (remaining > 0) {
        run.phase = target.kind === "mapper" ? "mapping" : "writing";
        continue;
      }
      if (target.kind === "mapper") {
        const tables =
          Object.keys(run.tables).length > 0
            ? Object.keys(run.tables)
            : (this.config.connectors.find((c) => c.id === run.connector)?.tables.map((t) => t.name) ?? []);
        const topics = new Set(tables.map((t) => this.rt.port.topics.mapped(run.connector, t)));
        const sinkTargets = new Map<string, number>();
        for (const [tp, end] of ends) if (topics.has(tp.split("\u0000")[0]!)) sinkTargets.set(tp, end);
        this.runTargets.set(run.runId, { kind: "sink", targets: sinkTargets });
        run.phase = "writing";
        // Evaluated again at the next sample, against the sink's offsets.
        continue;
      }
      run.phase = "done";
      run.remaining = 0;
      this.runTargets.delete(run.runId);
      landed = true;
    }
    return landed;
  }

  health(now = Date.now()): Health {
    return this.tracker.evaluate(this.lagSnapshot, now);
  }

  lag(): LagSnapshot | null {
    return this.lagSnapshot;
  }

  dlqTotals(): Array<{ stage: string; connector: string; table: string; count: number }> {
    return [...this.dlqCounts].map(([k, count]) => {
      const [stage, connector, table] = k.split("\u0000") as [string, string, string];
      return { stage, connector, table, count };
    });
  }

  tables(): SinkTableStats[] {
    return this.tableStats;
  }

  /** The config with the page's schedule edits applied. */
  effectiveConfig(): Config {
    return effectiveConfig(this.config, this.overrides);
  }

  async reloadOverrides(): Promise<void> {
    this.overrides = await this.schedules.list();
  }

  state(now = Date.now()): OpsState {
    const health = this.health(now);
    const eff = this.effectiveConfig();
    const dlq = this.dlqTotals();
    const dlqOf = (stage: string, connector?: string, table?: string) =>
      dlq
        .filter((d) => d.stage === stage && (connector === undefined || d.connector === connector) && (table === undefined || d.table === table))
        .reduce((n, d) => n + d.count, 0);
    const connectors: ConnectorState[] = eff.connectors.map((c) => {
      const o = this.overrides.find((x) => x.connector === c.id);
      const runs = this.book.list(c.id);
      return {
        id: c.id,
        type: c.type,
        schedule: scheduleView(c, { overridden: !!o, updatedAt: o?.updatedAt ?? null, updatedBy: o?.updatedBy ?? null }),
        tables: c.tables.map((t) => {
          const s = this.tableStats.find((x) => x.connector === c.id && x.table === t.name);
          const success = this.book.lastSuccess(c.id, t.name);
          return {
            name: t.name,
            relation: s?.relation ?? `${this.config.sink.schema}.${c.id}__${t.name}`,
            exists: s?.exists ?? false,
            live: s ? s.live : null,
            deleted: s ? s.deleted : null,
            lastSyncedAt: s?.lastSyncedAt ?? null,
            lastSuccess: success,
            stalenessMs: staleness(success, now),
            dlq: dlqOf("mapper", c.id, t.name) + dlqOf("sink", c.id, t.name),
          };
        }),
        runs: runs.slice(0, 10),
        active: runs.find((r) => r.status === "running" || (r.status === "completed" && (r.phase === "mapping" || r.phase === "writing"))) ?? null,
        totals: this.book.connectorTotals(c.id),
        dlq: { mapper: dlqOf("mapper", c.id), sink: dlqOf("sink", c.id) },
      };
    });
    const snap = this.lagSnapshot;
    const totals = snap ? groupTotals(snap) : new Map();
    return {
      generatedAt: now,
      ready: this.ready,
      topicPrefix: this.config.topicPrefix,
      sinkSchema: this.config.sink.schema,
      health,
      connectors,
      lag: {
        at: snap?.at ?? null,
        groups: (snap?.groups ?? []).map((g) => {
          const t = totals.get(g.group);
          const h = health.groups.find((x) => x.group === g.group);
          return {
            ...g,
            lag: t?.lag ?? 0,
            lagging: t?.lagging ?? 0,
            partitions: t?.partitions ?? 0,
            oldestUnprocessedAt: t?.oldestUnprocessedAt ?? null,
            healthy: h?.ok ?? true,
            stalledMs: h?.stalledMs ?? 0,
          };
        }),
        partitions: snap?.partitions ?? [],
      },
      dlq: { mapper: dlqOf("mapper"), sink: dlqOf("sink") },
      errors: [...this.errors.values()],
    };
  }
}
