/**
 * Dead letters re-driven after a fix (superseded ones skipped), a table evolving with a new field
 * (new column), and a type change refused with the procedure, through the real pipeline.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openRuntime, type Runtime } from "../../lib/runtime.ts";
import { runRoles, type RunHandle } from "../../app/roles.ts";
import type { Config } from "../../lib/config.ts";
import { readDeadLetters, replayDeadLetters } from "../../cli/dlq.ts";
import { syncAndWait } from "../../support/pipeline.ts";
import { ensureDatabase, testConfig, testConfigYaml, uniqueId, withDb } from "../../support/env.ts";

const SOURCE_DB = "qobra_it_source";
const SINK_DB = "qobra_it_sink";
let id: string;
let rt: Runtime;
let pipeline: RunHandle | undefined;
const sink = (sql: string) => withDb(SINK_DB, async (c) => (await c.query(sql)).rows);
const source = (sql: string) => withDb(SOURCE_DB, (c) => c.query(sql));

function config(fields: string): Config {
  return testConfig(
    testConfigYaml({
      prefix: id,
      sinkSchema: `sink_${id}`,
      sourceDb: SOURCE_DB,
      sinkDb: SINK_DB,
      tables: `
      - name: deals
        source: public.ev_${id}
        idColumn: id
        nameColumn: title
        fields: ${fields}`,
    }),
  );
}

async function restart(cfg: Config): Promise<void> {
  await pipeline?.stop();
  await rt?.close();
  rt = await openRuntime(cfg, "test");
  pipeline = await runRoles(cfg, ["producer", "mapper", "sink"]);
}

beforeAll(async () => {
  id = uniqueId("ev");
  await ensureDatabase(SOURCE_DB);
  await ensureDatabase(SINK_DB);
  await source(`CREATE TABLE public.ev_${id} (id int PRIMARY KEY, title text, amount numeric, cur text, closed_on date, extra text);
    INSERT INTO public.ev_${id} VALUES (1, 'good', 10.5, 'EUR', '2026-01-01', 'x1'), (2, 'bad currency', 20, 'EURO', '2026-01-02', 'x2'),
      (3, 'bad then fixed', 30, 'XXXX', '2026-01-03', 'x3')`);
  await restart(config("{ amount: { type: amount, currencyColumn: cur }, closed_on: date }"));
});

afterAll(async () => {
  await pipeline?.stop();
  await rt?.close();
});

describe("dead letters and schema evolution", () => {
  it("re-drives dead letters after a config fix, skipping the superseded ones", async () => {
    const first = await syncAndWait(rt, "crm", { full: true });
    expect(first.type).toBe("RUN_COMPLETED");
    expect(await sink(`SELECT _external_id FROM "sink_${id}"."crm__deals" ORDER BY 1`)).toEqual([{ _external_id: "1" }]);
    const letters = await readDeadLetters(rt, { stage: "mapper", connector: "crm" });
    expect(letters.map((l) => [l.letter.key?.toString(), l.letter.issues.map((i) => i.code).join()]).sort()).toEqual([
      [JSON.stringify(["deals", "2"]), "invalid_currency"],
      [JSON.stringify(["deals", "3"]), "invalid_currency"],
    ]);

    await source(`UPDATE public.ev_${id} SET cur = 'USD' WHERE id = 3`);
    expect((await syncAndWait(rt, "crm", { full: true })).type).toBe("RUN_COMPLETED");
    expect(await sink(`SELECT _external_id, amount_currency FROM "sink_${id}"."crm__deals" ORDER BY 1`)).toEqual([
      { _external_id: "1", amount_currency: "EUR" },
      { _external_id: "3", amount_currency: "USD" },
    ]);

    // The fix: a fixed currency for this field. Row 2's newest letter is re-driven; its older letter
    // and row 3's (superseded by the corrected record) are not.
    await restart(config("{ amount: { type: amount, currency: EUR }, closed_on: date }"));
    const outcome = await replayDeadLetters(rt, { stage: "mapper", connector: "crm" });
    expect(outcome).toEqual({ replayed: 1, superseded: 2, letters: 3 });
    const run = await syncAndWait(rt, "crm", { tables: ["deals"] }); // an incremental request: waits until the sink caught up
    expect(run.type).toBe("RUN_COMPLETED");
    expect(await sink(`SELECT _external_id, amount::text, amount_currency FROM "sink_${id}"."crm__deals" ORDER BY 1`)).toEqual([
      { _external_id: "1", amount: "10.5", amount_currency: "EUR" },
      { _external_id: "2", amount: "20", amount_currency: "EUR" },
      { _external_id: "3", amount: "30", amount_currency: "EUR" },
    ]);
  });

  it("dead-letters a row PostgreSQL refuses (a NUL byte) and applies the rest of its batch", async () => {
    const topic = rt.port.topics.mapped("crm", "deals");
    const schemaId = await rt.registry.client.getLatestSchemaId(`${topic}-value`);
    const row = (ext: string, name: string, version: number) => ({
      _external_id: ext,
      _name: name,
      _source_updated_at: null,
      _run_id: "manual",
      _deleted: false,
      _version: version,
      amount: "1",
      amount_currency: "EUR",
      closed_on: null,
    });
    const producer = await rt.port.producer({ idempotent: true, maxInFlightRequests: 1 });
    await producer.send({
      topic,
      acks: -1,
      messages: [
        { key: "900", value: await rt.codec.encodeWithId(schemaId, row("900", "fine before", 1_000_000)) },
        { key: "901", value: await rt.codec.encodeWithId(schemaId, row("901", "nul \u0000 inside", 1_000_000)) },
        { key: "902", value: await rt.codec.encodeWithId(schemaId, row("902", "fine after", 1_000_000)) },
      ].map((m) => ({ ...m, partition: 0 })),
    });
    await producer.disconnect();
    expect((await syncAndWait(rt, "crm", { tables: ["deals"] })).type).toBe("RUN_COMPLETED");
    expect(await sink(`SELECT _external_id, _name FROM "sink_${id}"."crm__deals" WHERE _external_id LIKE '90_' ORDER BY 1`)).toEqual([
      { _external_id: "900", _name: "fine before" },
      { _external_id: "902", _name: "fine after" },
    ]);
    const letters = await readDeadLetters(rt, { stage: "sink", connector: "crm" });
    expect(letters.map((l) => [l.letter.key?.toString(), l.letter.issues[0]?.code])).toEqual([["901", "22021"]]);
    await withDb(SINK_DB, (c) => c.query(`DELETE FROM "sink_${id}"."crm__deals" WHERE _external_id IN ('900', '902')`));
  });

  it("adds a column when a field is added (BACKWARD), keeping the rows", async () => {
    await restart(config("{ amount: { type: amount, currency: EUR }, closed_on: date, extra: string }"));
    expect((await syncAndWait(rt, "crm", { full: true })).type).toBe("RUN_COMPLETED");
    expect(await sink(`SELECT _external_id, extra, closed_on::text FROM "sink_${id}"."crm__deals" ORDER BY 1`)).toEqual([
      { _external_id: "1", extra: "x1", closed_on: "2026-01-01" },
      { _external_id: "2", extra: "x2", closed_on: "2026-01-02" },
      { _external_id: "3", extra: "x3", closed_on: "2026-01-03" },
    ]);
  });

  it("refuses a field's type change with the procedure, and leaves the table as it was", async () => {
    const before = await readDeadLetters(rt, { stage: "mapper", connector: "crm" });
    // extra (text) may map to a string or a multipicklist, but an Avro string cannot become an array
    await restart(config("{ amount: { type: amount, currency: EUR }, closed_on: date, extra: multipicklist }"));
    const run = await syncAndWait(rt, "crm", { full: true });
    expect(run.type).toBe("RUN_COMPLETED");
    const letters = (await readDeadLetters(rt, { stage: "mapper", connector: "crm" })).slice(before.length);
    expect(letters).toHaveLength(3);
    expect(letters[0]!.letter.errorMessage).toMatch(
      /incompatible.*A field's type cannot change in place: give the table a new name in the config \(a new table version\), run `qobra-sync replay/,
    );
    expect(await sink(`SELECT count(*)::int AS n, min(extra) AS e FROM "sink_${id}"."crm__deals"`)).toEqual([{ n: 3, e: "x1" }]);
  });
});
