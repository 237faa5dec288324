/**
 * Spreading scheduled runs (Jenkins' "H"): connectors sharing a schedule (every PostgreSQL
 * connector's default fires at 00:00, 06:00, 12:00 and 18:00 UTC) would all request a run at the
 * same instant, a burst a worker cannot start within seconds. Each connector's runs start instead a
 * stable number of seconds after their set times: a hash of its pipeline id (`<tenant>.<id>` for a
 * tenant's connector) modulo a window of `scheduler.spreadMinutes` (0: no spread), capped by the
 * smallest gap between the rule's minutes, so an every-15-minutes rule keeps its 15-minute period
 * and no run moves past the next one. The same connector gets the same offset in every process and
 * after restarts; different connectors spread evenly over the window.
 *
 * The offset is real time after the rule's fire instant (fire-times.ts, daylight-saving changes
 * included): the scheduler waits it out after node-schedule fires (scheduler.ts), and the views add
 * it to the listed instants (schedules.ts).
 */
import { createHash } from "node:crypto";
import { parseCronRule } from "./fire-times.ts";

/** The config's `scheduler.spreadMinutes` (0 for a config built without the key, as some tests do). */
export function spreadMinutesOf(config: { scheduler?: { spreadMinutes?: number } }): number {
  return config.scheduler?.spreadMinutes ?? 0;
}

/** `scheduler.spreadMinutes`'s default (lib/config.ts). */
export const DEFAULT_SPREAD_MINUTES = 30;

/**
 * The window (seconds) a rule's offsets fall in: spreadMinutes, capped by the smallest cyclic gap
 * between consecutive minute values of the rule (an hour for a single minute value).
 */
export function spreadWindowSeconds(rule: string, spreadMinutes: number): number {
  const { minutes } = parseCronRule(rule);
  let gap = 60;
  for (let i = 0; i < minutes.length; i++) {
    const next = i + 1 < minutes.length ? minutes[i + 1]! : minutes[0]! + 60;
    gap = Math.min(gap, next - minutes[i]!);
  }
  return Math.min(Math.max(0, Math.floor(spreadMinutes)) * 60, gap * 60);
}

/** A stable 48-bit hash of a pipeline id (the first 6 bytes of its SHA-256). */
function idHash(pipelineId: string): number {
  return createHash("sha256").update(pipelineId, "utf8").digest().readUIntBE(0, 6);
}

/**
 * How many seconds after each of the rule's fire times a connector's run starts: in
 * [0, spreadWindowSeconds(rule, spreadMinutes)), 0 when spreadMinutes is 0.
 */
export function spreadOffsetSeconds(pipelineId: string, rule: string, spreadMinutes: number): number {
  const window = spreadWindowSeconds(rule, spreadMinutes);
  return window > 0 ? idHash(pipelineId) % window : 0;
}

/** An offset for people: "17 min 23 s", "45 s", "5 min". */
export function describeOffset(seconds: number): string {
  const m = Math.floor(seconds / 60);
  const s = seconds % 60;
  if (m === 0) return `${s} s`;
  return s === 0 ? `${m} min` : `${m} min ${s} s`;
}
