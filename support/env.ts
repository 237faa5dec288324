/**
 * Unique names, scratch PostgreSQL databases, a scratch token store and test configs: used by the
 * integration tests, the benchmarks (bench/) and the reliability suite (chaos/).
 */
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { type Config, parseConfig } from "../app/config.ts";
import { stackDefaults } from "../stack/stack.ts";

export const adminUrl = stackDefaults.postgresUrl;

export function uniqueId(prefix = "t"): string {
  return `${prefix}${Date.now().toString(36)}${randomBytes(3).toString("hex")}`;
}

export function dbUrl(database: string): string {
  const u = new URL(adminUrl);
  u.pathname = `/${database}`;
  return u.toString();
}

export async function ensureDatabase(name: string): Promise<void> {
  const c = new pg.Client({ connectionString: adminUrl });
  await c.connect();
  try {
    const r = await c.query("SELECT 1 FROM pg_database WHERE datname = $1", [name]);
    if (r.rowCount === 0)
      await c.query(`CREATE DATABASE "${name}"`).catch((e: { code?: string }) => {
        if (e.code !== "42P04" && e.code !== "23505") throw e;
      });
  } finally {
    await c.end();
  }
}

/** A token-store key as the store requires one: 32 random bytes, base64 (`openssl rand -base64 32`). */
export const newTokenKey = (): string => randomBytes(32).toString("base64");

/**
 * A scratch encrypted token store for connectors that keep OAuth tokens (Salesforce): points
 * QOBRA_SYNC_TOKEN_DIR / _KEY at a new temporary folder; `restore()` puts the environment back
 * and deletes the folder.
 */
export function useScratchTokenStore(prefix: string): { dir: string; restore(): void } {
  const saved = { dir: process.env.QOBRA_SYNC_TOKEN_DIR, key: process.env.QOBRA_SYNC_TOKEN_KEY };
  const dir = mkdtempSync(join(tmpdir(), prefix));
  process.env.QOBRA_SYNC_TOKEN_DIR = dir;
  process.env.QOBRA_SYNC_TOKEN_KEY = newTokenKey();
  return {
    dir,
    restore() {
      if (saved.dir === undefined) delete process.env.QOBRA_SYNC_TOKEN_DIR;
      else process.env.QOBRA_SYNC_TOKEN_DIR = saved.dir;
      if (saved.key === undefined) delete process.env.QOBRA_SYNC_TOKEN_KEY;
      else process.env.QOBRA_SYNC_TOKEN_KEY = saved.key;
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/**
 * Runs `fn` with a client connected to `database`, then closes it. A connection error after the
 * connect (PostgreSQL restarted or terminating backends, as the reliability suite does) fails the
 * pending query, not the process.
 */
export async function withDb<T>(database: string, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client({ connectionString: dbUrl(database) });
  c.on("error", () => undefined);
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end().catch(() => undefined);
  }
}

/** A config document for one PostgreSQL connector, with unique topic prefix and sink schema. */
/** The part of a test config before `connectors:`: the local stack, a topic prefix, a sink schema. */
export function pipelineHeaderYaml(opts: { prefix: string; sinkDb: string; sinkSchema: string; defaultCurrency?: string }): string {
  return `kafka: { brokers: ${JSON.stringify(stackDefaults.kafkaBrokers)}, partitions: 2 }
schemaRegistry: { url: "${stackDefaults.registryUrl}" }
topicPrefix: ${opts.prefix}
sink:
  databaseUrl: "${dbUrl(opts.sinkDb)}"
  schema: ${opts.sinkSchema}
  defaultCurrency: ${opts.defaultCurrency ?? "EUR"}
`;
}

export function testConfigYaml(opts: { prefix: string; sinkSchema: string; sourceDb: string; sinkDb: string; tables: string }): string {
  return `
${pipelineHeaderYaml(opts)}connectors:
  - id: crm
    type: postgres
    connection: { url: "${dbUrl(opts.sourceDb)}", allowSuperuser: true }
    timestampTimezone: "Europe/Paris"
    tables:
${opts.tables}`;
}

export function testConfig(yaml: string): Config {
  return parseConfig(yaml, "test config", {});
}
