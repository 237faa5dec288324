/**
 * A HubSpot connector's schedule: an incremental sync every N minutes (every 2 hours by default)
 * and a nightly reconciliation at a local time (03:00 by default; it lists the ids the portal
 * holds and deletes the others: purges and records that left a table's filter unnoticed). Full
 * syncs are manual. A connector without a schedule block gets the defaults. Its cron rules and
 * the sentence the integration-settings page shows are here too; the scheduler and the page
 * reach it through the plugin (index.ts), never by name.
 */
import { z } from "zod";
import { TIME_ZONE } from "../../../lib/config-common.ts";
import type { CronRule, ScheduleFormField, ScheduleSummaryInput } from "../../connector.ts";

/** Incremental intervals a cron rule can express exactly: divisors of an hour, or whole hours dividing a day. */
export const INCREMENTAL_MINUTES = [5, 10, 15, 20, 30, 60, 120, 180, 240, 360, 480, 720, 1440] as const;

const HH_MM = /^([01]\d|2[0-3]):([0-5]\d)$/;
const RECONCILE_AT_ERROR = 'must be a local time HH:MM, such as "03:00", or false for no nightly reconciliation';

export const HubSpotSchedule = z.strictObject({
  incrementalEveryMinutes: z
    .number()
    .int()
    .refine((n) => (INCREMENTAL_MINUTES as readonly number[]).includes(n), {
      error: `must be one of ${INCREMENTAL_MINUTES.join(", ")} (a divisor of an hour, or whole hours dividing a day)`,
    })
    .default(120)
    .describe("Minutes between incremental syncs."),
  reconcileAt: z
    .union([z.string().regex(HH_MM, { error: RECONCILE_AT_ERROR }), z.literal(false)], { error: RECONCILE_AT_ERROR })
    .default("03:00")
    .describe(
      "Local time (in timezone) of the nightly reconciliation, which lists the ids the portal holds and deletes the others (purged records, filter exits); false: none.",
    ),
  timezone: TIME_ZONE.default("UTC").describe("The zone the schedule's hours are counted in."),
  enabled: z.boolean().default(true).describe("false keeps the settings but arms no sync (manual syncs only)."),
});
export type HubSpotSchedule = z.infer<typeof HubSpotSchedule>;

/** A connector without a schedule block: an incremental every 2 hours and a reconciliation at 03:00, UTC. */
export const defaultHubSpotSchedule: HubSpotSchedule = HubSpotSchedule.parse({});

/** The page's edit form: the interval between incrementals (one a cron rule expresses exactly), the reconciliation's time. */
export const hubspotScheduleForm: ScheduleFormField[] = [
  {
    kind: "select",
    name: "incrementalEveryMinutes",
    label: "Incremental every",
    options: INCREMENTAL_MINUTES.map((m) => ({ value: m, label: m < 60 ? `${m} minutes` : `${m / 60} hour${m > 60 ? "s" : ""}` })),
  },
  { kind: "time", name: "reconcileAt", label: "Nightly reconciliation at (empty: none)" },
];

/** The page sends an emptied time field as "": no reconciliation. */
export function prepareHubSpotScheduleEdit(input: Record<string, unknown>): Record<string, unknown> {
  const body = { ...input };
  if (body.reconcileAt === "" || body.reconcileAt === null) body.reconcileAt = false;
  return body;
}

/** The cron rule (minute hour * * *) of an incremental every `minutes`. */
function incrementalCron(minutes: number): string {
  if (minutes < 60) return `*/${minutes} * * * *`;
  if (minutes === 1440) return "0 0 * * *";
  return `0 */${minutes / 60} * * *`;
}

/** Incremental every N minutes, and the nightly reconciliation unless turned off; full syncs are manual only. */
export function hubspotCronRules(s: HubSpotSchedule): CronRule[] {
  if (!s.enabled) return [];
  const rules: CronRule[] = [{ rule: incrementalCron(s.incrementalEveryMinutes), tz: s.timezone, kind: "incremental" }];
  if (typeof s.reconcileAt === "string") {
    const [h, m] = s.reconcileAt.split(":").map(Number) as [number, number];
    rules.push({ rule: `${m} ${h} * * *`, tz: s.timezone, kind: "reconcile" });
  }
  return rules;
}

/** What an enabled schedule does, for people. */
export function describeHubSpotSchedule(s: HubSpotSchedule, _at: ScheduleSummaryInput): string {
  const every = (s.incrementalEveryMinutes as number | undefined) ?? 120;
  const incremental = `incremental every ${every < 60 ? `${every} minutes` : every === 60 ? "hour" : `${every / 60} hours`} (${1440 / every} a day)`;
  const reconcile = typeof s.reconcileAt === "string" ? `, reconciliation at ${s.reconcileAt}` : "";
  return `${incremental}${reconcile}; full syncs are manual`;
}
