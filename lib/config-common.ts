/**
 * The parts of the configuration schema every connector shares: Qobra types, field specs,
 * table and connector names. Each source's connector schema lives in its plugin
 * (producers/connectors/<source>/config.ts) and is built from these pieces; lib/config.ts
 * assembles the file's schema from the plugins it is given. A field holding a credential is
 * wrapped in `secret(…)` (lib/config-secret.ts): only there is `${env:NAME}` allowed.
 */
import { z } from "zod";
import { secret } from "./config-secret.ts";
import { parseEndpointUrl } from "./endpoint.ts";

export { secret } from "./config-secret.ts";

const QOBRA_TYPES = ["string", "picklist", "multipicklist", "user", "date", "number", "amount", "percentage", "bool", "object"] as const;
export type QobraType = (typeof QOBRA_TYPES)[number];

export const SQL_IDENT = /^[A-Za-z_][A-Za-z0-9_]*$/;
export const FIELD_NAME = z.string().regex(SQL_IDENT, {
  error: "must be a plain identifier (letters, digits, underscore; not starting with a digit) so it can name an Avro field and a SQL column",
});
export const TABLE_NAME = z.string().regex(/^[a-z_][a-z0-9_]*$/, {
  error: "must be lower-case letters, digits and underscores (it names a Kafka topic, an Avro record and a SQL table)",
});

const qobraType = z.enum(QOBRA_TYPES, {
  error: (iss) => `unknown Qobra type ${JSON.stringify(iss.input)}; use one of ${QOBRA_TYPES.join(", ")}`,
});

export const FieldSpec = z.strictObject({
  type: qobraType.describe("The Qobra type of the field."),
  currencyColumn: z.string().optional().describe("amount: the source column holding the ISO 4217 currency code of each record."),
  currency: z
    .string()
    .regex(/^[A-Z]{3}$/, { error: "must be an ISO 4217 code such as EUR" })
    .optional()
    .describe("amount: a fixed currency for this field (else the record's currencyColumn, else the connector's, else sink.defaultCurrency)."),
  format: z.enum(["date", "datetime"]).optional().describe("date: force a calendar date or an instant; by default it follows the source column's type."),
  userKey: z
    .string()
    .optional()
    .describe("user: the Qobra users column the value matches (default: email; id for a column holding Qobra's user ids; integers compare by value)."),
  references: TABLE_NAME.optional().describe("object: the Qobra table the value references."),
  scale: z
    .enum(["points", "fraction"])
    .optional()
    .describe(
      "percentage: how the source writes it — points (12.5 means 12.5 %, the default and the unit of every mapped percentage) or fraction (0.125, multiplied by 100 exactly).",
    ),
});
export type FieldSpec = z.infer<typeof FieldSpec>;

/** A field is either a bare type name (`closed_on: date`) or an object with options. */
export const FieldEntry = z
  .union([qobraType, FieldSpec], {
    error: (iss) =>
      `must be a Qobra type name (${QOBRA_TYPES.join(", ")}) or an object such as { type: amount, currencyColumn: currency }` +
      (iss.input === undefined ? "" : ` (got ${JSON.stringify(iss.input)})`),
  })
  .transform((v): FieldSpec => (typeof v === "string" ? { type: v } : v));

export const required = (what: string) => ({
  error: (iss: { input?: unknown }) => (iss.input === undefined ? `is required: ${what}` : `must be a string: ${what}`),
});

export const CONNECTOR_ID = z
  .string()
  .regex(/^[a-z][a-z0-9_-]*$/, { error: "must be lower-case letters, digits, - and _, starting with a letter (it names Kafka topics)" })
  .describe("The connector's id: it names its Kafka topics and its sink tables (<id>__<table>).");
export const CURRENCY_CODE = z
  .string()
  .regex(/^[A-Z]{3}$/, { error: "must be an ISO 4217 code such as EUR" })
  .describe("An ISO 4217 currency code, such as EUR.");
export const TIME_ZONE = z
  .string()
  .refine(isTimeZone, { error: "must be an IANA time zone such as Europe/Paris" })
  .describe("An IANA time zone, such as Europe/Paris.");

/** How far a full run may go in deleting a table's records before it stops and asks: the same rule for every source. */
export const MASS_DELETE_THRESHOLD = z
  .number()
  .min(0)
  .max(1)
  .default(0.3)
  .describe("A full run that would delete more than this share of a table's records stops and asks (sync --full --force-deletes).");

/** A connector's list of tables, each read by the source's table schema: at least one. `eachIs` says what one table reads. */
export function connectorTables<T extends z.ZodType>(table: T, eachIs: string) {
  return z.array(table).min(1, { error: "list at least one table to sync" }).describe(`The Qobra tables this connector fills, ${eachIs}.`);
}

/** Rules on a table's fields every connector applies (use in .superRefine). */
export function checkFields(fields: Record<string, FieldSpec>, ctx: z.RefinementCtx): void {
  for (const [name, spec] of Object.entries(fields)) {
    if (spec.type !== "amount" && (spec.currencyColumn || spec.currency)) {
      ctx.addIssue({ code: "custom", path: ["fields", name], message: `currency options apply to amount fields only, and ${name} is ${spec.type}` });
    }
    if (spec.scale && spec.type !== "percentage") {
      ctx.addIssue({ code: "custom", path: ["fields", name], message: `scale applies to percentage fields only, and ${name} is ${spec.type}` });
    }
    if (name.startsWith("_")) {
      ctx.addIssue({ code: "custom", path: ["fields", name], message: "field names starting with _ are reserved for system columns (_external_id, _name, …)" });
    }
  }
}

function isTimeZone(tz: string): boolean {
  try {
    new Intl.DateTimeFormat("en-US", { timeZone: tz });
    return true;
  } catch {
    return false;
  }
}

/**
 * A postgres:// URL: a secret field (it carries the password), checked to be readable as
 * scheme://user:password@host:port/database (lib/endpoint.ts, which tolerates unencoded `#`, `/`,
 * `?`, `@` in the password). Its errors never show the value.
 */
export function postgresUrl(params?: Parameters<typeof z.string>[0]) {
  return secret(
    z
      .string(params)
      .regex(/^postgres(ql)?:\/\//, { error: "must start with postgres:// (the value is not shown: it may hold a password)", abort: true })
      .refine((u) => parseEndpointUrl(u) !== undefined, {
        error:
          "cannot be read as a postgres:// URL: user and password, then host[:port]/database after the last '@' (the value is not shown: it may hold a password)",
      }),
  );
}
