/**
 * A HubSpot connector's schedule: an incremental sync every N minutes (full syncs are manual), its
 * cron rule, and the sentence the integration-settings page shows. The scheduler and the page
 * reach it through the plugin (index.ts), never by name.
 */
import { z } from "zod";
import { TIME_ZONE } from "../../../lib/config-common.ts";
import type { CronRule, ScheduleFormField, ScheduleSummaryInput } from "../../connector.ts";

/** Incremental intervals a cron rule can express exactly: divisors of an hour, or whole hours dividing a day. */
export const INCREMENTAL_MINUTES = [5, 10, 15, 20, 30, 60, 120, 180, 240, 360, 480, 720, 1440] as const;

export const HubSpotSchedule = z.strictObject({
  incrementalEveryMinutes: z
    .number()
    .int()
    .refine((n) => (INCREMENTAL_MINUTES as readonly number[]).includes(n), {
      error: `must be one of ${INCREMENTAL_MINUTES.join(", ")} (a divisor of an hour, or whole hours dividing a day)`,
    })
    .default(60)
    .describe("Minutes between incremental syncs."),
  timezone: TIME_ZONE.default("UTC").describe("The zone the schedule's hours are counted in."),
  enabled: z.boolean().default(true).describe("false keeps the settings but arms no sync (manual syncs only)."),
});
export type HubSpotSchedule = z.infer<typeof HubSpotSchedule>;

/** The page's edit form: the interval between incrementals, one of those a cron rule expresses exactly. */
export const hubspotScheduleForm: ScheduleFormField[] = [
  {
    kind: "select",
    name: "incrementalEveryMinutes",
    label: "Incremental every",
    options: INCREMENTAL_MINUTES.map((m) => ({ value: m, label: m < 60 ? `${m} minutes` : `${m / 60} hour${m > 60 ? "s" : ""}` })),
  },
];

/** The cron rule (minute hour * * *) of an incremental every `minutes`. */
function incrementalCron(minutes: number): string {
  if (minutes < 60) return `*/${minutes} * * * *`;
  if (minutes === 1440) return "0 0 * * *";
  return `0 */${minutes / 60} * * *`;
}

/** Incremental every N minutes; full syncs are manual only. */
export function hubspotCronRules(s: HubSpotSchedule): CronRule[] {
  return s.enabled ? [{ rule: incrementalCron(s.incrementalEveryMinutes), tz: s.timezone, full: false }] : [];
}

/** What an enabled schedule does, for people. */
export function describeHubSpotSchedule(s: HubSpotSchedule, { times }: ScheduleSummaryInput): string {
  const every = (s.incrementalEveryMinutes as number | undefined) ?? 60;
  return `incremental every ${every < 60 ? `${every} minutes` : every === 60 ? "hour" : `${every / 60} hours`} (${times.length} a day); full syncs are manual`;
}
