/**
 * PostgreSQL syncs are always total (its plugin reads no increments): a request without `--full`
 * still infers deletes, behind the mass-delete guard. And user fields matched by Qobra's integer
 * user ids (`userKey: id`) through the sink's users table. Real broker, registry and PostgreSQL.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runRoles, type RunHandle } from "../../app/roles.ts";
import type { Config } from "../../lib/config.ts";
import { openRuntime, type Runtime } from "../../lib/runtime.ts";
import { ensureDatabase, testConfig, testConfigYaml, uniqueId, withDb } from "../../support/env.ts";
import { syncAndWait } from "../../support/pipeline.ts";

const SOURCE_DB = "qobra_it_source";
const SINK_DB = "qobra_it_sink";

let config: Config;
let rt: Runtime;
let pipeline: RunHandle;
let table: string;
let sinkSchema: string;
let id: string;

const source = (sql: string) => withDb(SOURCE_DB, (c) => c.query(sql));
const sink = <T extends Record<string, unknown>>(sql: string) => withDb(SINK_DB, async (c) => (await c.query<T>(sql)).rows);

beforeAll(async () => {
  id = uniqueId("pgt");
  table = `deals_${id}`;
  sinkSchema = `sink_${id}`;
  await ensureDatabase(SOURCE_DB);
  await ensureDatabase(SINK_DB);
  // owner_id holds Qobra's user ids (integers); 99 is no user.
  await source(`CREATE TABLE public.${table} (id integer PRIMARY KEY, title text, owner_id integer);
    INSERT INTO public.${table} SELECT g, 'Deal ' || g, CASE WHEN g = 10 THEN 99 ELSE 1 + g % 3 END FROM generate_series(1, 10) g;`);
  await withDb(SINK_DB, (c) =>
    c.query(`CREATE TABLE public."users_${id}" (id integer PRIMARY KEY, email text);
      INSERT INTO public."users_${id}" VALUES (1, 'one@example.com'), (2, 'two@example.com'), (3, 'three@example.com');`),
  );
  config = testConfig(
    testConfigYaml({
      prefix: id,
      sinkSchema,
      sourceDb: SOURCE_DB,
      sinkDb: SINK_DB,
      tables: `
      - name: deals
        source: public.${table}
        idColumn: id
        nameColumn: title
        fields:
          owner_id: { type: user, userKey: id }`,
    }),
  );
  config.sink.users.query = `SELECT id, email FROM public."users_${id}"`;
  rt = await openRuntime(config, "test");
  pipeline = await runRoles(config, ["producer", "mapper", "sink"]);
});

afterAll(async () => {
  await pipeline?.stop();
  await rt?.close();
  await source(`DROP TABLE IF EXISTS public.${table}`).catch(() => {});
});

describe("PostgreSQL: every sync is total", () => {
  it("resolves integer user ids (userKey: id) against Qobra's users", async () => {
    const run = await syncAndWait(rt, "crm", { full: false });
    expect(run.type, run.error ?? "").toBe("RUN_COMPLETED");
    expect(run.full).toBe(true); // a PostgreSQL run reads everything, asked for or not
    const rows = await sink<{ id: string; owner: string; uid: string | null }>(
      `SELECT _external_id AS id, owner_id AS owner, owner_id_user_id AS uid FROM "${sinkSchema}"."crm__deals" ORDER BY _external_id::int`,
    );
    expect(rows).toHaveLength(10);
    expect(rows.slice(0, 3)).toEqual([
      { id: "1", owner: "2", uid: "2" },
      { id: "2", owner: "3", uid: "3" },
      { id: "3", owner: "1", uid: "1" },
    ]);
    expect(rows.at(-1)).toEqual({ id: "10", owner: "99", uid: null }); // no such user: kept, unresolved
  });

  it("soft-deletes a row deleted at the source after a sync requested without --full", async () => {
    await source(`DELETE FROM public.${table} WHERE id = 4`);
    const run = await syncAndWait(rt, "crm", { full: false });
    expect(run.type, run.error ?? "").toBe("RUN_COMPLETED");
    expect(run.counts.deleted).toBe(1);
    const rows = await sink<{ id: string; deleted: boolean }>(
      `SELECT _external_id AS id, _deleted_at IS NOT NULL AS deleted FROM "${sinkSchema}"."crm__deals" WHERE _deleted_at IS NOT NULL`,
    );
    expect(rows).toEqual([{ id: "4", deleted: true }]);
  });

  it("keeps the mass-delete guard on those runs", async () => {
    await source(`DELETE FROM public.${table} WHERE id BETWEEN 5 AND 9`);
    const run = await syncAndWait(rt, "crm", { full: false });
    expect(run.type).toBe("RUN_FAILED");
    expect(run.error).toMatch(/would delete 5 of 9 records .* guard\); nothing was deleted/);
    const [n] = await sink<{ n: number }>(`SELECT count(*)::int AS n FROM "${sinkSchema}"."crm__deals" WHERE _deleted_at IS NOT NULL`);
    expect(n).toEqual({ n: 1 });
  });
});
