/**
 * The OAuth token store shared by the connectors that authenticate with OAuth (Salesforce,
 * HubSpot): one file per connector id holding its refresh token (and whatever else the connector
 * needs, e.g. the instance URL), encrypted at rest with AES-256-GCM.
 *
 *  - Where: QOBRA_SYNC_TOKEN_DIR, else $XDG_CONFIG_HOME/qobra-sync/tokens (~/.config/...).
 *  - Key: QOBRA_SYNC_TOKEN_KEY (any secret string; stretched with scrypt, salted per file). Without
 *    it, a random key is generated once into `<dir>/.key` (mode 0600) and a warning is logged:
 *    tokens are still encrypted, but the key sits beside them. Set the variable in production.
 *  - Writes are atomic (temporary file, fsync, rename), files are mode 0600 in a 0700 folder.
 *  - `TokenStore.withLock` serialises refreshes of one credential across processes (a lock file) and
 *    `singleFlight` within a process, so a rotating refresh token is never used twice.
 *
 * Values never reach logs: callers log the connector id only.
 */
import { createCipheriv, createDecipheriv, createHash, randomBytes, scryptSync } from "node:crypto";
import { mkdir, open, readFile, rename, rm, stat, writeFile } from "node:fs/promises";
import { homedir } from "node:os";
import { join } from "node:path";
import { ConfigError } from "../../lib/errors.ts";
import { logger } from "../../lib/log.ts";
import { sleep } from "../../lib/retry.ts";

const log = logger.child({ component: "token-store" });

/** What a connector keeps between runs. `refreshToken` is required; the rest is connector-specific. */
export interface StoredToken {
  refreshToken: string;
  /** Salesforce: the org's instance URL the token was issued for. */
  instanceUrl?: string;
  /** When the record was written (ISO 8601), set by saveToken. */
  savedAt?: string;
  [key: string]: unknown;
}

interface Envelope {
  v: 1;
  alg: "aes-256-gcm";
  kdf: "scrypt";
  salt: string;
  iv: string;
  tag: string;
  data: string;
}

const ID = /^[A-Za-z0-9_-]+$/;

interface TokenStoreOptions {
  /** Folder of the token files. */
  dir?: string;
  /** The encryption secret; default QOBRA_SYNC_TOKEN_KEY, else a generated key file. */
  key?: string;
}

export class TokenStore {
  readonly dir: string;
  private readonly explicitKey: string | undefined;
  private keyCache = new Map<string, Buffer>();

  constructor(opts: TokenStoreOptions = {}) {
    this.dir = opts.dir ?? defaultDir();
    this.explicitKey = opts.key;
  }

  private file(connectorId: string, ext = "json"): string {
    if (!ID.test(connectorId)) throw new ConfigError(`invalid connector id for the token store: ${JSON.stringify(connectorId)}`);
    return join(this.dir, `${connectorId}.${ext}`);
  }

  private async secret(): Promise<string> {
    if (this.explicitKey) return this.explicitKey;
    const env = process.env.QOBRA_SYNC_TOKEN_KEY;
    if (env) return env;
    const keyFile = join(this.dir, ".key");
    try {
      return (await readFile(keyFile, "utf8")).trim();
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "ENOENT") throw e;
    }
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    const generated = randomBytes(32).toString("base64url");
    try {
      await writeFile(keyFile, generated, { mode: 0o600, flag: "wx" });
      log.warn(
        { dir: this.dir },
        "QOBRA_SYNC_TOKEN_KEY is not set: generated a token encryption key beside the tokens; set the variable to keep the key elsewhere",
      );
      return generated;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== "EEXIST") throw e;
      return (await readFile(keyFile, "utf8")).trim(); // another process won the race
    }
  }

  private async derive(salt: Buffer): Promise<Buffer> {
    const secret = await this.secret();
    const cacheKey = `${salt.toString("base64")}:${createHash("sha256").update(secret).digest("base64")}`;
    let k = this.keyCache.get(cacheKey);
    if (!k) {
      k = scryptSync(secret, salt, 32, { N: 1 << 14, r: 8, p: 1 });
      this.keyCache.set(cacheKey, k);
    }
    return k;
  }

  /** The stored token of a connector, or null when there is none. A file that does not decrypt is a ConfigError. */
  async load(connectorId: string): Promise<StoredToken | null> {
    let text: string;
    try {
      text = await readFile(this.file(connectorId), "utf8");
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === "ENOENT") return null;
      throw e;
    }
    try {
      const env = JSON.parse(text) as Envelope;
      if (env.v !== 1 || env.alg !== "aes-256-gcm") throw new Error(`unknown format ${String(env.v)}/${String(env.alg)}`);
      const key = await this.derive(Buffer.from(env.salt, "base64"));
      const d = createDecipheriv("aes-256-gcm", key, Buffer.from(env.iv, "base64"));
      d.setAAD(Buffer.from(connectorId));
      d.setAuthTag(Buffer.from(env.tag, "base64"));
      const plain = Buffer.concat([d.update(Buffer.from(env.data, "base64")), d.final()]).toString("utf8");
      const token = JSON.parse(plain) as StoredToken;
      if (typeof token.refreshToken !== "string") throw new Error("no refresh token inside");
      return token;
    } catch (e) {
      throw new ConfigError(
        `the stored OAuth token of connector ${connectorId} (${this.file(connectorId)}) cannot be read: ${(e as Error).message}; ` +
          "check QOBRA_SYNC_TOKEN_KEY (it must be the key the token was saved with) or run `qobra-sync auth` again",
      );
    }
  }

  /** Stores a connector's token, replacing the previous one atomically. */
  async save(connectorId: string, token: StoredToken): Promise<void> {
    if (typeof token.refreshToken !== "string" || token.refreshToken === "") throw new Error("saveToken: refreshToken is required");
    await mkdir(this.dir, { recursive: true, mode: 0o700 });
    const salt = randomBytes(16);
    const iv = randomBytes(12);
    const key = await this.derive(salt);
    const c = createCipheriv("aes-256-gcm", key, iv);
    c.setAAD(Buffer.from(connectorId));
    const record: StoredToken = { ...token, savedAt: new Date().toISOString() };
    const data = Buffer.concat([c.update(JSON.stringify(record), "utf8"), c.final()]);
    const env: Envelope = {
      v: 1,
      alg: "aes-256-gcm",
      kdf: "scrypt",
      salt: salt.toString("base64"),
      iv: iv.toString("base64"),
      tag: c.getAuthTag().toString("base64"),
      data: data.toString("base64"),
    };
    const target = this.file(connectorId);
    const tmp = `${target}.${process.pid}.${randomBytes(4).toString("hex")}.tmp`;
    const fh = await open(tmp, "w", 0o600);
    try {
      await fh.writeFile(JSON.stringify(env));
      await fh.sync();
    } finally {
      await fh.close();
    }
    try {
      await rename(tmp, target);
    } catch (e) {
      await rm(tmp, { force: true });
      throw e;
    }
    // The rename is durable once the folder's entry is flushed.
    const dh = await open(this.dir, "r").catch(() => null);
    if (dh) {
      await dh.sync().catch(() => {});
      await dh.close();
    }
  }

  async delete(connectorId: string): Promise<void> {
    await rm(this.file(connectorId), { force: true });
  }

  /**
   * Runs fn while holding the connector's token lock (a lock file, so across processes too).
   * A lock older than staleMs is taken over (its holder died).
   */
  async withLock<T>(connectorId: string, fn: () => Promise<T>, opts: { timeoutMs?: number; staleMs?: number } = {}): Promise<T> {
    const { timeoutMs = 60_000, staleMs = 120_000 } = opts;
    const lock = this.file(connectorId, "lock");
    const deadline = Date.now() + timeoutMs;
    for (let wait = 20; ; wait = Math.min(wait * 2, 500)) {
      try {
        await mkdir(this.dir, { recursive: true, mode: 0o700 });
        const fh = await open(lock, "wx", 0o600);
        await fh.writeFile(String(process.pid));
        await fh.close();
        break;
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (code === "EACCES" || code === "EROFS" || code === "EPERM") {
          // A read-only token folder (a config-provided token, no rotation): work unlocked; a rotation would fail to save, loudly.
          log.warn({ dir: this.dir, code }, "the token folder is not writable: refreshing without the cross-process lock");
          return fn();
        }
        if (code !== "EEXIST") throw e;
        const st = await stat(lock).catch(() => null);
        if (st && Date.now() - st.mtimeMs > staleMs) {
          await rm(lock, { force: true });
          continue;
        }
        if (Date.now() > deadline)
          throw new Error(
            `timed out waiting for the token lock of connector ${connectorId} (${lock}); remove the file if no qobra-sync process is refreshing it`,
          );
        await sleep(wait);
      }
    }
    try {
      return await fn();
    } finally {
      await rm(lock, { force: true });
    }
  }
}

function defaultDir(): string {
  return process.env.QOBRA_SYNC_TOKEN_DIR ?? join(process.env.XDG_CONFIG_HOME ?? join(homedir(), ".config"), "qobra-sync", "tokens");
}

/** The store configured by the environment (read at each call, so tests may change it). */
function defaultTokenStore(): TokenStore {
  return new TokenStore();
}

export function loadToken(connectorId: string, store: TokenStore = defaultTokenStore()): Promise<StoredToken | null> {
  return store.load(connectorId);
}

export function saveToken(connectorId: string, token: StoredToken, store: TokenStore = defaultTokenStore()): Promise<void> {
  return store.save(connectorId, token);
}

const inflight = new Map<string, Promise<unknown>>();

/** At most one fn per key in this process at a time: concurrent callers share the running call's result. */
export function singleFlight<T>(key: string, fn: () => Promise<T>): Promise<T> {
  const running = inflight.get(key);
  if (running) return running as Promise<T>;
  const p = fn().finally(() => {
    inflight.delete(key);
  });
  inflight.set(key, p);
  return p;
}
