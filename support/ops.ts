/** Helpers of the operations tests (lag, replay, web, schedules): a small PostgreSQL source, a config with unique names, HTTP, the CLI. */
import { createServer } from "node:net";
import type { Config } from "../app/config.ts";
import { ensureDatabase, testConfig, testConfigYaml, uniqueId, withDb } from "./env.ts";

export const SOURCE_DB = "qobra_it_source";
const SINK_DB = "qobra_it_sink";

export interface OpsFixture {
  id: string;
  table: string;
  sinkSchema: string;
  config: Config;
  yaml: string;
}

/** A source table `deals_<id>` with `rows` rows and a config syncing it as crm.deals. */
export async function opsFixture(prefix: string, rows: number, extraYaml = ""): Promise<OpsFixture> {
  const id = uniqueId(prefix);
  const table = `deals_${id}`;
  const sinkSchema = `sink_${id}`;
  await ensureDatabase(SOURCE_DB);
  await ensureDatabase(SINK_DB);
  await withDb(SOURCE_DB, (c) =>
    c.query(`
    CREATE TABLE public.${table} (id bigint PRIMARY KEY, title text NOT NULL, amount numeric(18,4), currency text, closed_on date);
    INSERT INTO public.${table} SELECT g, 'Deal ' || g, g * 10.5, 'EUR', DATE '2026-01-01' + g % 30 FROM generate_series(1, ${rows}) g;`),
  );
  const yaml =
    testConfigYaml({
      prefix: id,
      sinkSchema,
      sourceDb: SOURCE_DB,
      sinkDb: SINK_DB,
      tables: `
      - name: deals
        source: public.${table}
        idColumn: id
        nameColumn: title
        fields: { amount: { type: amount, currencyColumn: currency }, closed_on: date }`,
      // No Qobra users in these tests: an empty directory, without a failing query.
    }).replace("  defaultCurrency: EUR\n", `  defaultCurrency: EUR\n  users: { query: "SELECT NULL::text AS id, NULL::text AS email WHERE false" }\n`) +
    extraYaml;
  const config = testConfig(yaml);
  return { id, table, sinkSchema, config, yaml };
}

export async function addRows(table: string, from: number, count: number): Promise<void> {
  await withDb(SOURCE_DB, (c) =>
    c.query(`INSERT INTO public.${table} SELECT g, 'Deal ' || g, g * 10.5, 'EUR', DATE '2026-01-01' + g % 30 FROM generate_series($1::int, $2::int) g`, [
      from,
      from + count - 1,
    ]),
  );
}

export const sinkQuery = <T extends Record<string, unknown>>(sql: string, params: unknown[] = []) =>
  withDb(SINK_DB, async (c) => (await c.query<T>(sql, params)).rows);

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, "127.0.0.1", () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

export async function getText(url: string): Promise<{ status: number; text: string }> {
  const res = await fetch(url);
  return { status: res.status, text: await res.text() };
}

/** Waits until `fn` returns a truthy value (polling), or fails with the last value seen. */
export async function eventually<T>(fn: () => Promise<T>, opts: { timeoutMs?: number; intervalMs?: number; what?: string } = {}): Promise<NonNullable<T>> {
  const deadline = Date.now() + (opts.timeoutMs ?? 30_000);
  let last: T | undefined;
  for (;;) {
    last = await fn();
    if (last) return last as NonNullable<T>;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${opts.what ?? "a condition"} (last: ${JSON.stringify(last)})`);
    await new Promise((r) => setTimeout(r, opts.intervalMs ?? 250));
  }
}

/** The value of a Prometheus sample (first line matching the metric name and every label). */
export function metricValue(text: string, name: string, labels: Record<string, string> = {}): number | null {
  for (const line of text.split("\n")) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    if (!Object.entries(labels).every(([k, v]) => line.includes(`${k}="${v}"`))) continue;
    return Number(line.slice(line.lastIndexOf(" ") + 1));
  }
  return null;
}

/** Runs the qobra-sync CLI with a config text; never throws for a non-zero exit. */
export async function cli(args: string[], configText: string, timeoutMs = 90_000): Promise<{ code: number; stdout: string; stderr: string }> {
  const { execFile } = await import("node:child_process");
  const { mkdtempSync, rmSync, writeFileSync } = await import("node:fs");
  const { tmpdir } = await import("node:os");
  const { join } = await import("node:path");
  const dir = mkdtempSync(join(tmpdir(), "qobra-ops-"));
  const file = join(dir, "config.yaml");
  writeFileSync(file, configText);
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ["bin/qobra-sync.js", "-c", file, ...args],
      { timeout: timeoutMs, maxBuffer: 16 * 1024 * 1024, env: { ...process.env, QOBRA_SYNC_LOG_LEVEL: "silent" } },
      (err, stdout, stderr) => {
        rmSync(dir, { recursive: true, force: true });
        resolve({ code: err ? (typeof err.code === "number" ? err.code : 1) : 0, stdout, stderr });
      },
    );
  });
}
