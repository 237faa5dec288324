/**
 * Who may use the settings server (ops/server.ts; rules in docs/security.md):
 *
 *  - Tokens: `http.tokens` of the config (each with the tenants it reaches, `"*"` for an operator),
 *    or, without any, one random operator token generated at start and written to a file only the
 *    user can read (`<stack dir>/http-token-<port>`, `qobra-sync web-token` prints it). A token is
 *    compared in constant time, on SHA-256 hashes, against every configured one.
 *  - Service calls send `Authorization: Bearer <token>`; the page logs in with the same tokens and
 *    gets a session: a random 256-bit id in an HttpOnly, SameSite=Strict cookie, kept in memory
 *    (by its hash) with an absolute expiry, and a synchronizer CSRF token bound to it that every
 *    write from the page sends in `X-CSRF-Token`.
 *  - Failed attempts (login or bearer) are counted per client address: each is slowed, and past
 *    a bound the address is refused (429) until its window ends.
 *
 * Tokens never reach a log line, an error or an answer; the generated token's file path does.
 */
import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import { mkdir, open, readFile, rename, rm } from "node:fs/promises";
import { join } from "node:path";
import { stackDir } from "../lib/paths.ts";

/** Who a request comes from. `tenants: "*"` is an operator; tenant scopes take effect with multi-tenancy (issue 16). */
export interface Principal {
  tenants: "*" | readonly string[];
  /** Names the credential in logs: "token 1" (its place in http.tokens) or "generated token"; never the token. */
  label: string;
}

export const isOperator = (p: Principal): boolean => p.tenants === "*";

/** Whether a principal reaches a connector of the given tenant (undefined: a connector of the YAML file, no tenant: operators only). */
export function reachesTenant(p: Principal, tenant: string | undefined): boolean {
  if (p.tenants === "*") return true;
  return tenant !== undefined && p.tenants.includes(tenant);
}

const sha256 = (s: string | Buffer): Buffer => createHash("sha256").update(s).digest();

/** Constant-time equality of two secrets (compared as SHA-256 hashes, so lengths do not leak). */
export function secretEquals(a: string, b: string): boolean {
  return timingSafeEqual(sha256(a), sha256(b));
}

/** The accepted tokens, each with its principal; `match` compares against all of them in constant time. */
export class TokenSet {
  private readonly entries: Array<{ hash: Buffer; principal: Principal }>;

  constructor(tokens: ReadonlyArray<{ token: string; tenants: readonly string[]; label?: string }>) {
    this.entries = tokens.map((t, i) => ({
      hash: sha256(t.token),
      principal: { tenants: t.tenants.includes("*") ? "*" : [...t.tenants], label: t.label ?? `token ${i + 1}` },
    }));
  }

  get size(): number {
    return this.entries.length;
  }

  match(candidate: string): Principal | null {
    const h = sha256(candidate);
    let found: Principal | null = null;
    for (const e of this.entries) if (timingSafeEqual(e.hash, h) && !found) found = e.principal;
    return found;
  }
}

/** The bearer token of an Authorization header, or undefined when there is none; null when it is not a Bearer one. */
export function bearerToken(header: string | undefined): string | null | undefined {
  if (header === undefined) return undefined;
  const m = /^Bearer +(\S+) *$/i.exec(header);
  return m ? m[1]! : null;
}

export interface Session {
  principal: Principal;
  /** The session's synchronizer token: writes from the page send it in X-CSRF-Token. */
  csrf: string;
  createdAt: number;
  expiresAt: number;
  /** The session's key in the store (the id's hash): counts its event streams. */
  key: string;
}

/** Sessions in memory, by the SHA-256 of their id; an absolute lifetime; at most `max` (the oldest go first). */
export class SessionStore {
  private readonly sessions = new Map<string, Session>();
  private readonly ttlMs: number;
  private readonly max: number;
  private readonly now: () => number;

  constructor(opts: { ttlMs: number; max?: number; now?: () => number }) {
    this.ttlMs = opts.ttlMs;
    this.max = opts.max ?? 1000;
    this.now = opts.now ?? Date.now;
  }

  /** A new session: its id goes in the cookie, and only its hash is kept. */
  create(principal: Principal): { id: string; session: Session } {
    this.sweep();
    while (this.sessions.size >= this.max) this.sessions.delete(this.sessions.keys().next().value!);
    const id = randomBytes(32).toString("base64url");
    const key = sha256(id).toString("base64url");
    const now = this.now();
    const session: Session = { principal, csrf: randomBytes(32).toString("base64url"), createdAt: now, expiresAt: now + this.ttlMs, key };
    this.sessions.set(key, session);
    return { id, session };
  }

  get(id: string | undefined): Session | null {
    if (!id || id.length > 128) return null;
    const key = sha256(id).toString("base64url");
    const s = this.sessions.get(key);
    if (!s) return null;
    if (s.expiresAt <= this.now()) {
      this.sessions.delete(key);
      return null;
    }
    return s;
  }

  delete(key: string): void {
    this.sessions.delete(key);
  }

  has(key: string): boolean {
    const s = this.sessions.get(key);
    return s !== undefined && s.expiresAt > this.now();
  }

  /** Drops expired sessions; returns the keys dropped. */
  sweep(): string[] {
    const now = this.now();
    const gone: string[] = [];
    for (const [k, s] of this.sessions) if (s.expiresAt <= now) gone.push(k);
    for (const k of gone) this.sessions.delete(k);
    return gone;
  }

  get size(): number {
    return this.sessions.size;
  }
}

/**
 * Failed attempts per client address: at most `max` in `windowMs`, after which the address is
 * refused until the oldest failure leaves the window. Bounded in memory (oldest addresses dropped).
 */
export class FailureLimiter {
  private readonly failures = new Map<string, number[]>();
  private readonly max: number;
  private readonly windowMs: number;
  private readonly now: () => number;

  constructor(opts: { max?: number; windowMs?: number; now?: () => number } = {}) {
    this.max = opts.max ?? 10;
    this.windowMs = opts.windowMs ?? 5 * 60_000;
    this.now = opts.now ?? Date.now;
  }

  private recent(addr: string): number[] {
    const since = this.now() - this.windowMs;
    const list = (this.failures.get(addr) ?? []).filter((t) => t > since);
    if (list.length === 0) this.failures.delete(addr);
    else this.failures.set(addr, list);
    return list;
  }

  /** Seconds the address must wait before another attempt, or 0 when it may try. */
  retryAfter(addr: string): number {
    const list = this.recent(addr);
    if (list.length < this.max) return 0;
    return Math.max(1, Math.ceil((list[0]! + this.windowMs - this.now()) / 1000));
  }

  fail(addr: string): void {
    const list = this.recent(addr);
    list.push(this.now());
    this.failures.delete(addr);
    this.failures.set(addr, list);
    while (this.failures.size > 10_000) this.failures.delete(this.failures.keys().next().value!);
  }
}

/** The session cookie's name: one per port, so two servers on one machine do not overwrite each other's. */
export const sessionCookieName = (port: number): string => `qobra_sync_session_${port}`;

/** A Set-Cookie value for the session (HttpOnly, SameSite=Strict, Path=/; Secure when served over https). */
export function sessionCookie(name: string, id: string, maxAgeSeconds: number, secure: boolean): string {
  return `${name}=${id}; Path=/; HttpOnly; SameSite=Strict; Max-Age=${Math.max(0, Math.floor(maxAgeSeconds))}${secure ? "; Secure" : ""}`;
}

/** Where the token generated for a server without http.tokens is written (per port). */
export function generatedTokenFile(port: number, dir: string = stackDir): string {
  return join(dir, `http-token-${port}`);
}

/** A new random operator token (256 bits, base64url). */
export const newOperatorToken = (): string => randomBytes(32).toString("base64url");

/** Writes the generated token atomically to a file of mode 0600 (its folder created 0700 when missing). */
export async function writeGeneratedToken(file: string, token: string): Promise<void> {
  const dir = join(file, "..");
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const tmp = `${file}.${process.pid}.${randomBytes(4).toString("hex")}.tmp`;
  const fh = await open(tmp, "wx", 0o600);
  try {
    await fh.chmod(0o600);
    await fh.writeFile(`${token}\n`);
    await fh.sync();
  } finally {
    await fh.close();
  }
  try {
    await rename(tmp, file);
  } catch (e) {
    await rm(tmp, { force: true });
    throw e;
  }
}

/** Removes the generated token's file when it still holds this token (another server may have replaced it). */
export async function removeGeneratedToken(file: string, token: string): Promise<void> {
  const text = await readFile(file, "utf8").catch(() => null);
  if (text !== null && text.trim() === token) await rm(file, { force: true });
}

/** The token a running server generated for its port, or null when there is no such file. */
export async function readGeneratedToken(port: number, dir: string = stackDir): Promise<{ file: string; token: string | null }> {
  const file = generatedTokenFile(port, dir);
  const text = await readFile(file, "utf8").catch((e: NodeJS.ErrnoException) => {
    if (e.code === "ENOENT") return null;
    throw e;
  });
  return { file, token: text === null ? null : text.trim() };
}
