/**
 * The settings page's connector editor in headless Chromium (ops/web/connectors.js): an operator
 * logs in, opens a tenant, adds a PostgreSQL connector through the form built from the plugin's
 * schema, is told which field is wrong when it is, tests the connection, syncs it, and sees its
 * rows counted in the pipeline's view, without any role restarted. The password typed never comes
 * back to the page. A tenant's login then sees that connector's part of the pipeline (card, runs,
 * lag, health), not the file's connector.
 */
import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type RunHandle, runRoles } from "../../app/roles.ts";
import type { Config } from "../../lib/config.ts";
import { testConfig, newTokenKey, dbUrl } from "../../support/env.ts";
import { ensureChromium, launchChromium } from "../../support/chromium.ts";
import { SOURCE_DB, freePort, opsFixture, sinkQuery, type OpsFixture } from "../../support/ops.ts";

const TOKEN = `webc-${randomBytes(20).toString("hex")}`;
const ACME_TOKEN = `webc-acme-${randomBytes(20).toString("hex")}`;
const ROWS = 23;
const skipReason = ensureChromium();
if (skipReason) process.stderr.write(`[ops-web-connectors] SKIPPED: the page test needs Chromium: ${skipReason}\n`);

describe.skipIf(skipReason !== null)("connector editor of the settings page in headless Chromium", () => {
  let fx: OpsFixture;
  let config: Config;
  let pipeline: RunHandle;
  let base: string;
  let browser: Awaited<ReturnType<typeof launchChromium>>;
  const savedKey = process.env.QOBRA_SYNC_TOKEN_KEY;

  beforeAll(async () => {
    process.env.QOBRA_SYNC_TOKEN_KEY = newTokenKey();
    const port = await freePort();
    fx = await opsFixture(
      "webc",
      ROWS,
      `\nhttp: { port: ${port}, host: 127.0.0.1, tokens: [{ token: "${TOKEN}", tenants: ["*"] }, { token: "${ACME_TOKEN}", tenants: ["acme"] }] }\ntenantNetwork: { allow: ["127.0.0.1", "::1", "localhost"] }\n`,
    );
    config = testConfig(fx.yaml.replace(`  schema: ${fx.sinkSchema}\n`, `  schema: ${fx.sinkSchema}\n  tenantSchema: ${fx.sinkSchema}_<tenant>\n`));
    base = `http://127.0.0.1:${port}`;
    pipeline = await runRoles(config, ["producer", "mapper", "sink"]);
    browser = await launchChromium();
  });

  afterAll(async () => {
    await browser?.close();
    await pipeline?.stop();
    await sinkQuery(`DROP SCHEMA IF EXISTS "${fx.sinkSchema}_acme" CASCADE`).catch(() => {});
    if (savedKey === undefined) delete process.env.QOBRA_SYNC_TOKEN_KEY;
    else process.env.QOBRA_SYNC_TOKEN_KEY = savedKey;
  });

  it("adds a PostgreSQL connector through the form, tests it, syncs it and shows its rows counted", async () => {
    const page = await browser.context.newPage();
    const errors: string[] = [];
    page.on("pageerror", (e) => errors.push(e.message));
    page.on("console", (m) => {
      if (m.type() === "error" && /Content Security Policy|Refused to/i.test(m.text())) errors.push(m.text());
    });
    await page.goto(`${base}/`);
    await page.locator("#login-token").fill(TOKEN);
    await page.locator('#login-form button[type="submit"]').click();
    await page.locator('[data-testid="tenant-connectors"]').waitFor({ state: "visible", timeout: 20_000 });

    await page.locator("#tenant-id").fill("acme");
    await page.locator('#tenant-form button[type="submit"]').click();
    await expectText(page.locator('[data-testid="tenant-list"]'), "No connector for this tenant yet.");
    await page.locator('[data-testid="add-connector"]').click();
    const form = page.locator('[data-testid="connector-form"]');
    await form.waitFor({ state: "visible", timeout: 10_000 });
    // The form is built from the plugin's schema: the connection's keys are there, the URL a password input (a secret).
    expect(await form.locator('input[name="f:connection.url"]').getAttribute("type")).toBe("password");
    expect(await form.locator('input[name="f:connection.allowSuperuser"]').getAttribute("type")).toBe("checkbox");

    const password = `pw-${randomBytes(8).toString("hex")}`;
    const url = new URL(dbUrl(SOURCE_DB));
    url.password = password; // the local PostgreSQL trusts: any password connects
    await form.locator('input[name="connectorId"]').fill("crm");
    await form.locator('input[name="f:connection.url"]').fill(url.toString());
    await form.locator('input[name="f:connection.allowSuperuser"]').check();
    // A wrong field first: the server's validation names it under the form.
    const tables = (fields: Record<string, unknown>) =>
      JSON.stringify([{ name: "deals", source: `public.${fx.table}`, idColumn: "id", nameColumn: "title", fields }]);
    await form.locator('textarea[name="tables"]').fill(tables({ amount: "money" }));
    await form.locator('button[type="submit"]').click();
    await expectText(form.locator('[data-testid="editor-message"]'), "tables[0].fields.amount");
    await form.locator('textarea[name="tables"]').fill(tables({ amount: { type: "amount", currencyColumn: "currency" }, closed_on: "date" }));
    await form.locator('button[type="submit"]').click();
    await expectText(page.locator('[data-testid="tenant-message"]'), "Connector crm saved");
    const row = page.locator('tr[data-tenant-connector="crm"]');
    await row.waitFor({ state: "visible", timeout: 10_000 });

    await row.locator('button[data-editor="check"]').click();
    await expectText(page.locator('[data-testid="tenant-message"]'), "crm: connection and tables OK", 40_000);
    await row.locator('button[data-editor="sync"]').click();
    await expectText(page.locator('[data-testid="tenant-message"]'), "Full sync of crm requested");

    // The pipeline's view (the operator's) counts the new connector's rows once they are in Qobra.
    const card = page.locator('section[data-connector="acme.crm"]');
    await expectText(card.locator('tr[data-table="deals"] [data-field="rows"]'), String(ROWS), 90_000);
    const sunk = await sinkQuery<{ n: string }>(`SELECT count(*) AS n FROM "${fx.sinkSchema}_acme"."crm__deals"`);
    expect(sunk[0]!.n).toBe(String(ROWS));

    // Editing shows the secret masked, never the password itself.
    await row.locator('button[data-editor="edit"]').click();
    expect(await form.locator('input[name="f:connection.url"]').inputValue()).toBe("********");
    expect(await page.content()).not.toContain(password);
    // Nothing was ever submitted by the browser itself (a GET form would put the password in the URL).
    expect(page.url()).toBe(`${base}/`);
    expect(errors).toEqual([]);
    await page.close();
  });

  it("a tenant's login shows its pipeline: its connector's card, runs, lag and health; not the file's connector", async () => {
    const page = await browser.context.newPage();
    const errors: string[] = [];
    page.on("pageerror", (e) => errors.push(e.message));
    await browser.context.clearCookies(); // the operator's session of the test before
    await page.goto(`${base}/`);
    await page.locator("#login-token").fill(ACME_TOKEN);
    await page.locator('#login-form button[type="submit"]').click();
    const card = page.locator('section[data-connector="acme.crm"]');
    await expectText(card.locator('tr[data-table="deals"] [data-field="rows"]'), String(ROWS), 30_000);
    expect(await card.locator('[data-field="runs"] tr[data-run]').count()).toBeGreaterThan(0);
    // the file's connector (no tenant) is an operator's
    expect(await page.locator('section[data-connector="crm"]').count()).toBe(0);
    expect(await page.locator('[data-testid="health"]').isVisible()).toBe(true);
    expect(await page.locator("#lag-card").isVisible()).toBe(true);
    const partitions = await page.locator("[data-partition]").evaluateAll((els) => els.map((el) => el.getAttribute("data-partition") ?? ""));
    expect(partitions.length).toBeGreaterThan(0);
    expect(partitions.every((p) => p.includes(".acme.crm"))).toBe(true);
    // its connectors' editor opens on its tenant
    await page.locator('tr[data-tenant-connector="crm"]').waitFor({ state: "visible", timeout: 10_000 });
    expect(errors).toEqual([]);
    await page.close();
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
        ).replace(/\s+/g, " "),
      { timeout: timeoutMs },
    )
    .toContain(text);
}
