/**
 * `qobra-sync auth <hubspot connector>`: HubSpot's OAuth authorization-code flow on a loopback
 * callback. The app's redirect URL must be `http://127.0.0.1:<port>/oauth/callback` (port 1717
 * unless --port says otherwise). It asks for the required scopes plus the optional ones the
 * configured tables need, exchanges the code at POST /oauth/v1/token and stores the refresh token
 * (encrypted) with producers/oauth/token-store.ts, where the connector finds it when its config
 * has no refreshToken. Nothing secret is printed. The authorize-URL and code-exchange steps are
 * also the settings page's Authorize (ops/oauth-web.ts).
 */
import { Client } from "@hubspot/api-client";
import { egressGuardOf } from "../../../lib/egress.ts";
import { ConfigError } from "../../../lib/errors.ts";
import { type NetworkPolicyConfig, networkRefusalIn } from "../../../lib/network-policy.ts";
import { runAuthFlow, type AuthFlowOptions } from "../../oauth/loopback.ts";
import { saveToken } from "../../oauth/token-store.ts";
import { standardObject } from "./catalog.ts";
import { guardedClientOptions } from "./api-session.ts";
import type { HubSpotConnector } from "./config.ts";

/** Scopes every HubSpot connector needs (Qobra's HubSpot page). */
const HUBSPOT_REQUIRED_SCOPES = [
  "oauth",
  "crm.objects.companies.read",
  "crm.objects.contacts.read",
  "crm.objects.deals.read",
  "crm.objects.owners.read",
  "crm.schemas.companies.read",
  "crm.schemas.contacts.read",
  "crm.schemas.deals.read",
] as const;

/** Optional scopes the connector's tables use (custom objects, goals, e-commerce / line items). */
function hubspotOptionalScopes(config: Pick<HubSpotConnector, "tables">): string[] {
  const out = new Set<string>();
  for (const t of config.tables) {
    const objects = [
      t.object,
      ...Object.entries(t.fields)
        .filter(([, s]) => s.type === "object")
        .map(([name]) => name),
    ];
    for (const o of objects) {
      const std = standardObject(o);
      if (!std) {
        out.add("crm.objects.custom.read");
        out.add("crm.schemas.custom.read");
        continue;
      }
      if (std.object === "line_items") out.add("e-commerce");
      if (std.object === "goal_targets") out.add("crm.objects.goals.read");
      if (std.object === "tickets") out.add("tickets");
      if (std.object === "products") out.add("e-commerce");
    }
  }
  return [...out].sort();
}

/** The URL the user opens to install the app and grant the scopes (HubSpot's authorization code flow). */
export function hubspotAuthorizeUrl(
  config: Pick<HubSpotConnector, "clientId" | "tables"> & { appUrl?: string | undefined },
  opts: { redirectUri: string; state: string; appUrl?: string | undefined },
): string {
  const u = new URL("/oauth/authorize", opts.appUrl ?? config.appUrl ?? "https://app.hubspot.com");
  u.searchParams.set("client_id", config.clientId);
  u.searchParams.set("redirect_uri", opts.redirectUri);
  u.searchParams.set("scope", HUBSPOT_REQUIRED_SCOPES.join(" "));
  const optional = hubspotOptionalScopes(config);
  if (optional.length > 0) u.searchParams.set("optional_scope", optional.join(" "));
  u.searchParams.set("state", opts.state);
  return u.toString();
}

/** Exchanges the authorization code for tokens (POST /oauth/v1/token); stores nothing. */
export async function requestHubSpotTokens(
  config: Pick<HubSpotConnector, "id" | "baseUrl" | "clientId" | "clientSecret">,
  code: string,
  redirectUri: string,
): Promise<{ refreshToken: string; expiresIn: number }> {
  // A tenant's connector (its config carries `egress`): the exchange reaches only what the network policy allows.
  const guard = egressGuardOf(config as typeof config & { egress?: NetworkPolicyConfig })?.label(config.baseUrl, "baseUrl");
  const oauth = new Client({ basePath: config.baseUrl, numberOfApiCallRetries: 0, ...guardedClientOptions(config.baseUrl, guard) });
  let t;
  try {
    t = await oauth.oauth.tokensApi.create("authorization_code", code, redirectUri, config.clientId, config.clientSecret);
  } catch (e) {
    const refused = networkRefusalIn(e);
    if (refused) throw refused;
    const body = (e as { body?: { status?: string; message?: string } }).body;
    throw new ConfigError(
      `connector ${config.id}: HubSpot refused the authorization code (${body?.status ?? (e as { code?: number }).code ?? "error"}${body?.message ? `: ${body.message}` : ""}); start \`qobra-sync auth ${config.id}\` again, or Authorize on the settings page`,
    );
  }
  if (!t.refreshToken) throw new ConfigError(`connector ${config.id}: HubSpot returned no refresh token`);
  return { refreshToken: t.refreshToken, expiresIn: Number(t.expiresIn) };
}

/** Exchanges the authorization code for tokens and stores the refresh token under the connector's id. */
export async function exchangeHubSpotCode(
  config: Pick<HubSpotConnector, "id" | "baseUrl" | "clientId" | "clientSecret">,
  opts: { code: string; redirectUri: string; save?: (connectorId: string, token: { refreshToken: string }) => Promise<void> },
): Promise<{ scopesGranted?: string[]; expiresIn: number }> {
  const t = await requestHubSpotTokens(config, opts.code, opts.redirectUri);
  await (opts.save ?? ((id, token) => saveToken(id, token)))(config.id, { refreshToken: t.refreshToken });
  return { expiresIn: t.expiresIn };
}

interface HubSpotAuthOptions extends AuthFlowOptions {
  /** HubSpot's app origin (default: the connector's appUrl, else https://app.hubspot.com). */
  appUrl?: string;
}

/** Runs the whole flow: listener, authorize URL, code exchange, token stored. */
export async function runHubSpotAuth(connector: HubSpotConnector, opts: HubSpotAuthOptions): Promise<void> {
  await runAuthFlow(
    {
      provider: "HubSpot",
      connector,
      redirectHint: "app's redirect URL",
      consent: "install the app",
      redirectMustBe: "one of the app's redirect URLs",
      authorizeUrl: (redirectUri, state) => hubspotAuthorizeUrl(connector, { redirectUri, state, appUrl: opts.appUrl }),
      exchange: async (code, redirectUri, store) => {
        await exchangeHubSpotCode(connector, { code, redirectUri, save: (id, token) => store.save(id, { ...token, source: "auth" }) });
        return "";
      },
    },
    opts,
  );
}
