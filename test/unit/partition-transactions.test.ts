/**
 * The pure parts of the mapper's fencing and of the roles' group membership: which kafkajs errors
 * mean "another owner initialised this partition's transactional id", the stable ids themselves,
 * the kafka.* timeouts of the config (defaults, the heartbeat/session rule, what the roles'
 * consumers get), and the timer heartbeat of long handlers (heartbeatWhileRunning) with the
 * membership signal it raises. The fencing itself runs against the broker in
 * test/integration/zombie.test.ts, a stopped run in test/integration/leave-group.test.ts.
 */
import kafkajs from "kafkajs";
import { describe, expect, it } from "vitest";
import { parseConfig } from "../../app/config.ts";
import { ConfigError } from "../../lib/errors.ts";
import { groupTimeouts, heartbeatWhileRunning, mustRejoin } from "../../lib/kafka.ts";
import { isFencedError, partitionTransactionalId } from "../../lib/partition-transactions.ts";

const { KafkaJSProtocolError, KafkaJSNonRetriableError, KafkaJSNumberOfRetriesExceeded } = kafkajs;
// kafkajs's typings take an Error; at run time its protocol errors are built from an entry of its error table.
const protocol = (type: string, code: number, message: string) => new KafkaJSProtocolError({ type, code, retriable: false, message } as unknown as Error);

const yaml = (kafka: string) => `
kafka: { brokers: ["127.0.0.1:9092"]${kafka} }
schemaRegistry: { url: "http://127.0.0.1:8080/apis/ccompat/v7" }
sink: { databaseUrl: "postgres://postgres@127.0.0.1:5432/qobra", defaultCurrency: EUR }
connectors: []
`;

describe("isFencedError", () => {
  const epoch = protocol("INVALID_PRODUCER_EPOCH", 47, "Producer attempted an operation with an old epoch");
  it("recognises the broker's fencing answers, however kafkajs wrapped them", () => {
    expect(isFencedError(epoch)).toBe(true);
    const wrapped = new KafkaJSNonRetriableError(epoch);
    Object.assign(wrapped, { cause: epoch });
    expect(isFencedError(wrapped)).toBe(true);
    expect(isFencedError(new KafkaJSNumberOfRetriesExceeded(epoch, { retryCount: 5, retryTime: 100 }))).toBe(true);
    // PRODUCER_FENCED (90) is unknown to kafkajs 2.2.4, which names it by its code.
    expect(isFencedError(protocol("KAFKAJS_UNKNOWN_ERROR_CODE", -99, "Unknown error code 90"))).toBe(true);
  });
  it("does not take other failures for fencing", () => {
    expect(isFencedError(protocol("REBALANCE_IN_PROGRESS", 27, "The group is rebalancing, so a rejoin is needed"))).toBe(false);
    expect(isFencedError(protocol("CONCURRENT_TRANSACTIONS", 51, "concurrent operation on the same transaction"))).toBe(false);
    expect(isFencedError(protocol("KAFKAJS_UNKNOWN_ERROR_CODE", -99, "Unknown error code 900"))).toBe(false);
    expect(isFencedError(new Error("connect ECONNREFUSED 127.0.0.1:9092"))).toBe(false);
    expect(isFencedError(undefined)).toBe(false);
  });
});

describe("partitionTransactionalId", () => {
  it("is stable per group, topic and partition, and distinct between them", () => {
    expect(partitionTransactionalId("qobra-mapper", "qobra.raw.crm", 0)).toBe("qobra-mapper.qobra.raw.crm.0");
    const ids = new Set([0, 1, 2].flatMap((p) => ["qobra.raw.crm", "qobra.raw.hubspot"].map((t) => partitionTransactionalId("qobra-mapper", t, p))));
    expect(ids.size).toBe(6);
    expect(partitionTransactionalId("other-mapper", "qobra.raw.crm", 0)).not.toBe(partitionTransactionalId("qobra-mapper", "qobra.raw.crm", 0));
  });
  it("hashes a long name, keeping it distinct and stable", () => {
    const topic = `qobra.raw.${"x".repeat(300)}`;
    const id = partitionTransactionalId("qobra-mapper", topic, 7);
    expect(id.length).toBeLessThanOrEqual(200);
    expect(id).toBe(partitionTransactionalId("qobra-mapper", topic, 7));
    expect(id).not.toBe(partitionTransactionalId("qobra-mapper", `${topic}y`, 7));
    expect(id.endsWith(".7")).toBe(true);
  });
});

describe("kafka group timeouts", () => {
  it("default to a 6 s session, 1 s heartbeats and polls, a 60 s rebalance and a 15 s transaction timeout", () => {
    const c = parseConfig(yaml(""), "x", {});
    expect(groupTimeouts(c)).toEqual({ sessionTimeout: 6000, heartbeatInterval: 1000, rebalanceTimeout: 60_000, maxWaitTimeInMs: 1000 });
    expect(c.kafka.transactionTimeoutMs).toBe(15_000);
  });
  it("are configurable", () => {
    const c = parseConfig(yaml(", sessionTimeoutMs: 10000, heartbeatIntervalMs: 2000, rebalanceTimeoutMs: 30000, transactionTimeoutMs: 20000"), "x", {});
    expect(groupTimeouts(c)).toEqual({ sessionTimeout: 10_000, heartbeatInterval: 2000, rebalanceTimeout: 30_000, maxWaitTimeInMs: 2000 });
    expect(c.kafka.transactionTimeoutMs).toBe(20_000);
  });
  it("refuse a heartbeat interval over a third of the session timeout, naming the key", () => {
    expect(() => parseConfig(yaml(", sessionTimeoutMs: 6000, heartbeatIntervalMs: 3000"), "x", {})).toThrow(ConfigError);
    expect(() => parseConfig(yaml(", sessionTimeoutMs: 6000, heartbeatIntervalMs: 3000"), "x", {})).toThrow(
      /kafka\.heartbeatIntervalMs.*third of sessionTimeoutMs/s,
    );
  });
});

describe("heartbeatWhileRunning", () => {
  it("heartbeats on a timer while the handler runs, and stops with it", async () => {
    let beats = 0;
    const handler = heartbeatWhileRunning(20, async () => {
      await new Promise((r) => setTimeout(r, 130));
    });
    await handler({
      heartbeat: async () => {
        beats++;
      },
    });
    const atEnd = beats;
    expect(atEnd).toBeGreaterThanOrEqual(3);
    await new Promise((r) => setTimeout(r, 80));
    expect(beats).toBe(atEnd);
  });
  it("aborts the membership signal when a heartbeat says the member must rejoin, with that answer", async () => {
    const rebalancing = protocol("REBALANCE_IN_PROGRESS", 27, "The group is rebalancing, so a rejoin is needed");
    let seen: AbortSignal | undefined;
    const handler = heartbeatWhileRunning(10, async (_payload, membership) => {
      seen = membership;
      await new Promise<void>((resolve) => membership.addEventListener("abort", () => resolve(), { once: true }));
    });
    await handler({ heartbeat: () => Promise.reject(rebalancing) });
    expect(seen?.aborted).toBe(true);
    expect(seen?.reason).toBe(rebalancing);
  });
  it("passes the handler a heartbeat that reports too, and leaves other failures to the handler", async () => {
    const refused = new Error("connect ECONNREFUSED 127.0.0.1:9092");
    let membershipAborted: boolean | undefined;
    const handler = heartbeatWhileRunning(1000, async ({ heartbeat }, membership) => {
      await expect(heartbeat()).rejects.toBe(refused);
      membershipAborted = membership.aborted;
    });
    await handler({ heartbeat: () => Promise.reject(refused) });
    expect(membershipAborted).toBe(false);
  });
  it("knows the answers after which a member must rejoin", () => {
    for (const [type, code] of [
      ["REBALANCE_IN_PROGRESS", 27],
      ["ILLEGAL_GENERATION", 22],
      ["UNKNOWN_MEMBER_ID", 25],
      ["NOT_COORDINATOR_FOR_GROUP", 16],
    ] as const)
      expect(mustRejoin(protocol(type, code, type)), type).toBe(true);
    expect(mustRejoin(protocol("GROUP_COORDINATOR_NOT_AVAILABLE", 15, "The group coordinator is not available"))).toBe(false);
    expect(mustRejoin(new Error("boom"))).toBe(false);
  });
});
