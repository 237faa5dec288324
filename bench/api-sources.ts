/**
 * Salesforce and HubSpot source benchmark (`npm run bench`): the real connectors
 * (producers/connectors/{salesforce,hubspot}/) read a generated org / portal from the local
 * simulators, whose request counters (GET /__simulator/counters) say what was called. For each
 * read: API requests per 10,000 records vs the fewest the API allows for the same records, and
 * records/s vs the ceiling the rate limit allows. Medians of BENCH_RUNS (default 3).
 *
 *  - Salesforce: a full read of Opportunity (BENCH_SF_RECORDS, default 50,000) through Bulk API 2.0
 *    (`api: auto` chooses it above 10,000 records) and through REST (`api: rest`), each measured run
 *    handed the state the run before it saved, as the producer worker does (a first Bulk run, which
 *    knows nothing of the table, is run and reported apart). Fewest calls (docs/benchmarks.md says
 *    why): 1 describe of the object (its field types: Bulk CSV is all text), then REST ceil(N / 2,000)
 *    query pages; Bulk 1 job creation + 1 status poll (results are served only once the job is
 *    JobComplete) + ceil(N / 10,000) result pages (the simulator's page; maxRecords can only make it
 *    smaller). Salesforce has no per-second limit, only a rolling 24-hour budget of calls, so the
 *    ceiling given is what one day's budget (BENCH_SF_DAILY_BUDGET, default 100,000 calls) reads when
 *    every call carries a full page.
 *  - HubSpot: a full read of deals (BENCH_HS_RECORDS = N, default 20,000) with their companies and
 *    contacts associations and owners (list endpoint, 100 per page), then an incremental read after
 *    half of them changed and 1 % of the others gained a contact without any property change (the
 *    read is handed what the compacted raw topic would hold, support/memory-pipeline.ts, as
 *    the producer worker does). Fewest requests: full, ceil(N / 100) list pages + ceil(N / 1,000)
 *    association batch reads per associated type; incremental, ceil(changed / 200) search pages +
 *    ceil(N / 1,000) association batch reads per associated type (an association-only change
 *    moves no timestamp: every record's associations must be read to see one) + ceil(association-
 *    only changes / 100) batch reads of those records; both + the 4 pages of metadata this data
 *    needs (HS_METADATA: properties, pipelines, active owners, archived deals). Ceiling:
 *    100 requests per 10 s (the OAuth app's ten-secondly budget, which search and association
 *    batch reads do not consume) × 100 records = 1,000 records/s for lists; 5 searches per
 *    second × 200 = 1,000 records/s for search.
 *    Then a reconciliation (listIds): every deal id, ids-only searches of 200 by keyset on
 *    hs_object_id; fewest requests ceil(N / 200) (the list endpoint would need ceil(N / 100)); the
 *    searches are counted (the table's metadata, read once per run, apart); ceiling 5 × 200 ids/s.
 *
 * Prints its figures as the last lines; writes bench/results/api-sources.json.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseConfig } from "../app/config.ts";
import { createConnector } from "../producers/connectors/registry.ts";
import { startSalesforceSimulator } from "../simulators/salesforce/server.ts";
import { generateSalesforceData } from "../simulators/salesforce/generate.ts";
import { startHubSpotSimulator } from "../simulators/hubspot/server.ts";
import { generateHubSpotData } from "../simulators/hubspot/generate.ts";
import { log, median, round, writeResult } from "./common.ts";
import { MemoryPipeline } from "../support/memory-pipeline.ts";
import { newTokenKey } from "../support/env.ts";

const RUNS = Number(process.env.BENCH_RUNS ?? 3);
const SF_N = Number(process.env.BENCH_SF_RECORDS ?? 50_000);
const HS_N = Number(process.env.BENCH_HS_RECORDS ?? 20_000);
const SF_BUDGET = Number(process.env.BENCH_SF_DAILY_BUDGET ?? 100_000);
const HS_CHANGED = Math.floor(HS_N / 2);
const HS_ASSOC_ONLY = Math.max(1, Math.floor(HS_N / 100));
/**
 * What a run needs besides the records, one page each for this portal: the deal properties (their
 * types), the deal pipelines (stage labels), the active owners (emails; 5 < 100 per page), the
 * archived deals (deletes; none, still one page to know it). Not needed by this data, so not in the
 * minimum: the account (every deal has its currency) and the archived owners (no deal names one).
 */
const HS_METADATA = 4;

const tokenDir = mkdtempSync(join(tmpdir(), "qobra-bench-tokens-"));
process.env.QOBRA_SYNC_TOKEN_DIR = tokenDir;
process.env.QOBRA_SYNC_TOKEN_KEY = newTokenKey();
const yamlHead = `kafka: { brokers: ["127.0.0.1:9092"] }
schemaRegistry: { url: "http://127.0.0.1:8080/apis/ccompat/v7" }
sink: { databaseUrl: "postgres://postgres@127.0.0.1:5432/qobra_bench", defaultCurrency: EUR }
connectors:
`;

async function readAll(
  connectorYaml: string,
  table: string,
  opts: { full: boolean; state?: unknown; pipeline?: MemoryPipeline } = { full: true },
): Promise<{ records: number; deletes: number; seconds: number; state: unknown }> {
  const config = parseConfig(yamlHead + connectorYaml, "bench", {});
  const conn = createConnector(config.connectors[0]!);
  let records = 0,
    deletes = 0,
    state: unknown = null;
  const started = performance.now();
  const published = opts.pipeline?.startRun();
  try {
    for await (const page of conn.read(table, {
      full: opts.full,
      signal: new AbortController().signal,
      state: opts.state ?? null,
      runStartedAt: Date.now(),
      published,
    })) {
      opts.pipeline?.apply(page);
      records += page.records.length;
      deletes += page.deletedIds?.length ?? 0;
      if (page.state !== undefined) state = page.state;
    }
  } finally {
    await conn.close();
  }
  return { records, deletes, seconds: (performance.now() - started) / 1000, state };
}

/** Lists every id of a table as a reconciliation run does (SourceConnector.listIds). */
async function listAllIds(connectorYaml: string, table: string): Promise<{ ids: number; seconds: number }> {
  const config = parseConfig(yamlHead + connectorYaml, "bench", {});
  const conn = createConnector(config.connectors[0]!);
  let ids = 0;
  const started = performance.now();
  try {
    for await (const batch of conn.listIds!(table, { full: true, signal: new AbortController().signal, state: null, runStartedAt: Date.now() }))
      ids += batch.length;
  } finally {
    await conn.close();
  }
  return { ids, seconds: (performance.now() - started) / 1000 };
}

const diff = (after: Record<string, number>, before: Record<string, number>): Record<string, number> => {
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(after)) {
    const d = v - (before[k] ?? 0);
    if (d > 0) out[k] = d;
  }
  return out;
};
const sumWhere = (c: Record<string, number>, re: RegExp): number =>
  Object.entries(c)
    .filter(([k]) => re.test(k))
    .reduce((a, [, v]) => a + v, 0);
const per10k = (calls: number, records: number): number => round((calls * 10_000) / records, 1);

// ---- Salesforce -------------------------------------------------------------------------------

log(`generating a Salesforce org with ${SF_N} opportunities`);
const sfData = generateSalesforceData({ opportunities: SF_N, accounts: 500, contacts: 500, leads: 50, tasks: 100, users: 20, commissions: 10, seed: 11 });
const sf = await startSalesforceSimulator({ data: sfData, port: 0 });
const sfTokens = sf.state.issueTokens();
const sfYaml = (api: "auto" | "rest") => `  - id: sf${api}
    type: salesforce
    loginUrl: "${sf.url}"
    clientId: "${sfTokens.clientId}"
    clientSecret: "${sfTokens.clientSecret}"
    refreshToken: "${sfTokens.refreshToken}"
    tables:
      - name: opportunities
        object: Opportunity
        api: ${api}
        fields: { Amount: amount, CloseDate: date, CreatedDate: date, OwnerId: user, AccountId: object, StageName: picklist, Probability: percentage, IsWon: bool }
`;
interface SfRun {
  records: number;
  seconds: number;
  apiCalls: number;
  tokenCalls: number;
  byEndpoint: Record<string, number>;
}
const sfRead = async (name: string, api: "auto" | "rest", state: unknown): Promise<{ run: SfRun; state: unknown }> => {
  const before = sf.counters();
  const res = await readAll(sfYaml(api), "opportunities", { full: true, state });
  const c = diff(sf.counters(), before);
  const run = {
    records: res.records,
    seconds: res.seconds,
    apiCalls: c["api:counted"] ?? 0,
    tokenCalls: c["POST /services/oauth2/token"] ?? 0,
    byEndpoint: Object.fromEntries(Object.entries(c).filter(([k]) => /^(GET|POST|PATCH|DELETE) /.test(k))),
  };
  log(`salesforce ${name}: ${res.records} records in ${res.seconds.toFixed(1)} s, ${run.apiCalls} API calls (+${run.tokenCalls} token)`);
  return { run, state: res.state };
};
// The table's first run: no state, so the first REST page's totalSize picks Bulk and the polls back off.
const sfFirst = await sfRead("bulk first run (no state)", "auto", null);
const sfRuns: Record<"bulk" | "rest", SfRun[]> = { bulk: [], rest: [] };
const sfState: Record<"bulk" | "rest", unknown> = { bulk: sfFirst.state, rest: null };
for (let r = 0; r < RUNS; r++) {
  for (const [name, api] of [
    ["bulk", "auto"],
    ["rest", "rest"],
  ] as const) {
    const { run, state } = await sfRead(`${name} run ${r + 1}`, api, sfState[name]);
    sfRuns[name].push(run);
    sfState[name] = state;
  }
}
await sf.close();
const sfLive = sfRuns.bulk[0]!.records;
/** What every read needs besides its pages: the object's describe (its field types). */
const SF_DESCRIBE = 1;
const sfMin = { rest: SF_DESCRIBE + Math.ceil(sfLive / 2000), bulk: SF_DESCRIBE + 2 + Math.ceil(sfLive / 10_000) };
const sfSummary = (name: "bulk" | "rest") => {
  const runs = sfRuns[name];
  const calls = median(runs.map((x) => x.apiCalls)),
    rate = median(runs.map((x) => x.records / x.seconds));
  const recordsPerCall = name === "rest" ? 2000 : 10_000;
  return {
    records: runs[0]!.records,
    apiCalls: calls,
    callsPer10k: per10k(calls, runs[0]!.records),
    minimumCalls: sfMin[name],
    minimumPer10k: per10k(sfMin[name], runs[0]!.records),
    callsVsMinimum: round(calls / sfMin[name], 2),
    recordsPerSec: Math.round(rate),
    dailyBudgetCeilingRecordsPerSec: round((SF_BUDGET * recordsPerCall) / 86_400, 0),
    byEndpoint: runs[0]!.byEndpoint,
  };
};
const salesforce = {
  records: sfLive,
  dailyBudget: SF_BUDGET,
  bulk: sfSummary("bulk"),
  rest: sfSummary("rest"),
  bulkFirstRun: { apiCalls: sfFirst.run.apiCalls, callsVsMinimum: round(sfFirst.run.apiCalls / sfMin.bulk, 2), byEndpoint: sfFirst.run.byEndpoint },
};

// ---- HubSpot --------------------------------------------------------------------------------

log(`generating a HubSpot portal with ${HS_N} deals`);
interface HsRun {
  records: number;
  seconds: number;
  requests: number;
  byEndpoint: Record<string, number>;
}
const hsFull: HsRun[] = [],
  hsIncr: HsRun[] = [],
  hsRecon: HsRun[] = [];
for (let r = 0; r < RUNS; r++) {
  const data = generateHubSpotData({ deals: HS_N, companies: Math.ceil(HS_N / 20), contacts: Math.ceil(HS_N / 10), owners: 5, seed: 3 + r });
  data.portal = { ...(data.portal ?? {}), search: { ...(data.portal?.search ?? {}), indexDelayMs: 0 } };
  const hs = await startHubSpotSimulator({ data, port: 0 });
  const refresh = hs.addRefreshToken({ token: `bench-refresh-${r}` });
  const hsYaml = `  - id: hs${r}
    type: hubspot
    baseUrl: "${hs.url}"
    clientId: "${hs.settings.oauth.clientId}"
    clientSecret: "${hs.settings.oauth.clientSecret}"
    refreshToken: "${refresh}"
    lookbackSeconds: 0
    tables:
      - name: deals
        object: deals
`;
  try {
    const pipeline = new MemoryPipeline(); // what the compacted raw topic would hold
    const before = hs.counters();
    const full = await readAll(hsYaml, "deals", { full: true, pipeline });
    const c = diff(hs.counters(), before);
    hsFull.push({ records: full.records, seconds: full.seconds, requests: sumWhere(c, /^(GET|POST) \/(crm|crm-object-schemas|account-info)/), byEndpoint: c });
    log(`hubspot full run ${r + 1}: ${full.records} deals in ${full.seconds.toFixed(1)} s, ${hsFull.at(-1)!.requests} API requests`);
    // Half the deals change (found through search); 1 % of the others gain a contact without any
    // property change (found by the association sweep).
    await new Promise((res) => setTimeout(res, 1100));
    const ids = (data.objects?.deals?.records ?? []).map((x) => String(x.id));
    const contacts = (data.objects?.contacts?.records ?? []).map((x) => String(x.id));
    for (let i = 0; i < HS_CHANGED; i++) hs.upsertRecord("deals", { id: ids[i]!, properties: { amount: `${i}.5` } });
    for (let j = 0; j < HS_ASSOC_ONLY; j++) {
      const i = HS_CHANGED + j * Math.floor((HS_N - HS_CHANGED) / HS_ASSOC_ONLY);
      // another contact instead of the deal's only one (the generator gives deal i contact i mod n)
      hs.changeAssociations({
        remove: [{ fromType: "deals", fromId: ids[i]!, toType: "contacts", toId: contacts[i % contacts.length]!, associationTypeId: 3 }],
        add: [{ fromType: "deals", fromId: ids[i]!, toType: "contacts", toId: contacts[(i + 1) % contacts.length]!, associationTypeId: 3 }],
      });
    }
    const before2 = hs.counters();
    const incr = await readAll(hsYaml, "deals", { full: false, state: full.state, pipeline });
    const c2 = diff(hs.counters(), before2);
    hsIncr.push({
      records: incr.records,
      seconds: incr.seconds,
      requests: sumWhere(c2, /^(GET|POST) \/(crm|crm-object-schemas|account-info)/),
      byEndpoint: c2,
    });
    log(`hubspot incremental run ${r + 1}: ${incr.records} deals in ${incr.seconds.toFixed(1)} s, ${hsIncr.at(-1)!.requests} API requests`);
    // A reconciliation: every deal id the portal holds (ids only, the table's plan read once).
    const before3 = hs.counters();
    const recon = await listAllIds(hsYaml, "deals");
    const c3 = diff(hs.counters(), before3);
    hsRecon.push({ records: recon.ids, seconds: recon.seconds, requests: sumWhere(c3, /^POST \/crm\/v3\/objects\/[^/]+\/search$/), byEndpoint: c3 });
    log(`hubspot reconciliation run ${r + 1}: ${recon.ids} ids in ${recon.seconds.toFixed(1)} s, ${hsRecon.at(-1)!.requests} search requests`);
  } finally {
    await hs.close();
  }
}
const hsSummary = (runs: HsRun[], min: number, ceiling: number) => {
  const n = runs[0]!.records;
  const req = median(runs.map((x) => x.requests)),
    rate = median(runs.map((x) => x.records / x.seconds));
  return {
    records: n,
    requests: req,
    requestsPer10k: per10k(req, n),
    minimumRequests: min,
    minimumPer10k: per10k(min, n),
    requestsVsMinimum: round(req / min, 2),
    recordsPerSec: Math.round(rate),
    ceilingRecordsPerSec: ceiling,
    rateVsCeiling: round(rate / ceiling, 3),
    byEndpoint: runs[0]!.byEndpoint,
  };
};
const hubspot = {
  full: hsSummary(hsFull, HS_METADATA + Math.ceil(HS_N / 100) + 2 * Math.ceil(HS_N / 1000), 1000),
  // The changes' search pages; every record's associations (HubSpot gives no other sign of an
  // association-only change); the association-only changed records read again (batch read of 100).
  incremental: hsSummary(hsIncr, HS_METADATA + Math.ceil(HS_CHANGED / 200) + 2 * Math.ceil(HS_N / 1000) + Math.ceil(HS_ASSOC_ONLY / 100), 1000),
  // Ids only: one search page of 200 per 200 ids (counted: the searches; the table's metadata apart).
  reconciliation: hsSummary(hsRecon, Math.ceil(HS_N / 200), 1000),
};
rmSync(tokenDir, { recursive: true, force: true });

writeResult("api-sources", { runs: RUNS, salesforce, hubspot });
for (const k of ["bulk", "rest"] as const) {
  const s = salesforce[k];
  console.log(
    `Salesforce ${k === "bulk" ? "Bulk API 2.0" : "REST"} full read of ${s.records} opportunities: ${s.apiCalls} API calls (${s.callsPer10k} per 10,000 records) vs minimum ${s.minimumCalls} (${s.minimumPer10k}) = ratio ${s.callsVsMinimum.toFixed(2)} (median of ${RUNS}); ${s.recordsPerSec} records/s (no per-second limit; a ${SF_BUDGET}-call daily budget sustains ${s.dailyBudgetCeilingRecordsPerSec} records/s)`,
  );
}
console.log(
  `Salesforce Bulk API 2.0 first run of the table (no saved state: a REST page decides, polls back off): ${salesforce.bulkFirstRun.apiCalls} API calls vs minimum ${salesforce.bulk.minimumCalls} = ratio ${salesforce.bulkFirstRun.callsVsMinimum.toFixed(2)}`,
);
{
  const h = hubspot.reconciliation;
  console.log(
    `HubSpot reconciliation of ${h.records} deals (ids only, search 200 per page): ${h.requestsPer10k} requests per 10,000 records vs minimum ${h.minimumPer10k} = ceil(n/200) (ratio ${h.requestsVsMinimum}); ${h.recordsPerSec} ids/s vs ceiling ${h.ceilingRecordsPerSec} ids/s (5 searches/s × 200)`,
  );
}
for (const k of ["full", "incremental"] as const) {
  const h = hubspot[k];
  console.log(
    `HubSpot ${k} read of ${h.records} deals (+ companies, contacts associations, owners): ${h.requestsPer10k} requests per 10,000 records vs minimum ${h.minimumPer10k} (ratio ${h.requestsVsMinimum}); ${h.recordsPerSec} records/s vs rate-limit ceiling ${h.ceilingRecordsPerSec} records/s = ratio ${h.rateVsCeiling}`,
  );
}
process.exit(0);
