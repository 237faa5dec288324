/**
 * Two tenants, each with a PostgreSQL connector of the same id `crm` reading its own source table,
 * through the real broker, registry and PostgreSQL: each tenant's rows land in its own schema as
 * crm__deals (none in the sink's schema), a user field resolves against that tenant's users only
 * (a users query with $1, the same e-mail being a different user in each tenant), and the lag report
 * and /metrics name each tenant's tables and carry the tenant.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runRoles, type RunHandle } from "../../app/roles.ts";
import type { Config } from "../../lib/config.ts";
import { openRuntime, type Runtime } from "../../lib/runtime.ts";
import { createMetrics } from "../../ops/metrics.ts";
import { OpsMonitor } from "../../ops/monitor.ts";
import { collectLagReport } from "../../ops/report.ts";
import { ensureDatabase, pipelineHeaderYaml, testConfig, uniqueId, dbUrl, withDb } from "../../support/env.ts";
import { eventually, metricValue } from "../../support/ops.ts";
import { syncAndWait } from "../../support/pipeline.ts";

const SOURCE_DB = "qobra_it_source";
const SINK_DB = "qobra_it_sink";

let id: string;
let tenants: [string, string];
let config: Config;
let rt: Runtime;
let pipeline: RunHandle | undefined;
let sinkSchema: string;
const schemaOf = (tenant: string) => `it_${id}_${tenant}`;
const source = (sql: string) => withDb(SOURCE_DB, (c) => c.query(sql));
const sink = <T extends Record<string, unknown>>(sql: string, params: unknown[] = []) => withDb(SINK_DB, async (c) => (await c.query<T>(sql, params)).rows);

const connectorYaml = (tenant: string) => `
  - id: crm
    tenant: ${tenant}
    type: postgres
    connection: { url: "${dbUrl(SOURCE_DB)}", allowSuperuser: true }
    schedule: { enabled: false }
    tables:
      - name: deals
        source: public.deals_${tenant}
        idColumn: id
        nameColumn: title
        fields: { amount: { type: amount, currency: EUR }, owner: user }`;

beforeAll(async () => {
  id = uniqueId("ten");
  // Tenant ids: lower-case letters and digits, unique per run (they name topics and schemas).
  tenants = [uniqueId("a"), uniqueId("b")];
  sinkSchema = `sink_${id}`;
  await ensureDatabase(SOURCE_DB);
  await ensureDatabase(SINK_DB);
  const [a, b] = tenants;
  // The same ids and e-mails in both tenants' sources, different titles and amounts.
  await source(`
    CREATE TABLE public.deals_${a} (id integer PRIMARY KEY, title text, amount numeric(12,2), owner text);
    INSERT INTO public.deals_${a} VALUES (1, 'A one', 10.50, 'ann@example.com'), (2, 'A two', 20.00, 'carl@example.com'), (3, 'A three', 30.25, 'nobody@example.com');
    CREATE TABLE public.deals_${b} (id integer PRIMARY KEY, title text, amount numeric(12,2), owner text);
    INSERT INTO public.deals_${b} VALUES (1, 'B one', 100.00, 'ANN@example.com'), (2, 'B two', 200.75, 'carl@example.com');`);
  // Qobra's users of every tenant in one table: ann is user 101 at A, 202 at B, 999 without a
  // tenant; carl exists at B only.
  await sink(`CREATE TABLE public."users_${id}" (id integer PRIMARY KEY, email text, tenant text);
    INSERT INTO public."users_${id}" VALUES (101, 'ann@example.com', '${a}'), (202, 'ann@example.com', '${b}'), (203, 'carl@example.com', '${b}'), (999, 'ann@example.com', NULL);`);
  const yaml = `${pipelineHeaderYaml({ prefix: id, sinkDb: SINK_DB, sinkSchema })}  tenantSchema: it_${id}_<tenant>
  users: { query: 'SELECT id, email FROM public."users_${id}" WHERE tenant IS NOT DISTINCT FROM $1' }
connectors:${connectorYaml(a)}${connectorYaml(b)}`;
  config = testConfig(yaml);
  rt = await openRuntime(config, "test");
  pipeline = await runRoles(config, ["producer", "mapper", "sink"]);
});

afterAll(async () => {
  await pipeline?.stop();
  await rt?.close();
  for (const t of tenants ?? []) {
    await source(`DROP TABLE IF EXISTS public.deals_${t}`).catch(() => {});
    await sink(`DROP SCHEMA IF EXISTS "${schemaOf(t)}" CASCADE`).catch(() => {});
  }
  await sink(`DROP TABLE IF EXISTS public."users_${id}"`).catch(() => {});
  await sink(`DROP SCHEMA IF EXISTS "${sinkSchema}" CASCADE`).catch(() => {});
});

describe("tenants", () => {
  it("lands each tenant's rows in its own schema as crm__deals, users resolved per tenant", async () => {
    const [a, b] = tenants;
    expect(config.connectors.map((c) => c.id)).toEqual([`${a}.crm`, `${b}.crm`]);
    const [runA, runB] = await Promise.all([syncAndWait(rt, `${a}.crm`, { full: true }), syncAndWait(rt, `${b}.crm`, { full: true })]);
    expect(runA.type, runA.error ?? "").toBe("RUN_COMPLETED");
    expect(runB.type, runB.error ?? "").toBe("RUN_COMPLETED");

    const rows = (tenant: string) =>
      sink<{ id: string; name: string; amount: string; owner: string; uid: string | null }>(
        `SELECT _external_id AS id, _name AS name, amount::text AS amount, owner, owner_user_id AS uid FROM "${schemaOf(tenant)}"."crm__deals" ORDER BY _external_id`,
      );
    expect(await rows(a)).toEqual([
      { id: "1", name: "A one", amount: "10.5", owner: "ann@example.com", uid: "101" },
      // carl is a user of the other tenant only, and the tenant-less ann is not A's ann
      { id: "2", name: "A two", amount: "20", owner: "carl@example.com", uid: null },
      { id: "3", name: "A three", amount: "30.25", owner: "nobody@example.com", uid: null },
    ]);
    expect(await rows(b)).toEqual([
      { id: "1", name: "B one", amount: "100", owner: "ann@example.com", uid: "202" },
      { id: "2", name: "B two", amount: "200.75", owner: "carl@example.com", uid: "203" },
    ]);
    // Nothing of the tenants in the sink's own schema, which keeps the offsets of their topics.
    const own = await sink<{ table_name: string }>("SELECT table_name FROM information_schema.tables WHERE table_schema = $1 ORDER BY 1", [sinkSchema]);
    expect(own.map((r) => r.table_name)).not.toContain("crm__deals");
    const offsets = await sink<{ topic: string }>(`SELECT DISTINCT topic FROM "${sinkSchema}"."_qobra_sync_offsets" ORDER BY topic`);
    expect(offsets.map((r) => r.topic)).toEqual([rt.port.topics.mapped(`${a}.crm`, "deals"), rt.port.topics.mapped(`${b}.crm`, "deals")].sort());
  });

  it("reports each tenant's tables where they are, with the tenant, in the lag report and /metrics", async () => {
    const [a, b] = tenants;
    const report = await collectLagReport(config, rt, { age: false });
    expect(report.tables.map((t) => ({ connector: t.connector, tenant: t.tenant, relation: t.relation, rows: t.sinkRows }))).toEqual([
      { connector: `${a}.crm`, tenant: a, relation: `${schemaOf(a)}.crm__deals`, rows: 3 },
      { connector: `${b}.crm`, tenant: b, relation: `${schemaOf(b)}.crm__deals`, rows: 2 },
    ]);
    const sinkPartitions = report.partitions.filter((p) => p.role === "sink");
    expect(new Set(sinkPartitions.map((p) => `${p.connector} ${p.tenant}`))).toEqual(new Set([`${a}.crm ${a}`, `${b}.crm ${b}`]));

    const monitor = new OpsMonitor(config, rt, { sampleMs: 500, dbSampleMs: 500, ageProbe: false });
    await monitor.start();
    try {
      const register = createMetrics(monitor, { processMetrics: false });
      const text = await eventually(
        async () => {
          const t = await register.metrics();
          return metricValue(t, "qobra_sync_runs_total", { connector: `${b}.crm`, outcome: "completed" }) === 1 ? t : null;
        },
        { what: "the runs in /metrics" },
      );
      expect(metricValue(text, "qobra_sync_table_rows", { connector: `${a}.crm`, tenant: a, table: "deals", state: "live" })).toBe(3);
      expect(metricValue(text, "qobra_sync_table_rows", { connector: `${b}.crm`, tenant: b, table: "deals", state: "live" })).toBe(2);
      expect(metricValue(text, "qobra_sync_runs_total", { connector: `${a}.crm`, tenant: a, outcome: "completed" })).toBe(1);
      expect(metricValue(text, "qobra_sync_unresolved_users_total", { connector: `${a}.crm`, tenant: a })).toBe(2);
      expect(metricValue(text, "qobra_sync_unresolved_users_total", { connector: `${b}.crm`, tenant: b })).toBe(0);
    } finally {
      await monitor.stop();
    }
  });
});
