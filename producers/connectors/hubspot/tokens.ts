/**
 * Where the HubSpot client finds the refresh token when the config has none: the token store
 * `qobra-sync auth` writes (producers/oauth/token-store.ts), behind a small interface tests replace.
 */
import { loadToken, saveToken } from "../../oauth/token-store.ts";

/** The token store `qobra-sync auth` writes (producers/oauth/token-store.ts), when present. */
export interface TokenStoreLike {
  loadToken(connectorId: string): Promise<unknown>;
  saveToken?(connectorId: string, token: Record<string, unknown>): Promise<unknown>;
}

/** The token store `qobra-sync auth` writes (producers/oauth/token-store.ts). */
export async function defaultTokenStore(): Promise<TokenStoreLike> {
  return {
    loadToken: (id) => loadToken(id),
    saveToken: async (id, token) => {
      const previous = await loadToken(id).catch(() => null);
      await saveToken(id, { ...(previous ?? {}), ...token } as Parameters<typeof saveToken>[1]);
    },
  };
}

export function refreshTokenOf(stored: unknown): string | undefined {
  if (!stored || typeof stored !== "object") return undefined;
  const s = stored as Record<string, unknown>;
  const v = s.refreshToken ?? s.refresh_token;
  return typeof v === "string" && v !== "" ? v : undefined;
}
