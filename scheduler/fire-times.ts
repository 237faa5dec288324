/**
 * When a schedule's cron rules fire, as real instants: `qobra-sync schedule` and the settings page
 * list every fire time of the next 24 hours, and they must be the ones node-schedule arms. The
 * rules are `minute hour * * *` in an IANA zone; across a daylight-saving change they behave as
 * node-schedule's cron parser does:
 *  - a rule at given hours fires once a local day: a time the clocks skip (02:30 on the spring
 *    change in Paris) fires as many minutes after the skipped hour (03:30); a time that occurs
 *    twice (02:30 on the autumn change) fires at its first occurrence only;
 *  - a rule for every hour (`*`, `*\/1`) follows real time: skipped times do not fire, and a
 *    repeated hour fires twice.
 * Instants are written ISO 8601 with the zone's offset at that instant (`2027-03-28T03:30:00+02:00`).
 * One known difference: in a zone whose clocks skip midnight (America/Santiago in September),
 * node-schedule's parser skips a job due in the skipped hour that day, where this lists it at 01:00.
 * The scheduler publishes each connector's request its spread offset (scheduler/spread.ts) after
 * these instants, in real time: the views add the same offset to them.
 */
import { zonedParts } from "../lib/zoned-time.ts";

/** The minutes and hours (each sorted) a `minute hour * * *` rule names; throws on any other form. */
export function parseCronRule(rule: string): { minutes: number[]; hours: number[] } {
  const parts = rule.trim().split(/\s+/);
  if (parts.length !== 5 || parts.slice(2).some((p) => p !== "*")) throw new Error(`unsupported cron rule ${rule}: only "minute hour * * *" rules`);
  return { minutes: expandField(parts[0]!, 0, 59), hours: expandField(parts[1]!, 0, 23) };
}

function expandField(field: string, min: number, max: number): number[] {
  const out = new Set<number>();
  for (const piece of field.split(",")) {
    const [range, stepText] = piece.split("/") as [string, string | undefined];
    const step = stepText === undefined ? 1 : Number(stepText);
    let lo: number, hi: number;
    if (range === "*") {
      lo = min;
      hi = max;
    } else if (range.includes("-")) {
      [lo, hi] = range.split("-").map(Number) as [number, number];
    } else {
      lo = Number(range);
      hi = stepText === undefined ? lo : max;
    }
    if (![lo, hi, step].every(Number.isInteger) || lo < min || hi > max || step < 1) throw new Error(`bad cron field ${field}`);
    for (let v = lo; v <= hi; v += step) out.add(v);
  }
  return [...out].sort((a, b) => a - b);
}

/** The wall-clock fields of an instant in a zone. */
function wallClock(ms: number, tz: string): { y: number; mo: number; d: number; h: number; mi: number; s: number } {
  const z = zonedParts(tz, ms);
  return { y: z.year, mo: z.month, d: z.day, h: z.hour, mi: z.minute, s: z.second };
}

/** The zone's offset from UTC at an instant, in minutes (+120 for Paris in summer). */
export function offsetMinutes(ms: number, tz: string): number {
  const w = wallClock(ms, tz);
  const asUtc = Date.UTC(w.y, w.mo - 1, w.d, w.h, w.mi, w.s);
  return Math.round((asUtc - Math.floor(ms / 1000) * 1000) / 60_000);
}

/**
 * The instant of a local wall-clock time (`wall`: that time read as if it were UTC, in ms): its
 * first occurrence when the clocks go back, and shifted past the gap when they skip it.
 */
function localToInstant(wall: number, tz: string): number {
  const before = offsetMinutes(wall - 86_400_000, tz);
  const after = offsetMinutes(wall + 86_400_000, tz);
  const valid = [before, after].map((o) => wall - o * 60_000).filter((t) => offsetMinutes(t, tz) * 60_000 === wall - t);
  // In a gap no offset fits: read the time with the offset before the change (02:30 CET = 03:30 CEST).
  return valid.length > 0 ? Math.min(...valid) : wall - before * 60_000;
}

/** Every instant in (from, from + windowMs] at which the rule fires in zone tz, ascending. */
export function fireTimes(rule: string, tz: string, from: number, windowMs = 86_400_000): number[] {
  const { minutes, hours } = parseCronRule(rule);
  const to = from + windowMs;
  const out = new Set<number>();
  if (hours.length === 24) {
    // Every hour: follows real time. Walk whole minutes, keeping those whose local minute matches
    // (zones change offset on a quarter hour at most: the offset is read once per quarter).
    const wanted = new Set(minutes);
    let offset = 0;
    for (let t = Math.floor(from / 60_000) * 60_000 + 60_000; t <= to; t += 60_000) {
      if (t === Math.floor(from / 60_000) * 60_000 + 60_000 || t % 900_000 === 0) offset = offsetMinutes(t, tz);
      const localMinute = (((t / 60_000 + offset) % 60) + 60) % 60;
      if (wanted.has(localMinute)) out.add(t);
    }
  } else {
    // Given hours: once per local day, for each local date the window touches.
    const start = wallClock(from, tz);
    for (let day = -1; day <= 2; day++) {
      const date = Date.UTC(start.y, start.mo - 1, start.d + day);
      for (const h of hours)
        for (const m of minutes) {
          const t = localToInstant(date + (h * 60 + m) * 60_000, tz);
          if (t > from && t <= to) out.add(t);
        }
    }
  }
  return [...out].sort((a, b) => a - b);
}

const pad = (n: number, w = 2) => String(Math.abs(n)).padStart(w, "0");

/** An instant as ISO 8601 with the zone's offset at that instant: 2027-03-28T03:30:00+02:00. */
export function isoInZone(ms: number, tz: string): string {
  const w = wallClock(ms, tz);
  const off = offsetMinutes(ms, tz);
  const sign = off < 0 ? "-" : "+";
  return `${pad(w.y, 4)}-${pad(w.mo)}-${pad(w.d)}T${pad(w.h)}:${pad(w.mi)}:${pad(w.s)}${sign}${pad(Math.floor(Math.abs(off) / 60))}:${pad(Math.abs(off) % 60)}`;
}
