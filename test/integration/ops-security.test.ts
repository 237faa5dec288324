/**
 * The settings server against raw requests (issue 14, item 4; the rules: docs/security.md):
 * a forged Host (DNS rebinding) is refused on the page, the API and the stream, even with a valid
 * token; every /api route needs a token or a session, and a session's writes its CSRF token and
 * the server's own Origin; malformed paths are 400, unknown routes 404, wrong methods 405, big
 * bodies 413; event streams are bounded (in total and per session) and closed when the server
 * stops; the security headers are on every answer; failed logins are slowed and then refused.
 * Without http.tokens, `qobra-sync serve` listens on loopback only, generates an operator token
 * into a file of mode 0600, logs the file's path and never the token, and `web-token` prints it.
 * No refused request publishes a SyncRequest (the sync.requests topic's end offsets are counted).
 */
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { endOffsets } from "../../lib/kafka.ts";
import { openRuntime, type Runtime } from "../../lib/runtime.ts";
import { startOpsServer, type OpsServer } from "../../ops/server.ts";
import { bearer, loginSession, openStream, rawRequest } from "../../support/http-client.ts";
import { cli, eventually, opsFixture, sinkQuery, type OpsFixture } from "../../support/ops.ts";

const OPERATOR = `op-${"a1".repeat(20)}`;
const TENANT = `acme-${"b2".repeat(20)}`;
const MONITOR = { sampleMs: 500, dbSampleMs: 1000, ageProbe: false };

let fx: OpsFixture;
let rt: Runtime;
let server: OpsServer;
let port: number;

/** How many SyncRequests the test's prefix has received so far. */
async function requestsPublished(): Promise<number> {
  const admin = await rt.port.admin();
  return [...(await endOffsets(admin, rt.port.topics.syncRequests)).values()].reduce((a, b) => a + b, 0);
}

beforeAll(async () => {
  fx = await opsFixture(
    "sec",
    5,
    `\nhttp: { port: 0, host: 127.0.0.1, tokens: [{ token: "${OPERATOR}", tenants: ["*"] }, { token: "${TENANT}", tenants: ["acme"] }] }\n`,
  );
  rt = await openRuntime(fx.config, "test");
  server = await startOpsServer(fx.config, rt, { monitor: MONITOR, processMetrics: false, failures: { maxFailures: 6, delayMs: 20 } });
  port = server.port;
});

afterAll(async () => {
  await server?.stop();
  await rt?.close();
});

describe("Host check (DNS rebinding)", () => {
  it("refuses a request addressed to another name on the page, the API, the stream and a write, even with a valid token", async () => {
    const before = await requestsPublished();
    const evil = { host: "evil.example", ...bearer(OPERATOR) };
    for (const [method, path] of [
      ["GET", "/"],
      ["GET", "/app.js"],
      ["GET", "/api/state"],
      ["GET", "/api/stream"],
      ["GET", "/metrics"],
      ["GET", "/healthz"],
    ] as const) {
      const r = await rawRequest(port, { method, path, headers: evil });
      expect(r.status, path).toBe(421);
      expect(r.body, path).not.toContain("connectors");
    }
    const write = await rawRequest(port, {
      method: "POST",
      path: "/api/connectors/crm/sync",
      headers: { ...evil, "content-type": "application/json", origin: "http://evil.example" },
      body: '{"full":true}',
    });
    expect(write.status).toBe(421);
    expect((await rawRequest(port, { path: "/api/state", headers: { host: `evil.example:${port}`, ...bearer(OPERATOR) } })).status).toBe(421);
    expect((await rawRequest(port, { path: "/api/state", headers: bearer(OPERATOR), noHost: true })).status).toBe(400);
    expect(await requestsPublished()).toBe(before);
    // the names it serves
    for (const host of [`127.0.0.1:${port}`, `localhost:${port}`, "localhost", `[::1]:${port}`])
      expect((await rawRequest(port, { path: "/api/state", headers: { host, ...bearer(OPERATOR) } })).status, host).toBe(200);
  });
});

describe("authentication, CSRF and Origin", () => {
  it("every /api route needs a token or a session; the page's static files and the probes do not", async () => {
    for (const path of ["/api/state", "/api/session", "/api/runs/x", "/api/stream"]) {
      const r = await rawRequest(port, { path });
      expect(r.status, path).toBe(401);
      expect(r.headers["www-authenticate"]).toMatch(/^Bearer/);
    }
    const before = await requestsPublished();
    const noToken = await rawRequest(port, { method: "POST", path: "/api/connectors/crm/sync", headers: { "content-type": "application/json" }, body: "{}" });
    expect(noToken.status).toBe(401);
    const schedule = await rawRequest(port, { method: "DELETE", path: "/api/connectors/crm/schedule" });
    expect(schedule.status).toBe(401);
    expect((await rawRequest(port, { path: "/api/state", headers: bearer(`${OPERATOR}x`) })).status).toBe(401);
    expect((await rawRequest(port, { path: "/api/state", headers: { authorization: `Basic ${OPERATOR}` } })).status).toBe(401);
    expect(await requestsPublished()).toBe(before);
    for (const path of ["/", "/app.js", "/app.css", "/metrics", "/healthz"]) expect((await rawRequest(port, { path })).status, path).toBeLessThan(500);
    expect((await rawRequest(port, { path: "/" })).status).toBe(200);
  });

  it("a bearer token writes; a tenant token reaches no connector of the YAML file, in no route", async () => {
    const before = await requestsPublished();
    const ok = await rawRequest(port, {
      method: "POST",
      path: "/api/connectors/crm/sync",
      headers: { ...bearer(OPERATOR), "content-type": "application/json" },
      body: '{"full":true}',
    });
    expect(ok.status).toBe(202);
    expect(await requestsPublished()).toBe(before + 1);
    const tenant = await rawRequest(port, {
      method: "POST",
      path: "/api/connectors/crm/sync",
      headers: { ...bearer(TENANT), "content-type": "application/json" },
      body: "{}",
    });
    expect(tenant.status).toBe(404);
    // /api/state answers a tenant its part of the pipeline: none of the YAML file's connectors (no tenant), nor their topics
    const state = await rawRequest(port, { path: "/api/state", headers: bearer(TENANT) });
    expect(state.status).toBe(200);
    expect(JSON.parse(state.body)).toMatchObject({ connectors: [], lag: { partitions: [] }, dlq: { mapper: 0, sink: 0 } });
    expect(JSON.parse((await rawRequest(port, { path: "/api/session", headers: bearer(TENANT) })).body)).toMatchObject({ operator: false, tenants: ["acme"] });
    expect(await requestsPublished()).toBe(before + 1);
  });

  it("a session's writes need its CSRF token and the server's own Origin, even with the session cookie", async () => {
    const { cookie, csrf, answer } = await loginSession(port, OPERATOR);
    expect(answer.headers["set-cookie"]![0]).toMatch(
      new RegExp(`^qobra_sync_session_${port}=[A-Za-z0-9_-]{43}; Path=/; HttpOnly; SameSite=Strict; Max-Age=\\d+$`),
    );
    expect(answer.body).not.toContain(OPERATOR);
    const session = JSON.parse((await rawRequest(port, { path: "/api/session", headers: { cookie } })).body);
    expect(session).toMatchObject({ operator: true, via: "session", csrfToken: csrf });
    const write = (headers: Record<string, string>, body = '{"full":false}') =>
      rawRequest(port, { method: "POST", path: "/api/connectors/crm/sync", headers: { cookie, "content-type": "application/json", ...headers }, body });
    const before = await requestsPublished();
    expect((await write({})).status).toBe(403);
    expect((await write({ "x-csrf-token": `${csrf.slice(0, -2)}AA` })).status).toBe(403);
    expect((await write({ "x-csrf-token": csrf, origin: "http://evil.example" })).status).toBe(403);
    expect((await write({ "x-csrf-token": csrf, origin: `http://localhost:${port}` })).status).toBe(403);
    expect((await write({ "x-csrf-token": csrf, origin: "null" })).status).toBe(403);
    expect((await write({ "x-csrf-token": csrf, "sec-fetch-site": "cross-site" })).status).toBe(403);
    // a form post (what a cross-site <form> can send): no CSRF header, and not JSON
    expect((await write({ "content-type": "application/x-www-form-urlencoded" }, "full=true")).status).toBe(403);
    expect((await write({ "x-csrf-token": csrf, "content-type": "text/plain" }, '{"full":true}')).status).toBe(415);
    const schedule = await rawRequest(port, {
      method: "PUT",
      path: "/api/connectors/crm/schedule",
      headers: { cookie, "content-type": "application/json" },
      body: "{}",
    });
    expect(schedule.status).toBe(403);
    expect(await requestsPublished()).toBe(before);
    expect(await sinkQuery(`SELECT 1 FROM "${fx.sinkSchema}"."_qobra_sync_settings" WHERE key = 'schedule:crm'`).catch(() => [])).toEqual([]);
    // the same write, from the page's origin with its token, goes through
    expect((await write({ "x-csrf-token": csrf, origin: `http://127.0.0.1:${port}`, "sec-fetch-site": "same-origin" })).status).toBe(202);
    expect(await requestsPublished()).toBe(before + 1);
    // logout ends the session
    expect((await rawRequest(port, { method: "POST", path: "/api/logout", headers: { cookie, "x-csrf-token": csrf } })).status).toBe(204);
    expect((await rawRequest(port, { path: "/api/state", headers: { cookie } })).status).toBe(401);
  });

  it("a cross-origin login is refused", async () => {
    const r = await rawRequest(port, {
      method: "POST",
      path: "/api/login",
      headers: { "content-type": "application/json", origin: "http://evil.example" },
      body: JSON.stringify({ token: OPERATOR }),
    });
    expect(r.status).toBe(403);
    expect(r.headers["set-cookie"]).toBeUndefined();
  });
});

describe("paths, methods, bodies and headers", () => {
  it("400 for a malformed path, 404 for an unknown route, 405 with Allow for a wrong method", async () => {
    const auth = bearer(OPERATOR);
    for (const path of ["/api/runs/%zz", "/%", "/api/connectors/%E0%A4%A/sync", "/api/runs/a%00b"])
      expect((await rawRequest(port, { path, headers: auth })).status, path).toBe(400);
    expect((await rawRequest(port, { path: "/api/nothing", headers: auth })).status).toBe(404);
    expect((await rawRequest(port, { path: "/etc/passwd" })).status).toBe(404);
    expect(
      (await rawRequest(port, { path: "/api/connectors/nope/sync", method: "POST", headers: { ...auth, "content-type": "application/json" } })).status,
    ).toBe(404);
    const wrong = await rawRequest(port, { method: "POST", path: "/api/state", headers: auth });
    expect(wrong.status).toBe(405);
    expect(wrong.headers.allow).toBe("GET, HEAD");
    expect((await rawRequest(port, { method: "GET", path: "/api/connectors/crm/sync", headers: auth })).status).toBe(405);
  });

  it("413 for a body over the bound, declared or sent", async () => {
    const before = await requestsPublished();
    const big = Buffer.alloc(100 * 1024, 0x20);
    const r = await rawRequest(port, {
      method: "POST",
      path: "/api/connectors/crm/sync",
      headers: { ...bearer(OPERATOR), "content-type": "application/json" },
      body: Buffer.concat([Buffer.from('{"full":true,"x":"'), big, Buffer.from('"}')]),
    });
    expect(r.status).toBe(413);
    const login = await rawRequest(port, {
      method: "POST",
      path: "/api/login",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ token: "x".repeat(8000) }),
    });
    expect(login.status).toBe(413);
    expect(await requestsPublished()).toBe(before);
  });

  it("every answer carries the Content-Security-Policy and the other security headers", async () => {
    for (const [path, headers] of [
      ["/", {}],
      ["/app.js", {}],
      ["/api/state", bearer(OPERATOR)],
      ["/api/state", {}],
      ["/nothing", {}],
      ["/", { host: "evil.example" }],
    ] as const) {
      const r = await rawRequest(port, { path, headers });
      expect(r.headers["content-security-policy"], path).toMatch(/default-src 'self'.*frame-ancestors 'none'/);
      expect(r.headers["content-security-policy"]).not.toMatch(/unsafe-inline/);
      expect(r.headers["x-content-type-options"]).toBe("nosniff");
      expect(r.headers["referrer-policy"]).toBe("no-referrer");
      expect(r.headers["x-frame-options"]).toBe("DENY");
    }
    const page = await rawRequest(port, { path: "/" });
    expect(page.body).not.toMatch(/<script>|<style>|\sstyle="|\son[a-z]+="/i);
    expect(page.body).toContain('<script type="module" src="/app.js">');
  });
});

describe("event streams", () => {
  it("are bounded per session (429) and in total (503), need the server's Origin, and end when the server stops", async () => {
    const config = { ...fx.config, http: { ...fx.config.http!, maxStreams: 3, maxStreamsPerSession: 2, protectMetrics: true } };
    const s = await startOpsServer(config, rt, { port: 0, monitor: MONITOR, processMetrics: false });
    let stopped = false;
    try {
      const a1 = await openStream(s.port, bearer(OPERATOR));
      const a2 = await openStream(s.port, bearer(OPERATOR));
      expect([a1.status, a2.status]).toEqual([200, 200]);
      const a3 = await openStream(s.port, bearer(OPERATOR));
      expect(a3.status).toBe(429);
      const { cookie } = await loginSession(s.port, OPERATOR);
      expect((await openStream(s.port, { cookie, origin: "http://evil.example" })).status).toBe(403);
      const b1 = await openStream(s.port, { cookie, origin: `http://127.0.0.1:${s.port}` });
      expect(b1.status).toBe(200);
      const b2 = await openStream(s.port, { cookie });
      expect(b2.status).toBe(503);
      // a closed stream frees its place
      a1.close();
      await eventually(async () => (await openStream(s.port, bearer(OPERATOR))).status === 200, { what: "a stream after one closed" });
      // http.protectMetrics: the probes need a token too,
      expect((await rawRequest(s.port, { path: "/metrics" })).status).toBe(401);
      expect((await rawRequest(s.port, { path: "/healthz", headers: bearer(OPERATOR) })).status).not.toBe(401);
      // an operator's: they are pipeline-wide, every tenant's connectors
      expect((await rawRequest(s.port, { path: "/metrics", headers: bearer(TENANT) })).status).toBe(403);
      await s.stop();
      stopped = true;
      await Promise.all(
        [a2.ended, b1.ended].map((p) => Promise.race([p, new Promise((_, rej) => setTimeout(() => rej(new Error("stream still open")), 5000))])),
      );
    } finally {
      if (!stopped) await s.stop();
    }
  });
});

describe("failed logins", () => {
  it("are slowed, then refused for the address (429 with Retry-After), even with the right token", async () => {
    const attempt = (token: string) =>
      rawRequest(port, { method: "POST", path: "/api/login", headers: { "content-type": "application/json" }, body: JSON.stringify({ token }) });
    const statuses: number[] = [];
    for (let i = 0; i < 8; i++) statuses.push((await attempt(`wrong-${i}`)).status);
    expect(statuses.slice(0, 3)).toEqual([401, 401, 401]);
    expect(statuses).toContain(429);
    const locked = await attempt(OPERATOR);
    expect(locked.status).toBe(429);
    expect(Number(locked.headers["retry-after"])).toBeGreaterThan(0);
    expect((await rawRequest(port, { path: "/api/state", headers: bearer(OPERATOR) })).status).toBe(429);
  });
});

describe("without http.tokens", () => {
  it("`serve` listens on loopback only, writes a generated token to a 0600 file, logs its path but never the token; `web-token` prints it", async () => {
    const dir = mkdtempSync(join(tmpdir(), "qobra-sec-"));
    const yamlWithoutHttp = fx.yaml.replace(/\nhttp: .*\n/, "\n");
    const file = join(dir, "config.yaml");
    expect(yamlWithoutHttp).not.toContain("tokens");
    writeFileSync(file, yamlWithoutHttp);
    const env = { ...process.env, QOBRA_SYNC_STACK_DIR: join(dir, "state"), QOBRA_SYNC_LOG_LEVEL: "info" };
    const child = spawn(process.execPath, ["bin/qobra-sync.js", "-c", file, "serve", "--port", "0"], { env });
    let out = "";
    child.stdout.on("data", (c: Buffer) => (out += c.toString()));
    child.stderr.on("data", (c: Buffer) => (out += c.toString()));
    try {
      const url = await eventually(async () => /integration settings: (http:\/\/127\.0\.0\.1:\d+)\//.exec(out)?.[1], {
        timeoutMs: 60_000,
        what: "serve to start",
      });
      const servePort = Number(new URL(url).port);
      const tokenFile = join(dir, "state", `http-token-${servePort}`);
      await eventually(async () => out.includes(tokenFile), { what: "the token file's path in the output" });
      expect(statSync(tokenFile).mode & 0o777).toBe(0o600);
      const token = readFileSync(tokenFile, "utf8").trim();
      expect(Buffer.from(token, "base64url")).toHaveLength(32);
      expect(out).toMatch(/http\.tokens is not set: listening on loopback only/);
      expect((await rawRequest(servePort, { path: "/api/state", headers: bearer(token) })).status).toBe(200);
      expect((await rawRequest(servePort, { path: "/api/state", headers: bearer(OPERATOR) })).status).toBe(401);
      const printed = await new Promise<string>((resolve) => {
        const c = spawn(process.execPath, ["bin/qobra-sync.js", "web-token", "--port", String(servePort)], { env: { ...env, QOBRA_SYNC_LOG_LEVEL: "silent" } });
        let t = "";
        c.stdout.on("data", (d: Buffer) => (t += d.toString()));
        c.on("close", () => resolve(t.trim()));
      });
      expect(printed).toBe(token);
      expect(out).not.toContain(token);
    } finally {
      child.kill("SIGTERM");
      await new Promise((r) => child.once("close", r));
      rmSync(dir, { recursive: true, force: true });
    }
    // a non-loopback address without tokens is refused before anything listens
    const wide = await cli(["serve", "--port", "0", "--host", "0.0.0.0"], yamlWithoutHttp);
    expect(wide.code).toBe(2);
    expect(wide.stderr).toMatch(/not a loopback address.*http\.tokens/);
  });
});
