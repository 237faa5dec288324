/**
 * The OAuth token store shared by the connectors that authenticate with OAuth (Salesforce,
 * HubSpot): one file per connector id holding its refresh token (and whatever else the connector
 * needs, e.g. the instance URL), encrypted at rest with AES-256-GCM.
 *
 *  - Where: QOBRA_SYNC_TOKEN_DIR, else $XDG_CONFIG_HOME/qobra-sync/tokens (~/.config/...).
 *  - Key: QOBRA_SYNC_TOKEN_KEY, required: a store is not opened without it (a ConfigError, so a
 *    Salesforce connector, `qobra-sync auth` and `check` refuse to start). It must be 32 random
 *    bytes or more, base64 or hex encoded (`openssl rand -base64 32`): shorter keys, passphrases
 *    and keys with too few distinct bytes are refused (`parseTokenKey`). The key text is
 *    stretched with scrypt, salted per file. Nothing is ever generated beside the tokens; the demo
 *    keeps its own key in `.stack/demo/token-key` (scripts/demo.sh), outside the token folder.
 *  - The folder is 0700 and owned by the user: a wider mode is narrowed (with a warning: the folder
 *    is the store's own, and a copied or umask-made mode should not stop a rotation), a folder of
 *    another user or one whose mode cannot be changed is refused. Every file in it is made 0600.
 *  - Writes are atomic (temporary file created 0600, fsync, rename).
 *  - `TokenStore.withLock` serialises refreshes of one credential across processes (a lock file) and
 *    `singleFlight` within a process, so a rotating refresh token is never used twice.
 *
 * Values never reach logs: callers log the connector id only.
 */
import { createCipheriv, createDecipheriv, createHash, randomBytes, scryptSync } from "node:crypto";
import { chmod, mkdir, open, readFile, readdir, rename, rm, stat } from "node:fs/promises";
import { homedir } from "node:os";
import { join } from "node:path";
import { ConfigError } from "../../lib/errors.ts";
import { logger } from "../../lib/log.ts";
import { sleep } from "../../lib/retry.ts";
import { rememberSecret } from "../../lib/redact.ts";

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

/** A connector's pipeline id: `<id>`, or `<tenant>.<id>` for a tenant's (lib/tenants.ts); never `..` or a path. */
const ID = /^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)?$/;

interface TokenStoreOptions {
  /** Folder of the token files. */
  dir?: string;
  /** The encryption key (base64 or hex of 32 random bytes or more); default QOBRA_SYNC_TOKEN_KEY. */
  key?: string;
}

const KEY_HELP = "generate one with `openssl rand -base64 32` and export it as QOBRA_SYNC_TOKEN_KEY (keep it outside the token folder)";

/**
 * Checks a token-store key: base64 (standard or URL alphabet) or hex of at least 32 bytes, with
 * at least 16 distinct byte values (32 random bytes have about 30). Returns the decoded bytes;
 * throws a ConfigError that says why and how to generate one, never showing the key.
 */
export function parseTokenKey(text: string | undefined, what = "QOBRA_SYNC_TOKEN_KEY"): Buffer {
  const k = (text ?? "").trim();
  if (k === "") throw new ConfigError(`${what} is not set: the token store encrypts OAuth refresh tokens with it; ${KEY_HELP}`);
  let bytes: Buffer;
  // Hex digits only: hex (a base64 text of random bytes is never made of hex digits alone).
  if (/^[0-9a-fA-F]+$/.test(k)) bytes = Buffer.from(k.length % 2 === 0 ? k : "", "hex");
  else if (/^[A-Za-z0-9+/_-]+={0,2}$/.test(k)) bytes = Buffer.from(k, "base64");
  else throw new ConfigError(`${what} is not base64 or hex: it must encode 32 random bytes or more (a passphrase is not accepted); ${KEY_HELP}`);
  if (bytes.length < 32) throw new ConfigError(`${what} is too short: it encodes ${bytes.length} bytes, and 32 random bytes or more are needed; ${KEY_HELP}`);
  if (new Set(bytes).size < 16) throw new ConfigError(`${what} does not look random (too few distinct bytes); ${KEY_HELP}`);
  return bytes;
}

export class TokenStore {
  readonly dir: string;
  private readonly key: string;
  private keyCache = new Map<string, Buffer>();

  /** Throws a ConfigError when the key (option, else QOBRA_SYNC_TOKEN_KEY) is missing or weak: no store without a proper key. */
  constructor(opts: TokenStoreOptions = {}) {
    this.dir = opts.dir ?? defaultDir();
    const key = opts.key ?? process.env.QOBRA_SYNC_TOKEN_KEY;
    parseTokenKey(key, opts.key !== undefined ? "the token store's key" : "QOBRA_SYNC_TOKEN_KEY");
    this.key = key!.trim();
  }

  /**
   * The folder, private to the user: created 0700 when `create`, else false when missing; a wider
   * mode is narrowed to 0700 and files readable by others to 0600 (with a warning); a folder of
   * another user, or a mode that cannot be fixed, is a ConfigError.
   */
  private async privateDir(create: boolean): Promise<boolean> {
    let st = await stat(this.dir).catch((e: NodeJS.ErrnoException) => {
      if (e.code === "ENOENT") return null;
      throw e;
    });
    if (!st) {
      if (!create) return false;
      await mkdir(this.dir, { recursive: true, mode: 0o700 });
      st = await stat(this.dir);
    }
    if (!st.isDirectory()) throw new ConfigError(`the token folder ${this.dir} is not a folder (QOBRA_SYNC_TOKEN_DIR)`);
    if (typeof process.getuid === "function" && st.uid !== process.getuid())
      throw new ConfigError(`the token folder ${this.dir} belongs to another user (uid ${st.uid}); it must be the qobra-sync user's own, mode 0700`);
    if ((st.mode & 0o777) !== 0o700) await this.fixMode(this.dir, st.mode, 0o700);
    for (const name of await readdir(this.dir)) {
      const path = join(this.dir, name);
      const f = await stat(path).catch(() => null);
      if (f?.isFile() && (f.mode & 0o077) !== 0) await this.fixMode(path, f.mode, 0o600);
      if (name === ".key")
        log.warn(
          { file: path },
          "a key file of an older version sits beside the tokens: set QOBRA_SYNC_TOKEN_KEY to its content if the tokens were saved with it, then move it out of the token folder",
        );
    }
    return true;
  }

  private async fixMode(path: string, mode: number, want: number): Promise<void> {
    const was = (mode & 0o777).toString(8).padStart(4, "0");
    try {
      await chmod(path, want);
    } catch (e) {
      throw new ConfigError(
        `${path} has mode ${was} and cannot be made ${want.toString(8).padStart(4, "0")} (${(e as NodeJS.ErrnoException).code ?? String(e)}): the token store must be private to its user; fix its mode`,
      );
    }
    log.warn({ path, was, now: want.toString(8).padStart(4, "0") }, "the token store's folder or file was readable by others: its mode is narrowed");
  }

  private file(connectorId: string, ext = "json"): string {
    if (!ID.test(connectorId)) throw new ConfigError(`invalid connector id for the token store: ${JSON.stringify(connectorId)}`);
    return join(this.dir, `${connectorId}.${ext}`);
  }

  private async derive(salt: Buffer): Promise<Buffer> {
    const secret = this.key;
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
    const file = this.file(connectorId);
    if (!(await this.privateDir(false))) return null;
    let text: string;
    try {
      text = await readFile(file, "utf8");
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
      rememberSecret(token.refreshToken);
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
    rememberSecret(token.refreshToken);
    const target = this.file(connectorId);
    await this.privateDir(true);
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
    const tmp = `${target}.${process.pid}.${randomBytes(4).toString("hex")}.tmp`;
    const fh = await open(tmp, "wx", 0o600);
    try {
      await fh.chmod(0o600);
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
    const file = this.file(connectorId);
    if (await this.privateDir(false)) await rm(file, { force: true });
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
        await this.privateDir(true);
        const fh = await open(lock, "wx", 0o600);
        await fh.chmod(0o600);
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
