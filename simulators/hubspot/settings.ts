/**
 * The HubSpot simulator's data document read from a file, and its portal settings, owners and pipelines:
 * defaults filled in, every value checked (a DataError names the offending path).
 */
import { readFileSync } from "node:fs";
import { DEFAULT_SCOPES, DataError, checkIso, type Owner, type Pipeline, type Settings } from "./model.ts";
import type { HubSpotContractData, HubSpotSimData, OwnerData, PipelineData } from "./types.ts";

function positiveInt(v: unknown, def: number, where: string): number {
  if (v === undefined) return def;
  if (typeof v !== "number" || !Number.isInteger(v) || v < 0) throw new DataError(`${where} must be a non-negative integer`);
  return v;
}

/** An app's registered redirect URIs: `redirectUri` and `redirectUris`, each an absolute http(s) URL. */
function registeredUris(one: string | undefined, more: unknown, where: string): string[] {
  if (more !== undefined && (!Array.isArray(more) || more.some((u) => typeof u !== "string")))
    throw new DataError(`${where}.redirectUris must be an array of URLs`);
  const out: string[] = [];
  for (const u of [...(one !== undefined ? [one] : []), ...((more as string[] | undefined) ?? [])]) {
    let url: URL;
    try {
      url = new URL(u);
    } catch {
      throw new DataError(`${where}: redirect URI ${JSON.stringify(u)} is not an absolute URL`);
    }
    if (url.protocol !== "http:" && url.protocol !== "https:") throw new DataError(`${where}: redirect URI ${JSON.stringify(u)} must be http(s)`);
    if (!out.includes(u)) out.push(u);
  }
  return out;
}

function scopeList(v: unknown, where: string): string[] {
  if (v === undefined) return [];
  if (!Array.isArray(v) || v.some((s) => typeof s !== "string")) throw new DataError(`${where} must be an array of scope names`);
  return [...(v as string[])];
}

export function normalizeSettings(input: HubSpotSimData): Settings {
  const p = input.portal ?? {};
  const o = p.oauth ?? {};
  const rl = p.rateLimits ?? {};
  const s = p.search ?? {};
  const l = p.limits ?? {};
  if (p.timeZone) {
    try {
      new Intl.DateTimeFormat("en-US", { timeZone: p.timeZone });
    } catch {
      throw new DataError(`portal.timeZone ${JSON.stringify(p.timeZone)} is not an IANA time zone`);
    }
  }
  if (l.listLimitBehavior !== undefined && l.listLimitBehavior !== "clamp" && l.listLimitBehavior !== "reject") {
    throw new DataError('portal.limits.listLimitBehavior must be "clamp" or "reject"');
  }
  const mainClientId = o.clientId ?? "sim-client-id";
  const apps: Settings["oauth"]["apps"] = [
    {
      clientId: mainClientId,
      clientSecret: o.clientSecret ?? "sim-client-secret",
      redirectUri: o.redirectUri,
      redirectUris: registeredUris(o.redirectUri, o.redirectUris, "portal.oauth"),
      requiredScopes: scopeList(o.requiredScopes, "portal.oauth.requiredScopes"),
    },
  ];
  (o.apps ?? []).forEach((a, i) => {
    if (!a || typeof a.clientId !== "string" || typeof a.clientSecret !== "string")
      throw new DataError(`portal.oauth.apps[${i}] needs clientId and clientSecret`);
    if (!apps.some((x) => x.clientId === a.clientId))
      apps.push({
        clientId: a.clientId,
        clientSecret: a.clientSecret,
        redirectUri: a.redirectUri,
        redirectUris: registeredUris(a.redirectUri, a.redirectUris, `portal.oauth.apps[${i}]`),
        requiredScopes: scopeList(a.requiredScopes, `portal.oauth.apps[${i}].requiredScopes`),
      });
  });
  return {
    portalId: positiveInt(p.portalId, 12345678, "portal.portalId"),
    timeZone: p.timeZone ?? "UTC",
    companyCurrency: p.companyCurrency ?? "USD",
    additionalCurrencies: p.additionalCurrencies ?? [],
    grantedScopes: p.grantedScopes ?? DEFAULT_SCOPES,
    oauth: {
      clientId: mainClientId,
      clientSecret: o.clientSecret ?? "sim-client-secret",
      redirectUri: o.redirectUri,
      accessTokenTtlSeconds: positiveInt(o.accessTokenTtlSeconds, 1800, "portal.oauth.accessTokenTtlSeconds"),
      authorizationCodeTtlSeconds: positiveInt(o.authorizationCodeTtlSeconds, 600, "portal.oauth.authorizationCodeTtlSeconds"),
      apps,
    },
    rateLimits: {
      tenSecondly: positiveInt(rl.tenSecondly ?? rl.perTenSeconds, 100, "portal.rateLimits.tenSecondly"),
      intervalMs: positiveInt(rl.intervalMs, 10_000, "portal.rateLimits.intervalMs"),
      searchPerSecond: positiveInt(rl.searchPerSecond, 5, "portal.rateLimits.searchPerSecond"),
      daily: positiveInt(rl.daily, 250_000, "portal.rateLimits.daily"),
      specExemptions: rl.specExemptions ?? true,
      retryAfter: rl.retryAfter ?? true,
    },
    search: {
      indexDelayMs: positiveInt(s.indexDelayMs ?? p.searchIndexDelayMs, 0, "portal.search.indexDelayMs"),
      maxResults: positiveInt(s.maxResults, 10_000, "portal.search.maxResults"),
      maxLimit: positiveInt(s.maxLimit, 200, "portal.search.maxLimit"),
      maxFilterGroups: positiveInt(s.maxFilterGroups, 5, "portal.search.maxFilterGroups"),
      maxFiltersPerGroup: positiveInt(s.maxFiltersPerGroup, 6, "portal.search.maxFiltersPerGroup"),
      maxFilters: positiveInt(s.maxFilters, 18, "portal.search.maxFilters"),
      maxQueryLength: positiveInt(s.maxQueryLength, 3000, "portal.search.maxQueryLength"),
    },
    limits: {
      listMaxLimit: positiveInt(l.listMaxLimit, 100, "portal.limits.listMaxLimit"),
      listLimitBehavior: l.listLimitBehavior ?? "clamp",
      batchReadMaxInputs: positiveInt(l.batchReadMaxInputs, 100, "portal.limits.batchReadMaxInputs"),
      associationsBatchMaxInputs: positiveInt(l.associationsBatchMaxInputs, 1000, "portal.limits.associationsBatchMaxInputs"),
      associationsPageSize: positiveInt(l.associationsPageSize, 500, "portal.limits.associationsPageSize"),
      ownersMaxLimit: positiveInt(l.ownersMaxLimit, 500, "portal.limits.ownersMaxLimit"),
    },
  };
}

export function normalizeOwner(o: OwnerData, where: string, loadTime: string): Owner {
  if (!o || typeof o.id !== "string" || !/^\d+$/.test(o.id)) throw new DataError(`${where}.id must be a numeric string`);
  const archived = o.archived ?? false;
  const userId = o.userId === undefined ? null : o.userId;
  if (archived && userId !== null) throw new DataError(`${where}: an archived owner has userId null (keep the id in userIdIncludingInactive)`);
  const owner: Owner = {
    id: o.id,
    userId,
    type: o.type ?? "PERSON",
    teams: o.teams ?? [],
    createdAt: checkIso(o.createdAt, `${where}.createdAt`) ?? loadTime,
    updatedAt: checkIso(o.updatedAt, `${where}.updatedAt`) ?? checkIso(o.createdAt, `${where}.createdAt`) ?? loadTime,
    archived,
  };
  if (o.email !== undefined) owner.email = o.email;
  if (o.firstName !== undefined) owner.firstName = o.firstName;
  if (o.lastName !== undefined) owner.lastName = o.lastName;
  const inactive = o.userIdIncludingInactive ?? userId ?? undefined;
  if (inactive !== undefined) owner.userIdIncludingInactive = inactive;
  return owner;
}

export function normalizePipeline(p: PipelineData, where: string): Pipeline {
  if (!p || typeof p.id !== "string" || typeof p.label !== "string" || !Array.isArray(p.stages)) {
    throw new DataError(`${where} needs id, label and stages`);
  }
  const epoch = "1970-01-01T00:00:00.000Z";
  return {
    id: p.id,
    label: p.label,
    displayOrder: p.displayOrder ?? 0,
    createdAt: checkIso(p.createdAt, `${where}.createdAt`) ?? epoch,
    updatedAt: checkIso(p.updatedAt, `${where}.updatedAt`) ?? epoch,
    archived: p.archived ?? false,
    stages: p.stages.map((s, i) => {
      if (typeof s.id !== "string" || typeof s.label !== "string") throw new DataError(`${where}.stages[${i}] needs id and label`);
      const stage: Pipeline["stages"][number] = {
        id: s.id,
        label: s.label,
        displayOrder: s.displayOrder ?? i,
        metadata: Object.fromEntries(Object.entries(s.metadata ?? {}).map(([k, v]) => [k, String(v)])),
        createdAt: checkIso(s.createdAt, `${where}.stages[${i}].createdAt`) ?? epoch,
        updatedAt: checkIso(s.updatedAt, `${where}.stages[${i}].updatedAt`) ?? epoch,
        archived: s.archived ?? false,
      };
      if (s.writePermissions) stage.writePermissions = s.writePermissions;
      return stage;
    }),
  };
}

/** Reads a data file (either format; see contract.ts for the public one). */
export function loadData(data: HubSpotSimData | HubSpotContractData | string): HubSpotSimData | HubSpotContractData {
  if (typeof data !== "string") return data;
  let text: string;
  try {
    text = readFileSync(data, "utf8");
  } catch (e) {
    throw new DataError(`cannot read ${data}: ${(e as Error).message}`);
  }
  try {
    return JSON.parse(text) as HubSpotSimData | HubSpotContractData;
  } catch (e) {
    throw new DataError(`${data} is not valid JSON: ${(e as Error).message}`);
  }
}
