/**
 * Where a completed run's records are after the producer: mapping, writing, or done. Read from the
 * consumer groups' committed offsets, as `sync --wait` does: a run is mapped once the mapper's group
 * has committed past the raw end offsets the run reported, and written once the sink's group has
 * committed past the mapped topics' end offsets taken when the mapper got there. The monitor
 * calls `advance` after each lag sample; no I/O here.
 */
import type { GroupSpec, LagSnapshot } from "./lag.ts";
import type { RunView } from "./runs.ts";

/** Runs older than this that never reached the sink are no longer followed (their phase becomes "unknown"). */
const FOLLOW_MS = 86_400_000;

/** The end offsets (topic \0 partition → offset) a run must see a group commit past. */
interface Target {
  targets: Map<string, number>;
  kind: "mapper" | "sink";
}

export interface RunPhaseOptions {
  /** The pipeline's consumer groups (the mapper's and the sink's are followed). */
  specs: GroupSpec[];
  /** The mapped topic of a connector's table. */
  mappedTopic(connector: string, table: string): string;
  /** The tables of a connector in the config, for runs whose events name none. */
  tablesOf(connector: string): string[];
}

export class RunPhaseTracker {
  private readonly opts: RunPhaseOptions;
  private readonly targets = new Map<string, Target>();

  constructor(opts: RunPhaseOptions) {
    this.opts = opts;
  }

  /**
   * Moves the completed runs of `runs` through mapping → writing → done (setting their `phase` and
   * `remaining`). Returns true when a run reached the sink.
   */
  advance(snap: LagSnapshot, runs: RunView[], now = Date.now()): boolean {
    const committed = new Map<string, number>();
    const ends = new Map<string, number>();
    for (const p of snap.partitions) {
      committed.set(`${p.group}\u0000${p.topic}\u0000${p.partition}`, p.committed);
      ends.set(`${p.topic}\u0000${p.partition}`, p.end);
    }
    const mapperGroup = this.opts.specs.find((s) => s.role === "mapper")!.group;
    const sinkGroup = this.opts.specs.find((s) => s.role === "sink")!.group;
    let landed = false;
    for (const run of runs) {
      if (run.kind !== "sync" || run.status !== "completed" || (run.phase !== "mapping" && run.phase !== "writing")) continue;
      if (now - (run.endedAt ?? 0) > FOLLOW_MS) {
        run.phase = "unknown";
        continue;
      }
      let target = this.targets.get(run.runId);
      if (!target) {
        target = { kind: "mapper", targets: new Map(run.offsets.map((o) => [`${o.topic}\u0000${o.partition}`, o.offset])) };
        this.targets.set(run.runId, target);
      }
      const group = target.kind === "mapper" ? mapperGroup : sinkGroup;
      let remaining = 0;
      for (const [tp, end] of target.targets) remaining += Math.max(0, end - Math.max(0, committed.get(`${group}\u0000${tp}`) ?? 0));
      run.remaining = remaining;
      if (remaining > 0) {
        run.phase = target.kind === "mapper" ? "mapping" : "writing";
        continue;
      }
      if (target.kind === "mapper") {
        const tables = Object.keys(run.tables).length > 0 ? Object.keys(run.tables) : this.opts.tablesOf(run.connector);
        const topics = new Set(tables.map((t) => this.opts.mappedTopic(run.connector, t)));
        const sinkTargets = new Map<string, number>();
        for (const [tp, end] of ends) if (topics.has(tp.split("\u0000")[0]!)) sinkTargets.set(tp, end);
        this.targets.set(run.runId, { kind: "sink", targets: sinkTargets });
        run.phase = "writing";
        // Evaluated again at the next sample, against the sink's offsets.
        continue;
      }
      run.phase = "done";
      run.remaining = 0;
      this.targets.delete(run.runId);
      landed = true;
    }
    return landed;
  }
}
