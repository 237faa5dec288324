/**
 * Where log lines go (standard output by default, standard error for a `--json` command, a file or
 * standard error once the CLI says so), and the level the Kafka client's lines get in our log.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { logLevel } from "kafkajs";
import { afterAll, describe, expect, it } from "vitest";
import { DEGRADED_BROKER_ANSWERS, FENCED_PRODUCER_ANSWERS, kafkaLineLevel, TRANSIENT_BROKER_ANSWERS } from "../../lib/kafka-log.ts";

const script =
  "const { logger } = await import('./lib/log.ts'); logger.warn({ password: 'hunter2' }, 'a warning'); console.log(JSON.stringify({ answer: 42 }));";
const run = (extra: string[]) =>
  spawnSync(process.execPath, ["--input-type=module", "-e", script, ...extra], { encoding: "utf8", env: { ...process.env, QOBRA_SYNC_LOG_LEVEL: "warn" } });
const dir = mkdtempSync(join(tmpdir(), "qobra-log-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("log destination", () => {
  it("a --json command's standard output is its answer alone; the log line is on standard error, redacted", () => {
    const r = run(["--", "--json"]);
    expect(r.status).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({ answer: 42 });
    expect(r.stderr).toMatch(/"msg":"a warning"/);
    expect(r.stderr).not.toMatch(/hunter2/);
  });

  it("other processes log to standard output until told otherwise", () => {
    const out = execFileSync(process.execPath, ["--input-type=module", "-e", script], {
      encoding: "utf8",
      env: { ...process.env, QOBRA_SYNC_LOG_LEVEL: "warn" },
    });
    // pino writes asynchronously: the log line may come before or after the answer, but on standard output.
    expect(out.split("\n").some((line) => /"msg":"a warning"/.test(line))).toBe(true);
    expect(out).not.toMatch(/hunter2/);
  });

  const toFile = (file: string, extra = "") =>
    spawnSync(
      process.execPath,
      [
        "--input-type=module",
        "-e",
        `const { logger, logTo, logFilePath } = await import('./lib/log.ts');
         const child = logger.child({ component: 'c' });
         logTo({ file: ${JSON.stringify(file)} }); ${extra}
         child.error({ password: 'hunter2', url: 'postgres://u:s3cretpw@h/db' }, 'into the file');
         console.log('human line, log file ' + logFilePath());`,
      ],
      { encoding: "utf8", env: { ...process.env, QOBRA_SYNC_LOG_LEVEL: "info" } },
    );

  it("logTo a file: standard output and error keep the human lines only; the file gets the JSON lines, masked, folders created", () => {
    const file = join(dir, "a", "b", "cli.log");
    const r = toFile(file);
    expect(r.status).toBe(0);
    expect(r.stdout).toBe(`human line, log file ${file}\n`);
    expect(r.stderr).toBe("");
    const [line, ...rest] = readFileSync(file, "utf8").trim().split("\n");
    expect(rest).toEqual([]);
    const parsed = JSON.parse(line!) as { msg: string; component: string };
    expect(parsed).toMatchObject({ msg: "into the file", component: "c" });
    expect(line).not.toMatch(/hunter2|s3cretpw/);
    expect((statSync(file).mode & 0o777).toString(8)).toBe("600");
  });

  it("a log file past 10 MB is moved to .1 when opened; an unwritable one falls back to standard error with one human line", () => {
    const file = join(dir, "big.log");
    writeFileSync(file, "x".repeat(10 * 1024 * 1024 + 1));
    expect(toFile(file).status).toBe(0);
    expect(statSync(`${file}.1`).size).toBe(10 * 1024 * 1024 + 1);
    expect(readFileSync(file, "utf8")).toMatch(/^\{.*"into the file"/);

    const blocked = join(dir, "not-a-dir");
    writeFileSync(blocked, "");
    const r = toFile(join(blocked, "cli.log"));
    expect(r.status).toBe(0);
    const [human, json] = r.stderr.trim().split("\n");
    expect(human).toMatch(/^qobra-sync: cannot write the log file .*not-a-dir\/cli\.log .*; log lines go to standard error$/);
    expect(JSON.parse(json!)).toMatchObject({ msg: "into the file" });
  });

  it("logTo standard error", () => {
    const r = toFile(join(dir, "unused.log"), "logTo('stderr');");
    expect(r.stdout).toBe("human line, log file undefined\n");
    expect(JSON.parse(r.stderr)).toMatchObject({ msg: "into the file" });
  });
});

describe("the Kafka client's lines in our log", () => {
  // kafkajs's own error table (not part of its typed API: read here to check our copy of its texts).
  const { errorCodes } = createRequire(import.meta.url)("kafkajs/src/protocol/error.js") as {
    errorCodes: Array<{ type: string; message: string; retriable: boolean }>;
  };

  it("every listed answer is kafkajs's text for that error type, and every retriable kafkajs error is sorted", () => {
    for (const [type, text] of Object.entries({ ...TRANSIENT_BROKER_ANSWERS, ...DEGRADED_BROKER_ANSWERS, ...FENCED_PRODUCER_ANSWERS }))
      expect(errorCodes.find((e) => e.type === type)?.message, type).toBe(text);
    // Retried, but a real problem: they keep kafkajs's level.
    const real = ["CORRUPT_MESSAGE", "KAFKA_STORAGE_ERROR"];
    const sorted = new Set([...Object.keys(TRANSIENT_BROKER_ANSWERS), ...Object.keys(DEGRADED_BROKER_ANSWERS), ...real]);
    expect(errorCodes.filter((e) => e.retriable && !sorted.has(e.type)).map((e) => e.type)).toEqual([]);
  });

  it("transient answers during topic creation, rebalances and transactions are debug (info for a re-join), never error", () => {
    const E = logLevel.ERROR;
    const cases: Array<[logLevel, string, unknown, string | null]> = [
      [E, "Failed to send messages: This server is not the leader for that topic-partition", undefined, "debug"],
      [E, "Response Metadata(key: 3, version: 6)", "There is no leader for this topic-partition as we are in the middle of a leadership election", "debug"],
      [E, "Response Heartbeat(key: 12, version: 3)", "The group is rebalancing, so a rejoin is needed", "debug"],
      [E, "Response JoinGroup(key: 11, version: 5)", { message: "The coordinator is loading and hence can't process requests for this group" }, "debug"],
      [
        E,
        "Failed to send messages: The producer attempted to update a transaction while another concurrent operation on the same transaction was ongoing",
        undefined,
        "debug",
      ],
      [E, "Response AddPartitionsToTxn(key: 24, version: 1)", new Error(TRANSIENT_BROKER_ANSWERS.CONCURRENT_TRANSACTIONS), "debug"],
      [logLevel.WARN, "The group is rebalancing, re-joining", "The group is rebalancing, so a rejoin is needed", "info"],
      [E, "The coordinator is not aware of this member, re-joining the group", "The coordinator is not aware of this member", "info"],
      [E, "Failed to send messages: Messages are rejected since there are fewer in-sync replicas than required", undefined, "warn"],
      [E, "Restarting the consumer in 1533ms", undefined, "warn"],
      [E, "Failed to commit transaction", new Error(FENCED_PRODUCER_ANSWERS.INVALID_PRODUCER_EPOCH), "warn"],
      [logLevel.WARN, "Limiting retries for the idempotent producer may invalidate EoS guarantees", undefined, null],
      [logLevel.INFO, "Consumer has joined the group", undefined, "debug"],
    ];
    for (const [level, message, error, expected] of cases) expect(kafkaLineLevel(level, message, error), message).toBe(expected);
  });

  it("real errors stay errors: a crash (whatever its cause says), a failed handler, a refused connection", () => {
    const E = logLevel.ERROR;
    expect(kafkaLineLevel(E, "Crash: KafkaJSNonRetriableError: Failed to find group coordinator")).toBe("error");
    expect(kafkaLineLevel(E, "Crash: KafkaJSNumberOfRetriesExceeded: This server is not the leader for that topic-partition")).toBe("error");
    expect(kafkaLineLevel(E, "Error when calling eachBatch", new Error("sink PostgreSQL failed: relation does not exist"))).toBe("error");
    expect(kafkaLineLevel(E, "Connection error: connect ECONNREFUSED 127.0.0.1:9092")).toBe("error");
    expect(kafkaLineLevel(E, "Failed to send messages: Disk error when trying to access log file on the disk")).toBe("error");
    expect(kafkaLineLevel(logLevel.WARN, "Consumer group received unsubscribed topics")).toBe("warn");
  });
});
