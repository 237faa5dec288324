/**
 * What the multi-tenant simulators (many Salesforce orgs, many HubSpot portals in one process) share: tenants
 * created on first use, the tenant that owns a token, deterministic credentials, the `--credentials` file, and
 * the `generate:key=value,...` data spec. Each tenant is an unchanged single-tenant simulator app; only the
 * routing in front of it is new (see multi-org.ts and multi-portal.ts).
 */
import { createHash } from "node:crypto";
import { renameSync, writeFileSync } from "node:fs";

/** Tenants 0..count-1, each built on first use (a benchmark declares hundreds; most cost nothing until called). */
export class LazyTenants<T> {
  readonly count: number;
  private readonly create: (k: number) => T;
  private readonly made = new Map<number, T>();
  /** Token → tenant, learned on first sight (tokens never move between tenants). */
  private readonly owners = new Map<string, number>();

  constructor(count: number, create: (k: number) => T) {
    if (!Number.isInteger(count) || count < 1) throw new Error(`the number of tenants must be a positive integer, got ${count}`);
    this.count = count;
    this.create = create;
  }

  has(k: number): boolean {
    return Number.isInteger(k) && k >= 0 && k < this.count;
  }

  get(k: number): T {
    if (!this.has(k)) throw new Error(`no tenant ${k} (there are ${this.count}: 0..${this.count - 1})`);
    let t = this.made.get(k);
    if (t === undefined) {
      t = this.create(k);
      this.made.set(k, t);
    }
    return t;
  }

  /** How many tenants have been built so far. */
  created(): number {
    return this.made.size;
  }

  /**
   * The tenant that issued `token`: remembered, else found among the tenants built so far (`knows`), else
   * `seeded` (tokens known before their tenant is built, e.g. each tenant's initial refresh token).
   */
  owner(token: string | undefined, knows: (t: T, token: string) => boolean, seeded?: ReadonlyMap<string, number>): number | undefined {
    if (!token) return undefined;
    const cached = this.owners.get(token);
    if (cached !== undefined) return cached;
    for (const [k, t] of this.made) {
      if (knows(t, token)) {
        this.owners.set(token, k);
        return k;
      }
    }
    return seeded?.get(token);
  }
}

/** A stable secret-looking string for tenant `k` (same seed → same credentials, run after run). */
export function derivedSecret(seed: string, k: number, what: string, chars: number): string {
  let out = "";
  for (let i = 0; out.length < chars; i++) out += createHash("sha256").update(`${seed}\0${k}\0${what}\0${i}`).digest("base64url");
  return out.slice(0, chars);
}

/** A stable UUID-shaped string (HubSpot's client ids and refresh tokens look like UUIDs). */
export function derivedUuid(seed: string, k: number, what: string): string {
  const h = createHash("sha256").update(`${seed}\0${k}\0${what}`).digest("hex");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-a${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

/** Writes JSON through a temporary file and a rename, so that a reader polling for the file never sees half of it. */
export function writeJsonFileAtomically(file: string, value: unknown): void {
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, `${JSON.stringify(value, null, 2)}\n`);
  renameSync(tmp, file);
}

/** `generate:opportunities=500,seed=7` → { opportunities: 500, seed: 7 }; undefined when `spec` is not a generate spec. */
export function parseGenerateSpec(spec: string): Record<string, string | number> | undefined {
  if (!spec.startsWith("generate:")) return undefined;
  const out: Record<string, string | number> = {};
  for (const part of spec
    .slice("generate:".length)
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean)) {
    const [key, value] = part.split("=", 2);
    if (!key || value === undefined) throw new Error(`bad generate option '${part}' (expected key=value)`);
    out[key] = /^\d+$/.test(value) ? Number(value) : value;
  }
  return out;
}

/** `/org/3/__admin/stats` → { k: 3, rest: "/__admin/stats" } for the prefix "org". */
export function tenantPath(path: string, prefix: string): { k: number; rest: string } | undefined {
  const m = new RegExp(`^/${prefix}/(\\d+)(/.*)?$`).exec(path);
  return m ? { k: Number(m[1]), rest: m[2] ?? "/" } : undefined;
}

/** Resolves when SIGINT or SIGTERM arrives (or `signal` aborts), with the signal's name. */
export function untilStopped(signal?: AbortSignal): Promise<string> {
  return new Promise((resolve) => {
    const stop = (why: string) => {
      process.off("SIGINT", onInt);
      process.off("SIGTERM", onTerm);
      signal?.removeEventListener("abort", onAbort);
      resolve(why);
    };
    const onInt = () => stop("SIGINT");
    const onTerm = () => stop("SIGTERM");
    const onAbort = () => stop("abort");
    process.on("SIGINT", onInt);
    process.on("SIGTERM", onTerm);
    if (signal?.aborted) stop("abort");
    else signal?.addEventListener("abort", onAbort);
  });
}
