/**
 * The connectors API (ops/connectors-api.ts) against the whole pipeline run in-process by
 * `runRoles` (producer, mapper, sink, scheduler, and the settings server): a connector PUT for a
 * tenant syncs without any restart and its rows land in the tenant's sink schema; an edited field
 * list adds a column; a removed connector is no longer scheduled nor shown; a tenant's token
 * reaches only its tenant (404 for everything of another's), an operator's reaches all, a page
 * session's write needs its CSRF token and a cross-site Origin is refused; the entry is validated
 * like the file's, with each problem naming its field; and the password given never comes back:
 * not in an answer, not in /api/state, not in the log, not in the connectors topic. A tenant's
 * /api/state (and its stream) is its connectors' part of the pipeline, with no id, run or table of
 * another tenant in it, and another tenant's run is 404.
 */
import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { request } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import schedule from "node-schedule";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { type RunHandle, runRoles } from "../../app/roles.ts";
import type { Config } from "../../lib/config.ts";
import { followTopics } from "../../lib/follow-topic.ts";
import { logger, logTo } from "../../lib/log.ts";
import { openRuntime, type Runtime } from "../../lib/runtime.ts";
import { sinkSchemaOf } from "../../lib/tenants.ts";
import { type RawAnswer, bearer, loginSession, rawRequest } from "../../support/http-client.ts";
import { adminUrl, dbUrl, newTokenKey, testConfig } from "../../support/env.ts";
import { SOURCE_DB, cli, eventually, freePort, opsFixture, sinkQuery, type OpsFixture } from "../../support/ops.ts";

// The change lines are at info level (the tests' default is warn): set before the logger is made.
vi.hoisted(() => {
  process.env.QOBRA_SYNC_LOG_LEVEL = "info";
});

const OPERATOR = `op-${randomBytes(20).toString("hex")}`;
const ACME = `acme-${randomBytes(20).toString("hex")}`;
const GLOBEX = `globex-${randomBytes(20).toString("hex")}`;
/** The source password the tests PUT (the local PostgreSQL trusts, so any password connects). */
const PASSWORD = `pw-${randomBytes(16).toString("hex")}`;
const ROWS = 10;

let fx: OpsFixture;
let config: Config;
let rt: Runtime;
let pipeline: RunHandle;
let port: number;
let logDir: string;
let logFile: string;
let yamlText: string;
const savedKey = process.env.QOBRA_SYNC_TOKEN_KEY;
/** Every answer of the server to the tests: none may hold the password. */
const answers: RawAnswer[] = [];

/** The first `state` event of /api/stream for these headers. */
function firstStreamEvent(port: number, headers: Record<string, string>): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = request({ host: "127.0.0.1", port, path: "/api/stream", headers }, (res) => {
      let text = "";
      res.setEncoding("utf8");
      res.on("data", (chunk: string) => {
        text += chunk;
        if (res.statusCode !== 200 || /event: state\ndata: .*\n\n/.test(text)) {
          req.destroy();
          resolve(text);
        }
      });
      res.on("end", () => resolve(text));
    });
    req.on("error", reject);
    req.end();
  });
}

async function call(method: string, path: string, headers: Record<string, string>, body?: unknown): Promise<RawAnswer & { json: () => any }> {
  const r = await rawRequest(port, {
    method,
    path,
    headers: body === undefined ? headers : { "content-type": "application/json", ...headers },
    body: body === undefined ? undefined : typeof body === "string" ? body : JSON.stringify(body),
  });
  answers.push(r);
  return { ...r, json: () => JSON.parse(r.body) };
}

const source = new URL(adminUrl);
/** A connector entry of tenant acme reading the fixture's table, with the given fields. */
const entry = (fields: Record<string, unknown>) => ({
  type: "postgres",
  connection: {
    host: source.hostname,
    port: Number(source.port || 5432),
    database: SOURCE_DB,
    user: decodeURIComponent(source.username || "postgres"),
    password: PASSWORD,
    allowSuperuser: true,
  },
  timestampTimezone: "Europe/Paris",
  // 03:00 UTC: armed by the scheduler, never due while the test runs
  schedule: { hours: [3], timezone: "UTC" },
  tables: [{ name: "deals", source: `public.${fx.table}`, idColumn: "id", nameColumn: "title", fields }],
});

const ACME_CRM = "/api/tenants/acme/connectors/crm";
/** Jobs armed by the scheduler in this process whose next run is at 03:00 UTC (the API connector's). */
const armedAtThree = () =>
  Object.values(schedule.scheduledJobs).filter((j) => {
    const next = j.nextInvocation();
    return next !== null && new Date(next.getTime()).getUTCHours() === 3;
  }).length;

beforeAll(async () => {
  process.env.QOBRA_SYNC_TOKEN_KEY = newTokenKey();
  logDir = mkdtempSync(join(tmpdir(), "qobra-capi-"));
  logFile = join(logDir, "log.jsonl");
  logTo({ file: logFile });
  port = await freePort();
  fx = await opsFixture(
    "capi",
    ROWS,
    `
  - id: legacy
    tenant: acme
    type: postgres
    connection: { url: "${dbUrl(SOURCE_DB)}", allowSuperuser: true }
    schedule: { enabled: false }
    tables:
      - name: deals
        source: public.${"TABLE"}
        idColumn: id
        nameColumn: title
        fields: { closed_on: date }
http:
  port: ${port}
  host: 127.0.0.1
  tokens:
    - { token: "${OPERATOR}", tenants: ["*"] }
    - { token: "${ACME}", tenants: ["acme"] }
    - { token: "${GLOBEX}", tenants: ["globex"] }
# the source database is on this machine: open it to the tenants' connectors (refused by default)
tenantNetwork: { allow: ["127.0.0.1", "::1", "localhost"] }
`,
  );
  // Unique tenant schemas per run; the file's crm scheduled never (only the API's connector is).
  const yaml = fx.yaml
    .replace("public.TABLE", `public.${fx.table}`)
    .replace(`  schema: ${fx.sinkSchema}\n`, `  schema: ${fx.sinkSchema}\n  tenantSchema: ${fx.sinkSchema}_<tenant>\n`)
    .replace("  - id: crm\n    type: postgres\n", "  - id: crm\n    type: postgres\n    schedule: { enabled: false }\n");
  config = testConfig(yaml);
  yamlText = yaml;
  expect(config.sink.tenantSchema).toBe(`${fx.sinkSchema}_<tenant>`);
  rt = await openRuntime(config, "test");
  pipeline = await runRoles(config, ["producer", "mapper", "sink", "scheduler"]);
}, 120_000);

afterAll(async () => {
  await pipeline?.stop();
  await rt?.close();
  logTo("stdout");
  if (logDir) rmSync(logDir, { recursive: true, force: true });
  if (savedKey === undefined) delete process.env.QOBRA_SYNC_TOKEN_KEY;
  else process.env.QOBRA_SYNC_TOKEN_KEY = savedKey;
});

describe("connectors through the API", () => {
  const acmeSchema = () => sinkSchemaOf(config.sink, { tenant: "acme" });
  /** The rows of acme's crm__deals (or those with `column` set); 0 while the table does not exist. */
  const rows = async (column?: string) => {
    const r = await sinkQuery<{ n: string }>(`SELECT count(${column ? `"${column}"` : "*"}) AS n FROM "${acmeSchema()}"."crm__deals"`).catch(() => [
      { n: "0" },
    ]);
    return Number(r[0]!.n);
  };

  it("a connector PUT for a tenant syncs without a restart, into the tenant's schema", async () => {
    const created = await call("PUT", ACME_CRM, bearer(ACME), entry({ amount: { type: "amount", currencyColumn: "currency" } }));
    expect(created.status, created.body).toBe(201);
    expect(created.headers.location).toBe(ACME_CRM);
    const view = created.json();
    expect(view).toMatchObject({ id: "crm", tenant: "acme", pipelineId: "acme.crm", type: "postgres", readOnly: false, updatedBy: "token 2" });
    expect(view.entry.connection.password).toBe("********");
    expect(view.entry.connection.host).toBe(source.hostname);
    expect(view.entry.tables[0].name).toBe("deals");

    const listed = await call("GET", "/api/tenants/acme/connectors", bearer(ACME));
    expect(listed.status).toBe(200);
    const ids = listed.json().connectors.map((c: { id: string; readOnly: boolean }) => [c.id, c.readOnly]);
    expect(ids).toEqual([
      ["crm", false],
      ["legacy", true],
    ]);
    expect(listed.json().problems).toEqual([]);
    // the file's crm (no tenant) is not acme's
    expect((await call("GET", "/api/tenants/acme/connectors/crm", bearer(ACME))).json().readOnly).toBe(false);

    const check = await call("POST", `${ACME_CRM}/check`, bearer(ACME));
    expect(check.status, check.body).toBe(200);
    expect(check.json()).toMatchObject({ connector: "crm", tenant: "acme", ok: true, tables: [{ table: "deals", ok: true }] });

    const sync = await call("POST", `${ACME_CRM}/sync`, bearer(ACME), { full: true });
    expect(sync.status, sync.body).toBe(202);
    expect(sync.json().runId).toMatch(/^[0-9a-f-]{36}$/);
    await eventually(async () => (await rows()) === ROWS, { timeoutMs: 90_000, what: `${ROWS} rows in ${acmeSchema()}.crm__deals` });
    // the amounts are there, in the tenant's schema; nothing of acme went to the sink's own schema
    expect(await rows("amount")).toBe(ROWS);
    const stray = await sinkQuery(`SELECT 1 FROM information_schema.tables WHERE table_schema = $1 AND table_name LIKE '%acme%'`, [fx.sinkSchema]);
    expect(stray).toEqual([]);
  }, 150_000);

  it("a tenant's connector at an address of the pipeline's network is refused (400, the field named), unless tenantNetwork.allow lists it", async () => {
    // 127.0.0.1 is listed in this config's tenantNetwork.allow (the first test stored a connector there); the rest of loopback is not.
    for (const host of ["127.0.0.2", "2130706434", "0x7f000002", "[::ffff:127.0.0.2]", "169.254.169.254"]) {
      const refused = await call("PUT", "/api/tenants/acme/connectors/inside", bearer(ACME), {
        ...entry({}),
        connection: { ...entry({}).connection, host },
      });
      expect(refused.status, `${host}: ${refused.body}`).toBe(400);
      expect(refused.json().problems).toEqual([
        { field: "connection.host", message: expect.stringMatching(/is a (loopback|link-local .*) address, refused: .*tenantNetwork\.allow/) },
      ]);
      expect(refused.body).not.toContain(PASSWORD);
    }
    const url = `postgres://u:${PASSWORD}@127.0.0.2:5432/${SOURCE_DB}`;
    const byUrl = await call("PUT", "/api/tenants/acme/connectors/inside", bearer(ACME), { ...entry({}), connection: { url } });
    expect(byUrl.status, byUrl.body).toBe(400);
    expect(byUrl.json().problems[0].field).toBe("connection.url");
    expect(byUrl.body).not.toContain(PASSWORD);
    expect((await call("GET", "/api/tenants/acme/connectors/inside", bearer(ACME))).status).toBe(404);
  }, 60_000);

  it("an edited field list adds a column without reloading the mapper or the sink, the stored password kept through the mask", async () => {
    const logFrom = readFileSync(logFile, "utf8").length;
    const current = (await call("GET", ACME_CRM, bearer(ACME))).json();
    const edited = { ...current.entry, tables: [{ ...current.entry.tables[0], fields: { ...current.entry.tables[0].fields, closed_on: "date" } }] };
    expect(edited.connection.password).toBe("********");
    const put = await call("PUT", ACME_CRM, bearer(ACME), edited);
    expect(put.status, put.body).toBe(200);
    expect(put.json().entry.tables[0].fields.closed_on).toBe("date");
    const sync = await call("POST", `${ACME_CRM}/sync`, bearer(ACME), { full: true });
    expect(sync.status, sync.body).toBe(202);
    await eventually(async () => (await rows("closed_on")) === ROWS, { timeoutMs: 90_000, what: "closed_on filled in every row" });
    // The mapper maps with the connector's current fields: no rejoin of any group for every tenant.
    expect(readFileSync(logFile, "utf8").slice(logFrom)).not.toMatch(/reloading the (mapper|sink) role/);
    // the check connects with the stored password (kept, not replaced by the mask)
    expect((await call("POST", `${ACME_CRM}/check`, bearer(ACME))).json().ok).toBe(true);
  }, 150_000);

  it("the CLI syncs, checks and replays a connector given through the API by its pipeline id, and names what it cannot find", async () => {
    const done = await cli(["sync", "acme.crm", "--full", "--wait", "--json"], yamlText);
    expect(done.code, done.stderr).toBe(0);
    expect(JSON.parse(done.stdout.trim().split("\n").at(-1)!)).toMatchObject({ connector: "acme.crm", status: "completed" });
    const missing = await cli(["sync", "acme.nope"], yamlText);
    expect(missing.code).not.toBe(0);
    expect(missing.stderr).toMatch(/no connector "acme.nope": neither in the config file .* nor among the connectors given through the API/);

    // check and replay find it the same way (app/connectors.ts lookupConnector), and name what they cannot find
    const check = await cli(["check", "acme.crm", "--json"], yamlText);
    expect(check.code, check.stderr).toBe(0);
    expect(JSON.parse(check.stdout)).toEqual([expect.objectContaining({ table: "deals", ok: true })]);
    const checkMissing = await cli(["check", "acme.nope"], yamlText);
    expect(checkMissing.code).not.toBe(0);
    expect(checkMissing.stderr).toMatch(
      /no connector "acme.nope": neither in the config file \(crm, acme.legacy\) nor among the connectors given through the API \(topic \S+\)/,
    );
    const replayed = await cli(["replay", "acme.crm", "--json"], yamlText);
    expect(replayed.code, replayed.stderr).toBe(0);
    expect(JSON.parse(replayed.stdout.trim().split("\n").at(-1)!)).toMatchObject({ rows: { deals: { live: ROWS, deleted: 0 } } });
    const replayMissing = await cli(["replay", "globex.crm"], yamlText);
    expect(replayMissing.code).not.toBe(0);
    expect(replayMissing.stderr).toMatch(/no connector "globex.crm": neither in the config file .* nor among the connectors given through the API/);
  }, 150_000);

  it("refuses a bad entry with each problem naming its field, ${env:} and id/tenant in the body, and the file's connectors", async () => {
    const bad = await call("PUT", "/api/tenants/acme/connectors/other", bearer(ACME), {
      ...entry({}),
      connection: { ...entry({}).connection, port: "5432x" },
      tables: [{ name: "deals", idColumn: "id" }],
      surprise: true,
    });
    expect(bad.status, bad.body).toBe(400);
    const fields = bad.json().problems.map((p: { field: string }) => p.field);
    expect(fields).toEqual(expect.arrayContaining(["connection.port", "tables[0].source", "tables[0].nameColumn", "(top level)"]));
    expect(bad.json().problems.every((p: { message: string }) => p.message.length > 0)).toBe(true);

    const env = await call("PUT", "/api/tenants/acme/connectors/other", bearer(ACME), {
      ...entry({}),
      connection: { ...entry({}).connection, password: "${env:QOBRA_SYNC_TOKEN_KEY}" },
      id: "x",
    });
    expect(env.status).toBe(400);
    expect(env.json().problems.map((p: { field: string }) => p.field)).toEqual(expect.arrayContaining(["connection.password", "id"]));
    expect(env.body).not.toContain(process.env.QOBRA_SYNC_TOKEN_KEY!);
    expect((await call("GET", "/api/tenants/acme/connectors/other", bearer(ACME))).status).toBe(404);

    for (const [method, body] of [
      ["PUT", entry({})],
      ["DELETE", undefined],
    ] as const) {
      const r = await call(method, "/api/tenants/acme/connectors/legacy", bearer(ACME), body);
      expect(r.status, `${method} legacy`).toBe(409);
    }
    expect((await call("GET", "/api/tenants/acme/connectors/legacy", bearer(ACME))).json()).toMatchObject({
      readOnly: true,
      entry: { connection: { url: "********" } },
    });
    expect((await call("GET", "/api/tenants/ACME/connectors", bearer(OPERATOR))).status).toBe(400);
    expect((await call("GET", "/api/tenants/acme/connectors/Bad.Id", bearer(OPERATOR))).status).toBe(400);
    expect((await call("POST", `${ACME_CRM}/sync`, bearer(ACME), { full: "yes" })).status).toBe(400);
    expect((await call("PUT", ACME_CRM, bearer(ACME), "[1]")).status).toBe(400);
  });

  it("a tenant's token reaches only its tenant (404 for the rest); an operator's all; sessions need their CSRF token; cross-site is refused", async () => {
    const before = (await call("GET", ACME_CRM, bearer(ACME))).json();
    for (const [method, path, body] of [
      ["GET", "/api/tenants/acme/connectors", undefined],
      ["GET", ACME_CRM, undefined],
      ["PUT", ACME_CRM, entry({})],
      ["PUT", "/api/tenants/acme/connectors/new-one", { not: "valid" }],
      ["DELETE", ACME_CRM, undefined],
      ["POST", `${ACME_CRM}/sync`, { full: true }],
      ["POST", `${ACME_CRM}/check`, undefined],
    ] as const) {
      const r = await call(method, path, bearer(GLOBEX), body);
      expect(r.status, `${method} ${path}`).toBe(404);
      expect(r.body).not.toContain("postgres");
    }
    // nothing changed, and globex sees its own (empty) list
    expect((await call("GET", ACME_CRM, bearer(ACME))).json().updatedAt).toBe(before.updatedAt);
    expect((await call("GET", "/api/tenants/globex/connectors", bearer(GLOBEX))).json()).toEqual({ connectors: [], problems: [] });
    // the file's connector without a tenant stays the operator's (the older route)
    expect((await call("POST", "/api/connectors/crm/sync", bearer(ACME), {})).status).toBe(404);
    // the older route serves stored connectors by their pipeline id, to their tenant
    expect((await call("POST", "/api/connectors/acme.crm/sync", bearer(GLOBEX), {})).status).toBe(404);

    const viaOldRoute = await call("POST", "/api/connectors/acme.crm/sync", bearer(OPERATOR), {});
    expect(viaOldRoute.status, viaOldRoute.body).toBe(202);
    expect(viaOldRoute.json().connector).toBe("acme.crm");
    const op = await call("GET", ACME_CRM, bearer(OPERATOR));
    expect(op.status).toBe(200);
    expect((await call("GET", "/api/tenants/globex/connectors", bearer(OPERATOR))).status).toBe(200);

    const session = await loginSession(port, ACME);
    const page = { cookie: session.cookie, origin: `http://127.0.0.1:${port}` };
    expect((await call("GET", ACME_CRM, page)).status).toBe(200);
    const noCsrf = await call("PUT", ACME_CRM, page, before.entry);
    expect(noCsrf.status).toBe(403);
    const wrongCsrf = await call("DELETE", ACME_CRM, { ...page, "x-csrf-token": "nope" });
    expect(wrongCsrf.status).toBe(403);
    const withCsrf = await call("PUT", ACME_CRM, { ...page, "x-csrf-token": session.csrf }, before.entry);
    expect(withCsrf.status, withCsrf.body).toBe(200);
    const crossSite = await call("PUT", ACME_CRM, { ...bearer(ACME), origin: "http://evil.example" }, before.entry);
    expect(crossSite.status).toBe(403);
    const crossSiteSession = await call("POST", `${ACME_CRM}/sync`, { ...page, origin: "http://evil.example", "x-csrf-token": session.csrf }, {});
    expect(crossSiteSession.status).toBe(403);
    // a form post (not JSON) is refused before anything is read
    const form = await call("PUT", ACME_CRM, { ...bearer(ACME), "content-type": "application/x-www-form-urlencoded" }, "type=postgres");
    expect(form.status).toBe(415);
    expect((await call("GET", ACME_CRM, bearer(ACME))).json().updatedBy).toBe("token 2");
  });

  it("a tenant's /api/state, stream and run route show its connectors' pipeline only; an operator's everything", async () => {
    // globex's own connector, synced: its ids, run and tables must never reach acme (nor acme's globex)
    const ledger = "/api/tenants/globex/connectors/ledger";
    const base = entry({});
    const put = await call("PUT", ledger, bearer(GLOBEX), {
      ...base,
      schedule: { enabled: false },
      tables: [{ ...base.tables[0], name: "invoices" }],
    });
    expect(put.status, put.body).toBe(201);
    const sync = await call("POST", `${ledger}/sync`, bearer(GLOBEX), { full: true });
    expect(sync.status, sync.body).toBe(202);
    const globexRun: string = sync.json().runId;
    const globexSchema = sinkSchemaOf(config.sink, { tenant: "globex" });
    await eventually(
      async () => {
        const r = await sinkQuery<{ n: string }>(`SELECT count(*) AS n FROM "${globexSchema}"."ledger__invoices"`).catch(() => [{ n: "0" }]);
        return Number(r[0]!.n) === ROWS;
      },
      { timeoutMs: 90_000, what: `${ROWS} rows in ${globexSchema}.ledger__invoices` },
    );
    type State = {
      connectors: Array<{ id: string; tenant: string | null; runs: Array<{ runId: string }>; tables: Array<{ relation: string }> }>;
      lag: { groups: Array<{ group: string; clients: string[] }>; partitions: Array<{ connector: string | null; topic: string }> };
    };
    const stateOf = async (token: string) => {
      const r = await call("GET", "/api/state", bearer(token));
      expect(r.status, r.body).toBe(200);
      return { body: r.body, state: r.json() as State };
    };
    // both connectors' sink partitions sampled, and globex's run in the operator's view
    const op = await eventually(
      async () => {
        const o = await stateOf(OPERATOR);
        const tenants = new Set(o.state.lag.partitions.filter((p) => p.topic.includes(".mapped.")).map((p) => p.connector));
        const run = o.state.connectors.find((c) => c.id === "globex.ledger")?.runs.some((r) => r.runId === globexRun);
        return tenants.has("acme.crm") && tenants.has("globex.ledger") && run ? o : null;
      },
      { what: "both tenants' lag and globex's run in the operator's /api/state" },
    );
    expect(op.state.connectors.map((c) => c.id)).toEqual(expect.arrayContaining(["crm", "acme.legacy", "acme.crm", "globex.ledger"]));
    const acmeRun = op.state.connectors.find((c) => c.id === "acme.crm")!.runs[0]!.runId;
    expect(op.body).toContain(globexRun);
    expect(op.state.lag.groups.some((g) => g.clients.length > 0)).toBe(true);

    // acme: its connectors (the file's tenanted one too), runs and lag; nothing of globex nor of the file's crm
    const acme = await stateOf(ACME);
    expect(acme.state.connectors.map((c) => c.id).sort()).toEqual(["acme.crm", "acme.legacy"]);
    expect(acme.state.connectors.every((c) => c.tenant === "acme")).toBe(true);
    expect(acme.state.connectors.find((c) => c.id === "acme.crm")!.runs.map((r) => r.runId)).toContain(acmeRun);
    expect(acme.state.lag.partitions.length).toBeGreaterThan(0);
    expect(acme.state.lag.partitions.every((p) => p.connector?.startsWith("acme."))).toBe(true);
    expect(acme.state.lag.groups.length).toBe(3);
    expect(acme.state.lag.groups.every((g) => g.clients.length === 0)).toBe(true);
    for (const leak of ["globex", "ledger", "invoices", globexRun, globexSchema, rt.port.topics.raw("crm")]) expect(acme.body).not.toContain(leak);
    // and globex the other way round
    const globex = await stateOf(GLOBEX);
    expect(globex.state.connectors.map((c) => c.id)).toEqual(["globex.ledger"]);
    expect(globex.state.connectors[0]!.tables[0]!.relation).toContain(globexSchema);
    for (const leak of ["acme", acmeRun]) expect(globex.body).not.toContain(leak);

    // the event stream sends each caller its own view
    const first = await firstStreamEvent(port, bearer(ACME));
    expect(first).toContain("acme.crm");
    expect(first).not.toContain("globex");

    // one run: its tenant and operators; 404 across tenants, like a run that does not exist
    expect((await call("GET", `/api/runs/${globexRun}`, bearer(GLOBEX))).status).toBe(200);
    expect((await call("GET", `/api/runs/${globexRun}`, bearer(OPERATOR))).status).toBe(200);
    const across = await call("GET", `/api/runs/${globexRun}`, bearer(ACME));
    expect(across.status).toBe(404);
    expect(across.body).toBe(
      (await call("GET", "/api/runs/00000000-0000-0000-0000-000000000000", bearer(ACME))).body.replace("00000000-0000-0000-0000-000000000000", globexRun),
    );
    expect((await call("GET", `/api/runs/${acmeRun}`, bearer(ACME))).status).toBe(200);
    expect((await call("GET", `/api/runs/${acmeRun}`, bearer(GLOBEX))).status).toBe(404);

    expect((await call("DELETE", ledger, bearer(GLOBEX))).status).toBe(204);
  }, 150_000);

  it("a removed connector is no longer scheduled nor shown; its rows stay", async () => {
    await eventually(async () => armedAtThree() === 1, { what: "the API connector's schedule armed" });
    const state = async () => (await call("GET", "/api/state", bearer(OPERATOR))).json() as { connectors: Array<{ id: string }> };
    expect((await state()).connectors.map((c) => c.id)).toContain("acme.crm");

    const removed = await call("DELETE", ACME_CRM, bearer(ACME));
    expect(removed.status, removed.body).toBe(204);
    expect((await call("GET", ACME_CRM, bearer(ACME))).status).toBe(404);
    expect((await call("DELETE", ACME_CRM, bearer(ACME))).status).toBe(404);
    expect((await call("POST", `${ACME_CRM}/sync`, bearer(ACME), {})).status).toBe(404);
    expect((await call("GET", "/api/tenants/acme/connectors", bearer(ACME))).json().connectors.map((c: { id: string }) => c.id)).toEqual(["legacy"]);
    expect((await state()).connectors.map((c) => c.id)).not.toContain("acme.crm");
    await eventually(async () => armedAtThree() === 0, { what: "the removed connector's schedule disarmed" });
    // removing the data is a separate action: the table and its rows stay
    expect(await rows()).toBe(ROWS);
  });

  it("the password never comes back: not in an answer, /api/state, the log, nor in clear in the connectors topic", async () => {
    const state = await call("GET", "/api/state", bearer(OPERATOR));
    expect(state.status).toBe(200);
    expect(answers.length).toBeGreaterThan(30);
    for (const a of answers) expect(a.body).not.toContain(PASSWORD);

    const values: string[] = [];
    const follower = await followTopics(rt.port, {
      topics: [rt.port.topics.connectors],
      groupPrefix: `${config.topicPrefix}-capi-scan`,
      from: "beginning",
      upToEnd: "stop",
      onBatch: (b) => {
        for (const m of b.messages) values.push(m.value ? m.value.toString("utf8") : "(tombstone)");
      },
    });
    await follower.caughtUp;
    await follower.stop();
    expect(values.filter((v) => v.includes('"password":"enc:v1:')).length).toBeGreaterThanOrEqual(3);
    expect(values).toContain("(tombstone)");
    for (const v of values) expect(v).not.toContain(PASSWORD);

    logger.flush();
    await new Promise((r) => setTimeout(r, 500));
    const log = readFileSync(logFile, "utf8");
    expect(log).toContain("connector created through the API");
    expect(log).toContain("connector replaced through the API");
    expect(log).toContain("connector removed through the API");
    expect(log).not.toContain(PASSWORD);
  });
});
