/**
 * The configuration file: one YAML document, validated once at start-up with zod.
 * `${env:NAME}` anywhere in a string value is replaced by that environment variable (secrets).
 * Errors name the path of the bad key and what would fix it. The shape is a public contract:
 * extend it, don't rename it.
 */
import { readFileSync } from "node:fs";
import { parseDocument } from "yaml";
import { z } from "zod";
import { ConfigError } from "./errors.ts";
import {
  CONNECTOR_ID, CURRENCY_CODE, FIELD_NAME, FieldEntry, SQL_IDENT, TABLE_NAME, TIME_ZONE, checkFields, required,
} from "./config-common.ts";
import { HubSpotConnector } from "./config-hubspot.ts";
import { SalesforceConnector } from "./config-salesforce.ts";

export { QOBRA_TYPES, FieldSpec, type QobraType } from "./config-common.ts";

export const PostgresTable = z.strictObject({
  name: TABLE_NAME.describe("The Qobra table name."),
  source: z.string(required("the source table or view, as schema.table or table")).min(1),
  idColumn: z.string(required("the column holding each row's unique id (primary key or unique)")).min(1),
  nameColumn: z.string(required("the column holding each row's display name")).min(1),
  where: z.string().optional().describe("A SQL WHERE condition limiting the rows synced."),
  updatedAtColumn: z.string().optional().describe("A column holding the row's last change time, copied to _source_updated_at."),
  fields: z.record(FIELD_NAME, FieldEntry).default({}).describe("Source column → Qobra type."),
}).superRefine((t, ctx) => checkFields(t.fields, ctx));
export type PostgresTable = z.infer<typeof PostgresTable>;

const HOUR = z.number().int().min(0).max(23);
export const PostgresSchedule = z.strictObject({
  timesPerDay: z.number().int().min(1).max(24).default(4).describe("Full refreshes a day, spread evenly from midnight unless hours is given."),
  hours: z.array(HOUR).optional().describe("The hours (0-23, local to timezone) of the refreshes; overrides timesPerDay's spacing."),
  timezone: TIME_ZONE.default("UTC"),
  enabled: z.boolean().default(true),
});

const SslOptions = z.strictObject({
  mode: z.enum(["disable", "require", "verify-ca", "verify-full"]).default("verify-full")
    .describe("require: encrypted, certificate not checked; verify-ca / verify-full: checked against ca (verify-full also checks the host name)."),
  ca: z.string().optional().describe("PEM of the CA that signed the server's certificate (or a path to it)."),
  cert: z.string().optional().describe("Client certificate PEM (or path), for certificate authentication."),
  key: z.string().optional().describe("Client key PEM (or path)."),
});

/** How to reach the source: a URL, discrete fields, or a Cloud SQL instance through Google's connector. */
export const PostgresConnection = z.strictObject({
  url: z.string().regex(/^postgres(ql)?:\/\//, { error: "must start with postgres://" }).optional()
    .describe("postgres://user:password@host:port/database of a read-only account."),
  host: z.string().optional(),
  port: z.number().int().min(1).max(65535).default(5432),
  database: z.string().optional(),
  user: z.string().optional(),
  password: z.string().optional(),
  ssl: SslOptions.optional(),
  cloudSql: z.strictObject({
    instanceConnectionName: z.string().regex(/^[a-z0-9-:.]+:[a-z0-9-]+:[a-z0-9-]+$/, { error: "must be project:region:instance" }),
    ipType: z.enum(["PUBLIC", "PRIVATE", "PSC"]).default("PUBLIC"),
    iamAuth: z.boolean().default(true).describe("IAM database authentication as the service account (user = the account's email without .gserviceaccount.com)."),
    credentialsFile: z.string().optional().describe("Service-account key file; else Application Default Credentials (GOOGLE_APPLICATION_CREDENTIALS, metadata server)."),
  }).optional(),
  statementTimeoutMs: z.number().int().positive().default(300_000),
}).superRefine((c, ctx) => {
  const ways = [c.url !== undefined, c.host !== undefined, c.cloudSql !== undefined].filter(Boolean).length;
  if (ways !== 1) ctx.addIssue({ code: "custom", path: [], message: "give exactly one of url, host (with database, user, password) or cloudSql (with database, user)" });
  if ((c.host || c.cloudSql) && (!c.database || !c.user)) ctx.addIssue({ code: "custom", path: [], message: "database and user are required with host or cloudSql" });
  if (c.cloudSql && !c.cloudSql.iamAuth && c.password === undefined) ctx.addIssue({ code: "custom", path: ["password"], message: "is required when cloudSql.iamAuth is false" });
  if (c.cloudSql && c.ssl) ctx.addIssue({ code: "custom", path: ["ssl"], message: "does not apply to cloudSql: the Cloud SQL connector encrypts the connection itself" });
});
export type PostgresConnection = z.infer<typeof PostgresConnection>;

export const PostgresConnector = z.strictObject({
  id: CONNECTOR_ID,
  type: z.literal("postgres"),
  connection: PostgresConnection,
  schedule: PostgresSchedule.optional(),
  timestampTimezone: TIME_ZONE.default("UTC")
    .describe("The zone in which TIMESTAMP WITHOUT TIME ZONE values are read."),
  defaultCurrency: CURRENCY_CODE.optional(),
  massDeleteThreshold: z.number().min(0).max(1).default(0.3)
    .describe("A full run that would delete more than this share of a table's records stops and asks (sync --full --force-deletes)."),
  tables: z.array(PostgresTable).min(1, { error: "list at least one table to sync" }),
});
export type PostgresConnector = z.infer<typeof PostgresConnector>;

/** Every connector type's config schema. A new source adds its line here and in producers/connector.ts. */
const CONNECTOR_SCHEMAS = {
  postgres: PostgresConnector,
  hubspot: HubSpotConnector,
  salesforce: SalesforceConnector,
} as const;
export const CONNECTOR_TYPES = Object.keys(CONNECTOR_SCHEMAS) as Array<keyof typeof CONNECTOR_SCHEMAS>;
export type ConnectorConfig = z.infer<(typeof CONNECTOR_SCHEMAS)[keyof typeof CONNECTOR_SCHEMAS]>;
/** What every connector's table config has: the Qobra table name and its fields. */
export type TableConfig = ConnectorConfig["tables"][number];

const Connector = z.custom<unknown>().transform((c, ctx): ConnectorConfig => {
  const type = (c as { type?: unknown } | null)?.type;
  if (typeof type === "string" && Object.hasOwn(CONNECTOR_SCHEMAS, type)) {
    const r = CONNECTOR_SCHEMAS[type as keyof typeof CONNECTOR_SCHEMAS].safeParse(c);
    if (r.success) return r.data;
    for (const issue of r.error.issues) ctx.addIssue({ code: "custom", path: issue.path, message: humanMessage(issue) });
    return z.NEVER;
  }
  ctx.addIssue({
    code: "custom", path: ["type"],
    message: type === undefined
      ? `is required: the connector type (${CONNECTOR_TYPES.join(", ")})`
      : `unknown connector type ${JSON.stringify(type)}; this version supports ${CONNECTOR_TYPES.join(", ")}`,
  });
  return z.NEVER;
});

export const Config = z.strictObject({
  kafka: z.strictObject({
    brokers: z.array(z.string().regex(/^[^:\s]+:\d+$/, { error: "must be host:port" })).min(1, { error: "list at least one broker host:port" }),
    clientId: z.string().default("qobra-sync"),
    partitions: z.number().int().min(1).default(3).describe("Partitions of the topics the pipeline creates."),
    replicationFactor: z.number().int().min(1).default(1),
  }),
  schemaRegistry: z.strictObject({
    url: z.string().url({ error: "must be the registry's Confluent-compatible base URL, e.g. http://127.0.0.1:8080/apis/ccompat/v7" }),
    username: z.string().optional(),
    password: z.string().optional(),
  }),
  topicPrefix: z.string().regex(/^[A-Za-z0-9._-]+$/, { error: "may hold letters, digits, '.', '_' and '-' only" }).default("qobra"),
  sink: z.strictObject({
    databaseUrl: z.string(required("the postgres:// URL of Qobra's database")).regex(/^postgres(ql)?:\/\//, { error: "must start with postgres://" }),
    schema: z.string().regex(SQL_IDENT, { error: "must be a plain SQL identifier" }).default("qobra_data"),
    defaultCurrency: CURRENCY_CODE,
    batchSize: z.number().int().min(1).max(50_000).default(5000),
    users: z.strictObject({
      query: z.string().default("SELECT id, email FROM qobra.users")
        .describe("Qobra's users: an `id` column plus the key columns user fields match (email by default, or a field's userKey)."),
      refreshSeconds: z.number().int().min(5).default(300).describe("How often the in-memory user index is reloaded (also on a miss, at most once a minute)."),
    }).default({ query: "SELECT id, email FROM qobra.users", refreshSeconds: 300 }),
  }),
  connectors: z.array(Connector).default([]),
  http: z.strictObject({
    port: z.number().int().min(0).max(65535).default(7070),
    host: z.string().default("127.0.0.1").describe("Interface to listen on; the page publishes sync requests, so keep it private or behind an authenticating proxy."),
    stallSeconds: z.number().int().min(1).default(60).describe("/healthz fails when a consumer group has lag and its committed offsets have not moved for this long."),
  }).optional().describe("Serve /metrics, /healthz and the integration-settings page from `qobra-sync run` (see docs/operations.md)."),
}).superRefine((c, ctx) => {
  const seen = new Set<string>();
  c.connectors.forEach((conn, i) => {
    if (seen.has(conn.id)) ctx.addIssue({ code: "custom", path: ["connectors", i, "id"], message: `duplicate connector id ${conn.id}` });
    seen.add(conn.id);
    const names = new Set<string>();
    conn.tables.forEach((t, j) => {
      if (names.has(t.name)) ctx.addIssue({ code: "custom", path: ["connectors", i, "tables", j, "name"], message: `duplicate table name ${t.name} in connector ${conn.id}` });
      names.add(t.name);
    });
  });
});
export type Config = z.infer<typeof Config>;

/** Replaces `${env:NAME}` in every string of a parsed YAML tree; a missing variable is a config error. */
export function interpolateEnv(value: unknown, env: NodeJS.ProcessEnv, path: (string | number)[] = [], missing: string[] = []): unknown {
  if (typeof value === "string") {
    return value.replace(/\$\{env:([A-Za-z_][A-Za-z0-9_]*)\}/g, (_m, name: string) => {
      const v = env[name];
      if (v === undefined) { missing.push(`${formatPath(path)}: environment variable ${name} is not set; export it or remove the reference`); return ""; }
      return v;
    });
  }
  if (Array.isArray(value)) return value.map((v, i) => interpolateEnv(v, env, [...path, i], missing));
  if (value && typeof value === "object") {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, interpolateEnv(v, env, [...path, k], missing)]));
  }
  return value;
}

export function formatPath(path: readonly PropertyKey[]): string {
  let out = "";
  for (const p of path) out += typeof p === "number" ? `[${p}]` : out ? `.${String(p)}` : String(p);
  return out || "(top level)";
}

/** Parses and validates a configuration document. Throws ConfigError listing every problem. */
export function parseConfig(text: string, source = "config", env: NodeJS.ProcessEnv = process.env): Config {
  const doc = parseDocument(text, { prettyErrors: true });
  if (doc.errors.length > 0) {
    throw new ConfigError(`${source} is not valid YAML: ${doc.errors.map((e) => e.message.split("\n")[0]).join("; ")}`);
  }
  const missing: string[] = [];
  const raw = interpolateEnv(doc.toJS() ?? {}, env, [], missing);
  if (missing.length > 0) throw new ConfigError(`${source}: ${missing.join("; ")}`);
  const result = Config.safeParse(raw);
  if (!result.success) {
    const problems = result.error.issues.map((i) => `${formatPath(i.path)}: ${humanMessage(i)}`);
    throw new ConfigError(`${source} is invalid: ${problems.join("; ")}`);
  }
  return result.data;
}

function humanMessage(issue: z.core.$ZodIssue): string {
  if (issue.code === "unrecognized_keys") return `unknown key${issue.keys.length > 1 ? "s" : ""} ${issue.keys.join(", ")}; check the spelling against the README's config reference`;
  if (issue.code === "invalid_type" && issue.input === undefined) return `is required (${issue.message})`;
  return issue.message;
}

/** Reads the config file named by --config, QOBRA_SYNC_CONFIG, or ./qobra-sync.yaml. */
export function loadConfig(file?: string, env: NodeJS.ProcessEnv = process.env): { config: Config; file: string } {
  const path = file ?? env.QOBRA_SYNC_CONFIG ?? "qobra-sync.yaml";
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (e) {
    throw new ConfigError(`cannot read the config file ${path} (${(e as NodeJS.ErrnoException).code ?? String(e)}); pass --config FILE or set QOBRA_SYNC_CONFIG`);
  }
  return { config: parseConfig(text, path, env), file: path };
}

export function findConnector(config: Config, id: string): ConnectorConfig {
  const c = config.connectors.find((x) => x.id === id);
  if (!c) throw new ConfigError(`no connector ${JSON.stringify(id)} in the config; known: ${config.connectors.map((x) => x.id).join(", ") || "(none)"}`);
  return c;
}
