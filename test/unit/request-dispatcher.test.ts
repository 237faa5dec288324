/**
 * The producer member's request bookkeeping (producers/request-dispatcher.ts) without a broker:
 * runs are deferreds the test ends, commits are recorded.
 */
import { describe, expect, it } from "vitest";
import { type DispatchedRequest, RequestDispatcher, type RunOutcome } from "../../producers/request-dispatcher.ts";
import type { SyncRequest } from "../../schemas/index.ts";

const request = (connector: string, n = 0): SyncRequest =>
  ({ requestId: `${connector}-${n}`, connector, full: false, tables: [], requestedAt: n, by: "test" }) as unknown as SyncRequest;

function harness(slots = 2) {
  const running = new Map<string, { d: DispatchedRequest; end: (o: RunOutcome) => void; signal: AbortSignal }>();
  const started: string[] = [];
  const commits: Array<[number, number]> = [];
  const failures: string[] = [];
  let overlap = false;
  const dispatcher = new RequestDispatcher({
    slots,
    run: (d, signal) =>
      new Promise<RunOutcome>((resolve) => {
        if ([...running.values()].some((r) => r.d.request.connector === d.request.connector)) overlap = true;
        started.push(d.request.requestId);
        running.set(d.request.requestId, {
          d,
          signal,
          end: (o) => {
            running.delete(d.request.requestId);
            resolve(o);
          },
        });
        signal.addEventListener("abort", () => running.get(d.request.requestId)?.end("stopped"), { once: true });
      }),
    commit: async (partition, offset) => {
      commits.push([partition, offset]);
      return true;
    },
    failed: (d) => failures.push(d.request.requestId),
  });
  const tick = () => new Promise((r) => setTimeout(r, 0));
  const end = async (id: string, o: RunOutcome = "completed") => {
    const r = running.get(id);
    if (!r) throw new Error(`${id} is not running (running: ${[...running.keys()].join(", ")})`);
    r.end(o);
    await tick();
    await tick();
  };
  return { dispatcher, running, started, commits, failures, end, tick, overlap: () => overlap };
}

describe("RequestDispatcher", () => {
  it("runs a small request of another connector while a long one holds the same partition", async () => {
    const h = harness(2);
    h.dispatcher.assigned("m1", [0]);
    expect(h.dispatcher.offer(0, 10, request("big"))).toBe(true);
    expect(h.dispatcher.offer(0, 11, request("small"))).toBe(true);
    await h.tick();
    expect(h.started).toEqual(["big-0", "small-0"]);
    await h.end("small-0");
    // The small run ended, but the big one before it has not: the offset stays at the big request.
    expect(h.commits).toEqual([[0, 10]]);
    await h.end("big-0");
    expect(h.commits.at(-1)).toEqual([0, 12]);
  });

  it("queues a connector's request behind its own run, and never runs one connector twice at once", async () => {
    const h = harness(4);
    h.dispatcher.assigned("m1", [0, 1]);
    h.dispatcher.offer(0, 0, request("crm", 1));
    h.dispatcher.offer(1, 0, request("crm", 2)); // the same connector on another partition (a resharded topic)
    h.dispatcher.offer(0, 1, request("crm", 3));
    await h.tick();
    expect(h.started).toEqual(["crm-1"]);
    await h.end("crm-1");
    expect(h.started).toEqual(["crm-1", "crm-2"]);
    await h.end("crm-2");
    await h.end("crm-3");
    expect(h.started).toEqual(["crm-1", "crm-2", "crm-3"]);
    expect(h.overlap()).toBe(false);
    expect(h.commits.filter(([p]) => p === 0).at(-1)).toEqual([0, 2]);
    expect(h.commits.filter(([p]) => p === 1).at(-1)).toEqual([1, 1]);
  });

  it("refuses a new connector when every slot is running, and says when one frees", async () => {
    const h = harness(2);
    h.dispatcher.assigned("m1", [0]);
    expect(h.dispatcher.offer(0, 0, request("a"))).toBe(true);
    expect(h.dispatcher.offer(0, 1, request("b"))).toBe(true);
    expect(h.dispatcher.offer(0, 2, request("c"))).toBe(false);
    // A request of a running connector needs no slot.
    expect(h.dispatcher.offer(0, 2, request("a", 1))).toBe(true);
    const freed = h.dispatcher.slotFreed(60_000);
    let resolved = false;
    void freed.then(() => {
      resolved = true;
    });
    await h.end("b-0");
    expect(resolved).toBe(true);
    expect(h.dispatcher.offer(0, 3, request("c"))).toBe(true);
    await h.tick();
    expect(h.started).toContain("c-0");
  });

  it("a failed run ends its request (committed); a stopped one leaves it for the next owner", async () => {
    const h = harness(2);
    h.dispatcher.assigned("m1", [0]);
    h.dispatcher.offer(0, 5, request("a"));
    await h.tick();
    await h.end("a-0", "failed");
    expect(h.commits).toEqual([[0, 6]]);
    h.dispatcher.offer(0, 6, request("b"));
    await h.tick();
    await h.end("b-0", "stopped");
    expect(h.commits).toEqual([[0, 6]]);
  });

  it("stops the runs and queued requests of a partition taken away, and keeps the others", async () => {
    const h = harness(4);
    h.dispatcher.assigned("m1", [0, 1]);
    h.dispatcher.offer(0, 0, request("a"));
    h.dispatcher.offer(0, 1, request("a", 1));
    h.dispatcher.offer(1, 0, request("b"));
    await h.tick();
    const aSignal = h.running.get("a-0")!.signal;
    h.dispatcher.assigned("m1", [1]);
    await h.tick();
    await h.tick();
    expect(aSignal.aborted).toBe(true);
    expect(h.running.has("a-0")).toBe(false);
    // Its queued request is the new owner's: never started here.
    expect(h.started).not.toContain("a-1");
    expect(h.commits.some(([p]) => p === 0)).toBe(false);
    // The kept partition's run goes on, and its request is recognised when delivered again.
    expect(h.running.has("b-0")).toBe(true);
    expect(h.dispatcher.accepted(1, 0)).toBe(true);
    expect(h.dispatcher.accepted(0, 0)).toBe(false);
    await h.end("b-0");
    // The kept partition's offset is committed again in the new generation (its oldest unended request), then past it.
    expect(h.commits).toEqual([
      [1, 0],
      [1, 1],
    ]);
  });

  it("a new member id (the member was expelled) starts every partition afresh", async () => {
    const h = harness(2);
    h.dispatcher.assigned("m1", [0]);
    h.dispatcher.offer(0, 0, request("a"));
    await h.tick();
    const signal = h.running.get("a-0")!.signal;
    h.dispatcher.assigned("m2", [0]);
    expect(signal.aborted).toBe(true);
    expect(h.dispatcher.accepted(0, 0)).toBe(false);
  });

  it("reports a run that throws, and leaves its request uncommitted", async () => {
    const commits: Array<[number, number]> = [];
    const failures: string[] = [];
    const d = new RequestDispatcher({
      slots: 1,
      run: async () => {
        throw new Error("boom");
      },
      commit: async (p, o) => {
        commits.push([p, o]);
        return true;
      },
      failed: (r) => failures.push(r.request.requestId),
    });
    d.assigned("m1", [0]);
    d.offer(0, 0, request("a"));
    await new Promise((r) => setTimeout(r, 5));
    expect(failures).toEqual(["a-0"]);
    expect(commits).toEqual([]);
    expect(d.running).toBe(0);
  });

  it("stop() stops every run and waits for them", async () => {
    const h = harness(2);
    h.dispatcher.assigned("m1", [0]);
    h.dispatcher.offer(0, 0, request("a"));
    h.dispatcher.offer(0, 1, request("b"));
    await h.tick();
    await h.dispatcher.stop(new Error("stopping"), 1000);
    expect(h.running.size).toBe(0);
    expect(h.dispatcher.running).toBe(0);
    expect(h.dispatcher.offer(0, 2, request("c"))).toBe(false);
    expect(h.commits).toEqual([]);
  });
});
