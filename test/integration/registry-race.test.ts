/**
 * Several worker processes publish to a new topic at the same instant (HubSpot window tasks do):
 * each registers the topic's subject through its own registry client. The real registry refuses
 * the second one that sets the new subject's compatibility; lib/registry.ts registers again.
 */
import { describe, expect, it } from "vitest";
import { Registry } from "../../lib/registry.ts";
import { schemas } from "../../schemas/index.ts";
import { stackDefaults } from "../../stack/stack.ts";
import { uniqueId } from "../../support/env.ts";

describe("registering a new subject from several clients at once", () => {
  it("gives every client the same schema id, none fails", async () => {
    const clients = Array.from({ length: 4 }, () => new Registry({ url: stackDefaults.registryUrl }));
    for (let round = 0; round < 5; round++) {
      const topic = `${uniqueId("race")}.raw.hs`;
      const results = await Promise.allSettled(clients.map((c) => c.register(topic, schemas.rawRecord)));
      const failed = results.filter((r) => r.status === "rejected").map((r) => String((r as PromiseRejectedResult).reason));
      expect(failed).toEqual([]);
      const ids = new Set(results.map((r) => (r as PromiseFulfilledResult<number>).value));
      expect(ids.size).toBe(1);
    }
  });
});
