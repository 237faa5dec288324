/**
 * Big pages: a table whose rows carry a long text column (1.5 kB, like a description or notes
 * field) must sync like any other, and so must a Salesforce object read through Bulk API 2.0
 * (10,000-record result pages). A page of 2,000 such PostgreSQL rows is ~3 MB of raw envelopes, and
 * a Bulk page of 10,000 opportunities ~5 MB: over the broker's default 1 MB record-batch limit
 * (message.max.bytes) when a page goes out as one batch per partition.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runRoles, type RunHandle } from "../../app/roles.ts";
import { openRuntime, type Runtime } from "../../lib/runtime.ts";
import { stackDefaults } from "../../stack/stack.ts";
import { startSalesforceSimulator, type SalesforceSimulator } from "../../simulators/salesforce/server.ts";
import { generateSalesforceData } from "../../simulators/salesforce/generate.ts";
import { dbUrl, ensureDatabase, testConfig, testConfigYaml, uniqueId, useScratchTokenStore, withDb } from "../../support/env.ts";
import { syncAndWait } from "../../support/pipeline.ts";

const SOURCE_DB = "qobra_it_source";
const SINK_DB = "qobra_it_sink";
const ROWS = 4000;

let rt: Runtime;
let pipeline: RunHandle;
let table: string;
let sinkSchema: string;

beforeAll(async () => {
  const id = uniqueId("wide");
  table = `wide_${id}`;
  sinkSchema = `sink_${id}`;
  await ensureDatabase(SOURCE_DB);
  await ensureDatabase(SINK_DB);
  await withDb(SOURCE_DB, (c) =>
    c.query(`CREATE TABLE public.${table} (id bigint PRIMARY KEY, title text, notes text);
    INSERT INTO public.${table} SELECT g, 'Deal ' || g, repeat(md5(g::text), 47) FROM generate_series(1, ${ROWS}) g`),
  );
  const config = testConfig(
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
        fields: { notes: string }`,
    }),
  );
  rt = await openRuntime(config, "test");
  pipeline = await runRoles(config, ["producer", "mapper", "sink"]);
});

afterAll(async () => {
  await pipeline?.stop();
  await rt?.close();
  await withDb(SOURCE_DB, (c) => c.query(`DROP TABLE IF EXISTS public.${table}`)).catch(() => undefined);
});

describe("rows with a long text column", () => {
  it("sync completely (no record batch over the broker's size limit)", async () => {
    const run = await syncAndWait(rt, "crm", { full: true, timeoutMs: 120_000 });
    expect(run.type, run.error ?? "").toBe("RUN_COMPLETED");
    const [n] = await withDb(
      SINK_DB,
      async (c) => (await c.query<{ n: string; len: number }>(`SELECT count(*) AS n, min(length(notes)) AS len FROM "${sinkSchema}"."crm__deals"`)).rows,
    );
    expect(n).toEqual({ n: String(ROWS), len: 32 * 47 });
  });
});

describe("a Salesforce object read through Bulk API 2.0", () => {
  let sim: SalesforceSimulator;
  let sfRt: Runtime;
  let sfPipeline: RunHandle;
  let schema: string;
  let tokens: ReturnType<typeof useScratchTokenStore> | undefined;

  beforeAll(async () => {
    const id = uniqueId("sfbulk");
    schema = `sink_${id}`;
    tokens = useScratchTokenStore("qobra-sfbulk-");
    sim = await startSalesforceSimulator({
      data: generateSalesforceData({
        opportunities: 15_000,
        accounts: 200,
        contacts: 200,
        leads: 20,
        tasks: 20,
        users: 10,
        commissions: 10,
        deletedRatio: 0,
        seed: 5,
      }),
      port: 0,
    });
    const t = sim.state.issueTokens();
    const config = testConfig(`
kafka: { brokers: ${JSON.stringify(stackDefaults.kafkaBrokers)}, partitions: 3 }
schemaRegistry: { url: "${stackDefaults.registryUrl}" }
topicPrefix: ${id}
sink: { databaseUrl: "${dbUrl(SINK_DB)}", schema: ${schema}, defaultCurrency: EUR }
connectors:
  - id: sf
    type: salesforce
    loginUrl: "${sim.url}"
    clientId: "${t.clientId}"
    clientSecret: "${t.clientSecret}"
    refreshToken: "${t.refreshToken}"
    bulkPollIntervalMs: 250
    tables:
      - name: opportunities
        object: Opportunity
        fields: { Amount: amount, CloseDate: date, OwnerId: user, AccountId: object, StageName: picklist, Probability: percentage, IsWon: bool }
`);
    sfRt = await openRuntime(config, "test");
    sfPipeline = await runRoles(config, ["producer", "mapper", "sink"]);
  });

  afterAll(async () => {
    await sfPipeline?.stop();
    await sfRt?.close();
    await sim?.close();
    tokens?.restore();
  });

  it("syncs every opportunity of a 15,000-record full run", async () => {
    const run = await syncAndWait(sfRt, "sf", { full: true, timeoutMs: 120_000 });
    expect(run.type, run.error ?? "").toBe("RUN_COMPLETED");
    expect(run.counts["read.opportunities"]).toBe(15_000);
    const [n] = await withDb(SINK_DB, async (c) => (await c.query<{ n: string }>(`SELECT count(*) AS n FROM "${schema}"."sf__opportunities"`)).rows);
    expect(n!.n).toBe("15000");
  });
});
