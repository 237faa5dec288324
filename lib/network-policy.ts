/**
 * Where tenants' connectors may connect (the connectors given through the API; the YAML file's are
 * the operator's and unrestricted): not to the pipeline's own network. By default every address of
 * these ranges is refused, whatever spelling leads to it:
 *
 *   IPv4: 0.0.0.0/8 (unspecified), 10/8, 172.16/12, 192.168/16 (private), 100.64/10 (CGNAT),
 *         127/8 (loopback), 169.254/16 (link-local: cloud metadata services), 192.0.0/24,
 *         192.0.2/24, 198.51.100/24, 203.0.113/24, 198.18/15, 192.88.99/24 (special and
 *         documentation), 224/4 (multicast), 240/4 (reserved, broadcast)
 *   IPv6: ::/128, ::1/128, fc00::/7 (unique local), fe80::/10 (link-local), fec0::/10 (site-local),
 *         ff00::/8 (multicast), 100::/64 (discard), 2001::/23 (protocol assignments, Teredo),
 *         2001:db8::/32 (documentation); the IPv4 forms embedded in IPv6 (IPv4-mapped ::ffff:a.b.c.d,
 *         IPv4-compatible ::a.b.c.d, IPv4-translated ::ffff:0:a.b.c.d, NAT64 64:ff9b::/96, 6to4
 *         2002::/16) are judged by their IPv4 address.
 *
 * `tenantNetwork.allow` (the config file) opens some: CIDRs or addresses (checked against every
 * address a name resolves to) and exact host names (trusted, whatever they resolve to).
 *
 * Host spellings are read like the resolver reads them (decimal `2130706433`, hex `0x7f000001`,
 * octal `0177.0.0.1`, short `127.1`, `localhost` and `*.localhost`), and names are resolved
 * (dns.lookup, every address): one refused address refuses the name. The connect-time guards
 * (lib/egress.ts) use the same policy on the address actually connected to.
 */
import { lookup as dnsLookup, type LookupAddress } from "node:dns";
import { BlockList, isIP } from "node:net";
import { ConfigError } from "./errors.ts";

/** The config key that opens addresses to tenants' connectors (named in every refusal). */
export const ALLOW_KEY = "tenantNetwork.allow";

/** The policy as the config holds it (and as a tenant's connector config carries it: `egress`). */
export interface NetworkPolicyConfig {
  allow: string[];
}

interface Range {
  net: string;
  prefix: number;
  kind: string;
}

const V4: Range[] = [
  { net: "0.0.0.0", prefix: 8, kind: "unspecified" },
  { net: "10.0.0.0", prefix: 8, kind: "private" },
  { net: "100.64.0.0", prefix: 10, kind: "carrier-grade NAT" },
  { net: "127.0.0.0", prefix: 8, kind: "loopback" },
  { net: "169.254.0.0", prefix: 16, kind: "link-local (metadata services)" },
  { net: "172.16.0.0", prefix: 12, kind: "private" },
  { net: "192.0.0.0", prefix: 24, kind: "reserved" },
  { net: "192.0.2.0", prefix: 24, kind: "reserved" },
  { net: "192.88.99.0", prefix: 24, kind: "reserved" },
  { net: "192.168.0.0", prefix: 16, kind: "private" },
  { net: "198.18.0.0", prefix: 15, kind: "reserved" },
  { net: "198.51.100.0", prefix: 24, kind: "reserved" },
  { net: "203.0.113.0", prefix: 24, kind: "reserved" },
  { net: "224.0.0.0", prefix: 4, kind: "multicast" },
  { net: "240.0.0.0", prefix: 4, kind: "reserved" },
];
const V6: Range[] = [
  { net: "::", prefix: 128, kind: "unspecified" },
  { net: "::1", prefix: 128, kind: "loopback" },
  { net: "fc00::", prefix: 7, kind: "private" },
  { net: "fe80::", prefix: 10, kind: "link-local (metadata services)" },
  { net: "fec0::", prefix: 10, kind: "reserved" },
  { net: "ff00::", prefix: 8, kind: "multicast" },
  { net: "100::", prefix: 64, kind: "reserved" },
  { net: "2001::", prefix: 23, kind: "reserved" },
  { net: "2001:db8::", prefix: 32, kind: "reserved" },
];

const DENIED = new BlockList();
for (const r of V4) DENIED.addSubnet(r.net, r.prefix, "ipv4");
for (const r of V6) DENIED.addSubnet(r.net, r.prefix, "ipv6");

/** The kind of refused range an address is in (the first that matches), by its own BlockList. */
const KINDS = [...V4.map((r) => ({ ...r, family: "ipv4" as const })), ...V6.map((r) => ({ ...r, family: "ipv6" as const }))].map((r) => {
  const b = new BlockList();
  b.addSubnet(r.net, r.prefix, r.family);
  return { b, kind: r.kind, family: r.family };
});

/** An IPv4 address as the resolver (inet_aton) reads it: 1 to 4 parts, each decimal, 0x hex or 0 octal; undefined otherwise. */
export function parseLooseIPv4(host: string): string | undefined {
  const parts = host.replace(/\.$/, "").split(".");
  if (parts.length === 0 || parts.length > 4) return undefined;
  const nums: number[] = [];
  for (const p of parts) {
    let n: number;
    if (/^0x[0-9a-f]*$/i.test(p)) n = p.length === 2 ? 0 : Number.parseInt(p.slice(2), 16);
    else if (/^0[0-7]+$/.test(p)) n = Number.parseInt(p, 8);
    else if (/^(0|[1-9][0-9]*)$/.test(p)) n = Number(p);
    else return undefined;
    if (!Number.isFinite(n)) return undefined;
    nums.push(n);
  }
  const last = nums.pop()!;
  if (nums.some((n) => n > 255) || last >= 256 ** (4 - nums.length)) return undefined;
  let value = last;
  nums.forEach((n, i) => {
    value += n * 256 ** (3 - i);
  });
  return [value >>> 24, (value >>> 16) & 255, (value >>> 8) & 255, value & 255].join(".");
}

/** The 8 groups of an IPv6 address (undefined when it is not one). */
function ipv6Groups(address: string): number[] | undefined {
  const a = address.replace(/%.*$/, "");
  if (isIP(a) !== 6) return undefined;
  let head = a;
  const tailV4: number[] = [];
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(a);
  if (v4) {
    const o = v4[1]!.split(".").map(Number);
    tailV4.push((o[0]! << 8) | o[1]!, (o[2]! << 8) | o[3]!);
    head = a.slice(0, -v4[1]!.length);
    if (head.endsWith(":") && !head.endsWith("::")) head = head.slice(0, -1);
  }
  const [left, right] = head.includes("::") ? head.split("::") : [head, undefined];
  const parse = (s: string | undefined) =>
    s
      ? s
          .split(":")
          .filter((x) => x !== "")
          .map((x) => Number.parseInt(x, 16))
      : [];
  const l = parse(left);
  const r = parse(right);
  const fill = 8 - tailV4.length - l.length - r.length;
  return [...l, ...(right !== undefined ? Array(fill).fill(0) : []), ...r, ...tailV4];
}

/** The IPv4 address an IPv6 address carries (mapped, compatible, translated, NAT64, 6to4), if it is such a form. */
export function embeddedIPv4(address: string): string | undefined {
  const g = ipv6Groups(address);
  if (g?.length !== 8) return undefined;
  const v4 = (hi: number, lo: number) => [hi >> 8, hi & 255, lo >> 8, lo & 255].join(".");
  const zeros = (from: number, to: number) => g.slice(from, to).every((x) => x === 0);
  if (zeros(0, 5) && g[5] === 0xffff) return v4(g[6]!, g[7]!); // ::ffff:a.b.c.d
  if (zeros(0, 4) && g[4] === 0xffff && g[5] === 0) return v4(g[6]!, g[7]!); // ::ffff:0:a.b.c.d
  if (zeros(0, 6) && (g[6] !== 0 || g[7]! > 1)) return v4(g[6]!, g[7]!); // ::a.b.c.d (not :: nor ::1)
  if (g[0] === 0x64 && g[1] === 0xff9b && zeros(2, 6)) return v4(g[6]!, g[7]!); // NAT64
  if (g[0] === 0x2002) return v4(g[1]!, g[2]!); // 6to4
  return undefined;
}

/** A host name or address as written, brackets and the trailing dot taken off, lower case. */
export function normalHost(host: string): string {
  return host
    .trim()
    .replace(/^\[(.*)\]$/, "$1")
    .replace(/\.$/, "")
    .toLowerCase();
}

/** A refusal of the policy: a ConfigError (never retried) naming the connector, the field and the config key. */
export class NetworkRefusedError extends ConfigError {
  readonly field: string;
  /** The refusal without the connector: "<field>: <why>; <what allows it>" (the API's field problem). */
  readonly detail: string;
  constructor(connector: string | undefined, field: string, reason: string) {
    const detail = `${field}: ${reason}, refused: connectors given through the API may not reach the pipeline's own network (the operator may open an address or host with ${ALLOW_KEY} in the config file)`;
    super(`${connector ? `connector ${connector}: ` : ""}${detail}`);
    this.field = field;
    this.detail = detail;
  }
}

/** The refusal in an error or its causes (HTTP clients wrap the connect error), if any. */
export function networkRefusalIn(e: unknown): NetworkRefusedError | undefined {
  for (let x: unknown = e, depth = 0; x && depth < 8; depth++) {
    if (x instanceof NetworkRefusedError) return x;
    x = (x as { cause?: unknown }).cause;
  }
  return undefined;
}

type Lookup = (hostname: string) => Promise<LookupAddress[]>;
const systemLookup: Lookup = (hostname) =>
  new Promise((resolve, reject) => dnsLookup(hostname, { all: true, verbatim: true }, (err, addrs) => (err ? reject(err) : resolve(addrs))));

export class NetworkPolicy {
  private readonly allowed = new BlockList();
  private readonly allowedNames = new Set<string>();
  readonly config: NetworkPolicyConfig;

  constructor(config: NetworkPolicyConfig) {
    this.config = config;
    for (const entry of config.allow) {
      const spec = allowEntry(entry);
      if (!spec) throw new ConfigError(`${ALLOW_KEY}: ${JSON.stringify(entry)} is neither a CIDR, an address nor a host name`);
      if (spec.kind === "name") this.allowedNames.add(spec.name);
      else this.allowed.addSubnet(spec.net, spec.prefix, spec.family);
    }
  }

  /** Whether `tenantNetwork.allow` names this host exactly. */
  allowsName(host: string): boolean {
    return this.allowedNames.has(normalHost(host));
  }

  /** Why an address (IPv4 or IPv6) is refused, as "a loopback address", or null when it may be reached. */
  refusal(address: string): string | null {
    const a = normalHost(address).replace(/%.*$/, "");
    const family = isIP(a);
    if (family === 0) return "not an address";
    const type = family === 4 ? "ipv4" : "ipv6";
    if (this.allowed.check(a, type)) return null;
    const inner = family === 6 ? embeddedIPv4(a) : undefined;
    if (inner !== undefined) {
      if (this.allowed.check(inner, "ipv4")) return null;
      const r = this.refusal(inner);
      if (r) return r;
    }
    if (!DENIED.check(a, type)) return null;
    const kind = KINDS.find((k) => k.family === type && k.b.check(a, type))?.kind ?? (inner !== undefined ? "IPv4-embedding" : "reserved");
    return `a ${kind} address`;
  }

  /**
   * The addresses a host (as written in a field: name, address in any spelling) may be reached at,
   * all of them checked; a NetworkRefusedError naming the field otherwise. A name's addresses are
   * not shown (they would tell a tenant what the pipeline's resolver knows), an address is.
   */
  async resolve(host: string, where: { connector?: string; field: string }, lookup: Lookup = systemLookup): Promise<LookupAddress[]> {
    const h = normalHost(host);
    const refuse = (reason: string) => new NetworkRefusedError(where.connector, where.field, reason);
    if (h === "") throw refuse("no host is given");
    if (h.startsWith("/") || h.includes("\\")) throw refuse("a Unix socket path (a local server) is refused");
    const literal = isIP(h.replace(/%.*$/, "")) ? h.replace(/%.*$/, "") : parseLooseIPv4(h);
    if (literal !== undefined) {
      const r = this.refusal(literal);
      if (r) throw refuse(`${h} is ${r}`);
      return [{ address: literal, family: isIP(literal) }];
    }
    const trusted = this.allowsName(h);
    if (!trusted && (h === "localhost" || h.endsWith(".localhost"))) throw refuse(`${h} is a loopback address`);
    let addrs: LookupAddress[];
    try {
      addrs = await lookup(h);
    } catch (e) {
      // Not a refusal: the caller's own error for an unknown host applies (retried as a network error).
      throw Object.assign(new Error(`${where.field}: the host ${h} does not resolve (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`), {
        code: (e as NodeJS.ErrnoException).code ?? "ENOTFOUND",
        cause: e,
      });
    }
    if (trusted) return addrs;
    if (addrs.length === 0) throw refuse(`${h} resolves to no address`);
    for (const a of addrs) {
      const r = this.refusal(a.address);
      if (r) throw refuse(`${h} resolves to ${r}`);
    }
    return addrs;
  }
}

type AllowSpec = { kind: "name"; name: string } | { kind: "net"; net: string; prefix: number; family: "ipv4" | "ipv6" };

/** An allow entry read: a CIDR, a single address (its /32 or /128), or a host name. */
export function allowEntry(entry: string): AllowSpec | undefined {
  const e = normalHost(entry);
  const m = /^(.+)\/(\d{1,3})$/.exec(e);
  const addr = m ? m[1]! : e;
  const family = isIP(addr);
  if (family) {
    const max = family === 4 ? 32 : 128;
    const prefix = m ? Number(m[2]) : max;
    if (prefix > max) return undefined;
    return { kind: "net", net: addr, prefix, family: family === 4 ? "ipv4" : "ipv6" };
  }
  if (m) return undefined;
  if (/^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$/.test(e) && !/^[0-9.]+$/.test(e)) return { kind: "name", name: e };
  return undefined;
}

const cache = new Map<string, NetworkPolicy>();
/** The policy of a config (compiled once per distinct allow list). */
export function networkPolicy(config: NetworkPolicyConfig): NetworkPolicy {
  const key = JSON.stringify(config.allow);
  let p = cache.get(key);
  if (!p) {
    p = new NetworkPolicy(config);
    cache.set(key, p);
  }
  return p;
}
