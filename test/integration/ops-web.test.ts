/**
 * The integration-settings page in headless Chromium (Debian's chromium, driven by playwright-core),
 * served by `runRoles` because the config has an `http` section: the page shows the connector, its
 * tables, schedule, last runs and lag; Refresh publishes a sync request and the page follows the
 * run live until it is in the sink and the row count changes; a schedule edit is stored.
 * Screenshot: .stack/web-screenshot.png.
 */
import { mkdirSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runRoles, type RunHandle } from "../../app/roles.ts";
import { openRuntime, type Runtime } from "../../lib/runtime.ts";
import { syncAndWait } from "../../support/pipeline.ts";
import { ensureChromium, launchChromium } from "../../support/chromium.ts";
import { addRows, freePort, getText, opsFixture, sinkQuery, type OpsFixture } from "../../support/ops.ts";

const SCREENSHOT = new URL("../../.stack/web-screenshot.png", import.meta.url).pathname;
const skipReason = ensureChromium();
if (skipReason) process.stderr.write(`[ops-web] SKIPPED: the web page test needs Chromium: ${skipReason}\n`);

describe.skipIf(skipReason !== null)("integration-settings page in headless Chromium", () => {
  let fx: OpsFixture;
  let rt: Runtime;
  let pipeline: RunHandle;
  let base: string;
  let browser: Awaited<ReturnType<typeof launchChromium>>;

  beforeAll(async () => {
    const port = await freePort();
    fx = await opsFixture("web", 40, `\nhttp: { port: ${port}, host: 127.0.0.1 }\n`);
    fx.config.connectors[0]!.schedule = { timesPerDay: 4, timezone: "Europe/Paris", enabled: true };
    base = `http://127.0.0.1:${port}`;
    rt = await openRuntime(fx.config, "test");
    pipeline = await runRoles(fx.config, ["producer", "mapper", "sink"]);
    const first = await syncAndWait(rt, "crm", { full: true, timeoutMs: 60_000 });
    expect(first.type, first.error ?? "").toBe("RUN_COMPLETED");
    browser = await launchChromium();
  });

  afterAll(async () => {
    await browser?.close();
    await pipeline?.stop();
    await rt?.close();
  });

  it("Refresh runs a sync the page follows until the rows are in Qobra, with connectors, last runs and lag on screen", async () => {
    const page = await browser.context.newPage();
    const errors: string[] = [];
    page.on("pageerror", (e) => errors.push(e.message));
    await page.goto(`${base}/`);
    const card = page.locator('section[data-connector="crm"]');
    const rows = card.locator('tr[data-table="deals"] [data-field="rows"]');
    await expectText(rows, "40");
    await expectText(card.locator('[data-field="schedule-count"]'), "4 refreshes a day");
    await expectText(card.locator('[data-field="schedule-hours"]'), "00:0006:0012:0018:00");
    await expectText(page.locator('tr[data-group$="-sink"] [data-field="group-lag"]'), "0");

    await addRows(fx.table, 41, 7);
    await card.locator('button[data-action="refresh"]').click();
    // the run appears, goes through the stages, and lands
    const progress = card.locator('[data-field="progress"]');
    await progress.waitFor({ state: "visible", timeout: 20_000 });
    await expectText(rows, "47", 60_000);
    const runRow = card.locator("table[data-field=runs] tbody tr").first();
    await expect.poll(() => runRow.getAttribute("data-phase"), { timeout: 20_000 }).toBe("done");
    expect(await runRow.getAttribute("data-status")).toBe("completed");
    expect(await runRow.locator('[data-field="read"]').textContent()).toBe("47");
    const byWeb = await sinkQuery<{ n: string }>(`SELECT count(DISTINCT _run_id) AS n FROM "${fx.sinkSchema}"."crm__deals"`);
    expect(byWeb[0]!.n).toBe("1");
    await expect.poll(() => progress.count(), { timeout: 10_000 }).toBe(0);
    await expectText(page.locator('[data-testid="health"]'), "healthy");

    mkdirSync(new URL("../../.stack/", import.meta.url).pathname, { recursive: true });
    await page.screenshot({ path: SCREENSHOT, fullPage: true });
    expect(errors).toEqual([]);
    await page.close();
  });

  it("the schedule's count of daily refreshes and their hours are editable, and the edit is stored", async () => {
    const page = await browser.context.newPage();
    await page.goto(`${base}/`);
    const card = page.locator('section[data-connector="crm"]');
    await card.locator('button[data-action="edit-schedule"]').click();
    const form = card.locator("form.edit");
    await form.locator('input[name="timesPerDay"]').fill("2");
    await form.locator('input[name="timesPerDay"]').dispatchEvent("change");
    await form.locator('select[name="hour"]').nth(0).selectOption("7");
    await form.locator('select[name="hour"]').nth(1).selectOption("19");
    await form.locator('button[type="submit"]').click();
    await expectText(card.locator('[data-field="schedule-count"]'), "2 refreshes a day");
    await expectText(card.locator('[data-field="schedule-hours"]'), "07:0019:00");
    const stored = await sinkQuery<{ value: unknown }>(`SELECT value FROM "${fx.sinkSchema}"."_qobra_sync_settings" WHERE key = 'schedule:crm'`);
    expect(stored[0]!.value).toMatchObject({ timesPerDay: 2, hours: [7, 19], timezone: "Europe/Paris", enabled: true });
    // a bad edit is refused with the reason (the API validates like the config file)
    const bad = await fetch(`${base}/api/connectors/crm/schedule`, {
      method: "PUT",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ hours: [7, 31] }),
    });
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { error: string }).error).toMatch(/schedule\.hours\.1/);
    // writes need JSON and the same origin
    const form2 = await fetch(`${base}/api/connectors/crm/sync`, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: "full=true",
    });
    expect(form2.status).toBe(415);
    const cross = await fetch(`${base}/api/connectors/crm/sync`, {
      method: "POST",
      headers: { "content-type": "application/json", origin: "http://evil.example" },
      body: "{}",
    });
    expect(cross.status).toBe(403);
    await page.close();
  });

  it("serves /metrics and /healthz on the same port", async () => {
    const m = await getText(`${base}/metrics`);
    expect(m.status).toBe(200);
    expect(m.text).toMatch(/qobra_sync_table_rows\{connector="crm",table="deals",state="live"\} 47/);
    expect(m.text).toMatch(/qobra_sync_runs_total\{connector="crm",outcome="completed"\} 2/);
    expect(m.text).toContain("qobra_sync_run_duration_seconds_bucket");
    const h = await getText(`${base}/healthz`);
    expect(h.status).toBe(200);
    expect(JSON.parse(h.text)).toMatchObject({ status: "ok", problems: [] });
  });
});

async function expectText(locator: import("playwright-core").Locator, text: string, timeoutMs = 20_000): Promise<void> {
  await expect
    .poll(
      async () =>
        (
          (await locator
            .first()
            .textContent()
            .catch(() => null)) ?? ""
        ).trim(),
      { timeout: timeoutMs },
    )
    .toBe(text);
}
