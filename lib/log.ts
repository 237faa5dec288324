/**
 * One JSON logger (pino) for every role. Child loggers carry the component and the Kafka
 * coordinates. Secrets are redacted by path, and any string that looks like a credential-bearing
 * URL has its password masked before it is logged (see `redactUrl`).
 */
import { pino, type Logger } from "pino";

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
];

/**
 * Log lines go to standard output, except for a command asked for `--json`: its answer owns
 * standard output (scripts parse it), so its log lines (a broker warning at start-up, say) go to
 * standard error.
 */
export const logger: Logger = pino(
  {
    level: process.env.QOBRA_SYNC_LOG_LEVEL ?? process.env.LOG_LEVEL ?? "info",
    base: { app: "qobra-sync" },
    redact: { paths: REDACT_PATHS, censor: "[redacted]" },
  },
  process.argv.includes("--json") ? pino.destination(2) : undefined,
);

/** Masks the password of a URL (`postgres://u:secret@h/db` → `postgres://u:***@h/db`). */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = "***";
    for (const key of [...u.searchParams.keys()]) {
      if (/pass|secret|token|key/i.test(key)) u.searchParams.set(key, "***");
    }
    return u.toString();
  } catch {
    return url.replace(/\/\/([^:/@]+):[^@]*@/, "//$1:***@");
  }
}
