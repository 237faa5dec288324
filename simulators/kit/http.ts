/**
 * HTTP plumbing both simulators share: reading a request body (with an optional size cap), listening on a
 * port, the base URL to announce, and closing a server with its open connections. Each simulator keeps its
 * own response writing, because their wire formats (content types, error bodies) differ.
 */
import type { IncomingMessage, Server } from "node:http";
import type { AddressInfo } from "node:net";

interface BodyLimit {
  /** Largest body accepted, in bytes. */
  maxBytes: number;
  /** The error the read fails with when the body is larger (the request is then destroyed). */
  tooLarge: () => unknown;
}

/**
 * Bodies already read, by request: a multi-tenant front router reads an OAuth request's body to pick the tenant,
 * then hands the same request to the tenant's handler, whose own read must get that body (the stream is spent).
 */
const bodiesRead = new WeakMap<IncomingMessage, Promise<Buffer>>();

/**
 * Reads the whole request body; with a limit, a larger body rejects and the request is destroyed. A second call on
 * the same request answers what the first read (the limit of the first call applies).
 */
export function readBody(req: IncomingMessage, limit?: BodyLimit): Promise<Buffer> {
  const earlier = bodiesRead.get(req);
  if (earlier) return earlier;
  const read = readBodyOnce(req, limit);
  bodiesRead.set(req, read);
  return read;
}

function readBodyOnce(req: IncomingMessage, limit?: BodyLimit): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on("data", (c: Buffer) => {
      size += c.length;
      if (limit && size > limit.maxBytes) {
        reject(limit.tooLarge());
        req.destroy();
        return;
      }
      chunks.push(c);
    });
    req.on("end", () => resolve(Buffer.concat(chunks)));
    req.on("error", reject);
  });
}

/** Starts listening; resolves with the port actually bound (0 asks for a free one). */
export async function listen(server: Server, port: number, host: string): Promise<number> {
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  return (server.address() as AddressInfo).port;
}

/**
 * The URL clients reach the server at: IPv6 hosts in brackets; with `wildcardAsLoopback`, a server bound
 * to every interface (0.0.0.0, ::) announces 127.0.0.1.
 */
export function serverUrl(host: string, port: number, wildcardAsLoopback = false): string {
  const h = wildcardAsLoopback && (host === "0.0.0.0" || host === "::") ? "127.0.0.1" : host.includes(":") ? `[${host}]` : host;
  return `http://${h}:${port}`;
}

/** Stops accepting connections and destroys the open ones (keep-alive clients would hold close() up). */
export function closeServer(server: Server): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    server.close((err) => (err ? reject(err) : resolve()));
    server.closeAllConnections();
  });
}

/** Parses a URL path's `{name}` placeholders into a regular expression with named groups (dots literal). */
export function pathPattern(template: string): RegExp {
  return new RegExp(`^${template.replace(/[.]/g, "\\.").replace(/\{(\w+)\}/g, "(?<$1>[^/]+)")}$`);
}
