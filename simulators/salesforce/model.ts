// In-memory org: objects with their describes and records, an id index across objects, record mutation.
// Data-file normalization, value coercion and DataError are in sim-data.ts.

import { readFileSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { builtinUserDescribe, currencyIsoCodeField, currencyTypeDescribe } from "./describe-builders.ts";
import { completeDescribe, KNOWN_KEY_PREFIXES, loadDescribeRef } from "./describes.ts";
import { IdFactory, normalizeId, to18 } from "./ids.ts";
import { organizationDescribe, organizationRecord } from "./organization.ts";
import { coerceValue, DataError, normalizeSimData } from "./sim-data.ts";
import type { FieldDescribe, SalesforceSimData, SimCurrency, SimRecord, SObjectDescribe } from "./types.ts";

export interface ObjectModel {
  name: string;
  describe: SObjectDescribe;
  /** keyPrefix from the describe (null for objects without one). */
  keyPrefix: string | null;
  /** Prefix used to mint ids (keyPrefix, or a private one). */
  idPrefix: string;
  fields: Map<string, FieldDescribe>;
  /** relationshipName (lower-case) → reference field. */
  rels: Map<string, FieldDescribe>;
  nameField: FieldDescribe | undefined;
  /** Names of boolean fields (they default to false). */
  booleanFields: string[];
  /** Records by 18-char id, in insertion order. Record objects are never mutated in place (cursors keep snapshots). */
  records: Map<string, SimRecord>;
}

interface OrgInfo {
  id: string;
  name: string;
  apiVersion: string;
  minApiVersion: string;
  multiCurrency: boolean;
  corporateCurrency: string;
  currencies: SimCurrency[];
}

const AUDIT_DATES: [string, string][] = [
  ["createddate", "CreatedDate"],
  ["lastmodifieddate", "LastModifiedDate"],
  ["systemmodstamp", "SystemModstamp"],
];

export class OrgModel {
  readonly org: OrgInfo;
  readonly objects = new Map<string, ObjectModel>();
  readonly byPrefix = new Map<string, ObjectModel>();
  readonly ids: IdFactory;
  private readonly clock: () => number;
  private privatePrefixSeq = 0;
  /** First user's id once known ('' while there is none). */
  private cachedDefaultUser = "";
  private readonly interned = new Map<string, string>();

  constructor(data: SalesforceSimData, baseDir: string, clock: () => number) {
    this.clock = clock;
    this.ids = new IdFactory();
    const o = data.org ?? {};
    const corporate = o.corporateCurrency ?? o.currencies?.[0]?.isoCode ?? "USD";
    const currencies = o.currencies && o.currencies.length > 0 ? o.currencies : [{ isoCode: corporate, conversionRate: 1, decimalPlaces: 2 }];
    this.org = {
      id: to18(o.id ?? "00DQb000000Xyz1"),
      name: o.name ?? "Qobra Sync Simulated Org",
      apiVersion: o.apiVersion ?? "66.0",
      minApiVersion: o.minApiVersion ?? "31.0",
      multiCurrency: o.multiCurrency ?? false,
      corporateCurrency: corporate,
      currencies,
    };
    if (!/^\d+\.\d$/.test(this.org.apiVersion)) throw new DataError(`org.apiVersion must look like 62.0: ${this.org.apiVersion}`);

    // 1. Build object models (describes first, so references can be checked when records load).
    const objectEntries = Object.entries(data.objects ?? {});
    const hasUser = objectEntries.some(([n]) => n.toLowerCase() === "user");
    for (const [name, od] of objectEntries) {
      let raw: SObjectDescribe;
      try {
        raw = typeof od.describe === "string" ? loadDescribeRef(od.describe, baseDir) : od.describe;
      } catch (e) {
        throw new DataError(`objects.${name}.describe: ${(e as Error).message}`);
      }
      if (raw.name !== name) throw new DataError(`objects.${name}: describe is for "${raw.name}"`);
      this.addModel(raw, od.keyPrefix);
    }
    if (!hasUser) this.addModel(builtinUserDescribe(), "005");
    const hasOrganization = objectEntries.some(([n]) => n.toLowerCase() === "organization");
    if (!hasOrganization)
      this.addModel(
        organizationDescribe(
          this.org.multiCurrency,
          currencies.map((c) => c.isoCode),
        ),
        "00D",
      );
    if (this.org.multiCurrency && !this.objects.has("currencytype")) {
      this.addModel(currencyTypeDescribe(currencies.map((c) => c.isoCode)), undefined);
    }

    // 2. Records. Users first: other records default their owner to the first user.
    const userModel = this.model("User")!;
    const users = [...(data.users ?? []), ...(data.objects?.User?.records ?? [])];
    for (const u of users) this.insert(userModel, u, true);
    if (userModel.records.size === 0) {
      this.insert(
        userModel,
        { FirstName: "Sim", LastName: "Admin", Username: "admin@sim.example.com", Email: "admin@sim.example.com", Alias: "sadmin", IsActive: true },
        true,
      );
    }
    if (this.org.multiCurrency && data.objects?.CurrencyType === undefined) {
      const ct = this.model("CurrencyType")!;
      for (const c of currencies) {
        this.insert(
          ct,
          {
            IsoCode: c.isoCode,
            ConversionRate: c.conversionRate ?? 1,
            DecimalPlaces: c.decimalPlaces ?? 2,
            IsActive: c.isActive ?? true,
            IsCorporate: c.isoCode === corporate,
          },
          true,
        );
      }
    }
    if (!hasOrganization && this.org.id.startsWith("00D")) this.insert(this.model("Organization")!, organizationRecord(this.org), true);
    for (const [name, od] of objectEntries) {
      if (name === "User") continue;
      const m = this.model(name)!;
      for (const r of od.records ?? []) this.insert(m, r, true);
    }
  }

  static fromFile(path: string, clock: () => number): OrgModel {
    const abs = resolve(path);
    const data = normalizeSimData(JSON.parse(readFileSync(abs, "utf8")) as SalesforceSimData);
    return new OrgModel(data, dirname(abs), clock);
  }

  get defaultUserId(): string {
    const first = this.model("User")!.records.keys().next();
    return first.done ? "" : first.value;
  }

  model(name: string): ObjectModel | undefined {
    return this.objects.get(name.toLowerCase());
  }

  modelForId(id: string): ObjectModel | undefined {
    return this.byPrefix.get(id.slice(0, 3));
  }

  lookup(id: string): { model: ObjectModel; rec: SimRecord } | undefined {
    const m = this.modelForId(id);
    if (!m) return undefined;
    const rec = m.records.get(id);
    return rec ? { model: m, rec } : undefined;
  }

  private addModel(raw: SObjectDescribe, keyPrefixOverride: string | undefined): void {
    const describe = completeDescribe(structuredClone(raw), keyPrefixOverride);
    const codes = this.org.currencies.map((c) => c.isoCode);
    const hasCurrencyField = describe.fields.some((f) => f.name === "CurrencyIsoCode");
    if (this.org.multiCurrency && !hasCurrencyField && describe.name !== "CurrencyType" && describe.name !== "Organization") {
      const at = describe.fields.findIndex((f) => f.name === "Name");
      const label = describe.name === "User" ? "Currency" : `${describe.label ?? describe.name} Currency`;
      describe.fields.splice(at >= 0 ? at + 1 : 1, 0, currencyIsoCodeField(codes, label));
    } else if (!this.org.multiCurrency && hasCurrencyField) {
      describe.fields = describe.fields.filter((f) => f.name !== "CurrencyIsoCode");
    }
    const keyPrefix = (describe.keyPrefix as string | null | undefined) ?? null;
    let idPrefix = keyPrefix ?? KNOWN_KEY_PREFIXES[describe.name];
    if (!idPrefix || this.byPrefix.has(idPrefix)) {
      if (keyPrefix && this.byPrefix.has(keyPrefix)) throw new DataError(`key prefix ${keyPrefix} used by two objects`);
      idPrefix = `z${String(this.privatePrefixSeq++).padStart(2, "0")}`;
    }
    const fields = new Map<string, FieldDescribe>();
    const rels = new Map<string, FieldDescribe>();
    let nameField: FieldDescribe | undefined;
    for (const f of describe.fields) {
      fields.set(f.name.toLowerCase(), f);
      if (f.type === "reference" && f.relationshipName) rels.set(f.relationshipName.toLowerCase(), f);
      if (f.nameField && !nameField) nameField = f;
    }
    if (!nameField) {
      const fallbacks: Record<string, string> = { Task: "subject", Event: "subject", Case: "casenumber" };
      const fallback = fallbacks[describe.name] ?? "name";
      nameField = fields.get(fallback);
    }
    const booleanFields = describe.fields.filter((f) => f.type === "boolean").map((f) => f.name);
    const m: ObjectModel = { name: describe.name, describe, keyPrefix, idPrefix, fields, rels, nameField, booleanFields, records: new Map() };
    this.objects.set(describe.name.toLowerCase(), m);
    this.byPrefix.set(idPrefix, m);
  }

  /** Normalises a record (canonical field names, typed values, defaults) and stores it. Returns the stored record. */
  insert(m: ObjectModel, input: SimRecord, loading: boolean): SimRecord {
    const rec: SimRecord = {};
    for (const [k, v] of Object.entries(input)) {
      if (k === "attributes") continue;
      const f = m.fields.get(k.toLowerCase());
      if (!f) {
        if (k === "CurrencyIsoCode" && !this.org.multiCurrency) continue;
        // Records as the REST API returns them may carry parent relationships (`"Owner": {attributes, ...}` or null): ignored.
        if ((v === null || (typeof v === "object" && !Array.isArray(v))) && m.rels.has(k.toLowerCase())) continue;
        throw new DataError(`${m.name} record${input.Id ? ` ${String(input.Id)}` : ""}: no field "${k}" in the ${m.name} describe`);
      }
      try {
        let cv = coerceValue(f, v);
        if (typeof cv === "string" && (f.type === "reference" || f.type === "picklist")) {
          // share repeated ids/picklist values between records
          const hit = this.interned.get(cv);
          if (hit === undefined) this.interned.set(cv, cv);
          else cv = hit;
        }
        rec[f.name] = cv;
      } catch (e) {
        throw new DataError(`${m.name} record${input.Id ? ` ${String(input.Id)}` : ""}: ${(e as Error).message}`);
      }
    }
    let id = rec.Id as string | undefined;
    if (id) {
      if (id.slice(0, 3) !== m.idPrefix) throw new DataError(`${m.name} record ${id}: id prefix is not ${m.idPrefix}`);
      this.ids.observe(id);
    } else {
      id = this.ids.next(m.idPrefix);
    }
    const existing = m.records.get(id);
    const now = this.clock();
    const out: SimRecord = existing ? { ...existing } : {};
    out.Id = id;
    for (const k in rec) out[k] = rec[k];
    const F = m.fields;
    if (F.has("isdeleted") && out.IsDeleted === undefined) out.IsDeleted = false;
    for (const [lc, n] of AUDIT_DATES) {
      if (F.has(lc) && (out[n] === undefined || out[n] === null)) out[n] = now;
    }
    if (!loading && existing) {
      // An API-style update bumps the audit fields unless the caller set them.
      if (F.has("lastmodifieddate") && rec.LastModifiedDate === undefined) out.LastModifiedDate = now;
      if (F.has("systemmodstamp") && rec.SystemModstamp === undefined) out.SystemModstamp = now;
    }
    if (!this.cachedDefaultUser) this.cachedDefaultUser = this.defaultUserId;
    const userId = this.cachedDefaultUser || id;
    if (F.has("createdbyid") && (out.CreatedById === undefined || out.CreatedById === null)) out.CreatedById = userId;
    if (F.has("lastmodifiedbyid") && (out.LastModifiedById === undefined || out.LastModifiedById === null)) out.LastModifiedById = userId;
    const owner = F.get("ownerid");
    if (owner && (out.OwnerId === undefined || out.OwnerId === null) && (owner.referenceTo ?? []).includes("User")) out.OwnerId = userId;
    const nameParts = !("Name" in rec) && ("FirstName" in rec || "LastName" in rec);
    if ((out.Name === undefined || out.Name === null || nameParts) && F.has("name") && F.has("lastname") && F.has("firstname")) {
      // Person names (User, Contact, Lead) are compound: Name is computed from its parts.
      out.Name = [out.FirstName, out.LastName].filter((x) => typeof x === "string" && x !== "").join(" ");
    }
    if (this.org.multiCurrency && F.has("currencyisocode") && (out.CurrencyIsoCode === undefined || out.CurrencyIsoCode === null)) {
      out.CurrencyIsoCode = this.org.corporateCurrency;
    }
    if (m.name === "User" && F.has("isactive") && out.IsActive === undefined) out.IsActive = true;
    for (const b of m.booleanFields) if (out[b] === undefined) out[b] = false;
    m.records.set(id, out);
    return out;
  }

  /** Soft delete (recycle bin): IsDeleted=true, audit fields bumped; visible to queryAll only. */
  softDelete(m: ObjectModel, id: string): boolean {
    const key = normalizeId(id);
    const rec = m.records.get(key);
    if (!rec) return false;
    const now = this.clock();
    const out: SimRecord = { ...rec, IsDeleted: true };
    if (m.fields.has("systemmodstamp")) out.SystemModstamp = now;
    if (m.fields.has("lastmodifieddate")) out.LastModifiedDate = now;
    m.records.set(key, Object.freeze(out));
    return true;
  }

  undelete(m: ObjectModel, id: string): boolean {
    const key = normalizeId(id);
    const rec = m.records.get(key);
    if (!rec) return false;
    const now = this.clock();
    const out: SimRecord = { ...rec, IsDeleted: false };
    if (m.fields.has("systemmodstamp")) out.SystemModstamp = now;
    m.records.set(key, Object.freeze(out));
    return true;
  }

  /** Hard delete (emptied recycle bin): gone even from queryAll. */
  purge(m: ObjectModel, id: string): boolean {
    return m.records.delete(normalizeId(id));
  }
}
