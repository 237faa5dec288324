/**
 * /metrics in Prometheus format (prom-client), computed at scrape time from the monitor: nothing
 * inside the roles is instrumented. Names and labels are documented in docs/operations.md.
 */
import client from "prom-client";
import { splitPipelineId } from "../lib/tenants.ts";
import { groupTotals, type PartitionLag } from "./lag.ts";
import type { OpsMonitor } from "./monitor.ts";
import type { ConnectorTotals } from "./runs.ts";

/** Sets a counter to an absolute value (Prometheus treats a decrease as a counter reset). */
function setCounter(c: client.Counter<string>, labels: Labels, value: number): void {
  c.inc(labels, Math.max(0, value));
}

type Labels = Record<string, string>;

/**
 * The labels of a connector: `connector` (its pipeline id) and, for a tenant's connector, `tenant`.
 * A connector without a tenant has no `tenant` label, which Prometheus reads as tenant="" (an empty
 * label is no label), so its series stay exactly as they were.
 */
function connectorLabels(connector: string): Labels {
  const tenant = splitPipelineId(connector).tenant;
  return tenant === undefined ? { connector } : { connector, tenant };
}

/**
 * A metric computed at scrape time: its name, help text and label names, and the samples (labels,
 * value) it reports now. Every scrape starts from an empty metric and sets these samples; a counter
 * is set to the absolute value.
 */
interface ScrapedMetric {
  type: "gauge" | "counter";
  name: string;
  help: string;
  labelNames?: string[];
  samples: () => Iterable<[Labels, number]>;
}

/** Registers one entry of the metric table: a scraped metric, or a metric fed elsewhere (the run duration histogram). */
function declare(register: client.Registry, m: ScrapedMetric | client.Histogram<string>): void {
  if (m instanceof client.Histogram) {
    register.registerMetric(m);
    return;
  }
  const declaration = { name: m.name, help: m.help, labelNames: m.labelNames ?? [], registers: [register] };
  if (m.type === "gauge")
    new client.Gauge({
      ...declaration,
      collect() {
        this.reset();
        for (const [labels, value] of m.samples()) this.set(labels, value);
      },
    });
  else
    new client.Counter({
      ...declaration,
      collect() {
        this.reset();
        for (const [labels, value] of m.samples()) setCounter(this, labels, value);
      },
    });
}

export function createMetrics(monitor: OpsMonitor, opts: { processMetrics?: boolean } = {}): client.Registry {
  const register = new client.Registry();
  if (opts.processMetrics ?? true) client.collectDefaultMetrics({ register, prefix: "qobra_sync_process_" });
  const partitions = () => monitor.lag()?.partitions ?? [];
  const partitionLabels = (p: PartitionLag): Labels => ({ group: p.group, role: p.role, topic: p.topic, partition: String(p.partition) });
  const connectors = () => monitor.config.connectors;
  const connectorOfTopic = (topic: string) => {
    for (const c of connectors()) if (topic === monitor.rt.port.topics.raw(c.id) || topic.startsWith(`${monitor.rt.port.topics.mapped(c.id, "")}`)) return c.id;
    return "";
  };

  // Fed as runs finish, not at scrape time.
  const durations = new client.Histogram({
    name: "qobra_sync_run_duration_seconds",
    help: "Duration of finished runs (source read to the run's end), per connector, kind (sync, replay) and outcome.",
    labelNames: ["connector", "tenant", "kind", "outcome"],
    registers: [],
    buckets: [1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200, 21_600],
  });
  monitor.book.onFinish = (r) => durations.observe({ ...connectorLabels(r.connector), kind: r.kind, outcome: r.outcome }, r.durationMs / 1000);

  // The metric table, in the order of /metrics.
  const metrics: Array<ScrapedMetric | client.Histogram<string>> = [
    {
      type: "gauge",
      name: "qobra_sync_consumer_lag",
      help: "Records left to process per consumer group, topic and partition (end offset - committed offset).",
      labelNames: ["group", "role", "topic", "partition"],
      *samples() {
        for (const p of partitions()) yield [partitionLabels(p), p.lag];
      },
    },
    {
      type: "gauge",
      name: "qobra_sync_consumer_committed_offset",
      help: "Committed offset per consumer group, topic and partition (-1: none).",
      labelNames: ["group", "role", "topic", "partition"],
      *samples() {
        for (const p of partitions()) yield [partitionLabels(p), p.committed];
      },
    },
    {
      type: "gauge",
      name: "qobra_sync_topic_end_offset",
      help: "End offset (high watermark) per topic and partition.",
      labelNames: ["topic", "partition"],
      *samples() {
        const seen = new Set<string>();
        for (const p of partitions()) {
          const k = `${p.topic}:${p.partition}`;
          if (!seen.has(k)) {
            seen.add(k);
            yield [{ topic: p.topic, partition: String(p.partition) }, p.end];
          }
        }
      },
    },
    {
      type: "gauge",
      name: "qobra_sync_consumer_oldest_unprocessed_age_seconds",
      help: "Age of the oldest record a consumer group has not processed yet (lagging partitions only).",
      labelNames: ["group", "role", "topic", "partition"],
      *samples() {
        const now = Date.now();
        for (const p of partitions())
          if (p.lag > 0 && p.oldestUnprocessedAt !== null) yield [partitionLabels(p), Math.max(0, (now - p.oldestUnprocessedAt) / 1000)];
      },
    },
    {
      type: "gauge",
      name: "qobra_sync_consumer_group_lag",
      help: "Total lag of a consumer group.",
      labelNames: ["group", "role"],
      *samples() {
        const s = monitor.lag();
        if (s) for (const [group, t] of groupTotals(s)) yield [{ group, role: t.role }, t.lag];
      },
    },
    {
      type: "gauge",
      name: "qobra_sync_consumer_group_members",
      help: "Consumers connected in the group.",
      labelNames: ["group", "role"],
      *samples() {
        for (const g of monitor.lag()?.groups ?? []) yield [{ group: g.group, role: g.role }, g.members];
      },
    },
    {
      type: "gauge",
      name: "qobra_sync_consumer_group_stalled_seconds",
      help: "How long a group with lag has not moved its committed offsets (0 when it has no lag).",
      labelNames: ["group", "role"],
      *samples() {
        for (const g of monitor.health().groups) yield [{ group: g.group, role: g.role }, g.stalledMs / 1000];
      },
    },
    {
      type: "gauge",
      name: "qobra_sync_healthy",
      help: "1 when every consumer group with work is progressing (see /healthz), else 0.",
      *samples() {
        yield [{}, monitor.health().ok ? 1 : 0];
      },
    },
    // Records per stage, from offsets: what the producers wrote to raw.<connector>, what the mapper
    // consumed from it, what the sink consumed from mapped.<connector>.<table>.
    {
      type: "counter",
      name: "qobra_sync_stage_records_total",
      help: "Records per stage and connector, from offsets: read = written to the raw topic by the producers, mapped = consumed by the mapper, written = consumed by the sink (mapped topics count transaction markers too).",
      labelNames: ["stage", "connector", "tenant"],
      *samples() {
        const sums = new Map<string, number>();
        const add = (k: string, v: number) => sums.set(k, (sums.get(k) ?? 0) + v);
        for (const p of partitions()) {
          const connector = p.connector ?? connectorOfTopic(p.topic);
          if (p.role === "mapper") {
            add(`read\u0000${connector}`, p.end);
            add(`mapped\u0000${connector}`, Math.max(0, p.committed));
          }
          if (p.role === "sink") add(`written\u0000${connector}`, Math.max(0, p.committed));
        }
        for (const [k, v] of sums) {
          const [stage, connector] = k.split("\u0000") as [string, string];
          yield [{ stage, ...connectorLabels(connector) }, v];
        }
      },
    },
    {
      type: "counter",
      name: "qobra_sync_records_total",
      help: "Records per connector as the runs report them in sync.events: read and deleted (producers), mapped and dead_lettered (mapper PROGRESS events).",
      labelNames: ["connector", "tenant", "kind"],
      samples: () =>
        fromTotals((connector, t) => [
          [{ ...connectorLabels(connector), kind: "read" }, t.read],
          [{ ...connectorLabels(connector), kind: "deleted" }, t.deleted],
          [{ ...connectorLabels(connector), kind: "mapped" }, t.mapped],
          [{ ...connectorLabels(connector), kind: "dead_lettered" }, t.dlq],
        ]),
    },
    {
      type: "counter",
      name: "qobra_sync_unresolved_users_total",
      help: "User values the mapper could not resolve to a Qobra user (kept with a null user id).",
      labelNames: ["connector", "tenant"],
      samples: () => fromTotals((connector, t) => [[connectorLabels(connector), t.unresolvedUsers]]),
    },
    {
      type: "counter",
      name: "qobra_sync_dlq_records_total",
      help: "Dead letters per stage, connector and table (counted from the dead-letter topics).",
      labelNames: ["stage", "connector", "tenant", "table"],
      *samples() {
        for (const d of monitor.dlqTotals()) yield [{ stage: d.stage, ...connectorLabels(d.connector), table: d.table }, d.count];
      },
    },
    {
      type: "counter",
      name: "qobra_sync_runs_total",
      help: "Finished runs per connector and outcome (completed, failed, coalesced).",
      labelNames: ["connector", "tenant", "outcome"],
      samples: () =>
        fromTotals((connector, t) =>
          (["completed", "failed", "coalesced"] as const).map((outcome) => [{ ...connectorLabels(connector), outcome }, t.runs[outcome]]),
        ),
    },
    durations,
    {
      type: "gauge",
      name: "qobra_sync_runs_running",
      help: "Runs in progress per connector.",
      labelNames: ["connector", "tenant"],
      *samples() {
        for (const c of connectors()) yield [connectorLabels(c.id), monitor.book.list(c.id).filter((r) => r.status === "running").length];
      },
    },
    {
      type: "gauge",
      name: "qobra_sync_last_run_duration_seconds",
      help: "Duration of the connector's last finished run.",
      labelNames: ["connector", "tenant", "outcome"],
      *samples() {
        for (const c of connectors()) {
          const r = monitor.book.list(c.id).find((x) => (x.status === "completed" || x.status === "failed") && x.durationMs !== null && x.kind === "sync");
          if (r) yield [{ ...connectorLabels(c.id), outcome: r.status }, r.durationMs! / 1000];
        }
      },
    },
    {
      type: "gauge",
      name: "qobra_sync_last_success_timestamp_seconds",
      help: "Start of the last successful run that read the table (Unix time).",
      labelNames: ["connector", "tenant", "table"],
      *samples() {
        for (const [labels, s] of lastSuccesses()) yield [labels, s.startedAt / 1000];
      },
    },
    {
      type: "gauge",
      name: "qobra_sync_table_staleness_seconds",
      help: "Time since the start of the last successful run that read the table.",
      labelNames: ["connector", "tenant", "table"],
      *samples() {
        const now = Date.now();
        for (const [labels, s] of lastSuccesses()) yield [labels, (now - s.startedAt) / 1000];
      },
    },
    {
      type: "gauge",
      name: "qobra_sync_table_last_synced_timestamp_seconds",
      help: "Last write into the sink table (max(_synced_at), Unix time).",
      labelNames: ["connector", "tenant", "table"],
      *samples() {
        for (const s of monitor.tables()) if (s.lastSyncedAt !== null) yield [{ ...connectorLabels(s.connector), table: s.table }, s.lastSyncedAt / 1000];
      },
    },
    {
      type: "gauge",
      name: "qobra_sync_table_rows",
      help: "Rows of the sink table (state: live or deleted, i.e. soft-deleted).",
      labelNames: ["connector", "tenant", "table", "state"],
      *samples() {
        for (const s of monitor.tables())
          if (s.exists) {
            yield [{ ...connectorLabels(s.connector), table: s.table, state: "live" }, s.live];
            yield [{ ...connectorLabels(s.connector), table: s.table, state: "deleted" }, s.deleted];
          }
      },
    },
    {
      type: "gauge",
      name: "qobra_sync_api_used",
      help: "Source API calls used in the current budget window, as the connector last reported it (Salesforce: daily API requests; HubSpot: daily calls).",
      labelNames: ["connector", "tenant"],
      samples: () => fromTotals((connector, t) => (t.apiUsed === null ? [] : [[connectorLabels(connector), t.apiUsed]])),
    },
    {
      type: "gauge",
      name: "qobra_sync_api_limit",
      help: "Source API budget of the window, as the connector last reported it.",
      labelNames: ["connector", "tenant"],
      samples: () => fromTotals((connector, t) => (t.apiLimit === null ? [] : [[connectorLabels(connector), t.apiLimit]])),
    },
  ];

  /** Every table of every connector that had a successful run, with its last success. */
  function* lastSuccesses(): Iterable<[Labels, { startedAt: number }]> {
    for (const c of connectors())
      for (const t of c.tables) {
        const s = monitor.book.lastSuccess(c.id, t.name);
        if (s) yield [{ ...connectorLabels(c.id), table: t.name }, s];
      }
  }
  /** Samples drawn from each connector's totals, as the runs report them in sync.events. */
  function* fromTotals(f: (connector: string, t: ConnectorTotals) => Array<[Labels, number]>): Iterable<[Labels, number]> {
    for (const c of connectors()) yield* f(c.id, monitor.book.connectorTotals(c.id));
  }

  for (const m of metrics) declare(register, m);
  return register;
}
