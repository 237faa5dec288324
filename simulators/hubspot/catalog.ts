/**
 * HubSpot's fixed vocabulary: standard object types (names, type ids, which spec describes them,
 * their create/last-modified properties, default properties) and the HUBSPOT_DEFINED association
 * type ids (as exported by @hubspot/api-client's `AssociationTypes`), and the well-known property
 * definitions used when a data file does not define them.
 * About 600 lines, kept whole on purpose: it is declarative data (tables of types, association type ids
 * and property definitions, with a few one-line constructors); splitting it would only scatter the vocabulary.
 */
import type { PropertyData } from "./types.ts";

export interface StandardType {
  name: string;
  objectTypeId: string;
  singular: string;
  /** Spec file (under specs/) describing /crm/v3/objects/<pathSegment>. */
  specFile: string;
  pathSegment: string;
  /** Path parameter name of get-by-id in that spec (e.g. dealId). */
  idParam: string;
  createdProperty: string;
  lastModifiedProperty: string;
  /** Properties returned when a request names none (HubSpot search guide). */
  defaultProperties: string[];
  /** Properties searched by the free-text `query` of CRM search. */
  queryProperties: string[];
  /** Scope "key" used in granular scope names (crm.objects.<key>.read). */
  scopeKey: string;
}

const ENGAGEMENT_DEFAULTS = ["hs_createdate", "hs_lastmodifieddate", "hs_object_id"];

export const STANDARD_TYPES: StandardType[] = [
  {
    name: "contacts",
    objectTypeId: "0-1",
    singular: "contact",
    specFile: "crm-contacts-v3.json",
    pathSegment: "contacts",
    idParam: "contactId",
    createdProperty: "createdate",
    lastModifiedProperty: "lastmodifieddate",
    defaultProperties: ["createdate", "email", "firstname", "hs_object_id", "lastmodifieddate", "lastname"],
    queryProperties: ["firstname", "lastname", "email", "phone", "hs_additional_emails", "fax", "mobilephone", "company"],
    scopeKey: "contacts",
  },
  {
    name: "companies",
    objectTypeId: "0-2",
    singular: "company",
    specFile: "crm-companies-v3.json",
    pathSegment: "companies",
    idParam: "companyId",
    createdProperty: "createdate",
    lastModifiedProperty: "hs_lastmodifieddate",
    defaultProperties: ["name", "domain", "createdate", "hs_lastmodifieddate", "hs_object_id"],
    queryProperties: ["website", "phone", "name", "domain"],
    scopeKey: "companies",
  },
  {
    name: "deals",
    objectTypeId: "0-3",
    singular: "deal",
    specFile: "crm-deals-v3.json",
    pathSegment: "0-3",
    idParam: "dealId",
    createdProperty: "createdate",
    lastModifiedProperty: "hs_lastmodifieddate",
    defaultProperties: ["dealname", "amount", "closedate", "pipeline", "dealstage", "createdate", "hs_lastmodifieddate", "hs_object_id"],
    queryProperties: ["dealname", "pipeline", "dealstage", "description", "dealtype"],
    scopeKey: "deals",
  },
  {
    name: "line_items",
    objectTypeId: "0-8",
    singular: "line_item",
    specFile: "crm-line-items-v3.json",
    pathSegment: "line_items",
    idParam: "lineItemId",
    createdProperty: "createdate",
    lastModifiedProperty: "hs_lastmodifieddate",
    defaultProperties: ["quantity", "amount", "price", "createdate", "hs_lastmodifieddate", "hs_object_id"],
    queryProperties: ["name", "description", "hs_sku"],
    scopeKey: "line_items",
  },
  {
    name: "meetings",
    objectTypeId: "0-47",
    singular: "meeting",
    specFile: "crm-meetings-v3.json",
    pathSegment: "meetings",
    idParam: "meetingId",
    createdProperty: "hs_createdate",
    lastModifiedProperty: "hs_lastmodifieddate",
    defaultProperties: ENGAGEMENT_DEFAULTS,
    queryProperties: ["hs_meeting_title", "hs_meeting_body"],
    scopeKey: "meetings",
  },
  {
    name: "calls",
    objectTypeId: "0-48",
    singular: "call",
    specFile: "crm-calls-v3.json",
    pathSegment: "calls",
    idParam: "callId",
    createdProperty: "hs_createdate",
    lastModifiedProperty: "hs_lastmodifieddate",
    defaultProperties: ENGAGEMENT_DEFAULTS,
    queryProperties: ["hs_call_title", "hs_call_body"],
    scopeKey: "calls",
  },
  {
    name: "emails",
    objectTypeId: "0-49",
    singular: "email",
    specFile: "crm-emails-v3.json",
    pathSegment: "emails",
    idParam: "emailId",
    createdProperty: "hs_createdate",
    lastModifiedProperty: "hs_lastmodifieddate",
    defaultProperties: ENGAGEMENT_DEFAULTS,
    queryProperties: ["hs_email_subject", "hs_email_text"],
    scopeKey: "emails",
  },
  {
    name: "tasks",
    objectTypeId: "0-27",
    singular: "task",
    specFile: "crm-tasks-v3.json",
    pathSegment: "tasks",
    idParam: "taskId",
    createdProperty: "hs_createdate",
    lastModifiedProperty: "hs_lastmodifieddate",
    defaultProperties: ENGAGEMENT_DEFAULTS,
    queryProperties: ["hs_task_subject", "hs_task_body"],
    scopeKey: "tasks",
  },
  {
    name: "goal_targets",
    objectTypeId: "0-74",
    singular: "goal_target",
    specFile: "crm-goal-targets-v3.json",
    pathSegment: "goal_targets",
    idParam: "goalTargetId",
    createdProperty: "hs_createdate",
    lastModifiedProperty: "hs_lastmodifieddate",
    defaultProperties: ENGAGEMENT_DEFAULTS,
    queryProperties: ["hs_goal_name"],
    scopeKey: "goals",
  },
];

/** Standard types served through the generic objects spec (no dedicated spec copied). */
export const GENERIC_STANDARD_TYPES: Array<Pick<StandardType, "name" | "objectTypeId" | "singular" | "scopeKey">> = [
  { name: "tickets", objectTypeId: "0-5", singular: "ticket", scopeKey: "tickets" },
  { name: "products", objectTypeId: "0-7", singular: "product", scopeKey: "products" },
  { name: "notes", objectTypeId: "0-46", singular: "note", scopeKey: "notes" },
];

/** Aliases HubSpot accepts in paths besides the plural name and the type id. */
export const TYPE_ALIASES: Record<string, string> = {
  contact: "contacts",
  company: "companies",
  deal: "deals",
  line_item: "line_items",
  lineitems: "line_items",
  meeting: "meetings",
  call: "calls",
  email: "emails",
  task: "tasks",
  goal_target: "goal_targets",
  goals: "goal_targets",
  goal: "goal_targets",
  ticket: "tickets",
  product: "products",
  note: "notes",
};

interface HubSpotDefinedType {
  typeId: number;
  from: string;
  to: string;
  inverse: number;
  primary: boolean;
}

/** HUBSPOT_DEFINED association type ids: [typeId, from, to, inverse, primary]. */
const RAW_DEFINED: Array<[number, string, string, number, boolean]> = [
  [1, "contacts", "companies", 2, true],
  [2, "companies", "contacts", 1, true],
  [3, "deals", "contacts", 4, false],
  [4, "contacts", "deals", 3, false],
  [5, "deals", "companies", 6, true],
  [6, "companies", "deals", 5, true],
  [13, "companies", "companies", 14, false],
  [14, "companies", "companies", 13, false],
  [15, "contacts", "tickets", 16, false],
  [16, "tickets", "contacts", 15, false],
  [19, "deals", "line_items", 20, false],
  [20, "line_items", "deals", 19, false],
  [25, "companies", "tickets", 26, true],
  [26, "tickets", "companies", 25, true],
  [27, "deals", "tickets", 28, false],
  [28, "tickets", "deals", 27, false],
  [181, "companies", "calls", 182, false],
  [182, "calls", "companies", 181, false],
  [185, "companies", "emails", 186, false],
  [186, "emails", "companies", 185, false],
  [187, "companies", "meetings", 188, false],
  [188, "meetings", "companies", 187, false],
  [189, "companies", "notes", 190, false],
  [190, "notes", "companies", 189, false],
  [191, "companies", "tasks", 192, false],
  [192, "tasks", "companies", 191, false],
  [193, "contacts", "calls", 194, false],
  [194, "calls", "contacts", 193, false],
  [197, "contacts", "emails", 198, false],
  [198, "emails", "contacts", 197, false],
  [199, "contacts", "meetings", 200, false],
  [200, "meetings", "contacts", 199, false],
  [201, "contacts", "notes", 202, false],
  [202, "notes", "contacts", 201, false],
  [203, "contacts", "tasks", 204, false],
  [204, "tasks", "contacts", 203, false],
  [205, "deals", "calls", 206, false],
  [206, "calls", "deals", 205, false],
  [209, "deals", "emails", 210, false],
  [210, "emails", "deals", 209, false],
  [211, "deals", "meetings", 212, false],
  [212, "meetings", "deals", 211, false],
  [213, "deals", "notes", 214, false],
  [214, "notes", "deals", 213, false],
  [215, "deals", "tasks", 216, false],
  [216, "tasks", "deals", 215, false],
  [279, "contacts", "companies", 280, false],
  [280, "companies", "contacts", 279, false],
  [339, "tickets", "companies", 340, false],
  [340, "companies", "tickets", 339, false],
  [341, "deals", "companies", 342, false],
  [342, "companies", "deals", 341, false],
  [399, "calls", "meetings", 400, false],
  [400, "meetings", "calls", 399, false],
  [449, "contacts", "contacts", 449, false],
  [450, "companies", "companies", 450, false],
  [451, "deals", "deals", 451, false],
  [452, "tickets", "tickets", 452, false],
];

export const HUBSPOT_DEFINED: Map<number, HubSpotDefinedType> = new Map(
  RAW_DEFINED.map(([typeId, from, to, inverse, primary]) => [typeId, { typeId, from, to, inverse, primary }]),
);

/** The unlabeled default type id HubSpot uses between two standard types (first non-primary match). */
export function defaultTypeId(from: string, to: string): number | undefined {
  for (const t of HUBSPOT_DEFINED.values()) {
    if (t.from === from && t.to === to && !t.primary) return t.typeId;
  }
  return undefined;
}

// ---- HubSpot's defaults for the public data-file format (issue #5) --------------------------------------

/** A standard property definition (the simulator fills the remaining Property fields). */
interface StandardProperty {
  name: string;
  type: string;
  fieldType: string;
  label: string;
  options?: Array<{ label: string; value: string }>;
  calculated?: boolean;
  referencedObjectType?: string;
  showCurrencySymbol?: boolean;
  hasUniqueValue?: boolean;
}

const text = (name: string, label: string, fieldType = "text"): StandardProperty => ({ name, type: "string", fieldType, label });
const num = (name: string, label: string, extra: Partial<StandardProperty> = {}): StandardProperty => ({
  name,
  type: "number",
  fieldType: "number",
  label,
  ...extra,
});
const dt = (name: string, label: string): StandardProperty => ({ name, type: "datetime", fieldType: "date", label });
const choice = (name: string, label: string, values: Array<[string, string]>, fieldType = "select"): StandardProperty => ({
  name,
  type: "enumeration",
  fieldType,
  label,
  options: values.map(([value, l]) => ({ label: l, value })),
});
const owner = (label: string): StandardProperty => ({
  name: "hubspot_owner_id",
  type: "enumeration",
  fieldType: "select",
  label,
  referencedObjectType: "OWNER",
  options: [],
});
const recordId = (): StandardProperty => ({ name: "hs_object_id", type: "number", fieldType: "number", label: "Record ID", hasUniqueValue: true });
const audit = (created: string): StandardProperty[] => [dt(created, "Create Date"), dt("hs_lastmodifieddate", "Last Modified Date"), recordId()];
const engagement = (): StandardProperty[] => [...audit("hs_createdate"), dt("hs_timestamp", "Activity date"), owner("Activity assigned to")];
const LIFECYCLE: Array<[string, string]> = [
  ["subscriber", "Subscriber"],
  ["lead", "Lead"],
  ["marketingqualifiedlead", "Marketing Qualified Lead"],
  ["salesqualifiedlead", "Sales Qualified Lead"],
  ["opportunity", "Opportunity"],
  ["customer", "Customer"],
  ["evangelist", "Evangelist"],
  ["other", "Other"],
];
const FREQUENCY: Array<[string, string]> = [
  ["weekly", "Weekly"],
  ["biweekly", "Biweekly"],
  ["monthly", "Monthly"],
  ["quarterly", "Quarterly"],
  ["per_six_months", "Every six months"],
  ["annually", "Annually"],
  ["per_two_years", "Every two years"],
];

/**
 * Standard properties of each standard object, as a new HubSpot portal has them (the usual subset a sync
 * reads; currency and pipeline options are filled from the portal's data by contract.ts).
 */
export const STANDARD_PROPERTIES: Record<string, StandardProperty[]> = {
  contacts: [
    dt("createdate", "Create Date"),
    dt("lastmodifieddate", "Last Modified Date"),
    recordId(),
    text("email", "Email"),
    text("firstname", "First Name"),
    text("lastname", "Last Name"),
    text("phone", "Phone Number", "phonenumber"),
    text("mobilephone", "Mobile Phone Number", "phonenumber"),
    text("company", "Company Name"),
    text("jobtitle", "Job Title"),
    text("website", "Website URL"),
    text("address", "Street Address"),
    text("city", "City"),
    text("state", "State/Region"),
    text("zip", "Postal Code"),
    text("country", "Country/Region"),
    choice("lifecyclestage", "Lifecycle Stage", LIFECYCLE, "radio"),
    choice(
      "hs_lead_status",
      "Lead Status",
      [
        ["NEW", "New"],
        ["OPEN", "Open"],
        ["IN_PROGRESS", "In Progress"],
        ["OPEN_DEAL", "Open Deal"],
        ["UNQUALIFIED", "Unqualified"],
        ["ATTEMPTED_TO_CONTACT", "Attempted to Contact"],
        ["CONNECTED", "Connected"],
        ["BAD_TIMING", "Bad Timing"],
      ],
      "radio",
    ),
    num("associatedcompanyid", "Primary Associated Company ID"),
    owner("Contact owner"),
  ],
  companies: [
    ...audit("createdate"),
    text("name", "Company name"),
    text("domain", "Company Domain Name"),
    text("website", "Website URL"),
    text("phone", "Phone Number", "phonenumber"),
    text("address", "Street Address"),
    text("city", "City"),
    text("state", "State/Region"),
    text("zip", "Postal Code"),
    text("country", "Country/Region"),
    text("industry", "Industry"),
    text("description", "Description", "textarea"),
    num("numberofemployees", "Number of Employees"),
    num("annualrevenue", "Annual Revenue", { showCurrencySymbol: true }),
    choice("type", "Type", [
      ["PROSPECT", "Prospect"],
      ["PARTNER", "Partner"],
      ["RESELLER", "Reseller"],
      ["VENDOR", "Vendor"],
      ["OTHER", "Other"],
    ]),
    choice("lifecyclestage", "Lifecycle Stage", LIFECYCLE, "radio"),
    owner("Company owner"),
  ],
  deals: [
    ...audit("createdate"),
    text("dealname", "Deal Name"),
    num("amount", "Amount", { showCurrencySymbol: true }),
    choice("deal_currency_code", "Currency", []),
    dt("closedate", "Close Date"),
    choice("pipeline", "Pipeline", []),
    choice("dealstage", "Deal Stage", [], "radio"),
    choice(
      "dealtype",
      "Deal Type",
      [
        ["newbusiness", "New Business"],
        ["existingbusiness", "Existing Business"],
      ],
      "radio",
    ),
    text("description", "Deal Description", "textarea"),
    num("amount_in_home_currency", "Amount in company currency", { calculated: true, showCurrencySymbol: true }),
    num("hs_acv", "Annual contract value", { calculated: true, showCurrencySymbol: true }),
    num("hs_arr", "Annual recurring revenue", { calculated: true, showCurrencySymbol: true }),
    num("hs_mrr", "Monthly recurring revenue", { calculated: true, showCurrencySymbol: true }),
    num("hs_tcv", "Total contract value", { calculated: true, showCurrencySymbol: true }),
    num("hs_closed_amount", "Closed amount", { calculated: true, showCurrencySymbol: true }),
    num("hs_deal_stage_probability", "Deal probability", { calculated: true }),
    {
      name: "hs_is_closed",
      type: "bool",
      fieldType: "booleancheckbox",
      label: "Is Deal Closed?",
      calculated: true,
      options: [
        { label: "True", value: "true" },
        { label: "False", value: "false" },
      ],
    },
    {
      name: "hs_is_closed_won",
      type: "bool",
      fieldType: "booleancheckbox",
      label: "Is Closed Won",
      calculated: true,
      options: [
        { label: "True", value: "true" },
        { label: "False", value: "false" },
      ],
    },
    owner("Deal owner"),
  ],
  line_items: [
    ...audit("createdate"),
    text("name", "Name"),
    text("description", "Description", "textarea"),
    text("hs_sku", "SKU"),
    num("hs_product_id", "Product ID"),
    num("quantity", "Quantity"),
    num("price", "Unit price", { showCurrencySymbol: true }),
    num("amount", "Net price", { calculated: true, showCurrencySymbol: true }),
    choice("hs_line_item_currency_code", "Currency", []),
    num("discount", "Unit discount", { showCurrencySymbol: true }),
    num("hs_discount_percentage", "Discount percentage"),
    num("hs_total_discount", "Total discount", { calculated: true, showCurrencySymbol: true }),
    choice("recurringbillingfrequency", "Billing frequency", FREQUENCY),
    text("hs_recurring_billing_period", "Term"),
    num("hs_acv", "Annual contract value", { calculated: true, showCurrencySymbol: true }),
    num("hs_arr", "Annual recurring revenue", { calculated: true, showCurrencySymbol: true }),
    num("hs_mrr", "Monthly recurring revenue", { calculated: true, showCurrencySymbol: true }),
    num("hs_tcv", "Total contract value", { calculated: true, showCurrencySymbol: true }),
    owner("Owner"),
  ],
  meetings: [
    ...engagement(),
    text("hs_meeting_title", "Meeting name"),
    text("hs_meeting_body", "Meeting description", "html"),
    dt("hs_meeting_start_time", "Start Time"),
    dt("hs_meeting_end_time", "End Time"),
    text("hs_meeting_location", "Location"),
    choice("hs_meeting_outcome", "Meeting outcome", [
      ["SCHEDULED", "Scheduled"],
      ["COMPLETED", "Completed"],
      ["RESCHEDULED", "Rescheduled"],
      ["NO_SHOW", "No show"],
      ["CANCELED", "Canceled"],
    ]),
  ],
  calls: [
    ...engagement(),
    text("hs_call_title", "Call Title"),
    text("hs_call_body", "Call notes", "html"),
    num("hs_call_duration", "Call duration"),
    text("hs_call_disposition", "Call outcome"),
    choice("hs_call_direction", "Call direction", [
      ["INBOUND", "Inbound"],
      ["OUTBOUND", "Outbound"],
    ]),
    choice("hs_call_status", "Call status", [
      ["BUSY", "Busy"],
      ["CALLING_CRM_USER", "Calling CRM user"],
      ["CANCELED", "Canceled"],
      ["COMPLETED", "Completed"],
      ["CONNECTING", "Connecting"],
      ["FAILED", "Failed"],
      ["IN_PROGRESS", "In progress"],
      ["NO_ANSWER", "No answer"],
      ["QUEUED", "Queued"],
      ["RINGING", "Ringing"],
    ]),
  ],
  emails: [
    ...engagement(),
    text("hs_email_subject", "Email subject"),
    text("hs_email_text", "Email text", "textarea"),
    choice("hs_email_direction", "Email direction", [
      ["EMAIL", "Sent by owner"],
      ["INCOMING_EMAIL", "Reply from contact"],
      ["FORWARDED_EMAIL", "Forwarded"],
    ]),
    choice("hs_email_status", "Email send status", [
      ["BOUNCED", "Bounced"],
      ["FAILED", "Failed"],
      ["SCHEDULED", "Scheduled"],
      ["SENDING", "Sending"],
      ["SENT", "Sent"],
    ]),
  ],
  tasks: [
    ...engagement(),
    text("hs_task_subject", "Task Title"),
    text("hs_task_body", "Notes", "html"),
    choice("hs_task_status", "Task Status", [
      ["NOT_STARTED", "Not started"],
      ["IN_PROGRESS", "In progress"],
      ["WAITING", "Waiting"],
      ["COMPLETED", "Completed"],
      ["DEFERRED", "Deferred"],
    ]),
    choice("hs_task_priority", "Priority", [
      ["NONE", "None"],
      ["LOW", "Low"],
      ["MEDIUM", "Medium"],
      ["HIGH", "High"],
    ]),
    choice("hs_task_type", "Task Type", [
      ["CALL", "Call"],
      ["EMAIL", "Email"],
      ["TODO", "To-do"],
    ]),
  ],
  goal_targets: [
    ...audit("hs_createdate"),
    text("hs_goal_name", "Goal name"),
    num("hs_target_amount", "Target amount"),
    dt("hs_start_datetime", "Start date"),
    dt("hs_end_datetime", "End date"),
    text("hs_goal_type", "Goal type"),
    num("hs_assignee_user_id", "Assignee user ID"),
    num("hs_assignee_team_id", "Assignee team ID"),
    num("hs_kpi_progress_percent", "Progress percent", { calculated: true }),
  ],
};

/** The pipeline every HubSpot portal has for deals. */
export const DEFAULT_DEAL_PIPELINE = {
  id: "default",
  label: "Sales Pipeline",
  displayOrder: 0,
  stages: [
    { id: "appointmentscheduled", label: "Appointment Scheduled", displayOrder: 0, metadata: { isClosed: "false", probability: "0.2" } },
    { id: "qualifiedtobuy", label: "Qualified To Buy", displayOrder: 1, metadata: { isClosed: "false", probability: "0.4" } },
    { id: "presentationscheduled", label: "Presentation Scheduled", displayOrder: 2, metadata: { isClosed: "false", probability: "0.6" } },
    { id: "decisionmakerboughtin", label: "Decision Maker Bought-In", displayOrder: 3, metadata: { isClosed: "false", probability: "0.8" } },
    { id: "contractsent", label: "Contract Sent", displayOrder: 4, metadata: { isClosed: "false", probability: "0.9" } },
    { id: "closedwon", label: "Closed Won", displayOrder: 5, metadata: { isClosed: "true", probability: "1.0" } },
    { id: "closedlost", label: "Closed Lost", displayOrder: 6, metadata: { isClosed: "true", probability: "0.0" } },
  ],
};

/** Well-known property definitions used when the data file does not define them. */
export const KNOWN_PROPERTIES: Record<string, Array<Pick<PropertyData, "name" | "type" | "fieldType" | "label">>> = {
  "*": [
    { name: "hs_object_id", type: "number", fieldType: "number", label: "Record ID" },
    { name: "hubspot_owner_id", type: "enumeration", fieldType: "select", label: "Owner" },
    // Every object has it; a merge fills it with the merged ids, ";"-separated (POST /__admin/merge).
    { name: "hs_merged_object_ids", type: "enumeration", fieldType: "checkbox", label: "Merged record IDs" },
    { name: "hs_createdate", type: "datetime", fieldType: "date", label: "Create date" },
    { name: "hs_lastmodifieddate", type: "datetime", fieldType: "date", label: "Last modified date" },
  ],
  contacts: [
    { name: "createdate", type: "datetime", fieldType: "date", label: "Create Date" },
    { name: "lastmodifieddate", type: "datetime", fieldType: "date", label: "Last Modified Date" },
    { name: "email", type: "string", fieldType: "text", label: "Email" },
    { name: "firstname", type: "string", fieldType: "text", label: "First Name" },
    { name: "lastname", type: "string", fieldType: "text", label: "Last Name" },
  ],
  companies: [
    { name: "createdate", type: "datetime", fieldType: "date", label: "Create Date" },
    { name: "name", type: "string", fieldType: "text", label: "Company name" },
    { name: "domain", type: "string", fieldType: "text", label: "Company Domain Name" },
  ],
  deals: [
    { name: "createdate", type: "datetime", fieldType: "date", label: "Create Date" },
    { name: "dealname", type: "string", fieldType: "text", label: "Deal Name" },
    { name: "amount", type: "number", fieldType: "number", label: "Amount" },
    { name: "closedate", type: "datetime", fieldType: "date", label: "Close Date" },
    { name: "pipeline", type: "enumeration", fieldType: "select", label: "Pipeline" },
    { name: "dealstage", type: "enumeration", fieldType: "radio", label: "Deal Stage" },
    { name: "deal_currency_code", type: "enumeration", fieldType: "select", label: "Currency" },
  ],
  line_items: [
    { name: "createdate", type: "datetime", fieldType: "date", label: "Create Date" },
    { name: "quantity", type: "number", fieldType: "number", label: "Quantity" },
    { name: "amount", type: "number", fieldType: "number", label: "Net price" },
    { name: "price", type: "number", fieldType: "number", label: "Unit price" },
    { name: "hs_line_item_currency_code", type: "enumeration", fieldType: "select", label: "Currency" },
  ],
};
