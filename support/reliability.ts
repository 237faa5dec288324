/**
 * Shared parts of the reliability suite (test/integration/crash.test.ts, zombie.test.ts,
 * leave-group.test.ts, reliability-pg-terminate.test.ts and `npm run chaos`):
 * a PostgreSQL source table with a revision column, the pipeline's roles as separate processes
 * (support/role-process.ts, re-exported here) that can be SIGKILLed and restarted, a fault loop
 * that times each role's recovery, and the final verdict: every source record in the sink exactly
 * once, with its newest values, nothing left in the dead-letter topics, no consumer lag, offsets
 * stored with the data.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Config } from "../app/config.ts";
import { parseConfig } from "../app/config.ts";
import { committedOffsets, endOffsets, type KafkaPort } from "../lib/kafka.ts";
import { openRuntime, type Runtime } from "../lib/runtime.ts";
import { groups } from "../lib/topics.ts";
import { stackDefaults } from "../stack/stack.ts";
import { seededRandom } from "../simulators/kit/random.ts";
import { dbUrl, ensureDatabase, withDb } from "./env.ts";
import { ROOT, sleep, startRoles, type RoleName, type RoleProcess } from "./role-process.ts";

export { ROOT, RoleProcess, sleep, startRoles, type RoleName } from "./role-process.ts";

/** A deterministic pseudo-random generator (the simulators' mulberry32), so a failing fault schedule can be replayed with its seed. */
export const rng: (seed: number) => () => number = seededRandom;

// ---------------------------------------------------------------------------------------------
// The scenario: names, source table, config

export interface Scenario {
  id: string;
  prefix: string;
  sourceDb: string;
  sinkDb: string;
  table: string;
  sinkSchema: string;
  usersTable: string;
  configFile: string;
  logDir: string;
  config: Config;
}

export function scenario(
  id: string,
  opts: { sourceDb?: string; sinkDb?: string; partitions?: number; heartbeat?: boolean; kafka?: Record<string, number> } = {},
): Scenario {
  const sourceDb = opts.sourceDb ?? "qobra_it_source";
  const sinkDb = opts.sinkDb ?? "qobra_it_sink";
  const table = `crash_${id}`;
  const sinkSchema = `sink_${id}`;
  const usersTable = `users_${id}`;
  const logDir = join(ROOT, ".stack", "logs", "chaos", id);
  mkdirSync(logDir, { recursive: true });
  const yaml = `
kafka: { brokers: ${JSON.stringify(stackDefaults.kafkaBrokers)}, partitions: ${opts.partitions ?? 2}${Object.entries(opts.kafka ?? {})
    .map(([k, v]) => `, ${k}: ${v}`)
    .join("")} }
schemaRegistry: { url: "${stackDefaults.registryUrl}" }
topicPrefix: ${id}
sink:
  databaseUrl: "${dbUrl(sinkDb)}"
  schema: ${sinkSchema}
  defaultCurrency: EUR
  users: { query: 'SELECT id, email FROM public."${usersTable}"' }
connectors:
  - id: crm
    type: postgres
    connection: { url: "${dbUrl(sourceDb)}", allowSuperuser: true }
    massDeleteThreshold: 0.5
    tables:
      - name: deals
        source: public.${table}
        idColumn: id
        nameColumn: title
        updatedAtColumn: updated_at
        fields:
          amount: { type: amount, currencyColumn: currency }
          closed_on: date
          owner_email: user
          stage: picklist
          won: bool
          rev: number
`;
  const configFile = join(ROOT, ".stack", `chaos-${id}.yaml`);
  writeFileSync(configFile, yaml);
  return { id, prefix: id, sourceDb, sinkDb, table, sinkSchema, usersTable, configFile, logDir, config: parseConfig(yaml, configFile, {}) };
}

/** The source table: `rows` deals, each with a revision number `rev` that every update bumps. */
export async function seedSource(s: Scenario, rows: number): Promise<void> {
  await ensureDatabase(s.sourceDb);
  await ensureDatabase(s.sinkDb);
  await withDb(s.sourceDb, (c) =>
    c.query(`
    DROP TABLE IF EXISTS public.${s.table};
    CREATE TABLE public.${s.table} (id bigint PRIMARY KEY, title text, amount numeric(18,4), currency char(3), closed_on date,
      owner_email text, stage text, won boolean, rev integer NOT NULL DEFAULT 1, updated_at timestamptz);
    INSERT INTO public.${s.table}
    SELECT g, 'Deal ' || g, round((g * 12.3457)::numeric, 4), (ARRAY['EUR','USD','GBP'])[1 + g % 3], DATE '2026-01-01' + (g % 365),
           'Rep' || (g % 40) || '@Example.com', (ARRAY['new','won','lost'])[1 + g % 3], g % 3 = 1, 1,
           TIMESTAMPTZ '2026-01-01 00:00:00+00' + g * interval '1 second'
      FROM generate_series(1, ${rows}) g;
    ANALYZE public.${s.table};`),
  );
  await withDb(s.sinkDb, (c) =>
    c.query(`DROP TABLE IF EXISTS public."${s.usersTable}";
    CREATE TABLE public."${s.usersTable}" (id text, email text);
    INSERT INTO public."${s.usersTable}" SELECT 'u' || g, 'rep' || g || '@example.com' FROM generate_series(0, 29) g`),
  );
}

/** Changes `every`-th row (new amount, title, stage, rev + 1, updated_at now) and deletes `deletes` rows; returns what changed. */
export async function mutateSource(s: Scenario, opts: { every: number; deletes: number; round: number }): Promise<{ updated: number; deleted: string[] }> {
  return withDb(s.sourceDb, async (c) => {
    const u = await c.query(`UPDATE public.${s.table} SET amount = amount + ${opts.round}.0001, title = title || ' r${opts.round}', rev = rev + 1,
        stage = CASE stage WHEN 'new' THEN 'won' ELSE 'new' END, updated_at = now() WHERE id % ${opts.every} = ${opts.round % opts.every}`);
    const d = await c.query<{ id: string }>(
      `DELETE FROM public.${s.table} WHERE id IN (SELECT id FROM public.${s.table} WHERE id % 997 = ${opts.round} ORDER BY id LIMIT ${opts.deletes}) RETURNING id::text`,
    );
    return { updated: u.rowCount ?? 0, deleted: d.rows.map((r) => r.id) };
  });
}

/**
 * Seeds the scenario's source with `rows` deals, opens a runtime on its config (named `client`),
 * starts the three roles as processes and waits until each is a member of its group (a fault
 * injected earlier would hit a process still starting, which no group waits for).
 */
export async function seedAndStart(s: Scenario, rows: number, client: string): Promise<{ rt: Runtime; procs: Record<RoleName, RoleProcess> }> {
  await seedSource(s, rows);
  const rt = await openRuntime(s.config, client);
  const procs = startRoles(s, ["producer", "mapper", "sink"]);
  await rolesJoined(s, rt.port);
  return { rt, procs };
}

/** Waits until the producer, mapper and sink groups of the scenario each have a member. */
export async function rolesJoined(s: Scenario, port: KafkaPort, timeoutMs = 120_000): Promise<void> {
  const g = groups(s.prefix);
  const ids = [g.producers, g.mapper, g.sink];
  const admin = await port.admin();
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const described = await admin.describeGroups(ids).catch(() => ({ groups: [] }));
    if (ids.every((id) => described.groups.some((d) => d.groupId === id && d.state === "Stable" && d.members.length > 0))) return;
    if (Date.now() > deadline) throw new Error(`the roles of ${s.id} did not join their groups within ${timeoutMs / 1000} s`);
    await sleep(200);
  }
}

export async function dropScenario(s: Scenario, port?: KafkaPort): Promise<void> {
  await withDb(s.sourceDb, (c) => c.query(`DROP TABLE IF EXISTS public.${s.table}`)).catch(() => undefined);
  await withDb(s.sinkDb, (c) => c.query(`DROP SCHEMA IF EXISTS "${s.sinkSchema}" CASCADE; DROP TABLE IF EXISTS public."${s.usersTable}"`)).catch(
    () => undefined,
  );
  if (port) {
    const admin = await port.admin();
    const topics = (await admin.listTopics()).filter((t) => t.startsWith(`${s.prefix}.`));
    if (topics.length > 0) await admin.deleteTopics({ topics }).catch(() => undefined);
  }
}

// ---------------------------------------------------------------------------------------------
// Faults

export interface Fault {
  at: string;
  kind: string;
  target: string;
  downMs: number;
  note?: string;
  /** When the role was started again. */
  restartedAt?: string;
  /** From the kill to the killed role's first progress after its restart (null: none seen, e.g. nothing left to do). */
  recoveryMs?: number | null;
  /** From the restart to that progress: what the role itself costs (the kill's down time excluded). */
  recoveryFromRestartMs?: number | null;
}

interface FaultLoop {
  stop(): Promise<Fault[]>;
  faults: Fault[];
}

/**
 * Kills one of `targets` with SIGKILL every `everyMs` (random within the range), keeps it down for
 * `downMs`, restarts it; until stopped. Stopping waits for the current fault to end (role restarted).
 */
export interface FaultLoopOptions {
  seed: number;
  everyMs: [number, number];
  downMs: [number, number];
  max?: number;
  log?: (line: string) => void;
  /** A role's progress counter (e.g. its committed offsets), to measure how long it takes to resume after a kill. */
  progress?: Partial<Record<RoleName, () => Promise<number>>>;
  /** How long recovery is still watched for once the loop is stopped (default 45 s). */
  recoveryGraceMs?: number;
  /** The role the first fault hits (the next ones are drawn from the targets), and when (default: as the others). */
  firstTarget?: RoleName;
  firstAfterMs?: [number, number];
  /** Wait for a fault's recovery (up to this long) before the next fault, so that each recovery is measured alone. */
  awaitRecoveryMs?: number;
  /** Take the targets in turn, in the order given, instead of drawing them (every role is hit even in a short run). */
  inTurn?: boolean;
}

export function faultLoop(procs: Partial<Record<RoleName, RoleProcess>>, targets: RoleName[], opts: FaultLoopOptions): FaultLoop {
  const watchers: Promise<void>[] = [];
  let stopAt = Infinity;
  const random = rng(opts.seed);
  const between = ([a, b]: [number, number]) => Math.round(a + random() * (b - a));
  const faults: Fault[] = [];
  let stopped = false;
  let wake: (() => void) | undefined;
  const nap = (ms: number) =>
    new Promise<void>((r) => {
      const t = setTimeout(r, ms);
      wake = () => {
        clearTimeout(t);
        r();
      };
    });
  const done = (async () => {
    while (!stopped && faults.length < (opts.max ?? Infinity)) {
      await nap(between(faults.length === 0 && opts.firstAfterMs ? opts.firstAfterMs : opts.everyMs));
      if (stopped) break;
      const drawn = targets[Math.floor(random() * targets.length)]!;
      const turn = targets[(faults.length - (opts.firstTarget ? 1 : 0)) % targets.length]!;
      const target = faults.length === 0 && opts.firstTarget ? opts.firstTarget : opts.inTurn ? turn : drawn;
      const p = procs[target]!;
      const downMs = between(opts.downMs);
      const progress = opts.progress?.[target];
      const killedAt = Date.now();
      await p.kill9();
      const fault: Fault = { at: new Date().toISOString(), kind: "SIGKILL", target, downMs };
      faults.push(fault);
      opts.log?.(`fault ${faults.length}: SIGKILL ${target}, down ${downMs} ms`);
      await sleep(downMs);
      // Progress is counted from here: a commit the dead process had sent before the kill may
      // still complete after it, and is no recovery.
      const before = progress ? await progress().catch(() => -1) : -1;
      const restartedAt = Date.now();
      p.start();
      fault.restartedAt = new Date(restartedAt).toISOString();
      if (progress) {
        fault.recoveryMs = null;
        fault.recoveryFromRestartMs = null;
        const watcher = (async () => {
          const deadline = killedAt + 180_000;
          while (Date.now() < deadline && !(stopped && Date.now() > stopAt + (opts.recoveryGraceMs ?? 45_000))) {
            const now = await progress().catch(() => -1);
            if (now > before && before >= 0) {
              fault.recoveryMs = Date.now() - killedAt;
              fault.recoveryFromRestartMs = Date.now() - restartedAt;
              opts.log?.(
                `fault ${faults.indexOf(fault) + 1}: ${target} progressing again ${(fault.recoveryFromRestartMs / 1000).toFixed(1)} s after its restart (${(fault.recoveryMs / 1000).toFixed(1)} s after the kill)`,
              );
              return;
            }
            await sleep(100);
          }
        })();
        watchers.push(watcher);
        if (opts.awaitRecoveryMs) await Promise.race([watcher, nap(opts.awaitRecoveryMs)]);
      }
    }
  })();
  return {
    faults,
    async stop() {
      stopped = true;
      stopAt = Date.now();
      wake?.();
      await done;
      await Promise.all(watchers);
      return faults;
    },
  };
}

/** Progress counters of the mapper (its committed raw offsets) and the sink (offsets stored with the data). */
export function progressCounters(s: Scenario, port: KafkaPort): Partial<Record<RoleName, () => Promise<number>>> {
  const g = groups(s.prefix);
  return {
    mapper: async () => [...(await committedOffsets(await port.admin(), g.mapper, port.topics.raw("crm"))).values()].reduce((a, b) => a + Math.max(0, b), 0),
    sink: () =>
      withDb(s.sinkDb, async (c) =>
        Number((await c.query(`SELECT coalesce(sum(next_offset), 0) AS n FROM "${s.sinkSchema}"."_qobra_sync_offsets"`)).rows[0].n),
      ),
    producer: async () => [...(await endOffsets(await port.admin(), port.topics.raw("crm"))).values()].reduce((a, b) => a + b, 0),
  };
}

/** The fault loop of the crash test and the chaos suite: SIGKILLs the mapper and the sink, and times each one's recovery from its progress counter. */
export function killMapperAndSink(s: Scenario, port: KafkaPort, procs: Record<RoleName, RoleProcess>, opts: Omit<FaultLoopOptions, "progress">): FaultLoop {
  return faultLoop(procs, ["mapper", "sink"], { ...opts, progress: progressCounters(s, port) });
}

// ---------------------------------------------------------------------------------------------
// The verdict

export interface Verdict {
  sourceRows: number;
  sinkLiveRows: number;
  /** Source ids missing from the sink (or soft-deleted there while alive at the source). */
  lost: string[];
  /** Ids present more than once in the sink table. */
  duplicated: string[];
  /** Ids whose sink values differ from the source's. */
  stale: string[];
  /** Live sink rows the source no longer has (a delete not applied). */
  notDeleted: string[];
  /** Ids deleted at the source, and soft-deleted in the sink. */
  softDeleted: number;
  mapperLag: number;
  sinkLag: number;
  /** Largest (end offset − offset stored with the data) over the mapped partitions: 0, or 1 for a final transaction marker. */
  storedOffsetGap: number;
  dlqMapper: number;
  dlqSink: number;
}

const SOURCE_DIGEST = `md5(concat_ws('|', title, trim_scale(amount)::text, upper(currency), closed_on::text, lower(owner_email), stage, won::text, rev::text, updated_at::text))`;
const SINK_DIGEST = `md5(concat_ws('|', _name, trim_scale(amount)::text, amount_currency, closed_on::text, owner_email, stage, won::text, trim_scale(rev)::text, _source_updated_at::text))`;

export async function verdict(s: Scenario, port: KafkaPort, deletedIds: Iterable<string> = []): Promise<Verdict> {
  const source = await withDb(
    s.sourceDb,
    async (c) => (await c.query<{ id: string; d: string }>(`SELECT id::text AS id, ${SOURCE_DIGEST} AS d FROM public.${s.table}`)).rows,
  );
  const sink = await withDb(
    s.sinkDb,
    async (c) =>
      (
        await c.query<{ id: string; d: string; deleted: boolean }>(
          `SELECT _external_id AS id, ${SINK_DIGEST} AS d, _deleted_at IS NOT NULL AS deleted FROM "${s.sinkSchema}"."crm__deals"`,
        )
      ).rows,
  );
  const sinkById = new Map<string, { d: string; deleted: boolean }>();
  const duplicated: string[] = [];
  for (const r of sink) {
    if (sinkById.has(r.id)) duplicated.push(r.id);
    sinkById.set(r.id, { d: r.d, deleted: r.deleted });
  }
  const lost: string[] = [],
    stale: string[] = [];
  const sourceIds = new Set<string>();
  for (const r of source) {
    sourceIds.add(r.id);
    const k = sinkById.get(r.id);
    if (!k || k.deleted) lost.push(r.id);
    else if (k.d !== r.d) stale.push(r.id);
  }
  const notDeleted = sink.filter((r) => !r.deleted && !sourceIds.has(r.id)).map((r) => r.id);
  let softDeleted = 0;
  for (const id of deletedIds) if (sinkById.get(id)?.deleted) softDeleted++;

  const admin = await port.admin();
  const g = groups(s.prefix);
  const lag = async (group: string, topic: string) => {
    const end = await endOffsets(admin, topic);
    const committed = await committedOffsets(admin, group, topic);
    let total = 0;
    for (const [p, e] of end) total += Math.max(0, e - Math.max(committed.get(p) ?? 0, 0));
    return total;
  };
  const rawTopic = port.topics.raw("crm"),
    mappedTopic = port.topics.mapped("crm", "deals");
  const mapperLag = await lag(g.mapper, rawTopic);
  const sinkLag = await lag(g.sink, mappedTopic);
  const stored = await withDb(
    s.sinkDb,
    async (c) =>
      (
        await c.query<{ partition: number; next_offset: string }>(
          `SELECT partition, next_offset FROM "${s.sinkSchema}"."_qobra_sync_offsets" WHERE consumer_group = $1 AND topic = $2`,
          [g.sink, mappedTopic],
        )
      ).rows,
  );
  let storedOffsetGap = 0;
  for (const [p, e] of await endOffsets(admin, mappedTopic)) {
    const st = Number(stored.find((r) => r.partition === p)?.next_offset ?? 0);
    storedOffsetGap = Math.max(storedOffsetGap, e - st);
  }
  const count = async (topic: string) => [...(await endOffsets(admin, topic)).values()].reduce((a, b) => a + b, 0);
  return {
    sourceRows: source.length,
    sinkLiveRows: sink.filter((r) => !r.deleted).length,
    lost,
    duplicated,
    stale,
    notDeleted,
    softDeleted,
    mapperLag,
    sinkLag,
    storedOffsetGap,
    dlqMapper: await count(port.topics.dlqMapper),
    dlqSink: await count(port.topics.dlqSink),
  };
}

/** The verdict as the report files keep it: at most 20 of the lost and of the stale ids. */
export function verdictForReport(v: Verdict): Verdict {
  return { ...v, lost: v.lost.slice(0, 20), stale: v.stale.slice(0, 20) };
}

export function summarize(v: Verdict, faults: number): string {
  return (
    `${v.sourceRows} source records: ${v.lost.length} lost / ${v.duplicated.length} duplicated / ${v.stale.length} stale / ${v.notDeleted.length} not deleted; ` +
    `${v.softDeleted} soft-deleted as at the source; lag mapper ${v.mapperLag}, sink ${v.sinkLag}; stored offset gap ${v.storedOffsetGap}; ` +
    `DLQ mapper ${v.dlqMapper}, sink ${v.dlqSink}; faults injected: ${faults}`
  );
}
