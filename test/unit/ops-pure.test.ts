/** The pure parts of operations: time parsing, lag arithmetic, health, the run book, schedules, progress. */
import { describe, expect, it } from "vitest";
import { parseConfig, type ConnectorConfig } from "../../app/config.ts";
import type { SyncEvent } from "../../schemas/index.ts";
import { StallTracker } from "../../ops/health.ts";
import { computeLag, groupTotals, type LagSnapshot, type PartitionLag } from "../../ops/lag.ts";
import { bar, createRenderer, syncProgress } from "../../ops/progress.ts";
import { formatLagReport, type LagReport } from "../../ops/report.ts";
import { RunBook, staleness } from "../../ops/runs.ts";
import { effectiveConfig, expandCron, scheduleView, validateSchedule } from "../../scheduler/schedules.ts";
import { pluginFor, sourcePlugins } from "../../producers/connectors/registry.ts";
import { formatDuration, parseSince } from "../../ops/time.ts";

const NOW = Date.parse("2026-05-04T12:00:00Z");

describe("--since", () => {
  it("reads durations ago, ISO dates and times, epoch milliseconds", () => {
    expect(parseSince("90s", NOW)).toBe(NOW - 90_000);
    expect(parseSince("2h30m", NOW)).toBe(NOW - 9_000_000);
    expect(parseSince("1d", NOW)).toBe(NOW - 86_400_000);
    expect(parseSince("2026-05-01", NOW)).toBe(Date.parse("2026-05-01T00:00:00Z"));
    expect(parseSince("2026-05-01T08:00:00+02:00", NOW)).toBe(Date.parse("2026-05-01T06:00:00Z"));
    expect(parseSince("2026-05-01 08:00", NOW)).toBe(Date.parse("2026-05-01T08:00:00Z"));
    expect(parseSince(String(NOW), NOW)).toBe(NOW);
  });
  it("refuses anything else with what it accepts", () => {
    expect(() => parseSince("yesterday")).toThrow(/ISO date.*duration ago/);
    expect(() => parseSince("2026-13-45")).toThrow(/not a valid date/);
  });
  it("formats durations for people", () => {
    expect(formatDuration(850)).toBe("850 ms");
    expect(formatDuration(65_000)).toBe("1 m 05 s");
    expect(formatDuration(3 * 3600_000 + 4 * 60_000)).toBe("3 h 04 m");
    expect(formatDuration(null)).toBe("—");
  });
});

const part = (o: Partial<PartitionLag>): PartitionLag => ({
  group: "p-sink",
  role: "sink",
  topic: "p.mapped.crm.deals",
  connector: "crm",
  tenant: null,
  table: "deals",
  partition: 0,
  committed: 0,
  low: 0,
  end: 0,
  lag: 0,
  oldestUnprocessedAt: null,
  ...o,
});
const snap = (at: number, parts: PartitionLag[], members = 1): LagSnapshot => ({
  at,
  partitions: parts.map((p) => ({ ...p, lag: computeLag(p.committed, p.low, p.end) })),
  groups: [...new Set(parts.map((p) => p.group))].map((g) => ({
    group: g,
    role: parts.find((p) => p.group === g)!.role,
    state: members ? "Stable" : "Empty",
    members,
    clients: [],
  })),
});

describe("lag", () => {
  it("counts from the committed offset, or from the log start when nothing is committed", () => {
    expect(computeLag(10, 0, 15)).toBe(5);
    expect(computeLag(-1, 0, 15)).toBe(15);
    expect(computeLag(-1, 7, 15)).toBe(8); // compacted/expired start
    expect(computeLag(3, 7, 15)).toBe(8); // committed before the log start
    expect(computeLag(20, 0, 15)).toBe(0);
  });
  it("sums per group", () => {
    const s = snap(NOW, [
      part({ partition: 0, committed: 5, end: 10 }),
      part({ partition: 1, committed: 10, end: 10 }),
      part({ group: "p-mapper", role: "mapper", topic: "p.raw.crm", committed: -1, end: 4 }),
    ]);
    const t = groupTotals(s);
    expect(t.get("p-sink")).toMatchObject({ lag: 5, committed: 15, partitions: 2, lagging: 1 });
    expect(t.get("p-mapper")).toMatchObject({ lag: 4, committed: 0, lagging: 1 });
  });
});

describe("health", () => {
  const opts = { stallMs: 60_000, producerStallMs: 900_000 };
  it("fails when a group has lag and its offsets do not move for the threshold, and recovers when they move", () => {
    const h = new StallTracker(opts, NOW);
    h.observe(snap(NOW, [part({ committed: 100, end: 100 })]));
    expect(h.evaluate(snap(NOW, [part({ committed: 100, end: 100 })]), NOW).ok).toBe(true);
    // records keep arriving, the sink is gone
    let s = snap(NOW + 10_000, [part({ committed: 100, end: 150 })], 0);
    h.observe(s);
    expect(h.evaluate(s, NOW + 30_000).ok).toBe(true);
    s = snap(NOW + 69_000, [part({ committed: 100, end: 300 })], 0);
    h.observe(s);
    expect(h.evaluate(s, NOW + 69_000).ok).toBe(true); // 59 s since the work appeared
    const bad = h.evaluate(s, NOW + 71_000);
    expect(bad.ok).toBe(false);
    expect(bad.problems[0]).toMatch(/p-sink \(sink\) has 200 record\(s\) to process and its committed offsets have not moved for 61 s; no consumer is running/);
    // the sink restarts and makes progress: healthy again at once
    s = snap(NOW + 72_000, [part({ committed: 180, end: 300 })]);
    h.observe(s);
    expect(h.evaluate(s, NOW + 72_000).ok).toBe(true);
  });
  it("a group without lag is healthy however long it idles", () => {
    const h = new StallTracker(opts, NOW);
    h.observe(snap(NOW, [part({ committed: 5, end: 5 })]));
    const later = snap(NOW + 3600_000, [part({ committed: 5, end: 5 })]);
    h.observe(later);
    expect(h.evaluate(later, NOW + 3600_000).ok).toBe(true);
  });
  it("a sampler that stopped sampling is a problem too", () => {
    const h = new StallTracker(opts, NOW);
    const s = snap(NOW, [part({ committed: 5, end: 5 })]);
    h.observe(s);
    expect(h.evaluate(s, NOW + 150_000).problems.join()).toMatch(/last lag sample is 150 s old/);
  });
  it("the producer group counts its runs' events as progress and has its own threshold", () => {
    const h = new StallTracker(opts, NOW);
    const p = (at: number) => snap(at, [part({ group: "p-producers", role: "producer", topic: "p.sync.requests", committed: 3, end: 4 })]);
    h.observe(p(NOW));
    h.observe(p(NOW + 600_000), NOW + 590_000);
    h.observe(p(NOW + 1_000_000), NOW + 590_000);
    expect(h.evaluate(p(NOW + 1_000_000), NOW + 1_000_000).ok).toBe(true);
    h.observe(p(NOW + 1_500_000), NOW + 590_000);
    expect(h.evaluate(p(NOW + 1_500_000), NOW + 1_500_000).ok).toBe(false);
  });
  it("fails when Kafka cannot be read for the threshold", () => {
    const h = new StallTracker(opts, NOW);
    const s = snap(NOW, [part({ committed: 5, end: 5 })]);
    h.observe(s);
    h.observeError("connect ECONNREFUSED", NOW + 1000);
    expect(h.evaluate(s, NOW + 30_000).ok).toBe(true);
    expect(h.evaluate(s, NOW + 62_000).problems.join()).toMatch(/cannot read consumer offsets from Kafka/);
  });
});

const ev = (e: Partial<SyncEvent> & Pick<SyncEvent, "type" | "runId">): SyncEvent => ({
  connector: "crm",
  at: NOW,
  stage: "producer",
  table: null,
  full: false,
  counts: {},
  offsets: [],
  error: null,
  ...e,
});

describe("run book", () => {
  it("folds a run's lifecycle, its tables, the mapper's counts and the API budget", () => {
    const b = new RunBook();
    const finished: unknown[] = [];
    b.onFinish = (r) => finished.push(r);
    b.apply(ev({ type: "RUN_STARTED", runId: "r1", full: true, counts: { tables: 2 } }));
    b.apply(ev({ type: "PROGRESS", runId: "r1", table: "deals", counts: { read: 500 }, at: NOW + 1000 }));
    expect(b.get("r1")).toMatchObject({ status: "running", read: 500, currentTable: "deals", phase: "reading" });
    b.apply(ev({ type: "PROGRESS", runId: "r1", stage: "mapper", counts: { mapped: 400, dlq: 2, unresolvedUsers: 3 } }));
    b.apply(ev({ type: "TABLE_COMPLETED", runId: "r1", table: "deals", counts: { read: 1000, deleted: 1, apiUsed: 120, apiLimit: 15000 }, at: NOW + 2000 }));
    b.apply(ev({ type: "TABLE_COMPLETED", runId: "r1", table: "users", counts: { read: 10, deleted: 0 }, at: NOW + 3000 }));
    b.apply(
      ev({
        type: "RUN_COMPLETED",
        runId: "r1",
        counts: { read: 1010, deleted: 1, durationMs: 4000 },
        offsets: [{ topic: "t", partition: 0, offset: 1011 }],
        at: NOW + 4000,
      }),
    );
    b.apply(ev({ type: "PROGRESS", runId: "r1", stage: "mapper", counts: { mapped: 609, dlq: 0, unresolvedUsers: 0 } }));
    const r = b.get("r1")!;
    expect(r).toMatchObject({
      status: "completed",
      phase: "mapping",
      read: 1010,
      deleted: 1,
      mapped: 1009,
      dlq: 2,
      unresolvedUsers: 3,
      durationMs: 4000,
      apiUsed: 120,
      apiLimit: 15000,
    });
    expect(r.tables.deals).toMatchObject({ read: 1000, deleted: 1, apiUsed: 120 });
    expect(b.lastSuccess("crm", "deals")).toMatchObject({ runId: "r1", startedAt: NOW, read: 1000, full: true });
    expect(staleness(b.lastSuccess("crm", "deals"), NOW + 60_000)).toBe(60_000);
    expect(b.connectorTotals("crm")).toMatchObject({
      runs: { completed: 1, failed: 0, coalesced: 0 },
      read: 1010,
      mapped: 1009,
      dlq: 2,
      unresolvedUsers: 3,
      apiUsed: 120,
      apiLimit: 15000,
    });
    expect(finished).toEqual([{ connector: "crm", outcome: "completed", durationMs: 4000, kind: "sync" }]);
    // a replay re-maps r1's records: its per-run counts stay capped at what it published
    b.apply(ev({ type: "PROGRESS", runId: "r1", stage: "mapper", counts: { mapped: 1011, dlq: 0, unresolvedUsers: 0 } }));
    expect(b.get("r1")!.mapped).toBe(1009);
  });
  it("a failed run is not a success; a later success wins; coalesced runs are listed but not counted as reads", () => {
    const b = new RunBook();
    b.apply(ev({ type: "RUN_STARTED", runId: "a", at: NOW }));
    b.apply(ev({ type: "TABLE_COMPLETED", runId: "a", table: "deals", counts: { read: 3 }, at: NOW + 10 }));
    b.apply(ev({ type: "RUN_FAILED", runId: "a", error: "boom", at: NOW + 20 }));
    expect(b.lastSuccess("crm", "deals")).toBeNull();
    expect(b.get("a")).toMatchObject({ status: "failed", phase: "failed", error: "boom" });
    b.apply(ev({ type: "RUN_COMPLETED", runId: "c", counts: { read: 0, coalesced: 1 }, at: NOW + 30 }));
    expect(b.get("c")).toMatchObject({ status: "coalesced", phase: "done" });
    expect(b.list().map((r) => r.runId)).toEqual(["c", "a"]);
    expect(b.connectorTotals("crm").runs).toEqual({ completed: 0, failed: 1, coalesced: 1 });
  });
  it("knows replays from source runs: a replay never counts as a successful read", () => {
    const b = new RunBook();
    b.apply(ev({ type: "RUN_STARTED", runId: "rp", stage: "replay", full: true, counts: { records: 50 } }));
    b.apply(ev({ type: "RUN_COMPLETED", runId: "rp", stage: "replay", counts: { records: 50, mapped: 50, durationMs: 900 } }));
    expect(b.get("rp")).toMatchObject({ kind: "replay", status: "completed", phase: "done" });
    expect(b.lastSuccess("crm", "deals")).toBeNull();
    expect(b.connectorTotals("crm").runs).toEqual({ completed: 0, failed: 0, coalesced: 0 });
  });
  it("keeps a bounded number of runs per connector", () => {
    const b = new RunBook({ keepPerConnector: 3 });
    for (let i = 0; i < 6; i++) {
      b.apply(ev({ type: "RUN_STARTED", runId: `r${i}`, at: NOW + i }));
      b.apply(ev({ type: "RUN_COMPLETED", runId: `r${i}`, at: NOW + i }));
    }
    expect(b.list("crm").map((r) => r.runId)).toEqual(["r5", "r4", "r3"]);
  });
});

const config = parseConfig(
  `
kafka: { brokers: ["127.0.0.1:9092"] }
schemaRegistry: { url: "http://127.0.0.1:8080/apis/ccompat/v7" }
sink: { databaseUrl: "postgres://x@127.0.0.1/q", defaultCurrency: EUR }
connectors:
  - id: crm
    type: postgres
    connection: { url: "postgres://r@127.0.0.1/crm" }
    schedule: { timesPerDay: 4, timezone: "Europe/Paris" }
    tables: [{ name: deals, source: public.deals, idColumn: id, nameColumn: title }]
  - id: sf
    type: salesforce
    clientId: a
    clientSecret: b
    schedule: { fullAt: "02:30", incrementalEveryHours: 6, timezone: "Europe/Paris" }
    tables: [{ name: opportunities, object: Opportunity }]
  - id: hs
    type: hubspot
    clientId: a
    clientSecret: b
    schedule: { incrementalEveryMinutes: 15 }
    tables: [{ name: deals, object: deals }]
  - id: manual
    type: postgres
    connection: { url: "postgres://r@127.0.0.1/crm" }
    tables: [{ name: deals, source: public.deals, idColumn: id, nameColumn: title }]
`,
  "test",
  {},
);
const conn = (id: string) => config.connectors.find((c) => c.id === id) as ConnectorConfig;

describe("schedules", () => {
  it("expands the scheduler's cron rules into the times of the day", () => {
    expect(expandCron("0 0,6,12,18 * * *")).toEqual([0, 360, 720, 1080]);
    expect(expandCron("*/15 * * * *")).toHaveLength(96);
    expect(expandCron("0 */8 * * *")).toEqual([0, 480, 960]);
    expect(expandCron("30 2 * * *")).toEqual([150]);
    expect(() => expandCron("0 1 * * 1")).toThrow(/unsupported/);
  });
  it("shows the count of daily refreshes and their hours, per source", () => {
    expect(scheduleView(conn("crm"))).toMatchObject({
      origin: "config",
      enabled: true,
      perDay: 4,
      fullPerDay: 4,
      timezone: "Europe/Paris",
      times: [
        { at: "00:00", kind: "full" },
        { at: "06:00", kind: "full" },
        { at: "12:00", kind: "full" },
        { at: "18:00", kind: "full" },
      ],
      summary: "4 full refreshes a day at 00:00, 06:00, 12:00, 18:00 (Europe/Paris)",
    });
    const sf = scheduleView(conn("sf"));
    expect(sf.times).toEqual([
      { at: "02:30", kind: "full" },
      { at: "08:30", kind: "incremental" },
      { at: "14:30", kind: "incremental" },
      { at: "20:30", kind: "incremental" },
    ]);
    expect(sf.summary).toBe("full refresh at 02:30, incremental 3 times a day (08:30, 14:30, 20:30) (Europe/Paris)");
    // HubSpot: the nightly reconciliation (03:00 by default) shares its minute with an incremental.
    expect(scheduleView(conn("hs"))).toMatchObject({
      perDay: 96,
      fullPerDay: 0,
      summary: "incremental every 15 minutes (96 a day), reconciliation at 03:00; full syncs are manual",
    });
    expect(scheduleView(conn("hs")).times.find((t) => t.at === "03:00")).toEqual({ at: "03:00", kind: "reconcile" });
    // No schedule block: the source's default (PostgreSQL: four full refreshes a day).
    expect(scheduleView(conn("manual"))).toMatchObject({
      origin: "default",
      enabled: true,
      perDay: 4,
      summary: "4 full refreshes a day at 00:00, 06:00, 12:00, 18:00 (UTC)",
      settings: { enabled: true, timesPerDay: 4 },
    });
  });
  it("validates edits with the config file's rules", () => {
    expect(validateSchedule(conn("crm"), { timesPerDay: 2, hours: [19, 7, 7], timezone: "Europe/Paris" })).toMatchObject({ timesPerDay: 2, hours: [19, 7] });
    expect(() => validateSchedule(conn("crm"), { timesPerDay: 3, hours: [7, 19] })).toThrow(/3 refreshes a day but 2 distinct hour/);
    expect(() => validateSchedule(conn("crm"), { hours: [25] })).toThrow(/schedule.hours.0/);
    expect(() => validateSchedule(conn("crm"), { timezone: "Mars/Olympus" })).toThrow(/IANA time zone/);
    expect(() => validateSchedule(conn("hs"), { incrementalEveryMinutes: 7 })).toThrow(/incrementalEveryMinutes/);
    expect(() => validateSchedule(conn("sf"), { fullAt: "25:00" })).toThrow(/HH:MM/);
    expect(() => validateSchedule(conn("crm"), { surprise: 1 })).toThrow(/surprise/);
  });
  it("each source's edit form (its plugin's description) sends back its schedule unchanged when saved as shown", () => {
    for (const id of ["crm", "sf", "hs", "manual"]) {
      const c = conn(id);
      const view = scheduleView(c);
      const s = view.settings;
      // What the page's formBody sends for a form shown with these settings and saved untouched.
      const body: Record<string, unknown> = { timezone: s.timezone, enabled: s.enabled };
      for (const f of pluginFor(c.type).scheduleForm) {
        const v = s[f.name];
        if (f.kind === "hours") {
          const n = Number(s[f.count.name]);
          body[f.name] = Array.isArray(v) && v.length > 0 ? v : Array.from({ length: n }, (_, i) => Math.floor((i * 24) / n));
        } else {
          if (f.kind === "select") expect(f.options.map((o) => o.value)).toContain(v);
          expect(v, `${id}: ${f.name}`).toBeDefined();
          body[f.name] = v;
        }
      }
      const saved = validateSchedule(c, body);
      expect(saved).toMatchObject(s);
      expect(scheduleView({ ...c, schedule: saved } as ConnectorConfig).times).toEqual(view.times);
    }
  });
  it("says which sources read incrementally (the page's Refresh is a full sync otherwise)", () => {
    expect(Object.fromEntries(sourcePlugins.map((p) => [p.type, p.incremental]))).toEqual({ postgres: false, hubspot: true, salesforce: true });
    // every control edits a key of the source's schedule block
    for (const p of sourcePlugins) {
      const keys = Object.keys((p.scheduleSchema as unknown as { shape: Record<string, unknown> }).shape);
      for (const f of p.scheduleForm) expect(keys, p.type).toContain(f.name);
    }
  });
  it("applies stored edits to the config, ignoring edits that no longer validate", () => {
    const eff = effectiveConfig(config, [
      { connector: "crm", schedule: { timesPerDay: 2, hours: [7, 19], timezone: "UTC" }, updatedAt: "", updatedBy: "web" },
      { connector: "hs", schedule: { incrementalEveryMinutes: 7 }, updatedAt: "", updatedBy: "web" },
      { connector: "gone", schedule: {}, updatedAt: "", updatedBy: "web" },
    ]);
    expect(scheduleView(eff.connectors.find((c) => c.id === "crm")!).times.map((t) => t.at)).toEqual(["07:00", "19:00"]);
    expect(eff.connectors.find((c) => c.id === "hs")!.schedule).toEqual(conn("hs").schedule);
    expect(config.connectors.find((c) => c.id === "crm")!.schedule).toMatchObject({ timesPerDay: 4 }); // not mutated
  });
});

describe("progress", () => {
  it("draws a bar", () => {
    expect(bar(0, 10, 10)).toBe("[          ]   0%");
    expect(bar(5, 10, 10)).toBe("[█████     ]  50%");
    expect(bar(10, 10, 10)).toBe("[██████████] 100%");
  });
  it("sync --wait: redraws one line on a terminal, with read, mapped and written", () => {
    let out = "";
    let t = 0;
    const p = syncProgress({
      json: false,
      tty: true,
      write: (s) => {
        out += s;
      },
      now: () => t,
    });
    p({ phase: "reading", read: 0, mappedLag: 0, sinkLag: 0, event: ev({ type: "PROGRESS", runId: "r", table: "deals", counts: { read: 600 } }) });
    p({ phase: "reading", read: 0, mappedLag: 0, sinkLag: 0, event: ev({ type: "PROGRESS", runId: "r", stage: "mapper", counts: { mapped: 400, dlq: 0 } }) });
    p({ phase: "reading", read: 1000, mappedLag: 0, sinkLag: 0, event: ev({ type: "RUN_COMPLETED", runId: "r", counts: { read: 1000, deleted: 0 } }) });
    t = 2000;
    p({ phase: "mapping", read: 1000, mappedLag: 250, sinkLag: 0 });
    p({ phase: "writing", read: 1000, mappedLag: 0, sinkLag: 100 });
    p({ phase: "done", read: 1000, mappedLag: 0, sinkLag: 0 });
    const frames = out.split("\r\x1b[2K").filter(Boolean);
    expect(frames[0]).toMatch(/^reading · read 600 · mapped 0 · written … · 0 ms · table deals$/);
    expect(frames[1]).toMatch(/^reading · read 600 · mapped 400 · written …/);
    expect(frames.find((f) => f.startsWith("mapping"))).toMatch(/^mapping \[.*\] {2}75% · read 1,000 · mapped 750 · written … \/ 1,000 · 2 s$/);
    expect(frames.find((f) => f.startsWith("writing"))).toMatch(/^writing \[.*\] {2}90% · read 1,000 · mapped 1,000 · written 900 \/ 1,000/);
    expect(out.endsWith("done    [████████████████████████] 100% · read 1,000 · mapped 1,000 · written 1,000 / 1,000 · 2 s\n")).toBe(true);
  });
  it("plain lines off a terminal (on phase changes and every few seconds), nothing with --json", () => {
    const lines: string[] = [];
    let t = 0;
    const r = createRenderer({ tty: false, json: false, write: (s) => lines.push(s), plainEveryMs: 5000, now: () => t });
    r.update({ phase: "reading", read: 1, mapped: 0, written: null, total: null });
    t = 1000;
    r.update({ phase: "reading", read: 2, mapped: 0, written: null, total: null });
    t = 6000;
    r.update({ phase: "reading", read: 3, mapped: 0, written: null, total: null });
    t = 6500;
    r.update({ phase: "mapping", read: 3, mapped: 1, written: null, total: 3 });
    expect(lines.map((l) => l.slice(0, 20))).toEqual(["reading · read 1 · m", "reading · read 3 · m", "mapping · read 3 · m"]);
    expect(lines.every((l) => !l.includes("\r") && l.endsWith("\n"))).toBe(true);
    const silent: string[] = [];
    const j = createRenderer({ tty: true, json: true, write: (s) => silent.push(s) });
    j.update({ phase: "done", read: 1, mapped: 1, written: 1, total: 1 });
    expect(silent).toEqual([]);
  });
});

describe("lag report", () => {
  it("prints groups, partitions with the oldest waiting record, and tables with staleness", () => {
    const report: LagReport = {
      at: "2026-05-04T12:00:00.000Z",
      groups: [
        {
          group: "q-sink",
          role: "sink",
          state: "Empty",
          members: 0,
          clients: [],
          lag: 1234,
          oldestUnprocessedAt: "2026-05-04T11:58:00.000Z",
          oldestUnprocessedAgeMs: 120_000,
        },
      ],
      partitions: [
        {
          group: "q-sink",
          role: "sink",
          topic: "q.mapped.crm.deals",
          connector: "crm",
          tenant: null,
          table: "deals",
          partition: 0,
          committed: 10,
          low: 0,
          end: 1244,
          lag: 1234,
          oldestUnprocessedAt: "2026-05-04T11:58:00.000Z",
          oldestUnprocessedAgeMs: 120_000,
        },
      ],
      tables: [
        {
          connector: "crm",
          tenant: null,
          table: "deals",
          relation: "qobra_data.crm__deals",
          lastSuccess: { runId: "r", startedAt: "2026-05-04T06:00:00.000Z", endedAt: "2026-05-04T06:01:00.000Z", full: true, read: 5 },
          stalenessMs: 6 * 3600_000,
          lastRun: { runId: "r", status: "completed", startedAt: "2026-05-04T06:00:00.000Z", error: null },
          sinkRows: 10_000,
          lastSyncedAt: "2026-05-04T06:01:00.000Z",
        },
      ],
    };
    const text = formatLagReport(report);
    expect(text).toContain("q-sink  sink        0  Empty  1,234  2 m 00 s");
    expect(text).toMatch(/q-sink {2}q\.mapped\.crm\.deals\s+0\s+10\s+1,244\s+1,234\s+2 m 00 s \(2026-05-04T11:58:00\.000Z\)/);
    expect(text).toMatch(/crm\s+deals\s+2026-05-04T06:00:00\.000Z \(full\)\s+6 h 00 m\s+completed\s+10,000\s+2026-05-04T06:01:00\.000Z/);
  });
});
