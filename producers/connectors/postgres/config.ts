/**
 * Configuration of a PostgreSQL connector: how to reach the source database (a URL, discrete
 * fields, or a Cloud SQL instance), the tables or views to sync and their fields. Assembled into
 * the config file's schema through the plugin (index.ts). The shape is a public contract: extend
 * it, don't rename it.
 */
import { z } from "zod";
import { CONNECTOR_ID, CURRENCY_CODE, FIELD_NAME, FieldEntry, TABLE_NAME, TIME_ZONE, checkFields, required } from "../../../lib/config-common.ts";
import { MASS_DELETE_THRESHOLD, connectorTables, postgresUrl, secret } from "../../../lib/config-common.ts";
import { PostgresSchedule } from "./schedule.ts";

export const PostgresTable = z
  .strictObject({
    name: TABLE_NAME.describe("The Qobra table name."),
    source: z
      .string(required("the source table or view, as schema.table or table"))
      .min(1)
      .describe("The source table or view, as schema.table or table (resolved like SQL would, through search_path)."),
    idColumn: z
      .string(required("the column holding each row's unique id (primary key or unique)"))
      .min(1)
      .describe("The column holding each row's unique id (primary key or unique): the record's _external_id."),
    nameColumn: z.string(required("the column holding each row's display name")).min(1).describe("The column holding each row's display name (_name)."),
    where: z
      .string()
      .optional()
      .describe(
        "A SQL WHERE condition limiting the rows synced: one boolean expression over the table's columns, checked against an allowlist " +
          "(docs/security.md) and rebuilt from its parse tree before it runs.",
      ),
    updatedAtColumn: z.string().optional().describe("A column holding the row's last change time, copied to _source_updated_at."),
    fields: z.record(FIELD_NAME, FieldEntry).default({}).describe("Source column → Qobra type."),
  })
  .superRefine((t, ctx) => checkFields(t.fields, ctx));
export type PostgresTable = z.infer<typeof PostgresTable>;

const SslOptions = z
  .strictObject({
    mode: z
      .enum(["disable", "require", "verify-ca", "verify-full"])
      .default("verify-full")
      .describe("require: encrypted, certificate not checked; verify-ca / verify-full: checked against ca (verify-full also checks the host name)."),
    ca: z.string().optional().describe("PEM of the CA that signed the server's certificate (or a path to it; PEM only for connectors given through the API)."),
    cert: z.string().optional().describe("Client certificate PEM (or path; PEM only through the API), for certificate authentication."),
    key: secret(z.string()).optional().describe("Client key PEM (or path; PEM only through the API)."),
  })
  .describe("TLS to the source (with host or url; cloudSql encrypts by itself).");

/** The default of connection.readTimeoutSeconds: one hour per table read. */
export const READ_TIMEOUT_SECONDS = 3600;

/** How to reach the source: a URL, discrete fields, or a Cloud SQL instance through Google's connector. */
export const PostgresConnection = z
  .strictObject({
    url: postgresUrl().optional().describe("postgres://user:password@host:port/database of a read-only account (use ${env:NAME})."),
    host: z.string().optional().describe("The server's host name or address (with database, user, password)."),
    port: z.number().int().min(1).max(65535).default(5432).describe("The server's port (with host)."),
    database: z.string().optional().describe("The database name (with host or cloudSql)."),
    user: z.string().optional().describe("The (read-only) account to connect as (with host or cloudSql)."),
    password: secret(z.string()).optional().describe("The account's password (use ${env:NAME}); not with cloudSql IAM authentication."),
    ssl: SslOptions.optional(),
    cloudSql: z
      .strictObject({
        instanceConnectionName: z
          .string()
          .regex(/^[a-z0-9-:.]+:[a-z0-9-]+:[a-z0-9-]+$/, { error: "must be project:region:instance" })
          .describe("The Cloud SQL instance, as project:region:instance."),
        ipType: z.enum(["PUBLIC", "PRIVATE", "PSC"]).default("PUBLIC").describe("Which of the instance's addresses to connect to."),
        iamAuth: z
          .boolean()
          .default(true)
          .describe("IAM database authentication as the service account (user = the account's email without .gserviceaccount.com)."),
        credentialsFile: z
          .string()
          .optional()
          .describe("Service-account key file; else Application Default Credentials (GOOGLE_APPLICATION_CREDENTIALS, metadata server)."),
      })
      .optional()
      .describe("A Cloud SQL instance, reached through Google's Cloud SQL connector (with database, user)."),
    statementTimeoutMs: z
      .number()
      .int()
      .positive()
      .default(300_000)
      .describe("A source query running longer than this is cancelled (statement_timeout) and the run fails."),
    // Optional rather than defaulted, so that code building a connection by hand needs neither; the
    // defaults are applied where they are read (READ_TIMEOUT_SECONDS, false).
    readTimeoutSeconds: z
      .number()
      .int()
      .positive()
      .optional()
      .describe(
        `The total time limit of one table's read (its transaction and snapshot on the source), however many statements it takes; default ${READ_TIMEOUT_SECONDS} (one hour). ` +
          "Past it the read is cancelled, its transaction ended, and the run fails without retrying. Raise it for very large tables.",
      ),
    allowSuperuser: z
      .boolean()
      .optional()
      .describe(
        "true: read even when the account is a superuser or a member of pg_execute_server_program, pg_write_server_files or pg_read_server_files. " +
          "Refused by default: READ ONLY does not stop such a role from running programs on the server (COPY … TO PROGRAM); use a role with SELECT only.",
      ),
  })
  .superRefine((c, ctx) => {
    const ways = [c.url !== undefined, c.host !== undefined, c.cloudSql !== undefined].filter(Boolean).length;
    if (ways !== 1)
      ctx.addIssue({ code: "custom", path: [], message: "give exactly one of url, host (with database, user, password) or cloudSql (with database, user)" });
    if ((c.host || c.cloudSql) && (!c.database || !c.user))
      ctx.addIssue({ code: "custom", path: [], message: "database and user are required with host or cloudSql" });
    if (c.cloudSql && !c.cloudSql.iamAuth && c.password === undefined)
      ctx.addIssue({ code: "custom", path: ["password"], message: "is required when cloudSql.iamAuth is false" });
    if (c.cloudSql && c.ssl)
      ctx.addIssue({ code: "custom", path: ["ssl"], message: "does not apply to cloudSql: the Cloud SQL connector encrypts the connection itself" });
  });
export type PostgresConnection = z.infer<typeof PostgresConnection>;

export const PostgresConnector = z.strictObject({
  id: CONNECTOR_ID,
  type: z.literal("postgres").describe("postgres: a PostgreSQL database (or Cloud SQL instance), read in full refreshes."),
  connection: PostgresConnection.describe("How to reach the source: exactly one of url, host or cloudSql."),
  schedule: PostgresSchedule.optional().describe(
    "Scheduled full refreshes; without it, the default: four a day (00:00, 06:00, 12:00, 18:00 UTC), each started a stable offset later (scheduler.spreadMinutes). { enabled: false }: manual syncs only.",
  ),
  timestampTimezone: TIME_ZONE.default("UTC").describe("The zone in which TIMESTAMP WITHOUT TIME ZONE values are read."),
  defaultCurrency: CURRENCY_CODE.optional().describe("Currency of amounts with no currency column or fixed currency (else sink.defaultCurrency)."),
  massDeleteThreshold: MASS_DELETE_THRESHOLD,
  tables: connectorTables(PostgresTable, "one source table or view each"),
});
export type PostgresConnector = z.infer<typeof PostgresConnector>;
