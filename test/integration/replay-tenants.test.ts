/**
 * Replay without stopping anyone: connector A is replayed, started through
 * `POST /api/connectors/<A>/replay`, while syncs of connector B (same pipeline, same mapper and
 * sink) keep being requested and land before the replay ends. A's sink table, dropped before, is
 * complete after, with no duplicate; A changed at its source during the replay, and both its sink
 * rows and its compacted mapped topic end on the newest versions (the replay's catch-up rounds).
 * A and B have no tenant (their sink tables stay in the sink schema); a tenant's connector is
 * replayed by its tenant's path, which a token of another tenant does not reach.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runRoles, type RunHandle } from "../../app/roles.ts";
import { startOpsServer, type OpsServer } from "../../ops/server.ts";
import type { RunView } from "../../ops/runs.ts";
import { openRuntime, type Runtime } from "../../lib/runtime.ts";
import { readToEnd } from "../../lib/topic-scan.ts";
import { bearer, rawRequest } from "../../support/http-client.ts";
import { dbUrl, withDb } from "../../support/env.ts";
import { syncAndWait } from "../../support/pipeline.ts";
import { eventually, opsFixture, sinkQuery, SOURCE_DB, type OpsFixture } from "../../support/ops.ts";

const OPERATOR = `op-${"c3".repeat(20)}`;
/** A token of another tenant than the test's tenant connector's. */
const STRANGER = `st-${"d4".repeat(20)}`;
const TENANT = `t${Math.random().toString(36).slice(2, 8)}`;
/** Enough rows for A's replay to outlast a few syncs of B. */
const A_ROWS = 20_000;

let fx: OpsFixture;
let rt: Runtime;
let pipeline: RunHandle | undefined;
let server: OpsServer;
let bTable: string;

type Row = { _external_id: string; _name: string | null; _deleted_at: Date | null; _version: string };
const rowsOf = (relation: string) => sinkQuery<Row>(`SELECT _external_id, _name, _deleted_at, _version::text FROM ${relation} ORDER BY _external_id`);

async function api(method: string, path: string, body?: unknown, token = OPERATOR) {
  const r = await rawRequest(server.port, {
    method,
    path,
    headers: { ...bearer(token), ...(body === undefined ? {} : { "content-type": "application/json" }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: r.status, json: () => JSON.parse(r.body) as Record<string, unknown> };
}

/** A PostgreSQL connector entry (YAML, under `connectors:`) reading table `table` of the source database. */
const pgConnector = (id: string, table: string, tenant?: string) => `  - id: ${id}
${tenant === undefined ? "" : `    tenant: ${tenant}\n`}    type: postgres
    connection: { url: "${dbUrl(SOURCE_DB)}", allowSuperuser: true }
    tables:
      - name: deals
        source: public.${table}
        idColumn: id
        nameColumn: title
        fields: { amount: amount }
`;

beforeAll(async () => {
  const b = `b_${Math.random().toString(36).slice(2, 10)}`;
  fx = await opsFixture(
    "rpt",
    A_ROWS,
    `
${pgConnector("other", b)}${pgConnector("crm", b, TENANT)}http: { port: 0, host: 127.0.0.1, tokens: [{ token: "${OPERATOR}", tenants: ["*"] }, { token: "${STRANGER}", tenants: ["zz"] }] }
`,
  );
  bTable = b;
  await withDb(SOURCE_DB, (c) =>
    c.query(`CREATE TABLE public.${bTable} (id bigint PRIMARY KEY, title text NOT NULL, amount numeric(18,4));
      INSERT INTO public.${bTable} SELECT g, 'B ' || g, g FROM generate_series(1, 10) g;`),
  );
  rt = await openRuntime(fx.config, "test");
  pipeline = await runRoles({ ...fx.config, http: undefined }, ["producer", "mapper", "sink"]);
  server = await startOpsServer(fx.config, rt, { monitor: { sampleMs: 300, dbSampleMs: 1000, ageProbe: false }, processMetrics: false });
});

afterAll(async () => {
  await server?.stop();
  await pipeline?.stop();
  await rt?.close();
  if (bTable) await withDb(SOURCE_DB, (c) => c.query(`DROP TABLE IF EXISTS public.${bTable}`));
});

describe("replay while the pipeline serves the other connectors", () => {
  it("replays A from the API while B's syncs keep landing; A's table is complete and its mapped topic ends on the newest versions", async () => {
    const aTable = `"${fx.sinkSchema}"."crm__deals"`;
    const otherTable = `"${fx.sinkSchema}"."other__deals"`;
    // A four times: its raw topic (not compacted yet) holds four versions of every key, so the
    // replay reaches the last versions of the first ids well after the live mapper has mapped their
    // change below, the order in which a replay without catch-up leaves an older version last.
    for (const id of ["crm", "crm", "crm", "crm", "other"]) expect((await syncAndWait(rt, id, { full: true, timeoutMs: 120_000 })).type).toBe("RUN_COMPLETED");
    expect(await rowsOf(aTable)).toHaveLength(A_ROWS);

    // the API checks what it is given
    expect((await api("POST", "/api/connectors/nope/replay", {})).status).toBe(404);
    expect((await api("POST", "/api/connectors/crm/replay", { tables: ["nope"] })).status).toBe(400);

    await sinkQuery(`DROP TABLE ${aTable}`);
    const started = await api("POST", "/api/connectors/crm/replay", {});
    expect(started.status).toBe(202);
    const runId = String(started.json().runId);
    const replayRun = async () => {
      const r = await api("GET", `/api/runs/${runId}`);
      return r.status === 200 ? (r.json() as unknown as RunView) : null;
    };
    // a second replay of A is refused while this one runs
    expect((await api("POST", "/api/connectors/crm/replay", {})).status).toBe(409);

    // A changes at its source during the replay, and is synced: the replay must not leave older versions behind
    await withDb(SOURCE_DB, (c) => c.query(`UPDATE public.${fx.table} SET title = title || ' (changed)' WHERE id <= 50`));
    const aSync = syncAndWait(rt, "crm", { full: true, timeoutMs: 180_000 });

    // B's syncs are served meanwhile (by the same producer worker, mapper and sink, busy with A's
    // sync and replay): each lands within a bound, the first while A's replay still runs
    for (let i = 0; i < 2; i++) {
      const from = 11 + i * 5;
      await withDb(SOURCE_DB, (c) => c.query(`INSERT INTO public.${bTable} SELECT g, 'B ' || g, g FROM generate_series(${from}, ${from + 4}) g`));
      const requestedAt = Date.now();
      expect((await syncAndWait(rt, "other", { full: true, timeoutMs: 60_000 })).type).toBe("RUN_COMPLETED");
      const landedMs = Date.now() - requestedAt;
      expect((await rowsOf(otherTable)).filter((r) => r._deleted_at === null)).toHaveLength(from + 4);
      expect(landedMs).toBeLessThan(30_000);
      const replay = await replayRun();
      if (i === 0) expect(replay?.status, `B's sync landed in ${landedMs} ms, after the replay ended`).toBe("running");
    }

    expect((await aSync).type).toBe("RUN_COMPLETED");
    const done = await eventually(
      async () => {
        const r = await replayRun();
        return r && r.status !== "running" ? r : null;
      },
      { timeoutMs: 180_000, intervalMs: 500, what: "the replay's end" },
    );
    expect(done).toMatchObject({ kind: "replay", status: "completed", connector: "crm" });
    expect(done.counts.records).toBeGreaterThanOrEqual(4 * A_ROWS);

    // A's table is complete, once per record, with the changed names
    const rows = await rowsOf(aTable);
    expect(rows).toHaveLength(A_ROWS);
    expect(new Set(rows.map((r) => r._external_id)).size).toBe(A_ROWS);
    expect(rows.filter((r) => r._deleted_at === null)).toHaveLength(A_ROWS);
    expect(rows.filter((r) => r._name?.endsWith(" (changed)")).length).toBe(50);

    // the compacted mapped topic's last record of every key is the version the sink holds (the newest)
    const last = new Map<string, number>();
    await readToEnd(rt.port, rt.port.topics.mapped("crm", "deals"), async (messages) => {
      for (const m of messages) {
        if (!m.key || !m.value) continue;
        const v = await rt.codec.decode<{ _version: number | bigint }>(m.value);
        last.set(m.key.toString(), Number(v._version));
      }
    });
    const wrong = rows.filter((r) => last.get(r._external_id) !== Number(r._version));
    expect(wrong.slice(0, 5).map((r) => [r._external_id, r._version, last.get(r._external_id)])).toEqual([]);
  });

  it("replays a tenant's connector by its tenant's path, 404 to a token of another tenant", async () => {
    const path = `/api/tenants/${TENANT}/connectors/crm/replay`;
    expect((await api("POST", path, {}, STRANGER)).status).toBe(404);
    expect((await api("POST", `/api/connectors/${TENANT}.crm/replay`, {}, STRANGER)).status).toBe(404);
    // never synced: nothing to replay, the run completes at once
    const started = await api("POST", path, {});
    expect(started.status).toBe(202);
    expect(started.json()).toMatchObject({ connector: `${TENANT}.crm` });
    const runId = String(started.json().runId);
    const done = await eventually(
      async () => {
        const r = await api("GET", `/api/runs/${runId}`);
        const run = r.status === 200 ? (r.json() as unknown as RunView) : null;
        return run && run.status !== "running" ? run : null;
      },
      { timeoutMs: 30_000, what: "the tenant's replay's end" },
    );
    expect(done).toMatchObject({ kind: "replay", status: "completed", connector: `${TENANT}.crm` });
    expect(done.counts.records).toBe(0);
  });
});
