/**
 * The data of the integration-settings page (GET /api/state and its event stream): per connector
 * its tables with their freshness, its schedule and the schedule's edit form, its last runs; the
 * consumer lag and the health. Built from what the monitor has gathered; no I/O. What the page
 * shows of a source (its edit form, whether Refresh is incremental) comes from the source's plugin,
 * so the page itself names no source.
 */
import type { Config, ConnectorConfig } from "../lib/config.ts";
import { maskDeep } from "../lib/redact.ts";
import type { ScheduleFormField } from "../producers/connector.ts";
import { pluginFor } from "../producers/connectors/registry.ts";
import { appliedOverrides, scheduleView, type ScheduleOverride, type ScheduleView } from "../scheduler/schedules.ts";
import type { Health } from "./health.ts";
import { groupTotals, type LagSnapshot, type PartitionLag } from "./lag.ts";
import { staleness, type ConnectorTotals, type RunBook, type RunView, type TableSuccess } from "./runs.ts";
import { sinkRelationName, type SinkTableStats } from "./sink-stats.ts";

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

export interface ConnectorState {
  id: string;
  type: ConnectorConfig["type"];
  /** The source's name for people (its plugin's title). */
  title: string;
  /** Whether the source reads incrementally; without, the page's Refresh asks for a full sync. */
  incremental: boolean;
  tables: TableState[];
  schedule: ScheduleView;
  /** The controls of the schedule's edit form, as the source's plugin describes them. */
  scheduleForm: readonly ScheduleFormField[];
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

export interface OpsState {
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

/** Dead letters counted per stage (mapper or sink), connector and table. */
export interface DlqTotal {
  stage: string;
  connector: string;
  table: string;
  count: number;
}

/** What the monitor has gathered, for `buildOpsState`. */
export interface OpsStateInput {
  now: number;
  /** Whether the history in sync.events present at start has been read. */
  ready: boolean;
  config: Config;
  /** The config with the page's schedule edits applied. */
  effective: Config;
  overrides: ScheduleOverride[];
  book: RunBook;
  tableStats: SinkTableStats[];
  dlq: DlqTotal[];
  health: Health;
  lag: LagSnapshot | null;
  errors: string[];
}

export function buildOpsState(input: OpsStateInput): OpsState {
  const { now, config, health, dlq } = input;
  const dlqOf = (stage: string, connector?: string, table?: string) =>
    dlq
      .filter((d) => d.stage === stage && (connector === undefined || d.connector === connector) && (table === undefined || d.table === table))
      .reduce((n, d) => n + d.count, 0);
  // A stored edit that no longer validates is ignored by the scheduler: the origin says so, while
  // the page still offers to remove it.
  const applied = new Set(appliedOverrides(config, input.overrides).map((o) => o.connector));
  const connectors = input.effective.connectors.map((c): ConnectorState => {
    const o = input.overrides.find((x) => x.connector === c.id);
    const runs = input.book.list(c.id);
    const plugin = pluginFor(c.type);
    return {
      id: c.id,
      type: c.type,
      title: plugin.title,
      incremental: plugin.incremental,
      schedule: scheduleView(c, { overridden: !!o, edited: applied.has(c.id), updatedAt: o?.updatedAt ?? null, updatedBy: o?.updatedBy ?? null }, now),
      scheduleForm: plugin.scheduleForm,
      tables: c.tables.map((t) => {
        const s = input.tableStats.find((x) => x.connector === c.id && x.table === t.name);
        const success = input.book.lastSuccess(c.id, t.name);
        return {
          name: t.name,
          relation: s?.relation ?? sinkRelationName(config, c, t.name),
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
      totals: input.book.connectorTotals(c.id),
      dlq: { mapper: dlqOf("mapper", c.id), sink: dlqOf("sink", c.id) },
    };
  });
  const snap = input.lag;
  const totals = snap ? groupTotals(snap) : new Map();
  // Run errors and the monitor's errors are texts from elsewhere: masked, as a last line of
  // defence, so that no credential reaches the page (lib/redact.ts).
  return maskDeep({
    generatedAt: now,
    ready: input.ready,
    topicPrefix: config.topicPrefix,
    sinkSchema: config.sink.schema,
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
    errors: input.errors,
  });
}
