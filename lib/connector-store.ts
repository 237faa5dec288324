/**
 * Connectors as data: the connectors created through the API, kept by the pipeline itself in the
 * compacted topic `<prefix>.connectors` (one partition, so every reader sees one order). The key is
 * `<tenant>/<id>`; the value the connector's entry as the API took it (JSON), with every secret
 * field (passwords, client secrets, refresh tokens, credential-bearing URLs: lib/config-secret.ts)
 * encrypted; a tombstone removes the connector.
 *
 * Every process follows the topic (ConnectorStore.start reads it to its end first, then keeps
 * following) and tells its listeners of each change; lib/connector-catalog.ts merges what it holds
 * with the YAML file's connectors for the roles.
 *
 * Secrets at rest: AES-256-GCM under a key derived (HKDF-SHA-256) from the token store's key
 * (QOBRA_SYNC_TOKEN_KEY), one random IV per value, and the connector's key and the field's path as
 * additional data, so a ciphertext moved to another connector or field does not decrypt. Without
 * the key, a connector that holds a secret can neither be stored nor read (the error says so).
 */
import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from "node:crypto";
import type { Producer } from "kafkajs";
import type { z } from "zod";
import type { ConnectorBase } from "./config.ts";
import { formatPath, secretAt } from "./config-secret.ts";
import { ConfigError, describeError } from "./errors.ts";
import { followTopics, type Follower } from "./follow-topic.ts";
import type { KafkaPort } from "./kafka.ts";
import { logger } from "./log.ts";
import { rememberSecret } from "./redact.ts";

const log = logger.child({ component: "connector-store" });

/** What the API shows in place of a secret value. */
export const MASK = "********";
const ENC_PREFIX = "enc:v1:";

/** A connector of the store: its entry (secrets in clear, in memory only) and its parsed config. */
export interface StoredConnector {
  tenant: string;
  id: string;
  /** The entry as given (JSON form of a YAML entry, without id and tenant). */
  entry: Record<string, unknown>;
  /** The entry validated by its source's schema (what the roles use). */
  config: ConnectorBase;
  updatedAt: string;
  updatedBy?: string;
}

/** A stored value that cannot be used (invalid under this version's schema, or undecryptable). */
export interface StoreProblem {
  key: string;
  problem: string;
}

interface StoredValue {
  v: 1;
  tenant: string;
  id: string;
  entry: Record<string, unknown>;
  updatedAt: string;
  updatedBy?: string;
}

type Path = Array<string | number>;

/** Applies `fn` to every string of a connector entry that lies in a secret field of its schema. */
export function mapSecrets(entry: Record<string, unknown>, schema: z.ZodType, fn: (value: string, path: Path) => string): Record<string, unknown> {
  const root = entry;
  const walk = (v: unknown, path: Path): unknown => {
    if (typeof v === "string") return secretAt(schema, path, root) === true ? fn(v, path) : v;
    if (Array.isArray(v)) return v.map((x, i) => walk(x, [...path, i]));
    if (v && typeof v === "object") return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, walk(x, [...path, k])]));
    return v;
  };
  return walk(entry, []) as Record<string, unknown>;
}

/** The entry with every secret replaced by MASK: what the API answers and the page shows. */
export function maskedEntry(entry: Record<string, unknown>, schema: z.ZodType): Record<string, unknown> {
  return mapSecrets(entry, schema, () => MASK);
}

/**
 * Where an edit sends MASK back for a secret (the page and the API show only MASK), the stored
 * value is kept: a client can change other fields without knowing the secrets.
 */
export function keepMaskedSecrets(entry: Record<string, unknown>, previous: Record<string, unknown> | undefined, schema: z.ZodType): Record<string, unknown> {
  return mapSecrets(entry, schema, (v, path) => {
    if (v !== MASK) return v;
    let prev: unknown = previous;
    for (const p of path) prev = prev && typeof prev === "object" ? (prev as Record<string | number, unknown>)[p] : undefined;
    if (typeof prev !== "string")
      throw new ConfigError(`${formatPath(path)}: "${MASK}" stands for a stored secret, and this connector has none there; write the value itself`);
    return prev;
  });
}

/** Encrypts and decrypts secret values for the store. */
export class SecretBox {
  private readonly key: Buffer;
  constructor(tokenKey: Buffer) {
    this.key = Buffer.from(hkdfSync("sha256", tokenKey, Buffer.alloc(0), "qobra-sync connector secrets v1", 32));
  }
  seal(value: string, aad: string): string {
    const iv = randomBytes(12);
    const c = createCipheriv("aes-256-gcm", this.key, iv);
    c.setAAD(Buffer.from(aad));
    const data = Buffer.concat([c.update(value, "utf8"), c.final()]);
    return ENC_PREFIX + Buffer.concat([iv, c.getAuthTag(), data]).toString("base64");
  }
  open(sealed: string, aad: string): string {
    if (!sealed.startsWith(ENC_PREFIX)) throw new Error("a secret field is stored in clear");
    const raw = Buffer.from(sealed.slice(ENC_PREFIX.length), "base64");
    const d = createDecipheriv("aes-256-gcm", this.key, raw.subarray(0, 12));
    d.setAAD(Buffer.from(aad));
    d.setAuthTag(raw.subarray(12, 28));
    return Buffer.concat([d.update(raw.subarray(28)), d.final()]).toString("utf8");
  }
}

export const storeKey = (tenant: string, id: string): string => `${tenant}/${id}`;

export interface ConnectorStoreDeps {
  port: KafkaPort;
  /** The connector entry schema (secret fields) and its validation (the config file's). */
  connectorSchema: z.ZodType;
  parseConnector(entry: unknown, where: { tenant: string; id: string }): ConnectorBase;
  /** The token store's key (QOBRA_SYNC_TOKEN_KEY); undefined: connectors with secrets cannot be stored or read. */
  tokenKey?: Buffer;
  /**
   * Called with a validated connector before it is stored: its topics are created here, by the one
   * process that stores it, so that the roles of every process find them ready when they reload
   * (instead of all racing to create them).
   */
  prepare?: (connector: ConnectorBase) => Promise<void>;
  /**
   * Called with a validated connector before it is stored (and before `prepare`): throws a
   * ConfigError (with `problems`, each "<field>: <why>") to refuse it; the network policy of
   * tenants' connectors (producers/connectors/registry.ts admitNetwork).
   */
  admit?: (connector: ConnectorBase) => Promise<void>;
}

type Listener = (connectors: readonly StoredConnector[]) => void;

export class ConnectorStore {
  private readonly deps: ConnectorStoreDeps;
  private readonly box: SecretBox | undefined;
  private readonly connectors = new Map<string, StoredConnector>();
  private readonly problemsByKey = new Map<string, string>();
  private readonly listeners = new Set<Listener>();
  private readonly waiters = new Set<() => void>();
  private follower: Follower | undefined;
  private producer: Producer | undefined;
  private readonly topic: string;

  constructor(deps: ConnectorStoreDeps) {
    this.deps = deps;
    this.box = deps.tokenKey ? new SecretBox(deps.tokenKey) : undefined;
    this.topic = deps.port.topics.connectors;
  }

  /** Reads the topic to its end, then follows it. */
  async start(): Promise<void> {
    this.follower = await followTopics(this.deps.port, {
      topics: [this.topic],
      groupPrefix: `${this.topic}-follow`,
      from: "beginning",
      upToEnd: "mark",
      consumer: { maxWaitTimeInMs: 250 },
      onBatch: (b) => {
        for (const m of b.messages) if (m.key) this.apply(m.key.toString(), m.value);
        this.changed();
      },
    });
    await this.follower.caughtUp;
  }

  async stop(): Promise<void> {
    await this.follower?.stop();
    await this.producer?.disconnect().catch(() => {});
  }

  list(): StoredConnector[] {
    return [...this.connectors.values()];
  }

  get(tenant: string, id: string): StoredConnector | undefined {
    return this.connectors.get(storeKey(tenant, id));
  }

  /** Stored values this version cannot use (shown on the page and logged). */
  problems(): StoreProblem[] {
    return [...this.problemsByKey].map(([key, problem]) => ({ key, problem }));
  }

  onChange(listener: Listener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /**
   * Validates and stores a connector (created or replaced); resolves once this process's follower
   * has read it back, so that what the caller does next sees it. MASK in a secret field keeps the
   * stored value.
   */
  async put(tenant: string, id: string, entry: Record<string, unknown>, by?: string): Promise<StoredConnector> {
    const previous = this.get(tenant, id)?.entry;
    const full = keepMaskedSecrets(entry, previous, this.deps.connectorSchema);
    const config = this.deps.parseConnector(full, { tenant, id });
    await this.deps.admit?.(config);
    await this.deps.prepare?.(config);
    const key = storeKey(tenant, id);
    const sealed = mapSecrets(full, this.deps.connectorSchema, (v, path) => this.requireBox().seal(v, `${key}:${formatPath(path)}`));
    const value: StoredValue = { v: 1, tenant, id, entry: sealed, updatedAt: new Date().toISOString(), ...(by ? { updatedBy: by } : {}) };
    await this.send(key, Buffer.from(JSON.stringify(value)));
    await this.until(() => this.get(tenant, id)?.updatedAt === value.updatedAt);
    return { tenant, id, entry: full, config, updatedAt: value.updatedAt, ...(by ? { updatedBy: by } : {}) };
  }

  /**
   * Removes a connector (a tombstone), also one this version cannot use (a stored problem: it can
   * be removed without being fixed first); resolves once this process has read it.
   */
  async remove(tenant: string, id: string): Promise<boolean> {
    const key = storeKey(tenant, id);
    if (!this.get(tenant, id) && !this.problemsByKey.has(key)) return false;
    await this.send(key, null);
    await this.until(() => this.get(tenant, id) === undefined && !this.problemsByKey.has(key));
    return true;
  }

  private requireBox(): SecretBox {
    if (!this.box)
      throw new ConfigError(
        "QOBRA_SYNC_TOKEN_KEY is not set: connectors given through the API keep their secrets encrypted with it; generate one with `openssl rand -base64 32` and export it in every role's environment",
      );
    return this.box;
  }

  private async send(key: string, value: Buffer | null): Promise<void> {
    this.producer ??= await this.deps.port.producer({ idempotent: true, maxInFlightRequests: 1 });
    await this.producer.send({ topic: this.topic, acks: -1, messages: [{ key, value }] });
  }

  private until(done: () => boolean, timeoutMs = 15_000): Promise<void> {
    if (done()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiters.delete(check);
        reject(new Error(`the connector was written to ${this.topic} but not read back within ${timeoutMs / 1000} s; it will apply once the topic is read`));
      }, timeoutMs);
      const check = () => {
        if (!done()) return;
        clearTimeout(timer);
        this.waiters.delete(check);
        resolve();
      };
      this.waiters.add(check);
    });
  }

  private apply(key: string, value: Buffer | null): void {
    this.problemsByKey.delete(key);
    if (value === null) {
      this.connectors.delete(key);
      return;
    }
    try {
      const v = JSON.parse(value.toString("utf8")) as StoredValue;
      const entry = mapSecrets(v.entry, this.deps.connectorSchema, (s, path) => {
        const clear = this.requireBox().open(s, `${key}:${formatPath(path)}`);
        rememberSecret(clear);
        return clear;
      });
      const config = this.deps.parseConnector(entry, { tenant: v.tenant, id: v.id });
      this.connectors.set(key, { tenant: v.tenant, id: v.id, entry, config, updatedAt: v.updatedAt, ...(v.updatedBy ? { updatedBy: v.updatedBy } : {}) });
    } catch (e) {
      // Kept out of the pipeline, not lost: the value stays in the topic until it is replaced.
      this.connectors.delete(key);
      const problem = describeError(e);
      this.problemsByKey.set(key, problem);
      log.error({ connector: key, err: problem }, "a stored connector cannot be used; fix it through the API");
    }
  }

  private changed(): void {
    for (const w of [...this.waiters]) w();
    const list = this.list();
    for (const l of this.listeners) {
      try {
        l(list);
      } catch (e) {
        log.error({ err: describeError(e) }, "a connector-change listener failed");
      }
    }
  }
}
