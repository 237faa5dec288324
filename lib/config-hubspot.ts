/**
 * The HubSpot connector's configuration (see docs/hubspot.md). Public contract: extend it, don't
 * rename it.
 *
 * ```yaml
 * - id: hs
 *   type: hubspot
 *   baseUrl: "https://api.hubapi.com"
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
 *  - `fields` omitted → the object's standard field set (HUBSPOT_OBJECTS below);
 *  - an `amount` field without `currency`/`currencyColumn` gets `currencyColumn: "__currency"`, a
 *    raw field the connector fills with the record's currency (deal_currency_code,
 *    hs_line_item_currency_code), else the connector's defaultCurrency, else the portal's
 *    company currency;
 *  - an `object` field (an association) without `references` references the connector's table
 *    that syncs the associated object, when there is exactly one.
 */
import { z } from "zod";
import {
  CONNECTOR_ID, CURRENCY_CODE, FIELD_NAME, FieldEntry, TABLE_NAME, TIME_ZONE, checkFields, required,
  type FieldSpec, type QobraType,
} from "./config-common.ts";

/** The raw field holding each record's currency (see the header). */
export const CURRENCY_FIELD = "__currency";

export interface HubSpotObjectInfo {
  /** The name the CRM API uses in paths. */
  object: string;
  objectTypeId: string;
  /** The last-modified property searched by incremental runs. */
  lastModifiedProperty: string;
  /** The record's display name: the first non-empty of these (contacts: email, else first + last name). */
  nameProperties: string[];
  /** The property holding the record's currency, if the object has one. */
  currencyProperty?: string;
  /** Fields synced when a table lists none (Qobra's standard table for the object). */
  defaultFields: Record<string, QobraType>;
  /** The read scope HubSpot asks for (for messages; the API's 403 names the exact one). */
  scope: string;
}

const ENGAGEMENT = (title: string, extra: Record<string, QobraType> = {}): Omit<HubSpotObjectInfo, "object" | "objectTypeId"> => ({
  lastModifiedProperty: "hs_lastmodifieddate", nameProperties: [title], scope: "crm.objects.contacts.read",
  defaultFields: { [title]: "string", hs_timestamp: "date", ...extra },
});

/** Standard objects: API name → what the connector needs to know. */
export const HUBSPOT_OBJECTS: Record<string, HubSpotObjectInfo> = {
  deals: {
    object: "deals", objectTypeId: "0-3", lastModifiedProperty: "hs_lastmodifieddate", nameProperties: ["dealname"],
    currencyProperty: "deal_currency_code", scope: "crm.objects.deals.read",
    defaultFields: { dealname: "string", amount: "amount", closedate: "date", pipeline: "picklist", dealstage: "picklist", hubspot_owner_id: "user", companies: "object", contacts: "object" },
  },
  companies: {
    object: "companies", objectTypeId: "0-2", lastModifiedProperty: "hs_lastmodifieddate", nameProperties: ["name"], scope: "crm.objects.companies.read",
    defaultFields: { name: "string", domain: "string", hubspot_owner_id: "user" },
  },
  contacts: {
    object: "contacts", objectTypeId: "0-1", lastModifiedProperty: "lastmodifieddate", nameProperties: ["email"], scope: "crm.objects.contacts.read",
    defaultFields: { email: "string", firstname: "string", lastname: "string", hubspot_owner_id: "user", companies: "object", meetings: "object" },
  },
  line_items: {
    object: "line_items", objectTypeId: "0-8", lastModifiedProperty: "hs_lastmodifieddate", nameProperties: ["name"],
    currencyProperty: "hs_line_item_currency_code", scope: "crm.objects.line_items.read",
    defaultFields: { name: "string", quantity: "number", price: "amount", amount: "amount", deals: "object" },
  },
  meetings: { object: "meetings", objectTypeId: "0-47", ...ENGAGEMENT("hs_meeting_title", { hubspot_owner_id: "user", companies: "object", deals: "object" }) },
  calls: { object: "calls", objectTypeId: "0-48", ...ENGAGEMENT("hs_call_title") },
  emails: { object: "emails", objectTypeId: "0-49", ...ENGAGEMENT("hs_email_subject") },
  tasks: { object: "tasks", objectTypeId: "0-27", ...ENGAGEMENT("hs_task_subject") },
  notes: { object: "notes", objectTypeId: "0-46", lastModifiedProperty: "hs_lastmodifieddate", nameProperties: [], scope: "crm.objects.contacts.read", defaultFields: { hs_timestamp: "date" } },
  goal_targets: {
    object: "goal_targets", objectTypeId: "0-74", lastModifiedProperty: "hs_lastmodifieddate", nameProperties: ["hs_goal_name"], scope: "crm.objects.goals.read",
    defaultFields: { hs_goal_name: "string", hs_target_amount: "amount", hs_start_datetime: "date", hs_end_datetime: "date", hs_assignee_user_id: "user" },
  },
  tickets: {
    object: "tickets", objectTypeId: "0-5", lastModifiedProperty: "hs_lastmodifieddate", nameProperties: ["subject"], scope: "tickets",
    defaultFields: { subject: "string", hs_pipeline: "picklist", hs_pipeline_stage: "picklist", hubspot_owner_id: "user" },
  },
  products: {
    object: "products", objectTypeId: "0-7", lastModifiedProperty: "hs_lastmodifieddate", nameProperties: ["name"], scope: "e-commerce",
    defaultFields: { name: "string", price: "amount" },
  },
};

const ALIASES: Record<string, string> = {
  deal: "deals", company: "companies", contact: "contacts", line_item: "line_items", lineitems: "line_items",
  meeting: "meetings", call: "calls", email: "emails", task: "tasks", note: "notes", goals: "goal_targets", goal: "goal_targets",
  goal_target: "goal_targets", ticket: "tickets", product: "products",
};
for (const info of Object.values(HUBSPOT_OBJECTS)) ALIASES[info.objectTypeId] = info.object;

/** The standard object a configured name denotes (`goals` → goal_targets, `0-3` → deals), or undefined (a custom object). */
export function standardObject(name: string): HubSpotObjectInfo | undefined {
  const key = name.trim().toLowerCase();
  return HUBSPOT_OBJECTS[key] ?? HUBSPOT_OBJECTS[ALIASES[key] ?? ""];
}

// ---- search filters --------------------------------------------------------------------------

export const FILTER_OPERATORS = [
  "EQ", "NEQ", "LT", "LTE", "GT", "GTE", "BETWEEN", "IN", "NOT_IN", "HAS_PROPERTY", "NOT_HAS_PROPERTY", "CONTAINS_TOKEN", "NOT_CONTAINS_TOKEN",
] as const;
export type FilterOperator = (typeof FILTER_OPERATORS)[number];

/** HubSpot's search limits (search guide): filter groups, filters per group, filters in total. */
export const SEARCH_LIMITS = { maxFilterGroups: 5, maxFiltersPerGroup: 6, maxFilters: 18 } as const;
/** Filters the connector adds to every group of an incremental search: the date window (BETWEEN) and the id keyset (GT). */
export const CONNECTOR_FILTERS_PER_GROUP = 2;

const FilterValue = z.union([z.string(), z.number(), z.boolean()], { error: "must be a string, number or boolean" }).transform(String);

export const HubSpotFilter = z.strictObject({
  propertyName: z.string(required("the property to filter on")).min(1),
  operator: z.enum(FILTER_OPERATORS, { error: (iss) => `unknown operator ${JSON.stringify(iss.input)}; HubSpot accepts ${FILTER_OPERATORS.join(", ")}` }),
  value: FilterValue.optional(),
  highValue: FilterValue.optional(),
  values: z.array(FilterValue).optional(),
}).superRefine((f, ctx) => {
  const needs = (key: "value" | "highValue" | "values", why: string) => ctx.addIssue({ code: "custom", path: [key], message: `is required: ${why}` });
  const refuses = (key: "value" | "highValue" | "values") => ctx.addIssue({ code: "custom", path: [key], message: `is not used by operator ${f.operator}; remove it` });
  switch (f.operator) {
    case "IN": case "NOT_IN":
      if (!f.values || f.values.length === 0) needs("values", `${f.operator} compares with a non-empty list`);
      if (f.value !== undefined) refuses("value");
      if (f.highValue !== undefined) refuses("highValue");
      break;
    case "BETWEEN":
      if (f.value === undefined) needs("value", "BETWEEN's lower bound");
      if (f.highValue === undefined) needs("highValue", "BETWEEN's upper bound");
      if (f.values !== undefined) refuses("values");
      break;
    case "HAS_PROPERTY": case "NOT_HAS_PROPERTY":
      if (f.value !== undefined) refuses("value");
      if (f.highValue !== undefined) refuses("highValue");
      if (f.values !== undefined) refuses("values");
      break;
    default:
      if (f.value === undefined) needs("value", `${f.operator} compares with one value`);
      if (f.highValue !== undefined) refuses("highValue");
      if (f.values !== undefined) refuses("values");
  }
});
export type HubSpotFilter = z.infer<typeof HubSpotFilter>;
export const HubSpotFilterGroup = z.strictObject({ filters: z.array(HubSpotFilter).min(1, { error: "a filter group needs at least one filter" }) });
export type HubSpotFilterGroup = z.infer<typeof HubSpotFilterGroup>;

/**
 * A table's filter: a list of filters (all must match), or a list of `{ filters: [...] }` groups
 * (any group may match), as in HubSpot's search body. Normalised to groups. The limits leave room
 * for the two filters the connector adds to each group.
 */
export const HubSpotFilterInput = z.array(z.unknown(), { error: "must be a list of filters ({ propertyName, operator, value/values }) or of { filters: [...] } groups" })
  .min(1, { error: "an empty filter list filters nothing; remove the key instead" })
  .transform((items, ctx): HubSpotFilterGroup[] => {
    const grouped = items.some((x) => typeof x === "object" && x !== null && "filters" in x);
    const groups: HubSpotFilterGroup[] = [];
    const flat: HubSpotFilter[] = [];
    items.forEach((item, i) => {
      const r = grouped ? HubSpotFilterGroup.safeParse(item) : HubSpotFilter.safeParse(item);
      if (!r.success) {
        for (const issue of r.error.issues) ctx.addIssue({ code: "custom", path: [i, ...issue.path], message: issue.message });
        return;
      }
      if (grouped) groups.push(r.data as HubSpotFilterGroup); else flat.push(r.data as HubSpotFilter);
    });
    const out = grouped ? groups : flat.length > 0 ? [{ filters: flat }] : [];
    const { maxFilterGroups, maxFiltersPerGroup, maxFilters } = SEARCH_LIMITS;
    if (out.length > maxFilterGroups) {
      ctx.addIssue({ code: "custom", path: [], message: `has ${out.length} filter groups; HubSpot's search accepts at most ${maxFilterGroups}` });
    }
    const perGroup = maxFiltersPerGroup - CONNECTOR_FILTERS_PER_GROUP;
    out.forEach((g, i) => {
      if (g.filters.length > perGroup) {
        ctx.addIssue({ code: "custom", path: grouped ? [i, "filters"] : [], message: `has ${g.filters.length} filters in one group; HubSpot allows ${maxFiltersPerGroup} per group and the connector adds ${CONNECTOR_FILTERS_PER_GROUP} (the date window and the id keyset), so at most ${perGroup}` });
      }
    });
    const total = out.reduce((n, g) => n + g.filters.length + CONNECTOR_FILTERS_PER_GROUP, 0);
    if (total > maxFilters) {
      ctx.addIssue({ code: "custom", path: [], message: `needs ${total} filters in total once the connector adds ${CONNECTOR_FILTERS_PER_GROUP} per group; HubSpot allows ${maxFilters}: use fewer groups or filters` });
    }
    return out;
  });

// ---- tables and connector ----------------------------------------------------------------------

export const HubSpotTable = z.strictObject({
  name: TABLE_NAME.describe("The Qobra table name."),
  object: z.string(required("the HubSpot object: deals, companies, contacts, line_items, meetings, calls, emails, tasks, goals, or a custom object's name or 2-… id")).min(1)
    .describe("The HubSpot object type synced into this table."),
  filter: HubSpotFilterInput.optional().describe("A search filter (HubSpot's filter JSON) limiting the records synced."),
  nameProperty: z.string().min(1).optional().describe("The property giving each record's name (default: the object's name field; custom objects: primaryDisplayProperty)."),
  pipelineLabels: z.boolean().default(true).describe("picklist fields on pipeline and stage properties carry the labels, not the internal ids."),
  associationChanges: z.boolean().default(true)
    .describe("Incremental runs also compare the table's associations with the last run's snapshot, so an association added or removed without any property change (HubSpot moves no timestamp) still reaches the sink. Costs one id sweep and the association reads per run; only for tables with association fields."),
  fields: z.record(FIELD_NAME, FieldEntry).optional()
    .describe("Property (or associated object type, for object fields) → Qobra type. Default: the object's standard fields."),
}).transform((t, ctx) => {
  const info = standardObject(t.object);
  let fields: Record<string, FieldSpec>;
  if (t.fields) fields = t.fields;
  else if (info) fields = Object.fromEntries(Object.entries(info.defaultFields).map(([k, type]) => [k, { type }]));
  else {
    ctx.addIssue({ code: "custom", path: ["fields"], message: `is required for the custom object ${t.object}: list the properties to sync (e.g. { plan_name: string, rate: number })` });
    return z.NEVER;
  }
  const filled: Record<string, FieldSpec> = {};
  for (const [name, spec] of Object.entries(fields)) {
    filled[name] = spec.type === "amount" && !spec.currency && !spec.currencyColumn ? { ...spec, currencyColumn: CURRENCY_FIELD } : spec;
  }
  return { ...t, fields: filled };
}).superRefine((t, ctx) => checkFields(t.fields, ctx));
export type HubSpotTable = z.infer<typeof HubSpotTable>;

/** Incremental intervals a cron rule can express exactly: divisors of an hour, or whole hours dividing a day. */
export const INCREMENTAL_MINUTES = [5, 10, 15, 20, 30, 60, 120, 180, 240, 360, 480, 720, 1440] as const;

export const HubSpotSchedule = z.strictObject({
  incrementalEveryMinutes: z.number().int().refine((n) => (INCREMENTAL_MINUTES as readonly number[]).includes(n), {
    error: `must be one of ${INCREMENTAL_MINUTES.join(", ")} (a divisor of an hour, or whole hours dividing a day)`,
  }).default(60).describe("Minutes between incremental syncs."),
  timezone: TIME_ZONE.default("UTC").describe("The zone the schedule's hours are counted in."),
  enabled: z.boolean().default(true),
});

/** The cron rule (minute hour * * *) of an incremental every `minutes`. */
export function incrementalCron(minutes: number): string {
  if (minutes < 60) return `*/${minutes} * * * *`;
  if (minutes === 1440) return "0 0 * * *";
  return `0 */${minutes / 60} * * *`;
}

export const HubSpotConnector = z.strictObject({
  id: CONNECTOR_ID,
  type: z.literal("hubspot"),
  baseUrl: z.string().url({ error: "must be an http(s) URL such as https://api.hubapi.com" }).default("https://api.hubapi.com")
    .transform((u) => u.replace(/\/+$/, "")).describe("HubSpot's API origin (a simulator's http://127.0.0.1:PORT in tests)."),
  clientId: z.string(required("the OAuth app's client id")).min(1),
  clientSecret: z.string(required("the OAuth app's client secret (use ${env:NAME})")).min(1),
  refreshToken: z.string().min(1).optional().describe("The OAuth refresh token; default: the one stored by `qobra-sync auth <id>`."),
  schedule: HubSpotSchedule.optional(),
  defaultCurrency: CURRENCY_CODE.optional().describe("The currency of amounts on records that carry none (default: the portal's company currency)."),
  massDeleteThreshold: z.number().min(0).max(1).default(0.3)
    .describe("A full run that would delete more than this share of a table's records stops and asks (sync --full --force-deletes)."),
  lookbackSeconds: z.number().int().min(0).max(86_400).default(300)
    .describe("Incremental runs start this long before the start of the last successful import (HubSpot's search index lags behind writes)."),
  maxWindowRecords: z.number().int().min(200).max(10_000).default(10_000)
    .describe("Incremental date windows are split until a window's search total is at most this (HubSpot's search returns at most 10,000 results per query)."),
  concurrency: z.number().int().min(1).max(10).default(3).describe("Date windows read in parallel."),
  rateLimits: z.strictObject({
    perTenSeconds: z.number().int().min(1).default(100).describe("Requests per rolling 10 s (HubSpot: 100 for OAuth apps; lowered automatically from the X-HubSpot-RateLimit-Max header)."),
    searchPerSecond: z.number().int().min(1).default(5).describe("CRM search requests per second (HubSpot: 5 per account)."),
    // Optional rather than .default(true): an omitted `rateLimits` parses to the same object as before.
    shared: z.boolean().optional()
      .describe("Share the budget with every worker process through the sink database (default true); false: each process counts its own."),
  }).default({ perTenSeconds: 100, searchPerSecond: 5 }),
  requestTimeoutMs: z.number().int().min(1000).default(60_000),
  tables: z.array(HubSpotTable).min(1, { error: "list at least one table to sync" }),
}).transform((c) => {
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
