/**
 * `qobra-sync auth <connector>` for Salesforce: the OAuth 2.0 authorization-code flow (with PKCE)
 * on a loopback callback. The connected app's callback URL must be
 * `http://127.0.0.1:<port>/oauth/callback` (port 1717 unless --port says otherwise). The refresh
 * token lands in the token store (encrypted); nothing secret is printed. The authorize-URL and
 * code-exchange steps are also the settings page's Authorize (ops/oauth-web.ts).
 */
import jsforce from "jsforce";
import { ConfigError } from "../../../lib/errors.ts";
import { runAuthFlow, type AuthFlowOptions } from "../../oauth/loopback.ts";
import { networkRefusalIn } from "../../../lib/network-policy.ts";
import type { SalesforceConnector } from "./config.ts";
import { guardTransport, salesforceGuard } from "./egress.ts";

type SalesforceAuthOptions = AuthFlowOptions;

interface CodeTokenResponse {
  access_token: string;
  refresh_token?: string;
  instance_url: string;
  id?: string;
  scope?: string;
}

/** A jsforce OAuth client for one redirect URI; with `useVerifier` it makes a PKCE code verifier. */
function oauthClient(connector: SalesforceConnector, redirectUri: string, useVerifier: boolean): InstanceType<typeof jsforce.OAuth2> {
  const client = new jsforce.OAuth2({
    clientId: connector.clientId,
    clientSecret: connector.clientSecret,
    loginUrl: connector.loginUrl,
    redirectUri,
    useVerifier,
  } as ConstructorParameters<typeof jsforce.OAuth2>[0]);
  // A tenant's connector: the code exchange reaches only what the network policy allows (lib/egress.ts).
  guardTransport(client, salesforceGuard(connector));
  return client;
}

/** The authorize URL (with a PKCE challenge) and the verifier the exchange needs. */
export function salesforceAuthorizeUrl(connector: SalesforceConnector, redirectUri: string, state: string): { url: string; verifier: string } {
  const client = oauthClient(connector, redirectUri, true);
  const url = client.getAuthorizationUrl({ scope: "api refresh_token", state });
  // jsforce keeps the verifier on the client; the web flow needs it back in another request.
  const verifier = (client as unknown as { codeVerifier?: string }).codeVerifier;
  if (!verifier) throw new Error("jsforce made no PKCE code verifier");
  return { url, verifier };
}

/** What Salesforce grants for an authorization code. */
export interface SalesforceGrant {
  refreshToken: string;
  instanceUrl: string;
  orgId?: string;
  userId?: string;
  scope?: string;
  summary: string;
}

/** Exchanges the authorization code (with the PKCE verifier); stores nothing. */
export async function exchangeSalesforceCode(connector: SalesforceConnector, code: string, redirectUri: string, verifier?: string): Promise<SalesforceGrant> {
  let token: CodeTokenResponse;
  try {
    const params: Record<string, string> = verifier ? { code_verifier: verifier } : {};
    token = (await oauthClient(connector, redirectUri, false).requestToken(code, params)) as unknown as CodeTokenResponse;
  } catch (e) {
    const refused = networkRefusalIn(e);
    if (refused) throw refused;
    throw new ConfigError(
      `connector ${connector.id}: Salesforce refused the authorization code (${(e as Error).name}: ${(e as Error).message}); check clientId, clientSecret and the callback URL`,
      e,
    );
  }
  if (!token.refresh_token) {
    throw new ConfigError(
      `connector ${connector.id}: Salesforce issued no refresh token; add the "Perform requests at any time (refresh_token, offline_access)" scope to the connected app`,
    );
  }
  const ids = /\/id\/([^/]+)\/([^/]+)$/.exec(token.id ?? "");
  return {
    refreshToken: token.refresh_token,
    instanceUrl: token.instance_url,
    orgId: ids?.[1],
    userId: ids?.[2],
    scope: token.scope,
    summary: `org ${ids?.[1] ?? "?"} at ${token.instance_url}, user ${ids?.[2] ?? "?"}`,
  };
}

export async function runSalesforceAuth(connector: SalesforceConnector, opts: SalesforceAuthOptions): Promise<void> {
  let verifier: string | undefined;
  await runAuthFlow(
    {
      provider: "Salesforce",
      connector,
      redirectHint: "connected app's callback URL",
      consent: "allow access",
      redirectMustBe: "the connected app's callback URL",
      authorizeUrl: (redirectUri, state) => {
        const a = salesforceAuthorizeUrl(connector, redirectUri, state);
        verifier = a.verifier;
        return a.url;
      },
      exchange: async (code, redirectUri, store) => {
        const g = await exchangeSalesforceCode(connector, code, redirectUri, verifier);
        await store.save(connector.id, {
          refreshToken: g.refreshToken,
          instanceUrl: g.instanceUrl,
          orgId: g.orgId,
          userId: g.userId,
          scope: g.scope,
          source: "auth",
        });
        return g.summary;
      },
    },
    opts,
  );
}
