// Synthesized describes for objects the data file declares without one: custom objects (Id, OwnerId, Name, system
// fields, then the given fields), User when absent, CurrencyType and the CurrencyIsoCode field of multi-currency orgs.
// Split from describes.ts, which completes and serves describes; these build new ones from short field specs.

import { completeDescribe, completeField } from "./describes.ts";
import type { FieldDescribe, SObjectDescribe } from "./types.ts";

export interface FieldSpec {
  name: string;
  type: string;
  label?: string;
  referenceTo?: string[];
  relationshipName?: string;
  nillable?: boolean;
  length?: number;
  precision?: number;
  scale?: number;
  picklist?: string[];
  nameField?: boolean;
  compoundFieldName?: string;
  extraTypeInfo?: string;
}

export function field(spec: FieldSpec): FieldDescribe {
  const f: FieldDescribe = { name: spec.name, type: spec.type, label: spec.label ?? spec.name.replace(/__c$/, "").replace(/_/g, " ") };
  if (spec.referenceTo) {
    f.referenceTo = spec.referenceTo;
    f.relationshipName = spec.relationshipName ?? (spec.name.endsWith("__c") ? spec.name.replace(/__c$/, "__r") : spec.name.replace(/Id$/, ""));
  }
  if (spec.nillable !== undefined) f.nillable = spec.nillable;
  if (spec.length !== undefined) f.length = spec.length;
  if (spec.precision !== undefined) f.precision = spec.precision;
  if (spec.scale !== undefined) f.scale = spec.scale;
  if (spec.nameField) f.nameField = true;
  if (spec.compoundFieldName) f.compoundFieldName = spec.compoundFieldName;
  if (spec.extraTypeInfo) f.extraTypeInfo = spec.extraTypeInfo;
  if (spec.picklist) {
    f.picklistValues = spec.picklist.map((v, i) => ({
      active: true,
      defaultValue: i === 0 && spec.type === "picklist" && spec.name === "CurrencyIsoCode",
      label: v,
      validFor: null,
      value: v,
    }));
    f.restrictedPicklist = spec.name === "CurrencyIsoCode";
  }
  return completeField(f);
}

/** The audit fields every object has, in describe order: created and last-modified date and user, SystemModstamp. */
export function auditFields(): FieldDescribe[] {
  return [
    field({ name: "CreatedDate", type: "datetime", label: "Created Date", nillable: false }),
    field({ name: "CreatedById", type: "reference", label: "Created By ID", referenceTo: ["User"], relationshipName: "CreatedBy", nillable: false }),
    field({ name: "LastModifiedDate", type: "datetime", label: "Last Modified Date", nillable: false }),
    field({
      name: "LastModifiedById",
      type: "reference",
      label: "Last Modified By ID",
      referenceTo: ["User"],
      relationshipName: "LastModifiedBy",
      nillable: false,
    }),
    field({ name: "SystemModstamp", type: "datetime", label: "System Modstamp", nillable: false }),
  ];
}

function systemFields(): FieldDescribe[] {
  return [field({ name: "IsDeleted", type: "boolean", label: "Deleted" }), ...auditFields()];
}

/** A custom object describe in the real shape: Id, OwnerId, Name, system fields, then the given fields. */
export function buildCustomObjectDescribe(opts: {
  name: string;
  label?: string;
  labelPlural?: string;
  keyPrefix: string;
  fields: FieldSpec[];
}): SObjectDescribe {
  const label = opts.label ?? opts.name.replace(/__c$/, "").replace(/_/g, " ");
  const fields: FieldDescribe[] = [
    field({ name: "Id", type: "id", label: "Record ID" }),
    field({ name: "OwnerId", type: "reference", label: "Owner ID", referenceTo: ["Group", "User"], relationshipName: "Owner", nillable: false }),
    ...systemFields().slice(0, 1),
    field({ name: "Name", type: "string", label: `${label} Name`, length: 80, nameField: true, nillable: true }),
    ...systemFields().slice(1),
    ...opts.fields.map(field),
  ];
  return completeDescribe(
    {
      name: opts.name,
      label,
      labelPlural: opts.labelPlural ?? `${label}s`,
      custom: true,
      keyPrefix: opts.keyPrefix,
      mergeable: false,
      feedEnabled: false,
      fields,
      childRelationships: [],
    },
    opts.keyPrefix,
  );
}

/** Minimal User describe used when the data file gives users but no User describe. */
export function builtinUserDescribe(): SObjectDescribe {
  const fields: FieldDescribe[] = [
    field({ name: "Id", type: "id", label: "User ID" }),
    field({ name: "Username", type: "string", length: 80, nillable: false }),
    field({ name: "LastName", type: "string", label: "Last Name", length: 80, nillable: false }),
    field({ name: "FirstName", type: "string", label: "First Name", length: 40 }),
    field({ name: "Name", type: "string", label: "Full Name", length: 121, nameField: true }),
    field({ name: "Title", type: "string", length: 80 }),
    field({ name: "Department", type: "string", length: 80 }),
    field({ name: "Email", type: "email", length: 128, nillable: false }),
    field({ name: "Alias", type: "string", length: 8, nillable: false }),
    field({ name: "IsActive", type: "boolean", label: "Active" }),
    field({ name: "UserRoleId", type: "reference", label: "Role ID", referenceTo: ["UserRole"], relationshipName: "UserRole" }),
    field({ name: "ProfileId", type: "reference", label: "Profile ID", referenceTo: ["Profile"], relationshipName: "Profile", nillable: false }),
    field({ name: "ManagerId", type: "reference", label: "Manager ID", referenceTo: ["User"], relationshipName: "Manager" }),
    field({ name: "TimeZoneSidKey", type: "picklist", label: "Time Zone", length: 40, nillable: false }),
    field({ name: "LastLoginDate", type: "datetime", label: "Last Login" }),
    ...auditFields(),
  ];
  return completeDescribe({ name: "User", label: "User", labelPlural: "Users", custom: false, keyPrefix: "005", fields }, "005");
}

export function currencyIsoCodeField(codes: string[], label = "Currency ISO Code"): FieldDescribe {
  return field({ name: "CurrencyIsoCode", type: "picklist", label, length: 3, nillable: true, picklist: codes });
}

/** CurrencyType, present in multi-currency orgs (its key prefix is not verified; null in the describe). */
export function currencyTypeDescribe(codes: string[]): SObjectDescribe {
  const fields: FieldDescribe[] = [
    field({ name: "Id", type: "id", label: "Currency ID" }),
    field({ name: "IsoCode", type: "picklist", label: "Currency ISO Code", length: 3, nillable: false, picklist: codes }),
    field({ name: "ConversionRate", type: "double", label: "Conversion Rate", precision: 18, scale: 6, nillable: false }),
    field({ name: "DecimalPlaces", type: "int", label: "Decimal Places", nillable: false }),
    field({ name: "IsActive", type: "boolean", label: "Active" }),
    field({ name: "IsCorporate", type: "boolean", label: "Corporate" }),
    ...auditFields(),
  ];
  return completeDescribe({ name: "CurrencyType", label: "Currency", labelPlural: "Currencies", custom: false, layoutable: false, fields }, null);
}
