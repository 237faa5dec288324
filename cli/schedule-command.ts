/**
 * `qobra-sync schedule [--json]`: every connector's effective schedule as the scheduler arms it
 * (the config file's block or its source's default, with the settings page's stored edits), and
 * each job's fire times over the next 24 hours. Lets an operator see at a glance when each source
 * is next read, and by which kind of run. Registered on the main program by cli/main.ts; the work
 * is in scheduler/schedules.ts.
 */
import type { Command } from "commander";
import type { Config } from "../app/config.ts";
import { describeError } from "../lib/errors.ts";
import { ScheduleStore, listSchedules, type ScheduleListing, type ScheduleOverride } from "../scheduler/schedules.ts";

const ORIGIN_TEXT: Record<ScheduleListing["origin"], string> = {
  default: "its source's default schedule (no schedule block)",
  config: "the config file's schedule block",
  edited: "an edit from the settings page, stored in the sink database",
};

export function registerScheduleCommand(program: Command, loadConfig: () => Config): void {
  program
    .command("schedule")
    .description("every connector's effective schedule (config file, source defaults, page edits) and its fire times over the next 24 hours")
    .option("--json", "print an array, one object per connector: connector, origin, timezone, jobs [{ kind, next }]", false)
    .action(async (opts: { json: boolean }) => {
      const cfg = loadConfig();
      const overrides = await storedEdits(cfg);
      const listing = listSchedules(cfg, overrides);
      if (opts.json) console.log(JSON.stringify(listing, null, 2));
      else console.log(formatSchedules(listing));
    });
}

/** The page's stored edits; when the sink database cannot be read, none (said on stderr), as the scheduler does. */
async function storedEdits(cfg: Config): Promise<ScheduleOverride[]> {
  const store = new ScheduleStore(cfg);
  try {
    return await store.list({ create: false });
  } catch (e) {
    console.error(
      `qobra-sync: warning: could not read the schedule edits stored in the sink database (${describeError(e)}); showing the config file's schedules`,
    );
    return [];
  } finally {
    await store.close();
  }
}

/** One block per connector: where its schedule comes from, its zone, and each job's next fire times. */
export function formatSchedules(listing: ScheduleListing[]): string {
  const blocks = listing.map((s) => {
    const lines = [`${s.connector}: ${ORIGIN_TEXT[s.origin]}, times in ${s.timezone}`];
    if (s.jobs.length === 0) lines.push("  disabled: manual syncs only");
    for (const j of s.jobs) {
      const times = j.next.map((n) => n.slice(11, 16));
      const first = j.next[0];
      lines.push(
        `  ${j.kind.padEnd(11)} ${j.next.length} in the next 24 h${first ? `, next ${first}` : ""}${times.length > 1 ? `: ${times.length > 12 ? `${times.slice(0, 12).join(" ")} …` : times.join(" ")}` : ""}`,
      );
    }
    return lines.join("\n");
  });
  return blocks.join("\n\n");
}
