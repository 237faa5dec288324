/**
 * The scheduler's rules: each source's default schedule (a connector without a schedule block),
 * `enabled: false`, the kind of each job and the request it publishes, and the fire times the
 * scheduler and `qobra-sync schedule` agree on, across daylight-saving changes.
 */
import { createRequire } from "node:module";
import { afterEach, describe, expect, it, vi } from "vitest";
import schedule from "node-schedule";
import type { Config } from "../../app/config.ts";
import { cronRules, connectorSchedule, scheduledRequest, startScheduler } from "../../scheduler/scheduler.ts";
import { fireTimes, isoInZone } from "../../scheduler/fire-times.ts";
import { listSchedules, scheduleView } from "../../scheduler/schedules.ts";
import { refreshHours } from "../../producers/connectors/postgres/schedule.ts";
import type { SyncRequest } from "../../schemas/index.ts";
import { scheduleConfig } from "../../support/schedule-config.ts";

type Connector = Config["connectors"][number];

/**
 * A config with one connector of each source and no schedule block, plus `extra` connectors (YAML);
 * `spreadMinutes` sets scheduler.spreadMinutes (its default otherwise).
 */
const configOf = (extra = "", spreadMinutes?: number): Config => scheduleConfig({ extra, spreadMinutes });
const byId = (c: Config, id: string) => c.connectors.find((x) => x.id === id) as Connector;

describe("schedules", () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it("spreads N daily refreshes evenly, or uses the given hours", () => {
    expect(refreshHours({ timesPerDay: 4, timezone: "UTC", enabled: true })).toEqual([0, 6, 12, 18]);
    expect(refreshHours({ timesPerDay: 3, timezone: "UTC", enabled: true })).toEqual([0, 8, 16]);
    expect(refreshHours({ timesPerDay: 4, hours: [18, 7, 7], timezone: "UTC", enabled: true })).toEqual([7, 18]);
  });

  it("fires at the same local hour across a DST change", () => {
    const connector = {
      type: "postgres",
      schedule: { timesPerDay: 1, hours: [9], timezone: "Europe/Paris", enabled: true },
    } as unknown as Connector;
    const [r] = cronRules(connector);
    expect(r).toEqual({ rule: "0 9 * * *", tz: "Europe/Paris", kind: "full" });
    // Paris moves to summer time on 2027-03-28: 09:00 local is 08:00Z the day before, 07:00Z that day.
    vi.useFakeTimers({ toFake: ["Date"] });
    vi.setSystemTime(new Date("2027-03-27T06:00:00Z"));
    const job = schedule.scheduleJob({ rule: r!.rule, tz: r!.tz }, () => {});
    try {
      expect(job.nextInvocation()!.toISOString()).toBe("2027-03-27T08:00:00.000Z");
      vi.setSystemTime(new Date("2027-03-27T09:00:00Z"));
      job.reschedule({ rule: r!.rule, tz: r!.tz });
      expect(job.nextInvocation()!.toISOString()).toBe("2027-03-28T07:00:00.000Z");
    } finally {
      job.cancel();
    }
  });

  it("gives a connector without a schedule block its source's default", () => {
    const c = configOf();
    expect(cronRules(byId(c, "crm"))).toEqual([{ rule: "0 0,6,12,18 * * *", tz: "UTC", kind: "full" }]);
    expect(cronRules(byId(c, "sf"))).toEqual([
      { rule: "0 2 * * *", tz: "UTC", kind: "full" },
      { rule: "0 0,4,6,8,10,12,14,16,18,20,22 * * *", tz: "UTC", kind: "incremental" },
    ]);
    expect(cronRules(byId(c, "hs"))).toEqual([
      { rule: "0 */2 * * *", tz: "UTC", kind: "incremental" },
      { rule: "0 3 * * *", tz: "UTC", kind: "reconcile" },
    ]);
    for (const id of ["crm", "sf", "hs"]) expect(connectorSchedule(byId(c, id)).origin).toBe("default");
  });

  it("arms nothing for `enabled: false`, and fills a partial block from the source's defaults", () => {
    const c = configOf(`
  - id: off
    type: salesforce
    clientId: a
    clientSecret: b
    schedule: { enabled: false }
    tables: [{ name: opportunities, object: Opportunity }]
  - id: paris
    type: hubspot
    clientId: a
    clientSecret: b
    schedule: { timezone: Europe/Paris, reconcileAt: false }
    tables: [{ name: deals, object: deals }]`);
    expect(cronRules(byId(c, "off"))).toEqual([]);
    expect(scheduleView(byId(c, "off"))).toMatchObject({ origin: "config", enabled: false, jobs: [], summary: "schedule disabled: manual syncs only" });
    expect(cronRules(byId(c, "paris"))).toEqual([{ rule: "0 */2 * * *", tz: "Europe/Paris", kind: "incremental" }]);
    expect(connectorSchedule(byId(c, "paris")).origin).toBe("config");
  });

  it("refuses a bad reconciliation time, naming the key", () => {
    expect(() =>
      configOf(`
  - id: bad
    type: hubspot
    clientId: a
    clientSecret: b
    schedule: { reconcileAt: "25:00" }
    tables: [{ name: deals, object: deals }]`),
    ).toThrow(/connectors\[3\]\.schedule\.reconcileAt: must be a local time HH:MM/);
  });

  it("publishes requests of the job's kind", () => {
    expect(scheduledRequest("crm", "full")).toMatchObject({ connector: "crm", full: true, reconcile: false, requestedBy: "scheduler" });
    expect(scheduledRequest("sf", "incremental")).toMatchObject({ full: false, reconcile: false });
    expect(scheduledRequest("hs", "reconcile")).toMatchObject({ full: false, reconcile: true });
  });

  it("lists every job's fire times over the next 24 hours, with origin and zone", () => {
    const c = configOf("", 0); // the set times exactly (spread: spread.test.ts)
    const now = Date.parse("2027-06-01T05:00:00Z");
    const listing = listSchedules(c, [{ connector: "sf", schedule: { fullAt: "01:30", timezone: "Europe/Paris" }, updatedAt: "", updatedBy: "web" }], now);
    expect(listing.map((s) => [s.connector, s.origin, s.timezone])).toEqual([
      ["crm", "default", "UTC"],
      ["sf", "edited", "Europe/Paris"],
      ["hs", "default", "UTC"],
    ]);
    expect(listing[0]!.jobs).toEqual([
      { kind: "full", next: ["2027-06-01T06:00:00+00:00", "2027-06-01T12:00:00+00:00", "2027-06-01T18:00:00+00:00", "2027-06-02T00:00:00+00:00"] },
    ]);
    const sf = listing[1]!.jobs;
    expect(sf.map((j) => j.kind)).toEqual(["full", "incremental"]);
    expect(sf[0]!.next).toEqual(["2027-06-02T01:30:00+02:00"]);
    expect(sf[1]!.next).toHaveLength(11);
    expect(sf[1]!.next[0]).toBe("2027-06-01T07:30:00+02:00");
    const hs = listing[2]!.jobs;
    expect(hs).toEqual([
      { kind: "incremental", next: expect.any(Array) },
      { kind: "reconcile", next: ["2027-06-02T03:00:00+00:00"] },
    ]);
    expect(hs[0]!.next).toHaveLength(12);
    // a stored edit that no longer validates is ignored, as the scheduler ignores it
    expect(listSchedules(c, [{ connector: "hs", schedule: { incrementalEveryMinutes: 7 }, updatedAt: "", updatedBy: "web" }], now)[2]!.origin).toBe("default");
  });

  it("computes real instants on a DST day in Europe/Paris", () => {
    // 2027-03-28: 02:00 CET becomes 03:00 CEST. A daily 02:30 fires once, an hour later (03:30 CEST).
    expect(fireTimes("30 2 * * *", "Europe/Paris", Date.parse("2027-03-27T12:00:00Z")).map((t) => isoInZone(t, "Europe/Paris"))).toEqual([
      "2027-03-28T03:30:00+02:00",
    ]);
    // Every 2 hours from midnight: 00:00 CET, then 02:00 is moved to 03:00 CEST, then 04:00 …
    const spring = fireTimes("0 */2 * * *", "Europe/Paris", Date.parse("2027-03-27T22:30:00Z")).map((t) => isoInZone(t, "Europe/Paris"));
    expect(spring.slice(0, 4)).toEqual(["2027-03-28T00:00:00+01:00", "2027-03-28T03:00:00+02:00", "2027-03-28T04:00:00+02:00", "2027-03-28T06:00:00+02:00"]);
    // 2027-10-31: 03:00 CEST becomes 02:00 CET. A daily 02:30 fires once (its first occurrence);
    // an every-hour rule fires in both 02:00 hours.
    expect(fireTimes("30 2 * * *", "Europe/Paris", Date.parse("2027-10-30T12:00:00Z")).map((t) => isoInZone(t, "Europe/Paris"))).toEqual([
      "2027-10-31T02:30:00+02:00",
    ]);
    const autumn = fireTimes("0 * * * *", "Europe/Paris", Date.parse("2027-10-30T23:30:00Z"), 4 * 3_600_000).map((t) => isoInZone(t, "Europe/Paris"));
    expect(autumn).toEqual(["2027-10-31T02:00:00+02:00", "2027-10-31T02:00:00+01:00", "2027-10-31T03:00:00+01:00", "2027-10-31T04:00:00+01:00"]);
  });

  it("agrees with node-schedule's own cron parser, around both changes and in other zones", () => {
    const require = createRequire(import.meta.url);
    // node-schedule's parser (a dependency of node-schedule): what the scheduler really arms.
    const parser = require("cron-parser") as {
      parseExpression(rule: string, o: { currentDate: Date; tz: string }): { next(): { toDate(): Date } };
    };
    const rules = ["0 0,6,12,18 * * *", "30 2 * * *", "0 */2 * * *", "0 */1 * * *", "*/20 * * * *", "15 1-3 * * *", "0 0 * * *"];
    // Each zone around its own changes, and one without any (zones changing at midnight: see fire-times.ts).
    const cases: Array<[string, string]> = [
      ["Europe/Paris", "2027-03-27T20:10:00Z"],
      ["Europe/Paris", "2027-10-30T22:50:00Z"],
      ["America/New_York", "2027-03-14T04:00:00Z"],
      ["America/New_York", "2027-11-07T03:00:00Z"],
      ["Asia/Kathmandu", "2027-06-01T00:00:00Z"],
    ];
    for (const [tz, start] of cases)
      for (const rule of rules) {
        const from = Date.parse(start);
        const ours = fireTimes(rule, tz, from);
        const it = parser.parseExpression(rule, { currentDate: new Date(from), tz });
        const theirs: number[] = [];
        for (let t = it.next().toDate().getTime(); t <= from + 86_400_000; t = it.next().toDate().getTime()) theirs.push(t);
        expect(
          ours.map((t) => new Date(t).toISOString()),
          `${rule} in ${tz} from ${start}`,
        ).toEqual(theirs.map((t) => new Date(t).toISOString()));
      }
  });

  it("fires each source's default jobs through node-schedule and publishes their kinds", async () => {
    vi.useFakeTimers({ toFake: ["Date", "setTimeout", "clearTimeout"] });
    vi.setSystemTime(new Date("2027-06-01T00:30:00Z"));
    const published: SyncRequest[] = [];
    const s = startScheduler(configOf(), undefined as never, undefined as never, undefined as never, {
      publish: async (r) => {
        published.push(r);
      },
    });
    try {
      await vi.advanceTimersByTimeAsync(24 * 3_600_000);
    } finally {
      s.stop();
    }
    const kinds = (id: string) => {
      const n: Record<string, number> = {};
      for (const r of published.filter((x) => x.connector === id)) {
        const k = r.reconcile ? "reconcile" : r.full ? "full" : "incremental";
        n[k] = (n[k] ?? 0) + 1;
      }
      return n;
    };
    expect(kinds("crm")).toEqual({ full: 4 });
    expect(kinds("sf")).toEqual({ full: 1, incremental: 11 });
    expect(kinds("hs")).toEqual({ incremental: 12, reconcile: 1 });
    expect(published.every((r) => r.requestedBy === "scheduler")).toBe(true);
  });
});
