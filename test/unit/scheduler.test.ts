import { afterEach, describe, expect, it, vi } from "vitest";
import schedule from "node-schedule";
import { cronRules } from "../../scheduler/scheduler.ts";
import type { Config } from "../../app/config.ts";
import { refreshHours } from "../../producers/connectors/postgres/schedule.ts";

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
    } as unknown as Config["connectors"][number];
    const [r] = cronRules(connector);
    expect(r).toEqual({ rule: "0 9 * * *", tz: "Europe/Paris", full: true });
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
  it("has no schedule when disabled or absent", () => {
    expect(cronRules({ schedule: undefined } as unknown as Config["connectors"][number])).toEqual([]);
  });
});
