/**
 * Deterministic synthetic portals for benchmarks and volume tests:
 * `generateHubSpotData({ deals: 50_000, sameLastModified: "2024-06-01T00:00:00.000Z" })`.
 * Same options + seed → same document. Amounts are decimal strings with up to 12 decimals
 * (more than a double keeps), currencies vary per record, ids are numeric strings.
 */
import { iso, picker, seededRandom } from "../kit/random.ts";
import type { AssociationData, HubSpotSimData, OwnerData, PipelineData, PortalSettings, PropertyData, RecordData } from "./types.ts";

interface GenerateOptions {
  /** PRNG seed. Default 1. */
  seed?: number;
  deals?: number;
  companies?: number;
  contacts?: number;
  /** Line items per deal. Default 0. */
  lineItemsPerDeal?: number;
  meetings?: number;
  /** Owners (the last one is archived). Default 5. */
  owners?: number;
  /** Records of a custom object `commission_plans` (2-9876543). Default 0 (no custom object). */
  customRecords?: number;
  /** Goal targets. Default 0. */
  goalTargets?: number;
  /** First create date. Default 2024-01-01T00:00:00.000Z. */
  start?: string;
  /** Milliseconds between consecutive records' create/modify dates. Default 60000. */
  stepMs?: number;
  /** Give every record this last-modified instant (exercises the search 10,000-result cap). */
  sameLastModified?: string;
  /** Portal settings merged over the generated ones. */
  portal?: PortalSettings;
}

const CURRENCIES = ["EUR", "USD", "GBP", "JPY"];
const FIRST = ["Ada", "Grace", "Alan", "Linus", "Margaret", "Edsger", "Barbara", "Donald", "Frances", "Ken"];
const LAST = ["Lovelace", "Hopper", "Turing", "Torvalds", "Hamilton", "Dijkstra", "Liskov", "Knuth", "Allen", "Thompson"];

const DEAL_PIPELINES: PipelineData[] = [
  {
    id: "default",
    label: "Sales Pipeline",
    displayOrder: 0,
    stages: [
      { id: "appointmentscheduled", label: "Appointment Scheduled", displayOrder: 0, metadata: { isClosed: "false", probability: "0.2" } },
      { id: "qualifiedtobuy", label: "Qualified To Buy", displayOrder: 1, metadata: { isClosed: "false", probability: "0.4" } },
      { id: "contractsent", label: "Contract Sent", displayOrder: 2, metadata: { isClosed: "false", probability: "0.9" } },
      { id: "closedwon", label: "Closed Won", displayOrder: 3, metadata: { isClosed: "true", probability: "1.0" } },
      { id: "closedlost", label: "Closed Lost", displayOrder: 4, metadata: { isClosed: "true", probability: "0.0" } },
    ],
  },
];

const currencyOptions = CURRENCIES.map((c, i) => ({ label: c, value: c, displayOrder: i, hidden: false }));

const DEAL_PROPERTIES: PropertyData[] = [
  { name: "dealname", type: "string", fieldType: "text", label: "Deal Name", hubspotDefined: true },
  { name: "amount", type: "number", fieldType: "number", label: "Amount", hubspotDefined: true, showCurrencySymbol: true },
  { name: "deal_currency_code", type: "enumeration", fieldType: "select", label: "Currency", hubspotDefined: true, options: currencyOptions },
  { name: "closedate", type: "datetime", fieldType: "date", label: "Close Date", hubspotDefined: true },
  {
    name: "pipeline",
    type: "enumeration",
    fieldType: "select",
    label: "Pipeline",
    hubspotDefined: true,
    options: [{ label: "Sales Pipeline", value: "default" }],
  },
  {
    name: "dealstage",
    type: "enumeration",
    fieldType: "radio",
    label: "Deal Stage",
    hubspotDefined: true,
    options: (DEAL_PIPELINES[0]?.stages ?? []).map((s, i) => ({ label: s.label, value: s.id, displayOrder: i })),
  },
  { name: "hubspot_owner_id", type: "enumeration", fieldType: "select", label: "Deal owner", hubspotDefined: true, referencedObjectType: "OWNER" },
];

export function generateHubSpotData(opts: GenerateOptions = {}): HubSpotSimData {
  const rand = seededRandom(opts.seed ?? 1);
  const pick = picker(rand);
  const start = Date.parse(opts.start ?? "2024-01-01T00:00:00.000Z");
  const step = opts.stepMs ?? 60_000;
  const same = opts.sameLastModified;
  let tick = 0;
  const stamps = (lastModifiedProp: string, createdProp: string) => {
    const created = start + step * tick++;
    const modified = same ?? iso(created + Math.floor(rand() * step * 10));
    return { createdAt: iso(created), updatedAt: modified, props: { [createdProp]: iso(created), [lastModifiedProp]: modified } };
  };
  const amount = (): string => {
    const decimals = 2 + Math.floor(rand() * 11);
    const whole = Math.floor(rand() * 1_000_000);
    let frac = "";
    for (let i = 0; i < decimals; i++) frac += String(Math.floor(rand() * 10));
    return `${whole}.${frac}`;
  };

  const nOwners = opts.owners ?? 5;
  const owners: OwnerData[] = [];
  for (let i = 0; i < nOwners; i++) {
    const archived = nOwners > 1 && i === nOwners - 1;
    const userId = 9_000_000 + i;
    owners.push({
      id: String(100_000 + i),
      email: `owner${i + 1}@example.com`,
      firstName: pick(FIRST),
      lastName: pick(LAST),
      userId: archived ? null : userId,
      userIdIncludingInactive: userId,
      type: "PERSON",
      archived,
      teams: i % 2 === 0 ? [{ id: "5001", name: "Sales", primary: true }] : [],
      createdAt: iso(start - 86_400_000),
      updatedAt: iso(start - 86_400_000),
    });
  }
  const activeOwners = owners.filter((o) => !o.archived).map((o) => o.id);
  const ownerId = () => (activeOwners.length ? pick(activeOwners) : null);

  const companies: RecordData[] = [];
  for (let i = 0; i < (opts.companies ?? 0); i++) {
    const s = stamps("hs_lastmodifieddate", "createdate");
    companies.push({
      id: String(1_000_001 + i),
      createdAt: s.createdAt,
      updatedAt: s.updatedAt,
      properties: { ...s.props, name: `Company ${i + 1}`, domain: `company${i + 1}.example.com`, hubspot_owner_id: ownerId() },
    });
  }
  const contacts: RecordData[] = [];
  for (let i = 0; i < (opts.contacts ?? 0); i++) {
    const s = stamps("lastmodifieddate", "createdate");
    const first = pick(FIRST),
      last = pick(LAST);
    contacts.push({
      id: String(2_000_001 + i),
      createdAt: s.createdAt,
      updatedAt: s.updatedAt,
      properties: { ...s.props, firstname: first, lastname: last, email: `${first}.${last}.${i + 1}@example.com`.toLowerCase(), hubspot_owner_id: ownerId() },
    });
  }
  const associations: AssociationData[] = [];
  const deals: RecordData[] = [];
  const lineItems: RecordData[] = [];
  const stages = DEAL_PIPELINES[0]?.stages ?? [];
  for (let i = 0; i < (opts.deals ?? 0); i++) {
    const s = stamps("hs_lastmodifieddate", "createdate");
    const id = String(3_000_001 + i);
    const currency = pick(CURRENCIES);
    deals.push({
      id,
      createdAt: s.createdAt,
      updatedAt: s.updatedAt,
      properties: {
        ...s.props,
        dealname: `Deal ${i + 1}`,
        amount: amount(),
        deal_currency_code: currency,
        pipeline: "default",
        dealstage: pick(stages).id,
        closedate: iso(Date.parse(s.createdAt) + 30 * 86_400_000),
        hubspot_owner_id: ownerId(),
      },
    });
    if (companies.length > 0) {
      const c = companies[i % companies.length]!;
      associations.push({ from: { type: "deals", id }, to: { type: "companies", id: c.id }, types: [{ typeId: 5, label: "Primary" }, { typeId: 341 }] });
    }
    if (contacts.length > 0) associations.push({ from: { type: "deals", id }, to: { type: "contacts", id: contacts[i % contacts.length]!.id } });
    for (let j = 0; j < (opts.lineItemsPerDeal ?? 0); j++) {
      const ls = stamps("hs_lastmodifieddate", "createdate");
      const liId = String(4_000_001 + lineItems.length);
      const qty = 1 + Math.floor(rand() * 10);
      lineItems.push({
        id: liId,
        createdAt: ls.createdAt,
        updatedAt: ls.updatedAt,
        properties: {
          ...ls.props,
          name: `Item ${j + 1} of deal ${i + 1}`,
          quantity: String(qty),
          price: amount(),
          amount: amount(),
          hs_line_item_currency_code: currency,
        },
      });
      associations.push({ from: { type: "line_items", id: liId }, to: { type: "deals", id } });
    }
  }
  const meetings: RecordData[] = [];
  for (let i = 0; i < (opts.meetings ?? 0); i++) {
    const s = stamps("hs_lastmodifieddate", "hs_createdate");
    const id = String(5_000_001 + i);
    meetings.push({
      id,
      createdAt: s.createdAt,
      updatedAt: s.updatedAt,
      properties: { ...s.props, hs_meeting_title: `Meeting ${i + 1}`, hs_timestamp: s.createdAt, hs_meeting_outcome: "COMPLETED", hubspot_owner_id: ownerId() },
    });
    if (deals.length > 0) associations.push({ from: { type: "meetings", id }, to: { type: "deals", id: deals[i % deals.length]!.id } });
  }
  const goals: RecordData[] = [];
  for (let i = 0; i < (opts.goalTargets ?? 0); i++) {
    const s = stamps("hs_lastmodifieddate", "hs_createdate");
    goals.push({
      id: String(6_000_001 + i),
      createdAt: s.createdAt,
      updatedAt: s.updatedAt,
      properties: {
        ...s.props,
        hs_goal_name: `Quota ${i + 1}`,
        hs_target_amount: amount(),
        hs_start_datetime: s.createdAt,
        hs_end_datetime: iso(Date.parse(s.createdAt) + 90 * 86_400_000),
        hs_assignee_user_id: String(9_000_000 + (i % Math.max(1, nOwners - 1))),
      },
    });
  }

  const data: HubSpotSimData = {
    portal: { portalId: 12345678, companyCurrency: "EUR", timeZone: "Europe/Paris", ...opts.portal },
    owners,
    objects: {
      companies: {
        properties: [
          { name: "name", type: "string", fieldType: "text", label: "Company name" },
          { name: "domain", type: "string", fieldType: "text", label: "Company Domain Name" },
        ],
        records: companies,
      },
      contacts: { properties: [{ name: "email", type: "string", fieldType: "text", label: "Email" }], records: contacts },
      deals: { properties: DEAL_PROPERTIES, records: deals },
      line_items: {
        properties: [
          { name: "name", type: "string", fieldType: "text", label: "Name" },
          { name: "quantity", type: "number", fieldType: "number", label: "Quantity" },
          { name: "price", type: "number", fieldType: "number", label: "Unit price" },
          { name: "amount", type: "number", fieldType: "number", label: "Net price" },
          { name: "hs_line_item_currency_code", type: "enumeration", fieldType: "select", label: "Currency", options: currencyOptions },
        ],
        records: lineItems,
      },
      meetings: {
        properties: [
          { name: "hs_meeting_title", type: "string", fieldType: "text" },
          { name: "hs_timestamp", type: "datetime", fieldType: "date" },
          { name: "hs_meeting_outcome", type: "enumeration", fieldType: "select", options: [{ label: "Completed", value: "COMPLETED" }] },
        ],
        records: meetings,
      },
      goal_targets: {
        properties: [
          { name: "hs_goal_name", type: "string", fieldType: "text" },
          { name: "hs_target_amount", type: "number", fieldType: "number" },
          { name: "hs_start_datetime", type: "datetime", fieldType: "date" },
          { name: "hs_end_datetime", type: "datetime", fieldType: "date" },
          { name: "hs_assignee_user_id", type: "enumeration", fieldType: "select" },
        ],
        records: goals,
      },
    },
    associations,
    pipelines: { deals: DEAL_PIPELINES },
  };
  if ((opts.customRecords ?? 0) > 0) {
    const plans: RecordData[] = [];
    for (let i = 0; i < (opts.customRecords ?? 0); i++) {
      const s = stamps("hs_lastmodifieddate", "hs_createdate");
      plans.push({
        id: String(7_000_001 + i),
        createdAt: s.createdAt,
        updatedAt: s.updatedAt,
        properties: { ...s.props, plan_name: `Plan ${i + 1}`, rate: (rand() / 10).toFixed(6) },
      });
    }
    data.objects.commission_plans = {
      properties: [
        { name: "plan_name", type: "string", fieldType: "text", label: "Plan name" },
        { name: "rate", type: "number", fieldType: "number", label: "Rate" },
      ],
      records: plans,
    };
    data.schemas = [
      {
        name: "commission_plans",
        objectTypeId: "2-9876543",
        labels: { singular: "Commission plan", plural: "Commission plans" },
        primaryDisplayProperty: "plan_name",
        requiredProperties: ["plan_name"],
        searchableProperties: ["plan_name"],
        associatedObjects: ["deals"],
      },
    ];
  }
  return data;
}

/** Parses `deals=1000,contacts=50,sameLastModified=2024-06-01T00:00:00.000Z` (the CLI's `--data generate:...`). */
export function parseGenerateSpec(spec: string): GenerateOptions {
  const out: Record<string, string | number> = {};
  for (const part of spec
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean)) {
    const [k, v] = part.split("=", 2);
    if (!k || v === undefined) throw new Error(`bad generate option '${part}' (expected key=value)`);
    out[k] = /^\d+$/.test(v) ? Number(v) : v;
  }
  return out as GenerateOptions;
}
