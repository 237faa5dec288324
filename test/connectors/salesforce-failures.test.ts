/**
 * The Salesforce connector against the failure modes of real orgs (issue #13, item 7), each injected in the
 * simulator: the concurrent-request limit (waited out, never reported as a spent daily budget), QUERY_TIMEOUT
 * on a REST query (read through Bulk, or narrower windows with api: rest: salesforce-rest-fallbacks.test.ts
 * has the details), a Bulk job refused at creation (read through REST), `check`
 * on an object whose SELECT is too long for a URL, Bulk result pages asked for with maxRecords and parsed as
 * a stream, a single-currency org, and records purged from the recycle bin.
 */
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { EtlError } from "../../lib/errors.ts";
import type { SourceRecord } from "../../producers/connector.ts";
import { BULK_BATCH_ROWS, BULK_MAX_RECORDS, streamPage } from "../../producers/connectors/salesforce/bulk.ts";
import { RETRY } from "../../producers/connectors/salesforce/client.ts";
import { SalesforceConcurrencyError, SalesforceLimitError } from "../../producers/connectors/salesforce/errors.ts";
import type { SalesforceSource } from "../../producers/connectors/salesforce/source.ts";
import { buildCustomObjectDescribe } from "../../simulators/salesforce/describe-builders.ts";
import { generateSalesforceData } from "../../simulators/salesforce/generate.ts";
import type { SalesforceSimulator } from "../../simulators/salesforce/server.ts";
import type { SalesforceSimData } from "../../simulators/salesforce/types.ts";
import { startSalesforceSource } from "./salesforce-fixture.ts";

let dir: string;
let sim: SalesforceSimulator | undefined;
const saved = { ...RETRY.concurrency };
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "qobra-sf-fail-"));
  // The concurrent-request limit clears in seconds in real orgs; here in milliseconds.
  Object.assign(RETRY.concurrency, { initialMs: 10, maxMs: 40 });
});
afterAll(async () => {
  Object.assign(RETRY.concurrency, saved);
  await rm(dir, { recursive: true, force: true });
});
afterEach(async () => {
  await sim?.close();
  sim = undefined;
});

const small = () => generateSalesforceData({ opportunities: 60, accounts: 10, contacts: 10, leads: 2, tasks: 5, users: 3, commissions: 5, seed: 21 });

const OPPS = { name: "opportunities", object: "Opportunity", fields: { Amount: "amount", StageName: "picklist", OwnerId: "user" } };

async function source(data: SalesforceSimData, over: Record<string, unknown> = {}, table: Record<string, unknown> = {}) {
  const started = await startSalesforceSource(data, { ...OPPS, ...table }, over, dir);
  sim = started.sim;
  // Bulk jobs of a fifth of a second (the default is seconds): these tests are about failures, not polling.
  started.sim.state.setBulkBehaviour({ processingMs: 200, processingMsPer1000: 0 });
  return started;
}

async function readAll(src: SalesforceSource, table = "opportunities", full = true, state: unknown = null) {
  const records: SourceRecord[] = [];
  const deletedIds: string[] = [];
  const sizes: number[] = [];
  let last: unknown = null;
  for await (const p of src.read(table, { full, signal: new AbortController().signal, state, runStartedAt: Date.now() })) {
    records.push(...p.records);
    deletedIds.push(...(p.deletedIds ?? []));
    if (p.records.length > 0) sizes.push(p.records.length);
    if (p.state !== undefined) last = p.state;
  }
  return { records, deletedIds, sizes, state: last };
}

const live = (s: SalesforceSimulator, object = "Opportunity") => s.state.records(object).length;
const calls = (s: SalesforceSimulator, key: string) => s.counters()[key] ?? 0;
const JOB_CREATE = "POST /services/data/vXX.X/jobs/query";
const RESULTS = "GET /services/data/vXX.X/jobs/query/{jobId}/results";

describe("Salesforce connector: the concurrent-request limit", () => {
  it("backs off and retries REST pages, Bulk job creation and polls, and result pages; the read completes", async () => {
    const { sim: s, src } = await source(small(), { bulkThreshold: 10 });
    s.state.queryPageSize = 20; // the first page is not the last: totalSize decides for Bulk
    s.state.addFault({ fault: "concurrentRequests", path: "/services/data/*/queryAll", count: 2 } as never);
    s.state.addFault({ fault: "concurrentRequests", path: "/services/data/*/jobs/query", count: 1 } as never);
    s.state.addFault({ fault: "concurrentRequests", path: "/services/data/*/jobs/query/*", method: "GET", count: 1 } as never);
    s.state.addFault({ fault: "concurrentRequests", path: "/services/data/*/jobs/query/*/results", count: 1 } as never);
    const r = await readAll(src);
    expect(r.records).toHaveLength(live(s));
    expect(s.state.faults()).toEqual([]);
    expect(calls(s, JOB_CREATE)).toBe(2);
  });

  it("when it does not clear, fails the run as retriable with the concurrency message, never as a spent daily budget", async () => {
    const { sim: s, src } = await source(small());
    s.state.addFault({ fault: "concurrentRequests", path: "/services/data/*/queryAll", count: 100 } as never);
    const e = await readAll(src).then(
      () => null,
      (x: unknown) => x as Error,
    );
    expect(e).toBeInstanceOf(SalesforceConcurrencyError);
    expect(e).not.toBeInstanceOf(SalesforceLimitError);
    expect((e as EtlError).retriable).toBe(true);
    expect(e!.message).toMatch(/concurrent long-running request limit/);
    expect(e!.message).not.toMatch(/daily/);
    expect(calls(s, "GET /services/data/vXX.X/queryAll")).toBe(RETRY.concurrency.retries + 1);
    // the daily budget itself still fails at once, as a SalesforceLimitError
    s.state.clearFaults();
    s.state.addFault({ path: "/services/data/*/queryAll", status: 403 });
    await expect(readAll(src)).rejects.toBeInstanceOf(SalesforceLimitError);
  });
});

describe("Salesforce connector: QUERY_TIMEOUT and refused Bulk jobs", () => {
  it("a REST query Salesforce gives up on is read through a Bulk job instead", async () => {
    const { sim: s, src } = await source(small());
    s.state.addFault({ fault: "queryTimeout" } as never);
    const r = await readAll(src);
    expect(r.records).toHaveLength(live(s));
    expect(calls(s, JOB_CREATE)).toBe(1);
    expect((r.state as { ts: string }).ts).toMatch(/^\d{4}-/);
  });

  it("with api: rest, a REST query Salesforce gives up on is read again in narrower windows, never through Bulk (salesforce-rest-fallbacks.test.ts)", async () => {
    const { sim: s, src } = await source(small(), {}, { api: "rest" });
    s.state.addFault({ fault: "queryTimeout" } as never);
    const r = await readAll(src);
    expect(r.records.map((x) => x.externalId).sort()).toEqual(
      s.state
        .records("Opportunity")
        .map((x) => String(x.Id))
        .sort(),
    );
    expect(s.state.faults()).toEqual([]);
    expect(calls(s, JOB_CREATE)).toBe(0);
  });

  it("a Bulk job refused at creation falls back to REST (api: auto above bulkThreshold, and api: bulk)", async () => {
    const { sim: s, src } = await source(small(), { bulkThreshold: 10 });
    s.state.queryPageSize = 20;
    s.state.addFault({ fault: "bulkJobRefused" } as never);
    const auto = await readAll(src);
    expect(auto.records).toHaveLength(live(s));
    expect(calls(s, JOB_CREATE)).toBe(1);
    expect(calls(s, RESULTS)).toBe(0);
    // api: bulk, refused by the org's real daily job limit
    await s.close();
    const forced = await source(small(), {}, { api: "bulk" });
    forced.sim.state.setBulkBehaviour({ dailyQueryJobLimit: 0 });
    const r = await readAll(forced.src);
    expect(r.records).toHaveLength(live(forced.sim));
    expect(calls(forced.sim, "GET /services/data/vXX.X/queryAll")).toBe(1);
  });
});

describe("Salesforce connector: Bulk result pages", () => {
  it("asks for maxRecords rows per page and hands rows on in batches as each page streams in", async () => {
    const data = generateSalesforceData({ opportunities: 5000, accounts: 50, contacts: 10, leads: 2, tasks: 5, users: 3, commissions: 5, seed: 4 });
    const { sim: s, src } = await source(data, {}, { api: "bulk" });
    s.state.setBulkBehaviour({ resultsPageSize: 4500 }); // the server's page, below maxRecords: it wins
    const asked: string[] = [];
    s.state.onApiRequest = ({ path, query }) => {
      if (path.endsWith("/results")) asked.push(query.get("maxRecords") ?? "");
    };
    const r = await readAll(src);
    expect(r.records).toHaveLength(live(s));
    expect(asked).toEqual(Array(Math.ceil(live(s) / 4500)).fill(String(BULK_MAX_RECORDS)));
    expect(calls(s, RESULTS)).toBe(Math.ceil(live(s) / 4500));
    expect(Math.max(...r.sizes)).toBeLessThanOrEqual(BULK_BATCH_ROWS);
    expect(r.sizes.length).toBeGreaterThanOrEqual(Math.ceil(live(s) / BULK_BATCH_ROWS));
  });

  it("parses a page whose chunks split rows, quotes and line breaks anywhere, exactly", async () => {
    const rows = Array.from({ length: BULK_BATCH_ROWS + 5 }, (_, i) => [`a${i}`, i % 7 === 0 ? 'say "hi",\nbye' : "", "12345678901234567890.000001"]);
    const csv = `"Id","Name","Amount__c"\n${rows.map((r) => r.map((v) => `"${v.replace(/"/g, '""')}"`).join(",")).join("\n")}\n`;
    const chunks: Buffer[] = [];
    for (let i = 0; i < csv.length; i += 37) chunks.push(Buffer.from(csv.slice(i, i + 37)));
    const got: string[][] = [];
    const batches: number[] = [];
    for await (const p of streamPage(Readable.from(chunks))) {
      expect(p.columns).toEqual(["Id", "Name", "Amount__c"]);
      batches.push(p.rows.length);
      got.push(...p.rows);
    }
    expect(got).toEqual(rows);
    expect(batches).toEqual([BULK_BATCH_ROWS, 5]);
  });
});

/** An org with a custom object of 400 long-named fields: its full SELECT is about 18 KB once URL-encoded. */
function wideOrg(): SalesforceSimData {
  const data = small();
  const fields = Array.from({ length: 400 }, (_, i) => ({ name: `Quarterly_Commission_Adjustment_Note_${String(i).padStart(3, "0")}__c`, type: "string" }));
  const records = Array.from({ length: 3 }, (_, i) => ({ Name: `W${i}`, [fields[7]!.name]: `v${i}`, [fields[399]!.name]: `last${i}` }));
  data.objects.Wide__c = { describe: buildCustomObjectDescribe({ name: "Wide__c", keyPrefix: "a0W", fields }), records };
  return data;
}

describe("Salesforce connector: objects too wide for a REST URL", () => {
  it("check() validates every field in narrower queries (never a 414), and read() goes through Bulk", async () => {
    const { sim: s, src } = await source(wideOrg(), {}, { name: "wide", object: "Wide__c", fields: {} });
    const [c] = await src.check();
    expect(c!.problems).toEqual([]);
    expect(c!.ok).toBe(true);
    expect(c!.warnings.join("\n")).toMatch(/too long for a REST URL: reads go through Bulk API 2.0 \(REST queries .*\); checked in [2-9] narrower queries/);
    expect(calls(s, "status:414")).toBe(0);
    const r = await readAll(src, "wide");
    expect(r.records).toHaveLength(3);
    expect(r.records.find((x) => x.name === "W2")!.fields.Quarterly_Commission_Adjustment_Note_399__c).toBe("last2");
    expect(calls(s, "status:414")).toBe(0);
  });

  it("check() still reports a bad where, and says how an api: rest table too wide for one URL is read", async () => {
    const { src } = await source(
      wideOrg(),
      {},
      { name: "wide", object: "Wide__c", fields: {}, api: "rest", where: "Quarterly_Commission_Adjustment_Note_001__c = 5" },
    );
    const [c] = await src.check();
    expect(c!.ok).toBe(false);
    expect(c!.warnings.join("\n")).toMatch(/too long for a REST URL: reads go through REST queries of fewer fields joined by Id/);
    expect(c!.problems.join("\n")).toMatch(/INVALID_FIELD/);
  });
});

describe("Salesforce connector: single-currency org", () => {
  const single = () => ({ ...small(), currency: "single" as const, org: { ...small().org, multiCurrency: undefined } });

  it("amounts get the connector's defaultCurrency, and check() warns", async () => {
    const { src } = await source(single(), { defaultCurrency: "CHF" });
    const [c] = await src.check();
    expect(c!.ok).toBe(true);
    expect(c!.warnings.join("\n")).toMatch(/single-currency org.*amounts get the connector's defaultCurrency \(CHF\)/);
    const r = await readAll(src);
    expect(new Set(r.records.map((x) => x.fields.CurrencyIsoCode))).toEqual(new Set(["CHF"]));
  });

  it("without a connector defaultCurrency, amounts are left to sink.defaultCurrency (the mapper's), and check() says so", async () => {
    const { src } = await source(single());
    const [c] = await src.check();
    expect(c!.warnings.join("\n")).toMatch(/amounts get sink\.defaultCurrency/);
    const r = await readAll(src);
    expect(new Set(r.records.map((x) => x.fields.CurrencyIsoCode))).toEqual(new Set([null]));
  });
});

describe("Salesforce connector: purged records", () => {
  it("an incremental run cannot see a purge (queryAll no longer returns it); the next full read leaves it out, so the worker deletes it", async () => {
    const { sim: s, src } = await source(small());
    const first = await readAll(src);
    const victim = first.records[0]!.externalId;
    s.state.adminDelete("Opportunity", [victim], true);
    const inc = await readAll(src, "opportunities", false, first.state);
    expect(inc.deletedIds).not.toContain(victim);
    const full = await readAll(src);
    expect(full.records.map((r) => r.externalId)).not.toContain(victim);
    expect(full.records).toHaveLength(first.records.length - 1);
  });
});
