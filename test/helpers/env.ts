/** Shared helpers of the integration tests: unique names, a scratch source database, configs. */
import { randomBytes } from "node:crypto";
import pg from "pg";
import { parseConfig, type Config } from "../../lib/config.ts";
import { stackDefaults } from "../../stack/stack.ts";

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
    if (r.rowCount === 0) await c.query(`CREATE DATABASE "${name}"`).catch((e: { code?: string }) => { if (e.code !== "42P04" && e.code !== "23505") throw e; });
  } finally {
    await c.end();
  }
}

export async function withDb<T>(database: string, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client({ connectionString: dbUrl(database) });
  await c.connect();
  try { return await fn(c); } finally { await c.end(); }
}

/** A config document for one PostgreSQL connector, with unique topic prefix and sink schema. */
export function testConfigYaml(opts: { prefix: string; sinkSchema: string; sourceDb: string; sinkDb: string; tables: string }): string {
  return `
kafka: { brokers: ${JSON.stringify(stackDefaults.kafkaBrokers)}, partitions: 2 }
schemaRegistry: { url: "${stackDefaults.registryUrl}" }
topicPrefix: ${opts.prefix}
sink:
  databaseUrl: "${dbUrl(opts.sinkDb)}"
  schema: ${opts.sinkSchema}
  defaultCurrency: EUR
connectors:
  - id: crm
    type: postgres
    connection: { url: "${dbUrl(opts.sourceDb)}" }
    timestampTimezone: "Europe/Paris"
    tables:
${opts.tables}`;
}

export function testConfig(yaml: string): Config {
  return parseConfig(yaml, "test config", {});
}
