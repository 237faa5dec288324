/**
 * Health means progress: a consumer group is unhealthy when it has work (lag) and its committed
 * offsets have not moved for `stallMs`, whether its process is dead, hung or looping on an error.
 * The producer group commits a request only when its run ends, so it counts as progressing while
 * its runs publish events; it gets its own, longer threshold (a Bulk API job can be silent).
 * Pure: the monitor feeds it lag snapshots and event times.
 */
import { groupTotals, type LagSnapshot, type Role } from "./lag.ts";

interface GroupHealth {
  group: string;
  role: Role;
  ok: boolean;
  lag: number;
  members: number;
  /** Last time the group's committed offsets moved, or its lag was zero. */
  lastProgressAt: number;
  stalledMs: number;
  reason: string | null;
}

export interface Health {
  ok: boolean;
  at: number;
  groups: GroupHealth[];
  problems: string[];
}

interface HealthOptions {
  stallMs: number;
  producerStallMs: number;
}

export class StallTracker {
  private readonly last = new Map<string, { committed: number; lag: number; progressAt: number }>();
  private samplerError: { since: number; message: string } | null = null;
  private lastSampleAt: number | null = null;
  private readonly opts: HealthOptions;
  private readonly startedAt: number;

  constructor(opts: HealthOptions, now = Date.now()) {
    this.opts = opts;
    this.startedAt = now;
  }

  /** Feeds a new lag snapshot. `producerActivityAt`: last sync.events message of a producer run. */
  observe(snapshot: LagSnapshot, producerActivityAt: number | null = null): void {
    this.samplerError = null;
    this.lastSampleAt = snapshot.at;
    for (const [group, t] of groupTotals(snapshot)) {
      const prev = this.last.get(group);
      let progressAt = prev?.progressAt ?? snapshot.at;
      // Progress: the offsets moved, or there is nothing to do; work that just appeared starts the clock now.
      if (!prev || t.committed !== prev.committed || t.lag === 0 || prev.lag === 0) progressAt = snapshot.at;
      if (t.role === "producer" && producerActivityAt !== null && producerActivityAt > progressAt) progressAt = Math.min(producerActivityAt, snapshot.at);
      this.last.set(group, { committed: t.committed, lag: t.lag, progressAt });
    }
  }

  /** The lag sampler itself failed (Kafka unreachable): unhealthy once it lasts stallMs. */
  observeError(message: string, now = Date.now()): void {
    if (!this.samplerError) this.samplerError = { since: now, message };
    else this.samplerError.message = message;
  }

  evaluate(snapshot: LagSnapshot | null, now = Date.now()): Health {
    const problems: string[] = [];
    const out: GroupHealth[] = [];
    if (this.samplerError && now - this.samplerError.since >= this.opts.stallMs) {
      problems.push(`cannot read consumer offsets from Kafka for ${Math.round((now - this.samplerError.since) / 1000)} s: ${this.samplerError.message}`);
    }
    if (!snapshot) {
      if (now - this.startedAt >= this.opts.stallMs) problems.push("no lag sample yet");
      return { ok: problems.length === 0, at: now, groups: out, problems };
    }
    if (this.lastSampleAt !== null && now - this.lastSampleAt >= 2 * this.opts.stallMs && !this.samplerError) {
      problems.push(`the last lag sample is ${Math.round((now - this.lastSampleAt) / 1000)} s old`);
    }
    const totals = groupTotals(snapshot);
    for (const g of snapshot.groups) {
      const t = totals.get(g.group)!;
      const last = this.last.get(g.group);
      const progressAt = last?.progressAt ?? snapshot.at;
      const limit = g.role === "producer" ? this.opts.producerStallMs : this.opts.stallMs;
      const stalledMs = t.lag > 0 ? Math.max(0, now - progressAt) : 0;
      const stuck = t.lag > 0 && stalledMs >= limit;
      const reason = stuck
        ? `${g.group} (${g.role}) has ${t.lag} record(s) to process and its committed offsets have not moved for ${Math.round(stalledMs / 1000)} s` +
          (g.members === 0 ? "; no consumer is running in the group" : `; ${g.members} member(s) are connected but not progressing`)
        : null;
      if (reason) problems.push(reason);
      out.push({ group: g.group, role: g.role, ok: !stuck, lag: t.lag, members: g.members, lastProgressAt: progressAt, stalledMs, reason });
    }
    return { ok: problems.length === 0, at: now, groups: out, problems };
  }
}
