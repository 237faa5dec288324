/**
 * What the HubSpot simulator's route modules share: the shape of a route (its spec operation, the scopes it
 * needs, its handler), the table they register into, the context handed to them (store, spec, type lookup),
 * and the paging cursor helpers several endpoints use.
 */
import { pathPattern } from "../../kit/http.ts";
import type { AccessToken } from "../auth.ts";
import { validationError, type JsonObject } from "../errors.ts";
import type { SearchHit, SearchRequest } from "../search.ts";
import type { OpRef, SpecRegistry } from "../spec.ts";
import type { ObjectType, Store } from "../store.ts";
import type { TokenStore } from "../auth.ts";

interface Ctx {
  method: string;
  path: string;
  params: Record<string, string>;
  query: Record<string, unknown>;
  rawQuery: URLSearchParams;
  body: unknown;
  token: AccessToken | undefined;
  now: number;
}

interface Reply {
  status: number;
  body?: unknown;
  headers?: Record<string, string>;
}

export interface Resolved {
  /** The spec operation (absent for the few endpoints no copied spec describes: no spec checks then). */
  ref?: OpRef;
  /** Object types whose read scopes the call needs (narrowing the spec's generic alternatives). */
  scopeTypes?: ObjectType[];
  search?: boolean;
  type?: ObjectType;
  toType?: ObjectType;
}

interface Route {
  method: string;
  pattern: RegExp;
  /** Counter key template; `{x}` stays literal, `<x>` is replaced by the parameter. */
  key: string;
  noAuth?: boolean;
  resolve(params: Record<string, string>): Resolved;
  handle(ctx: Ctx, r: Resolved): Reply;
}

type RouteDef = Omit<Route, "method" | "pattern" | "key"> & { key?: string };

/** The simulated API's routes, in registration order (the first match wins). */
export class RouteTable {
  readonly routes: Route[] = [];

  add(method: string, path: string, def: RouteDef): void {
    this.routes.push({ method, pattern: pathPattern(path), key: def.key ?? path, ...def });
  }

  match(method: string, path: string): { r: Route; params: Record<string, string> } | undefined {
    for (const r of this.routes) {
      if (r.method !== method) continue;
      const m = r.pattern.exec(path);
      if (m) return { r, params: { ...(m.groups ?? {}) } };
    }
    return undefined;
  }

  /** Whether any route (whatever its method) has this path. */
  knows(path: string): boolean {
    return this.routes.some((r) => r.pattern.test(path));
  }

  /** The counters' key of a matched request: `<METHOD> <template>` with `<x>` parameters filled in. */
  static counterKey(r: Route, params: Record<string, string>): string {
    const path = r.key.includes(" ") ? r.key : `${r.method} ${r.key}`;
    return path.replace(/<(\w+)>/g, (_m, name: string) => decodeURIComponent(params[name] ?? name));
  }
}

/** What route modules work with. */
export interface RouteContext {
  store: Store;
  spec: SpecRegistry;
  tokens: TokenStore;
  /** The object type a path names, or HubSpot's 400 "Unable to infer object type". */
  typeOr400(name: string): ObjectType;
  /** The spec operation of a CRM objects endpoint for a type. */
  objectsOp(t: ObjectType, suffix: string, method: string): OpRef;
  /** Generic-object endpoints need the type's own scopes. */
  genericScopes(t: ObjectType): ObjectType[] | undefined;
  /** Search matches, cached while nothing changes. */
  searchHits(t: ObjectType, req: SearchRequest, at: number): SearchHit[];
}

function encodeCursor(value: string | number): string {
  return encodeURIComponent(Buffer.from(`${value}\n`).toString("base64"));
}

export function decodeCursor(after: string, what: string): number {
  if (/^\d+$/.test(after)) return Number(after);
  let s = after;
  try {
    if (s.includes("%")) s = decodeURIComponent(s);
  } catch {
    /* keep */
  }
  const decoded = Buffer.from(s, "base64").toString("utf8").trim();
  if (!/^\d+$/.test(decoded)) throw validationError(`Invalid ${what} paging cursor '${after}'.`, { context: { after: [after] } });
  return Number(decoded);
}

/** `paging` of a list page whose next page starts at `value` (an opaque cursor). */
export function nextPage(value: string | number): JsonObject {
  const cursor = encodeCursor(value);
  return { next: { after: cursor, link: `?after=${cursor}` } };
}

export function stringArray(v: unknown): string[] | undefined {
  return Array.isArray(v) ? v.map(String) : undefined;
}
