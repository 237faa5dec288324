/**
 * The operations commands: `replay`, `lag`, `web-token`, `serve`. Registered on the main program by
 * cli/main.ts; the work lives in ops/ (see docs/operations.md).
 */
import type { Command } from "commander";
import { lookupConnector } from "../app/connectors.ts";
import type { Config } from "../app/config.ts";
import { ConfigError } from "../lib/errors.ts";
import { createRenderer } from "../ops/progress.ts";
import { sinkRelationName } from "../ops/sink-stats.ts";
import { parseSince, formatCount, formatDuration } from "../ops/time.ts";

export { syncProgress } from "../ops/progress.ts";

export function registerOpsCommands(program: Command, loadConfig: () => Config): void {
  program
    .command("replay")
    .description("full resync of the sink from the raw topic, without calling the source; every role keeps running (see docs/operations.md)")
    .argument("<connector>", "connector id from the config, or <tenant>.<id> of one given through the API")
    .option("-t, --table <table...>", "only these Qobra tables (only their mapped topics are written again)")
    .option("--since <time>", "only records written to the raw topic since then: ISO date/time, epoch ms, or a duration ago (30m, 2h, 1d)")
    .option("--timeout <seconds>", "give up after this long", "21600")
    .option("--json", "print the outcome as JSON", false)
    .action(async (id: string, opts: { table?: string[]; since?: string; timeout: string; json: boolean }) => {
      const cfg = loadConfig();
      const connector = await lookupConnector(cfg, id);
      // A connector given through the API joins the file's for this replay.
      const withConnector = cfg.connectors.includes(connector) ? cfg : { ...cfg, connectors: [...cfg.connectors, connector] };
      const since = opts.since !== undefined ? parseSince(opts.since) : undefined;
      const { replay } = await import("../app/replay.ts");
      const r = createRenderer({ tty: process.stdout.isTTY === true, json: opts.json });
      if (!opts.json)
        console.log(`replaying ${id} from its raw topic${since !== undefined ? ` since ${new Date(since).toISOString()}` : ""} (no source call)…`);
      const result = await replay(
        withConnector,
        id,
        {
          tables: opts.table,
          since,
          timeoutMs: Number(opts.timeout) * 1000,
          by: "cli",
          onProgress: (p) =>
            r.update({
              phase: p.phase,
              read: p.total,
              mapped: p.mapped,
              written: p.phase === "done" ? p.total : Math.min(p.written, p.total),
              total: p.total,
              note: p.sinkLag !== null && p.phase === "writing" ? `${formatCount(p.sinkLag)} left to write` : undefined,
            }),
        },
        cfg,
      );
      r.end();
      if (opts.json) console.log(JSON.stringify(result));
      else {
        console.log(
          `replay ${result.runId} of ${id}: ${formatCount(result.records)} raw records mapped and written again in ${formatDuration(result.durationMs)}`,
        );
        for (const [t, n] of Object.entries(result.rows))
          console.log(`  ${sinkRelationName(cfg, connector, t)}: ${formatCount(n.live)} rows, ${formatCount(n.deleted)} soft-deleted`);
        if (result.ranRoles.length > 0) console.log(`no sink was running: replay ran the ${result.ranRoles.join(", ")} role itself (stopped again)`);
      }
    });

  program
    .command("lag")
    .description(
      "consumer lag per group, topic and partition (with the age of the oldest unprocessed record), and per table the last successful run and its staleness",
    )
    .option("--json", "print the report as JSON", false)
    .option("--no-age", "skip fetching the oldest unprocessed records' timestamps")
    .action(async (opts: { json: boolean; age: boolean }) => {
      const cfg = loadConfig();
      const { openRuntime } = await import("../lib/runtime.ts");
      const { collectLagReport, formatLagReport } = await import("../ops/report.ts");
      const rt = await openRuntime(cfg, "lag");
      try {
        const report = await collectLagReport(cfg, rt, { age: opts.age });
        console.log(opts.json ? JSON.stringify(report, null, 2) : formatLagReport(report));
      } finally {
        await rt.close();
      }
    });

  program
    .command("web-token")
    .description(
      "print the operator token a settings server generated at start (its config has no http.tokens), to log in on the page; it changes at each start",
    )
    .option("-p, --port <port>", "the server's port (default: http.port of the config, else 7070)")
    .option("--path", "print the token file's path instead of the token", false)
    .action(async (opts: { port?: string; path: boolean }) => {
      const cfg = opts.port === undefined ? loadConfig() : undefined;
      if (cfg?.http?.tokens) throw new ConfigError("the config sets http.tokens: log in with one of those tokens (no token is generated)");
      const port = opts.port === undefined ? (cfg?.http?.port ?? 7070) : Number(opts.port);
      if (!Number.isInteger(port) || port <= 0 || port > 65535) throw new ConfigError(`--port must be a port number, got ${opts.port}`);
      const { readGeneratedToken } = await import("../ops/http-auth.ts");
      const { file, token } = await readGeneratedToken(port);
      if (!token)
        throw new Error(
          `no token file at ${file}: start the settings server on port ${port} first (\`qobra-sync run\` with an http section, or \`qobra-sync serve\`)`,
        );
      console.log(opts.path ? file : token);
    });

  program
    .command("serve")
    .description(
      "serve the integration-settings page, /metrics and /healthz without running any role (`run` serves them too when the config has an http section)",
    )
    .option("-p, --port <port>", "port (default: http.port of the config, else 7070)")
    .option("--host <host>", "interface (default: http.host of the config, else 127.0.0.1)")
    .action(async (opts: { port?: string; host?: string }) => {
      const cfg = loadConfig();
      const port = opts.port === undefined ? undefined : Number(opts.port);
      if (port !== undefined && (!Number.isInteger(port) || port < 0 || port > 65535)) throw new ConfigError(`--port must be a port number, got ${opts.port}`);
      const { runRoles } = await import("../app/roles.ts");
      // No role, but the connector catalog (the file's connectors and those given through the API,
      // followed at run time), as `run` serves the page.
      const handle = await runRoles(cfg, [], { serve: { port, host: opts.host } });
      const server = handle.ops!;
      console.log(`integration settings: ${server.url}/  ·  metrics: ${server.url}/metrics  ·  health: ${server.url}/healthz`);
      if (server.tokenFile) console.log(`log in with the token generated for this run, in ${server.tokenFile} (\`qobra-sync web-token\` prints it)`);
      await new Promise<void>((resolve) => {
        const stop = () => {
          process.off("SIGINT", stop);
          process.off("SIGTERM", stop);
          resolve();
        };
        process.on("SIGINT", stop);
        process.on("SIGTERM", stop);
      });
      await handle.stop();
      process.exit(0);
    });
}
