/**
 * The integration-settings page in headless Chromium (Debian's chromium, driven by playwright-core),
 * served by `runRoles` because the config has an `http` section: the page asks for a token and
 * logs in through its form; it shows the connector, its tables, schedule, last runs and lag;
 * Refresh publishes a sync request and the page follows the run live until it is in the sink and
 * the row count changes; a schedule edit is stored. The page runs under its strict
 * Content-Security-Policy without a violation. A page of another origin (127.0.0.1 on another
 * port: same site, so the SameSite cookie goes along; and localhost: another site) that tries a
 * credentialed fetch, a no-cors POST, a text/plain form post and a PUT against the API triggers
 * no sync and changes no schedule. Screenshot: .stack/web-screenshot.png.
 */
import { mkdirSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runRoles, type RunHandle } from "../../app/roles.ts";
import { endOffsets } from "../../lib/kafka.ts";
import { openRuntime, type Runtime } from "../../lib/runtime.ts";
import { syncAndWait } from "../../support/pipeline.ts";
import { ensureChromium, launchChromium } from "../../support/chromium.ts";
import { addRows, freePort, getText, opsFixture, sinkQuery, type OpsFixture } from "../../support/ops.ts";

const TOKEN = `web-${"c3".repeat(20)}`;
const auth = { authorization: `Bearer ${TOKEN}` };

const SCREENSHOT = new URL("../../.stack/web-screenshot.png", import.meta.url).pathname;
const skipReason = ensureChromium();
if (skipReason) process.stderr.write(`[ops-web] SKIPPED: the web page test needs Chromium: ${skipReason}\n`);

describe.skipIf(skipReason !== null)("integration-settings page in headless Chromium", () => {
  let port: number;
  let fx: OpsFixture;
  let rt: Runtime;
  let pipeline: RunHandle;
  let base: string;
  let browser: Awaited<ReturnType<typeof launchChromium>>;

  beforeAll(async () => {
    port = await freePort();
    // The page's hours are asserted exactly: no spread (scheduler.spreadMinutes 0).
    fx = await opsFixture(
      "web",
      40,
      `\nhttp: { port: ${port}, host: 127.0.0.1, tokens: [{ token: "${TOKEN}", tenants: ["*"] }] }\nscheduler: { spreadMinutes: 0 }\n`,
    );
    fx.config.connectors[0]!.schedule = { timesPerDay: 4, timezone: "Europe/Paris", enabled: true };
    base = `http://127.0.0.1:${port}`;
    rt = await openRuntime(fx.config, "test");
    pipeline = await runRoles(fx.config, ["producer", "mapper", "sink"]);
    const first = await syncAndWait(rt, "crm", { full: true, timeoutMs: 60_000 });
    expect(first.type, first.error ?? "").toBe("RUN_COMPLETED");
    // evil.example resolves to this machine, as a DNS-rebinding attacker's name does after the switch
    browser = await launchChromium({ args: ["--host-resolver-rules=MAP evil.example 127.0.0.1"] });
  });

  afterAll(async () => {
    await browser?.close();
    await pipeline?.stop();
    await rt?.close();
  });

  it("the page asks for a token and logs in through its form; Refresh runs a sync the page follows until the rows are in Qobra", async () => {
    const page = await browser.context.newPage();
    const errors: string[] = [];
    page.on("pageerror", (e) => errors.push(e.message));
    page.on("console", (m) => {
      if (m.type() === "error" && /Content Security Policy|Refused to/i.test(m.text())) errors.push(m.text());
    });
    await page.goto(`${base}/`);
    const login = page.locator('[data-testid="login"]');
    await login.waitFor({ state: "visible", timeout: 20_000 });
    expect(await page.locator('section[data-connector="crm"]').count()).toBe(0);
    await page.locator("#login-token").fill("not-the-token");
    await page.locator('#login-form button[type="submit"]').click();
    await expectText(page.locator('[data-testid="login-message"]'), "Wrong token.");
    await page.locator("#login-token").fill(TOKEN);
    await page.locator('#login-form button[type="submit"]').click();
    await login.waitFor({ state: "hidden", timeout: 20_000 });
    const cookie = (await browser.context.cookies(base)).find((c) => c.name.startsWith("qobra_sync_session_"));
    expect(cookie).toMatchObject({ httpOnly: true, sameSite: "Strict", path: "/", secure: false });
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
      headers: { ...auth, "content-type": "application/json" },
      body: JSON.stringify({ hours: [7, 31] }),
    });
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { error: string }).error).toMatch(/schedule\.hours\.1/);
    // writes need a token, JSON and the same origin
    const anonymous = await fetch(`${base}/api/connectors/crm/sync`, { method: "POST", headers: { "content-type": "application/json" }, body: "{}" });
    expect(anonymous.status).toBe(401);
    const form2 = await fetch(`${base}/api/connectors/crm/sync`, {
      method: "POST",
      headers: { ...auth, "content-type": "application/x-www-form-urlencoded" },
      body: "full=true",
    });
    expect(form2.status).toBe(415);
    const cross = await fetch(`${base}/api/connectors/crm/sync`, {
      method: "POST",
      headers: { ...auth, "content-type": "application/json", origin: "http://evil.example" },
      body: "{}",
    });
    expect(cross.status).toBe(403);
    await page.close();
  });

  it("a page of another origin (same site or not) or of a rebinding name, with the operator logged in, triggers no sync and changes no schedule", async () => {
    const requests = async () => [...(await endOffsets(await rt.port.admin(), rt.port.topics.syncRequests)).values()].reduce((a, b) => a + b, 0);
    const stored = async () => JSON.stringify(await sinkQuery(`SELECT value FROM "${fx.sinkSchema}"."_qobra_sync_settings" WHERE key = 'schedule:crm'`));
    const before = { requests: await requests(), schedule: await stored() };
    // the victim is logged in (the context's session cookie, from the first test)
    expect((await browser.context.cookies(base)).some((c) => c.name.startsWith("qobra_sync_session_"))).toBe(true);
    const attacker = await attackerSite(base);
    try {
      for (const origin of [`http://127.0.0.1:${attacker.port}`, `http://localhost:${attacker.port}`]) {
        const page = await browser.context.newPage();
        await page.goto(`${origin}/`);
        await expect.poll(() => page.evaluate(() => (window as unknown as { done?: boolean }).done === true), { timeout: 20_000 }).toBe(true);
        const results = await page.evaluate(() => (window as unknown as { results: string[] }).results);
        process.stderr.write(`[ops-web] attacker at ${origin}: ${results.join(" | ")}\n`);
        // the credentialed JSON fetch and the PUT die at the CORS preflight; the no-cors POST is opaque
        expect(results.find((r) => r.startsWith("fetch-json:"))).toMatch(/^fetch-json: (TypeError|error)/);
        expect(results.find((r) => r.startsWith("fetch-put:"))).toMatch(/^fetch-put: (TypeError|error)/);
        // the no-cors POST is sent and refused; its answer is opaque, or withheld by Cross-Origin-Resource-Policy
        expect(results.find((r) => r.startsWith("fetch-text:"))).toMatch(/^fetch-text: (opaque|TypeError)/);
        await page.close();
      }
      expect(attacker.hits()).toBeGreaterThanOrEqual(2);
      // DNS rebinding: the attacker's name now points at this machine, so its page and the API are
      // same-origin for the browser; the server refuses the name itself
      const rebound = await browser.context.newPage();
      const answer = await rebound.goto(`http://evil.example:${port}/`);
      expect(answer?.status()).toBe(421);
      expect(await rebound.locator('[data-testid="login"]').count()).toBe(0);
      const status = await rebound.evaluate(async () => {
        const r = await fetch("/api/connectors/crm/sync", { method: "POST", headers: { "content-type": "application/json" }, body: '{"full":true}' });
        return r.status;
      });
      expect(status).toBe(421);
      await rebound.close();
    } finally {
      await attacker.close();
    }
    await new Promise((r) => setTimeout(r, 1000));
    expect(await requests()).toBe(before.requests);
    expect(await stored()).toBe(before.schedule);
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

/**
 * The attacker: a page on another port that, on load, tries the API of `target` with the
 * visitor's cookies: a credentialed JSON fetch, a no-cors text/plain POST holding JSON, a
 * text/plain form posted into a hidden frame, and a PUT of the schedule. Served by a server of
 * its own; `hits` counts the pages it served.
 */
async function attackerSite(target: string): Promise<{ port: number; hits(): number; close(): Promise<void> }> {
  let hits = 0;
  const sync = `${target}/api/connectors/crm/sync`;
  const script = `
window.results = [];
const t0 = Date.now();
const note = (s) => window.results.push(s + " @" + (Date.now() - t0));
(async () => {
  try { const r = await fetch(${JSON.stringify(sync)}, { method: "POST", credentials: "include", headers: { "content-type": "application/json" }, body: '{"full":true}' }); note("fetch-json: " + r.status); }
  catch (e) { note("fetch-json: " + e.name); }
  try { const r = await fetch(${JSON.stringify(sync)}, { method: "POST", mode: "no-cors", credentials: "include", headers: { "content-type": "text/plain" }, body: '{"full":true}' }); note("fetch-text: " + r.type); }
  catch (e) { note("fetch-text: " + e.name); }
  try { const r = await fetch(${JSON.stringify(`${target}/api/connectors/crm/schedule`)}, { method: "PUT", credentials: "include", headers: { "content-type": "application/json" }, body: '{"enabled":false}' }); note("fetch-put: " + r.status); }
  catch (e) { note("fetch-put: " + e.name); }
  const frame = document.createElement("iframe"); frame.name = "sink"; document.body.appendChild(frame);
  const form = document.createElement("form"); form.method = "POST"; form.action = ${JSON.stringify(sync)}; form.enctype = "text/plain"; form.target = "sink";
  const input = document.createElement("input"); input.name = '{"full":true,"x":"'; input.value = '"}'; form.appendChild(input);
  document.body.appendChild(form);
  form.submit();
  frame.addEventListener("load", () => { note("form: sent"); window.done = true; });
  setTimeout(() => { window.done = true; }, 5000);
})();`;
  const server: Server = createServer((req, res) => {
    hits++;
    if (req.url === "/attack.js") {
      res.writeHead(200, { "content-type": "text/javascript" });
      res.end(script);
      return;
    }
    res.writeHead(200, { "content-type": "text/html" });
    res.end('<!doctype html><html><body><h1>Win a prize</h1><script src="/attack.js"></script></body></html>');
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  return {
    port: (server.address() as AddressInfo).port,
    hits: () => hits,
    close: () =>
      new Promise<void>((r) => {
        server.close(() => r());
        server.closeAllConnections();
      }),
  };
}

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
