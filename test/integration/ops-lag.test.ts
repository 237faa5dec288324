/**
 * Lag, /metrics and /healthz when the sink stops while records keep arriving: `qobra-sync lag`
 * and /metrics show the sink group's lag growing (with the age of the oldest waiting record),
 * /healthz fails once the group has not moved for the threshold (3 s here, 60 s by default);
 * restarting the sink drains the lag to zero and /healthz recovers.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runRoles, type RunHandle } from "../../app/roles.ts";
import { openRuntime, type Runtime } from "../../lib/runtime.ts";
import { eventsPosition, waitForRun } from "../../lib/wait.ts";
import { newRequest, publishRequest } from "../../lib/protocol.ts";
import type { SyncEvent } from "../../schemas/index.ts";
import { startOpsServer, type OpsServer } from "../../ops/server.ts";
import type { LagReport } from "../../ops/report.ts";
import { syncAndWait } from "../../support/pipeline.ts";
import { addRows, cli, eventually, getText, metricValue, opsFixture, sinkQuery, type OpsFixture } from "../../support/ops.ts";

let fx: OpsFixture;
let rt: Runtime;
let upstream: RunHandle;
let sink: RunHandle | undefined;
let server: OpsServer;

/** A full sync read and mapped, without waiting for the (stopped) sink. */
async function syncWithoutSink(): Promise<SyncEvent> {
  const producer = await rt.port.producer({ idempotent: true, maxInFlightRequests: 1 });
  try {
    const from = await eventsPosition(rt.port);
    const request = newRequest("crm", { full: true, by: "test" });
    await publishRequest(producer, rt.codec, rt.port.topics, request);
    return await waitForRun(rt.port, rt.codec, fx.config.topicPrefix, request.requestId, from, { tables: [], timeoutMs: 60_000 });
  } finally {
    await producer.disconnect();
  }
}

const sinkGroup = () => `${fx.config.topicPrefix}-sink`;
const metrics = async () => (await getText(`${server.url}/metrics`)).text;

beforeAll(async () => {
  fx = await opsFixture("lag", 200);
  rt = await openRuntime(fx.config, "test");
  upstream = await runRoles(fx.config, ["producer", "mapper"]);
  sink = await runRoles(fx.config, ["sink"]);
  server = await startOpsServer(fx.config, rt, {
    port: 0,
    monitor: { sampleMs: 500, dbSampleMs: 1000, stallMs: 3000, ageProbeMs: 1000 },
    processMetrics: false,
  });
});

afterAll(async () => {
  await server?.stop();
  await sink?.stop();
  await upstream?.stop();
  await rt?.close();
});

describe("lag, /metrics and /healthz", () => {
  it("a stopped sink shows growing lag, fails /healthz within the threshold; restarted, it drains the lag to zero", async () => {
    const first = await syncAndWait(rt, "crm", { full: true, timeoutMs: 60_000 });
    expect(first.type, first.error ?? "").toBe("RUN_COMPLETED");
    await eventually(async () => metricValue(await metrics(), "qobra_sync_consumer_group_lag", { group: sinkGroup() }) === 0, { what: "no sink lag" });
    expect((await getText(`${server.url}/healthz`)).status).toBe(200);

    await sink!.stop();
    sink = undefined;
    await addRows(fx.table, 201, 100);
    expect((await syncWithoutSink()).type).toBe("RUN_COMPLETED");
    // the 300 records of that run (its mapped offsets: records and transaction markers) wait for the sink
    const lag1 = await eventually(
      async () => {
        const v = metricValue(await metrics(), "qobra_sync_consumer_group_lag", { group: sinkGroup() });
        return v !== null && v >= 300 ? v : null;
      },
      { what: "sink lag in /metrics" },
    );
    await addRows(fx.table, 301, 100);
    expect((await syncWithoutSink()).type).toBe("RUN_COMPLETED");
    const lag2 = await eventually(
      async () => {
        const v = metricValue(await metrics(), "qobra_sync_consumer_group_lag", { group: sinkGroup() });
        return v !== null && v >= lag1 + 400 ? v : null;
      },
      { what: "growing sink lag" },
    );
    expect(lag2).toBeGreaterThan(lag1);
    const age = await eventually(async () => metricValue(await metrics(), "qobra_sync_consumer_oldest_unprocessed_age_seconds", { group: sinkGroup() }), {
      what: "the oldest waiting record's age",
    });
    expect(age).toBeGreaterThan(0);
    const text = await metrics();
    expect(metricValue(text, "qobra_sync_consumer_group_members", { group: sinkGroup() })).toBe(0);
    expect(metricValue(text, "qobra_sync_stage_records_total", { stage: "read", connector: "crm" })).toBe(200 + 300 + 400);

    // /healthz fails within the (test) threshold of 3 s, naming the stuck group
    const unhealthy = await eventually(
      async () => {
        const h = await getText(`${server.url}/healthz`);
        return h.status === 503 ? h : null;
      },
      { timeoutMs: 15_000, what: "/healthz 503" },
    );
    const body = JSON.parse(unhealthy.text) as { status: string; problems: string[] };
    expect(body.status).toBe("unhealthy");
    expect(body.problems.join("\n")).toMatch(
      new RegExp(
        `${sinkGroup()} \\(sink\\) has \\d+ record\\(s\\) to process and its committed offsets have not moved for \\d+ s; no consumer is running in the group`,
      ),
    );
    expect(metricValue(await metrics(), "qobra_sync_healthy")).toBe(0);

    // `qobra-sync lag --json`: per group/topic/partition, with the oldest waiting record
    const out = await cli(["lag", "--json"], fx.yaml);
    expect(out.code, out.stderr).toBe(0);
    const report = JSON.parse(out.stdout) as LagReport;
    const g = report.groups.find((x) => x.group === sinkGroup())!;
    expect(g).toMatchObject({ role: "sink", members: 0 });
    expect(g.lag).toBeGreaterThanOrEqual(lag2);
    const lagging = report.partitions.filter((p) => p.group === sinkGroup() && p.lag > 0);
    expect(lagging.length).toBeGreaterThan(0);
    for (const p of lagging) {
      expect(p.end - Math.max(p.committed, p.low)).toBe(p.lag);
      expect(Date.parse(p.oldestUnprocessedAt!)).toBeGreaterThan(Number(first.at)); // written after the first run
      expect(p.oldestUnprocessedAgeMs).toBeGreaterThan(0);
    }
    expect(report.tables).toEqual([
      expect.objectContaining({ connector: "crm", table: "deals", sinkRows: 200, lastRun: expect.objectContaining({ status: "completed" }) }),
    ]);
    expect(report.tables[0]!.stalenessMs).toBeGreaterThan(0);
    const human = await cli(["lag"], fx.yaml);
    expect(human.stdout).toMatch(new RegExp(`${sinkGroup()}\\s+sink\\s+0\\s+\\w+\\s+[\\d,]+\\s+\\d`));

    // the sink comes back: the lag drains to zero, the rows are there, /healthz recovers
    sink = await runRoles(fx.config, ["sink"]);
    await eventually(async () => metricValue(await metrics(), "qobra_sync_consumer_group_lag", { group: sinkGroup() }) === 0, {
      timeoutMs: 60_000,
      what: "the lag drained",
    });
    const [n] = await sinkQuery<{ n: string }>(`SELECT count(*) AS n FROM "${fx.sinkSchema}"."crm__deals" WHERE _deleted_at IS NULL`);
    expect(n!.n).toBe("400");
    await eventually(async () => (await getText(`${server.url}/healthz`)).status === 200, { timeoutMs: 10_000, what: "/healthz 200 again" });
  });
});
