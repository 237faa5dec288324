/**
 * The HubSpot simulator's OAuth endpoints: the token endpoint (form fields, with client_secret and
 * refresh_token also read from the query as the spec allows) and token metadata / refresh token revocation.
 * The bookkeeping is in auth.ts.
 */
import { notFound } from "../errors.ts";
import type { RouteContext, RouteTable } from "./routing.ts";

export function oauthRoutes(table: RouteTable, rc: RouteContext): void {
  const { tokens } = rc;
  // OAuth
  table.add("POST", "/oauth/v1/token", {
    noAuth: true,
    resolve: () => ({ ref: { file: "oauth-v1.json", path: "/oauth/v1/token", method: "POST" } }),
    handle: (ctx) => {
      const form: Record<string, string> = {};
      for (const [k, v] of Object.entries((ctx.body ?? {}) as Record<string, unknown>)) if (typeof v === "string") form[k] = v;
      for (const k of ["client_secret", "refresh_token"]) {
        const q = ctx.rawQuery.get(k);
        if (q !== null && form[k] === undefined) form[k] = q;
      }
      return { status: 200, body: tokens.tokenEndpoint(form, ctx.now) };
    },
  });
  table.add("GET", "/oauth/v1/access-tokens/{token}", {
    noAuth: true,
    key: "GET /oauth/v1/access-tokens/{token}",
    resolve: () => ({ ref: { file: "oauth-v1.json", path: "/oauth/v1/access-tokens/{token}", method: "GET" } }),
    handle: (ctx) => {
      const info = tokens.accessTokenInfo(ctx.params.token ?? "", ctx.now);
      if (!info) throw notFound("Token not found or expired.");
      return { status: 200, body: info };
    },
  });
  table.add("GET", "/oauth/v1/refresh-tokens/{token}", {
    noAuth: true,
    key: "GET /oauth/v1/refresh-tokens/{token}",
    resolve: () => ({ ref: { file: "oauth-v1.json", path: "/oauth/v1/refresh-tokens/{token}", method: "GET" } }),
    handle: (ctx) => {
      const info = tokens.refreshTokenInfo(ctx.params.token ?? "");
      if (!info) throw notFound("Refresh token not found.");
      return { status: 200, body: info };
    },
  });
  table.add("DELETE", "/oauth/v1/refresh-tokens/{token}", {
    noAuth: true,
    key: "DELETE /oauth/v1/refresh-tokens/{token}",
    resolve: () => ({ ref: { file: "oauth-v1.json", path: "/oauth/v1/refresh-tokens/{token}", method: "DELETE" } }),
    handle: (ctx) => {
      if (!tokens.revokeRefreshToken(ctx.params.token ?? "", true)) throw notFound("Refresh token not found.");
      return { status: 204 };
    },
  });
}
