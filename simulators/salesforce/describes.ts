// Describe handling: completes trimmed describes (e.g. the VS Code SOQL-tooling cache, which keeps only a few
// keys per field) to the full DescribeSObjectResult shape, builds describeGlobal entries and loads describe files.
// The describes synthesized for objects the data file declares without one are in describe-builders.ts.

import { readFileSync } from "node:fs";
import { dirname, isAbsolute, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import type { FieldDescribe, SObjectDescribe } from "./types.ts";

const HERE = dirname(fileURLToPath(import.meta.url));
const BUILTIN_DESCRIBE_DIR = join(HERE, "describes");

/** Key prefixes of standard objects (from real describes, Salesforce help 000385203, walling/sfid prefixes.json). */
export const KNOWN_KEY_PREFIXES: Record<string, string> = {
  Account: "001",
  Note: "002",
  Contact: "003",
  User: "005",
  Opportunity: "006",
  Lead: "00Q",
  Task: "00T",
  Event: "00U",
  Case: "500",
  Campaign: "701",
  CampaignMember: "00v",
  OpportunityContactRole: "00K",
  OpportunityLineItem: "00k",
  Organization: "00D",
  RecordType: "012",
  UserRole: "00E",
  Group: "00G",
  Profile: "00e",
  Pricebook2: "01s",
  Product2: "01t",
  PricebookEntry: "01u",
  Asset: "02i",
  EmailMessage: "02s",
  Contract: "800",
  Order: "801",
  OpportunityHistory: "008",
  DatedConversionRate: "04w",
};

const SOAP_TYPES: Record<string, string> = {
  id: "tns:ID",
  reference: "tns:ID",
  boolean: "xsd:boolean",
  int: "xsd:int",
  long: "xsd:long",
  double: "xsd:double",
  currency: "xsd:double",
  percent: "xsd:double",
  date: "xsd:date",
  datetime: "xsd:dateTime",
  time: "xsd:time",
  address: "urn:address",
  location: "urn:location",
  base64: "xsd:base64Binary",
  anyType: "xsd:anyType",
};

const FIELD_DEFAULTS: Record<string, unknown> = {
  aggregatable: true,
  aiPredictionField: false,
  autoNumber: false,
  byteLength: 0,
  calculated: false,
  calculatedFormula: null,
  cascadeDelete: false,
  caseSensitive: false,
  compoundFieldName: null,
  controllerName: null,
  createable: true,
  custom: false,
  defaultValue: null,
  defaultValueFormula: null,
  defaultedOnCreate: false,
  dependentPicklist: false,
  deprecatedAndHidden: false,
  digits: 0,
  displayLocationInDecimal: false,
  encrypted: false,
  externalId: false,
  extraTypeInfo: null,
  filterable: true,
  filteredLookupInfo: null,
  formulaTreatNullNumberAsZero: false,
  groupable: true,
  highScaleNumber: false,
  htmlFormatted: false,
  idLookup: false,
  inlineHelpText: null,
  label: "",
  length: 0,
  mask: null,
  maskType: null,
  name: "",
  nameField: false,
  namePointing: false,
  nillable: true,
  permissionable: true,
  picklistValues: [],
  polymorphicForeignKey: false,
  precision: 0,
  queryByDistance: false,
  referenceTargetField: null,
  referenceTo: [],
  relationshipName: null,
  relationshipOrder: null,
  restrictedDelete: false,
  restrictedPicklist: false,
  scale: 0,
  searchPrefilterable: false,
  soapType: "xsd:string",
  sortable: true,
  type: "string",
  unique: false,
  updateable: true,
  writeRequiresMasterRead: false,
};

const OBJECT_DEFAULTS: Record<string, unknown> = {
  actionOverrides: [],
  activateable: false,
  childRelationships: [],
  compactLayoutable: true,
  createable: true,
  custom: false,
  customSetting: false,
  deepCloneable: false,
  defaultImplementation: null,
  deletable: true,
  deprecatedAndHidden: false,
  extendedBy: null,
  extendsInterfaces: null,
  feedEnabled: false,
  hasSubtypes: false,
  implementedBy: null,
  implementsInterfaces: null,
  isInterface: false,
  isSubtype: false,
  keyPrefix: null,
  label: "",
  labelPlural: "",
  layoutable: true,
  listviewable: null,
  lookupLayoutable: null,
  mergeable: false,
  mruEnabled: true,
  name: "",
  namedLayoutInfos: [],
  networkScopeFieldName: null,
  queryable: true,
  recordTypeInfos: [],
  replicateable: true,
  retrieveable: true,
  searchLayoutable: true,
  searchable: true,
  supportedScopes: [],
  triggerable: true,
  undeletable: true,
  updateable: true,
  urls: {},
};

/** Keys of a describeGlobal entry, in the order of the real recording. */
const GLOBAL_KEYS = [
  "activateable",
  "associateEntityType",
  "associateParentEntity",
  "createable",
  "custom",
  "customSetting",
  "deepCloneable",
  "deletable",
  "deprecatedAndHidden",
  "feedEnabled",
  "hasSubtypes",
  "isInterface",
  "isSubtype",
  "keyPrefix",
  "label",
  "labelPlural",
  "layoutable",
  "mergeable",
  "mruEnabled",
  "name",
  "queryable",
  "replicateable",
  "retrieveable",
  "searchable",
  "triggerable",
  "undeletable",
  "updateable",
  "urls",
];

function typeDefaults(type: string): Record<string, unknown> {
  const soapType = SOAP_TYPES[type] ?? "xsd:string";
  switch (type) {
    case "id":
      return {
        soapType,
        length: 18,
        byteLength: 18,
        nillable: false,
        idLookup: true,
        createable: false,
        updateable: false,
        defaultedOnCreate: true,
        permissionable: false,
      };
    case "reference":
      return { soapType, length: 18, byteLength: 18 };
    case "boolean":
      return { soapType, nillable: false, defaultValue: false, defaultedOnCreate: true, groupable: true };
    case "int":
      return { soapType, digits: 9, groupable: true };
    case "double":
    case "currency":
      return { soapType, precision: 18, scale: 2, groupable: false };
    case "percent":
      return { soapType, precision: 3, scale: 0, groupable: false };
    case "date":
      return { soapType, groupable: true };
    case "datetime":
      return { soapType, groupable: false };
    case "textarea":
      return { soapType, length: 32000, byteLength: 96000, groupable: false, sortable: false, filterable: false, extraTypeInfo: "plaintextarea" };
    case "address":
    case "location":
      return { soapType, aggregatable: false, groupable: false, sortable: false, createable: false, updateable: false };
    default:
      return { soapType, length: 255, byteLength: 765 };
  }
}

export function completeField(f: FieldDescribe): FieldDescribe {
  const out: Record<string, unknown> = { ...FIELD_DEFAULTS, ...typeDefaults(f.type), label: f.name };
  for (const [k, v] of Object.entries(f)) if (v !== undefined) out[k] = v;
  const refs = Array.isArray(out.referenceTo) ? (out.referenceTo as string[]) : [];
  if (f.polymorphicForeignKey === undefined) out.polymorphicForeignKey = refs.length > 1;
  if (f.custom === undefined) out.custom = f.name.endsWith("__c");
  return out as FieldDescribe;
}

function versionedUrls(name: string, version: string, layoutable: boolean): Record<string, string> {
  const base = `/services/data/v${version}/sobjects/${name}`;
  const urls: Record<string, string> = {};
  if (layoutable) {
    urls.compactLayouts = `${base}/describe/compactLayouts`;
    urls.rowTemplate = `${base}/{ID}`;
    urls.approvalLayouts = `${base}/describe/approvalLayouts`;
    urls.listviews = `${base}/listviews`;
    urls.describe = `${base}/describe`;
    urls.quickActions = `${base}/quickActions`;
    urls.layouts = `${base}/describe/layouts`;
    urls.sobject = base;
  } else {
    urls.rowTemplate = `${base}/{ID}`;
    urls.describe = `${base}/describe`;
    urls.sobject = base;
  }
  return urls;
}

/** Completes a (possibly trimmed) describe; keeps every key the input has. */
export function completeDescribe(d: SObjectDescribe, keyPrefix: string | null | undefined): SObjectDescribe {
  if (!d || typeof d !== "object" || typeof d.name !== "string" || !Array.isArray(d.fields)) {
    throw new Error('a describe needs at least "name" and "fields"');
  }
  const out: Record<string, unknown> = { ...OBJECT_DEFAULTS };
  for (const [k, v] of Object.entries(d)) if (v !== undefined) out[k] = v;
  out.label = d.label ?? d.name;
  out.labelPlural = d.labelPlural ?? `${String(out.label)}s`;
  out.custom = d.custom ?? d.name.endsWith("__c");
  if (keyPrefix !== undefined) out.keyPrefix = keyPrefix;
  else if (d.keyPrefix === undefined) out.keyPrefix = KNOWN_KEY_PREFIXES[d.name] ?? null;
  if (!d.urls || Object.keys(d.urls).length === 0) out.urls = versionedUrls(d.name, "0.0", out.layoutable === true);
  out.fields = d.fields.map(completeField);
  return out as unknown as SObjectDescribe;
}

/** Rewrites the API version in every `/services/data/vNN.N/` inside a JSON text (CumulusCI recordings use `vxx.0`). */
export function rewriteVersion(jsonText: string, version: string): string {
  return jsonText
    .replace(/\/services\/data\/v(?:[0-9]+\.[0-9]+|xx\.0|XX\.X)\//g, `/services/data/v${version}/`)
    .replace(/\/services\/data\/v(?:[0-9]+\.[0-9]+|xx\.0)"/g, `/services/data/v${version}"`);
}

export function globalEntry(d: SObjectDescribe): Record<string, unknown> {
  const src = d as Record<string, unknown>;
  const out: Record<string, unknown> = {};
  for (const k of GLOBAL_KEYS) {
    if (k === "urls") {
      const urls = (src.urls ?? {}) as Record<string, string>;
      const keep: Record<string, string> = {};
      for (const [uk, uv] of Object.entries(urls)) if (uv.startsWith("/services/")) keep[uk] = uv;
      out.urls = keep;
    } else if (k === "associateEntityType" || k === "associateParentEntity") {
      out[k] = src[k] ?? null;
    } else {
      out[k] = src[k] ?? OBJECT_DEFAULTS[k] ?? null;
    }
  }
  return out;
}

export function loadDescribeRef(ref: string, baseDir: string): SObjectDescribe {
  let path: string;
  if (ref.startsWith("builtin:")) path = join(BUILTIN_DESCRIBE_DIR, `${ref.slice("builtin:".length)}.json`);
  else path = isAbsolute(ref) ? ref : resolve(baseDir, ref);
  const text = readFileSync(path, "utf8");
  return JSON.parse(text) as SObjectDescribe;
}
