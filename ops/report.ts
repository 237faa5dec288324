/**
 * `qobra-sync lag`: the consumer groups' lag per topic and partition (with the age of the oldest
 * unprocessed record), and per connector and table the last successful run and how stale the
 * data is. Collected from Kafka (offsets, sync.events) and the sink database, then formatted.
 */
import type { Config } from "../lib/config.ts";
import { createPool } from "../lib/pg.ts";
import type { Runtime } from "../lib/runtime.ts";
import { readToEnd } from "../lib/topic-scan.ts";
import type { SyncEvent } from "../schemas/index.ts";
import { groupTotals, OldestRecordProbe, pipelineGroups, snapshotLag, type GroupState, type PartitionLag } from "./lag.ts";
import { RunBook, staleness } from "./runs.ts";
import { sinkRelationName, sinkTableStats } from "./sink-stats.ts";
import { formatCount, formatDuration, isoOrNull } from "./time.ts";

export interface LagReport {
  at: string;
  groups: Array<GroupState & { lag: number; oldestUnprocessedAt: string | null; oldestUnprocessedAgeMs: number | null }>;
  partitions: Array<Omit<PartitionLag, "oldestUnprocessedAt"> & { oldestUnprocessedAt: string | null; oldestUnprocessedAgeMs: number | null }>;
  tables: Array<{
    connector: string;
    /** The connector's tenant (null: none). */
    tenant: string | null;
    table: string;
    relation: string;
    lastSuccess: { runId: string; startedAt: string; endedAt: string; full: boolean; read: number } | null;
    stalenessMs: number | null;
    lastRun: { runId: string; status: string; startedAt: string | null; error: string | null } | null;
    sinkRows: number | null;
    lastSyncedAt: string | null;
  }>;
}

export async function collectLagReport(config: Config, rt: Runtime, opts: { age?: boolean; now?: number } = {}): Promise<LagReport> {
  const admin = await rt.port.admin();
  const snap = await snapshotLag(admin, pipelineGroups(config));
  if (opts.age !== false) await new OldestRecordProbe(rt.port, config.topicPrefix).fill(snap.partitions, 8000);
  const book = new RunBook({ keepPerConnector: 1_000_000 });
  await readToEnd(rt.port, rt.port.topics.syncEvents, async (messages) => {
    for (const m of messages) if (m.value) book.apply(await rt.codec.decode<SyncEvent>(m.value));
  });
  const pool = createPool(config.sink.databaseUrl, { max: 1 });
  let stats: Awaited<ReturnType<typeof sinkTableStats>> = [];
  try {
    stats = await sinkTableStats(pool, config);
  } catch {
    /* reported as unknown */
  } finally {
    await pool.end().catch(() => {});
  }
  const now = opts.now ?? Date.now();
  const totals = groupTotals(snap);
  const age = (t: number | null) => (t === null ? null : Math.max(0, now - t));
  return {
    at: new Date(now).toISOString(),
    groups: snap.groups.map((g) => {
      const t = totals.get(g.group);
      return { ...g, lag: t?.lag ?? 0, oldestUnprocessedAt: isoOrNull(t?.oldestUnprocessedAt), oldestUnprocessedAgeMs: age(t?.oldestUnprocessedAt ?? null) };
    }),
    partitions: snap.partitions.map((p) => ({
      ...p,
      oldestUnprocessedAt: isoOrNull(p.oldestUnprocessedAt),
      oldestUnprocessedAgeMs: age(p.oldestUnprocessedAt),
    })),
    tables: config.connectors.flatMap((c) =>
      c.tables.map((t) => {
        const s = book.lastSuccess(c.id, t.name);
        const last = book.list(c.id).find((r) => r.kind === "sync" && (Object.keys(r.tables).length === 0 || t.name in r.tables) && r.status !== "coalesced");
        const st = stats.find((x) => x.connector === c.id && x.table === t.name);
        return {
          connector: c.id,
          tenant: c.tenant ?? null,
          table: t.name,
          relation: st?.relation ?? sinkRelationName(config, c, t.name),
          lastSuccess: s
            ? { runId: s.runId, startedAt: new Date(s.startedAt).toISOString(), endedAt: new Date(s.endedAt).toISOString(), full: s.full, read: s.read }
            : null,
          stalenessMs: staleness(s, now),
          lastRun: last ? { runId: last.runId, status: last.status, startedAt: isoOrNull(last.startedAt), error: last.error } : null,
          sinkRows: st?.exists ? st.live : null,
          lastSyncedAt: isoOrNull(st?.lastSyncedAt ?? null),
        };
      }),
    ),
  };
}

function table(headers: string[], rows: string[][], right: Set<number>): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (right.has(i) ? c.padStart(widths[i]!) : c.padEnd(widths[i]!)))
      .join("  ")
      .trimEnd();
  return [line(headers), ...rows.map(line)].join("\n");
}

export function formatLagReport(r: LagReport): string {
  // Three tables (groups, partitions, tables), one blank line between them.
  return [
    table(
      ["GROUP", "ROLE", "MEMBERS", "STATE", "LAG", "OLDEST WAITING"],
      r.groups.map((g) => [
        g.group,
        g.role,
        String(g.members),
        g.state,
        formatCount(g.lag),
        g.oldestUnprocessedAgeMs === null ? "—" : formatDuration(g.oldestUnprocessedAgeMs),
      ]),
      new Set([2, 4]),
    ),
    table(
      ["GROUP", "TOPIC", "PART", "COMMITTED", "END", "LAG", "OLDEST WAITING"],
      r.partitions.map((p) => [
        p.group,
        p.topic,
        String(p.partition),
        p.committed < 0 ? "—" : formatCount(p.committed),
        formatCount(p.end),
        formatCount(p.lag),
        p.lag === 0 ? "" : p.oldestUnprocessedAgeMs === null ? "?" : `${formatDuration(p.oldestUnprocessedAgeMs)} (${p.oldestUnprocessedAt})`,
      ]),
      new Set([2, 3, 4, 5]),
    ),
    table(
      ["CONNECTOR", "TABLE", "LAST SUCCESS", "STALENESS", "LAST RUN", "SINK ROWS", "LAST WRITE"],
      r.tables.map((t) => [
        t.connector,
        t.table,
        t.lastSuccess ? `${t.lastSuccess.startedAt} (${t.lastSuccess.full ? "full" : "incr."})` : "never",
        t.stalenessMs === null ? "—" : formatDuration(t.stalenessMs),
        t.lastRun ? `${t.lastRun.status}${t.lastRun.error ? `: ${t.lastRun.error.slice(0, 60)}` : ""}` : "—",
        t.sinkRows === null ? "no table" : formatCount(t.sinkRows),
        t.lastSyncedAt ?? "—",
      ]),
      new Set([5]),
    ),
  ].join("\n\n");
}
