/**
 * The admin API's routing, shared by both simulators: `/__admin/...` is a fixed table of routes, each with one
 * method; an unknown route is a 404 and a known route with the wrong method a 405 with `Allow`. Each simulator
 * writes those answers in its own API's error shape, and handles the routes (stats, records, deletes) itself.
 */

/** Whether a request path belongs to the admin API. */
export function isAdminPath(path: string): boolean {
  return path === "/__admin" || path.startsWith("/__admin/");
}

type AdminRouteMatch = { kind: "route"; route: string } | { kind: "unknown" } | { kind: "wrong-method"; allow: string };

/** Looks a route (the path after `/__admin`, as the table spells it) up in a `route → method` table. */
export function matchAdminRoute(table: Record<string, string>, route: string, method: string): AdminRouteMatch {
  const allowed = Object.hasOwn(table, route) ? table[route] : undefined;
  if (allowed === undefined) return { kind: "unknown" };
  if (method !== allowed) return { kind: "wrong-method", allow: allowed };
  return { kind: "route", route };
}
