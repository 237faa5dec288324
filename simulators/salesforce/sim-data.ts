// The data file as the org model reads it: DataError for its mistakes, normalization of the two data-file
// formats into the internal one, and coercion of record values (ids, dates, datetimes, numbers) to field types.
// Split from model.ts, which builds and mutates the in-memory org from the normalized data.

import { isIdString, normalizeId, to18 } from "./ids.ts";
import type { FieldDescribe, SalesforceSimData, SimOAuthClient, SimRecord, SimTokenSeed } from "./types.ts";

export class DataError extends Error {}

/**
 * Accepts both data-file formats and returns the internal one (idempotent):
 * - the public format of issue #4: `org.organizationId`, top-level `clients: [{ clientId, clientSecret,
 *   refreshToken, rotateRefreshTokens }]` (merged into `oauth.clients` / `oauth.refreshTokens`);
 * - the original format (`org.id`, `oauth`), unchanged.
 * Multi-currency orgs without `org.currencies` get the corporate currency plus every other CurrencyIsoCode
 * used by a record (conversion rate 1).
 */
export function normalizeSimData(input: SalesforceSimData): SalesforceSimData {
  if (input === null || typeof input !== "object" || Array.isArray(input)) throw new DataError("the data must be a JSON object");
  if (input.objects !== undefined && (input.objects === null || typeof input.objects !== "object" || Array.isArray(input.objects))) {
    throw new DataError('"objects" must be an object keyed by sObject name');
  }
  const out: SalesforceSimData = { ...input, objects: input.objects ?? {} };
  if (input.currency !== undefined) {
    if (input.org?.currency !== undefined && input.org.currency !== input.currency) throw new DataError('"currency" and org.currency differ');
    out.org = { ...(input.org ?? {}), currency: input.currency };
    delete out.currency;
  }
  if (out.org) {
    const org = { ...out.org };
    if (org.currency !== undefined) {
      if (org.currency !== "single" && org.currency !== "multi") throw new DataError('org.currency must be "single" or "multi"');
      const multi = org.currency === "multi";
      if (org.multiCurrency !== undefined && org.multiCurrency !== multi) throw new DataError(`org.currency "${org.currency}" contradicts org.multiCurrency`);
      org.multiCurrency = multi;
      delete org.currency;
    }
    if (org.organizationId !== undefined) {
      if (typeof org.organizationId !== "string" || !isIdString(org.organizationId))
        throw new DataError(`org.organizationId is not a 15- or 18-character id: ${JSON.stringify(org.organizationId)}`);
      if (org.id !== undefined && to18(org.id) !== to18(org.organizationId))
        throw new DataError(`org.id ${org.id} and org.organizationId ${org.organizationId} differ`);
      org.id = org.organizationId;
      delete org.organizationId;
    }
    if (org.multiCurrency === true && (org.currencies === undefined || org.currencies.length === 0)) {
      const corporate = org.corporateCurrency ?? "USD";
      const codes = new Set<string>([corporate]);
      const scan = (recs: SimRecord[] | undefined) => {
        for (const r of recs ?? []) if (typeof r.CurrencyIsoCode === "string" && r.CurrencyIsoCode !== "") codes.add(r.CurrencyIsoCode);
      };
      scan(input.users);
      for (const od of Object.values(out.objects ?? {})) scan(od?.records);
      org.corporateCurrency = corporate;
      org.currencies = [...codes].map((isoCode) => ({ isoCode, conversionRate: 1, decimalPlaces: 2 }));
    }
    out.org = org;
  }
  if (input.clients !== undefined) {
    if (!Array.isArray(input.clients)) throw new DataError('"clients" must be an array of { clientId, clientSecret, refreshToken?, rotateRefreshTokens? }');
    const oauth = { ...(input.oauth ?? {}) };
    const clients: SimOAuthClient[] = [...(oauth.clients ?? [])];
    const refreshTokens: SimTokenSeed[] = [...(oauth.refreshTokens ?? [])];
    input.clients.forEach((c, i) => {
      if (!c || typeof c.clientId !== "string" || c.clientId === "" || typeof c.clientSecret !== "string") {
        throw new DataError(`clients[${i}] needs a string clientId and clientSecret`);
      }
      const client: SimOAuthClient = { clientId: c.clientId, clientSecret: c.clientSecret };
      if (c.redirectUris !== undefined) client.redirectUris = c.redirectUris;
      if (c.rotateRefreshTokens !== undefined) {
        if (typeof c.rotateRefreshTokens !== "boolean") throw new DataError(`clients[${i}].rotateRefreshTokens must be a boolean`);
        client.rotateRefreshTokens = c.rotateRefreshTokens;
      }
      clients.push(client);
      if (c.refreshToken !== undefined && c.refreshToken !== null) {
        if (typeof c.refreshToken !== "string" || c.refreshToken === "") throw new DataError(`clients[${i}].refreshToken must be a non-empty string`);
        const seed: SimTokenSeed = { token: c.refreshToken, clientId: c.clientId };
        if (c.user !== undefined) seed.user = c.user;
        refreshTokens.push(seed);
      }
    });
    oauth.clients = clients;
    oauth.refreshTokens = refreshTokens;
    out.oauth = oauth;
    delete out.clients;
  }
  return out;
}

const ISO_OFFSET_NO_COLON = /([+-]\d{2})(\d{2})$/;

export function parseDateTime(v: unknown): number | null {
  if (v === null || v === undefined || v === "") return null;
  if (typeof v === "number") return v;
  if (v instanceof Date) return v.getTime();
  if (typeof v === "string") {
    let s = v.trim();
    if (/^\d{4}-\d{2}-\d{2}$/.test(s)) s += "T00:00:00Z";
    s = s.replace(ISO_OFFSET_NO_COLON, "$1:$2");
    const ms = Date.parse(s);
    if (!Number.isNaN(ms)) return ms;
  }
  throw new DataError(`not a datetime: ${JSON.stringify(v)}`);
}

export function coerceValue(f: FieldDescribe, v: unknown): unknown {
  if (v === null || v === undefined) return null;
  switch (f.type) {
    case "id":
    case "reference": {
      const s = String(v);
      if (s === "") return null;
      if (!isIdString(s)) throw new DataError(`field ${f.name}: not an id: ${s}`);
      return normalizeId(s);
    }
    case "datetime":
      return parseDateTime(v);
    case "date": {
      if (typeof v === "number") return new Date(v).toISOString().slice(0, 10);
      const s = String(v);
      if (/^\d{4}-\d{2}-\d{2}/.test(s)) return s.slice(0, 10);
      throw new DataError(`field ${f.name}: not a date: ${s}`);
    }
    case "boolean":
      if (typeof v === "boolean") return v;
      if (v === "true") return true;
      if (v === "false") return false;
      throw new DataError(`field ${f.name}: not a boolean: ${JSON.stringify(v)}`);
    case "int":
    case "long":
    case "double":
    case "currency":
    case "percent": {
      const n = typeof v === "number" ? v : Number(String(v));
      if (!Number.isFinite(n)) throw new DataError(`field ${f.name}: not a number: ${JSON.stringify(v)}`);
      return n;
    }
    case "address":
    case "location":
      return null; // compound fields are computed from their components
    default:
      return typeof v === "string" ? v : typeof v === "object" ? JSON.stringify(v) : String(v);
  }
}
