/**
 * The sink's positions live with the data (`<schema>._qobra_sync_offsets`), so a sink database that
 * is lost and recreated empty (restored from an older backup, or dropped on purpose) must be
 * refilled from the mapped topics by the sink alone, as consumers/sink/run.ts promises ("a new or
 * dropped sink database replays everything"), without waiting for the source to send something
 * new to every partition.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runRoles, type RunHandle } from "../../app/roles.ts";
import type { Config } from "../../lib/config.ts";
import { openRuntime, type Runtime } from "../../lib/runtime.ts";
import { ensureDatabase, testConfig, testConfigYaml, uniqueId, withDb } from "../../support/env.ts";
import { syncAndWait } from "../../support/pipeline.ts";

const SOURCE_DB = "qobra_it_source";
const SINK_DB = "qobra_it_sink";
const ROWS = 2000;

let config: Config;
let rt: Runtime;
let table: string;
let sinkSchema: string;

beforeAll(async () => {
  const id = uniqueId("rebuild");
  table = `rebuild_${id}`;
  sinkSchema = `sink_${id}`;
  await ensureDatabase(SOURCE_DB);
  await ensureDatabase(SINK_DB);
  await withDb(SOURCE_DB, (c) =>
    c.query(`CREATE TABLE public.${table} (id bigint PRIMARY KEY, title text, amount numeric);
    INSERT INTO public.${table} SELECT g, 'Deal ' || g, g * 1.5 FROM generate_series(1, ${ROWS}) g`),
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
        fields: { amount: number }`,
    }),
  );
  rt = await openRuntime(config, "test");
});

afterAll(async () => {
  await rt?.close();
  await withDb(SOURCE_DB, (c) => c.query(`DROP TABLE IF EXISTS public.${table}`)).catch(() => undefined);
});

const count = () => withDb(SINK_DB, async (c) => Number((await c.query(`SELECT count(*) AS n FROM "${sinkSchema}"."crm__deals"`)).rows[0].n)).catch(() => -1);

describe("a sink database lost and recreated empty", () => {
  it("is refilled from the mapped topic by a restarted sink, with no new sync", async () => {
    let pipeline: RunHandle = await runRoles(config, ["producer", "mapper", "sink"]);
    try {
      const run = await syncAndWait(rt, "crm", { full: true, timeoutMs: 120_000 });
      expect(run.type, run.error ?? "").toBe("RUN_COMPLETED");
      expect(await count()).toBe(ROWS);
    } finally {
      await pipeline.stop();
    }
    await withDb(SINK_DB, (c) => c.query(`DROP SCHEMA "${sinkSchema}" CASCADE`));
    pipeline = await runRoles(config, ["sink"]);
    try {
      const deadline = Date.now() + 45_000;
      let n = await count();
      while (n !== ROWS && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 1000));
        n = await count();
      }
      expect(n, "rows back in the sink 45 s after the sink restarted (-1: the table was not even recreated)").toBe(ROWS);
    } finally {
      await pipeline.stop();
    }
  }, 240_000);
});
