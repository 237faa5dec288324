// Deterministic data generator for benchmarks and tests: users, accounts, contacts, leads, opportunities (with
// CurrencyIsoCode and many-decimal amounts), tasks with polymorphic WhoId/WhatId, a synthesized custom object
// Commission__c, some soft-deleted rows. Describes are the bundled real ones (`builtin:<Name>`).

import { iso, picker, seededRandom } from "../kit/random.ts";
import { buildCustomObjectDescribe } from "./describe-builders.ts";
import type { FieldSpec } from "./describe-builders.ts";
import { IdFactory } from "./ids.ts";
import type { SalesforceSimData, SimOAuthSettings, SimOrgSettings, SimRecord, SObjectDescribe } from "./types.ts";

interface GenerateSalesforceDataOptions {
  opportunities: number;
  accounts?: number;
  contacts?: number;
  leads?: number;
  tasks?: number;
  users?: number;
  /** Rows of the custom object Commission__c (default: half the opportunities). */
  commissions?: number;
  /** Fraction of accounts, opportunities, tasks and commissions that are soft-deleted (default 0.02). */
  deletedRatio?: number;
  seed?: number;
  multiCurrency?: boolean;
  /** ISO codes; the first is the corporate currency (default USD, EUR, GBP). */
  currencies?: string[];
  /** Records are created/modified between these instants (default 2024-01-01 .. 2024-12-31). */
  start?: string;
  end?: string;
  org?: SimOrgSettings;
  oauth?: SimOAuthSettings;
}

const FIRST = ["Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Margaret", "Ken", "Frances", "John", "Radia", "Tim", "Hedy", "Linus", "Karen", "Dennis"];
const LAST = [
  "Lovelace",
  "Hopper",
  "Turing",
  "Dijkstra",
  "Liskov",
  "Knuth",
  "Hamilton",
  "Thompson",
  "Allen",
  "Backus",
  "Perlman",
  "Berners-Lee",
  "Lamarr",
  "Torvalds",
  "Spärck Jones",
  "O'Brien",
];
const COMPANY_A = ["Acme", "Globex", "Initech", "Umbrella", "Hooli", "Vandelay", "Stark", "Wayne", "Wonka", "Tyrell", "Cyberdyne", "Soylent"];
const COMPANY_B = ["Corp", "Industries", "SAS", "GmbH", "Ltd", "Holdings", "Labs", "& Co", "Systems", "Group"];
const INDUSTRIES = ["Technology", "Finance", "Manufacturing", "Retail", "Healthcare", "Energy", null];
const STAGES: [string, number, boolean, boolean][] = [
  ["Prospecting", 10, false, false],
  ["Qualification", 20, false, false],
  ["Needs Analysis", 30, false, false],
  ["Proposal/Price Quote", 60, false, false],
  ["Negotiation/Review", 80, false, false],
  ["Closed Won", 100, true, true],
  ["Closed Lost", 0, true, false],
];
const CITIES: [string, string][] = [
  ["Paris", "France"],
  ["Lyon", "France"],
  ["Berlin", "Germany"],
  ["London", "United Kingdom"],
  ["New York", "United States"],
  ["San Francisco", "United States"],
];

function commissionDescribe(): SObjectDescribe {
  const fields: FieldSpec[] = [
    { name: "Opportunity__c", type: "reference", label: "Opportunity", referenceTo: ["Opportunity"], relationshipName: "Opportunity__r" },
    { name: "Payee__c", type: "reference", label: "Payee", referenceTo: ["User"], relationshipName: "Payee__r" },
    { name: "Amount__c", type: "currency", label: "Amount", precision: 18, scale: 2 },
    { name: "Rate__c", type: "percent", label: "Rate", precision: 5, scale: 2 },
    { name: "Paid_Date__c", type: "date", label: "Paid Date" },
    { name: "Paid__c", type: "boolean", label: "Paid" },
    { name: "Status__c", type: "picklist", label: "Status", picklist: ["Draft", "Validated", "Paid", "Disputed"] },
    { name: "Notes__c", type: "textarea", label: "Notes", length: 32768, extraTypeInfo: "plaintextarea" },
  ];
  return buildCustomObjectDescribe({ name: "Commission__c", label: "Commission", keyPrefix: "a0C", fields });
}

export function generateSalesforceData(opts: GenerateSalesforceDataOptions): SalesforceSimData {
  const r = seededRandom(opts.seed ?? 42);
  const pick = picker(r);
  const nOpp = Math.max(0, Math.floor(opts.opportunities));
  const nAcc = opts.accounts ?? Math.max(1, Math.ceil(nOpp / 5));
  const nCon = opts.contacts ?? nAcc * 2;
  const nLead = opts.leads ?? Math.max(1, Math.ceil(nAcc / 2));
  const nTask = opts.tasks ?? nOpp;
  const nUser = Math.max(1, opts.users ?? 5);
  const nCom = opts.commissions ?? Math.ceil(nOpp / 2);
  const delRatio = opts.deletedRatio ?? 0.02;
  const mc = opts.multiCurrency ?? true;
  const currencies = opts.currencies ?? ["USD", "EUR", "GBP"];
  const start = Date.parse(opts.start ?? "2024-01-01T00:00:00Z");
  const end = Date.parse(opts.end ?? "2024-12-31T23:59:59Z");
  const ids = new IdFactory("Gn");
  // Salesforce stores datetimes to the second: many rows share a SystemModstamp, as in real orgs.
  const instant = (from = start) => Math.floor((from + r() * Math.max(0, end - from)) / 1000) * 1000;
  const audit = (ownerIds: string[]): SimRecord => {
    const created = instant();
    const modified = r() < 0.5 ? created : instant(created);
    return {
      CreatedDate: iso(created),
      LastModifiedDate: iso(modified),
      SystemModstamp: iso(modified),
      CreatedById: pick(ownerIds),
      LastModifiedById: pick(ownerIds),
    };
  };
  const deleted = () => r() < delRatio;

  const users: SimRecord[] = [];
  for (let i = 0; i < nUser; i++) {
    const fn = FIRST[i % FIRST.length]!;
    const ln = LAST[(i * 7) % LAST.length]!;
    const slug = `${fn}.${ln}`.toLowerCase().replace(/[^a-z.]/g, "");
    users.push({
      Id: ids.next("005"),
      FirstName: fn,
      LastName: ln,
      Username: `${slug}${i}@qobra-sim.example.com`,
      Email: `${slug}@example.com`,
      Alias: `${fn.slice(0, 1)}${ln.slice(0, 4)}`.toLowerCase(),
      IsActive: i < nUser - 1 || nUser === 1,
      Title: i === 0 ? "Sales Director" : "Account Executive",
      Department: "Sales",
      TimeZoneSidKey: "Europe/Paris",
      LocaleSidKey: "fr_FR_EURO",
      LanguageLocaleKey: "en_US",
      EmailEncodingKey: "UTF-8",
      CreatedDate: iso(start - 86_400_000 * 30),
      LastModifiedDate: iso(start - 86_400_000 * 30),
      SystemModstamp: iso(start - 86_400_000 * 30),
      ...(mc ? { CurrencyIsoCode: currencies[i % currencies.length] } : {}),
    });
  }
  const userIds = users.map((u) => u.Id as string);
  for (const u of users) {
    u.CreatedById = userIds[0];
    u.LastModifiedById = userIds[0];
  }
  const cur = () => (mc ? { CurrencyIsoCode: r() < 0.6 ? currencies[0] : pick(currencies) } : {});

  const accounts: SimRecord[] = [];
  for (let i = 0; i < nAcc; i++) {
    const [city, country] = pick(CITIES);
    accounts.push({
      Id: ids.next("001"),
      Name: `${pick(COMPANY_A)} ${pick(COMPANY_B)} ${i + 1}`,
      Type: pick(["Customer - Direct", "Customer - Channel", "Prospect", null]),
      Industry: pick(INDUSTRIES),
      AnnualRevenue: r() < 0.2 ? null : Math.round(r() * 5e8),
      NumberOfEmployees: Math.floor(r() * 20000),
      BillingCity: city,
      BillingCountry: country,
      OwnerId: pick(userIds),
      IsDeleted: deleted(),
      ...cur(),
      ...audit(userIds),
    });
  }
  const accountIds = accounts.map((a) => a.Id as string);
  const contacts: SimRecord[] = [];
  for (let i = 0; i < nCon; i++) {
    const fn = pick(FIRST);
    const ln = pick(LAST);
    contacts.push({
      Id: ids.next("003"),
      FirstName: fn,
      LastName: ln,
      Email: `${fn}.${ln}.${i}@example.org`.toLowerCase().replace(/[^a-z0-9.@]/g, ""),
      AccountId: pick(accountIds),
      OwnerId: pick(userIds),
      Title: pick(["CFO", "VP Sales", "Head of RevOps", null]),
      ...cur(),
      ...audit(userIds),
    });
  }
  const leads: SimRecord[] = [];
  for (let i = 0; i < nLead; i++) {
    leads.push({
      Id: ids.next("00Q"),
      FirstName: pick(FIRST),
      LastName: pick(LAST),
      Company: `${pick(COMPANY_A)} ${pick(COMPANY_B)}`,
      Status: pick(["Open - Not Contacted", "Working - Contacted", "Closed - Converted"]),
      OwnerId: pick(userIds),
      ...cur(),
      ...audit(userIds),
    });
  }
  const opportunities: SimRecord[] = [];
  for (let i = 0; i < nOpp; i++) {
    const [stage, prob, closed, won] = pick(STAGES);
    const a = audit(userIds);
    const close = new Date(Date.parse(String(a.CreatedDate)) + Math.floor(r() * 180) * 86_400_000).toISOString().slice(0, 10);
    opportunities.push({
      Id: ids.next("006"),
      Name: `Deal ${i + 1} - ${pick(COMPANY_A)}`,
      AccountId: r() < 0.95 ? pick(accountIds) : null,
      StageName: stage,
      // many decimals on purpose: the ETL must keep them (NUMERIC, not float rounding to 2 places)
      Amount: r() < 0.05 ? null : Math.round(r() * 250_000 * 1e6) / 1e6,
      Probability: prob,
      CloseDate: close,
      IsClosed: closed,
      IsWon: won,
      Type: pick(["New Customer", "Existing Customer - Upgrade", "Existing Customer - Renewal", null]),
      LeadSource: pick(["Web", "Partner", "Cold Call", null]),
      OwnerId: pick(userIds),
      IsDeleted: deleted(),
      ...cur(),
      ...a,
    });
  }
  const oppIds = opportunities.map((o) => o.Id as string);
  const contactIds = contacts.map((c) => c.Id as string);
  const leadIds = leads.map((l) => l.Id as string);
  const tasks: SimRecord[] = [];
  for (let i = 0; i < nTask; i++) {
    const useLead = leadIds.length > 0 && r() < 0.2;
    const whoId = useLead ? pick(leadIds) : contactIds.length > 0 && r() < 0.9 ? pick(contactIds) : null;
    // a task linked to a lead cannot have a WhatId (Salesforce rule)
    const whatId = useLead ? null : r() < 0.6 && oppIds.length > 0 ? pick(oppIds) : r() < 0.8 ? pick(accountIds) : null;
    const status = pick(["Not Started", "In Progress", "Completed"]);
    tasks.push({
      Id: ids.next("00T"),
      Subject: pick(["Call", "Email", "Send quote", "Demo", "Follow-up"]),
      Status: status,
      Priority: pick(["High", "Normal", "Low"]),
      WhoId: whoId,
      WhatId: whatId,
      ActivityDate: new Date(instant()).toISOString().slice(0, 10),
      OwnerId: pick(userIds),
      IsClosed: status === "Completed",
      TaskSubtype: pick(["Task", "Call", "Email"]),
      IsDeleted: deleted(),
      ...cur(),
      ...audit(userIds),
    });
  }
  const commissions: SimRecord[] = [];
  for (let i = 0; i < nCom && oppIds.length > 0; i++) {
    const st = pick(["Draft", "Validated", "Paid", "Disputed"]);
    commissions.push({
      Id: ids.next("a0C"),
      Name: `COM-${String(i + 1).padStart(6, "0")}`,
      OwnerId: pick(userIds),
      Opportunity__c: pick(oppIds),
      Payee__c: pick(userIds),
      Amount__c: Math.round(r() * 25_000 * 1e4) / 1e4,
      Rate__c: Math.round(r() * 1500) / 100,
      Paid__c: st === "Paid",
      Paid_Date__c: st === "Paid" ? new Date(instant()).toISOString().slice(0, 10) : null,
      Status__c: st,
      Notes__c: r() < 0.3 ? 'Split "50/50" with partner,\nsee thread' : null,
      IsDeleted: deleted(),
      ...cur(),
      ...audit(userIds),
    });
  }

  return {
    org: {
      name: "Qobra Sim Org",
      apiVersion: "66.0",
      multiCurrency: mc,
      corporateCurrency: currencies[0],
      currencies: currencies.map((c, i) => ({ isoCode: c, conversionRate: i === 0 ? 1 : Math.round((0.7 + r() * 0.6) * 1e6) / 1e6, decimalPlaces: 2 })),
      dailyApiLimit: 100_000,
      ...(opts.org ?? {}),
    },
    oauth: opts.oauth ?? {},
    users,
    objects: {
      User: { describe: "builtin:User", keyPrefix: "005" },
      Account: { describe: "builtin:Account", records: accounts },
      Contact: { describe: "builtin:Contact", records: contacts },
      Lead: { describe: "builtin:Lead", records: leads },
      Opportunity: { describe: "builtin:Opportunity", records: opportunities },
      Task: { describe: "builtin:Task", keyPrefix: "00T", records: tasks },
      Commission__c: { describe: commissionDescribe(), records: commissions },
    },
  };
}
