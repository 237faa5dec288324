/**
 * The local end of an OAuth authorization-code flow: a listener on 127.0.0.1 that receives the
 * provider's redirect, checks the `state`, and hands over the code. Shared by `qobra-sync auth`
 * for every source.
 */
import { randomBytes } from "node:crypto";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { ConfigError } from "../../lib/errors.ts";
import { TokenStore } from "./token-store.ts";

/** What `qobra-sync auth` passes to every source's authorization-code flow. */
export interface AuthFlowOptions {
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

const DEFAULT_AUTH_PORT = 1717;
const CALLBACK_PATH = "/oauth/callback";

interface CallbackListener {
  redirectUri: string;
  state: string;
  /** Resolves with the authorization code; rejects on a denial, a timeout or an abort. */
  code: Promise<string>;
  close(): Promise<void>;
}

/**
 * @param provider the source's name in messages ("Salesforce", "HubSpot")
 * @param redirectHint where the user registers the redirect URL ("connected app's callback URL")
 */
export async function listenForCallback(opts: {
  provider: string;
  connectorId: string;
  redirectHint: string;
  port?: number;
  timeoutMs?: number;
  signal?: AbortSignal;
}): Promise<CallbackListener> {
  const { provider, connectorId } = opts;
  const state = randomBytes(24).toString("base64url");
  let settle!: { resolve: (code: string) => void; reject: (e: Error) => void };
  const code = new Promise<string>((resolve, reject) => {
    settle = { resolve, reject };
  });
  code.catch(() => undefined); // awaited by the caller; this only keeps an early rejection from being "unhandled"
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? "/", "http://127.0.0.1");
    if (req.method !== "GET" || url.pathname !== CALLBACK_PATH) {
      res.writeHead(404, { "Content-Type": "text/plain" }).end("Not found");
      return;
    }
    const page = (status: number, text: string) =>
      res
        .writeHead(status, { "Content-Type": "text/html; charset=utf-8" })
        .end(`<!DOCTYPE html><html><head><title>qobra-sync</title></head><body><p>${escapeHtml(text)}</p></body></html>`);
    if (url.searchParams.get("state") !== state) {
      page(400, "This callback does not belong to the running qobra-sync auth (state mismatch); start it again.");
      return;
    }
    const error = url.searchParams.get("error");
    if (error) {
      page(400, `${provider} did not grant access: ${error}. You can close this window.`);
      settle.reject(
        new ConfigError(
          `connector ${connectorId}: ${provider} did not grant access (${error}: ${url.searchParams.get("error_description") ?? "no description"})`,
        ),
      );
      return;
    }
    const received = url.searchParams.get("code");
    if (!received) {
      page(400, "The callback has no authorization code.");
      return;
    }
    page(200, `qobra-sync is connected to ${provider} for connector ${connectorId}. You can close this window.`);
    settle.resolve(received);
  });
  const port = opts.port ?? DEFAULT_AUTH_PORT;
  await new Promise<void>((resolve, reject) => {
    server.once("error", (e: NodeJS.ErrnoException) =>
      reject(
        e.code === "EADDRINUSE"
          ? new ConfigError(
              `port ${port} on 127.0.0.1 is in use; pass another --port (and register http://127.0.0.1:<port>${CALLBACK_PATH} as the ${opts.redirectHint})`,
              e,
            )
          : e,
      ),
    );
    server.listen(port, "127.0.0.1", () => resolve());
  });
  const timeoutMs = opts.timeoutMs ?? 300_000;
  const timer = setTimeout(
    () =>
      settle.reject(
        new ConfigError(`connector ${connectorId}: no answer from ${provider} within ${Math.round(timeoutMs / 1000)} s; run qobra-sync auth again`),
      ),
    timeoutMs,
  );
  const onAbort = () => settle.reject(new Error("aborted"));
  opts.signal?.addEventListener("abort", onAbort, { once: true });
  return {
    redirectUri: `http://127.0.0.1:${(server.address() as AddressInfo).port}${CALLBACK_PATH}`,
    state,
    code,
    async close() {
      clearTimeout(timer);
      opts.signal?.removeEventListener("abort", onAbort);
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]!);
}

/** What differs between the sources' authorization-code flows; runAuthFlow does the rest. */
interface AuthFlowSteps {
  /** The source's name in messages ("Salesforce", "HubSpot"). */
  provider: string;
  connector: { id: string; refreshToken?: string };
  /** Where the user registers the redirect URL ("connected app's callback URL"). */
  redirectHint: string;
  /** What the user does at the authorize URL ("allow access", "install the app"). */
  consent: string;
  /** What the redirect URI must be, said to the user while waiting ("the connected app's callback URL"). */
  redirectMustBe: string;
  /** The provider's authorize URL for this listener. */
  authorizeUrl(redirectUri: string, state: string): string | Promise<string>;
  /** Exchanges the code and stores the refresh token in `store`; returns what to tell the user before the storage note (may be empty). */
  exchange(code: string, redirectUri: string, store: TokenStore): Promise<string>;
}

/**
 * One `qobra-sync auth` run for any source: starts the loopback listener, prints (and opens) the
 * authorize URL, waits for the code, lets the source exchange and store it, says where the token
 * is, and notes a refreshToken in the config that would take precedence. The listener is always
 * closed.
 */
export async function runAuthFlow(steps: AuthFlowSteps, opts: AuthFlowOptions): Promise<void> {
  const { connector, provider } = steps;
  const store = opts.tokenStore ?? new TokenStore();
  const listener = await listenForCallback({
    provider,
    connectorId: connector.id,
    redirectHint: steps.redirectHint,
    port: opts.port,
    timeoutMs: opts.timeoutMs,
    signal: opts.signal,
  });
  const { redirectUri, state } = listener;
  try {
    const url = await steps.authorizeUrl(redirectUri, state);
    opts.print(`Connect qobra-sync to ${provider} for connector ${connector.id}: open this URL in a browser and ${steps.consent}:\n${url}`);
    opts.print(`Waiting for ${provider} to redirect to ${redirectUri} (it must be ${steps.redirectMustBe})…`);
    opts.open?.(url);
    const code = await listener.code;
    const said = await steps.exchange(code, redirectUri, store);
    opts.print(`Connected${said ? `: ${said}` : ""}. The refresh token is stored, encrypted, in ${store.dir}.`);
    if (connector.refreshToken) {
      opts.print(`Note: connector ${connector.id} also sets refreshToken in its config, which takes precedence; remove it to use the token just stored.`);
    }
  } finally {
    await listener.close();
  }
}
