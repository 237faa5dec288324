/** The CLI as a user runs it: clear one-line errors and exit codes for bad input. */
import { execFile } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { stackDefaults } from "../../stack/stack.ts";

const run = promisify(execFile);
const dir = mkdtempSync(join(tmpdir(), "qobra-cli-"));

async function cli(args: string[], configText?: string): Promise<{ code: number; stdout: string; stderr: string }> {
  const file = join(dir, `c${Math.random().toString(36).slice(2)}.yaml`);
  if (configText !== undefined) writeFileSync(file, configText);
  try {
    const r = await run(process.execPath, ["bin/qobra-sync.js", ...(configText !== undefined ? ["-c", file] : []), ...args], {
      timeout: 60_000,
      env: { ...process.env, QOBRA_SYNC_LOG_LEVEL: "silent", QOBRA_SYNC_LOG_FILE: join(dir, "cli.log") },
    });
    return { code: 0, stdout: r.stdout, stderr: r.stderr };
  } catch (e) {
    const err = e as { code: number; stdout: string; stderr: string };
    return { code: err.code, stdout: err.stdout, stderr: err.stderr };
  }
}

const good = (patch: (s: string) => string = (s) => s) =>
  patch(`
kafka: { brokers: ${JSON.stringify(stackDefaults.kafkaBrokers)} }
schemaRegistry: { url: "${stackDefaults.registryUrl}" }
sink: { databaseUrl: "postgres://postgres@127.0.0.1:5432/qobra", defaultCurrency: EUR }
connectors:
  - id: crm
    type: postgres
    connection: { url: "postgres://postgres@127.0.0.1:5432/postgres", allowSuperuser: true }
    tables:
      - { name: deals, source: public.no_such_table, idColumn: id, nameColumn: title, fields: { amount: number } }
`);

describe("qobra-sync CLI", () => {
  it("rejects an unknown connector type with one clear line and exit 2", async () => {
    const r = await cli(
      ["sync", "crm"],
      good((s) => s.replace("type: postgres", "type: oracle")),
    );
    expect(r.code).toBe(2);
    expect(r.stderr.trim()).toMatch(/^qobra-sync: .*connectors\[0\]\.type: unknown connector type "oracle"; this version supports postgres/);
    expect(r.stderr.trim().split("\n")).toHaveLength(1);
  });

  it("rejects a table without idColumn, naming the path", async () => {
    const r = await cli(
      ["sync", "crm"],
      good((s) => s.replace("idColumn: id, ", "")),
    );
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/connectors\[0\]\.tables\[0\]\.idColumn: is required/);
    expect(r.stderr).not.toMatch(/\n\s+at /); // no stack trace
  });

  it("reports an unreachable broker in seconds, non-zero", async () => {
    const started = Date.now();
    const r = await cli(
      ["sync", "crm", "--wait"],
      good((s) => s.replace(stackDefaults.kafkaBrokers[0]!, "127.0.0.1:1")),
    );
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/cannot reach the Kafka broker at 127\.0\.0\.1:1/);
    expect(Date.now() - started).toBeLessThan(20_000);
  });

  it("check reports a missing source table as a problem, exit 1", async () => {
    const r = await cli(["check", "crm"], good());
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/FAIL crm\.deals/);
    expect(r.stdout).toMatch(/public\.no_such_table does not exist/);
  });

  it("names an unknown connector and a missing config file", async () => {
    expect((await cli(["sync", "nope"], good())).stderr).toMatch(/no connector "nope" in the config; known: crm/);
    const missing = await cli(["-c", "/nonexistent.yaml", "sync", "crm"]);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/cannot read the config file \/nonexistent\.yaml/);
  });

  it("has --help on every command", async () => {
    for (const cmd of [[], ["run"], ["sync"], ["check"], ["stack"], ["simulate"]]) {
      const r = await cli([...cmd, "--help"]);
      expect(r.code, cmd.join(" ")).toBe(0);
      expect(r.stdout).toMatch(/Usage: qobra-sync/);
    }
  });
});
