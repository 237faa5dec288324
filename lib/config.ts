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

export const QOBRA_TYPES = [
  "string", "picklist", "multipicklist", "user", "date", "number", "amount", "percentage", "bool", "object",
] as const;
export type QobraType = (typeof QOBRA_TYPES)[number];

const SQL_IDENT = /^[A-Za-z_][A-Za-z0-9_]*$/;
const FIELD_NAME = z.string().regex(SQL_IDENT, {
  error: "must be a plain identifier (letters, digits, underscore; not starting with a digit) so it can name an Avro field and a SQL column",
});
const TABLE_NAME = z.string().regex(/^[a-z_][a-z0-9_]*$/, {
  error: "must be lower-case letters, digits and underscores (it names a Kafka topic, an Avro record and a SQL table)",
});

const qobraType = z.enum(QOBRA_TYPES, {
  error: (iss) => `unknown Qobra type ${JSON.stringify(iss.input)}; use one of ${QOBRA_TYPES.join(", ")}`,
});

export const FieldSpec = z.strictObject({
  type: qobraType.describe("The Qobra type of the field."),
  currencyColumn: z.string().optional().describe("amount: the source column holding the ISO 4217 currency code of each record."),
  currency: z.string().regex(/^[A-Z]{3}$/, { error: "must be an ISO 4217 code such as EUR" }).optional()
    .describe("amount: a fixed currency for this field (else the record's currencyColumn, else the connector's, else sink.defaultCurrency)."),
  format: z.enum(["date", "datetime"]).optional()
    .describe("date: force a calendar date or an instant; by default it follows the source column's type."),
  userKey: z.string().optional().describe("user: the Qobra users column the value matches (default: email)."),
  references: TABLE_NAME.optional().describe("object: the Qobra table the value references."),
});
export type FieldSpec = z.infer<typeof FieldSpec>;

/** A field is either a bare type name (`closed_on: date`) or an object with options. */
const FieldEntry = z.union([qobraType, FieldSpec], {
  error: (iss) => `must be a Qobra type name (${QOBRA_TYPES.join(", ")}) or an object such as { type: amount, currencyColumn: currency }`
    + (iss.input === undefined ? "" : ` (got ${JSON.stringify(iss.input)})`),
}).transform((v): FieldSpec => (typeof v === "string" ? { type: v } : v));

const required = (what: string) => ({
  error: (iss: { input?: unknown }) => (iss.input === undefined ? `is required: ${what}` : `must be a string: ${what}`),
});

export const PostgresTable = z.strictObject({
  name: TABLE_NAME.describe("The Qobra table name."),
  source: z.string(required("the source table or view, as schema.table or table")).min(1),
  idColumn: z.string(required("the column holding each row's unique id (primary key or unique)")).min(1),
  nameColumn: z.string(required("the column holding each row's display name")).min(1),
  where: z.string().optional().describe("A SQL WHERE condition limiting the rows synced."),
  updatedAtColumn: z.string().optional().describe("A column holding the row's last change time, copied to _source_updated_at."),
  fields: z.record(FIELD_NAME, FieldEntry).default({}).describe("Source column → Qobra type."),
}).superRefine((t, ctx) => {
  for (const [name, spec] of Object.entries(t.fields)) {
    if (spec.type !== "amount" && (spec.currencyColumn || spec.currency)) {
      ctx.addIssue({ code: "custom", path: ["fields", name], message: `currency options apply to amount fields only, and ${name} is ${spec.type}` });
    }
    if (name.startsWith("_")) {
      ctx.addIssue({ code: "custom", path: ["fields", name], message: "field names starting with _ are reserved for system columns (_external_id, _name, …)" });
    }
  }
});
export type PostgresTable = z.infer<typeof PostgresTable>;

const HOUR = z.number().int().min(0).max(23);
export const PostgresSchedule = z.strictObject({
  timesPerDay: z.number().int().min(1).max(24).default(4).describe("Full refreshes a day, spread evenly from midnight unless hours is given."),
  hours: z.array(HOUR).optional().describe("The hours (0-23, local to timezone) of the refreshes; overrides timesPerDay's spacing."),
  timezone: z.string().default("UTC").refine(isTimeZone, { error: "must be an IANA time zone such as Europe/Paris" }),
  enabled: z.boolean().default(true),
});

export const PostgresConnector = z.strictObject({
  id: z.string().regex(/^[a-z][a-z0-9_-]*$/, { error: "must be lower-case letters, digits, - and _, starting with a letter (it names Kafka topics)" }),
  type: z.literal("postgres"),
  connection: z.strictObject({
    url: z.string(required("a postgres:// URL for a read-only account")).regex(/^postgres(ql)?:\/\//, { error: "must start with postgres://" }),
    statementTimeoutMs: z.number().int().positive().default(300_000),
  }),
  schedule: PostgresSchedule.optional(),
  timestampTimezone: z.string().default("UTC").refine(isTimeZone, { error: "must be an IANA time zone such as Europe/Paris" })
    .describe("The zone in which TIMESTAMP WITHOUT TIME ZONE values are read."),
  defaultCurrency: z.string().regex(/^[A-Z]{3}$/).optional(),
  tables: z.array(PostgresTable).min(1, { error: "list at least one table to sync" }),
});
export type PostgresConnector = z.infer<typeof PostgresConnector>;

export const CONNECTOR_TYPES = ["postgres"] as const;
const Connector = z.custom<unknown>().transform((c, ctx) => {
  const type = (c as { type?: unknown } | null)?.type;
  if (type === "postgres") {
    const r = PostgresConnector.safeParse(c);
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
export type ConnectorConfig = PostgresConnector;

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
    defaultCurrency: z.string().regex(/^[A-Z]{3}$/, { error: "must be an ISO 4217 code such as EUR" }),
    batchSize: z.number().int().min(1).max(50_000).default(5000),
  }),
  connectors: z.array(Connector).default([]),
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

function isTimeZone(tz: string): boolean {
  try { new Intl.DateTimeFormat("en-US", { timeZone: tz }); return true; } catch { return false; }
}

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
