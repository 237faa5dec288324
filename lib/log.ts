/**
 * One JSON logger (pino) for every role. Child loggers carry the component and the Kafka
 * coordinates. Secrets are redacted by key path; and, as a last line of defence, every line is
 * passed through `maskSecrets` (lib/redact.ts) before it is written: a `scheme://user:password@`
 * loses its user-info, and the config's secret values are masked wherever they appear. Messages
 * describe connections by host, port and database (lib/endpoint.ts), never by their URL.
 */
import { pino, type DestinationStream, type Logger } from "pino";
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

/** A destination that masks secrets in each line before handing it to pino's own (sonic-boom) one. */
function masking(fd: number): DestinationStream {
  const dest = pino.destination(fd);
  return {
    write: (line: string) => dest.write(maskSecrets(line)),
    flush: (cb?: (err?: Error) => void) => dest.flush(cb),
    flushSync: () => dest.flushSync(),
  } as DestinationStream;
}

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
  masking(process.argv.includes("--json") ? 2 : 1),
);
