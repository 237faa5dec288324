/**
 * A Salesforce connector's schedule: a nightly full refresh at a local time, and incremental syncs
 * every few hours counted from it (02:00 UTC and every 2 hours by default, also for a connector
 * without a schedule block); their cron rules, and the page's sentence about them. The scheduler
 * and the page reach it through the plugin (index.ts), never by name.
 */
import { z } from "zod";
import { TIME_ZONE } from "../../../lib/config-common.ts";
import type { CronRule, ScheduleFormField, ScheduleSummaryInput } from "../../connector.ts";

const HH_MM = /^([01]\d|2[0-3]):([0-5]\d)$/;

export const SalesforceSchedule = z.strictObject({
  fullAt: z
    .string()
    .regex(HH_MM, { error: "must be a local time HH:MM, such as 02:00" })
    .default("02:00")
    .describe("Local time (in timezone) of the nightly full refresh."),
  incrementalEveryHours: z
    .number()
    .int()
    .min(1)
    .max(24)
    .default(2)
    .describe("Hours between incremental syncs, counted from fullAt (24 = none but the nightly full)."),
  timezone: TIME_ZONE.default("UTC").describe("The zone fullAt is local to."),
  enabled: z.boolean().default(true).describe("false keeps the settings but arms no sync (manual syncs only)."),
});
export type SalesforceSchedule = z.infer<typeof SalesforceSchedule>;

/** A connector without a schedule block: a full refresh at 02:00 UTC, incrementals every 2 hours between. */
export const defaultSalesforceSchedule: SalesforceSchedule = SalesforceSchedule.parse({});

/** The page's edit form: the time of the nightly full refresh, and the hours between incrementals. */
export const salesforceScheduleForm: ScheduleFormField[] = [
  { kind: "time", name: "fullAt", label: "Nightly full refresh at" },
  { kind: "number", name: "incrementalEveryHours", label: "Incremental every", min: 1, max: 24, suffix: "hours (24 = none)" },
];

/**
 * The cron rules of a Salesforce schedule: the nightly full at fullAt, and an incremental every
 * incrementalEveryHours hours counted from it (the full run's own hour excluded), at the same minute.
 */
export function salesforceCronRules(s: SalesforceSchedule): CronRule[] {
  if (!s.enabled) return [];
  const [h, m] = s.fullAt.split(":").map(Number) as [number, number];
  const rules: CronRule[] = [{ rule: `${m} ${h} * * *`, tz: s.timezone, kind: "full" }];
  const hours: number[] = [];
  for (let k = h + s.incrementalEveryHours; k < h + 24; k += s.incrementalEveryHours) hours.push(k % 24);
  if (hours.length > 0) rules.push({ rule: `${m} ${hours.sort((a, b) => a - b).join(",")} * * *`, tz: s.timezone, kind: "incremental" });
  return rules;
}

/** What an enabled schedule does, for people. */
export function describeSalesforceSchedule(_s: SalesforceSchedule, { times, timezone }: ScheduleSummaryInput): string {
  const inc = times.filter((t) => t.kind !== "full");
  return `full refresh at ${times
    .filter((t) => t.kind === "full")
    .map((t) => t.at)
    .join(
      ", ",
    )}${inc.length > 0 ? `, incremental ${inc.length} time${inc.length > 1 ? "s" : ""} a day (${inc.map((t) => t.at).join(", ")})` : ""} (${timezone})`;
}
