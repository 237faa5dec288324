/**
 * Schedules as the integration-settings page and `qobra-sync schedule` show them: per connector
 * where its schedule comes from (its source's default, the config file, or a page edit), the times
 * of day it fires at (local to the schedule's zone), and each job's kind with its fire times over
 * the next 24 hours. Each source's schedule schema, default, cron rules and sentence come from its
 * plugin (producers/connectors/<source>/schedule.ts). Edits are kept in the sink database
 * (`<sink.schema>._qobra_sync_settings`, one row per connector), validated with the same zod
 * schemas as the config file, so every process (the page's, the scheduler's, the CLI's) sees the
 * same effective schedule. `effectiveConfig` merges them into a Config; `watchScheduleOverrides`
 * calls back when they change (for the scheduler role to re-arm its jobs). Times and fire times
 * are the effective ones: each rule's fire times shifted by the connector's spread offset
 * (`scheduler.spreadMinutes`, scheduler/spread.ts), as the scheduler publishes them.
 */
import type pg from "pg";
import type { Config, ConnectorConfig } from "../lib/config.ts";
import { ConfigError } from "../lib/errors.ts";
import { logger } from "../lib/log.ts";
import { createPool, ident } from "../lib/pg.ts";
import type { ScheduleJobKind, ScheduleTime } from "../producers/connector.ts";
import { pluginFor } from "../producers/connectors/registry.ts";
import { fireTimes, isoInZone, parseCronRule } from "./fire-times.ts";
import { armedRules, connectorSchedule, type ScheduleOrigin } from "./scheduler.ts";
import { describeOffset, spreadMinutesOf } from "./spread.ts";

const log = logger.child({ component: "ops-schedules" });

const SETTINGS_TABLE = "_qobra_sync_settings";

/** One kind of job of a schedule, and every time it fires in the next 24 hours (ISO 8601, the schedule's offset). */
export interface ScheduleJobView {
  kind: ScheduleJobKind;
  next: string[];
}

export interface ScheduleView {
  type: ConnectorConfig["type"];
  /** Where the schedule comes from: the source's default (no schedule block), the config file, a page edit. */
  origin: ScheduleOrigin;
  enabled: boolean;
  timezone: string;
  /** Syncs a day (full and incremental). */
  perDay: number;
  fullPerDay: number;
  /**
   * Local times of the day (HH:MM, in `timezone`) the runs are requested at (the set times plus the
   * connector's spread offset), sorted; a time two jobs share shows the first kind of full, reconcile, incremental.
   */
  times: ScheduleTime[];
  /** The jobs the scheduler arms, one per kind, with their fire times in the next 24 hours. */
  jobs: ScheduleJobView[];
  summary: string;
  /** The editable fields and their current values (the connector's schedule, or its source's default). */
  settings: Record<string, unknown>;
  /** True when the page's edit (stored in the sink database) overrides the config file. */
  overridden: boolean;
  updatedAt: string | null;
  updatedBy: string | null;
}

/** Minutes of the day at which a `m h * * *` cron rule fires (lists, ranges, steps, *). */
export function expandCron(rule: string): number[] {
  const { minutes, hours } = parseCronRule(rule);
  const out: number[] = [];
  for (const h of hours) for (const m of minutes) out.push(h * 60 + m);
  return out.sort((a, b) => a - b);
}

/** When two jobs fire at the same minute, the time shows the weightier kind. */
const KIND_WEIGHT: Record<ScheduleJobKind, number> = { full: 3, reconcile: 2, incremental: 1 };

/**
 * Each kind of job of a connector's rules, with the instants its requests are published at in
 * (now, now + 24 h] (fire times plus the spread offset of `spreadMinutes`), in order of first rule.
 */
export function scheduleJobs(connector: ConnectorConfig, now: number = Date.now(), spreadMinutes = 0): ScheduleJobView[] {
  const byKind = new Map<ScheduleJobKind, Set<number>>();
  const zones = new Map<ScheduleJobKind, string>();
  for (const r of armedRules(connector, spreadMinutes)) {
    const set = byKind.get(r.kind) ?? new Set<number>();
    byKind.set(r.kind, set);
    zones.set(r.kind, r.tz);
    const offsetMs = r.offsetSeconds * 1000;
    for (const t of fireTimes(r.rule, r.tz, now - offsetMs)) set.add(t + offsetMs);
  }
  return [...byKind].map(([kind, set]) => ({ kind, next: [...set].sort((a, b) => a - b).map((t) => isoInZone(t, zones.get(kind)!)) }));
}

const hhmm = (m: number) => `${String(Math.floor(m / 60)).padStart(2, "0")}:${String(m % 60).padStart(2, "0")}`;

/** The sentence's note on the spread: how long after their set times the runs start ("" without spread). */
function spreadNote(rules: Array<{ kind: ScheduleJobKind; offsetSeconds: number }>): string {
  const byKind = new Map<ScheduleJobKind, number>();
  for (const r of rules) if (!byKind.has(r.kind)) byKind.set(r.kind, r.offsetSeconds);
  const offsets = [...new Set(byKind.values())];
  if (offsets.every((o) => o === 0)) return "";
  const text =
    offsets.length === 1
      ? `each run starts ${describeOffset(offsets[0]!)} after its set time`
      : `runs start after their set time (${[...byKind].map(([kind, o]) => `${kind} ${describeOffset(o)}`).join(", ")})`;
  return `; spread: ${text} (scheduler.spreadMinutes)`;
}

/**
 * What a connector's schedule does, for people. `meta.spreadMinutes` is the config's
 * `scheduler.spreadMinutes` (0 when not given: the set times exactly).
 */
export function scheduleView(
  connector: ConnectorConfig,
  meta: { overridden?: boolean; edited?: boolean; updatedAt?: string | null; updatedBy?: string | null; spreadMinutes?: number } = {},
  now: number = Date.now(),
): ScheduleView {
  const { schedule, origin } = connectorSchedule(connector);
  const spreadMinutes = meta.spreadMinutes ?? 0;
  const rules = armedRules(connector, spreadMinutes);
  const byMinute = new Map<number, ScheduleJobKind>();
  for (const r of rules)
    for (const m of expandCron(r.rule)) {
      // The minute of the day the request is published at (the offset may carry it past midnight).
      const at = Math.floor((m * 60 + r.offsetSeconds) / 60) % 1440;
      const had = byMinute.get(at);
      if (!had || KIND_WEIGHT[r.kind] > KIND_WEIGHT[had]) byMinute.set(at, r.kind);
    }
  const times = [...byMinute].sort((a, b) => a[0] - b[0]).map(([m, kind]) => ({ at: hhmm(m), kind }));
  const enabled = rules.length > 0;
  const timezone = schedule.timezone ?? "UTC";
  const fullPerDay = times.filter((t) => t.kind === "full").length;
  const plugin = pluginFor(connector.type);
  const summary = enabled ? `${plugin.describeSchedule(schedule, { times, timezone })}${spreadNote(rules)}` : "schedule disabled: manual syncs only";
  return {
    type: connector.type,
    origin: (meta.edited ?? meta.overridden) ? "edited" : origin,
    enabled,
    timezone,
    perDay: times.length,
    fullPerDay,
    times,
    jobs: scheduleJobs(connector, now, spreadMinutes),
    summary,
    settings: { ...schedule },
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

/** A connector's effective schedule, as `qobra-sync schedule --json` prints it. */
export interface ScheduleListing {
  connector: string;
  origin: ScheduleOrigin;
  timezone: string;
  jobs: ScheduleJobView[];
}

/**
 * Every connector's effective schedule (the config file's, or its source's default, with the
 * stored edits that still validate applied: what the scheduler arms), with the next 24 hours of
 * fire times of each job.
 */
export function listSchedules(config: Config, overrides: ScheduleOverride[], now: number = Date.now()): ScheduleListing[] {
  const edited = new Set(appliedOverrides(config, overrides).map((o) => o.connector));
  return effectiveConfig(config, overrides).connectors.map((c) => {
    const view = scheduleView(c, { edited: edited.has(c.id), spreadMinutes: spreadMinutesOf(config) }, now);
    return { connector: c.id, origin: view.origin, timezone: view.timezone, jobs: view.jobs };
  });
}

/** The stored edits that apply: of a configured connector, and still valid under its source's schedule schema. */
export function appliedOverrides(config: Config, overrides: ScheduleOverride[]): ScheduleOverride[] {
  return overrides.filter((o) => {
    const c = config.connectors.find((x) => x.id === o.connector);
    if (!c) return false;
    try {
      validateSchedule(c, o.schedule);
      return true;
    } catch {
      return false;
    }
  });
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

  /**
   * The stored edits. `create: false` (read-only callers such as `qobra-sync schedule`) leaves a
   * database where none was ever stored untouched, and answers none.
   */
  async list(opts: { create?: boolean } = {}): Promise<ScheduleOverride[]> {
    if (opts.create === false) {
      const r = await this.pool.query<{ t: string | null }>("SELECT to_regclass($1)::text AS t", [this.table]);
      if (r.rows[0]?.t === null || r.rows[0]?.t === undefined) return [];
    } else await this.ensure();
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
): (() => Promise<void>) & { refresh(): Promise<void> } {
  const store = opts.store ?? new ScheduleStore(config);
  let last = "[]";
  let stopped = false;
  const tick = async (force = false) => {
    try {
      const overrides = await store.list();
      const key = JSON.stringify(overrides.map((o) => [o.connector, o.schedule]));
      if ((force || key !== last) && !stopped) {
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
  const stop = async () => {
    stopped = true;
    clearInterval(timer);
    if (!opts.store) await store.close();
  };
  // The connectors changed (connectors given through the API): the schedules are re-armed at once.
  return Object.assign(stop, { refresh: () => tick(true) });
}
