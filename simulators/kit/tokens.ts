/**
 * OAuth bookkeeping both simulators do the same way: access tokens that expire on the simulator clock and can
 * be revoked, refresh tokens whose revocation can take the access tokens minted from them along, single-use
 * authorization codes, and opaque random token strings. What each API's token endpoint accepts and answers
 * (grants, error codes, rotation, body fields) stays in the simulator's own oauth module.
 */
import { randomBytes } from "node:crypto";

interface LedgerAccessToken {
  token: string;
  revoked: boolean;
  /** Simulator-clock ms; null = never expires. */
  expiresAt: number | null;
}

interface LedgerRefreshToken {
  token: string;
  revoked: boolean;
}

interface LedgerCode {
  code: string;
  used: boolean;
  /** Simulator-clock ms; absent = never expires. */
  expiresAt?: number;
}

/** A random token: the prefix, then `bytes` random bytes in base64url. */
export function opaqueToken(prefix: string, bytes: number): string {
  return prefix + randomBytes(bytes).toString("base64url");
}

export class TokenLedger<A extends LedgerAccessToken, R extends LedgerRefreshToken, C extends LedgerCode = LedgerCode> {
  readonly access = new Map<string, A>();
  readonly refresh = new Map<string, R>();
  readonly codes = new Map<string, C>();
  /** The refresh token an access token was minted from (null/undefined: none). */
  private readonly parentOf: (a: A) => string | null | undefined;

  constructor(parentOf: (a: A) => string | null | undefined) {
    this.parentOf = parentOf;
  }

  addAccess(a: A): A {
    this.access.set(a.token, a);
    return a;
  }

  addRefresh(r: R): R {
    this.refresh.set(r.token, r);
    return r;
  }

  addCode(c: C): C {
    this.codes.set(c.code, c);
    return c;
  }

  /** The access token if it exists, is not revoked and has not expired at `now`. */
  live(token: string | undefined, now: number): A | undefined {
    const a = token === undefined ? undefined : this.access.get(token);
    if (!a || a.revoked || (a.expiresAt !== null && now >= a.expiresAt)) return undefined;
    return a;
  }

  /** The code if it exists, is unused and has not expired at `now` (it is not marked used here). */
  usableCode(code: string | undefined, now: number): C | undefined {
    const c = code === undefined ? undefined : this.codes.get(code);
    if (!c || c.used || (c.expiresAt !== undefined && now >= c.expiresAt)) return undefined;
    return c;
  }

  revokeAccess(token: string): boolean {
    const a = this.access.get(token);
    if (!a) return false;
    a.revoked = true;
    return true;
  }

  /** Revokes a refresh token and, with `cascade`, every access token minted from it. */
  revokeRefresh(token: string, cascade: boolean): boolean {
    const r = this.refresh.get(token);
    if (!r) return false;
    r.revoked = true;
    if (cascade) for (const a of this.access.values()) if (this.parentOf(a) === token) a.revoked = true;
    return true;
  }
}
