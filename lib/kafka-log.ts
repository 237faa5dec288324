/**
 * The Kafka client's lines in our log, at the level they deserve. kafkajs logs every retried
 * request at ERROR, though most are the broker's ordinary answers while a partition's leader is
 * elected (right after topic creation, a broker restart), a group rebalances, or a previous
 * transaction's markers are still being written: kafkajs retries them itself, and a request that
 * still fails after its retries reaches our code as an exception, reported there. So:
 *  - a line carrying one of those transient answers goes to debug (info when it says that the
 *    consumer re-joins its group: worth seeing in a service, not an error);
 *  - a line carrying an answer of a degraded cluster, retried too (fewer in-sync replicas than
 *    required, a request timed out), goes to warn;
 *  - a consumer crash keeps its level (kafkajs gave up: that is real), whatever its cause says;
 *  - everything else keeps kafkajs's level, except that its INFO chatter is our debug.
 * kafkajs's own INFO lines are asked for only when our logger is at debug (`kafkaClientLogLevel`).
 */
import { logLevel, type LogEntry, type logCreator } from "kafkajs";
import { logger, type Logger } from "./log.ts";

/**
 * Retried answers of a healthy cluster, by kafkajs error type (the texts are kafkajs's own, checked
 * against its error table by test/unit/log.test.ts).
 */
export const TRANSIENT_BROKER_ANSWERS: Readonly<Record<string, string>> = {
  UNKNOWN_TOPIC_OR_PARTITION: "This server does not host this topic-partition",
  LEADER_NOT_AVAILABLE: "There is no leader for this topic-partition as we are in the middle of a leadership election",
  NOT_LEADER_FOR_PARTITION: "This server is not the leader for that topic-partition",
  REPLICA_NOT_AVAILABLE: "The replica is not available for the requested topic-partition",
  GROUP_LOAD_IN_PROGRESS: "The coordinator is loading and hence can't process requests for this group",
  GROUP_COORDINATOR_NOT_AVAILABLE: "The group coordinator is not available",
  NOT_COORDINATOR_FOR_GROUP: "This is not the correct coordinator for this group",
  ILLEGAL_GENERATION: "Specified group generation id is not valid",
  UNKNOWN_MEMBER_ID: "The coordinator is not aware of this member",
  REBALANCE_IN_PROGRESS: "The group is rebalancing, so a rejoin is needed",
  MEMBER_ID_REQUIRED: "The group member needs to have a valid member id before actually entering a consumer group",
  NOT_CONTROLLER: "This is not the correct controller for this cluster",
  CONCURRENT_TRANSACTIONS: "The producer attempted to update a transaction while another concurrent operation on the same transaction was ongoing",
  FETCH_SESSION_ID_NOT_FOUND: "The fetch session ID was not found",
  INVALID_FETCH_SESSION_EPOCH: "The fetch session epoch is invalid",
  LISTENER_NOT_FOUND: "There is no listener on the leader broker that matches the listener on which metadata request was processed",
  FENCED_LEADER_EPOCH: "The leader epoch in the request is older than the epoch on the broker",
  UNKNOWN_LEADER_EPOCH: "The leader epoch in the request is newer than the epoch on the broker",
  OFFSET_NOT_AVAILABLE:
    "The leader high watermark has not caught up from a recent leader election so the offsets cannot be guaranteed to be monotonically increasing",
  PREFERRED_LEADER_NOT_AVAILABLE: "The preferred leader was not available",
  ELIGIBLE_LEADERS_NOT_AVAILABLE: "Eligible topic partition leaders are not available",
  ELECTION_NOT_NEEDED: "Leader election not needed for topic partition",
  UNSTABLE_OFFSET_COMMIT: "There are unstable offsets that need to be cleared",
};

/** Retried answers of a degraded cluster (a broker down, an overloaded one): warn, not error. */
export const DEGRADED_BROKER_ANSWERS: Readonly<Record<string, string>> = {
  REQUEST_TIMED_OUT: "The request timed out",
  NETWORK_EXCEPTION: "The server disconnected before a response was received",
  NOT_ENOUGH_REPLICAS: "Messages are rejected since there are fewer in-sync replicas than required",
  NOT_ENOUGH_REPLICAS_AFTER_APPEND: "Messages are written to the log, but to fewer in-sync replicas than required",
};

/**
 * A producer fenced by a newer owner of its transactional id: expected when a mapper that lost its
 * partitions (a zombie) tries to commit; the mapper drops the batch and says so itself (warn).
 */
export const FENCED_PRODUCER_ANSWERS: Readonly<Record<string, string>> = {
  INVALID_PRODUCER_EPOCH:
    "Producer attempted an operation with an old epoch. Either there is a newer producer with the same transactionalId, or the producer's transaction has been expired by the broker",
};

type PinoLevel = "error" | "warn" | "info" | "debug";

const transient = Object.values(TRANSIENT_BROKER_ANSWERS);
const degraded = Object.values(DEGRADED_BROKER_ANSWERS);
const fenced = Object.values(FENCED_PRODUCER_ANSWERS);

function textOf(v: unknown): string {
  if (typeof v === "string") return v;
  if (v instanceof Error) return v.message;
  if (v && typeof v === "object" && "message" in v) return String((v as { message: unknown }).message);
  return "";
}

/** The level of one kafkajs line in our log; null drops it. */
export function kafkaLineLevel(level: logLevel, message: string, error?: unknown): PinoLevel | null {
  // Producers bound their retries on purpose: a dead broker fails the send (and the run, which is
  // repeated as a whole) instead of hanging; nothing is acknowledged that wasn't written.
  if (message.startsWith("Limiting retries for the idempotent producer")) return null;
  const own: PinoLevel = level === logLevel.ERROR ? "error" : level === logLevel.WARN ? "warn" : "debug";
  if (message.startsWith("Crash:")) return own;
  // The crash line before it was the error; the restart is the cure.
  if (message.startsWith("Restarting the consumer")) return "warn";
  const text = `${message}\n${textOf(error)}`;
  if (transient.some((t) => text.includes(t))) return /re-joining|resync group/.test(message) ? "info" : "debug";
  if (degraded.some((t) => text.includes(t))) return own === "error" ? "warn" : own;
  if (fenced.some((t) => text.includes(t))) return own === "error" ? "warn" : own;
  return own;
}

/** kafkajs's log level: its INFO lines (ours at debug) only when our logger is at debug. */
export function kafkaClientLogLevel(log: Logger = logger): logLevel {
  return log.isLevelEnabled("debug") ? logLevel.INFO : logLevel.WARN;
}

/** kafkajs's `logCreator`: its lines as JSON lines of our logger, component `kafkajs`. */
export function kafkaLogCreator(log: Logger = logger.child({ component: "kafkajs" })): logCreator {
  return () =>
    ({ namespace, level, log: entry }: LogEntry) => {
      const { message, ...extra } = entry;
      const to = kafkaLineLevel(level, message, (extra as { error?: unknown }).error);
      if (to) log[to]({ namespace, ...extra }, message);
    };
}
