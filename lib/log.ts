/**
 * One JSON logger (pino) for every role. Child loggers carry the component and the Kafka
 * coordinates. Secrets are redacted by key path; and, as a last line of defence, every line is
 * passed through `maskSecrets` (lib/redact.ts) before it is written: a `scheme://user:password@`
 * loses its user-info, and the config's secret values are masked wherever they appear. Messages
 * describe connections by host, port and database (lib/endpoint.ts), never by their URL.
 *
 * Where the lines go is chosen by the entry point (`logTo`): a service (`qobra-sync run`, `serve`)
 * writes them to standard output; the other CLI commands write human lines only and send the JSON
 * lines to a log file (`<stackDir>/logs/cli.log` or `$QOBRA_SYNC_LOG_FILE`), or to standard error
 * with `--verbose` (cli/main.ts). Until then: standard output, or standard error for a `--json`
 * command, whose answer owns standard output (scripts parse it).
 */
import { closeSync, mkdirSync, openSync, renameSync, statSync } from "node:fs";
import { dirname, join } from "node:path";
import { pino, type DestinationStream, type Logger } from "pino";
import { logsDir } from "./paths.ts";
import { maskSecrets } from "./redact.ts";

export type { Logger };

const REDACT_PATHS = [
  "password",
  "*.password",
  "clientSecret",
  "*.clientSecret",
  "refreshToken",
  "*.refreshToken",
  "accessToken",
  "*.accessToken",
  "access_token",
  "*.access_token",
  "refresh_token",
  "*.refresh_token",
  "authorization",
  "*.authorization",
  "headers.authorization",
  "*.headers.authorization",
  "connection.url",
  "databaseUrl",
  "*.databaseUrl",
  "token",
  "*.token",
];

/** Where log lines go: a standard stream, or a file (appended to; opened on the first line). */
export type LogTarget = "stdout" | "stderr" | { file: string };

/** The CLI's log file: `$QOBRA_SYNC_LOG_FILE`, else `<stackDir>/logs/cli.log`. */
export const cliLogFile = (): string => process.env.QOBRA_SYNC_LOG_FILE || join(logsDir, "cli.log");

/** A log file past this size is moved to `<file>.1` when it is opened (one generation kept). */
const ROTATE_BYTES = 10 * 1024 * 1024;

let target: LogTarget = process.argv.includes("--json") ? "stderr" : "stdout";
type Destination = ReturnType<typeof pino.destination>;
let open: { target: LogTarget; dest: Destination } | undefined;

function openTarget(t: LogTarget): Destination {
  if (t === "stdout") return pino.destination(1);
  if (t === "stderr") return pino.destination(2);
  try {
    mkdirSync(dirname(t.file), { recursive: true });
    try {
      if (statSync(t.file).size > ROTATE_BYTES) renameSync(t.file, `${t.file}.1`);
    } catch {
      /* no file yet */
    }
    const fd = openSync(t.file, "a", 0o600);
    try {
      return pino.destination({ fd, sync: false });
    } catch (e) {
      closeSync(fd);
      throw e;
    }
  } catch (e) {
    // Better on standard error than lost: an error's details may be among them.
    process.stderr.write(`qobra-sync: cannot write the log file ${t.file} (${(e as Error).message}); log lines go to standard error\n`);
    target = "stderr";
    return pino.destination(2);
  }
}

function destination(): Destination {
  if (open?.target !== target) {
    open?.dest.flushSync();
    open = { target, dest: openTarget(target) };
  }
  return open.dest;
}

/** Sends every logger's lines (children included) to `t` from now on. */
export function logTo(t: LogTarget): void {
  target = t;
}

/** The file log lines go to, if they go to one. */
export function logFilePath(): string | undefined {
  return typeof target === "object" ? target.file : undefined;
}

/** Masks secrets in each line before handing it to the current target's (sonic-boom) destination. */
const masking: DestinationStream = {
  write: (line: string) => destination().write(maskSecrets(line)),
  flush: (cb?: (err?: Error) => void) => (open ? open.dest.flush(cb) : cb?.()),
  flushSync: () => open?.dest.flushSync(),
} as DestinationStream;

export const logger: Logger = pino(
  {
    level: process.env.QOBRA_SYNC_LOG_LEVEL ?? process.env.LOG_LEVEL ?? "info",
    base: { app: "qobra-sync" },
    redact: { paths: REDACT_PATHS, censor: "[redacted]" },
  },
  masking,
);
