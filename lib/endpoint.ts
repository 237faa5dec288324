/**
 * Connection URLs (postgres://…, the registry's http(s)://…) read robustly, so that no message
 * ever has to print one. A URL is described by its parsed parts only: host, port and database
 * (`describeEndpoint`); its user-info is never echoed, whatever it holds.
 *
 * The user-info ends at the LAST '@' of the URL: a password may hold unencoded `#`, `/`, `?`, `@`,
 * `%` or `:` (WHATWG URL parsing, and node-postgres with it, would cut it at the first `#`, `/` or
 * `?` and read a piece of the password as the host or the database, then print it in an error).
 * The price: an '@' in the database name or in a query parameter must be written %40.
 * `driverUrl` re-encodes the user-info so the drivers read the URL the way it was meant.
 */

/** A connection URL taken apart. `user` and `password` are decoded; the others are as written. */
export interface ParsedEndpoint {
  scheme: string;
  user: string | undefined;
  password: string | undefined;
  host: string;
  port: string | undefined;
  /** The path without its leading '/' (a PostgreSQL URL's database), decoded. */
  path: string;
  /** Everything after the host: path, query (never echoed) and fragment, as written. */
  rest: string;
}

const SCHEME = /^([A-Za-z][A-Za-z0-9+.-]*):\/\//;
// host (a bracketed IPv6 address or a name without delimiters), optional port, then path/query/fragment.
const HOST_PART = /^(\[[0-9A-Fa-f:.]+\]|[^/?#:@\s[\]]*)(?::(\d{0,5}))?([/?#][^\s]*)?$/;
const DEFAULT_PORTS: Record<string, string> = { postgres: "5432", postgresql: "5432", http: "80", https: "443" };

/** Percent-decodes valid %XX sequences and keeps anything else (a lone '%') as it is. */
export function lenientDecode(s: string): string {
  return s.replace(/(?:%[0-9A-Fa-f]{2})+/g, (m) => {
    try {
      return decodeURIComponent(m);
    } catch {
      return m;
    }
  });
}

/** The URL's parts, or undefined when it is not `scheme://[user-info@]host[:port][/path][?query]`. */
export function parseEndpointUrl(url: string): ParsedEndpoint | undefined {
  const scheme = SCHEME.exec(url);
  if (!scheme) return undefined;
  const afterScheme = url.slice(scheme[0].length);
  const at = afterScheme.lastIndexOf("@");
  const userInfo = at >= 0 ? afterScheme.slice(0, at) : undefined;
  const hostPart = at >= 0 ? afterScheme.slice(at + 1) : afterScheme;
  const m = HOST_PART.exec(hostPart);
  if (!m) return undefined;
  let user: string | undefined;
  let password: string | undefined;
  if (userInfo !== undefined) {
    const colon = userInfo.indexOf(":");
    user = lenientDecode(colon >= 0 ? userInfo.slice(0, colon) : userInfo);
    password = colon >= 0 ? lenientDecode(userInfo.slice(colon + 1)) : undefined;
  }
  const rest = m[3] ?? "";
  const pathEnd = rest.search(/[?#]/);
  const rawPath = pathEnd >= 0 ? rest.slice(0, pathEnd) : rest;
  return {
    scheme: scheme[1]!.toLowerCase(),
    user,
    password,
    host: m[1]!,
    port: m[2] || undefined,
    path: lenientDecode(rawPath.replace(/^\//, "")),
    rest,
  };
}

/**
 * Where a connection URL goes, for messages: `host:port/database` (PostgreSQL) or `host:port`
 * (others). Never its user-info, query or fragment; "an unparseable connection URL" when it cannot
 * be read, without any of it.
 */
export function describeEndpoint(url: string): string {
  const p = parseEndpointUrl(url);
  if (!p) return "an unparseable connection URL";
  const host = p.host || "localhost";
  const port = p.port ?? DEFAULT_PORTS[p.scheme];
  const hostPort = port ? `${host}:${port}` : host;
  const isPostgres = p.scheme === "postgres" || p.scheme === "postgresql";
  return isPostgres && p.path ? `${hostPort}/${p.path}` : hostPort;
}

/** The credentials a URL carries (decoded), if any. */
export function credentialsOf(url: string): { user: string; password: string } | undefined {
  const p = parseEndpointUrl(url);
  if (!p || p.user === undefined) return undefined;
  return { user: p.user, password: p.password ?? "" };
}

/** The URL without its user-info (for clients that take credentials apart, such as the registry's). */
export function withoutCredentials(url: string): string {
  const p = parseEndpointUrl(url);
  if (!p) return url;
  return `${p.scheme}://${p.host}${p.port !== undefined ? `:${p.port}` : ""}${p.rest}`;
}

/**
 * The URL as a driver must receive it: the user-info percent-encoded, so `#`, `/`, `?`, `@` in a
 * password reach the server as the password instead of moving the host. An unparseable URL is
 * returned as it is (the config refuses those before they get here).
 */
export function driverUrl(url: string): string {
  const p = parseEndpointUrl(url);
  if (!p || p.user === undefined) return url;
  const userInfo = `${encodeURIComponent(p.user)}${p.password !== undefined ? `:${encodeURIComponent(p.password)}` : ""}@`;
  return `${p.scheme}://${userInfo}${p.host}${p.port !== undefined ? `:${p.port}` : ""}${p.rest}`;
}
