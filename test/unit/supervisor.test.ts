import { describe, expect, it } from "vitest";
import { supervise, type RoleHandle } from "../../app/supervisor.ts";

/** A role whose crash the test triggers; counts its starts and stops. */
function fakeRole(opts: { failStarts?: number } = {}) {
  let failStarts = opts.failStarts ?? 0;
  const state = { starts: 0, stops: 0, crash: (_e: Error) => {} };
  const start = async (): Promise<RoleHandle> => {
    if (state.starts > 0 && failStarts > 0) {
      failStarts--;
      throw new Error("broker still down");
    }
    state.starts++;
    const crashed = new Promise<Error>((resolve) => {
      state.crash = resolve;
    });
    return {
      crashed,
      stop: async () => {
        state.stops++;
      },
    };
  };
  return { state, start };
}

const tick = () => new Promise((r) => setTimeout(r, 5));

describe("supervise", () => {
  it("restarts a role whose Kafka client crashed, stopping what was left of it first", async () => {
    const role = fakeRole();
    const waits: number[] = [];
    const s = await supervise("mapper", role.start, {
      sleep: async (ms) => {
        waits.push(ms);
      },
    });
    expect(role.state.starts).toBe(1);
    role.state.crash(new Error("Failed to find group coordinator"));
    await tick();
    expect(role.state.stops).toBe(1);
    expect(role.state.starts).toBe(2);
    expect(s.restarts).toBe(1);
    role.state.crash(new Error("again"));
    await tick();
    expect(role.state.starts).toBe(3);
    expect(waits).toHaveLength(2);
    expect(waits[1]!).toBeGreaterThanOrEqual(waits[0]!); // backoff grows while crashes come quickly
    await s.stop();
    expect(role.state.stops).toBe(3);
  });

  it("keeps trying to start again while the start fails, with growing waits", async () => {
    const role = fakeRole({ failStarts: 3 });
    const waits: number[] = [];
    const s = await supervise("sink", role.start, {
      sleep: async (ms) => {
        waits.push(ms);
      },
      backoff: { initialMs: 100, maxMs: 1000 },
    });
    role.state.crash(new Error("crash"));
    for (let i = 0; i < 10 && role.state.starts < 2; i++) await tick();
    expect(role.state.starts).toBe(2);
    expect(waits).toHaveLength(4);
    expect(waits[3]!).toBeGreaterThan(waits[0]!);
    await s.stop();
  });

  it("resets the backoff once a start has lasted healthyAfterMs", async () => {
    const role = fakeRole();
    let t = 0;
    const waits: number[] = [];
    const s = await supervise("producer", role.start, {
      sleep: async (ms) => {
        waits.push(ms);
      },
      now: () => t,
      backoff: { initialMs: 1000, maxMs: 60_000 },
      healthyAfterMs: 60_000,
    });
    for (let i = 0; i < 4; i++) {
      role.state.crash(new Error("crash"));
      await tick();
    }
    t += 120_000;
    role.state.crash(new Error("crash after a long healthy run"));
    await tick();
    expect(waits).toHaveLength(5);
    expect(waits[3]!).toBeGreaterThanOrEqual(4000);
    expect(waits[4]!).toBeLessThanOrEqual(1000);
    await s.stop();
  });

  it("a role without Kafka consumers is only stopped; a failing first start is thrown", async () => {
    let stops = 0;
    const s = await supervise("scheduler", async () => ({
      stop: async () => {
        stops++;
      },
    }));
    await s.stop();
    expect(stops).toBe(1);
    await expect(
      supervise("sink", async () => {
        throw new Error("no broker");
      }),
    ).rejects.toThrow("no broker");
  });

  it("reloads a role at once on request, and retries a reload refused by a retriable answer within seconds", async () => {
    let refuse = 0;
    let starts = 0;
    let stops = 0;
    const start = async (): Promise<RoleHandle> => {
      if (refuse > 0) {
        refuse--;
        throw Object.assign(new Error("This server does not host this topic-partition"), { retriable: true });
      }
      starts++;
      return { crashed: new Promise<Error>(() => {}), stop: async () => void stops++ };
    };
    const waits: number[] = [];
    const s = await supervise("mapper", start, {
      sleep: async (ms) => {
        waits.push(ms);
      },
      backoff: { initialMs: 1000, maxMs: 60_000 },
    });
    await s.reload("the connectors changed");
    expect([starts, stops, waits]).toEqual([2, 1, []]);
    // A topic just created: the reload's start is refused five times; none of the waits reaches the crash backoff's minute.
    refuse = 5;
    await s.reload("the connectors changed");
    for (let i = 0; i < 50 && starts < 3; i++) await tick();
    expect(starts).toBe(3);
    expect(waits).toHaveLength(5);
    expect(Math.max(...waits)).toBeLessThanOrEqual(5000);
    await s.stop();
  });
});
