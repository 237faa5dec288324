/**
 * HTTP helpers of the settings-server tests: raw requests with explicit headers (a forged Host, no
 * Host at all, a malformed path: what fetch would refuse or fix), a page login that returns the
 * session cookie and its CSRF token, and a server-sent-events stream held open.
 */
import { request, type IncomingHttpHeaders, type IncomingMessage } from "node:http";

export interface RawAnswer {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
}

/** One request to 127.0.0.1:port, sent as given: `headers.host` replaces the Host header, `noHost` sends none. */
export function rawRequest(
  port: number,
  opts: { method?: string; path: string; headers?: Record<string, string>; body?: string | Buffer; noHost?: boolean },
): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    const req = request(
      { host: "127.0.0.1", port, method: opts.method ?? "GET", path: opts.path, headers: opts.headers, setHost: !opts.noHost && !opts.headers?.host },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString("utf8") }));
        res.on("error", reject);
      },
    );
    req.on("error", reject);
    req.end(opts.body);
  });
}

export const bearer = (token: string): Record<string, string> => ({ authorization: `Bearer ${token}` });

/** Logs in as the page does (POST /api/login) and returns the session cookie and its CSRF token. */
export async function loginSession(port: number, token: string): Promise<{ cookie: string; csrf: string; answer: RawAnswer }> {
  const answer = await rawRequest(port, {
    method: "POST",
    path: "/api/login",
    headers: { "content-type": "application/json", origin: `http://127.0.0.1:${port}` },
    body: JSON.stringify({ token }),
  });
  if (answer.status !== 200) throw new Error(`login answered ${answer.status}: ${answer.body}`);
  const setCookie = answer.headers["set-cookie"]?.[0] ?? "";
  return { cookie: setCookie.split(";")[0]!, csrf: (JSON.parse(answer.body) as { csrfToken: string }).csrfToken, answer };
}

/** Opens GET /api/stream and resolves with the answer as soon as its head arrives; `ended` resolves when the server ends it. */
export function openStream(
  port: number,
  headers: Record<string, string>,
): Promise<{ status: number; res: IncomingMessage; ended: Promise<void>; close(): void }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: "127.0.0.1", port, path: "/api/stream", headers }, (res) => {
      const ended = new Promise<void>((r) => {
        res.on("end", () => r());
        res.on("close", () => r());
        res.on("error", () => r());
      });
      res.resume();
      resolve({ status: res.statusCode ?? 0, res, ended, close: () => req.destroy() });
    });
    req.on("error", reject);
    req.end();
  });
}
