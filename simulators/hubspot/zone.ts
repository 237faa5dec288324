/**
 * Wall-clock time in a time zone, for the two places the simulator needs the portal's local time:
 * the daily rate limit (it resets at local midnight, limits.ts) and the account details' UTC offset
 * (routes/metadata.ts). One helper, so both read the zone the same way.
 */

/** The local calendar date and time of day of an instant in a time zone (24-hour clock). */
export interface ZonedParts {
  year: number;
  month: number;
  day: number;
  hour: number;
  minute: number;
  second: number;
}

export function zonedParts(timeZone: string, at: number): ZonedParts {
  const parts = new Intl.DateTimeFormat("en-US", {
    timeZone,
    hourCycle: "h23",
    year: "numeric",
    month: "2-digit",
    day: "2-digit",
    hour: "2-digit",
    minute: "2-digit",
    second: "2-digit",
  }).formatToParts(new Date(at));
  const get = (t: string) => Number(parts.find((p) => p.type === t)?.value ?? "0");
  return { year: get("year"), month: get("month"), day: get("day"), hour: get("hour"), minute: get("minute"), second: get("second") };
}
