/**
 * A PostgreSQL connector's schedule: full refreshes a number of times a day (at given hours, or
 * spread evenly from midnight; four a day by default, also for a connector without a schedule
 * block), their cron rule, the page's sentence about them, and how a page edit's count and hours
 * are reconciled. The scheduler and the page reach it through the plugin (index.ts), never by name.
 */
import { z } from "zod";
import { TIME_ZONE } from "../../../lib/config-common.ts";
import { ConfigError } from "../../../lib/errors.ts";
import type { CronRule, ScheduleFormField, ScheduleSummaryInput } from "../../connector.ts";

const HOUR = z.number().int().min(0).max(23);
export const PostgresSchedule = z.strictObject({
  timesPerDay: z.number().int().min(1).max(24).default(4).describe("Full refreshes a day, spread evenly from midnight unless hours is given."),
  hours: z.array(HOUR).optional().describe("The hours (0-23, local to timezone) of the refreshes; overrides timesPerDay's spacing."),
  timezone: TIME_ZONE.default("UTC").describe("The zone the hours are local to."),
  enabled: z.boolean().default(true).describe("false keeps the settings but arms no sync (manual syncs only)."),
});
export type PostgresSchedule = z.infer<typeof PostgresSchedule>;

/** A connector without a schedule block: four full refreshes a day (00:00, 06:00, 12:00, 18:00 UTC). */
export const defaultPostgresSchedule: PostgresSchedule = PostgresSchedule.parse({});

/** The page's edit form: how many refreshes a day, and the hour of each (the count follows the hours). */
export const postgresScheduleForm: ScheduleFormField[] = [
  { kind: "hours", name: "hours", label: "at (hours)", count: { name: "timesPerDay", label: "Refreshes per day", min: 1, max: 24 } },
];

/** The hours of the day (local to the schedule's zone) of a PostgreSQL connector's refreshes. */
export function refreshHours(s: PostgresSchedule): number[] {
  if (s.hours && s.hours.length > 0) return [...new Set(s.hours)].sort((a, b) => a - b);
  const step = 24 / s.timesPerDay;
  return Array.from({ length: s.timesPerDay }, (_, i) => Math.floor(i * step));
}

/** One rule: a full refresh at each of the hours, on the hour. */
export function postgresCronRules(s: PostgresSchedule): CronRule[] {
  if (!s.enabled) return [];
  return [{ rule: `0 ${refreshHours(s).join(",")} * * *`, tz: s.timezone, kind: "full" }];
}

/** What an enabled schedule does, for people. */
export function describePostgresSchedule(_s: PostgresSchedule, { times, timezone }: ScheduleSummaryInput): string {
  return `${times.length} full refresh${times.length > 1 ? "es" : ""} a day at ${times.map((t) => t.at).join(", ")} (${timezone})`;
}

/**
 * The page sends the hours of the refreshes (and an API client may send their count too); they
 * must agree (the hours win in the scheduler), and repeated hours count once.
 */
export function preparePostgresScheduleEdit(input: Record<string, unknown>): Record<string, unknown> {
  const body = { ...input };
  if (Array.isArray(body.hours)) {
    const hours = [...new Set(body.hours as unknown[])];
    if (body.timesPerDay !== undefined && body.timesPerDay !== hours.length) {
      throw new ConfigError(`schedule: ${String(body.timesPerDay)} refreshes a day but ${hours.length} distinct hour(s) given; give one hour per refresh`);
    }
    body.hours = hours;
    body.timesPerDay = hours.length;
  }
  return body;
}
