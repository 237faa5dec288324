/**
 * No secret in any message (issue 14, item 3), through the real broker, registry, PostgreSQL and
 * CLI: a config whose sink URL, registry URL and source URLs carry passwords holding `#`, `/`,
 * `?`, `@` and percent-encoding runs `qobra-sync run` as a real process (its standard output and
 * error are the logs); two syncs against a source on a closed port fail (RUN_FAILED on the events
 * topic, once through `qobra-sync sync --wait`), `qobra-sync check` fails, `GET /api/state` shows
 * the failures, a bad config is refused — and no piece of any password appears anywhere. The
 * passwords work too: the sink's (trust auth ignores it) and the registry's (basic auth, which the
 * local Apicurio ignores) reach the servers whole.
 *
 * And the users query runs READ ONLY (item 8's second guard): a SELECT calling a function that
 * writes loads nothing and writes nothing.
 */
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Config, parseConfig } from "../../app/config.ts";
import { UserDirectory } from "../../consumers/mapping/users.ts";
import { createPool } from "../../lib/pg.ts";
import { openRuntime, type Runtime } from "../../lib/runtime.ts";
import { stackDefaults } from "../../stack/stack.ts";
import { dbUrl, ensureDatabase, uniqueId, withDb } from "../../support/env.ts";
import { eventually, freePort } from "../../support/ops.ts";
import { syncAndWait } from "../../support/pipeline.ts";
import { leaks } from "../unit/secrets-fixtures.ts";

const SINK_DB = "qobra_it_sink";
// Every piece between two special characters has 4+ characters, so a piece left behind by a
// half-working redaction is caught (test/unit/secrets-fixtures.ts).
const PASSWORDS = {
  sink: "Snkx#P4ss/w0rd?qrst@Vxyz",
  registry: "Rgab#Pwcd%2F@Zqrs/Kxyz",
  gone: "Gnat#S3cr3t/Xqzw?Wvuk@Yzor",
  encoded: "pass%40Word%23Quux%2Fkilo",
};
const ALL = Object.values(PASSWORDS);
const API_TOKEN = "Ap1T0k3n-7f3c9a1e5b2d8c4f6a0e9b7d5c3a1f8e";

const dir = mkdtempSync(join(tmpdir(), "qobra-secrets-"));
const file = join(dir, "config.yaml");
let id: string;
let deadPort: number;
let httpPort: number;
let env: NodeJS.ProcessEnv;
let config: Config;
let rt: Runtime;
let child: ChildProcess | undefined;
let childOutput = "";

function configText(extra = ""): string {
  const url = (pw: string) => `postgres://reader:${pw}@127.0.0.1:${deadPort}/crm`;
  return `
kafka: { brokers: ${JSON.stringify(stackDefaults.kafkaBrokers)}, partitions: 1 }
schemaRegistry: { url: "\${env:QS_REGISTRY_URL}" }
topicPrefix: ${id}
sink: { databaseUrl: "${dbUrl(SINK_DB).replace("postgres://postgres@", `postgres://postgres:${PASSWORDS.sink}@`)}", schema: sink_${id}, defaultCurrency: EUR }
producer: { retryForSeconds: 0 }
http: { port: ${httpPort}, host: 127.0.0.1, tokens: [{ token: "\${env:QS_API_TOKEN}", tenants: ["*"] }] }
connectors:
  - id: gone
    type: postgres
    connection: { url: "${url(PASSWORDS.gone)}" }
    tables: [{ name: deals, source: public.deals, idColumn: id, nameColumn: title }]
  - id: encoded
    type: postgres
    connection: { url: "${url(PASSWORDS.encoded)}" }
    tables: [{ name: deals, source: public.deals, idColumn: id, nameColumn: title }]
${extra}`;
}

/** The CLI as a user runs it, with the config file and the environment; logs at debug level on standard error (`--verbose`), so they are checked too. */
function cli(args: string[], text = configText()): Promise<{ code: number; out: string }> {
  const path = join(dir, `c-${Math.random().toString(36).slice(2)}.yaml`);
  writeFileSync(path, text);
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ["bin/qobra-sync.js", "-c", path, "--verbose", ...args],
      { timeout: 120_000, maxBuffer: 16 * 1024 * 1024, env: { ...env, QOBRA_SYNC_LOG_LEVEL: "debug" } },
      (err, stdout, stderr) => resolve({ code: err ? (typeof err.code === "number" ? err.code : 1) : 0, out: `${stdout}\n${stderr}` }),
    );
  });
}

beforeAll(async () => {
  id = uniqueId("sec");
  deadPort = await freePort();
  httpPort = await freePort();
  await ensureDatabase(SINK_DB);
  env = {
    ...process.env,
    QS_REGISTRY_URL: stackDefaults.registryUrl.replace("http://", `http://reg:${PASSWORDS.registry}@`),
    QS_API_TOKEN: API_TOKEN,
  };
  writeFileSync(file, configText());
  config = parseConfig(configText(), "test", env);
  rt = await openRuntime(config, "test");
  child = spawn(process.execPath, ["bin/qobra-sync.js", "-c", file, "run", "--roles", "producer"], {
    env: { ...env, QOBRA_SYNC_LOG_LEVEL: "debug" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  child.stdout!.on("data", (d: Buffer) => (childOutput += d.toString()));
  child.stderr!.on("data", (d: Buffer) => (childOutput += d.toString()));
  await eventually(async () => /qobra-sync running/.test(childOutput) || (child!.exitCode !== null ? "exited" : false), {
    timeoutMs: 60_000,
    what: "qobra-sync run to start",
  });
  expect(child.exitCode, childOutput.slice(-2000)).toBeNull();
});

afterAll(async () => {
  if (child && child.exitCode === null) {
    const exited = new Promise((r) => child!.once("exit", r));
    child.kill("SIGTERM");
    await exited;
  }
  await rt?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe("no password in any message, whatever it holds", () => {
  it("a run failure (RUN_FAILED on the events topic) names host, port and database only", async () => {
    const event = await syncAndWait(rt, "gone", { full: true, timeoutMs: 90_000 });
    expect(event.type).toBe("RUN_FAILED");
    expect(event.error).toContain(`PostgreSQL at 127.0.0.1:${deadPort}/crm refused the connection`);
    expect(leaks(JSON.stringify(event), ...ALL)).toEqual([]);
  });

  it("so does `qobra-sync sync --wait` printing one", async () => {
    const r = await cli(["sync", "encoded", "--full", "--wait", "--json", "--timeout", "90"]);
    expect(r.code).toBe(1);
    expect(r.out).toContain(`PostgreSQL at 127.0.0.1:${deadPort}/crm refused the connection`);
    expect(leaks(r.out, ...ALL)).toEqual([]);
  });

  it("`qobra-sync check` does too", async () => {
    for (const connector of ["gone", "encoded"]) {
      const r = await cli(["check", connector]);
      expect(r.code).toBe(1);
      expect(r.out).toContain(`connector ${connector}: PostgreSQL at 127.0.0.1:${deadPort}/crm refused the connection`);
      expect(leaks(r.out, ...ALL)).toEqual([]);
    }
  });

  it("a config error does too", async () => {
    const r = await cli(["check", "gone"], configText().replace("idColumn: id, nameColumn: title }", "idColumn: id, nameColumn: title, idColum: x }"));
    expect(r.code).toBe(2);
    expect(r.out).toMatch(/unknown key idColum/);
    expect(leaks(r.out, ...ALL)).toEqual([]);
  });

  it("the settings page's state (GET /api/state) shows the failed runs, without a password", async () => {
    const text = await eventually(
      async () => {
        const res = await fetch(`http://127.0.0.1:${httpPort}/api/state`, { headers: { authorization: `Bearer ${API_TOKEN}` } });
        const body = await res.text();
        return res.status === 200 && (body.match(/refused the connection/g) ?? []).length >= 2 ? body : null;
      },
      { timeoutMs: 30_000, what: "both failed runs on /api/state" },
    );
    expect(text).toContain(`127.0.0.1:${deadPort}/crm`);
    expect(leaks(text, ...ALL)).toEqual([]);
  });

  it("the logs of the running process (debug level) hold the failures, without a password", async () => {
    await eventually(async () => childOutput.includes(`127.0.0.1:${deadPort}/crm`), { timeoutMs: 10_000, what: "the failure in the logs" });
    expect(childOutput.split("\n").length).toBeGreaterThan(5);
    expect(leaks(childOutput, ...ALL)).toEqual([]);
  });
});

describe("the users query runs READ ONLY", () => {
  it("a SELECT through a function that writes loads nothing and writes nothing; a plain one loads", async () => {
    const schema = `users_${id}`;
    await withDb(SINK_DB, (c) =>
      c.query(`
        CREATE SCHEMA ${schema};
        CREATE TABLE ${schema}.users (id text PRIMARY KEY, email text);
        INSERT INTO ${schema}.users VALUES ('u1', 'ada@example.com');
        CREATE TABLE ${schema}.written (at timestamptz DEFAULT now());
        CREATE FUNCTION ${schema}.users_that_write() RETURNS SETOF ${schema}.users LANGUAGE plpgsql VOLATILE AS $$
        BEGIN
          INSERT INTO ${schema}.written DEFAULT VALUES;
          RETURN QUERY SELECT * FROM ${schema}.users;
        END $$;`),
    );
    const pool = createPool(dbUrl(SINK_DB), { max: 1 });
    try {
      const writing = new UserDirectory(pool, `SELECT id, email FROM ${schema}.users_that_write()`, 3600);
      await writing.reload();
      expect(writing.snapshot().size).toBe(0);
      const written = await withDb(SINK_DB, (c) => c.query<{ n: string }>(`SELECT count(*)::text AS n FROM ${schema}.written`));
      expect(written.rows[0]!.n).toBe("0");
      const plain = new UserDirectory(pool, `SELECT id, email FROM ${schema}.users`, 3600);
      await plain.reload();
      expect(plain.snapshot().lookup("ADA@example.com")).toBe("u1");
    } finally {
      await pool.end();
      await withDb(SINK_DB, (c) => c.query(`DROP SCHEMA ${schema} CASCADE`));
    }
  });
});
