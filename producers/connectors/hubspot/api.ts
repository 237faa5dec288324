/**
 * The HubSpot API client the connector uses: one typed method per endpoint it reads (objects,
 * search, batch reads, properties, owners, schemas, pipelines, account details, associations,
 * granted scopes). Each method is one or a few `call`s of the call loop it extends (api-core.ts:
 * rate limits, tokens, retries, error sorting), so this file holds only what each endpoint asks
 * and answers; the answers' shapes are in api-types.ts.
 */
import type { Client } from "@hubspot/api-client";
import { fetch as undiciFetch } from "undici";
import { HubSpotApiCore } from "./api-core.ts";
import type {
  AccountInfo,
  AssociationBatch,
  AssociationTarget,
  HubSpotObject,
  ListPage,
  OwnerDef,
  PipelineDef,
  PropertyDef,
  SchemaDef,
  SearchBody,
  SearchPage,
} from "./api-types.ts";
import { HubSpotRequestError } from "./errors.ts";

/**
 * A raw `apiRequest` answer read as the typed helpers expect it: the headers as a record, the
 * body parsed as JSON when it is JSON (else kept as text), and an error shaped like the API
 * client's own (code, body, headers) when the status is not a success.
 */
export async function readRawAnswer(res: Response): Promise<{ data: unknown; headers: Record<string, string> }> {
  const headers: Record<string, string> = {};
  res.headers.forEach((v, k) => {
    headers[k] = v;
  });
  const text = await res.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {
    /* keep text */
  }
  if (!res.ok) throw Object.assign(new Error(`HTTP ${res.status}`), { code: res.status, body, headers });
  return { data: body, headers };
}

export class HubSpotApi extends HubSpotApiCore {
  async listPage(
    objectType: string,
    opts: { after?: string; properties?: string[]; archived: boolean; limit?: number },
    signal?: AbortSignal,
  ): Promise<ListPage> {
    return this.call(
      "standard",
      `GET /crm/v3/objects/${objectType}`,
      async (c) => {
        const r = await c.crm.objects.basicApi.getPageWithHttpInfo(
          objectType,
          opts.limit ?? 100,
          opts.after,
          opts.properties,
          undefined,
          undefined,
          opts.archived,
        );
        return { data: r.data as unknown as ListPage, headers: r.headers };
      },
      signal,
    );
  }

  async search(objectType: string, body: SearchBody, signal?: AbortSignal): Promise<SearchPage> {
    return this.call(
      "search",
      `POST /crm/v3/objects/${objectType}/search`,
      async (c) => {
        const r = await c.crm.objects.searchApi.doSearchWithHttpInfo(
          objectType,
          body as unknown as Parameters<Client["crm"]["objects"]["searchApi"]["doSearch"]>[1],
        );
        return { data: r.data as unknown as SearchPage, headers: r.headers };
      },
      signal,
    );
  }

  /** Current values of up to 100 records (ids that no longer exist, or were merged into another record, are left out). */
  async batchRead(objectType: string, ids: string[], properties: string[], signal?: AbortSignal): Promise<HubSpotObject[]> {
    if (ids.length > 100) throw new Error("batchRead: at most 100 ids per batch");
    const res = await this.call(
      "standard",
      `POST /crm/v3/objects/${objectType}/batch/read`,
      async (c) => {
        const r = await c.crm.objects.batchApi.readWithHttpInfo(
          objectType,
          { inputs: ids.map((id) => ({ id })), properties, propertiesWithHistory: [] },
          false,
        );
        return { data: r.data as unknown as { results: HubSpotObject[] }, headers: r.headers };
      },
      signal,
    );
    // HubSpot answers a read of a merged id with the surviving record: only the ids asked are kept
    // (once each), so that the survivor's data is never taken for a merged id's.
    const asked = new Set(ids);
    const seen = new Set<string>();
    return (res.results ?? []).filter((o) => asked.has(o.id) && !seen.has(o.id) && seen.add(o.id) !== undefined);
  }

  async properties(objectType: string, signal?: AbortSignal): Promise<PropertyDef[]> {
    const res = await this.call(
      "standard",
      `GET /crm/v3/properties/${objectType}`,
      async (c) => {
        const r = await c.crm.properties.coreApi.getAllWithHttpInfo(objectType, false);
        return { data: r.data as unknown as { results: PropertyDef[] }, headers: r.headers };
      },
      signal,
    );
    return res.results;
  }

  async owners(archived: boolean, signal?: AbortSignal): Promise<OwnerDef[]> {
    const out: OwnerDef[] = [];
    let after: string | undefined;
    do {
      const page = await this.call(
        "standard",
        "GET /crm/v3/owners",
        async (c) => {
          const r = await c.crm.owners.ownersApi.getPageWithHttpInfo(undefined, after, 500, archived);
          return { data: r.data as unknown as { results: OwnerDef[]; paging?: { next?: { after?: string } } }, headers: r.headers };
        },
        signal,
      );
      out.push(...page.results);
      after = page.paging?.next?.after;
    } while (after);
    return out;
  }

  async schemas(signal?: AbortSignal): Promise<SchemaDef[]> {
    const res = await this.call(
      "standard",
      "GET /crm-object-schemas/v3/schemas",
      async (c) => {
        const r = await c.crm.schemas.coreApi.getAllWithHttpInfo(false);
        return { data: r.data as unknown as { results: SchemaDef[] }, headers: r.headers };
      },
      signal,
    );
    return res.results;
  }

  async pipelines(objectType: string, signal?: AbortSignal): Promise<PipelineDef[]> {
    const res = await this.call(
      "standard",
      `GET /crm/v3/pipelines/${objectType}`,
      async (c) => {
        const r = await c.crm.pipelines.pipelinesApi.getAllWithHttpInfo(objectType);
        return { data: r.data as unknown as { results: PipelineDef[] }, headers: r.headers };
      },
      signal,
    );
    return res.results;
  }

  /** The portal's company currency and time zone (GET /account-info/v3/details). */
  async accountInfo(signal?: AbortSignal): Promise<AccountInfo> {
    return this.call(
      "standard",
      "GET /account-info/v3/details",
      async (c) => {
        // apiRequest goes through the global fetch, which takes no agent: a tenant's connector sends
        // this one call through its guard's dispatcher instead, without following redirects.
        const guard = this.opts.guard;
        const res = guard
          ? ((await undiciFetch(new URL("/account-info/v3/details", this.opts.baseUrl), {
              headers: { authorization: `Bearer ${c.config.accessToken}`, accept: "application/json" },
              redirect: "manual",
              dispatcher: guard.dispatcher(),
            })) as unknown as Response)
          : await c.apiRequest({ method: "GET", path: "/account-info/v3/details" });
        const { data, headers } = await readRawAnswer(res);
        return { data: data as AccountInfo, headers };
      },
      signal,
    );
  }

  /** Associations v4 batch read of at most 1,000 ids (continues each id's own paging). */
  async associations(fromType: string, toType: string, ids: string[], signal?: AbortSignal): Promise<Map<string, AssociationTarget[]>> {
    if (ids.length > 1000) throw new Error("associations: at most 1,000 ids per batch");
    const out = new Map<string, AssociationTarget[]>();
    let inputs: Array<{ id: string; after?: string }> = ids.map((id) => ({ id }));
    while (inputs.length > 0) {
      const batch = inputs;
      const res = await this.call(
        "standard",
        `POST /crm/v4/associations/${fromType}/${toType}/batch/read`,
        async (c) => {
          const r = await c.crm.associations.v4.batchApi.getPageWithHttpInfo(fromType, toType, { inputs: batch } as Parameters<
            Client["crm"]["associations"]["v4"]["batchApi"]["getPage"]
          >[2]);
          return { data: r.data as unknown as AssociationBatch, headers: r.headers };
        },
        signal,
      );
      inputs = [];
      for (const item of res.results ?? []) {
        const from = String((item as { from?: { id?: unknown }; _from?: { id?: unknown } }).from?.id ?? (item as { _from?: { id?: unknown } })._from?.id ?? "");
        const list = out.get(from) ?? [];
        for (const to of item.to ?? []) {
          list.push({
            id: String(to.toObjectId),
            types: (to.associationTypes ?? []).map((t) => ({ category: String(t.category ?? ""), typeId: Number(t.typeId), label: t.label ?? null })),
          });
        }
        out.set(from, list);
        const next = item.paging?.next?.after;
        if (next) inputs.push({ id: from, after: next });
      }
      for (const err of res.errors ?? []) {
        const sub = String(err.subCategory ?? "");
        if (sub.endsWith("NO_ASSOCIATIONS_FOUND") || err.category === "OBJECT_NOT_FOUND") continue;
        throw new HubSpotRequestError(
          `connector ${this.opts.connectorId}: reading ${fromType}→${toType} associations failed: ${String(err.message ?? err.category ?? "unknown error")}`,
          207,
          String(err.category ?? ""),
        );
      }
    }
    return out;
  }

  /** The scopes granted to the current access token. */
  async grantedScopes(signal?: AbortSignal): Promise<string[]> {
    const s = await this.getSession();
    return this.call(
      "standard",
      "GET /oauth/v1/access-tokens/{token}",
      async (c) => {
        const r = await c.oauth.accessTokensApi.getWithHttpInfo(s.token);
        return { data: (r.data.scopes ?? []).map(String), headers: r.headers };
      },
      signal,
    );
  }
}
