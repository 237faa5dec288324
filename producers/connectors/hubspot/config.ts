/**
 * The HubSpot connector's configuration (see docs/hubspot.md). Public contract: extend it, don't
 * rename it.
 *
 * ```yaml
 * - id: hs
 *   type: hubspot
 *   baseUrl: "https://api.hubapi.com"
 *   appUrl: "https://app.hubspot.com"          # optional: where the authorize URL points
 *   clientId: "..."
 *   clientSecret: "${env:HS_CLIENT_SECRET}"
 *   refreshToken: "${env:HS_REFRESH_TOKEN}"     # optional: else the one stored by `qobra-sync auth`
 *   schedule: { incrementalEveryMinutes: 60, timezone: "Europe/Paris" }
 *   tables:
 *     - name: deals
 *       object: deals
 *       filter: [ { propertyName: dealstage, operator: IN, values: [closedwon] } ]
 *       fields: { amount: amount, closedate: date, dealstage: picklist, hubspot_owner_id: user, companies: object }
 * ```
 *
 * Besides validation, the schema fills two things the mapper relies on:
 *  - `fields` omitted → the object's standard field set (HUBSPOT_OBJECTS, catalog.ts);
 *  - an `amount` field without `currency`/`currencyColumn` gets `currencyColumn: "__currency"`, a
 *    raw field the connector fills with the record's currency (deal_currency_code,
 *    hs_line_item_currency_code), else the connector's defaultCurrency, else the portal's
 *    company currency;
 *  - an `object` field (an association) without `references` references the connector's table
 *    that syncs the associated object, when there is exactly one.
 *
 * The object catalog is in catalog.ts, the filter rules in filter.ts, the schedule in schedule.ts.
 */
import { z } from "zod";
import { CONNECTOR_ID, CURRENCY_CODE, FIELD_NAME, FieldEntry, TABLE_NAME, checkFields, required, type FieldSpec } from "../../../lib/config-common.ts";
import { MASS_DELETE_THRESHOLD, connectorTables, secret } from "../../../lib/config-common.ts";
import { CURRENCY_FIELD, standardObject } from "./catalog.ts";
import { HubSpotFilterInput } from "./filter.ts";
import { HubSpotSchedule } from "./schedule.ts";

export const HubSpotTable = z
  .strictObject({
    name: TABLE_NAME.describe("The Qobra table name."),
    object: z
      .string(
        required("the HubSpot object: deals, companies, contacts, line_items, meetings, calls, emails, tasks, goals, or a custom object's name or 2-… id"),
      )
      .min(1)
      .describe("The HubSpot object type synced into this table."),
    filter: HubSpotFilterInput.optional().describe("A search filter (HubSpot's filter JSON) limiting the records synced."),
    nameProperty: z
      .string()
      .min(1)
      .optional()
      .describe("The property giving each record's name (default: the object's name field; custom objects: primaryDisplayProperty)."),
    pipelineLabels: z.boolean().default(true).describe("picklist fields on pipeline and stage properties carry the labels, not the internal ids."),
    associationChanges: z
      .boolean()
      .default(true)
      .describe(
        "Incremental runs also compare the table's associations with the last run's snapshot, so an association added or removed without any property change (HubSpot moves no timestamp) still reaches the sink. Costs one id sweep and the association reads per run; only for tables with association fields.",
      ),
    fields: z
      .record(FIELD_NAME, FieldEntry)
      .optional()
      .describe("Property (or associated object type, for object fields) → Qobra type. Default: the object's standard fields."),
  })
  .transform((t, ctx) => {
    const info = standardObject(t.object);
    let fields: Record<string, FieldSpec>;
    if (t.fields) fields = t.fields;
    else if (info) fields = Object.fromEntries(Object.entries(info.defaultFields).map(([k, type]) => [k, { type }]));
    else {
      ctx.addIssue({
        code: "custom",
        path: ["fields"],
        message: `is required for the custom object ${t.object}: list the properties to sync (e.g. { plan_name: string, rate: number })`,
      });
      return z.NEVER;
    }
    const filled: Record<string, FieldSpec> = {};
    for (const [name, spec] of Object.entries(fields)) {
      filled[name] = spec.type === "amount" && !spec.currency && !spec.currencyColumn ? { ...spec, currencyColumn: CURRENCY_FIELD } : spec;
    }
    return { ...t, fields: filled };
  })
  .superRefine((t, ctx) => checkFields(t.fields, ctx));
export type HubSpotTable = z.infer<typeof HubSpotTable>;

export const HubSpotConnector = z
  .strictObject({
    id: CONNECTOR_ID,
    type: z.literal("hubspot").describe("hubspot: a HubSpot portal, read through the CRM APIs with an OAuth app."),
    baseUrl: z
      .string()
      .url({ error: "must be an http(s) URL such as https://api.hubapi.com" })
      .default("https://api.hubapi.com")
      .transform((u) => u.replace(/\/+$/, ""))
      .describe("HubSpot's API origin (a simulator's http://127.0.0.1:PORT in tests)."),
    appUrl: z
      .string()
      .url({ error: "must be an http(s) URL such as https://app.hubspot.com" })
      .refine((u) => /^https?:\/\//i.test(u), { error: "must be an http(s) URL such as https://app.hubspot.com" })
      .transform((u) => u.replace(/\/+$/, ""))
      .optional()
      .describe(
        "Where users install the app: Authorize on the settings page and `qobra-sync auth` open <appUrl>/oauth/authorize. Default https://app.hubspot.com (a simulator's http://127.0.0.1:PORT in tests).",
      ),
    clientId: z.string(required("the OAuth app's client id")).min(1).describe("The HubSpot OAuth app's client id."),
    clientSecret: secret(z.string(required("the OAuth app's client secret (use ${env:NAME})")).min(1)).describe(
      "The OAuth app's client secret (use ${env:NAME}).",
    ),
    refreshToken: secret(z.string().min(1)).optional().describe("The OAuth refresh token; default: the one stored by `qobra-sync auth <id>`."),
    schedule: HubSpotSchedule.optional().describe(
      "Scheduled syncs; without it, the default: an incremental every 2 hours and a reconciliation at 03:00 (UTC). { enabled: false }: manual syncs only.",
    ),
    defaultCurrency: CURRENCY_CODE.optional().describe("The currency of amounts on records that carry none (default: the portal's company currency)."),
    massDeleteThreshold: MASS_DELETE_THRESHOLD,
    lookbackSeconds: z
      .number()
      .int()
      .min(0)
      .max(86_400)
      .default(300)
      .describe("Incremental runs start this long before the start of the last successful import (HubSpot's search index lags behind writes)."),
    maxWindowRecords: z
      .number()
      .int()
      .min(200)
      .max(10_000)
      .default(10_000)
      .describe(
        "Incremental date windows are split until a window's search total is at most this (HubSpot's search returns at most 10,000 results per query).",
      ),
    concurrency: z.number().int().min(1).max(10).default(3).describe("Date windows read in parallel."),
    rateLimits: z
      .strictObject({
        perTenSeconds: z
          .number()
          .int()
          .min(1)
          .default(100)
          .describe("Requests per rolling 10 s (HubSpot: 100 for OAuth apps; lowered automatically from the X-HubSpot-RateLimit-Max header)."),
        searchPerSecond: z.number().int().min(1).default(5).describe("CRM search requests per second (HubSpot: 5 per account)."),
        // Optional rather than .default(true): an omitted `rateLimits` parses to the same object as before.
        shared: z
          .boolean()
          .optional()
          .describe("Share the budget with every worker process through the sink database (default true); false: each process counts its own."),
      })
      .default({ perTenSeconds: 100, searchPerSecond: 5 })
      .describe("The portal's API budgets the connector keeps under."),
    requestTimeoutMs: z
      .number()
      .int()
      .min(1000)
      .default(60_000)
      .describe("A request with no answer after this long is retried (or fails once retries are spent)."),
    tables: connectorTables(HubSpotTable, "one HubSpot object each"),
  })
  .transform((c) => {
    // An association field references the table that syncs the associated object, when exactly one does.
    const byObject = new Map<string, string[]>();
    for (const t of c.tables) {
      const key = standardObject(t.object)?.object ?? t.object;
      byObject.set(key, [...(byObject.get(key) ?? []), t.name]);
    }
    const tables = c.tables.map((t) => {
      const fields: Record<string, FieldSpec> = {};
      for (const [name, spec] of Object.entries(t.fields)) {
        const target = byObject.get(standardObject(name)?.object ?? name);
        fields[name] = spec.type === "object" && !spec.references && target?.length === 1 ? { ...spec, references: target[0] } : spec;
      }
      return { ...t, fields };
    });
    return { ...c, tables };
  });
export type HubSpotConnector = z.infer<typeof HubSpotConnector>;
