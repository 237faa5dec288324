/**
 * `qobra-sync auth <connector>` for Salesforce: the OAuth 2.0 authorization-code flow (with PKCE)
 * on a loopback callback. The connected app's callback URL must be
 * `http://127.0.0.1:<port>/oauth/callback` (port 1717 unless --port says otherwise). The refresh
 * token lands in the token store (encrypted); nothing secret is printed.
 */
import { randomBytes } from "node:crypto";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import jsforce from "jsforce";
import type { SalesforceConnector } from "../../lib/config-salesforce.ts";
import { ConfigError } from "../../lib/errors.ts";
import { TokenStore } from "../oauth/token-store.ts";

export const DEFAULT_AUTH_PORT = 1717;
export const CALLBACK_PATH = "/oauth/callback";

export interface SalesforceAuthOptions {
  /** Loopback port of the callback listener (default 1717; 0 = any free port). */
  port?: number;
  /** Opens the authorize URL (a browser); without it the user opens the printed URL. */
  open?: (url: string) => void;
  print: (s: string) => void;
  /** Give up after this long without a callback (default 5 minutes). */
  timeoutMs?: number;
  signal?: AbortSignal;
  tokenStore?: TokenStore;
}

interface CodeTokenResponse { access_token: string; refresh_token?: string; instance_url: string; id?: string; scope?: string }

export async function runSalesforceAuth(connector: SalesforceConnector, opts: SalesforceAuthOptions): Promise<void> {
  const store = opts.tokenStore ?? new TokenStore();
  const state = randomBytes(24).toString("base64url");
  let settle!: { resolve: (code: string) => void; reject: (e: Error) => void };
  const codePromise = new Promise<string>((resolve, reject) => { settle = { resolve, reject }; });
  codePromise.catch(() => undefined); // awaited below; this only keeps an early rejection from being "unhandled"
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? "/", "http://127.0.0.1");
    if (req.method !== "GET" || url.pathname !== CALLBACK_PATH) { res.writeHead(404, { "Content-Type": "text/plain" }).end("Not found"); return; }
    const page = (status: number, text: string) => res.writeHead(status, { "Content-Type": "text/html; charset=utf-8" })
      .end(`<!DOCTYPE html><html><head><title>qobra-sync</title></head><body><p>${escapeHtml(text)}</p></body></html>`);
    if (url.searchParams.get("state") !== state) { page(400, "This callback does not belong to the running qobra-sync auth (state mismatch); start it again."); return; }
    const error = url.searchParams.get("error");
    if (error) {
      page(400, `Salesforce did not grant access: ${error}. You can close this window.`);
      settle.reject(new ConfigError(`connector ${connector.id}: Salesforce did not grant access (${error}: ${url.searchParams.get("error_description") ?? "no description"})`));
      return;
    }
    const code = url.searchParams.get("code");
    if (!code) { page(400, "The callback has no authorization code."); return; }
    page(200, `qobra-sync is connected to Salesforce for connector ${connector.id}. You can close this window.`);
    settle.resolve(code);
  });
  const port = opts.port ?? DEFAULT_AUTH_PORT;
  await new Promise<void>((resolve, reject) => {
    server.once("error", (e: NodeJS.ErrnoException) => reject(e.code === "EADDRINUSE"
      ? new ConfigError(`port ${port} on 127.0.0.1 is in use; pass another --port (and register http://127.0.0.1:<port>${CALLBACK_PATH} as the connected app's callback URL)`, e)
      : e));
    server.listen(port, "127.0.0.1", () => resolve());
  });
  const timer = setTimeout(() => settle.reject(new ConfigError(`connector ${connector.id}: no answer from Salesforce within ${Math.round((opts.timeoutMs ?? 300_000) / 1000)} s; run qobra-sync auth again`)), opts.timeoutMs ?? 300_000);
  const onAbort = () => settle.reject(new Error("aborted"));
  opts.signal?.addEventListener("abort", onAbort, { once: true });
  try {
    const redirectUri = `http://127.0.0.1:${(server.address() as AddressInfo).port}${CALLBACK_PATH}`;
    const oauth2 = new jsforce.OAuth2({
      clientId: connector.clientId, clientSecret: connector.clientSecret, loginUrl: connector.loginUrl, redirectUri, useVerifier: true,
    } as ConstructorParameters<typeof jsforce.OAuth2>[0]);
    const url = oauth2.getAuthorizationUrl({ scope: "api refresh_token", state });
    opts.print(`Connect qobra-sync to Salesforce for connector ${connector.id}: open this URL in a browser and allow access:\n${url}`);
    opts.print(`Waiting for Salesforce to redirect to ${redirectUri} (it must be the connected app's callback URL)…`);
    opts.open?.(url);
    const code = await codePromise;
    let token: CodeTokenResponse;
    try {
      token = await oauth2.requestToken(code) as unknown as CodeTokenResponse;
    } catch (e) {
      throw new ConfigError(`connector ${connector.id}: Salesforce refused the authorization code (${(e as Error).name}: ${(e as Error).message}); check clientId, clientSecret and the callback URL`, e);
    }
    if (!token.refresh_token) {
      throw new ConfigError(`connector ${connector.id}: Salesforce issued no refresh token; add the "Perform requests at any time (refresh_token, offline_access)" scope to the connected app`);
    }
    const ids = /\/id\/([^/]+)\/([^/]+)$/.exec(token.id ?? "");
    await store.save(connector.id, {
      refreshToken: token.refresh_token, instanceUrl: token.instance_url, orgId: ids?.[1], userId: ids?.[2], scope: token.scope, source: "auth",
    });
    opts.print(`Connected: org ${ids?.[1] ?? "?"} at ${token.instance_url}, user ${ids?.[2] ?? "?"}. The refresh token is stored, encrypted, in ${store.dir}.`);
    if (connector.refreshToken) {
      opts.print(`Note: connector ${connector.id} also sets refreshToken in its config, which takes precedence; remove it to use the token just stored.`);
    }
  } finally {
    clearTimeout(timer);
    opts.signal?.removeEventListener("abort", onAbort);
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}

function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]!);
}
