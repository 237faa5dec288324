/**
 * The walking skeleton end to end, through the real broker, the real registry and PostgreSQL:
 * PostgreSQL source → raw topic → mapper → mapped topic (schema in the registry) → sink.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { openRuntime, type Runtime } from "../../lib/runtime.ts";
import { runRoles, type RunHandle } from "../../app/roles.ts";
import type { Config } from "../../lib/config.ts";
import type { DeadLetter, SyncEvent } from "../../schemas/index.ts";
import { syncAndWait } from "../../support/pipeline.ts";
import { readToEnd } from "../../lib/topic-scan.ts";
import { ensureDatabase, testConfig, testConfigYaml, uniqueId, withDb } from "../../support/env.ts";

const SOURCE_DB = "qobra_it_source";
const SINK_DB = "qobra_it_sink";
const ROWS = 10_000;

let config: Config;
let rt: Runtime;
let pipeline: RunHandle;
let table: string;
let sinkSchema: string;
let id: string;

const sync = (full = true): Promise<SyncEvent> => syncAndWait(rt, "crm", { full });

const sink = <T extends Record<string, unknown>>(sql: string, params: unknown[] = []) => withDb(SINK_DB, async (c) => (await c.query<T>(sql, params)).rows);

beforeAll(async () => {
  id = uniqueId("it");
  table = `deals_${id}`;
  sinkSchema = `sink_${id}`;
  await ensureDatabase(SOURCE_DB);
  await ensureDatabase(SINK_DB);
  await withDb(SOURCE_DB, (c) =>
    c.query(`
    CREATE TABLE public.${table} (
      id bigint PRIMARY KEY, title text, amount numeric(20,6), cur text, closed_on date, closed_at timestamp,
      seen_at timestamptz, owner_email text, tags text, won boolean, price money, ratio double precision, qty integer
    );
    INSERT INTO public.${table}
    SELECT 9007199254740993 + g, 'Deal ' || g, (g * 1000.000001)::numeric(20,6), (ARRAY['EUR','usd','GBP'])[1 + g % 3],
           DATE '2026-03-29' + (g % 3), TIMESTAMP '2026-03-29 01:30:00' + g * interval '1 minute',
           TIMESTAMPTZ '2026-01-01 00:00:00.123456+00' + g * interval '1 second',
           'Rep' || (g % 7) || '@Example.COM', CASE WHEN g % 2 = 0 THEN 'a;b' END, g % 2 = 0, (g || '.25')::money, g / 8.0, g
      FROM generate_series(1, ${ROWS}) g;`),
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
        updatedAtColumn: seen_at
        fields:
          amount: { type: amount, currencyColumn: cur }
          closed_on: date
          closed_at: date
          owner_email: user
          tags: multipicklist
          won: bool
          price: { type: amount, currency: USD }
          ratio: number
          qty: number`,
    }),
  );
  // Qobra's users: reps 0-5 exist (mixed case and spaces on purpose), rep 6 does not.
  await withDb(SINK_DB, (c) =>
    c.query(`CREATE TABLE public."users_${id}" (id text, email text);
    INSERT INTO public."users_${id}" SELECT 'u' || g, CASE WHEN g = 1 THEN ' REP1@example.com ' ELSE 'rep' || g || '@example.com' END FROM generate_series(0, 5) g`),
  );
  config.sink.users.query = `SELECT id, email FROM public."users_${id}"`;
  rt = await openRuntime(config, "test");
  pipeline = await runRoles(config, ["producer", "mapper", "sink"]);
});

afterAll(async () => {
  await pipeline?.stop();
  await rt?.close();
});

describe("PostgreSQL → Kafka → PostgreSQL", () => {
  let firstRun: SyncEvent;

  it("moves every row, with exact values, into the typed sink table", async () => {
    firstRun = await sync(true);
    expect(firstRun.type, firstRun.error ?? "").toBe("RUN_COMPLETED");
    expect(firstRun.counts.read).toBe(ROWS);
    const [count] = await sink<{ n: string; runs: string }>(`SELECT count(*) AS n, count(DISTINCT _run_id) AS runs FROM "${sinkSchema}"."crm__deals"`);
    expect(count).toEqual({ n: String(ROWS), runs: "1" });
    expect(await deadLettersOf(firstRun.runId)).toEqual([]);
    // users resolved against Qobra's users by e-mail (trimmed, case-insensitive); unknown ones kept with a null id and counted
    const users = await sink<{ e: string; u: string | null; n: number }>(
      `SELECT owner_email AS e, owner_email_user_id AS u, count(*)::int AS n FROM "${sinkSchema}"."crm__deals" GROUP BY 1, 2 ORDER BY 1`,
    );
    expect(users.map((r) => [r.e, r.u])).toEqual([0, 1, 2, 3, 4, 5, 6].map((g) => [`rep${g}@example.com`, g === 6 ? null : `u${g}`]));
    const unresolved = users.find((r) => r.u === null)!.n;
    const mapperCounts = await mapperProgress(firstRun.runId);
    expect(mapperCounts).toEqual({ mapped: ROWS, dlq: 0, unresolvedUsers: unresolved });
    const [row] = await sink(`SELECT _external_id, _name, amount::text, amount_currency, closed_on::text, closed_at, owner_email, tags, won, price::text,
        price_currency, ratio::text, qty::text, _source_updated_at, _deleted_at FROM "${sinkSchema}"."crm__deals" WHERE _external_id = '9007199254740994'`);
    expect(row).toEqual({
      _external_id: "9007199254740994",
      _name: "Deal 1",
      amount: "1000.000001",
      amount_currency: "USD",
      closed_on: "2026-03-30",
      // 01:31 in Paris on 2026-03-29 is before the 02:00 switch to summer time: 00:31 UTC
      closed_at: new Date("2026-03-29T00:31:00.000Z"),
      owner_email: "rep1@example.com",
      tags: null,
      won: false,
      price: "1.25",
      price_currency: "USD",
      ratio: "0.125",
      qty: "1",
      _source_updated_at: new Date("2026-01-01T00:00:01.123Z"),
      _deleted_at: null,
    });
    const [evenRow] = await sink(`SELECT tags, amount_currency, closed_at FROM "${sinkSchema}"."crm__deals" WHERE _external_id = '9007199254740995'`);
    expect(evenRow).toEqual({ tags: ["a", "b"], amount_currency: "GBP", closed_at: new Date("2026-03-29T00:32:00.000Z") });
    // the source's own sum equals the sink's, to the last decimal (no float on the way)
    const [src] = await withDb(SOURCE_DB, async (c) => (await c.query(`SELECT sum(amount)::text AS s, max(id)::text AS m FROM public.${table}`)).rows);
    const [dst] = await sink(`SELECT sum(amount)::text AS s, max(_external_id::numeric)::text AS m FROM "${sinkSchema}"."crm__deals"`);
    expect(dst).toEqual(src);
  });

  it("a second run changes nothing but _synced_at and _run_id", async () => {
    const digest = `SELECT md5(string_agg(t::text, '|' ORDER BY _external_id)) AS d FROM (SELECT _external_id, _name, amount, amount_currency, closed_on, closed_at, owner_email, tags, won, price, ratio, qty, _source_updated_at, _deleted_at FROM "${sinkSchema}"."crm__deals") t`;
    const [before] = await sink<{ d: string }>(digest);
    const [syncedBefore] = await sink<{ m: Date }>(`SELECT max(_synced_at) AS m FROM "${sinkSchema}"."crm__deals"`);
    const second = await sync(true);
    expect(second.type).toBe("RUN_COMPLETED");
    const [after] = await sink<{ d: string }>(digest);
    expect(after!.d).toBe(before!.d);
    const runs = await sink<{ r: string; n: string; oldest: Date }>(
      `SELECT _run_id AS r, count(*) AS n, min(_synced_at) AS oldest FROM "${sinkSchema}"."crm__deals" GROUP BY 1`,
    );
    expect(runs).toHaveLength(1);
    expect(runs[0]!.r).toBe(second.runId);
    expect(runs[0]!.n).toBe(String(ROWS));
    expect(runs[0]!.oldest.getTime()).toBeGreaterThan(syncedBefore!.m.getTime());
  });

  it("stores the sink's offsets with the data, equal to what Kafka has committed", async () => {
    const stored = await sink<{ partition: number; next_offset: string }>(
      `SELECT partition, next_offset FROM "${sinkSchema}"."_qobra_sync_offsets" WHERE topic = $1 ORDER BY partition`,
      [rt.port.topics.mapped("crm", "deals")],
    );
    const admin = await rt.port.admin();
    const committed = await admin.fetchOffsets({ groupId: `${config.topicPrefix}-sink`, topics: [rt.port.topics.mapped("crm", "deals")] });
    const kafka = committed[0]!.partitions
      .filter((p) => Number(p.offset) > 0)
      .map((p) => ({ partition: p.partition, next_offset: p.offset }))
      .sort((a, b) => a.partition - b.partition);
    expect(stored.length).toBeGreaterThan(0);
    for (const s of stored) {
      const k = kafka.find((x) => x.partition === s.partition);
      // Kafka may be ahead by the transaction marker that follows the last record.
      expect(Number(k!.next_offset) - Number(s.next_offset)).toBeGreaterThanOrEqual(0);
      expect(Number(k!.next_offset) - Number(s.next_offset)).toBeLessThanOrEqual(1);
    }
  });

  it("sends bad values to the dead-letter topic with the reason, and keeps going", async () => {
    await withDb(SOURCE_DB, (c) =>
      c.query(`
      INSERT INTO public.${table} (id, title, amount, cur, closed_on, won) VALUES
        (1, 'bad date', 1, 'EUR', 'infinity', true), (2, 'bad currency', 5, 'EURO', '2026-01-01', true), (3, 'fine', 7.5, NULL, '2026-01-01', false)`),
    );
    const run = await sync(true);
    expect(run.type).toBe("RUN_COMPLETED");
    expect(run.counts.read).toBe(ROWS + 3);
    const fine = await sink(`SELECT amount::text, amount_currency FROM "${sinkSchema}"."crm__deals" WHERE _external_id = '3'`);
    expect(fine).toEqual([{ amount: "7.5", amount_currency: "EUR" }]);
    const bad = await sink(`SELECT _external_id FROM "${sinkSchema}"."crm__deals" WHERE _external_id IN ('1', '2')`);
    expect(bad).toEqual([]);
    const letters = await deadLettersOf(run.runId);
    expect(letters.map((l) => [l.table, l.issues.map((i) => `${i.path}:${i.code}`).join(",")]).sort()).toEqual([
      ["deals", "amount:invalid_currency"],
      ["deals", "closed_on:out_of_range"],
    ]);
    expect(letters[0]!.originalTopic).toBe(rt.port.topics.raw("crm"));
  });
});

async function mapperProgress(runId: string): Promise<Record<string, number>> {
  const total: Record<string, number> = { mapped: 0, dlq: 0, unresolvedUsers: 0 };
  await readToEnd(rt.port, rt.port.topics.syncEvents, async (messages) => {
    for (const m of messages) {
      if (m.key?.toString() !== runId) continue;
      const e = await rt.codec.decode<SyncEvent>(m.value!);
      if (e.type === "PROGRESS" && e.stage === "mapper") for (const [k, v] of Object.entries(e.counts)) total[k] = (total[k] ?? 0) + v;
    }
  });
  return total;
}

async function deadLettersOf(runId: string): Promise<DeadLetter[]> {
  const out: DeadLetter[] = [];
  await readToEnd(rt.port, rt.port.topics.dlqMapper, async (messages) => {
    for (const m of messages) {
      const l = await rt.codec.decode<DeadLetter>(m.value!);
      if (l.runId === runId) out.push(l);
    }
  });
  return out;
}
