/**
 * The HubSpot simulator's associations: both directions of every link between two records, with their
 * association types (HubSpot-defined ids, custom object and user-defined labels, the inverse of each), the
 * checks a data file or an admin change must pass, and the label definitions and v3 type names the API
 * answers with. Store (store.ts) owns one and resolves object types for it.
 */
import { HUBSPOT_DEFINED, defaultTypeId } from "./catalog.ts";
import { DataError, type AssocType, type ObjectType } from "./model.ts";
import type { AssociationData, AssociationLabelData, AssociationTypeRef, ContractAssociation } from "./types.ts";

/** An association resolved against the store, ready to link (both directions). */
interface PreparedAssociation {
  from: ObjectType;
  fromId: string;
  to: ObjectType;
  toId: string;
  types: AssocType[];
  inverse: AssocType[];
}

function snake(s: string): string {
  return s
    .trim()
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, "_")
    .replace(/^_|_$/g, "");
}

export class AssociationGraph {
  /** Label definitions (the data file's, and the custom objects' HUBSPOT_DEFINED ones). */
  readonly labels: AssociationLabelData[];
  /** `${fromType}|${fromId}` → toType → toId → types. */
  private readonly assoc = new Map<string, Map<string, Map<string, AssocType[]>>>();
  private readonly resolveType: (nameOrId: string) => ObjectType | undefined;

  constructor(labels: AssociationLabelData[], resolveType: (nameOrId: string) => ObjectType | undefined) {
    this.labels = labels;
    this.resolveType = resolveType;
  }

  private toAssociationData(a: AssociationData | ContractAssociation, where: string): AssociationData {
    if (a !== null && typeof a === "object" && "fromType" in a) {
      const ref = a as ContractAssociation;
      if (typeof ref.fromType !== "string" || typeof ref.toType !== "string") throw new DataError(`${where} needs fromType, fromId, toType and toId`);
      const id = (v: unknown, k: string): string => {
        if ((typeof v === "number" && Number.isInteger(v) && v >= 0) || (typeof v === "string" && /^\d+$/.test(v))) return String(v);
        throw new DataError(`${where}.${k} must be a numeric id (got ${JSON.stringify(v)})`);
      };
      const out: AssociationData = { from: { type: ref.fromType, id: id(ref.fromId, "fromId") }, to: { type: ref.toType, id: id(ref.toId, "toId") } };
      if (ref.associationTypeId !== undefined && ref.associationTypeId !== null) {
        if (typeof ref.associationTypeId !== "number" || !Number.isInteger(ref.associationTypeId))
          throw new DataError(`${where}.associationTypeId must be an integer`);
        const t: AssociationTypeRef = { typeId: ref.associationTypeId };
        if (ref.category !== undefined) t.category = ref.category;
        if (ref.label !== undefined) t.label = ref.label;
        out.types = [t];
      }
      return out;
    }
    if (a === null || typeof a !== "object") throw new DataError(`${where} must be an association object`);
    return a as AssociationData;
  }

  // ---- object types -------------------------------------------------------------------------

  private normalizeAssocType(ref: AssociationTypeRef, from: string, to: string, where: string): AssocType {
    if (typeof ref.typeId !== "number") throw new DataError(`${where}.typeId must be a number`);
    const category = ref.category ?? this.inferCategory(from, to, ref.typeId);
    let label = ref.label ?? null;
    const defined = category === "HUBSPOT_DEFINED" ? HUBSPOT_DEFINED.get(ref.typeId) : undefined;
    if (defined && (defined.from !== from || defined.to !== to)) {
      if (!this.labelledType(from, to, ref.typeId))
        throw new DataError(`${where}: HUBSPOT_DEFINED type ${ref.typeId} links ${defined.from}→${defined.to}, not ${from}→${to}`);
      if (ref.label === undefined) label = this.labels.find((l) => l.from === from && l.to === to && l.typeId === ref.typeId)?.label ?? null;
    } else if (defined) {
      if (ref.label === undefined && defined.primary) label = "Primary";
    } else if (ref.label === undefined) {
      label = this.labels.find((l) => l.from === from && l.to === to && l.typeId === ref.typeId)?.label ?? null;
    }
    return { category, typeId: ref.typeId, label };
  }

  /**
   * Category of a type id given without one: HUBSPOT_DEFINED for HubSpot's ids, else the category of the label
   * (custom objects' ids are HUBSPOT_DEFINED labels), else USER_DEFINED.
   */
  private inferCategory(from: string, to: string, typeId: number): AssocType["category"] {
    const d = HUBSPOT_DEFINED.get(typeId);
    if (d && d.from === from && d.to === to) return "HUBSPOT_DEFINED";
    const direct = this.labels.find((l) => l.from === from && l.to === to && l.typeId === typeId);
    if (direct) return direct.category ?? "USER_DEFINED";
    const reverse = this.labels.find((l) => l.from === to && l.to === from && l.inverseTypeId === typeId);
    if (reverse) return reverse.category ?? "USER_DEFINED";
    return d ? "HUBSPOT_DEFINED" : "USER_DEFINED"; // a HubSpot id on the wrong pair is reported by normalizeAssocType
  }

  /** Whether a label (custom object association or user-defined) declares this type id for from → to. */
  private labelledType(from: string, to: string, typeId: number): boolean {
    return this.labels.some((l) => (l.from === from && l.to === to && l.typeId === typeId) || (l.from === to && l.to === from && l.inverseTypeId === typeId));
  }

  private inverseOf(t: AssocType, from: string, to: string): AssocType {
    if (t.category === "HUBSPOT_DEFINED") {
      const d = HUBSPOT_DEFINED.get(t.typeId);
      if (d && d.from === from && d.to === to) {
        const inv = HUBSPOT_DEFINED.get(d.inverse);
        return { category: "HUBSPOT_DEFINED", typeId: d.inverse, label: inv?.primary ? "Primary" : null };
      }
    }
    const direct = this.labels.find((l) => l.from === from && l.to === to && l.typeId === t.typeId && l.inverseTypeId !== undefined);
    if (direct) return { category: t.category, typeId: direct.inverseTypeId!, label: direct.inverseLabel ?? direct.label ?? null };
    const reverse = this.labels.find((l) => l.from === to && l.to === from && l.inverseTypeId === t.typeId);
    if (reverse) return { category: t.category, typeId: reverse.typeId, label: reverse.label };
    return { ...t };
  }

  private defaultTypes(from: ObjectType, to: ObjectType, where: string): AssocType[] {
    const id = defaultTypeId(from.name, to.name);
    if (id !== undefined) return [{ category: "HUBSPOT_DEFINED", typeId: id, label: null }];
    const custom = this.labels.find((l) => l.from === from.name && l.to === to.name && l.category === "HUBSPOT_DEFINED");
    if (custom) return [{ category: "HUBSPOT_DEFINED", typeId: custom.typeId, label: null }];
    const reverse = this.labels.find((l) => l.from === to.name && l.to === from.name && l.category === "HUBSPOT_DEFINED" && l.inverseTypeId !== undefined);
    if (reverse) return [{ category: "HUBSPOT_DEFINED", typeId: reverse.inverseTypeId!, label: null }];
    throw new DataError(`${where}: no default association type between ${from.name} and ${to.name}; give "types"`);
  }

  /** Adds an association of the data file (records must exist). */
  add(input: AssociationData | ContractAssociation, where: string): void {
    this.applyAssociation(this.prepareAssociation(input, where, true));
  }

  /** Resolves and checks an association (either shape) without changing anything. */
  private prepareAssociation(input: AssociationData | ContractAssociation, where: string, recordsMustExist: boolean): PreparedAssociation {
    const a = this.toAssociationData(input, where);
    const from = this.resolveType(a.from?.type ?? "");
    const to = this.resolveType(a.to?.type ?? "");
    if (!from || !to) throw new DataError(`${where} names an unknown object type (${a.from?.type} → ${a.to?.type})`);
    if (typeof a.from.id !== "string" || typeof a.to.id !== "string") throw new DataError(`${where}: record ids must be numeric strings`);
    if (recordsMustExist && !from.records.has(a.from.id)) throw new DataError(`${where}.from: no ${from.name} record ${a.from.id}`);
    if (recordsMustExist && !to.records.has(a.to.id)) throw new DataError(`${where}.to: no ${to.name} record ${a.to.id}`);
    const types = a.types?.length
      ? a.types.map((t, i) => this.normalizeAssocType(t, from.name, to.name, `${where}.types[${i}]`))
      : this.defaultTypes(from, to, where);
    const inverse = a.inverseTypes?.length
      ? a.inverseTypes.map((t, i) => this.normalizeAssocType(t, to.name, from.name, `${where}.inverseTypes[${i}]`))
      : types.map((t) => this.inverseOf(t, from.name, to.name));
    return { from, fromId: a.from.id, to, toId: a.to.id, types, inverse };
  }

  private applyAssociation(p: PreparedAssociation): void {
    this.link(p.from.name, p.fromId, p.to.name, p.toId, p.types);
    this.link(p.to.name, p.toId, p.from.name, p.fromId, p.inverse);
  }

  /**
   * Adds and removes associations (both directions), as HubSpot does without touching the records'
   * last-modified dates (the store bumps its version when anything changed). Everything is checked before anything changes. A removal without a type id removes
   * every type between the two records. Returns how many (from → to, type) links were added and removed.
   */
  changeAssociations(add: unknown, remove: unknown): { added: number; removed: number } {
    if (add !== undefined && !Array.isArray(add)) throw new DataError("add must be an array of associations");
    if (remove !== undefined && !Array.isArray(remove)) throw new DataError("remove must be an array of associations");
    const adds = ((add ?? []) as unknown[]).map((a, i) => this.prepareAssociation(a as ContractAssociation, `add[${i}]`, true));
    const removes = ((remove ?? []) as unknown[]).map((a, i) => {
      const where = `remove[${i}]`;
      const raw = this.toAssociationData(a as ContractAssociation, where);
      const from = this.resolveType(raw.from?.type ?? "");
      const to = this.resolveType(raw.to?.type ?? "");
      if (!from || !to) throw new DataError(`${where} names an unknown object type (${raw.from?.type} → ${raw.to?.type})`);
      const typeIds = (raw.types ?? []).map((t, j) => {
        if (typeof t?.typeId !== "number") throw new DataError(`${where}.types[${j}].typeId must be a number`);
        return t.typeId;
      });
      return { from, fromId: raw.from.id, to, toId: raw.to.id, typeIds };
    });
    let added = 0,
      removed = 0;
    for (const p of adds) {
      const before = this.associationsOf(p.from.name, p.fromId, p.to.name).find((x) => x.toId === p.toId)?.types.length ?? 0;
      this.applyAssociation(p);
      added += (this.associationsOf(p.from.name, p.fromId, p.to.name).find((x) => x.toId === p.toId)?.types.length ?? 0) - before;
    }
    for (const r of removes) {
      const { from, to } = r;
      if (r.typeIds.length === 0) {
        removed += this.unlink(from.name, r.fromId, to.name, r.toId, () => true);
        this.unlink(to.name, r.toId, from.name, r.fromId, () => true);
        continue;
      }
      const stored = this.associationsOf(from.name, r.fromId, to.name).find((x) => x.toId === r.toId)?.types ?? [];
      for (const t of stored.filter((x) => r.typeIds.includes(x.typeId))) {
        removed += this.unlink(from.name, r.fromId, to.name, r.toId, (x) => x.typeId === t.typeId && x.category === t.category);
        const inv = this.inverseOf(t, from.name, to.name);
        this.unlink(to.name, r.toId, from.name, r.fromId, (x) => x.typeId === inv.typeId);
      }
    }
    return { added, removed };
  }

  private unlink(fromType: string, fromId: string, toType: string, toId: string, match: (t: AssocType) => boolean): number {
    const byType = this.assoc.get(`${fromType}|${fromId}`);
    const byId = byType?.get(toType);
    const list = byId?.get(toId);
    if (!byType || !byId || !list) return 0;
    const kept = list.filter((t) => !match(t));
    const n = list.length - kept.length;
    if (kept.length > 0) byId.set(toId, kept);
    else {
      byId.delete(toId);
      if (byId.size === 0) byType.delete(toType);
      if (byType.size === 0) this.assoc.delete(`${fromType}|${fromId}`);
    }
    return n;
  }

  private link(fromType: string, fromId: string, toType: string, toId: string, types: AssocType[]): void {
    const key = `${fromType}|${fromId}`;
    let byType = this.assoc.get(key);
    if (!byType) this.assoc.set(key, (byType = new Map()));
    let byId = byType.get(toType);
    if (!byId) byType.set(toType, (byId = new Map()));
    const existing = byId.get(toId) ?? [];
    for (const t of types) if (!existing.some((e) => e.typeId === t.typeId && e.category === t.category)) existing.push(t);
    byId.set(toId, existing);
  }

  /**
   * Removes every link of one record, both directions (a purge); with `into`, its links move to that
   * record of the same type instead, as HubSpot moves a merged record's associations to the survivor.
   */
  dropRecord(typeName: string, id: string, into?: string): void {
    const mine = this.assoc.get(`${typeName}|${id}`);
    if (!mine) return;
    this.assoc.delete(`${typeName}|${id}`);
    for (const [toType, byId] of mine) {
      for (const [toId, types] of byId) {
        const back = this.assoc.get(`${toType}|${toId}`)?.get(typeName);
        const inverse = back?.get(id) ?? [];
        this.unlink(toType, toId, typeName, id, () => true);
        if (into === undefined || (toType === typeName && toId === into)) continue;
        this.link(typeName, into, toType, toId, types);
        if (inverse.length > 0) this.link(toType, toId, typeName, into, inverse);
      }
    }
  }

  /** Associations of one record towards one type, ordered by numeric target id. */
  associationsOf(fromType: string, fromId: string, toType: string): Array<{ toId: string; types: AssocType[] }> {
    const byId = this.assoc.get(`${fromType}|${fromId}`)?.get(toType);
    if (!byId) return [];
    return [...byId.entries()].map(([toId, types]) => ({ toId, types })).sort((a, b) => Number(a.toId) - Number(b.toId));
  }

  /** Association label definitions between two types (HubSpot-defined ones included). */
  labelsBetween(from: string, to: string): AssocType[] {
    const out: AssocType[] = [];
    for (const d of HUBSPOT_DEFINED.values()) {
      if (d.from === from && d.to === to) out.push({ category: "HUBSPOT_DEFINED", typeId: d.typeId, label: d.primary ? "Primary" : null });
    }
    for (const l of this.labels) {
      if (l.from === from && l.to === to) out.push({ category: l.category ?? "USER_DEFINED", typeId: l.typeId, label: l.label });
      else if (l.from === to && l.to === from && l.inverseTypeId !== undefined) {
        out.push({ category: l.category ?? "USER_DEFINED", typeId: l.inverseTypeId, label: l.inverseLabel ?? l.label });
      }
    }
    const seen = new Set<string>();
    return out.filter((t) => {
      const k = `${t.category}:${t.typeId}`;
      if (seen.has(k)) return false;
      seen.add(k);
      return true;
    });
  }

  /** The v3 association type name (`deal_to_company`, `deal_to_company_unlabeled`, a label's snake case). */
  v3TypeName(from: ObjectType, to: ObjectType, t: AssocType): string {
    const base = `${from.singular}_to_${to.singular}`;
    if (t.category !== "HUBSPOT_DEFINED") return t.label ? snake(t.label) : base;
    const d = HUBSPOT_DEFINED.get(t.typeId);
    if (d && !d.primary && [...HUBSPOT_DEFINED.values()].some((x) => x.from === d.from && x.to === d.to && x.primary)) return `${base}_unlabeled`;
    return base;
  }
}
