/**
 * Schedules through the real broker and CLI: the scheduler role fires each kind of job (full,
 * incremental, reconcile) from config schedule blocks and publishes the matching request on
 * sync.requests; `qobra-sync schedule --json` lists the default schedules of the three sources,
 * config blocks and page edits, with their next fire times.
 */
import { execFile } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, describe, expect, it } from "vitest";
import { type Config, parseConfig } from "../../app/config.ts";
import { type RunHandle, runRoles } from "../../app/roles.ts";
import { openRuntime, type Runtime } from "../../lib/runtime.ts";
import { readToEnd } from "../../lib/topic-scan.ts";
import { ScheduleStore } from "../../scheduler/schedules.ts";
import type { SyncRequest } from "../../schemas/index.ts";
import { ensureDatabase, pipelineHeaderYaml, uniqueId } from "../../support/env.ts";

const SINK_DB = "qobra_it_sink";
const cleanups: Array<() => Promise<void>> = [];
afterAll(async () => {
  for (const c of cleanups.reverse()) await c().catch(() => {});
});

/** HH:MM of an instant in a zone. */
const localTime = (ms: number, tz: string) =>
  new Intl.DateTimeFormat("en-GB", { timeZone: tz, hour: "2-digit", minute: "2-digit", hourCycle: "h23" }).format(new Date(ms));

/** The tests below assert exact fire times: no spread (scheduler.spreadMinutes 0; the spread is tested in test/unit/spread.test.ts). */
function yaml(prefix: string, sinkSchema: string, connectors: string): string {
  return `
${pipelineHeaderYaml({ prefix: prefix, sinkDb: SINK_DB, sinkSchema: sinkSchema })}scheduler: { spreadMinutes: 0 }
connectors:
${connectors}`;
}

describe("the scheduler role", () => {
  it("fires full, incremental and reconcile jobs from config schedules and publishes their requests", async () => {
    await ensureDatabase(SINK_DB);
    const id = uniqueId("sch");
    // The next whole minute at least 8 s away: every rule below fires then.
    const at = Math.ceil((Date.now() + 8000) / 60_000) * 60_000;
    const utc = localTime(at, "UTC");
    const hourBefore = localTime(at - 3_600_000, "UTC");
    const config: Config = parseConfig(
      yaml(
        id,
        `sink_${id}`,
        `  - id: sf_full
    type: salesforce
    clientId: a
    clientSecret: b
    schedule: { fullAt: "${utc}", incrementalEveryHours: 24 }
    tables: [{ name: opportunities, object: Opportunity }]
  - id: sf_inc
    type: salesforce
    clientId: a
    clientSecret: b
    schedule: { fullAt: "${hourBefore}", incrementalEveryHours: 1 }
    tables: [{ name: opportunities, object: Opportunity }]
  - id: hs
    type: hubspot
    clientId: a
    clientSecret: b
    schedule: { incrementalEveryMinutes: 1440, reconcileAt: "${localTime(at, "Europe/Paris")}", timezone: Europe/Paris }
    tables: [{ name: deals, object: deals }]`,
      ),
      "test",
      {},
    );
    const rt: Runtime = await openRuntime(config, "test");
    cleanups.push(() => rt.close());
    const roles: RunHandle = await runRoles(config, ["scheduler"]);
    cleanups.push(() => roles.stop());
    const requests = async () => {
      const out: SyncRequest[] = [];
      await readToEnd(rt.port, rt.port.topics.syncRequests, async (messages) => {
        for (const m of messages) if (m.value) out.push(await rt.codec.decode<SyncRequest>(m.value));
      });
      return out;
    };
    await expect.poll(async () => (await requests()).length, { timeout: 90_000, interval: 2000 }).toBeGreaterThanOrEqual(3);
    const got = (await requests()).map((r) => ({ connector: r.connector, full: r.full, reconcile: r.reconcile, by: r.requestedBy }));
    expect(got).toEqual(
      expect.arrayContaining([
        { connector: "sf_full", full: true, reconcile: false, by: "scheduler" },
        { connector: "sf_inc", full: false, reconcile: false, by: "scheduler" },
        { connector: "hs", full: false, reconcile: true, by: "scheduler" },
      ]),
    );
    expect(got).toHaveLength(3);
  }, 120_000);
});

const run = promisify(execFile);
const dir = mkdtempSync(join(tmpdir(), "qobra-schedule-"));

async function cli(args: string[], configText: string): Promise<{ code: number; stdout: string; stderr: string }> {
  const file = join(dir, `c${Math.random().toString(36).slice(2)}.yaml`);
  writeFileSync(file, configText);
  try {
    const r = await run(process.execPath, ["bin/qobra-sync.js", "-c", file, ...args], {
      timeout: 60_000,
      env: { ...process.env, QOBRA_SYNC_LOG_LEVEL: "silent" },
    });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (e) {
    const err = e as { code: number; stdout: string; stderr: string };
    return { code: err.code, stdout: err.stdout, stderr: err.stderr };
  }
}

describe("qobra-sync schedule", () => {
  it("lists each source's default schedule, config blocks and page edits, with the next 24 hours of fire times", async () => {
    await ensureDatabase(SINK_DB);
    const id = uniqueId("schcli");
    const text = yaml(
      id,
      `sink_${id}`,
      `  - id: crm
    type: postgres
    connection: { url: "postgres://r@127.0.0.1/crm" }
    tables: [{ name: deals, source: public.deals, idColumn: id, nameColumn: title }]
  - id: sf
    type: salesforce
    clientId: a
    clientSecret: b
    tables: [{ name: opportunities, object: Opportunity }]
  - id: hs
    type: hubspot
    clientId: a
    clientSecret: b
    tables: [{ name: deals, object: deals }]
  - id: paris
    type: hubspot
    clientId: a
    clientSecret: b
    schedule: { timezone: Europe/Paris }
    tables: [{ name: deals, object: deals }]
  - id: edited
    type: postgres
    connection: { url: "postgres://r@127.0.0.1/crm" }
    tables: [{ name: deals, source: public.deals, idColumn: id, nameColumn: title }]
  - id: off
    type: salesforce
    clientId: a
    clientSecret: b
    schedule: { enabled: false }
    tables: [{ name: opportunities, object: Opportunity }]`,
    );
    const store = new ScheduleStore(parseConfig(text, "test", {}));
    cleanups.push(() => store.close());
    await store.save("edited", { timesPerDay: 2, hours: [7, 19], timezone: "UTC", enabled: true }, "test");

    const r = await cli(["schedule", "--json"], text);
    expect(r.code, r.stderr).toBe(0);
    const listing = JSON.parse(r.stdout) as Array<{ connector: string; origin: string; timezone: string; jobs: Array<{ kind: string; next: string[] }> }>;
    const summary = listing.map((s) => [s.connector, s.origin, s.timezone, s.jobs.map((j) => `${j.kind}×${j.next.length}`).join(",")]);
    expect(summary).toEqual([
      ["crm", "default", "UTC", "full×4"],
      ["sf", "default", "UTC", "full×1,incremental×11"],
      ["hs", "default", "UTC", "incremental×12,reconcile×1"],
      ["paris", "config", "Europe/Paris", "incremental×12,reconcile×1"],
      ["edited", "edited", "UTC", "full×2"],
      ["off", "config", "UTC", ""],
    ]);
    const now = Date.now();
    for (const s of listing)
      for (const j of s.jobs)
        for (const n of j.next) {
          expect(n).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:00[+-]\d\d:\d\d$/);
          expect(Date.parse(n)).toBeGreaterThan(now - 60_000);
          expect(Date.parse(n)).toBeLessThanOrEqual(now + 86_400_000 + 60_000);
        }
    expect(listing.find((s) => s.connector === "paris")!.jobs[1]!.next[0]).toMatch(/T03:00:00\+0[12]:00$/);
    expect(listing.find((s) => s.connector === "edited")!.jobs[0]!.next.map((n) => n.slice(11))).toEqual(
      expect.arrayContaining(["07:00:00+00:00", "19:00:00+00:00"]),
    );

    const human = await cli(["schedule"], text);
    expect(human.code).toBe(0);
    expect(human.stdout).toMatch(/^crm: its source's default schedule \(no schedule block\), times in UTC\n {2}full {8}4 in the next 24 h, next /m);
    expect(human.stdout).toMatch(/^off: the config file's schedule block, times in UTC\n {2}disabled: manual syncs only$/m);
  }, 90_000);
});
