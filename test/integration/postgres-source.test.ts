/**
 * The PostgreSQL source in depth, through the real pipeline: every type of Qobra's table with edge
 * values, hostile and benign custom conditions (a canary function proves nothing else ran), and
 * total refreshes that soft-delete what vanished, behind a mass-delete guard.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openRuntime, type Runtime } from "../../lib/runtime.ts";
import { runRoles, type RunHandle } from "../../app/roles.ts";
import type { Config } from "../../lib/config.ts";
import { createConnector } from "../../producers/connectors/registry.ts";
import { syncAndWait } from "../../support/pipeline.ts";
import { eventsPosition, waitForRun } from "../../lib/wait.ts";
import { newRequest, publishRequest } from "../../lib/protocol.ts";
import { ensureDatabase, testConfig, testConfigYaml, uniqueId, withDb } from "../../support/env.ts";
import { ATTACKS } from "../fixtures/postgres/where-attacks.ts";

const SOURCE_DB = "qobra_it_source";
const SINK_DB = "qobra_it_sink";

let id: string;
let rt: Runtime;
let pipeline: RunHandle;
let config: Config;
const sink = <T extends Record<string, unknown> = Record<string, unknown>>(sql: string, params: unknown[] = []) =>
  withDb(SINK_DB, async (c) => (await c.query<T>(sql, params)).rows);
const source = (sql: string) => withDb(SOURCE_DB, (c) => c.query(sql));

function yaml(where?: string, extraTables = ""): string {
  return testConfigYaml({
    prefix: id,
    sinkSchema: `sink_${id}`,
    sourceDb: SOURCE_DB,
    sinkDb: SINK_DB,
    tables: `
      - name: types
        source: public.types_${id}
        idColumn: id
        nameColumn: "naïve name"
        fields:
          t_text: string
          t_char: picklist
          t_varchar: multipicklist
          t_date: date
          t_ts: date
          t_tstz: date
          t_int: number
          t_small: percentage
          t_big: number
          t_big_user: user
          t_double: number
          t_numeric: amount
          t_float: percentage
          t_real: number
          t_money: amount
          t_bool: bool
          t_bit: string
          t_varbit: string
          t_email: user
      - name: deals
        source: public.deals_${id}
        idColumn: id
        nameColumn: title${where ? `\n        where: ${JSON.stringify(where)}` : ""}
        fields: { amount: number }${extraTables}`,
  });
}

beforeAll(async () => {
  id = uniqueId("pg");
  await ensureDatabase(SOURCE_DB);
  await ensureDatabase(SINK_DB);
  await source(`
    CREATE TABLE public.types_${id} (
      id integer PRIMARY KEY, "naïve name" text, t_text text, t_char character(3), t_varchar character varying(20), t_date date,
      t_ts timestamp without time zone, t_tstz timestamp with time zone, t_int integer, t_small smallint, t_big bigint, t_big_user bigint,
      t_double double precision, t_numeric numeric, t_float float, t_real real, t_money money, t_bool boolean, t_bit bit(4),
      t_varbit bit varying(8), t_email text);
    INSERT INTO public.types_${id} VALUES
      (1, 'Zoë 🚀 ünïcode', 'plain', 'ab', 'a;b;c', '1969-07-20', '2026-03-29 02:30:00', '2026-10-25 02:30:00+02', 2147483647, -32768,
       9223372036854775807, 9007199254740993, 0.1, 0.30000000000000000000000000001, 1e-7, 3.4e38, '-92233720368547758.08', true, B'1010', B'101', ' Rep@Example.COM '),
      (2, NULL, NULL, NULL, NULL, '0001-01-01', '1970-01-01 00:00:00', '1900-01-01 00:00:00+00', -2147483648, 0, -9223372036854775808, 1,
       -0.0, 12345678901234567890.123456789012345678, 2.5, -1.5, '0.01', false, B'0000', B'', NULL),
      (3, 'nulls', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
    CREATE TABLE public.deals_${id} (id bigint PRIMARY KEY, title text, amount numeric, stage text);
    INSERT INTO public.deals_${id} SELECT g, 'Deal ' || g, g, CASE WHEN g % 2 = 0 THEN 'won' ELSE 'lost' END FROM generate_series(1, 1000) g;
    CREATE TABLE public.canary_${id} (at timestamptz);
    CREATE FUNCTION public.canary_${id}() RETURNS boolean LANGUAGE sql AS $$ INSERT INTO public.canary_${id} VALUES (now()) RETURNING true $$;`);
  config = testConfig(yaml());
  rt = await openRuntime(config, "test");
  pipeline = await runRoles(config, ["producer", "mapper", "sink"]);
});

afterAll(async () => {
  await pipeline?.stop();
  await rt?.close();
});

describe("PostgreSQL source", () => {
  it("syncs every type with edge values, each value exact", async () => {
    const run = await syncAndWait(rt, "crm", { full: true, tables: ["types"] });
    expect(run.type, run.error ?? "").toBe("RUN_COMPLETED");
    const rows = await sink(`SELECT _external_id, _name, t_text, t_char, t_varchar, t_date::text, t_ts, t_tstz, t_int::text, t_small::text, t_big::text,
        t_big_user, t_double::text, t_numeric::text, t_numeric_currency, t_float::text, t_real::text, t_money::text, t_money_currency, t_bool, t_bit,
        t_varbit, t_email FROM "sink_${id}"."crm__types" ORDER BY _external_id`);
    expect(rows).toEqual([
      {
        _external_id: "1",
        _name: "Zoë 🚀 ünïcode",
        t_text: "plain",
        t_char: "ab" /* CHARACTER(n) padding is not significant in PostgreSQL */,
        t_varchar: ["a", "b", "c"],
        t_date: "1969-07-20",
        // 02:30 on 2026-03-29 does not exist in Paris (clocks jump to 03:30): PostgreSQL reads it as 03:30 CEST = 01:30Z
        t_ts: new Date("2026-03-29T01:30:00Z"),
        t_tstz: new Date("2026-10-25T00:30:00Z"),
        t_int: "2147483647",
        t_small: "-32768",
        t_big: "9223372036854775807",
        t_big_user: "9007199254740993",
        t_double: "0.1",
        t_numeric: "0.30000000000000000000000000001",
        t_numeric_currency: "EUR",
        t_float: "0.0000001",
        t_real: "340000000000000000000000000000000000000",
        t_money: "-92233720368547758.08",
        t_money_currency: "EUR",
        t_bool: true,
        t_bit: "1010",
        t_varbit: "101",
        t_email: "rep@example.com",
      },
      {
        _external_id: "2",
        _name: null,
        t_text: null,
        t_char: null,
        t_varchar: null,
        t_date: "0001-01-01",
        t_ts: new Date("1969-12-31T23:00:00Z"),
        t_tstz: new Date("1900-01-01T00:00:00Z"),
        t_int: "-2147483648",
        t_small: "0",
        t_big: "-9223372036854775808",
        t_big_user: "1",
        t_double: "0",
        t_numeric: "12345678901234567890.123456789012345678",
        t_numeric_currency: "EUR",
        t_float: "2.5",
        t_real: "-1.5",
        t_money: "0.01",
        t_money_currency: "EUR",
        t_bool: false,
        t_bit: "0000",
        t_varbit: "",
        t_email: null,
      },
      {
        _external_id: "3",
        _name: "nulls",
        t_text: null,
        t_char: null,
        t_varchar: null,
        t_date: null,
        t_ts: null,
        t_tstz: null,
        t_int: null,
        t_small: null,
        t_big: null,
        t_big_user: null,
        t_double: null,
        t_numeric: null,
        t_numeric_currency: null,
        t_float: null,
        t_real: null,
        t_money: null,
        t_money_currency: null,
        t_bool: null,
        t_bit: null,
        t_varbit: null,
        t_email: null,
      },
    ]);
  });

  it("refuses a type the column cannot map to, naming it", async () => {
    const bad = testConfig(yaml().replace("t_bool: bool", "t_bool: amount"));
    const conn = createConnector(bad.connectors[0]!);
    try {
      const [types] = await conn.check();
      expect(types!.ok).toBe(false);
      expect(types!.problems.join("\n")).toMatch(/field t_bool has PostgreSQL type bool, which maps to bool, not amount/);
    } finally {
      await conn.close();
    }
  });

  it("refuses hostile conditions before running anything, and syncs a benign one", async () => {
    const canary = ATTACKS.filter((a) => a.includes("pg_sleep") || a.includes("DROP"))
      .slice(0, 5)
      .map((a) => a.replace("pg_sleep(10)", `canary_${id}()`));
    canary.push(`canary_${id}()`, `stage = 'won' OR public.canary_${id}()`, `stage = 'won'; SELECT canary_${id}()`);
    for (const where of [...canary, ...ATTACKS.slice(0, 20)]) {
      const conn = createConnector(testConfig(yaml(where)).connectors[0]!);
      try {
        const pages = conn.read("deals", { full: true, signal: new AbortController().signal, state: null, runStartedAt: Date.now() });
        await expect(
          (async () => {
            for await (const _ of pages) {
              /* drain */
            }
          })(),
          where,
        ).rejects.toThrow(/the where condition is refused/);
      } finally {
        await conn.close();
      }
    }
    const [{ n }] = (await source(`SELECT count(*)::int AS n FROM public.canary_${id}`)).rows as [{ n: number }];
    expect(n).toBe(0);
    const [{ t }] = (await source(`SELECT count(*)::int AS t FROM public.deals_${id}`)).rows as [{ t: number }];
    expect(t).toBe(1000);

    // a benign condition syncs through the pipeline
    const benign = testConfig(yaml("stage = 'won' AND amount > 10"));
    const conn = createConnector(benign.connectors[0]!);
    let read = 0;
    try {
      for await (const page of conn.read("deals", { full: true, signal: new AbortController().signal, state: null, runStartedAt: Date.now() }))
        read += page.records.length;
    } finally {
      await conn.close();
    }
    expect(read).toBe(495);
  });

  it("soft-deletes exactly what a total refresh no longer sees; a mass delete trips the guard", async () => {
    const table = `"sink_${id}"."crm__deals"`;
    const first = await syncAndWait(rt, "crm", { full: true, tables: ["deals"] });
    expect(first.type).toBe("RUN_COMPLETED");
    expect(await sink(`SELECT count(*)::int AS n FROM ${table} WHERE _deleted_at IS NULL`)).toEqual([{ n: 1000 }]);

    await source(`DELETE FROM public.deals_${id} WHERE id % 100 = 0`); // 1 %
    const second = await syncAndWait(rt, "crm", { full: true, tables: ["deals"] });
    expect(second.type).toBe("RUN_COMPLETED");
    expect(second.counts.deleted).toBe(10);
    // The live ids came from the first run (the raw topic unchanged since it ended), not a scan: the deletes are the same.
    expect(second.counts.liveIdsCached).toBe(1);
    const deleted = await sink<{ id: string }>(`SELECT _external_id AS id FROM ${table} WHERE _deleted_at IS NOT NULL ORDER BY _external_id::int`);
    expect(deleted.map((r) => r.id)).toEqual(["100", "200", "300", "400", "500", "600", "700", "800", "900", "1000"]);
    expect(await sink(`SELECT count(*)::int AS n FROM ${table} WHERE _deleted_at IS NULL`)).toEqual([{ n: 990 }]);

    await source(`DELETE FROM public.deals_${id} WHERE id % 10 < 6`); // ids ending in 0-5: 590 of the 990 left (60 %)
    const guarded = await syncAndWait(rt, "crm", { full: true, tables: ["deals"] });
    expect(guarded.type).toBe("RUN_FAILED");
    expect(guarded.error).toMatch(/would delete 590 of 990 records \(60%, above the 30% guard\); nothing was deleted.*--force-deletes/);
    expect(await sink(`SELECT count(*)::int AS n FROM ${table} WHERE _deleted_at IS NULL`)).toEqual([{ n: 990 }]);

    const forced = await syncAndWait(rt, "crm", { full: true, tables: ["deals"], forceDeletes: true });
    expect(forced.type).toBe("RUN_COMPLETED");
    expect(forced.counts.deleted).toBe(590);
    expect(await sink(`SELECT count(*)::int AS n FROM ${table} WHERE _deleted_at IS NULL`)).toEqual([{ n: 400 }]);
  });

  it("coalesces a request made before a run that covers it started, and loses none", async () => {
    const from = await eventsPosition(rt.port);
    const producer = await rt.port.producer({ idempotent: true, maxInFlightRequests: 1 });
    const first = newRequest("crm", { tables: ["deals"], by: "test" });
    const second = newRequest("crm", { tables: ["deals"], by: "test" });
    await publishRequest(producer, rt.codec, rt.port.topics, first);
    await publishRequest(producer, rt.codec, rt.port.topics, second);
    await producer.disconnect();
    const wait = (runId: string) =>
      waitForRun(rt.port, rt.codec, config.topicPrefix, runId, from, { timeoutMs: 60_000, tables: [{ connector: "crm", table: "deals" }] });
    const a = await wait(first.requestId);
    const b = await wait(second.requestId);
    expect(a.type).toBe("RUN_COMPLETED");
    expect(b.type).toBe("RUN_COMPLETED");
    expect(a.counts.coalesced ?? 0).toBe(0);
    expect(b.counts.coalesced).toBe(1);
  });

  it("a rebuilt sink (dropped schema) replays the topics without resurrecting deleted records", async () => {
    await pipeline.stop();
    await sink(`DROP SCHEMA "sink_${id}" CASCADE`);
    pipeline = await runRoles(config, ["producer", "mapper", "sink"]);
    const run = await syncAndWait(rt, "crm", { tables: ["deals"] }); // incremental request: waits for the sink to catch up
    expect(run.type).toBe("RUN_COMPLETED");
    expect(await sink(`SELECT count(*)::int AS n FROM "sink_${id}"."crm__deals" WHERE _deleted_at IS NULL`)).toEqual([{ n: 400 }]);
  });
});
