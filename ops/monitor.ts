/**
 * The operations view of a pipeline, derived from Kafka and PostgreSQL only: sync.events (runs,
 * their counts and errors, the mapper's counts), the dead-letter topics, the consumer groups'
 * committed offsets against the end offsets (lag, progress, health), and the sink tables
 * (rows, freshness). One monitor serves /metrics, /healthz and the web page's API. The phases of a
 * run after the producer are followed in run-phases.ts; the page's data is built in page-state.ts.
 */
import type { KafkaMessage } from "kafkajs";
import type pg from "pg";
import type { Config } from "../lib/config.ts";
import { describeError } from "../lib/errors.ts";
import { followTopics, type Follower } from "../lib/follow-topic.ts";
import { logger } from "../lib/log.ts";
import { createPool } from "../lib/pg.ts";
import type { Runtime } from "../lib/runtime.ts";
import type { DeadLetter, SyncEvent } from "../schemas/index.ts";
import { ScheduleStore, effectiveConfig, type ScheduleOverride } from "../scheduler/schedules.ts";
import { StallTracker, type Health } from "./health.ts";
import { OldestRecordProbe, pipelineGroups, snapshotLag, type GroupSpec, type LagSnapshot } from "./lag.ts";
import { buildOpsState, type DlqTotal, type OpsState, type StateScope } from "./page-state.ts";
import { RunPhaseTracker } from "./run-phases.ts";
import { RunBook } from "./runs.ts";
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
  private readonly phases: RunPhaseTracker;
  private readonly errors = new Map<string, string>();
  private ready = false;
  private sampling: Promise<void> | undefined;
  private dbSampling: Promise<void> | undefined;
  private probing: Promise<void> | undefined;
  private dbAgain = false;
  private lastProbeAt = 0;
  /** How long the last timed lag sample took (ms). */
  private lastSampleMs = 0;
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
    this.phases = new RunPhaseTracker({
      specs: this.specs,
      mappedTopic: (connector, table) => rt.port.topics.mapped(connector, table),
      tablesOf: (connector) => config.connectors.find((c) => c.id === connector)?.tables.map((t) => t.name) ?? [],
    });
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
    this.scheduleSample();
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
    for (const timer of this.timers) clearTimeout(timer);
    this.timers = [];
    await this.sampling?.catch(() => {});
    await this.dbSampling?.catch(() => {});
    await this.probing?.catch(() => {});
    await this.follower?.stop();
    await this.pool.end().catch(() => {});
  }

  /**
   * The next lag sample: `sampleMs` after this one, or ten times as long as this one took when
   * that is longer. A sample asks the broker for every topic's offsets (two requests a topic with
   * kafkajs): at 1,000 connectors, sampling every 2 s cost the settings server 18 of the 150
   * CPU-seconds of bench:tenants's burst, and the broker its share. So sampling takes at most a
   * tenth of the time, whatever the pipeline's size and the machine's load.
   */
  private scheduleSample(): void {
    if (this.stopped) return;
    const timer = setTimeout(
      () => {
        const t0 = Date.now();
        void this.sample().finally(() => {
          this.timers = this.timers.filter((x) => x !== timer);
          this.lastSampleMs = Date.now() - t0;
          this.scheduleSample();
        });
      },
      Math.max(this.opts.sampleMs, 10 * this.lastSampleMs),
    );
    timer.unref();
    this.timers.push(timer);
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
      // Listed again at each sample: connectors come and go at run time (the connectors API).
      const snap = await snapshotLag(await this.rt.port.admin(), pipelineGroups(this.config));
      if (this.opts.ageProbe && this.probe.applyCached(snap.partitions)) this.startProbe(snap);
      this.lagSnapshot = snap;
      this.tracker.observe(snap, this.producerActivityAt);
      this.errors.delete("kafka");
      if (this.phases.advance(snap, this.book.list())) void this.sampleDb();
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

  health(now = Date.now()): Health {
    return this.tracker.evaluate(this.lagSnapshot, now);
  }

  lag(): LagSnapshot | null {
    return this.lagSnapshot;
  }

  dlqTotals(): DlqTotal[] {
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

  /** The page's data (GET /api/state): the whole pipeline, or a tenant caller's part of it (page-state.ts). */
  state(now = Date.now(), scope: StateScope = "*"): OpsState {
    return buildOpsState(
      {
        now,
        ready: this.ready,
        config: this.config,
        effective: this.effectiveConfig(),
        overrides: this.overrides,
        book: this.book,
        tableStats: this.tableStats,
        dlq: this.dlqTotals(),
        health: this.health(now),
        lag: this.lagSnapshot,
        errors: [...this.errors.values()],
      },
      scope,
    );
  }
}
