/** Schedule edits kept in the sink database, and the watcher the scheduler role uses to re-arm. */
import { afterAll, describe, expect, it } from "vitest";
import { ScheduleStore, scheduleView, watchScheduleOverrides } from "../../scheduler/schedules.ts";
import type { Config } from "../../app/config.ts";
import { opsFixture, sinkQuery } from "../../support/ops.ts";

const stops: Array<() => Promise<void>> = [];
afterAll(async () => {
  for (const s of stops) await s();
});

describe("schedule edits", () => {
  it("are stored per connector and reach the scheduler's callback as an effective config", async () => {
    const fx = await opsFixture("sch", 1);
    fx.config.connectors[0]!.schedule = { timesPerDay: 4, timezone: "UTC", enabled: true };
    const store = new ScheduleStore(fx.config);
    stops.push(() => store.close());
    const seen: Config[] = [];
    const stop = watchScheduleOverrides(fx.config, (c) => seen.push(c), { intervalMs: 100, store });
    stops.push(stop);
    await new Promise((r) => setTimeout(r, 300));
    expect(seen).toEqual([]); // nothing stored: the config file's schedules stay armed
    await store.save("crm", { timesPerDay: 2, hours: [7, 19], timezone: "Europe/Paris", enabled: true }, "test");
    await expect.poll(() => seen.length, { timeout: 5000 }).toBe(1);
    expect(scheduleView(seen[0]!.connectors[0]!).times.map((t) => t.at)).toEqual(["07:00", "19:00"]);
    expect(await store.list()).toEqual([
      expect.objectContaining({ connector: "crm", updatedBy: "test", schedule: { timesPerDay: 2, hours: [7, 19], timezone: "Europe/Paris", enabled: true } }),
    ]);
    await store.remove("crm");
    await expect.poll(() => seen.length, { timeout: 5000 }).toBe(2);
    expect(seen[1]!.connectors[0]!.schedule).toEqual({ timesPerDay: 4, timezone: "UTC", enabled: true });
    const rows = await sinkQuery(`SELECT count(*)::int AS n FROM "${fx.sinkSchema}"."_qobra_sync_settings"`);
    expect(rows).toEqual([{ n: 0 }]);
  });
});
