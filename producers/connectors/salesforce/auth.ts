/**
 * `qobra-sync auth <connector>` for Salesforce: the OAuth 2.0 authorization-code flow (with PKCE)
 * on a loopback callback. The connected app's callback URL must be
 * `http://127.0.0.1:<port>/oauth/callback` (port 1717 unless --port says otherwise). The refresh
 * token lands in the token store (encrypted); nothing secret is printed.
 */
import jsforce from "jsforce";
import { ConfigError } from "../../../lib/errors.ts";
import { listenForCallback, type AuthFlowOptions } from "../../oauth/loopback.ts";
import { TokenStore } from "../../oauth/token-store.ts";
import type { SalesforceConnector } from "./config.ts";

type SalesforceAuthOptions = AuthFlowOptions;

interface CodeTokenResponse {
  access_token: string;
  refresh_token?: string;
  instance_url: string;
  id?: string;
  scope?: string;
}

export async function runSalesforceAuth(connector: SalesforceConnector, opts: SalesforceAuthOptions): Promise<void> {
  const store = opts.tokenStore ?? new TokenStore();
  const listener = await listenForCallback({
    provider: "Salesforce",
    connectorId: connector.id,
    redirectHint: "connected app's callback URL",
    port: opts.port,
    timeoutMs: opts.timeoutMs,
    signal: opts.signal,
  });
  const { redirectUri, state } = listener;
  try {
    const oauth2 = new jsforce.OAuth2({
      clientId: connector.clientId,
      clientSecret: connector.clientSecret,
      loginUrl: connector.loginUrl,
      redirectUri,
      useVerifier: true,
    } as ConstructorParameters<typeof jsforce.OAuth2>[0]);
    const url = oauth2.getAuthorizationUrl({ scope: "api refresh_token", state });
    opts.print(`Connect qobra-sync to Salesforce for connector ${connector.id}: open this URL in a browser and allow access:\n${url}`);
    opts.print(`Waiting for Salesforce to redirect to ${redirectUri} (it must be the connected app's callback URL)…`);
    opts.open?.(url);
    const code = await listener.code;
    let token: CodeTokenResponse;
    try {
      token = (await oauth2.requestToken(code)) as unknown as CodeTokenResponse;
    } catch (e) {
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
    await store.save(connector.id, {
      refreshToken: token.refresh_token,
      instanceUrl: token.instance_url,
      orgId: ids?.[1],
      userId: ids?.[2],
      scope: token.scope,
      source: "auth",
    });
    opts.print(`Connected: org ${ids?.[1] ?? "?"} at ${token.instance_url}, user ${ids?.[2] ?? "?"}. The refresh token is stored, encrypted, in ${store.dir}.`);
    if (connector.refreshToken) {
      opts.print(`Note: connector ${connector.id} also sets refreshToken in its config, which takes precedence; remove it to use the token just stored.`);
    }
  } finally {
    await listener.close();
  }
}
