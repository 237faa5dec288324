/**
 * The Salesforce connector's REST paths when the simple ones fail (issue #13, item 7), against the in-process
 * simulator: QUERY_TIMEOUT read again in narrower SystemModstamp windows (api: rest, or a Bulk job refused),
 * every record exactly once, in cursor order, with the right cursor; and an object too wide for one query URL
 * read through REST in chunks of fields joined by Id (api: rest, or its Bulk job refused), every record whole,
 * records that change between the chunks' queries re-read rather than published half-read.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { EtlError } from "../../lib/errors.ts";
import type { SourceRecord } from "../../producers/connector.ts";
import { MAX_REREADS } from "../../producers/connectors/salesforce/chunks.ts";
import type { SalesforceState } from "../../producers/connectors/salesforce/soql.ts";
import type { SalesforceSource } from "../../producers/connectors/salesforce/source.ts";
import { WIDEN_AFTER } from "../../producers/connectors/salesforce/windows.ts";
import { buildCustomObjectDescribe } from "../../simulators/salesforce/describe-builders.ts";
import { generateSalesforceData } from "../../simulators/salesforce/generate.ts";
import type { SalesforceSimulator } from "../../simulators/salesforce/server.ts";
import { startSalesforceSource } from "./salesforce-fixture.ts";
import type { SalesforceSimData, SimRecord } from "../../simulators/salesforce/types.ts";

let dir: string;
let sim: SalesforceSimulator | undefined;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "qobra-sf-rest-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});
afterEach(async () => {
  await sim?.close();
  sim = undefined;
});

const OPPS = { name: "opportunities", object: "Opportunity", fields: { Amount: "amount", StageName: "picklist", OwnerId: "user" } };

async function source(data: SalesforceSimData, table: Record<string, unknown>, over: Record<string, unknown> = {}) {
  const started = await startSalesforceSource(data, table, over, dir);
  sim = started.sim;
  return started;
}

async function read(src: SalesforceSource, table: string, full = true, state: unknown = null, runStartedAt = Date.now()) {
  const records: SourceRecord[] = [];
  const deletedIds: string[] = [];
  /** (timestamp, Id) of every record, in the order read. */
  const order: Array<[string, string]> = [];
  const states: SalesforceState[] = [];
  for await (const p of src.read(table, { full, signal: new AbortController().signal, state, runStartedAt })) {
    records.push(...p.records);
    deletedIds.push(...(p.deletedIds ?? []));
    for (const r of p.records) order.push([r.sourceUpdatedAt!, r.externalId]);
    if (p.state !== undefined) states.push(p.state as SalesforceState);
  }
  return { records, deletedIds, order, states, state: states.at(-1) ?? null };
}

const stampOf = (r: SimRecord) => new Date(r.SystemModstamp as string | number).toISOString();
const key = (ts: string, id: string) => `${new Date(ts).toISOString()}|${id}`;
const calls = (s: SalesforceSimulator, k: string) => s.counters()[k] ?? 0;
const JOB_CREATE = "POST /services/data/vXX.X/jobs/query";
const opportunities = (n = 60) =>
  generateSalesforceData({ opportunities: n, accounts: 10, contacts: 10, leads: 2, tasks: 5, users: 3, commissions: 5, seed: 21 });

describe("Salesforce connector: QUERY_TIMEOUT read in narrower SystemModstamp windows", () => {
  it("api: rest, full run: every live record exactly once, and the cursor at the newest (SystemModstamp, Id)", async () => {
    const { sim: s, src } = await source(opportunities(), { ...OPPS, api: "rest" });
    s.state.setQueryTimeout({ object: "Opportunity", rows: 12 }); // a query of more than 12 opportunities "runs too long"
    const r = await read(src, "opportunities");
    const live = s.state.records("Opportunity");
    expect(r.records.map((x) => x.externalId).sort()).toEqual(live.map((x) => String(x.Id)).sort());
    expect(calls(s, "faults:queryTimeout")).toBeGreaterThan(0);
    expect(calls(s, JOB_CREATE)).toBe(0);
    const newest = live
      .map((x) => key(stampOf(x), String(x.Id)))
      .sort()
      .at(-1);
    expect(key(r.state!.ts, r.state!.id!)).toBe(newest);
  });

  it("api: rest, incremental from a cursor (no lookback): exactly the records after it, in (SystemModstamp, Id) order, page states included", async () => {
    const data = opportunities(80);
    const { sim: s, src } = await source(data, { ...OPPS, api: "rest", where: "StageName != 'Closed Lost'" }, { lookbackSeconds: 0 });
    // The cursor of an earlier run: a full read's final state, then moved back to the middle of the history.
    const all = s.state.records("Opportunity", { includeDeleted: true });
    const sorted = all.map((x) => [stampOf(x), String(x.Id)] as [string, string]).sort((a, b) => key(...a).localeCompare(key(...b)));
    const [midTs, midId] = sorted[Math.floor(sorted.length / 3)]!;
    const first = await read(src, "opportunities");
    const cursor: SalesforceState = { ...first.state!, ts: midTs, id: midId };
    // A third of the later records leave the where: the exit query (NOT (where)) times out too, and is narrowed.
    const after = sorted.filter(([ts, id]) => key(ts, id) > key(midTs, midId));
    s.state.setQueryTimeout({ object: "Opportunity", rows: 8 });
    const r = await read(src, "opportunities", false, cursor);
    const expected = all.filter((x) => key(stampOf(x), String(x.Id)) > key(midTs, midId));
    const matching = expected.filter((x) => x.StageName !== "Closed Lost" && x.IsDeleted !== true);
    expect(after.length).toBe(expected.length);
    expect(r.records.map((x) => x.externalId).sort()).toEqual(matching.map((x) => String(x.Id)).sort());
    expect(new Set(r.records.map((x) => x.externalId)).size).toBe(r.records.length);
    const deleted = expected.filter((x) => x.IsDeleted === true || x.StageName === "Closed Lost").map((x) => String(x.Id));
    expect(new Set(r.deletedIds)).toEqual(new Set(deleted));
    // cursor order across windows: every page state is after all the records read before it
    const keys = r.order.map(([ts, id]) => key(ts, id));
    expect(keys).toEqual([...keys].sort());
    expect(r.states.length).toBeGreaterThan(1);
    const stateKeys = r.states.map((x) => key(x.ts, x.id!));
    expect(stateKeys).toEqual([...stateKeys].sort());
    expect(stateKeys.at(-1)).toBe(key(...sorted.at(-1)!));
    expect(calls(s, "faults:queryTimeout")).toBeGreaterThan(1);
  });

  it("records sitting exactly on window bounds are read once each, none lost: the windows [a, b) partition the range", async () => {
    const data = opportunities(256);
    // Two records per stamp, one stamp every 2^12 s from T0, over 2^19 s: the range the windows divide is
    // [T0, T0 + 2^19 s) and no window narrower than 2^14 s is needed, so every bound falls on records.
    const T0 = Date.UTC(2024, 0, 1);
    const step = 4096_000;
    data.objects.Opportunity!.records!.forEach((r, i) => {
      r.SystemModstamp = new Date(T0 + Math.floor(i / 2) * step).toISOString();
    });
    const { sim: s, src } = await source(data, { ...OPPS, api: "rest" }, { lookbackSeconds: 0 });
    const first = await read(src, "opportunities");
    s.state.setQueryTimeout({ object: "Opportunity", rows: 9 });
    const cursor: SalesforceState = { ...first.state!, ts: new Date(T0).toISOString(), id: null };
    const r = await read(src, "opportunities", false, cursor, T0 + 128 * step - 1000);
    const all = s.state.records("Opportunity", { includeDeleted: true }).map((x) => String(x.Id));
    expect([...r.records.map((x) => x.externalId), ...r.deletedIds].sort()).toEqual(all.sort());
    const keys = r.order.map(([ts, id]) => key(ts, id));
    expect(keys).toEqual([...keys].sort());
    // 32 windows of 4 stamps are needed; timeouts: 5 to narrow from 2^19 s to 2^14 s, then one per widening tried
    // (WIDEN_AFTER successes in a row), not one per window.
    expect(calls(s, "faults:queryTimeout")).toBeGreaterThanOrEqual(5);
    expect(calls(s, "faults:queryTimeout")).toBeLessThanOrEqual(5 + Math.ceil(32 / WIDEN_AFTER));
  });

  it("with the default lookback the window starts at cursor − lookback, and api: auto reads through windows when its Bulk job is refused", async () => {
    const { sim: s, src } = await source(opportunities(), OPPS);
    const first = await read(src, "opportunities");
    const all = s.state.records("Opportunity", { includeDeleted: true });
    const mid = all.map(stampOf).sort()[30]!;
    const from = Date.parse(mid) - 600_000;
    s.state.setQueryTimeout({ object: "Opportunity", rows: 10 });
    s.state.addFault({ fault: "bulkJobRefused" } as never);
    const r = await read(src, "opportunities", false, { ...first.state!, ts: mid, id: null });
    const expected = all.filter((x) => Date.parse(stampOf(x)) >= from);
    expect([...r.records.map((x) => x.externalId), ...r.deletedIds].sort()).toEqual(expected.map((x) => String(x.Id)).sort());
    expect(calls(s, JOB_CREATE)).toBe(1);
  });

  it("a window of a single second that still times out fails the run as retriable, naming the object and suggesting api: bulk", async () => {
    const { sim: s, src } = await source(opportunities(20), { ...OPPS, api: "rest" });
    s.state.setQueryTimeout({ object: "Opportunity", rows: 0 }); // even one record is too many
    const e = await read(src, "opportunities").then(
      () => null,
      (x: unknown) => x as EtlError,
    );
    expect(e?.retriable).toBe(true);
    expect(e?.message).toMatch(/Opportunity \(QUERY_TIMEOUT\) even over a single second of SystemModstamp/);
    expect(e?.message).toMatch(/api: bulk/);
  });
});

/** A custom object of 400 long-named text fields (its full SELECT is about 18 KB once URL-encoded), every field of every record set. */
function wideOrg(n: number): { data: SalesforceSimData; fields: string[] } {
  const data = opportunities(5);
  const fields = Array.from({ length: 400 }, (_, i) => `Quarterly_Commission_Adjustment_Note_${String(i).padStart(3, "0")}__c`);
  const records = Array.from({ length: n }, (_, i) => {
    const r: SimRecord = { Name: `W${i}`, SystemModstamp: new Date(Date.UTC(2024, 0, 1) + i * 86_400_000).toISOString() };
    for (const [k, f] of fields.entries()) r[f] = `r${i}-f${k}`;
    return r;
  });
  data.objects.Wide__c = {
    describe: buildCustomObjectDescribe({ name: "Wide__c", keyPrefix: "a0W", fields: fields.map((name) => ({ name, type: "string" })) }),
    records,
  };
  return { data, fields };
}

const WIDE = { name: "wide", object: "Wide__c", fields: {} };
const isChunkQuery = (q: URLSearchParams, field: string) => (q.get("q") ?? "").includes(field) && (q.get("q") ?? "").includes("ORDER BY Id");

/** Every field of every record as the simulator holds it now. */
function expectWhole(s: SalesforceSimulator, records: SourceRecord[], fields: string[]) {
  const held = new Map(s.state.records("Wide__c").map((x) => [String(x.Id), x]));
  expect(records.map((x) => x.externalId).sort()).toEqual([...held.keys()].sort());
  for (const r of records) {
    const h = held.get(r.externalId)!;
    for (const f of fields) expect(r.fields[f], `${r.externalId}.${f}`).toBe(h[f]);
  }
}

describe("Salesforce connector: an object too wide for one REST URL, read through chunked REST", () => {
  it("a refused Bulk job (api: auto): every record whole, through REST queries of fewer fields joined by Id, never a 414", async () => {
    const { data, fields } = wideOrg(45);
    const { sim: s, src } = await source(data, WIDE);
    s.state.queryPageSize = 7; // pages break records across requests: the join works page by page
    s.state.addFault({ fault: "bulkJobRefused" } as never);
    const r = await read(src, "wide");
    expectWhole(s, r.records, fields);
    expect(calls(s, JOB_CREATE)).toBe(1);
    expect(calls(s, "status:414")).toBe(0);
    expect(calls(s, "GET /services/data/vXX.X/query/{locator}")).toBeGreaterThanOrEqual(2 * 6);
    expect(r.state!.ts).toBe(new Date(Date.UTC(2024, 0, 1) + 44 * 86_400_000).toISOString());
  });

  it("api: rest: check() warns how it reads, and a read in narrower windows (QUERY_TIMEOUT) joins the chunks of each window", async () => {
    const { data, fields } = wideOrg(30);
    const { sim: s, src } = await source(data, { ...WIDE, api: "rest" });
    const [c] = await src.check();
    expect(c!.ok).toBe(true);
    expect(c!.warnings.join("\n")).toMatch(/too long for a REST URL: reads go through REST queries of fewer fields joined by Id/);
    s.state.setQueryTimeout({ object: "Wide__c", rows: 6 });
    const r = await read(src, "wide");
    expectWhole(s, r.records, fields);
    expect(calls(s, "faults:queryTimeout")).toBeGreaterThan(0);
    expect(calls(s, "status:414")).toBe(0);
  });

  it("a record changed or deleted between the chunks' queries is re-read: published whole at its new version, or not at all", async () => {
    const { data, fields } = wideOrg(20);
    const { sim: s, src } = await source(data, { ...WIDE, api: "rest" });
    const [changed, deleted] = s.state.records("Wide__c").map((x) => String(x.Id));
    let done = false;
    s.state.onApiRequest = ({ query }) => {
      // when the last chunk's query arrives, after the first chunk's was answered
      if (done || !isChunkQuery(query, fields[399]!)) return;
      done = true;
      s.state.upsert("Wide__c", [{ Id: changed, [fields[0]!]: "new-first", [fields[399]!]: "new-last" }]);
      s.state.delete("Wide__c", [deleted!]);
    };
    const r = await read(src, "wide");
    expect(done).toBe(true);
    expectWhole(s, r.records, fields);
    const c = r.records.find((x) => x.externalId === changed)!;
    expect([c.fields[fields[0]!], c.fields[fields[399]!], c.fields[fields[200]!]]).toEqual(["new-first", "new-last", "r0-f200"]);
    expect(r.records.map((x) => x.externalId)).not.toContain(deleted);
    expect(r.records).toHaveLength(19);
  });

  it("a record that changes during every re-read fails the run as retriable; nothing of it is published", async () => {
    const { data, fields } = wideOrg(10);
    const { sim: s, src } = await source(data, { ...WIDE, api: "rest" });
    const [hot] = s.state.records("Wide__c").map((x) => String(x.Id));
    let n = 0;
    let t = Date.parse("2025-01-01T00:00:00Z");
    s.state.onApiRequest = ({ query }) => {
      if ((query.get("q") ?? "").includes(fields[399]!))
        s.state.upsert("Wide__c", [{ Id: hot, [fields[399]!]: `v${n++}`, SystemModstamp: new Date((t += 1000)).toISOString() }]);
    };
    const e = await read(src, "wide").then(
      () => null,
      (x: unknown) => x as EtlError,
    );
    expect(e?.retriable).toBe(true);
    expect(e?.message).toMatch(new RegExp(`1 record\\(s\\) \\(${hot}\\) changed between the queries of each of ${MAX_REREADS} reads`));
  });
});
