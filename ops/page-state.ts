/**
 * The data of the integration-settings page (GET /api/state and its event stream): per connector
 * its tables with their freshness, its schedule and the schedule's edit form, its last runs; the
 * consumer lag and the health. Built from what the monitor has gathered; no I/O. What the page
 * shows of a source (its edit form, whether Refresh is incremental) comes from the source's plugin,
 * so the page itself names no source.
 */
import type { Config, ConnectorConfig } from "../lib/config.ts";
import { splitPipelineId } from "../lib/tenants.ts";
import { maskDeep } from "../lib/redact.ts";
import type { ScheduleFormField } from "../producers/connector.ts";
import { pluginFor } from "../producers/connectors/registry.ts";
import { appliedOverrides, scheduleView, type ScheduleOverride, type ScheduleView } from "../scheduler/schedules.ts";
import { spreadMinutesOf } from "../scheduler/spread.ts";
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
  /** The connector's tenant (null: a connector of the YAML file without one, an operator's). */
  tenant: string | null;
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

/** Whose view: `"*"` (an operator: everything) or the tenants a caller reaches (ops/http-auth.ts Principal.tenants). */
export type StateScope = "*" | readonly string[];

/** Whether a scope reaches a connector of the given tenant (null: a YAML connector without one: operators only). */
export const scopeReaches = (scope: StateScope, tenant: string | null | undefined): boolean => scope === "*" || (tenant != null && scope.includes(tenant));

/** Whether a scope reaches a run or dead letter of this pipeline id (a removed connector's runs stay its tenant's). */
export const scopeReachesId = (scope: StateScope, config: Config, connectorId: string): boolean => {
  if (scope === "*") return true;
  const c = config.connectors.find((x) => x.id === connectorId);
  return scopeReaches(scope, c ? c.tenant : splitPipelineId(connectorId).tenant);
};

/** The one line a tenant gets for the monitor's own errors: their texts may name any connector's tables or topics. */
export const TENANT_MONITOR_ERROR = "part of the pipeline's status cannot be read just now (the operators' view names the cause)";

/**
 * The page's data for a scope. An operator's (`"*"`) is the whole pipeline. A tenant's is the same
 * shape filtered to the connectors of its tenants, decided field by field:
 *
 *  - generatedAt, ready, topicPrefix, sinkSchema: kept (they name no connector and no tenant);
 *  - connectors (tables, schedules, runs, totals, dead letters): only the scope's connectors;
 *  - lag.partitions: only those of the scope's connectors' topics; the shared topics (sync.requests,
 *    read by the producer group, carrying every tenant's requests) are left out;
 *  - lag.groups: the three groups stay (the stages the tenant's data goes through: name, role,
 *    Kafka state, member count), with lag, lagging, partitions and oldestUnprocessedAt counted over
 *    the tenant's partitions only, `clients` emptied (the consumers' client ids are broker
 *    internals), and `healthy`/`stalledMs` those of the group only where the stall holds the
 *    tenant's work: the tenant has lag in it, or it is the producer group (its shared request
 *    topic holds every tenant's requests);
 *  - health: the same per group (`lag` the tenant's; `reason` rewritten without the pipeline-wide
 *    count); `problems` are the sampler's own (Kafka unreadable, no or old sample), without the
 *    error text that may follow (a Kafka error may name any topic), and those rewritten reasons; `ok` follows them;
 *  - dlq: the totals of the scope's connectors (dead letters that could not be decoded, hence of
 *    no known connector, left out);
 *  - errors: the monitor's error texts may name another tenant's tables or topics: one generic
 *    line (TENANT_MONITOR_ERROR) when there is any.
 */
export function buildOpsState(input: OpsStateInput, scope: StateScope = "*"): OpsState {
  const { now, config, dlq } = input;
  const dlqOf = (stage: string, connector?: string, table?: string) =>
    dlq
      .filter(
        (d) =>
          d.stage === stage &&
          (connector === undefined ? scope === "*" || (d.connector !== "" && scopeReachesId(scope, config, d.connector)) : d.connector === connector) &&
          (table === undefined || d.table === table),
      )
      .reduce((n, d) => n + d.count, 0);
  // A stored edit that no longer validates is ignored by the scheduler: the origin says so, while
  // the page still offers to remove it.
  const applied = new Set(appliedOverrides(config, input.overrides).map((o) => o.connector));
  const connectors = input.effective.connectors
    .filter((c) => scopeReaches(scope, c.tenant))
    .map((c): ConnectorState => {
      const o = input.overrides.find((x) => x.connector === c.id);
      const runs = input.book.list(c.id);
      const plugin = pluginFor(c.type);
      return {
        id: c.id,
        tenant: c.tenant ?? null,
        type: c.type,
        title: plugin.title,
        incremental: plugin.incremental,
        schedule: scheduleView(
          c,
          {
            overridden: !!o,
            edited: applied.has(c.id),
            updatedAt: o?.updatedAt ?? null,
            updatedBy: o?.updatedBy ?? null,
            spreadMinutes: spreadMinutesOf(config),
          },
          now,
        ),
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
  const ids = new Set(connectors.map((c) => c.id));
  const snap =
    input.lag && scope !== "*" ? { ...input.lag, partitions: input.lag.partitions.filter((p) => p.connector !== null && ids.has(p.connector)) } : input.lag;
  const totals = snap ? groupTotals(snap) : new Map();
  const health = scope === "*" ? input.health : tenantHealth(input.health, totals);
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
          clients: scope === "*" ? g.clients : [],
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
    errors: scope === "*" || input.errors.length === 0 ? input.errors : [TENANT_MONITOR_ERROR],
  });
}

/** A tenant's health (see buildOpsState): `totals` are the groups' totals over the tenant's partitions. */
function tenantHealth(health: Health, totals: ReturnType<typeof groupTotals>): Health {
  const groupReasons = new Set(health.groups.map((g) => g.reason).filter((r) => r !== null));
  // The sampler's problems, without the error text after the colon (a Kafka error may name any topic).
  const problems = health.problems.filter((p) => !groupReasons.has(p)).map((p) => p.split(": ")[0]!);
  const groups = health.groups.map((g) => {
    const lag = totals.get(g.group)?.lag ?? 0;
    const holdsTenant = g.role === "producer" || lag > 0;
    const stalled = !g.ok && holdsTenant;
    const reason = stalled
      ? `${g.group} (${g.role}) has not progressed for ${Math.round(g.stalledMs / 1000)} s` +
        (g.role === "producer" ? ": sync requests (yours among them) wait" : `; ${lag} record(s) of your connectors wait`)
      : null;
    if (reason) problems.push(reason);
    return { ...g, ok: !stalled, lag, stalledMs: stalled ? g.stalledMs : 0, reason };
  });
  return { ok: problems.length === 0, at: health.at, groups, problems };
}
