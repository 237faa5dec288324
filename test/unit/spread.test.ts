/**
 * Spread schedules (scheduler/spread.ts): each connector's runs start a stable offset after their
 * set times (a hash of its pipeline id modulo scheduler.spreadMinutes, capped by the gap between the
 * rule's minutes); the scheduler publishes at the shifted instants, and the settings page and
 * `qobra-sync schedule` list exactly those.
 */
import { afterEach, describe, expect, it, vi } from "vitest";
import type { Config } from "../../app/config.ts";
import { armedRules, startScheduler } from "../../scheduler/scheduler.ts";
import { fireTimes } from "../../scheduler/fire-times.ts";
import { listSchedules, scheduleView } from "../../scheduler/schedules.ts";
import { DEFAULT_SPREAD_MINUTES, describeOffset, spreadOffsetSeconds, spreadWindowSeconds } from "../../scheduler/spread.ts";
import type { SyncRequest } from "../../schemas/index.ts";
import { scheduleConfig } from "../../support/schedule-config.ts";

const PG_DEFAULT = "0 0,6,12,18 * * *";

const configOf = (spreadMinutes?: number, extra = ""): Config =>
  scheduleConfig({ spreadMinutes, extra, sfSchedule: '{ fullAt: "01:30", timezone: Europe/Paris }', hsSchedule: "{ incrementalEveryMinutes: 15 }" });
const byId = (c: Config, id: string) => c.connectors.find((x) => x.id === id)!;
/** 500 connectors across 100 tenants, as the tenants bench names them. */
const ids = Array.from({ length: 500 }, (_, i) => `t${String(i % 100).padStart(3, "0")}.c${String(Math.floor(i / 100)).padStart(2, "0")}`);

describe("spread offsets", () => {
  it("are stable: the same connector gets the same offset in every process and after restarts", () => {
    expect(spreadOffsetSeconds("t001.c01", PG_DEFAULT, 30)).toBe(spreadOffsetSeconds("t001.c01", PG_DEFAULT, 30));
    // A fixed hash (SHA-256 of the pipeline id), not a per-process seed: these values never change.
    expect(ids.slice(0, 3).map((id) => spreadOffsetSeconds(id, PG_DEFAULT, 30))).toEqual(PINNED);
    expect(spreadOffsetSeconds("t001.c01", PG_DEFAULT, 30)).not.toBe(spreadOffsetSeconds("t002.c01", PG_DEFAULT, 30));
    expect(DEFAULT_SPREAD_MINUTES).toBe(30);
    expect(configOf().scheduler.spreadMinutes).toBe(30);
    expect(() => configOf(60)).toThrow(/scheduler\.spreadMinutes/);
  });

  it("spread 500 connectors evenly over the window", () => {
    const offsets = ids.map((id) => spreadOffsetSeconds(id, PG_DEFAULT, 30));
    expect(Math.min(...offsets)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...offsets)).toBeLessThan(1800);
    const perSecond = new Map<number, number>();
    const perMinute = new Map<number, number>();
    for (const o of offsets) {
      perSecond.set(o, (perSecond.get(o) ?? 0) + 1);
      perMinute.set(Math.floor(o / 60), (perMinute.get(Math.floor(o / 60)) ?? 0) + 1);
    }
    expect(Math.max(...perSecond.values())).toBeLessThanOrEqual(4);
    expect(perMinute.size).toBe(30);
    expect(Math.max(...perMinute.values())).toBeLessThanOrEqual(3 * (500 / 30));
    // both halves of the window are used (not everything early)
    expect(offsets.filter((o) => o >= 900).length).toBeGreaterThan(200);
  });

  it("are capped by the smallest gap between the rule's minutes, so a rule keeps its period", () => {
    expect(spreadWindowSeconds(PG_DEFAULT, 30)).toBe(1800);
    expect(spreadWindowSeconds("30 2 * * *", 59)).toBe(3540);
    expect(spreadWindowSeconds("*/15 * * * *", 30)).toBe(900);
    expect(spreadWindowSeconds("*/5 * * * *", 30)).toBe(300);
    expect(spreadWindowSeconds("0,50 * * * *", 30)).toBe(600); // cyclic: 50 → 60 is the smallest gap
    expect(spreadWindowSeconds("10,40 * * * *", 59)).toBe(1800);
    const every15 = ids.map((id) => spreadOffsetSeconds(id, "*/15 * * * *", 30));
    expect(Math.max(...every15)).toBeLessThan(900);
    expect(Math.max(...every15)).toBeGreaterThan(800);
    // the listed runs of an every-15-minutes schedule stay 15 minutes apart
    const c = configOf(30);
    const next = scheduleView(byId(c, "hs"), { spreadMinutes: 30 }, Date.parse("2027-06-01T05:00:00Z")).jobs[0]!.next.map((t) => Date.parse(t));
    expect(next).toHaveLength(96);
    for (let i = 1; i < next.length; i++) expect(next[i]! - next[i - 1]!).toBe(900_000);
  });

  it("are 0 with spreadMinutes 0: runs at the set times exactly", () => {
    expect(ids.every((id) => spreadOffsetSeconds(id, PG_DEFAULT, 0) === 0)).toBe(true);
    const c = configOf(0);
    expect(armedRules(byId(c, "crm"), 0)).toEqual([{ rule: PG_DEFAULT, tz: "UTC", kind: "full", offsetSeconds: 0 }]);
    const view = scheduleView(byId(c, "crm"), { spreadMinutes: 0 });
    expect(view.times.map((t) => t.at)).toEqual(["00:00", "06:00", "12:00", "18:00"]);
    expect(view.summary).toBe("4 full refreshes a day at 00:00, 06:00, 12:00, 18:00 (UTC)");
  });

  it("says an offset for people", () => {
    expect(describeOffset(1043)).toBe("17 min 23 s");
    expect(describeOffset(45)).toBe("45 s");
    expect(describeOffset(300)).toBe("5 min");
  });
});

describe("spread schedules", () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it("the views list the shifted times, and say that the runs are spread", () => {
    const c = configOf();
    const crm = byId(c, "crm");
    const off = spreadOffsetSeconds("crm", PG_DEFAULT, 30);
    expect(off).toBeGreaterThan(60); // a real shift (the test's point), not one within the minute
    const hhmm = (h: number) => {
      const m = h * 60 + Math.floor(off / 60);
      return `${String(Math.floor(m / 60)).padStart(2, "0")}:${String(m % 60).padStart(2, "0")}`;
    };
    const view = scheduleView(crm, { spreadMinutes: 30 }, Date.parse("2027-06-01T05:00:00Z"));
    expect(view.times.map((t) => t.at)).toEqual([0, 6, 12, 18].map(hhmm));
    expect(view.summary).toBe(
      `4 full refreshes a day at ${[0, 6, 12, 18].map(hhmm).join(", ")} (UTC); spread: each run starts ${describeOffset(off)} after its set time (scheduler.spreadMinutes)`,
    );
    const listing = listSchedules(c, [], Date.parse("2027-06-01T05:00:00Z"));
    const at = (iso: string) => new Date(Date.parse(iso) + off * 1000).toISOString().replace(".000Z", "+00:00");
    expect(listing[0]!.jobs).toEqual([
      { kind: "full", next: [at("2027-06-01T06:00:00Z"), at("2027-06-01T12:00:00Z"), at("2027-06-01T18:00:00Z"), at("2027-06-02T00:00:00Z")] },
    ]);
    // A page edit of the hours keeps the connector's offset.
    const edited = listSchedules(c, [{ connector: "crm", schedule: { hours: [7, 19] }, updatedAt: "", updatedBy: "web" }], Date.parse("2027-06-01T05:00:00Z"));
    expect(edited[0]!.jobs[0]!.next).toEqual([at("2027-06-01T07:00:00Z"), at("2027-06-01T19:00:00Z")]);
    expect(
      scheduleView({ ...crm, schedule: { timesPerDay: 2, hours: [7, 19], timezone: "UTC", enabled: true } } as typeof crm, { spreadMinutes: 30 }).times.map(
        (t) => t.at,
      ),
    ).toEqual([7, 19].map(hhmm));
    // HubSpot: the incremental's and the reconciliation's windows differ (15 min, 30 min): each kind says its own offset.
    const hs = scheduleView(byId(c, "hs"), { spreadMinutes: 30 });
    expect(hs.summary).toMatch(/^incremental every 15 minutes \(96 a day\), reconciliation at 03:00; full syncs are manual; spread: /);
  });

  it("an offset past midnight shows as the next day's time", () => {
    const c = configOf(59, "");
    const late = { ...byId(c, "sf"), id: "late", schedule: { fullAt: "23:45", incrementalEveryHours: 24, timezone: "UTC", enabled: true } } as ReturnType<
      typeof byId
    >;
    const id = ids.find((x) => spreadOffsetSeconds(x, "45 23 * * *", 59) >= 20 * 60)!;
    const off = spreadOffsetSeconds(id, "45 23 * * *", 59);
    const m = (23 * 60 + 45 + Math.floor(off / 60)) % 1440;
    const view = scheduleView({ ...late, id }, { spreadMinutes: 59 });
    expect(view.times).toEqual([{ at: `${String(Math.floor(m / 60)).padStart(2, "0")}:${String(m % 60).padStart(2, "0")}`, kind: "full" }]);
  });

  it("the armed job publishes at the shifted time, with requestedAt when it is published", async () => {
    vi.useFakeTimers({ toFake: ["Date", "setTimeout", "clearTimeout"] });
    vi.setSystemTime(new Date("2027-06-01T05:59:00Z"));
    const off = spreadOffsetSeconds("crm", PG_DEFAULT, 30);
    const due = Date.parse("2027-06-01T06:00:00Z") + off * 1000;
    const published: SyncRequest[] = [];
    const s = startScheduler(configOf(30), undefined as never, undefined as never, undefined as never, {
      publish: async (r) => {
        published.push(r);
      },
    });
    try {
      await vi.advanceTimersByTimeAsync(due - Date.now() - 1000);
      expect(published.filter((r) => r.connector === "crm")).toEqual([]);
      await vi.advanceTimersByTimeAsync(1000);
      const crm = published.filter((r) => r.connector === "crm");
      expect(crm).toHaveLength(1);
      expect(Number(crm[0]!.requestedAt)).toBe(due);
    } finally {
      s.stop();
    }
  });

  it("a scheduler re-armed after a fire time and before its shifted run still publishes it; stop() drops what is pending", async () => {
    vi.useFakeTimers({ toFake: ["Date", "setTimeout", "clearTimeout"] });
    const off = spreadOffsetSeconds("crm", PG_DEFAULT, 30);
    const due = Date.parse("2027-06-01T06:00:00Z") + off * 1000;
    vi.setSystemTime(new Date("2027-06-01T05:59:00Z"));
    const published: SyncRequest[] = [];
    const publish = async (r: SyncRequest) => {
      published.push(r);
    };
    const first = startScheduler(configOf(30), undefined as never, undefined as never, undefined as never, { publish });
    await vi.advanceTimersByTimeAsync(60_000 + (off * 1000) / 2); // 06:00 fired; its run is pending
    first.stop();
    await vi.advanceTimersByTimeAsync(off * 1000);
    expect(published.filter((r) => r.connector === "crm")).toEqual([]); // stopped: nothing published
    // re-armed (a page edit, a restart) between 06:00 and 06:00 + offset: the run is still due at its time
    vi.setSystemTime(new Date("2027-06-01T06:00:00Z").getTime() + (off * 1000) / 2);
    const second = startScheduler(configOf(30), undefined as never, undefined as never, undefined as never, { publish });
    try {
      await vi.advanceTimersByTimeAsync(due - Date.now() - 1000);
      expect(published.filter((r) => r.connector === "crm")).toEqual([]);
      await vi.advanceTimersByTimeAsync(1000);
      expect(published.filter((r) => r.connector === "crm").map((r) => Number(r.requestedAt))).toEqual([due]);
    } finally {
      second.stop();
    }
  });

  it.each([
    ["a summer day", "2027-06-01T00:10:00Z"],
    ["the spring change in Paris", "2027-03-27T20:10:00Z"],
    ["the autumn change in Paris", "2027-10-30T20:10:00Z"],
  ])("publishes at exactly the instants `qobra-sync schedule` lists, for every source (%s)", async (_day, start) => {
    vi.useFakeTimers({ toFake: ["Date", "setTimeout", "clearTimeout"] });
    const now = Date.parse(start);
    vi.setSystemTime(new Date(now));
    const c = configOf(
      30,
      `  - id: paris
    type: postgres
    connection: { url: "postgres://r@127.0.0.1/crm" }
    schedule: { hours: [2], timezone: Europe/Paris }
    tables: [{ name: deals, source: public.deals, idColumn: id, nameColumn: title }]`,
    );
    const listing = listSchedules(c, [], now);
    const published: Array<{ connector: string; at: number; kind: string }> = [];
    const s = startScheduler(c, undefined as never, undefined as never, undefined as never, {
      publish: async (r) => {
        published.push({ connector: r.connector, at: Date.now(), kind: r.reconcile ? "reconcile" : r.full ? "full" : "incremental" });
      },
    });
    try {
      await vi.advanceTimersByTimeAsync(24 * 3_600_000);
    } finally {
      s.stop();
    }
    for (const l of listing) {
      const listed = l.jobs.flatMap((j) => j.next.map((n) => `${j.kind} ${Date.parse(n)}`)).sort();
      const fired = published
        .filter((p) => p.connector === l.connector)
        .map((p) => `${p.kind} ${p.at}`)
        .sort();
      expect(fired, l.connector).toEqual(listed);
      expect(fired.length, l.connector).toBeGreaterThan(0);
    }
    // and the listed instants are the rules' fire times plus each connector's offset
    const crmOff = spreadOffsetSeconds("crm", PG_DEFAULT, 30) * 1000;
    expect(listing[0]!.jobs[0]!.next.map((n) => Date.parse(n))).toEqual(fireTimes(PG_DEFAULT, "UTC", now - crmOff).map((t) => t + crmOff));
  });
});

/** spreadOffsetSeconds of the first three ids for the PostgreSQL default rule and 30 minutes (a SHA-256 of the id). */
const PINNED = [807, 527, 1292];
