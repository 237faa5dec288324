/**
 * The simulator's in-memory portal: object types, records (with the version search can see),
 * owners, associations (both directions), custom object schemas, pipelines and settings, built
 * from a HubSpotSimData document. Data mistakes throw DataError naming the offending path.
 * The shapes are in model.ts, settings in settings.ts, the association links in association-graph.ts,
 * the construction of object types and property definitions in object-types.ts. What stays here is
 * one class: type resolution, records with their search-visible versions and the admin upserts share
 * the store's private maps and version counter.
 */
import { STANDARD_TYPES, TYPE_ALIASES } from "./catalog.ts";
import { AssociationGraph } from "./association-graph.ts";
import {
  DataError,
  checkIso,
  stringify,
  toIso,
  type AdminRecordInput,
  type AssocType,
  type ObjectType,
  type Owner,
  type Pipeline,
  type RecordVersion,
  type Settings,
  type StoredRecord,
} from "./model.ts";
import { addKnownProperties, addProperty, assignCustomAssociationTypes, fromStandard, makeObjectType } from "./object-types.ts";
import { normalizeOwner, normalizePipeline, normalizeSettings } from "./settings.ts";

export { loadData } from "./settings.ts";
import type { AssociationLabelData, CustomObjectSchemaData, HubSpotSimData, PropertyValue, RecordData } from "./types.ts";

// The model's types and helpers are imported from here by the rest of the simulator (and its tests).
export * from "./model.ts";

export class Store {
  readonly settings: Settings;
  readonly types = new Map<string, ObjectType>();
  readonly owners: Owner[] = [];
  readonly pipelines = new Map<string, Pipeline[]>();
  readonly labels: AssociationLabelData[];
  private readonly graph: AssociationGraph;
  /** Bumped on every change (search caches key on it). */
  version = 0;
  private readonly loadTime: string;

  constructor(input: HubSpotSimData, nowMs: number) {
    if (input === null || typeof input !== "object") throw new DataError("the document must be a JSON object");
    if (!input.objects || typeof input.objects !== "object") throw new DataError("`objects` is required (object types by name)");
    this.loadTime = new Date(nowMs).toISOString();
    this.settings = normalizeSettings(input);
    this.labels = [...(input.associationLabels ?? [])];
    this.graph = new AssociationGraph(this.labels, (nameOrId) => this.resolveType(nameOrId));
    const schemas = new Map<string, CustomObjectSchemaData>();
    (input.schemas ?? []).forEach((s, i) => {
      if (!s.name || !/^2-\d+$/.test(s.objectTypeId ?? "")) throw new DataError(`schemas[${i}] needs a name and an objectTypeId like "2-1234567"`);
      if (!input.objects[s.name]) throw new DataError(`schemas[${i}].name ${JSON.stringify(s.name)} has no entry in objects`);
      schemas.set(s.name, s);
    });
    for (const [name, def] of Object.entries(input.objects)) {
      this.addType(name, def.objectTypeId, schemas.get(name));
    }
    assignCustomAssociationTypes(this.types, this.labels, (nameOrId) => this.resolveType(nameOrId));
    for (const [name, def] of Object.entries(input.objects)) {
      const t = this.types.get(name)!;
      (def.properties ?? []).forEach((p, i) => {
        addProperty(t, p, `objects.${name}.properties[${i}]`, false);
      });
      addKnownProperties(t);
      (def.records ?? []).forEach((r, i) => {
        this.addRecord(t, r, `objects.${name}.records[${i}]`);
      });
    }
    (input.owners ?? []).forEach((o, i) => {
      this.owners.push(normalizeOwner(o, `owners[${i}]`, this.loadTime));
    });
    for (const [typeName, list] of Object.entries(input.pipelines ?? {})) {
      const key = this.resolveTypeName(typeName) ?? typeName;
      this.pipelines.set(
        key,
        list.map((p, i) => normalizePipeline(p, `pipelines.${typeName}[${i}]`)),
      );
    }
    (input.associations ?? []).forEach((a, i) => {
      this.graph.add(a, `associations[${i}]`);
    });
  }

  private addType(name: string, objectTypeId: string | undefined, schema: CustomObjectSchemaData | undefined): void {
    this.types.set(name, makeObjectType(name, objectTypeId, schema, this.settings.portalId, this.loadTime));
  }

  /** Resolves a path's object type: plural name, alias, type id, fully qualified name or p_<name>. */
  resolveType(nameOrId: string): ObjectType | undefined {
    const key = this.resolveTypeName(nameOrId);
    return key ? this.types.get(key) : undefined;
  }

  resolveTypeName(nameOrId: string): string | undefined {
    const raw = decodeURIComponent(nameOrId);
    const lower = raw.toLowerCase();
    if (this.types.has(lower)) return lower;
    const alias = TYPE_ALIASES[lower];
    if (alias && this.types.has(alias)) return alias;
    for (const t of this.types.values()) {
      if (t.objectTypeId === raw) return t.name;
      if (t.schema && (t.schema.fullyQualifiedName.toLowerCase() === lower || `p_${t.name}` === lower)) return t.name;
    }
    // standard types without data still resolve (empty), so pipelines/properties of e.g. tickets answer
    const std = STANDARD_TYPES.find((s) => s.name === lower || s.objectTypeId === raw || s.name === alias);
    if (std) {
      this.types.set(std.name, fromStandard(std));
      addKnownProperties(this.types.get(std.name)!);
      return std.name;
    }
    return undefined;
  }

  // ---- records ------------------------------------------------------------------------------

  private addRecord(t: ObjectType, r: RecordData, where: string): void {
    if (!r || typeof r.id !== "string" || !/^\d+$/.test(r.id)) throw new DataError(`${where}.id must be a numeric string such as "1001"`);
    if (t.records.has(r.id)) throw new DataError(`${where}.id ${r.id} is duplicated in ${t.name}`);
    const properties: Record<string, string | null> = {};
    for (const [k, v] of Object.entries(r.properties ?? {})) {
      properties[k] = stringify(v);
      if (!t.properties.has(k)) addProperty(t, { name: k, type: "string", fieldType: "text" }, `${where}.properties.${k}`, false);
    }
    const createdAt = checkIso(r.createdAt, `${where}.createdAt`) ?? toIso(properties[t.createdProperty]) ?? this.loadTime;
    const updatedAt = checkIso(r.updatedAt, `${where}.updatedAt`) ?? toIso(properties[t.lastModifiedProperty]) ?? createdAt;
    properties.hs_object_id = r.id;
    properties[t.createdProperty] ??= createdAt;
    properties[t.lastModifiedProperty] ??= updatedAt;
    const rec: StoredRecord = {
      id: r.id,
      idNum: Number(r.id),
      properties,
      createdAt,
      updatedAt,
      archived: r.archived ?? false,
      changedAt: Number.NEGATIVE_INFINITY,
      indexed: null,
    };
    if (rec.archived) rec.archivedAt = checkIso(r.archivedAt, `${where}.archivedAt`) ?? updatedAt;
    t.records.set(r.id, rec);
    t.sortedIds = null;
  }

  /** Records ordered by numeric id (list paging order). */
  sorted(t: ObjectType): StoredRecord[] {
    t.sortedIds ??= [...t.records.values()].sort((a, b) => a.idNum - b.idNum);
    return t.sortedIds;
  }

  /** The version of a record that search sees at `now` (null: not searchable). */
  searchVersion(rec: StoredRecord, now: number): RecordVersion | null {
    const visible = now >= rec.changedAt + this.settings.search.indexDelayMs ? rec : rec.indexed;
    return visible && !visible.archived ? visible : null;
  }

  /** Earliest future instant at which search visibility changes (for result caches). */
  nextVisibilityChange(t: ObjectType, now: number): number {
    let next = Number.POSITIVE_INFINITY;
    const delay = this.settings.search.indexDelayMs;
    for (const r of t.records.values()) {
      const at = r.changedAt + delay;
      if (at > now && at < next) next = at;
    }
    return next;
  }

  private snapshot(rec: StoredRecord): RecordVersion {
    const v: RecordVersion = { properties: { ...rec.properties }, createdAt: rec.createdAt, updatedAt: rec.updatedAt, archived: rec.archived };
    if (rec.archivedAt) v.archivedAt = rec.archivedAt;
    return v;
  }

  private beforeChange(rec: StoredRecord, now: number): void {
    if (now >= rec.changedAt + this.settings.search.indexDelayMs) rec.indexed = this.snapshot(rec);
    rec.changedAt = now;
  }

  /**
   * Creates or updates a record as HubSpot would after a UI/API write: properties merged,
   * updatedAt and the last-modified property set to `updatedAt` (default: now).
   */
  upsertRecord(
    typeName: string,
    input: { id?: string; properties?: Record<string, PropertyValue>; updatedAt?: string; createdAt?: string },
    now: number,
  ): StoredRecord {
    const t = this.resolveType(typeName);
    if (!t) throw new DataError(`unknown object type ${typeName}`);
    const at = checkIso(input.updatedAt, "updatedAt") ?? new Date(now).toISOString();
    let rec = input.id ? t.records.get(input.id) : undefined;
    if (!rec) {
      const id = input.id ?? String(Math.max(0, ...[...t.records.values()].map((r) => r.idNum)) + 1);
      this.addRecord(t, { id, properties: input.properties ?? {}, createdAt: input.createdAt ?? at, updatedAt: at }, `upsert ${t.name}`);
      rec = t.records.get(id)!;
      rec.changedAt = now;
      rec.indexed = null;
    } else {
      this.beforeChange(rec, now);
      for (const [k, v] of Object.entries(input.properties ?? {})) {
        rec.properties[k] = stringify(v);
        if (!t.properties.has(k)) addProperty(t, { name: k, type: "string", fieldType: "text" }, `upsert ${t.name}.${k}`, false);
      }
      rec.updatedAt = at;
      rec.properties[t.lastModifiedProperty] = at;
    }
    this.version++;
    return rec;
  }

  /**
   * POST /__admin/records: upserts records given as GET /crm/v3/objects/{type}/{id} returns them, all or nothing.
   * The last-modified date is the record's last-modified property, else its `updatedAt`, else now; the create
   * date likewise. `archived: true` archives the record, `archived: false` restores an archived one.
   */
  adminUpsert(typeName: unknown, records: unknown, now: number): StoredRecord[] {
    if (typeof typeName !== "string" || typeName === "") throw new DataError("objectType must be an object type name or id");
    if (!Array.isArray(records)) throw new DataError("records must be an array of records");
    const t = this.resolveType(typeName);
    if (!t) throw new DataError(`unknown object type ${typeName}`);
    const nowIso = new Date(now).toISOString();
    const prepared = records.map((r: unknown, i) => {
      const where = `records[${i}]`;
      if (r === null || typeof r !== "object" || Array.isArray(r)) throw new DataError(`${where} must be an object`);
      const rec = r as AdminRecordInput;
      let id: string | undefined;
      if (rec.id !== undefined && rec.id !== null) {
        if ((typeof rec.id === "number" && Number.isInteger(rec.id) && rec.id > 0) || (typeof rec.id === "string" && /^\d+$/.test(rec.id))) id = String(rec.id);
        else throw new DataError(`${where}.id must be a numeric string such as "1001"`);
      }
      if (rec.properties !== undefined && (rec.properties === null || typeof rec.properties !== "object" || Array.isArray(rec.properties))) {
        throw new DataError(`${where}.properties must be an object`);
      }
      const properties = { ...(rec.properties ?? {}) };
      delete properties.hs_object_id;
      const instant = (v: PropertyValue | undefined, what: string): string | undefined => {
        if (v === undefined || v === null || v === "") return undefined;
        const iso = toIso(String(v));
        if (iso === undefined) throw new DataError(`${where}.properties.${what} must be a datetime (ISO 8601 or epoch ms)`);
        return iso;
      };
      const updatedAt = instant(properties[t.lastModifiedProperty], t.lastModifiedProperty) ?? checkIso(rec.updatedAt, `${where}.updatedAt`) ?? nowIso;
      const createdAt = instant(properties[t.createdProperty], t.createdProperty) ?? checkIso(rec.createdAt, `${where}.createdAt`);
      if (properties[t.lastModifiedProperty] !== undefined) properties[t.lastModifiedProperty] = updatedAt;
      if (properties[t.createdProperty] !== undefined && createdAt !== undefined) properties[t.createdProperty] = createdAt;
      if (rec.archived !== undefined && typeof rec.archived !== "boolean") throw new DataError(`${where}.archived must be a boolean`);
      return { id, properties, updatedAt, createdAt, archived: rec.archived };
    });
    const out: StoredRecord[] = [];
    for (const p of prepared) {
      const existing = p.id === undefined ? undefined : t.records.get(p.id);
      const input: { id?: string; properties: Record<string, PropertyValue>; updatedAt: string; createdAt?: string } = {
        properties: p.properties,
        updatedAt: p.updatedAt,
      };
      if (p.id !== undefined) input.id = p.id;
      if (p.createdAt !== undefined) input.createdAt = p.createdAt;
      const rec = this.upsertRecord(t.name, input, now);
      if (existing && p.createdAt !== undefined) {
        rec.createdAt = p.createdAt;
        rec.properties[t.createdProperty] = p.createdAt;
      }
      if (p.archived === true && !rec.archived) {
        rec.archived = true;
        rec.archivedAt = p.updatedAt;
      } else if (p.archived === false && rec.archived) {
        rec.archived = false;
        delete rec.archivedAt;
      }
      out.push(rec);
    }
    if (out.length > 0) t.sortedIds = null;
    return out;
  }

  /** POST /__admin/archive: archives records (already archived or unknown ids are reported, not errors). */
  adminArchive(typeName: unknown, ids: unknown, now: number): { objectType: string; archived: string[]; notFound: string[] } {
    if (typeof typeName !== "string" || typeName === "") throw new DataError("objectType must be an object type name or id");
    if (!Array.isArray(ids) || ids.some((x) => typeof x !== "string" && typeof x !== "number")) throw new DataError("ids must be an array of record ids");
    const t = this.resolveType(typeName);
    if (!t) throw new DataError(`unknown object type ${typeName}`);
    const archived: string[] = [];
    const notFound: string[] = [];
    for (const raw of ids as Array<string | number>) {
      const id = String(raw);
      const rec = t.records.get(id);
      if (!rec || rec.archived) {
        notFound.push(id);
        continue;
      }
      this.archiveRecord(t.name, id, now);
      archived.push(id);
    }
    return { objectType: t.name, archived, notFound };
  }

  archiveRecord(typeName: string, id: string, now: number): void {
    const t = this.resolveType(typeName);
    const rec = t?.records.get(id);
    if (!t || !rec) throw new DataError(`no ${typeName} record ${id}`);
    this.beforeChange(rec, now);
    rec.archived = true;
    rec.archivedAt = new Date(now).toISOString();
    rec.updatedAt = rec.archivedAt;
    this.version++;
  }

  // ---- associations (association-graph.ts) ---------------------------------------------------

  /**
   * Adds and removes associations (both directions), as HubSpot does without touching the records'
   * last-modified dates. Everything is checked before anything changes. Returns how many (from → to, type)
   * links were added and removed.
   */
  changeAssociations(add: unknown, remove: unknown): { added: number; removed: number } {
    const out = this.graph.changeAssociations(add, remove);
    if (out.added > 0 || out.removed > 0) this.version++;
    return out;
  }

  /** Drops a record's associations (purge), or moves them to `into` (merge): see AssociationGraph.dropRecord. */
  dropAssociations(typeName: string, id: string, into?: string): void {
    this.graph.dropRecord(typeName, id, into);
    this.version++;
  }

  /** Associations of one record towards one type, ordered by numeric target id. */
  associationsOf(fromType: string, fromId: string, toType: string): Array<{ toId: string; types: AssocType[] }> {
    return this.graph.associationsOf(fromType, fromId, toType);
  }

  /** Association label definitions between two types (HubSpot-defined ones included). */
  labelsBetween(from: string, to: string): AssocType[] {
    return this.graph.labelsBetween(from, to);
  }

  /** The v3 association type name (`deal_to_company`, `deal_to_company_unlabeled`, a label's snake case). */
  v3TypeName(from: ObjectType, to: ObjectType, t: AssocType): string {
    return this.graph.v3TypeName(from, to, t);
  }
}
