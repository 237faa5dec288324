/**
 * The HubSpot object catalog: the standard CRM objects the connector knows (their API names and
 * type ids, last-modified property, name properties, currency property, read scope) and the
 * fields a table of each syncs when it lists none. The config schema (config.ts), the source
 * (source.ts, plan.ts) and the OAuth flow (auth.ts) read it; custom objects are resolved from the
 * portal's schemas at run time instead.
 */
import type { QobraType } from "../../../lib/config-common.ts";

/** The raw field holding each record's currency (see the header). */
export const CURRENCY_FIELD = "__currency";

interface HubSpotObjectInfo {
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
  lastModifiedProperty: "hs_lastmodifieddate",
  nameProperties: [title],
  scope: "crm.objects.contacts.read",
  defaultFields: { [title]: "string", hs_timestamp: "date", ...extra },
});

/** Standard objects: API name → what the connector needs to know. */
const HUBSPOT_OBJECTS: Record<string, HubSpotObjectInfo> = {
  deals: {
    object: "deals",
    objectTypeId: "0-3",
    lastModifiedProperty: "hs_lastmodifieddate",
    nameProperties: ["dealname"],
    currencyProperty: "deal_currency_code",
    scope: "crm.objects.deals.read",
    defaultFields: {
      dealname: "string",
      amount: "amount",
      closedate: "date",
      pipeline: "picklist",
      dealstage: "picklist",
      hubspot_owner_id: "user",
      companies: "object",
      // every associated contact (a deal often has several: the buyer, the signer, ...)
      contacts: "multipicklist",
    },
  },
  companies: {
    object: "companies",
    objectTypeId: "0-2",
    lastModifiedProperty: "hs_lastmodifieddate",
    nameProperties: ["name"],
    scope: "crm.objects.companies.read",
    defaultFields: { name: "string", domain: "string", hubspot_owner_id: "user" },
  },
  contacts: {
    object: "contacts",
    objectTypeId: "0-1",
    lastModifiedProperty: "lastmodifieddate",
    nameProperties: ["email"],
    scope: "crm.objects.contacts.read",
    defaultFields: { email: "string", firstname: "string", lastname: "string", hubspot_owner_id: "user", companies: "object", meetings: "object" },
  },
  line_items: {
    object: "line_items",
    objectTypeId: "0-8",
    lastModifiedProperty: "hs_lastmodifieddate",
    nameProperties: ["name"],
    currencyProperty: "hs_line_item_currency_code",
    // the scope Qobra's HubSpot page names for line items (the line items API accepts it)
    scope: "e-commerce",
    defaultFields: { name: "string", quantity: "number", price: "amount", amount: "amount", deals: "object" },
  },
  meetings: { object: "meetings", objectTypeId: "0-47", ...ENGAGEMENT("hs_meeting_title", { hubspot_owner_id: "user", companies: "object", deals: "object" }) },
  calls: { object: "calls", objectTypeId: "0-48", ...ENGAGEMENT("hs_call_title") },
  emails: { object: "emails", objectTypeId: "0-49", ...ENGAGEMENT("hs_email_subject") },
  tasks: { object: "tasks", objectTypeId: "0-27", ...ENGAGEMENT("hs_task_subject") },
  notes: {
    object: "notes",
    objectTypeId: "0-46",
    lastModifiedProperty: "hs_lastmodifieddate",
    nameProperties: [],
    scope: "crm.objects.contacts.read",
    defaultFields: { hs_timestamp: "date" },
  },
  goal_targets: {
    object: "goal_targets",
    objectTypeId: "0-74",
    lastModifiedProperty: "hs_lastmodifieddate",
    nameProperties: ["hs_goal_name"],
    scope: "crm.objects.goals.read",
    defaultFields: { hs_goal_name: "string", hs_target_amount: "amount", hs_start_datetime: "date", hs_end_datetime: "date", hs_assignee_user_id: "user" },
  },
  tickets: {
    object: "tickets",
    objectTypeId: "0-5",
    lastModifiedProperty: "hs_lastmodifieddate",
    nameProperties: ["subject"],
    scope: "tickets",
    defaultFields: { subject: "string", hs_pipeline: "picklist", hs_pipeline_stage: "picklist", hubspot_owner_id: "user" },
  },
  products: {
    object: "products",
    objectTypeId: "0-7",
    lastModifiedProperty: "hs_lastmodifieddate",
    nameProperties: ["name"],
    scope: "e-commerce",
    defaultFields: { name: "string", price: "amount" },
  },
};

const ALIASES: Record<string, string> = {
  deal: "deals",
  company: "companies",
  contact: "contacts",
  line_item: "line_items",
  lineitems: "line_items",
  meeting: "meetings",
  call: "calls",
  email: "emails",
  task: "tasks",
  note: "notes",
  goals: "goal_targets",
  goal: "goal_targets",
  goal_target: "goal_targets",
  ticket: "tickets",
  product: "products",
};
for (const info of Object.values(HUBSPOT_OBJECTS)) ALIASES[info.objectTypeId] = info.object;

/** The standard object a configured name denotes (`goals` → goal_targets, `0-3` → deals), or undefined (a custom object). */
export function standardObject(name: string): HubSpotObjectInfo | undefined {
  const key = name.trim().toLowerCase();
  return HUBSPOT_OBJECTS[key] ?? HUBSPOT_OBJECTS[ALIASES[key] ?? ""];
}
