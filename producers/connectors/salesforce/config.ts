/**
 * Configuration of a Salesforce connector (see docs/salesforce.md). Assembled into the config
 * file's schema through the plugin (index.ts). The shape is a public contract: extend it, don't
 * rename it. The schedule block's schema is in schedule.ts.
 *
 * Amount fields with no currency option default to `currencyColumn: CurrencyIsoCode`: in a
 * multi-currency org that is each record's currency; in a single-currency org the connector fills
 * CurrencyIsoCode with the org's corporate currency when it can read it, and the mapper otherwise
 * falls back to the connector's (else the sink's) defaultCurrency.
 */
import { z } from "zod";
import { CONNECTOR_ID, CURRENCY_CODE, FIELD_NAME, FieldEntry, TABLE_NAME, checkFields, required, type FieldSpec } from "../../../lib/config-common.ts";
import { MASS_DELETE_THRESHOLD, connectorTables, secret } from "../../../lib/config-common.ts";
import { SalesforceSchedule } from "./schedule.ts";

/** A Salesforce API name: Account, Commission__c, ns__Thing__c, Owner_Email__c. */
const SF_API_NAME = /^[A-Za-z][A-Za-z0-9_]*$/;

export const SalesforceTable = z
  .strictObject({
    name: TABLE_NAME.describe("The Qobra table name."),
    object: z
      .string(required("the Salesforce object's API name, such as Opportunity or Commission__c"))
      .regex(SF_API_NAME, { error: "must be a Salesforce API name such as Opportunity or Commission__c" })
      .describe("The Salesforce object's API name, such as Opportunity or Commission__c."),
    where: z.string().min(1).optional().describe("A SOQL WHERE condition (without the WHERE keyword) limiting the records synced."),
    nameField: z
      .string()
      .regex(SF_API_NAME, { error: "must be a field API name" })
      .optional()
      .describe("The field holding each record's display name (default: Name, else the object's name field)."),
    api: z.enum(["auto", "rest", "bulk"]).default("auto").describe("auto: REST below bulkThreshold records, Bulk API 2.0 above; rest or bulk force one."),
    fields: z.record(FIELD_NAME, FieldEntry).default({}).describe("Field API name → Qobra type. Empty: every readable field, with its default type."),
  })
  .superRefine((t, ctx) => checkFields(t.fields, ctx))
  .transform((t) => ({ ...t, fields: withCurrencyDefaults(t.fields) }));
export type SalesforceTable = z.infer<typeof SalesforceTable>;

export const SalesforceConnector = z.strictObject({
  id: CONNECTOR_ID,
  type: z.literal("salesforce").describe("salesforce: a Salesforce org, read through the REST and Bulk 2.0 APIs with a connected app."),
  loginUrl: z
    .string()
    .url({ error: "must be a URL such as https://login.salesforce.com, https://test.salesforce.com or https://MyDomain.my.salesforce.com" })
    .transform((u) => u.replace(/\/+$/, ""))
    .default("https://login.salesforce.com")
    .describe("The org's login URL: https://login.salesforce.com, https://test.salesforce.com (sandboxes) or its My Domain URL."),
  clientId: z.string(required("the connected app's consumer key")).min(1).describe("The connected app's consumer key."),
  clientSecret: secret(z.string(required("the connected app's consumer secret")).min(1)).describe("The connected app's consumer secret (use ${env:NAME})."),
  refreshToken: secret(z.string().min(1)).optional().describe("A refresh token; without it, the one stored by `qobra-sync auth <connector>` is used."),
  apiVersion: z
    .string()
    .regex(/^\d{2,3}\.0$/, { error: "must look like 62.0" })
    .refine((v) => Number(v) >= 47, { error: "must be 47.0 or later (Bulk API 2.0 queries)" })
    .default("62.0")
    .describe("The Salesforce API version the connector calls (47.0 or later)."),
  schedule: SalesforceSchedule.optional().describe(
    "A nightly full refresh and incremental syncs between; without it, the default: a full at 02:00 UTC and an incremental every 2 hours. { enabled: false }: manual syncs only.",
  ),
  lookbackSeconds: z
    .number()
    .int()
    .min(0)
    .max(86_400)
    .default(600)
    .describe("Incremental runs re-read this many seconds before the saved cursor (late commits, clock skew)."),
  bulkThreshold: z.number().int().min(0).default(10_000).describe("Reads of at least this many records use Bulk API 2.0 (api: auto)."),
  bulkPollIntervalMs: z
    .number()
    .int()
    .min(50)
    .max(60_000)
    .default(2000)
    .describe(
      "Longest wait between two status polls of a Bulk API 2.0 job (the first poll waits about as long as the table's last job took, else 500 ms; then the waits double up to this).",
    ),
  bulkTimeoutMs: z.number().int().min(1000).default(3_600_000).describe("A Bulk API 2.0 job not complete after this long fails the run."),
  maxApiUsagePercent: z
    .number()
    .min(1)
    .max(100)
    .default(100)
    .describe("Stop the run (failed) once the org's daily API usage reaches this share, leaving the rest to other integrations."),
  defaultCurrency: CURRENCY_CODE.optional().describe("Currency of amounts when neither the record nor the org tells it (else sink.defaultCurrency)."),
  massDeleteThreshold: MASS_DELETE_THRESHOLD,
  tables: connectorTables(SalesforceTable, "one Salesforce object each"),
});
export type SalesforceConnector = z.infer<typeof SalesforceConnector>;

/** Amount fields without a currency option take each record's CurrencyIsoCode. */
function withCurrencyDefaults(fields: Record<string, FieldSpec>): Record<string, FieldSpec> {
  const out: Record<string, FieldSpec> = {};
  for (const [name, spec] of Object.entries(fields)) {
    out[name] = spec.type === "amount" && !spec.currency && !spec.currencyColumn ? { ...spec, currencyColumn: "CurrencyIsoCode" } : spec;
  }
  return out;
}
