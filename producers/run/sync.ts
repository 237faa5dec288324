/**
 * One producer run, step by step: plan the request, announce it, then per table load the cursor,
 * read the source page by page (or by slices run as tasks), publish records, deletes and cursors,
 * and check the mass-delete guard; then publish the inferred deletes and RUN_COMPLETED.
 *
 * A table whose read meets a failure that may pass (EtlError.retriable: a refused connection, a
 * source's 5xx, a broker or registry restart) is read again from its last saved cursor, with
 * backoff, for up to `producer.retryForSeconds`; any other failure, or one that outlasts that,
 * ends the run with RUN_FAILED, whose `retriable` says which it was. A table that may be skipped
 * is reported and the rest go on.
 */
import type { Producer } from "kafkajs";
import type { Config } from "../../lib/config.ts";
import type { Codec } from "../../lib/codec.ts";
import { EtlError, TableSkippedError, describeError } from "../../lib/errors.ts";
import { asKafkaFailure, type KafkaPort } from "../../lib/kafka.ts";
import { retry, sleep, type RetryPolicy } from "../../lib/retry.ts";
import { logger } from "../../lib/log.ts";
import type { SyncRequest } from "../../schemas/index.ts";
import type { ConnectorContext, ReadOptions, SourceConnector, SourcePage } from "../connector.ts";
import { createConnector } from "../connectors/registry.ts";
import type { RunContext } from "./context.ts";
import { DeleteInference, liveIds, publishDeletes } from "./deletes.ts";
import { RunEvents, apiCounts, rawEndOffsets } from "./events.ts";
import { LiveIdCache } from "./live-cache.ts";
import { planRun } from "./plan.ts";
import { publishRecords, publishedRecords } from "./read.ts";
import { saveCursor, startingState } from "./state.ts";
import { runTasks } from "./tasks.ts";

const log = logger.child({ component: "producer" });

/** What the last completed full run of each table left live in its raw topic, per worker process (live-cache.ts). */
export const liveIdCache = new LiveIdCache();
/** A full run stops collecting a table's ids for the cache beyond this many (the cache would not keep it). */
const CACHE_TABLE_MAX = 500_000;

/** Runs one sync request to its end and publishes its lifecycle. Never throws for a failed run. */
export async function runSync(
  config: Config,
  port: KafkaPort,
  codec: Codec,
  producer: Producer,
  request: SyncRequest,
  heartbeat: () => Promise<void> = async () => {},
  ctx: ConnectorContext = {},
  /** Aborted to end the run early without an outcome (the worker lost its group membership, or is stopping): "stopped", no RUN_FAILED. */
  stop?: AbortSignal,
): Promise<"completed" | "failed" | "stopped"> {
  const rlog = log.child({ connector: request.connector, runId: request.requestId });
  const plan = planRun(config, request);
  if (!plan.ok) {
    await new RunEvents({ port, codec, producer, request, rawTopic: port.topics.raw(request.connector), heartbeat }).publish({
      type: "RUN_FAILED",
      error: plan.error,
    });
    return "failed";
  }
  const source = createConnector(plan.connector, ctx);
  // A source without incremental reads (its plugin's `incremental: false`) runs every request in
  // full: the run infers deletes, behind the mass-delete guard (plan.ts).
  if (plan.full && !request.full) request = { ...request, full: true };
  // A reconciliation lists ids where the connector can (listIds); elsewhere it is a full read.
  const reconcile = request.reconcile === true && typeof source.listIds === "function";
  if (request.reconcile && !reconcile) request = { ...request, full: true };
  const run: RunContext = { port, codec, producer, request, rawTopic: port.topics.raw(request.connector), heartbeat };
  const events = new RunEvents(run);
  const { tables } = plan;
  const started = Date.now();
  await events.publish({ type: "RUN_STARTED", counts: { tables: tables.length } });
  rlog.info({ tables, full: request.full, reconcile }, "run started");
  const abort = new AbortController();
  const onStop = () => abort.abort();
  stop?.addEventListener("abort", onStop, { once: true });
  if (stop?.aborted) abort.abort();
  // A connector whose signal is aborted ends its read quietly: a stopped run must not take that
  // for the end of the table (its deletes would be inferred from a partial read).
  const goOn = () => {
    if (stop?.aborted) throw stop.reason ?? new Error("run stopped");
  };
  const totals: Record<string, number> = { read: 0, deleted: 0 };
  const retryFor = (config.producer?.retryForSeconds ?? 300) * 1000;
  const policy: RetryPolicy = { retries: Number.POSITIVE_INFINITY, initialMs: 1000, maxMs: 30_000, maxElapsedMs: retryFor };
  let retries = 0;
  try {
    // Full runs are total: whatever the pipeline holds and this run did not see was deleted at the
    // source. Deletes are published only once every table of the run was read in full.
    const inference = new DeleteInference();
    // The ids each table of a full run saw (what its raw topic holds as live once the run has
    // completed), for the next full run of this process (live-cache.ts); null past CACHE_TABLE_MAX.
    const seenIds = new Map<string, Set<string> | null>();
    // The raw topic's end offsets before this run wrote anything: a cached table is valid if they
    // are those its last completed full run left (only this run writes to the topic meanwhile).
    const endsAtStart = request.full || reconcile ? await rawEndOffsets(run) : [];
    for (const table of tables) {
      let read = 0,
        deleted = 0,
        tracked = false;
      const handle = async (page: SourcePage): Promise<void> => {
        await publishRecords(producer, codec, run.rawTopic, request.connector, table, request.requestId, page);
        inference.seen(
          table,
          page.records.map((r) => r.externalId),
        );
        const seen = seenIds.get(table);
        if (seen) {
          for (const r of page.records) seen.add(r.externalId);
          for (const id of page.deletedIds ?? []) seen.delete(id);
          if (seen.size > CACHE_TABLE_MAX) seenIds.set(table, null);
        }
        if (page.deletedIds && page.deletedIds.length > 0) {
          deleted += await publishDeletes(run, table, page.deletedIds);
          inference.seen(table, page.deletedIds);
        }
        read += page.records.length;
        if (page.state !== undefined) await saveCursor(run, table, page.state);
        await events.progress(table, totals.read! + read);
        await heartbeat();
      };
      // One attempt: an incremental read goes on from the table's last saved cursor (where the
      // failure stopped it); a full read starts again, and counts only its last, complete pass.
      const readOnce = async (): Promise<void> => {
        if (request.full || reconcile) read = 0;
        if (request.full && !reconcile) seenIds.set(table, new Set());
        try {
          goOn(); // (a read started with an aborted signal is not a read)
          if ((request.full || reconcile) && !tracked) {
            // The raw topic unchanged since this process's last completed full run of the table: its ids.
            const cached = liveIdCache.get(run.rawTopic, table, endsAtStart);
            if (cached) totals.liveIdsCached = (totals.liveIdsCached ?? 0) + 1;
            inference.track(table, cached ?? (await liveIds(run, table)));
            tracked = true;
          }
          const readOpts: ReadOptions = {
            full: request.full,
            signal: abort.signal,
            state: await startingState(run, table, source),
            runStartedAt: started,
            heartbeat,
            published: request.full ? undefined : publishedRecords(run, table),
          };
          goOn();
          if (reconcile) {
            // Ids only: every id the source lists is live; the others the raw topic holds are deleted.
            for await (const ids of source.listIds!(table, { ...readOpts, full: true, state: null, published: undefined })) {
              inference.seen(table, ids);
              read += ids.length;
              await events.progress(table, totals.read! + read);
              await heartbeat();
            }
            return;
          }
          await readTable(
            run,
            source,
            table,
            readOpts,
            handle,
            (n) => {
              read += n;
            },
            rlog,
          );
        } catch (e) {
          throw asKafkaFailure(e, `connector ${request.connector}, table ${table}`);
        }
      };
      try {
        await retry(readOnce, policy, {
          signal: abort.signal,
          // Waits keep the run's consumer group membership alive (the request is not handed to another worker).
          sleep: (ms, signal) => waitWithHeartbeat(ms, heartbeat, signal),
          onRetry: async (e, n, waitMs) => {
            retries++;
            rlog.warn(
              { table, attempt: n, waitMs, err: describeError(e) },
              "table read failed with an error that may pass; reading it again from its last cursor",
            );
            await events.publish({ type: "PROGRESS", table, counts: { read: totals.read! + read, retries } }).catch(() => {});
          },
        });
      } catch (e) {
        if (!(e instanceof TableSkippedError)) throw e;
        // Nothing else stops: the table is reported as skipped, and no deletes are inferred for it.
        inference.drop(table);
        totals.skipped = (totals.skipped ?? 0) + 1;
        rlog.warn({ table, err: e.message }, "table skipped");
        await events.publish({ type: "TABLE_COMPLETED", table, counts: { read, skipped: 1 }, error: e.message });
        continue;
      }
      goOn();
      totals.read! += read;
      totals.deleted! += deleted;
      totals[`read.${table}`] = read;
      const threshold = (plan.connector as { massDeleteThreshold?: number }).massDeleteThreshold ?? 0.3;
      inference.guard(table, { threshold, force: request.forceDeletes, connector: request.connector });
      const unseen = inference.unseenCount(table);
      await events.publish({ type: "TABLE_COMPLETED", table, counts: { read, deleted, unseen, ...apiCounts(source.apiBudget?.()) } });
      rlog.info({ table, read, deleted, unseen }, "table read");
    }
    goOn();
    for (const [table, ids] of inference.pending()) {
      const n = await publishDeletes(run, table, ids);
      totals.deleted! += n;
      totals[`deleted.${table}`] = n;
    }
    goOn();
    if (request.full && !reconcile) {
      // Every table read in full and its deletes published: what each saw is what its topic holds as live.
      const ends = await rawEndOffsets(run);
      for (const table of tables) {
        const seen = seenIds.get(table);
        if (seen && inference.isTracked(table)) liveIdCache.set(run.rawTopic, table, ends, seen);
        else liveIdCache.drop(run.rawTopic, table);
      }
    }
    totals.durationMs = Date.now() - started;
    await events.completed(totals);
    rlog.info({ counts: totals }, "run completed");
    return "completed";
  } catch (e) {
    abort.abort();
    if (stop?.aborted) {
      // Not a failure of the run: its request is not committed, and is delivered again.
      rlog.warn({ err: describeError(stop.reason), at: describeError(e) }, "run stopped before its end; its request will be served again");
      return "stopped";
    }
    const retriable = e instanceof EtlError && e.retriable;
    const error =
      retriable && retryFor > 0
        ? `${describeError(e)} (may pass, but still failing after ${retries} retr${retries === 1 ? "y" : "ies"} within producer.retryForSeconds = ${retryFor / 1000})`
        : describeError(e);
    rlog.error({ err: error, retriable }, "run failed");
    await events.publish({ type: "RUN_FAILED", counts: { ...totals, retries }, error, retriable });
    return "failed";
  } finally {
    stop?.removeEventListener("abort", onStop);
    await source.close();
  }
}

/**
 * Reads one table through `handle`, page by page; an incremental read the connector splits into
 * slices runs them as tasks on sync.tasks (taken by any producer worker), then finishes it here.
 * `tasksRead` is told the records the tasks read (the pages handled here count themselves).
 */
async function readTable(
  run: RunContext,
  source: SourceConnector,
  table: string,
  readOpts: ReadOptions,
  handle: (page: SourcePage) => Promise<void>,
  tasksRead: (n: number) => void,
  rlog: typeof log,
): Promise<void> {
  const slices = !run.request.full && source.planSlices && source.readSlice && source.finishSlices ? await source.planSlices(table, readOpts) : null;
  if (slices && source.finishSlices) {
    tasksRead(await runTasks(run, table, slices, rlog));
    for await (const page of source.finishSlices(table, readOpts)) await handle(page);
    return;
  }
  for await (const page of source.read(table, readOpts)) await handle(page);
}

/** Sleeps `ms`, sending the consumer group a heartbeat every few seconds (a failed heartbeat is ignored). */
async function waitWithHeartbeat(ms: number, heartbeat: () => Promise<void>, signal?: AbortSignal): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end && !signal?.aborted) {
    await sleep(Math.min(3000, end - Date.now()), signal);
    await heartbeat().catch(() => {});
  }
}
