/**
 * The runs, as the sync.events topic tells them: a pure fold of SyncEvent messages into per-run and
 * per-table views (last runs with their counts and errors, last success per table, API budget,
 * mapper counts). No I/O: the monitor feeds it, the tests drive it directly.
 */
import type { SyncEvent, TopicPartitionOffset } from "../schemas/index.ts";

type RunStatus = "running" | "completed" | "failed" | "coalesced";
/** Where the run's records are: read by the producer, mapped, written to the sink. */
type SinkPhase = "reading" | "mapping" | "writing" | "done" | "failed" | "unknown";

interface TableRun {
  read: number;
  deleted: number;
  unseen: number;
  completedAt: number;
  apiUsed: number | null;
  apiLimit: number | null;
}

export interface RunView {
  runId: string;
  connector: string;
  /** sync: a producer run; replay: `qobra-sync replay` (no source call). */
  kind: "sync" | "replay";
  full: boolean;
  status: RunStatus;
  startedAt: number | null;
  endedAt: number | null;
  durationMs: number | null;
  /** Records read from the source (deletes excluded), live while the run reads. */
  read: number;
  deleted: number;
  /** From the mapper's PROGRESS events (capped at what the run published: a replay re-maps old runs' records). */
  mapped: number;
  dlq: number;
  unresolvedUsers: number;
  tablesPlanned: number | null;
  tables: Record<string, TableRun>;
  currentTable: string | null;
  counts: Record<string, number>;
  error: string | null;
  offsets: TopicPartitionOffset[];
  apiUsed: number | null;
  apiLimit: number | null;
  lastEventAt: number;
  /** Filled by the monitor from consumer offsets. */
  phase: SinkPhase;
  /** Records of this run still to map / to write, when the monitor is tracking it. */
  remaining: number | null;
}

export interface TableSuccess {
  runId: string;
  startedAt: number;
  endedAt: number;
  read: number;
  full: boolean;
}

export interface ConnectorTotals {
  /** Source runs (replays are not counted here; they are in the duration histogram, kind "replay"). */
  runs: Record<"completed" | "failed" | "coalesced", number>;
  read: number;
  deleted: number;
  mapped: number;
  dlq: number;
  unresolvedUsers: number;
  apiUsed: number | null;
  apiLimit: number | null;
  apiAt: number | null;
}

interface FinishedRun {
  connector: string;
  outcome: "completed" | "failed";
  durationMs: number;
  kind: "sync" | "replay";
}

const emptyTotals = (): ConnectorTotals => ({
  runs: { completed: 0, failed: 0, coalesced: 0 },
  read: 0,
  deleted: 0,
  mapped: 0,
  dlq: 0,
  unresolvedUsers: 0,
  apiUsed: null,
  apiLimit: null,
  apiAt: null,
});

export class RunBook {
  private readonly runs = new Map<string, RunView>();
  private readonly rawMapper = new Map<string, { mapped: number; dlq: number; unresolvedUsers: number }>();
  private readonly successes = new Map<string, TableSuccess>(); // connector \0 table
  private readonly totals = new Map<string, ConnectorTotals>();
  private readonly keepPerConnector: number;
  /** Called once per finished run (for histograms). */
  onFinish: ((r: FinishedRun) => void) | undefined;

  constructor(opts: { keepPerConnector?: number } = {}) {
    this.keepPerConnector = opts.keepPerConnector ?? 30;
  }

  apply(e: SyncEvent): void {
    const totals = this.totalsOf(e.connector);
    if (e.type === "PROGRESS" && e.stage === "mapper") {
      const c = { mapped: e.counts.mapped ?? 0, dlq: e.counts.dlq ?? 0, unresolvedUsers: e.counts.unresolvedUsers ?? 0 };
      totals.mapped += c.mapped;
      totals.dlq += c.dlq;
      totals.unresolvedUsers += c.unresolvedUsers;
      const raw = this.rawMapper.get(e.runId) ?? { mapped: 0, dlq: 0, unresolvedUsers: 0 };
      raw.mapped += c.mapped;
      raw.dlq += c.dlq;
      raw.unresolvedUsers += c.unresolvedUsers;
      this.rawMapper.set(e.runId, raw);
      const run = this.runs.get(e.runId);
      if (run) this.refreshMapper(run);
      return;
    }
    let run = this.runs.get(e.runId);
    if (!run) {
      run = {
        runId: e.runId,
        connector: e.connector,
        kind: e.stage === "replay" ? "replay" : "sync",
        full: e.full,
        status: "running",
        startedAt: null,
        endedAt: null,
        durationMs: null,
        read: 0,
        deleted: 0,
        mapped: 0,
        dlq: 0,
        unresolvedUsers: 0,
        tablesPlanned: null,
        tables: {},
        currentTable: null,
        counts: {},
        error: null,
        offsets: [],
        apiUsed: null,
        apiLimit: null,
        lastEventAt: e.at,
        phase: e.stage === "replay" ? "mapping" : "reading",
        remaining: null,
      };
      this.runs.set(e.runId, run);
      this.refreshMapper(run);
      this.trim(e.connector);
    }
    run.lastEventAt = Math.max(run.lastEventAt, e.at);
    const api = apiOf(e.counts);
    if (api) {
      run.apiUsed = api.used;
      run.apiLimit = api.limit;
      if (totals.apiAt === null || e.at >= totals.apiAt) {
        totals.apiUsed = api.used;
        totals.apiLimit = api.limit;
        totals.apiAt = e.at;
      }
    }
    switch (e.type) {
      case "RUN_STARTED":
        run.startedAt = e.at;
        run.full = e.full;
        run.tablesPlanned = e.counts.tables ?? run.tablesPlanned;
        if (e.stage === "replay") run.counts = { ...e.counts };
        break;
      case "PROGRESS":
        if (e.counts.read !== undefined) run.read = Math.max(run.read, e.counts.read);
        if (e.table) run.currentTable = e.table;
        if (e.stage === "replay") run.counts = { ...run.counts, ...e.counts };
        break;
      case "TABLE_COMPLETED": {
        const t: TableRun = {
          read: e.counts.read ?? 0,
          deleted: e.counts.deleted ?? 0,
          unseen: e.counts.unseen ?? 0,
          completedAt: e.at,
          apiUsed: api?.used ?? null,
          apiLimit: api?.limit ?? null,
        };
        if (e.table) run.tables[e.table] = t;
        run.read = Math.max(
          run.read,
          Object.values(run.tables).reduce((n, x) => n + x.read, 0),
        );
        run.currentTable = null;
        break;
      }
      case "RUN_COMPLETED":
      case "RUN_FAILED": {
        const wasOpen = run.status === "running";
        run.endedAt = e.at;
        run.counts = { ...run.counts, ...e.counts };
        run.error = e.error;
        run.offsets = e.offsets;
        if (e.counts.read !== undefined) run.read = e.counts.read;
        run.deleted = e.counts.deleted ?? run.deleted;
        const coalesced = e.type === "RUN_COMPLETED" && (e.counts.coalesced ?? 0) > 0;
        run.status = e.type === "RUN_FAILED" ? "failed" : coalesced ? "coalesced" : "completed";
        run.durationMs = e.counts.durationMs ?? (run.startedAt !== null ? e.at - run.startedAt : null);
        if (run.status === "failed") run.phase = "failed";
        else if (run.kind === "replay") run.phase = "done";
        else if (coalesced) run.phase = "done";
        else if (run.phase === "reading") run.phase = "mapping";
        if (wasOpen) {
          if (run.kind === "sync") {
            totals.runs[run.status === "failed" ? "failed" : coalesced ? "coalesced" : "completed"]++;
            totals.read += run.read;
            totals.deleted += run.deleted;
          }
          if (!coalesced)
            this.onFinish?.({
              connector: run.connector,
              outcome: run.status === "failed" ? "failed" : "completed",
              durationMs: run.durationMs ?? 0,
              kind: run.kind,
            });
        }
        if (run.status === "completed" && run.kind === "sync") {
          const startedAt = run.startedAt ?? e.at;
          for (const [table, t] of Object.entries(run.tables)) {
            const key = `${run.connector}\u0000${table}`;
            const prev = this.successes.get(key);
            if (!prev || prev.startedAt <= startedAt) this.successes.set(key, { runId: run.runId, startedAt, endedAt: e.at, read: t.read, full: run.full });
          }
        }
        this.refreshMapper(run);
        break;
      }
    }
  }

  /** The mapper's counts for a run, capped at the records the run published (a replay re-maps them). */
  private refreshMapper(run: RunView): void {
    const raw = this.rawMapper.get(run.runId);
    if (!raw) return;
    const published = run.status === "running" ? Number.POSITIVE_INFINITY : run.read + run.deleted;
    run.dlq = Math.min(raw.dlq, published);
    run.mapped = Math.min(raw.mapped, Math.max(0, published - run.dlq));
    run.unresolvedUsers = raw.unresolvedUsers;
  }

  private totalsOf(connector: string): ConnectorTotals {
    let t = this.totals.get(connector);
    if (!t) this.totals.set(connector, (t = emptyTotals()));
    return t;
  }

  private trim(connector: string): void {
    const mine = [...this.runs.values()].filter((r) => r.connector === connector);
    if (mine.length <= this.keepPerConnector) return;
    mine.sort((a, b) => (a.startedAt ?? a.lastEventAt) - (b.startedAt ?? b.lastEventAt));
    for (const r of mine.slice(0, mine.length - this.keepPerConnector)) {
      if (r.status === "running" && Date.now() - r.lastEventAt < 86_400_000) continue;
      this.runs.delete(r.runId);
      this.rawMapper.delete(r.runId);
    }
  }

  get(runId: string): RunView | undefined {
    return this.runs.get(runId);
  }

  /** Most recent first. */
  list(connector?: string): RunView[] {
    return [...this.runs.values()]
      .filter((r) => !connector || r.connector === connector)
      .sort((a, b) => (b.startedAt ?? b.lastEventAt) - (a.startedAt ?? a.lastEventAt));
  }

  lastSuccess(connector: string, table: string): TableSuccess | null {
    return this.successes.get(`${connector}\u0000${table}`) ?? null;
  }

  connectorTotals(connector: string): ConnectorTotals {
    return this.totals.get(connector) ?? emptyTotals();
  }

  connectors(): string[] {
    return [...this.totals.keys()];
  }
}

/** API budget a connector reported in an event's counts (apiUsed/apiLimit), if any. */
function apiOf(counts: Record<string, number>): { used: number; limit: number | null } | null {
  if (counts.apiUsed === undefined) return null;
  return { used: counts.apiUsed, limit: counts.apiLimit ?? null };
}

/** How stale a table's data is: time since the start of the last successful run that read it. */
export function staleness(success: TableSuccess | null, now: number): number | null {
  return success ? Math.max(0, now - success.startedAt) : null;
}
