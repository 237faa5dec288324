/**
 * The settings server's request checks (ops/server.ts), pure and unit-tested
 * (test/unit/ops-security.test.ts); the threat model is in docs/security.md:
 *
 *  - Host: only the names the server is reached by (loopback names, http.host, http.allowedHosts),
 *    any port. A DNS-rebinding page reaches the server under its own name, so it is refused (421)
 *    before anything else happens.
 *  - Origin (and Sec-Fetch-Site) on every write, the login and the event stream: when the browser
 *    sends one, it must be the origin the request is addressed to (scheme http or https, the same
 *    Host); `null` and other sites are refused (403).
 *  - Paths: the request target must be a path; every `%` escape must decode, with no control
 *    character (400).
 *  - Bodies: a declared or actual length over the route's bound is 413; writes carry JSON (415).
 *  - Headers on every answer: a strict Content-Security-Policy (no inline script or style, no
 *    framing), nosniff, no referrer, DENY framing, same-origin resource and opener policies.
 */
import type { IncomingMessage, ServerResponse } from "node:http";

export { isLoopbackAddress } from "../lib/config.ts";

/** An HTTP answer to a refused or bad request (status, short text, extra headers): not a pipeline error, so deliberately not an EtlError. */
export class HttpError extends Error {
  readonly status: number;
  readonly headers: Record<string, string>;
  constructor(status: number, message: string, headers: Record<string, string> = {}) {
    super(message);
    this.status = status;
    this.headers = headers;
  }
}

export const CONTENT_SECURITY_POLICY = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "font-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join("; ");

/** Set on every answer, whatever the route (the API's JSON included). */
export const SECURITY_HEADERS: Readonly<Record<string, string>> = {
  "content-security-policy": CONTENT_SECURITY_POLICY,
  "x-content-type-options": "nosniff",
  "referrer-policy": "no-referrer",
  "x-frame-options": "DENY",
  "cross-origin-opener-policy": "same-origin",
  "cross-origin-resource-policy": "same-origin",
  "permissions-policy": "camera=(), microphone=(), geolocation=()",
};

export function applySecurityHeaders(res: ServerResponse): void {
  for (const [k, v] of Object.entries(SECURITY_HEADERS)) res.setHeader(k, v);
}

/** The names a browser may use for this machine's loopback interface. */
export const LOOPBACK_NAMES = ["localhost", "127.0.0.1", "[::1]"] as const;

/** A listen address that means every interface (it names no host a browser would use). */
export function isWildcardAddress(host: string): boolean {
  return host === "" || host === "0.0.0.0" || host === "::" || host === "[::]";
}

/** A host name as it appears in a Host header: lower case, IPv6 literals in brackets. */
export function normalizeHostName(name: string): string {
  const n = name.trim().toLowerCase();
  return n.includes(":") && !n.startsWith("[") ? `[${n}]` : n;
}

/** The Host names the server answers to: loopback names, the listen address (unless a wildcard) and the configured extra names. */
export function allowedHostNames(listenHost: string, extra: readonly string[] = []): Set<string> {
  const names = new Set<string>(LOOPBACK_NAMES);
  if (!isWildcardAddress(listenHost)) names.add(normalizeHostName(listenHost));
  for (const h of extra) names.add(normalizeHostName(h));
  return names;
}

const HOST_HEADER = /^(\[[0-9a-f:.]+\]|[a-z0-9](?:[a-z0-9.-]*[a-z0-9])?)(?::(\d{1,5}))?$/;

/** Splits a Host header into its name and port; null when it is not a host[:port]. */
export function parseHostHeader(header: string | undefined): { name: string; port: number | null } | null {
  if (header === undefined) return null;
  const m = HOST_HEADER.exec(header.trim().toLowerCase());
  if (!m) return null;
  const port = m[2] === undefined ? null : Number(m[2]);
  if (port !== null && port > 65535) return null;
  return { name: m[1]!, port };
}

/** Refuses a request addressed to a name the server does not serve (DNS rebinding): 421. */
export function checkHost(header: string | undefined, allowed: ReadonlySet<string>): { name: string; port: number | null } {
  const h = parseHostHeader(header);
  if (!h) throw new HttpError(header === undefined ? 400 : 421, header === undefined ? "a Host header is required" : "unknown Host");
  if (!allowed.has(h.name)) throw new HttpError(421, "unknown Host: this server answers to its own names only (http.allowedHosts)");
  return h;
}

/**
 * Refuses a browser request made by another site: when `Origin` is present it must be http(s) on
 * the same name and port as the (already checked) Host; `Sec-Fetch-Site`, when present, must be
 * same-origin or none (typed by the user). Requests without either come from a non-browser client.
 */
export function checkOrigin(headers: IncomingMessage["headers"], host: { name: string; port: number | null }): void {
  const site = headers["sec-fetch-site"];
  if (typeof site === "string" && site !== "same-origin" && site !== "none") throw new HttpError(403, `cross-site request refused (Sec-Fetch-Site: ${site})`);
  const origin = headers.origin;
  if (origin === undefined) return;
  let u: URL;
  try {
    u = new URL(origin);
  } catch {
    throw new HttpError(403, "cross-origin request refused (malformed Origin)");
  }
  if (origin === "null" || (u.protocol !== "http:" && u.protocol !== "https:")) throw new HttpError(403, "cross-origin request refused");
  const defaultPort = u.protocol === "https:" ? 443 : 80;
  const originPort = u.port === "" ? defaultPort : Number(u.port);
  const hostPort = host.port ?? defaultPort;
  if (normalizeHostName(u.hostname) !== host.name || originPort !== hostPort) throw new HttpError(403, "cross-origin request refused");
}

/**
 * The decoded segments of a request target's path ("/api/runs/a%2Fb" → ["api", "runs", "a/b"]);
 * trailing slashes are ignored. 400 for anything but a path, a bad `%` escape or a control character.
 */
export function parsePath(target: string | undefined): string[] {
  const raw = (target ?? "/").split("?")[0]!.split("#")[0]!;
  if (!raw.startsWith("/")) throw new HttpError(400, "the request target must be a path");
  const segments = raw.split("/").slice(1);
  while (segments.length > 0 && segments[segments.length - 1] === "") segments.pop();
  return segments.map((s) => {
    let d: string;
    try {
      d = decodeURIComponent(s);
    } catch {
      throw new HttpError(400, "malformed path: a % escape does not decode");
    }
    // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what this refuses
    if (/[\u0000-\u001f\u007f]/.test(d)) throw new HttpError(400, "malformed path: control character");
    if (d === "") throw new HttpError(400, "malformed path: empty segment");
    return d;
  });
}

/** Reads a request body of at most `limit` bytes: 413 when it declares or sends more. */
export async function readBody(req: IncomingMessage, limit: number): Promise<Buffer> {
  const declared = Number(req.headers["content-length"]);
  if (Number.isFinite(declared) && declared > limit) throw new HttpError(413, `request body too large (at most ${limit} bytes)`, { connection: "close" });
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > limit) throw new HttpError(413, `request body too large (at most ${limit} bytes)`, { connection: "close" });
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}

/** A write's JSON object body: 415 without `Content-Type: application/json`, 400 when not a JSON object, 413 over the bound. */
export async function readJsonObject(req: IncomingMessage, limit: number): Promise<Record<string, unknown>> {
  if (!/^application\/json\s*(;|$)/i.test(req.headers["content-type"] ?? "")) throw new HttpError(415, "send Content-Type: application/json");
  const text = (await readBody(req, limit)).toString("utf8");
  if (!text.trim()) return {};
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    throw new HttpError(400, "the body is not valid JSON");
  }
  if (body === null || typeof body !== "object" || Array.isArray(body)) throw new HttpError(400, "the body must be a JSON object");
  return body as Record<string, unknown>;
}

/** The request's cookies by name (the first of each name wins). */
export function parseCookies(header: string | undefined): Map<string, string> {
  const out = new Map<string, string>();
  for (const part of (header ?? "").split(";")) {
    const i = part.indexOf("=");
    if (i <= 0) continue;
    const name = part.slice(0, i).trim();
    if (!out.has(name)) out.set(name, part.slice(i + 1).trim());
  }
  return out;
}
