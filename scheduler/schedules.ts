/**
 * Schedules as the integration-settings page shows and edits them: the count of daily refreshes
 * and their hours (local to the schedule's zone), per connector. Each source's schedule schema,
 * cron rules and sentence come from its plugin (producers/connectors/<source>/schedule.ts). Edits are kept in the sink
 * database (`<sink.schema>._qobra_sync_settings`, one row per connector), validated with the
 * same zod schemas as the config file, so every process (the page's, the scheduler's) sees the
 * same effective schedule. `effectiveConfig` merges them into a Config; `watchScheduleOverrides`
 * calls back when they change (for the scheduler role to re-arm its jobs).
 */
import type pg from "pg";
import type { Config, ConnectorConfig } from "../lib/config.ts";
import { ConfigError } from "../lib/errors.ts";
import { logger } from "../lib/log.ts";
import { createPool, ident } from "../lib/pg.ts";
import type { ScheduleTime } from "../producers/connector.ts";
import { pluginFor } from "../producers/connectors/registry.ts";
import { cronRules } from "./scheduler.ts";

const log = logger.child({ component: "ops-schedules" });

const SETTINGS_TABLE = "_qobra_sync_settings";

export interface ScheduleView {
  type: ConnectorConfig["type"];
  enabled: boolean;
  timezone: string;
  /** Syncs a day (full and incremental). */
  perDay: number;
  fullPerDay: number;
  /** Local times of the day (HH:MM, in `timezone`), sorted. */
  times: ScheduleTime[];
  summary: string;
  /** The editable fields and their current values (the schedule object of the connector's config). */
  settings: Record<string, unknown>;
  /** True when the page's edit (stored in the sink database) overrides the config file. */
  overridden: boolean;
  updatedAt: string | null;
  updatedBy: string | null;
}

/** Minutes of the day at which a `m h * * *` cron rule fires (lists, ranges, steps, *). */
export function expandCron(rule: string): number[] {
  const parts = rule.trim().split(/\s+/);
  if (parts.length !== 5 || parts.slice(2).some((p) => p !== "*")) throw new Error(`unsupported cron rule ${rule}: only "minute hour * * *" rules`);
  const minutes = expandField(parts[0]!, 0, 59);
  const hours = expandField(parts[1]!, 0, 23);
  const out: number[] = [];
  for (const h of hours) for (const m of minutes) out.push(h * 60 + m);
  return out.sort((a, b) => a - b);
}

function expandField(field: string, min: number, max: number): number[] {
  const out = new Set<number>();
  for (const piece of field.split(",")) {
    const [range, stepText] = piece.split("/") as [string, string | undefined];
    const step = stepText === undefined ? 1 : Number(stepText);
    let lo: number, hi: number;
    if (range === "*") {
      lo = min;
      hi = max;
    } else if (range.includes("-")) {
      [lo, hi] = range.split("-").map(Number) as [number, number];
    } else {
      lo = Number(range);
      hi = stepText === undefined ? lo : max;
    }
    if (![lo, hi, step].every(Number.isInteger) || lo < min || hi > max || step < 1) throw new Error(`bad cron field ${field}`);
    for (let v = lo; v <= hi; v += step) out.add(v);
  }
  return [...out];
}

const hhmm = (m: number) => `${String(Math.floor(m / 60)).padStart(2, "0")}:${String(m % 60).padStart(2, "0")}`;

/** What a connector's schedule does, for people. */
export function scheduleView(
  connector: ConnectorConfig,
  meta: { overridden?: boolean; updatedAt?: string | null; updatedBy?: string | null } = {},
): ScheduleView {
  const s = (connector.schedule ?? null) as Record<string, unknown> | null;
  const rules = cronRules(connector);
  const byMinute = new Map<number, boolean>();
  for (const r of rules) for (const m of expandCron(r.rule)) byMinute.set(m, (byMinute.get(m) ?? false) || r.full);
  const times = [...byMinute].sort((a, b) => a[0] - b[0]).map(([m, full]) => ({ at: hhmm(m), full }));
  const enabled = rules.length > 0;
  const timezone = (s?.timezone as string | undefined) ?? "UTC";
  const fullPerDay = times.filter((t) => t.full).length;
  const plugin = pluginFor(connector.type);
  let summary: string;
  if (!connector.schedule) summary = "no schedule: manual syncs only";
  else if (!enabled) summary = "schedule disabled: manual syncs only";
  else summary = plugin.describeSchedule(connector.schedule, { times, timezone });
  return {
    type: connector.type,
    enabled,
    timezone,
    perDay: times.length,
    fullPerDay,
    times,
    summary,
    settings: s ? { ...s } : { ...plugin.defaultSchedule },
    overridden: meta.overridden ?? false,
    updatedAt: meta.updatedAt ?? null,
    updatedBy: meta.updatedBy ?? null,
  };
}

/**
 * Validates a schedule edit for a connector with the config file's own rules (its source's
 * schedule schema). A source may first reconcile the edit (PostgreSQL: the page sends the hours and
 * the plugin derives their count; when a client sends both, they must agree).
 */
export function validateSchedule(connector: ConnectorConfig, input: unknown): Record<string, unknown> {
  if (input === null || typeof input !== "object" || Array.isArray(input)) throw new ConfigError("the schedule must be a JSON object");
  const plugin = pluginFor(connector.type);
  const body = plugin.prepareScheduleEdit ? plugin.prepareScheduleEdit({ ...(input as Record<string, unknown>) }) : { ...(input as Record<string, unknown>) };
  const r = plugin.scheduleSchema.safeParse(body);
  if (!r.success) {
    const problems = r.error.issues.map((i) => `${i.path.length > 0 ? `schedule.${i.path.join(".")}` : "schedule"}: ${i.message}`);
    const hint = plugin.scheduleHint ? ` ${plugin.scheduleHint}` : "";
    throw new ConfigError(`${problems.join("; ")}${hint}`);
  }
  return r.data as Record<string, unknown>;
}

export interface ScheduleOverride {
  connector: string;
  schedule: Record<string, unknown>;
  updatedAt: string;
  updatedBy: string;
}

/** The config with the stored schedule edits applied (edits that no longer validate are ignored, with a warning). */
export function effectiveConfig<C extends ConnectorConfig>(config: Config<C>, overrides: ScheduleOverride[]): Config<C> {
  const byId = new Map(overrides.map((o) => [o.connector, o]));
  return {
    ...config,
    connectors: config.connectors.map((c) => {
      const o = byId.get(c.id);
      if (!o) return c;
      try {
        return { ...c, schedule: validateSchedule(c, o.schedule) } as C;
      } catch (e) {
        log.warn({ connector: c.id, err: (e as Error).message }, "stored schedule edit ignored: it no longer validates");
        return c;
      }
    }),
  };
}

/** The schedule edits, in the sink database. */
export class ScheduleStore {
  private readonly pool: pg.Pool;
  private readonly owned: boolean;
  private readonly schema: string;
  private ready: Promise<void> | undefined;

  constructor(config: Config, pool?: pg.Pool) {
    this.schema = config.sink.schema;
    this.owned = !pool;
    this.pool = pool ?? createPool(config.sink.databaseUrl, { max: 2 });
  }

  private get table(): string {
    return `${ident(this.schema)}.${ident(SETTINGS_TABLE)}`;
  }

  private ensure(): Promise<void> {
    this.ready ??= (async () => {
      const c = await this.pool.connect();
      try {
        await c.query("BEGIN");
        await c.query("SELECT pg_advisory_xact_lock(hashtext('qobra-sync:sink-schema'))");
        await c.query(`CREATE SCHEMA IF NOT EXISTS ${ident(this.schema)}`);
        await c.query(`CREATE TABLE IF NOT EXISTS ${this.table} (
          key text PRIMARY KEY, value jsonb NOT NULL, updated_at timestamptz NOT NULL DEFAULT now(), updated_by text NOT NULL DEFAULT 'unknown')`);
        await c.query("COMMIT");
      } catch (e) {
        await c.query("ROLLBACK").catch(() => {});
        throw e;
      } finally {
        c.release();
      }
    })();
    this.ready.catch(() => {
      this.ready = undefined;
    });
    return this.ready;
  }

  async list(): Promise<ScheduleOverride[]> {
    await this.ensure();
    const r = await this.pool.query<{ key: string; value: Record<string, unknown>; updated_at: Date; updated_by: string }>(
      `SELECT key, value, updated_at, updated_by FROM ${this.table} WHERE key LIKE 'schedule:%' ORDER BY key`,
    );
    return r.rows.map((row) => ({
      connector: row.key.slice("schedule:".length),
      schedule: row.value,
      updatedAt: row.updated_at.toISOString(),
      updatedBy: row.updated_by,
    }));
  }

  async save(connector: string, schedule: Record<string, unknown>, by: string): Promise<void> {
    await this.ensure();
    await this.pool.query(
      `INSERT INTO ${this.table} (key, value, updated_at, updated_by) VALUES ($1, $2, now(), $3)
       ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value, updated_at = now(), updated_by = EXCLUDED.updated_by`,
      [`schedule:${connector}`, JSON.stringify(schedule), by],
    );
  }

  async remove(connector: string): Promise<void> {
    await this.ensure();
    await this.pool.query(`DELETE FROM ${this.table} WHERE key = $1`, [`schedule:${connector}`]);
  }

  async close(): Promise<void> {
    if (this.owned) await this.pool.end().catch(() => {});
  }
}

/**
 * For the scheduler role: polls the stored edits and calls `onChange` with the effective config
 * whenever they differ from what was last applied. The caller arms the config file's schedules
 * first (so an unreachable database never leaves a connector unscheduled); `onChange` is called
 * at once when edits are already stored. Returns a stop function.
 */
export function watchScheduleOverrides<C extends ConnectorConfig>(
  config: Config<C>,
  onChange: (effective: Config<C>) => void,
  opts: { intervalMs?: number; store?: ScheduleStore } = {},
): () => Promise<void> {
  const store = opts.store ?? new ScheduleStore(config);
  let last = "[]";
  let stopped = false;
  const tick = async () => {
    try {
      const overrides = await store.list();
      const key = JSON.stringify(overrides.map((o) => [o.connector, o.schedule]));
      if (key !== last && !stopped) {
        last = key;
        onChange(effectiveConfig(config, overrides));
      }
    } catch (e) {
      log.warn({ err: (e as Error).message }, "could not read the schedule edits; keeping the current schedules");
    }
  };
  void tick();
  const timer = setInterval(() => {
    void tick();
  }, opts.intervalMs ?? 30_000);
  timer.unref();
  return async () => {
    stopped = true;
    clearInterval(timer);
    if (!opts.store) await store.close();
  };
}
