/**
 * `qobra-sync auth <connector>` for Salesforce: the OAuth 2.0 authorization-code flow (with PKCE)
 * on a loopback callback. The connected app's callback URL must be
 * `http://127.0.0.1:<port>/oauth/callback` (port 1717 unless --port says otherwise). The refresh
 * token lands in the token store (encrypted); nothing secret is printed.
 */
import jsforce from "jsforce";
import { ConfigError } from "../../../lib/errors.ts";
import { runAuthFlow, type AuthFlowOptions } from "../../oauth/loopback.ts";
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
  let oauth2: InstanceType<typeof jsforce.OAuth2> | undefined;
  const client = (redirectUri: string) =>
    (oauth2 ??= new jsforce.OAuth2({
      clientId: connector.clientId,
      clientSecret: connector.clientSecret,
      loginUrl: connector.loginUrl,
      redirectUri,
      useVerifier: true,
    } as ConstructorParameters<typeof jsforce.OAuth2>[0]));
  await runAuthFlow(
    {
      provider: "Salesforce",
      connector,
      redirectHint: "connected app's callback URL",
      consent: "allow access",
      redirectMustBe: "the connected app's callback URL",
      authorizeUrl: (redirectUri, state) => client(redirectUri).getAuthorizationUrl({ scope: "api refresh_token", state }),
      exchange: async (code, redirectUri, store) => {
        let token: CodeTokenResponse;
        try {
          token = (await client(redirectUri).requestToken(code)) as unknown as CodeTokenResponse;
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
        return `org ${ids?.[1] ?? "?"} at ${token.instance_url}, user ${ids?.[2] ?? "?"}`;
      },
    },
    opts,
  );
}
