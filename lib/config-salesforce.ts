/**
 * Configuration of a Salesforce connector (see docs/salesforce.md). Assembled into the config
 * file's schema by lib/config.ts. The shape is a public contract: extend it, don't rename it.
 *
 * Amount fields with no currency option default to `currencyColumn: CurrencyIsoCode`: in a
 * multi-currency org that is each record's currency; in a single-currency org the connector fills
 * CurrencyIsoCode with the org's corporate currency when it can read it, and the mapper otherwise
 * falls back to the connector's (else the sink's) defaultCurrency.
 */
import { z } from "zod";
import {
  CONNECTOR_ID, CURRENCY_CODE, FIELD_NAME, FieldEntry, TABLE_NAME, TIME_ZONE, checkFields, required, type FieldSpec,
} from "./config-common.ts";

/** A Salesforce API name: Account, Commission__c, ns__Thing__c, Owner_Email__c. */
export const SF_API_NAME = /^[A-Za-z][A-Za-z0-9_]*$/;

const HH_MM = /^([01]\d|2[0-3]):([0-5]\d)$/;

export const SalesforceSchedule = z.strictObject({
  fullAt: z.string().regex(HH_MM, { error: "must be a local time HH:MM, such as 02:00" }).default("02:00")
    .describe("Local time (in timezone) of the nightly full refresh."),
  incrementalEveryHours: z.number().int().min(1).max(24).default(2)
    .describe("Hours between incremental syncs, counted from fullAt (24 = none but the nightly full)."),
  timezone: TIME_ZONE.default("UTC"),
  enabled: z.boolean().default(true),
});
export type SalesforceSchedule = z.infer<typeof SalesforceSchedule>;

export const SalesforceTable = z.strictObject({
  name: TABLE_NAME.describe("The Qobra table name."),
  object: z.string(required("the Salesforce object's API name, such as Opportunity or Commission__c"))
    .regex(SF_API_NAME, { error: "must be a Salesforce API name such as Opportunity or Commission__c" }),
  where: z.string().min(1).optional().describe("A SOQL WHERE condition (without the WHERE keyword) limiting the records synced."),
  nameField: z.string().regex(SF_API_NAME, { error: "must be a field API name" }).optional()
    .describe("The field holding each record's display name (default: Name, else the object's name field)."),
  api: z.enum(["auto", "rest", "bulk"]).default("auto")
    .describe("auto: REST below bulkThreshold records, Bulk API 2.0 above; rest or bulk force one."),
  fields: z.record(FIELD_NAME, FieldEntry).default({})
    .describe("Field API name → Qobra type. Empty: every readable field, with its default type."),
}).superRefine((t, ctx) => checkFields(t.fields, ctx))
  .transform((t) => ({ ...t, fields: withCurrencyDefaults(t.fields) }));
export type SalesforceTable = z.infer<typeof SalesforceTable>;

export const SalesforceConnector = z.strictObject({
  id: CONNECTOR_ID,
  type: z.literal("salesforce"),
  loginUrl: z.string().url({ error: "must be a URL such as https://login.salesforce.com, https://test.salesforce.com or https://MyDomain.my.salesforce.com" })
    .transform((u) => u.replace(/\/+$/, "")).default("https://login.salesforce.com"),
  clientId: z.string(required("the connected app's consumer key")).min(1),
  clientSecret: z.string(required("the connected app's consumer secret")).min(1),
  refreshToken: z.string().min(1).optional()
    .describe("A refresh token; without it, the one stored by `qobra-sync auth <connector>` is used."),
  apiVersion: z.string().regex(/^\d{2,3}\.0$/, { error: "must look like 62.0" })
    .refine((v) => Number(v) >= 47, { error: "must be 47.0 or later (Bulk API 2.0 queries)" }).default("62.0"),
  schedule: SalesforceSchedule.optional(),
  lookbackSeconds: z.number().int().min(0).max(86_400).default(600)
    .describe("Incremental runs re-read this many seconds before the saved cursor (late commits, clock skew)."),
  bulkThreshold: z.number().int().min(0).default(10_000)
    .describe("Reads of at least this many records use Bulk API 2.0 (api: auto)."),
  bulkPollIntervalMs: z.number().int().min(50).max(60_000).default(2000)
    .describe("Longest wait between two status polls of a Bulk API 2.0 job (polls start faster and back off)."),
  bulkTimeoutMs: z.number().int().min(1000).default(3_600_000)
    .describe("A Bulk API 2.0 job not complete after this long fails the run."),
  maxApiUsagePercent: z.number().min(1).max(100).default(100)
    .describe("Stop the run (failed) once the org's daily API usage reaches this share, leaving the rest to other integrations."),
  defaultCurrency: CURRENCY_CODE.optional()
    .describe("Currency of amounts when neither the record nor the org tells it (else sink.defaultCurrency)."),
  massDeleteThreshold: z.number().min(0).max(1).default(0.3)
    .describe("A full run that would delete more than this share of a table's records stops and asks (sync --full --force-deletes)."),
  tables: z.array(SalesforceTable).min(1, { error: "list at least one table to sync" }),
});
export type SalesforceConnector = z.infer<typeof SalesforceConnector>;
export type SalesforceConnectorConfig = SalesforceConnector;

/** Amount fields without a currency option take each record's CurrencyIsoCode. */
function withCurrencyDefaults(fields: Record<string, FieldSpec>): Record<string, FieldSpec> {
  const out: Record<string, FieldSpec> = {};
  for (const [name, spec] of Object.entries(fields)) {
    out[name] = spec.type === "amount" && !spec.currency && !spec.currencyColumn ? { ...spec, currencyColumn: "CurrencyIsoCode" } : spec;
  }
  return out;
}

/**
 * The cron rules of a Salesforce schedule: the nightly full at fullAt, and an incremental every
 * incrementalEveryHours hours counted from it (the full run's own hour excluded), at the same minute.
 */
export function salesforceCronRules(s: SalesforceSchedule): Array<{ rule: string; tz: string; full: boolean }> {
  if (!s.enabled) return [];
  const [h, m] = s.fullAt.split(":").map(Number) as [number, number];
  const rules = [{ rule: `${m} ${h} * * *`, tz: s.timezone, full: true }];
  const hours: number[] = [];
  for (let k = h + s.incrementalEveryHours; k < h + 24; k += s.incrementalEveryHours) hours.push(k % 24);
  if (hours.length > 0) rules.push({ rule: `${m} ${hours.sort((a, b) => a - b).join(",")} * * *`, tz: s.timezone, full: false });
  return rules;
}
