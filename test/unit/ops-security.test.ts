/**
 * The settings server's checks as pure functions (ops/http-security.ts, ops/http-auth.ts): Host
 * names (DNS rebinding), Origin, paths, cookies, token comparison, sessions and their expiry,
 * the failed-attempt limiter, and the config rules of the http section. The server itself is
 * tested with raw requests in test/integration/ops-security.test.ts and in Chromium in
 * test/integration/ops-web.test.ts.
 */
import { describe, expect, it } from "vitest";
import { parseConfig } from "../../app/config.ts";
import { FailureLimiter, SessionStore, TokenSet, bearerToken, reachesTenant, secretEquals, sessionCookie } from "../../ops/http-auth.ts";
import {
  CONTENT_SECURITY_POLICY,
  HttpError,
  allowedHostNames,
  checkHost,
  checkOrigin,
  isLoopbackAddress,
  parseCookies,
  parseHostHeader,
  parsePath,
} from "../../ops/http-security.ts";

const status = (fn: () => unknown): number | null => {
  try {
    fn();
    return null;
  } catch (e) {
    if (e instanceof HttpError) return e.status;
    throw e;
  }
};

describe("Host check", () => {
  const allowed = allowedHostNames("127.0.0.1", ["sync.qobra.example"]);

  it("accepts the loopback names, the listen address and the configured names, with or without a port", () => {
    for (const h of ["localhost", "localhost:7070", "127.0.0.1:7070", "[::1]:7070", "[::1]", "SYNC.qobra.example", "sync.qobra.example:443"])
      expect(
        status(() => checkHost(h, allowed)),
        h,
      ).toBeNull();
  });

  it("refuses any other name (a rebinding attacker's domain), a malformed Host and a missing one", () => {
    expect(status(() => checkHost("evil.example", allowed))).toBe(421);
    expect(status(() => checkHost("evil.example:7070", allowed))).toBe(421);
    expect(status(() => checkHost("127.0.0.2:7070", allowed))).toBe(421);
    expect(status(() => checkHost("localhost.:7070", allowed))).toBe(421);
    expect(status(() => checkHost("user@localhost", allowed))).toBe(421);
    expect(status(() => checkHost("localhost:99999", allowed))).toBe(421);
    expect(status(() => checkHost(undefined, allowed))).toBe(400);
  });

  it("a wildcard listen address adds no name; an IPv6 listen address is bracketed", () => {
    expect([...allowedHostNames("0.0.0.0")].sort()).toEqual(["127.0.0.1", "[::1]", "localhost"]);
    expect(allowedHostNames("::1").has("[::1]")).toBe(true);
    expect(allowedHostNames("10.0.0.5").has("10.0.0.5")).toBe(true);
    expect(parseHostHeader("[::1]:80")).toEqual({ name: "[::1]", port: 80 });
  });

  it("loopback addresses", () => {
    for (const h of ["127.0.0.1", "127.1.2.3", "::1", "[::1]", "localhost"]) expect(isLoopbackAddress(h), h).toBe(true);
    for (const h of ["0.0.0.0", "::", "10.0.0.1", "example.com", "128.0.0.1"]) expect(isLoopbackAddress(h), h).toBe(false);
  });
});

describe("Origin check", () => {
  const host = { name: "127.0.0.1", port: 7070 };
  const check = (headers: Record<string, string>) => status(() => checkOrigin(headers, host));

  it("accepts no Origin (a non-browser client) and the server's own origin", () => {
    expect(check({})).toBeNull();
    expect(check({ origin: "http://127.0.0.1:7070", "sec-fetch-site": "same-origin" })).toBeNull();
    expect(status(() => checkOrigin({ origin: "https://sync.qobra.example" }, { name: "sync.qobra.example", port: null }))).toBeNull();
  });

  it("refuses another site, another port of the same host, a null or malformed Origin, and cross-site fetch metadata", () => {
    expect(check({ origin: "http://evil.example" })).toBe(403);
    expect(check({ origin: "http://127.0.0.1:8000" })).toBe(403);
    expect(check({ origin: "http://localhost:7070" })).toBe(403);
    expect(check({ origin: "null" })).toBe(403);
    expect(check({ origin: "file:///x" })).toBe(403);
    expect(check({ origin: "not a url" })).toBe(403);
    expect(check({ "sec-fetch-site": "cross-site" })).toBe(403);
    expect(check({ "sec-fetch-site": "same-site" })).toBe(403);
  });
});

describe("paths", () => {
  it("decodes segments, ignores the query and trailing slashes", () => {
    expect(parsePath("/")).toEqual([]);
    expect(parsePath("/api/runs/a%2Fb?x=1")).toEqual(["api", "runs", "a/b"]);
    expect(parsePath("/api/state/")).toEqual(["api", "state"]);
  });

  it("answers 400 for a bad % escape, a control character, an empty segment or a target that is not a path", () => {
    expect(status(() => parsePath("/api/runs/%zz"))).toBe(400);
    expect(status(() => parsePath("/api/runs/%E0%A4%A"))).toBe(400);
    expect(status(() => parsePath("/api/runs/a%00b"))).toBe(400);
    expect(status(() => parsePath("/api//state"))).toBe(400);
    expect(status(() => parsePath("http://evil.example/api/state"))).toBe(400);
    expect(status(() => parsePath("*"))).toBe(400);
  });
});

describe("tokens and sessions", () => {
  const a = "a".repeat(40);
  const b = "b".repeat(44);

  it("matches a token against every configured one, to its principal; anything else is null", () => {
    const set = new TokenSet([
      { token: a, tenants: ["*"] },
      { token: b, tenants: ["acme"] },
    ]);
    expect(set.match(a)).toEqual({ tenants: "*", label: "token 1" });
    expect(set.match(b)).toEqual({ tenants: ["acme"], label: "token 2" });
    expect(set.match(`${a}x`)).toBeNull();
    expect(set.match("")).toBeNull();
    expect(secretEquals(a, a)).toBe(true);
    expect(secretEquals(a, b)).toBe(false);
  });

  it("an operator reaches every connector; a tenant token only its tenants' (none of the YAML file's, which have no tenant)", () => {
    expect(reachesTenant({ tenants: "*", label: "t" }, undefined)).toBe(true);
    expect(reachesTenant({ tenants: ["acme"], label: "t" }, "acme")).toBe(true);
    expect(reachesTenant({ tenants: ["acme"], label: "t" }, "globex")).toBe(false);
    expect(reachesTenant({ tenants: ["acme"], label: "t" }, undefined)).toBe(false);
  });

  it("reads Bearer tokens only", () => {
    expect(bearerToken(undefined)).toBeUndefined();
    expect(bearerToken(`Bearer ${a}`)).toBe(a);
    expect(bearerToken(`bearer  ${a}`)).toBe(a);
    expect(bearerToken(`Basic ${a}`)).toBeNull();
    expect(bearerToken("Bearer")).toBeNull();
  });

  it("sessions: a 256-bit id kept by its hash, a CSRF token of their own, an absolute expiry, a bound on their number", () => {
    let now = 1_000;
    const store = new SessionStore({ ttlMs: 60_000, max: 3, now: () => now });
    const p = { tenants: "*" as const, label: "token 1" };
    const { id, session } = store.create(p);
    expect(Buffer.from(id, "base64url")).toHaveLength(32);
    expect(session.key).not.toBe(id);
    expect(Buffer.from(session.csrf, "base64url")).toHaveLength(32);
    expect(store.get(id)).toBe(session);
    expect(store.get(`${id}x`)).toBeNull();
    expect(store.get(undefined)).toBeNull();
    now += 60_000;
    expect(store.get(id)).toBeNull();
    const ids = [1, 2, 3, 4].map(() => store.create(p).id);
    expect(store.size).toBe(3);
    expect(store.get(ids[0])).toBeNull();
    expect(store.get(ids[3])).not.toBeNull();
  });

  it("the session cookie is HttpOnly, SameSite=Strict, Path=/, and Secure only over https", () => {
    expect(sessionCookie("s", "id", 3600, false)).toBe("s=id; Path=/; HttpOnly; SameSite=Strict; Max-Age=3600");
    expect(sessionCookie("s", "id", 3600, true)).toMatch(/; Secure$/);
    expect(parseCookies("a=1; s=xyz; s=other")).toEqual(
      new Map([
        ["a", "1"],
        ["s", "xyz"],
      ]),
    );
  });

  it("failed attempts: refused past the bound until the window ends, per address", () => {
    let now = 0;
    const l = new FailureLimiter({ max: 3, windowMs: 10_000, now: () => now });
    for (let i = 0; i < 3; i++) {
      expect(l.retryAfter("a")).toBe(0);
      l.fail("a");
      now += 1000;
    }
    expect(l.retryAfter("a")).toBe(7);
    expect(l.retryAfter("b")).toBe(0);
    now = 10_001;
    expect(l.retryAfter("a")).toBe(0);
  });
});

describe("the http section of the config", () => {
  const base = `kafka: { brokers: ["127.0.0.1:9092"] }
schemaRegistry: { url: "http://127.0.0.1:8080/apis/ccompat/v7" }
sink: { databaseUrl: "postgres://postgres@127.0.0.1:5432/qobra", defaultCurrency: EUR }
`;
  const token = "t".repeat(20) + "0123456789abcdef";

  it("refuses a non-loopback host without tokens, and accepts it with tokens", () => {
    expect(() => parseConfig(`${base}http: { host: 0.0.0.0 }\n`, "c", {})).toThrow(/http\.host: "0\.0\.0\.0" is not a loopback address.*http\.tokens/);
    const c = parseConfig(`${base}http: { host: 0.0.0.0, tokens: [{ token: "\${env:QOBRA_API_TOKEN}", tenants: ["*"] }] }\n`, "c", { QOBRA_API_TOKEN: token });
    expect(c.http!.tokens).toEqual([{ token, tenants: ["*"] }]);
    expect(c.http).toMatchObject({ allowedHosts: [], maxStreams: 20, maxStreamsPerSession: 4, sessionHours: 12, protectMetrics: false });
  });

  it("refuses a short token, a token without tenants and a bad tenant, never showing the token", () => {
    let err: unknown;
    try {
      parseConfig(`${base}http: { tokens: [{ token: "\${env:T}", tenants: ["*"] }] }\n`, "c", { T: "short-secret-value" });
    } catch (e) {
      err = e;
    }
    expect((err as Error).message).toMatch(/http\.tokens\[0\]\.token: is too short.*openssl rand -base64 32/);
    expect((err as Error).message).not.toContain("short-secret-value");
    expect(() => parseConfig(`${base}http: { tokens: [{ token: "${token}" }] }\n`, "c", {})).toThrow(/tokens\[0\]\.tenants: is required/);
    expect(() => parseConfig(`${base}http: { tokens: [{ token: "${token}", tenants: ["Acme!"] }] }\n`, "c", {})).toThrow(/tenants\[0\]: must be "\*"/);
    expect(() => parseConfig(`${base}http: { allowedHosts: ["http://x.example"] }\n`, "c", {})).toThrow(/allowedHosts\[0\]: must be a host name/);
  });

  it("the Content-Security-Policy allows this origin's files only: no inline script or style, no framing", () => {
    expect(CONTENT_SECURITY_POLICY).toMatch(/default-src 'self'/);
    expect(CONTENT_SECURITY_POLICY).toMatch(/frame-ancestors 'none'/);
    expect(CONTENT_SECURITY_POLICY).not.toMatch(/unsafe-inline|unsafe-eval/);
  });
});
