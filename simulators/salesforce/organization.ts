// The Organization object every real org has: one record, the org itself (key prefix 00D). It exists so that
// `SELECT DefaultCurrencyIsoCode FROM Organization` answers as a real org does: a multi-currency org has the
// field; a single-currency org has none, as in the recorded Organization record of a single-currency org
// (shared/api-fixtures/salesforce/extracted/GET_sobjects_Organization.response.json has no such key), so the
// query fails with INVALID_FIELD there, as it does against Salesforce.

import { auditFields, field } from "./describe-builders.ts";
import { completeDescribe } from "./describes.ts";
import type { FieldDescribe, SimRecord, SObjectDescribe } from "./types.ts";

/** The Organization describe (trimmed to the fields a sync may read), with DefaultCurrencyIsoCode in multi-currency orgs only. */
export function organizationDescribe(multiCurrency: boolean, codes: string[]): SObjectDescribe {
  const fields: FieldDescribe[] = [
    field({ name: "Id", type: "id", label: "Organization ID" }),
    field({ name: "Name", type: "string", label: "Name", length: 80, nameField: true, nillable: false }),
    field({ name: "Country", type: "string", label: "Country", length: 80 }),
    field({ name: "DefaultLocaleSidKey", type: "picklist", label: "Locale", length: 40, nillable: false }),
    field({ name: "TimeZoneSidKey", type: "picklist", label: "Default Time Zone", length: 40, nillable: false }),
    field({ name: "LanguageLocaleKey", type: "picklist", label: "Language", length: 40, nillable: false }),
    field({ name: "FiscalYearStartMonth", type: "int", label: "Fiscal Year Starts In", nillable: false }),
    field({ name: "OrganizationType", type: "picklist", label: "Edition", length: 40 }),
    field({ name: "IsSandbox", type: "boolean", label: "Is Sandbox" }),
    ...auditFields(),
  ];
  if (multiCurrency) {
    const at = fields.findIndex((f) => f.name === "FiscalYearStartMonth");
    fields.splice(at, 0, field({ name: "DefaultCurrencyIsoCode", type: "picklist", label: "Currency Locale", length: 3, picklist: codes }));
  }
  return completeDescribe(
    { name: "Organization", label: "Organization", labelPlural: "Organizations", custom: false, createable: false, deletable: false, fields },
    "00D",
  );
}

/** The org's own record. */
export function organizationRecord(org: { id: string; name: string; multiCurrency: boolean; corporateCurrency: string }): SimRecord {
  const rec: SimRecord = {
    Id: org.id,
    Name: org.name,
    Country: "FR",
    DefaultLocaleSidKey: "en_US",
    TimeZoneSidKey: "Europe/Paris",
    LanguageLocaleKey: "en_US",
    FiscalYearStartMonth: 1,
    OrganizationType: "Enterprise Edition",
    IsSandbox: false,
  };
  if (org.multiCurrency) rec.DefaultCurrencyIsoCode = org.corporateCurrency;
  return rec;
}
