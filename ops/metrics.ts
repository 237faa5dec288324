/**
 * /metrics in Prometheus format (prom-client), computed at scrape time from the monitor: nothing
 * inside the roles is instrumented. Names and labels are documented in docs/operations.md.
 */
import client from "prom-client";
import { groupTotals } from "./lag.ts";
import type { OpsMonitor } from "./monitor.ts";

/** Sets a counter to an absolute value (Prometheus treats a decrease as a counter reset). */
function setCounter(c: client.Counter<string>, labels: Record<string, string>, value: number): void {
  c.inc(labels, Math.max(0, value));
}

export function createMetrics(monitor: OpsMonitor, opts: { processMetrics?: boolean } = {}): client.Registry {
  const register = new client.Registry();
  if (opts.processMetrics ?? true) client.collectDefaultMetrics({ register, prefix: "qobra_sync_process_" });
  const lagSnap = () => monitor.lag();
  const connectorOfTopic = (topic: string) => {
    for (const c of monitor.config.connectors)
      if (topic === monitor.rt.port.topics.raw(c.id) || topic.startsWith(`${monitor.rt.port.topics.mapped(c.id, "")}`)) return c.id;
    return "";
  };

  new client.Gauge({
    name: "qobra_sync_consumer_lag",
    help: "Records left to process per consumer group, topic and partition (end offset - committed offset).",
    labelNames: ["group", "role", "topic", "partition"],
    registers: [register],
    collect() {
      this.reset();
      for (const p of lagSnap()?.partitions ?? []) this.set({ group: p.group, role: p.role, topic: p.topic, partition: String(p.partition) }, p.lag);
    },
  });
  new client.Gauge({
    name: "qobra_sync_consumer_committed_offset",
    help: "Committed offset per consumer group, topic and partition (-1: none).",
    labelNames: ["group", "role", "topic", "partition"],
    registers: [register],
    collect() {
      this.reset();
      for (const p of lagSnap()?.partitions ?? []) this.set({ group: p.group, role: p.role, topic: p.topic, partition: String(p.partition) }, p.committed);
    },
  });
  new client.Gauge({
    name: "qobra_sync_topic_end_offset",
    help: "End offset (high watermark) per topic and partition.",
    labelNames: ["topic", "partition"],
    registers: [register],
    collect() {
      this.reset();
      const seen = new Set<string>();
      for (const p of lagSnap()?.partitions ?? []) {
        const k = `${p.topic}:${p.partition}`;
        if (!seen.has(k)) {
          seen.add(k);
          this.set({ topic: p.topic, partition: String(p.partition) }, p.end);
        }
      }
    },
  });
  new client.Gauge({
    name: "qobra_sync_consumer_oldest_unprocessed_age_seconds",
    help: "Age of the oldest record a consumer group has not processed yet (lagging partitions only).",
    labelNames: ["group", "role", "topic", "partition"],
    registers: [register],
    collect() {
      this.reset();
      const now = Date.now();
      for (const p of lagSnap()?.partitions ?? [])
        if (p.lag > 0 && p.oldestUnprocessedAt !== null)
          this.set({ group: p.group, role: p.role, topic: p.topic, partition: String(p.partition) }, Math.max(0, (now - p.oldestUnprocessedAt) / 1000));
    },
  });
  new client.Gauge({
    name: "qobra_sync_consumer_group_lag",
    help: "Total lag of a consumer group.",
    labelNames: ["group", "role"],
    registers: [register],
    collect() {
      this.reset();
      const s = lagSnap();
      if (s) for (const [group, t] of groupTotals(s)) this.set({ group, role: t.role }, t.lag);
    },
  });
  new client.Gauge({
    name: "qobra_sync_consumer_group_members",
    help: "Consumers connected in the group.",
    labelNames: ["group", "role"],
    registers: [register],
    collect() {
      this.reset();
      for (const g of lagSnap()?.groups ?? []) this.set({ group: g.group, role: g.role }, g.members);
    },
  });
  new client.Gauge({
    name: "qobra_sync_consumer_group_stalled_seconds",
    help: "How long a group with lag has not moved its committed offsets (0 when it has no lag).",
    labelNames: ["group", "role"],
    registers: [register],
    collect() {
      this.reset();
      for (const g of monitor.health().groups) this.set({ group: g.group, role: g.role }, g.stalledMs / 1000);
    },
  });
  new client.Gauge({
    name: "qobra_sync_healthy",
    help: "1 when every consumer group with work is progressing (see /healthz), else 0.",
    registers: [register],
    collect() {
      this.set(monitor.health().ok ? 1 : 0);
    },
  });

  // Records per stage, from offsets: what the producers wrote to raw.<connector>, what the mapper
  // consumed from it, what the sink consumed from mapped.<connector>.<table>.
  new client.Counter({
    name: "qobra_sync_stage_records_total",
    help: "Records per stage and connector, from offsets: read = written to the raw topic by the producers, mapped = consumed by the mapper, written = consumed by the sink (mapped topics count transaction markers too).",
    labelNames: ["stage", "connector"],
    registers: [register],
    collect() {
      this.reset();
      const sums = new Map<string, number>();
      const add = (k: string, v: number) => sums.set(k, (sums.get(k) ?? 0) + v);
      for (const p of lagSnap()?.partitions ?? []) {
        const connector = p.connector ?? connectorOfTopic(p.topic);
        if (p.role === "mapper") {
          add(`read\u0000${connector}`, p.end);
          add(`mapped\u0000${connector}`, Math.max(0, p.committed));
        }
        if (p.role === "sink") add(`written\u0000${connector}`, Math.max(0, p.committed));
      }
      for (const [k, v] of sums) {
        const [stage, connector] = k.split("\u0000") as [string, string];
        setCounter(this, { stage, connector }, v);
      }
    },
  });
  new client.Counter({
    name: "qobra_sync_records_total",
    help: "Records per connector as the runs report them in sync.events: read and deleted (producers), mapped and dead_lettered (mapper PROGRESS events).",
    labelNames: ["connector", "kind"],
    registers: [register],
    collect() {
      this.reset();
      for (const c of monitor.config.connectors) {
        const t = monitor.book.connectorTotals(c.id);
        setCounter(this, { connector: c.id, kind: "read" }, t.read);
        setCounter(this, { connector: c.id, kind: "deleted" }, t.deleted);
        setCounter(this, { connector: c.id, kind: "mapped" }, t.mapped);
        setCounter(this, { connector: c.id, kind: "dead_lettered" }, t.dlq);
      }
    },
  });
  new client.Counter({
    name: "qobra_sync_unresolved_users_total",
    help: "User values the mapper could not resolve to a Qobra user (kept with a null user id).",
    labelNames: ["connector"],
    registers: [register],
    collect() {
      this.reset();
      for (const c of monitor.config.connectors) setCounter(this, { connector: c.id }, monitor.book.connectorTotals(c.id).unresolvedUsers);
    },
  });
  new client.Counter({
    name: "qobra_sync_dlq_records_total",
    help: "Dead letters per stage, connector and table (counted from the dead-letter topics).",
    labelNames: ["stage", "connector", "table"],
    registers: [register],
    collect() {
      this.reset();
      for (const d of monitor.dlqTotals()) setCounter(this, { stage: d.stage, connector: d.connector, table: d.table }, d.count);
    },
  });
  new client.Counter({
    name: "qobra_sync_runs_total",
    help: "Finished runs per connector and outcome (completed, failed, coalesced).",
    labelNames: ["connector", "outcome"],
    registers: [register],
    collect() {
      this.reset();
      for (const c of monitor.config.connectors) {
        const t = monitor.book.connectorTotals(c.id);
        for (const outcome of ["completed", "failed", "coalesced"] as const) setCounter(this, { connector: c.id, outcome }, t.runs[outcome]);
      }
    },
  });
  const durations = new client.Histogram({
    name: "qobra_sync_run_duration_seconds",
    help: "Duration of finished runs (source read to the run's end), per connector, kind (sync, replay) and outcome.",
    labelNames: ["connector", "kind", "outcome"],
    registers: [register],
    buckets: [1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21_600],
  });
  monitor.book.onFinish = (r) => durations.observe({ connector: r.connector, kind: r.kind, outcome: r.outcome }, r.durationMs / 1000);
  new client.Gauge({
    name: "qobra_sync_runs_running",
    help: "Runs in progress per connector.",
    labelNames: ["connector"],
    registers: [register],
    collect() {
      this.reset();
      for (const c of monitor.config.connectors) this.set({ connector: c.id }, monitor.book.list(c.id).filter((r) => r.status === "running").length);
    },
  });
  new client.Gauge({
    name: "qobra_sync_last_run_duration_seconds",
    help: "Duration of the connector's last finished run.",
    labelNames: ["connector", "outcome"],
    registers: [register],
    collect() {
      this.reset();
      for (const c of monitor.config.connectors) {
        const r = monitor.book.list(c.id).find((x) => (x.status === "completed" || x.status === "failed") && x.durationMs !== null && x.kind === "sync");
        if (r) this.set({ connector: c.id, outcome: r.status }, r.durationMs! / 1000);
      }
    },
  });
  new client.Gauge({
    name: "qobra_sync_last_success_timestamp_seconds",
    help: "Start of the last successful run that read the table (Unix time).",
    labelNames: ["connector", "table"],
    registers: [register],
    collect() {
      this.reset();
      for (const c of monitor.config.connectors)
        for (const t of c.tables) {
          const s = monitor.book.lastSuccess(c.id, t.name);
          if (s) this.set({ connector: c.id, table: t.name }, s.startedAt / 1000);
        }
    },
  });
  new client.Gauge({
    name: "qobra_sync_table_staleness_seconds",
    help: "Time since the start of the last successful run that read the table.",
    labelNames: ["connector", "table"],
    registers: [register],
    collect() {
      this.reset();
      const now = Date.now();
      for (const c of monitor.config.connectors)
        for (const t of c.tables) {
          const s = monitor.book.lastSuccess(c.id, t.name);
          if (s) this.set({ connector: c.id, table: t.name }, (now - s.startedAt) / 1000);
        }
    },
  });
  new client.Gauge({
    name: "qobra_sync_table_last_synced_timestamp_seconds",
    help: "Last write into the sink table (max(_synced_at), Unix time).",
    labelNames: ["connector", "table"],
    registers: [register],
    collect() {
      this.reset();
      for (const s of monitor.tables()) if (s.lastSyncedAt !== null) this.set({ connector: s.connector, table: s.table }, s.lastSyncedAt / 1000);
    },
  });
  new client.Gauge({
    name: "qobra_sync_table_rows",
    help: "Rows of the sink table (state: live or deleted, i.e. soft-deleted).",
    labelNames: ["connector", "table", "state"],
    registers: [register],
    collect() {
      this.reset();
      for (const s of monitor.tables())
        if (s.exists) {
          this.set({ connector: s.connector, table: s.table, state: "live" }, s.live);
          this.set({ connector: s.connector, table: s.table, state: "deleted" }, s.deleted);
        }
    },
  });
  new client.Gauge({
    name: "qobra_sync_api_used",
    help: "Source API calls used in the current budget window, as the connector last reported it (Salesforce: daily API requests; HubSpot: daily calls).",
    labelNames: ["connector"],
    registers: [register],
    collect() {
      this.reset();
      for (const c of monitor.config.connectors) {
        const t = monitor.book.connectorTotals(c.id);
        if (t.apiUsed !== null) this.set({ connector: c.id }, t.apiUsed);
      }
    },
  });
  new client.Gauge({
    name: "qobra_sync_api_limit",
    help: "Source API budget of the window, as the connector last reported it.",
    labelNames: ["connector"],
    registers: [register],
    collect() {
      this.reset();
      for (const c of monitor.config.connectors) {
        const t = monitor.book.connectorTotals(c.id);
        if (t.apiLimit !== null) this.set({ connector: c.id }, t.apiLimit);
      }
    },
  });
  return register;
}
