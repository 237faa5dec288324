/**
 * Object types and their properties as the store builds them from a HubSpotSimData document: standard,
 * generic standard and custom object types, custom object association type ids, property definitions with
 * HubSpot's defaults, and the built-in properties of catalog.ts. Split from store.ts: these build the type
 * definitions once, while the Store class owns records, versions and the admin upserts.
 */
import { GENERIC_STANDARD_TYPES, KNOWN_PROPERTIES, STANDARD_TYPES, type StandardType } from "./catalog.ts";
import { DataError, checkIso, type ObjectType, type Property } from "./model.ts";
import type { AssociationLabelData, CustomObjectSchemaData, PropertyData } from "./types.ts";

/** A data file entry's object type: standard, generic standard (e.g. calls) or custom (which needs its schema). */
export function makeObjectType(
  name: string,
  objectTypeId: string | undefined,
  schema: CustomObjectSchemaData | undefined,
  portalId: number,
  loadTime: string,
): ObjectType {
  const std = STANDARD_TYPES.find((s) => s.name === name);
  const generic = GENERIC_STANDARD_TYPES.find((s) => s.name === name);
  let t: ObjectType;
  if (std) {
    t = fromStandard(std);
  } else if (generic) {
    t = {
      name,
      objectTypeId: generic.objectTypeId,
      singular: generic.singular,
      custom: false,
      specFile: "crm-objects-v3.json",
      specSegment: "{objectType}",
      idParam: "objectId",
      createdProperty: "createdate",
      lastModifiedProperty: "hs_lastmodifieddate",
      defaultProperties: ["createdate", "hs_lastmodifieddate", "hs_object_id"],
      queryProperties: [],
      scopeKey: generic.scopeKey,
      properties: new Map(),
      records: new Map(),
      sortedIds: null,
    };
  } else {
    if (!schema)
      throw new DataError(
        `objects.${name} is not a standard object type (${STANDARD_TYPES.map((s) => s.name).join(", ")}); a custom object needs an entry in schemas`,
      );
    const fqn = schema.fullyQualifiedName ?? `p${portalId}_${name}`;
    t = {
      name,
      objectTypeId: schema.objectTypeId,
      singular: name,
      custom: true,
      specFile: "crm-custom-objects-v3.json",
      specSegment: "{objectType}",
      idParam: "objectId",
      createdProperty: "hs_createdate",
      lastModifiedProperty: "hs_lastmodifieddate",
      defaultProperties: ["hs_createdate", "hs_lastmodifieddate", "hs_object_id"],
      queryProperties: schema.searchableProperties ?? [schema.primaryDisplayProperty],
      scopeKey: "custom",
      properties: new Map(),
      records: new Map(),
      sortedIds: null,
      schema: {
        ...schema,
        fullyQualifiedName: fqn,
        createdAt: checkIso(schema.createdAt, `schemas(${name}).createdAt`) ?? loadTime,
        updatedAt: checkIso(schema.updatedAt, `schemas(${name}).updatedAt`) ?? loadTime,
        archived: schema.archived ?? false,
        associationDefs: [],
      },
    };
  }
  if (objectTypeId && objectTypeId !== t.objectTypeId) throw new DataError(`objects.${name}.objectTypeId ${objectTypeId} contradicts ${t.objectTypeId}`);
  return t;
}

/**
 * Custom object association type ids: the schema's `associationTypeIds` / `inverseAssociationTypeIds` when
 * given, else pairs (n, n+1) from 900 in schema order (documented).
 */
export function assignCustomAssociationTypes(
  types: Map<string, ObjectType>,
  labels: AssociationLabelData[],
  resolveType: (nameOrId: string) => ObjectType | undefined,
): void {
  let next = 900;
  const used = new Set<number>();
  const givenId = (ids: Record<string, number> | undefined, o: ObjectType): number | undefined => {
    if (!ids) return undefined;
    for (const [k, v] of Object.entries(ids)) if (resolveType(k) === o) return v;
    return undefined;
  };
  for (const t of types.values()) {
    for (const v of [...Object.values(t.schema?.associationTypeIds ?? {}), ...Object.values(t.schema?.inverseAssociationTypeIds ?? {})]) used.add(v);
  }
  const fresh = (): number => {
    while (used.has(next)) next++;
    used.add(next);
    return next++;
  };
  for (const t of types.values()) {
    if (!t.schema) continue;
    for (const other of t.schema.associatedObjects ?? []) {
      const o = resolveType(other);
      if (!o) throw new DataError(`schemas(${t.name}).associatedObjects names unknown object type ${JSON.stringify(other)}`);
      const forwardGiven = givenId(t.schema.associationTypeIds, o) ?? givenId(o.schema?.inverseAssociationTypeIds, t);
      const inverseGiven = givenId(t.schema.inverseAssociationTypeIds, o) ?? givenId(o.schema?.associationTypeIds, t);
      const typeId = forwardGiven ?? fresh();
      const inverse = inverseGiven ?? fresh();
      t.schema.associationDefs.push({
        id: String(typeId),
        name: `${t.singular}_to_${o.singular}`,
        fromObjectTypeId: t.objectTypeId,
        toObjectTypeId: o.objectTypeId,
        typeId,
        toName: o.name,
      });
      labels.push({ from: t.name, to: o.name, category: "HUBSPOT_DEFINED", typeId, label: null, inverseTypeId: inverse, inverseLabel: null });
      if (o.schema) {
        o.schema.associationDefs.push({
          id: String(inverse),
          name: `${o.singular}_to_${t.singular}`,
          fromObjectTypeId: o.objectTypeId,
          toObjectTypeId: t.objectTypeId,
          typeId: inverse,
          toName: t.name,
        });
      }
    }
  }
}

export function addProperty(t: ObjectType, p: PropertyData, where: string, builtin: boolean): void {
  if (!p || typeof p.name !== "string" || !p.name) throw new DataError(`${where}.name is required`);
  if (typeof p.type !== "string" || typeof p.fieldType !== "string") throw new DataError(`${where} (${p.name}) needs type and fieldType`);
  const options = (p.options ?? []).map((o, i) => {
    if (typeof o.value !== "string" || typeof o.label !== "string") throw new DataError(`${where}.options[${i}] needs string label and value`);
    return { ...o, hidden: o.hidden ?? false, displayOrder: o.displayOrder ?? i };
  });
  const prop: Property = {
    name: p.name,
    label: p.label ?? p.name.replace(/_/g, " ").replace(/^\w/, (c) => c.toUpperCase()),
    type: p.type,
    fieldType: p.fieldType,
    description: p.description ?? "",
    groupName: p.groupName ?? `${t.singular}information`,
    options,
    displayOrder: p.displayOrder ?? -1,
    calculated: p.calculated ?? false,
    externalOptions: p.externalOptions ?? false,
    hasUniqueValue: p.hasUniqueValue ?? false,
    hidden: p.hidden ?? false,
    hubspotDefined: p.hubspotDefined ?? builtin,
    formField: p.formField ?? false,
    archived: p.archived ?? false,
    modificationMetadata: p.modificationMetadata
      ? { ...p.modificationMetadata }
      : { archivable: !builtin, readOnlyDefinition: builtin, readOnlyValue: p.calculated ?? false },
    dataSensitivity: p.dataSensitivity ?? "non_sensitive",
  };
  if (p.createdAt) prop.createdAt = checkIso(p.createdAt, `${where}.createdAt`)!;
  if (p.updatedAt) prop.updatedAt = checkIso(p.updatedAt, `${where}.updatedAt`)!;
  if (p.referencedObjectType !== undefined) prop.referencedObjectType = p.referencedObjectType;
  if (p.showCurrencySymbol !== undefined) prop.showCurrencySymbol = p.showCurrencySymbol;
  if (p.currencyPropertyName !== undefined) prop.currencyPropertyName = p.currencyPropertyName;
  if (p.numberDisplayHint !== undefined) prop.numberDisplayHint = p.numberDisplayHint;
  if (p.calculationFormula !== undefined) prop.calculationFormula = p.calculationFormula;
  if (typeof p.createdUserId === "string") prop.createdUserId = p.createdUserId;
  if (typeof p.updatedUserId === "string") prop.updatedUserId = p.updatedUserId;
  t.properties.set(p.name, prop);
}

/** Adds the built-in properties HubSpot defines for the type (catalog.ts) that the data file did not give. */
export function addKnownProperties(t: ObjectType): void {
  const known = [...(KNOWN_PROPERTIES["*"] ?? []), ...(KNOWN_PROPERTIES[t.name] ?? [])];
  const wanted = new Set([t.createdProperty, t.lastModifiedProperty, "hs_object_id"]);
  for (const k of known) {
    if (t.properties.has(k.name)) continue;
    const isGlobal = (KNOWN_PROPERTIES["*"] ?? []).includes(k);
    if (isGlobal && !wanted.has(k.name) && k.name !== "hubspot_owner_id" && k.name !== "hs_merged_object_ids") continue;
    addProperty(t, k, `builtin ${t.name}.${k.name}`, true);
  }
}

export function fromStandard(std: StandardType): ObjectType {
  return {
    name: std.name,
    objectTypeId: std.objectTypeId,
    singular: std.singular,
    custom: false,
    specFile: std.specFile,
    specSegment: std.pathSegment,
    idParam: std.idParam,
    createdProperty: std.createdProperty,
    lastModifiedProperty: std.lastModifiedProperty,
    defaultProperties: std.defaultProperties,
    queryProperties: std.queryProperties,
    scopeKey: std.scopeKey,
    properties: new Map(),
    records: new Map(),
    sortedIds: null,
  };
}
