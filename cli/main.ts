/**
 * The qobra-sync command line. Every command has --help; errors are one clear sentence.
 * Services (`run`, `serve`) log JSON lines on standard output; every other command prints human
 * lines only and sends its JSON log lines (ours and the Kafka client's) to a log file
 * (`.stack/logs/cli.log`, `$QOBRA_SYNC_LOG_FILE`), or to standard error with `--verbose`.
 */
import { isAbsolute, relative } from "node:path";
import { Command, Option } from "commander";
import { loadConfig, findConnector, type Config } from "../app/config.ts";
import { ConfigError, EtlError, RunFailedError, describeError } from "../lib/errors.ts";
import { cliLogFile, logFilePath, logger, logTo } from "../lib/log.ts";
import { maskDeep, maskSecrets } from "../lib/redact.ts";
import { openRuntime } from "../lib/runtime.ts";
import { eventsPosition, requireProducer, waitForRun, type Progress } from "../lib/wait.ts";
import { createConnector, pluginFor, sourcePlugins } from "../producers/connectors/registry.ts";
import { newRequest, publishRequest } from "../lib/protocol.ts";
import { runRoles, ROLES, type Role } from "../app/roles.ts";
import { lookupConnector } from "../app/connectors.ts";
import { registerDlqCommands } from "./dlq.ts";
import { registerOpsCommands, syncProgress } from "./ops-commands.ts";
import { registerScheduleCommand } from "./schedule-command.ts";
import { simulators } from "../simulators/index.ts";

const program = new Command();
program
  .name("qobra-sync")
  .description(`Keeps Qobra's PostgreSQL in step with ${listOf(sourcePlugins.map((p) => p.title))} sources, through Kafka.`)
  .option("-c, --config <file>", "configuration file (default: $QOBRA_SYNC_CONFIG or ./qobra-sync.yaml)")
  .option(
    "--verbose",
    "log lines (JSON, ours and the Kafka client's) on standard error instead of the log file ($QOBRA_SYNC_LOG_FILE, else .stack/logs/cli.log)",
  )
  .showHelpAfterError()
  .configureOutput({ outputError: (str, write) => write(str) });

/** Commands that are services: they keep structured JSON logs on standard output. */
const SERVICES = new Set(["run", "serve"]);

program.hook("preAction", (_root, action) => {
  let top: Command = action;
  while (top.parent && top.parent !== program) top = top.parent;
  if (SERVICES.has(top.name())) logTo("stdout");
  else logTo(program.opts<{ verbose?: boolean }>().verbose ? "stderr" : { file: cliLogFile() });
});

const config = (): Config => loadConfig(program.opts<{ config?: string }>().config).config;

program
  .command("run")
  .description("run the pipeline's roles in this process (all of them by default)")
  .addOption(new Option("--roles <roles>", `comma-separated roles: ${ROLES.join(",")}`).default(ROLES.join(",")))
  .action(async (opts: { roles: string }) => {
    const roles = opts.roles
      .split(",")
      .map((r) => r.trim())
      .filter(Boolean);
    const bad = roles.filter((r) => !(ROLES as readonly string[]).includes(r));
    if (bad.length > 0) throw new ConfigError(`unknown role ${bad.join(", ")}; roles are ${ROLES.join(", ")}`);
    const handle = await runRoles(config(), roles as Role[]);
    await new Promise<void>((resolve) => {
      const stop = () => {
        process.off("SIGINT", stop);
        process.off("SIGTERM", stop);
        // A second signal, or 30 s without a clean stop, ends the process anyway: nothing is
        // lost, since offsets only move after the data is durable.
        const force = () => {
          logger.warn("forced exit before a clean stop");
          process.exit(1);
        };
        process.once("SIGINT", force);
        process.once("SIGTERM", force);
        setTimeout(force, 30_000).unref();
        handle.stop().finally(resolve);
      };
      process.on("SIGINT", stop);
      process.on("SIGTERM", stop);
    });
    process.exit(0);
  });

program
  .command("sync")
  .description("request a sync of one connector (served by a running `qobra-sync run`)")
  .argument("<connector>", "connector id from the config, or <tenant>.<id> of one given through the API")
  .option("-t, --table <table...>", "only these Qobra tables")
  .option("--full", "full refresh (detects deletes)", false)
  .option("--force-deletes", "publish the deletes a full run infers even past the mass-delete guard", false)
  .option("--wait", "return when every record of the run is committed in the sink; exit 1 if the run failed", false)
  .option("--timeout <seconds>", "give up waiting after this long", "21600")
  .option("--json", "print the outcome as JSON", false)
  .action(async (id: string, opts: { table?: string[]; full: boolean; forceDeletes: boolean; wait: boolean; timeout: string; json: boolean }) => {
    const cfg = config();
    // A connector of the file, or one given through the API (a tenant's: `<tenant>.<id>`), read from the connectors topic.
    if (!id.includes(".")) await lookupConnector(cfg, id); // the file's error, listing its ids, before any Kafka
    const rt = await openRuntime(cfg, "cli");
    try {
      const connector = await lookupConnector(cfg, id, rt.port);
      const tables = opts.table ?? [];
      for (const t of tables)
        if (!connector.tables.some((x) => x.name === t))
          throw new ConfigError(`connector ${id} has no table ${t}; tables: ${connector.tables.map((x) => x.name).join(", ")}`);
      // Waiting for a run nobody serves would last for ever: without a producer, say so and stop
      // (7 s after the command started, giving a producer that is starting up 2 s at least).
      if (opts.wait) await requireProducer(rt.port, cfg.topicPrefix, { graceMs: Math.max(2000, 7000 - process.uptime() * 1000) });
      const producer = await rt.port.producer({ idempotent: true, maxInFlightRequests: 1 });
      const from = opts.wait ? await eventsPosition(rt.port) : new Map<number, number>();
      const request = newRequest(id, { full: opts.full, tables, by: "cli", forceDeletes: opts.forceDeletes });
      await publishRequest(producer, rt.codec, rt.port.topics, request);
      if (!opts.wait) {
        print(opts.json, { runId: request.requestId, connector: id, status: "requested" }, `sync of ${id} requested (run ${request.requestId})`);
        return;
      }
      const progress = progressPrinter(opts.json);
      const done = await waitForRun(rt.port, rt.codec, cfg.topicPrefix, request.requestId, from, {
        timeoutMs: Number(opts.timeout) * 1000,
        onProgress: progress,
        onWarning: warn,
        tables: (tables.length > 0 ? tables : connector.tables.map((t) => t.name)).map((table) => ({ connector: id, table })),
      });
      if (done.type === "RUN_FAILED") {
        print(opts.json, { runId: request.requestId, connector: id, status: "failed", error: done.error, counts: done.counts }, "");
        throw new RunFailedError(`run ${request.requestId} of ${id} failed: ${done.error}`);
      }
      print(
        opts.json,
        { runId: request.requestId, connector: id, status: "completed", counts: done.counts },
        `run ${request.requestId} of ${id} completed: ${done.counts.read ?? 0} records read and committed in the sink`,
      );
    } finally {
      await rt.close();
    }
  });

program
  .command("check")
  .description("check a connector: connection, permissions, table requirements")
  .argument("<connector>", "connector id from the config, or <tenant>.<id> of one given through the API")
  .option("--json", "print the result as JSON", false)
  .action(async (id: string, opts: { json: boolean }) => {
    const connector = createConnector(await lookupConnector(config(), id));
    try {
      const results = maskDeep(await connector.check());
      if (opts.json) console.log(JSON.stringify(results, null, 2));
      else
        for (const r of results) {
          console.log(`${r.ok ? "ok  " : "FAIL"} ${id}.${r.table}`);
          for (const p of r.problems) console.log(`     problem: ${p}`);
          for (const w of r.warnings) console.log(`     warning: ${w}`);
        }
      if (results.some((r) => !r.ok)) process.exitCode = 1;
    } finally {
      await connector.close();
    }
  });

const stack = program.command("stack").description("the local stack: Kafka (KRaft) and Apicurio Registry from Maven Central, plus the local PostgreSQL");
for (const action of ["up", "down", "status"] as const) {
  const cmd = stack
    .command(action)
    .description(
      { up: "start Kafka and the registry (idempotent), and check PostgreSQL", down: "stop what `stack up` started", status: "show each service" }[action],
    );
  if (action === "up")
    cmd.option("--brokers <n>", "Kafka brokers: 1 (default) or 3 (replication factor 3, min.insync.replicas 2); remembered by down, status and the next up");
  cmd.action(async (opts: { brokers?: string }) => {
    const m = await import("../stack/stack.ts");
    const print = (line: string) => console.log(line);
    const brokers = opts.brokers === undefined ? undefined : Number(opts.brokers);
    if (brokers !== undefined && brokers !== 1 && brokers !== 3) throw new ConfigError(`--brokers must be 1 or 3, got ${opts.brokers}`);
    const statuses = action === "up" ? await m.stackUp({ print, brokers }) : action === "down" ? await m.stackDown({ print }) : await m.stackStatus();
    const line = (s: (typeof statuses)[number], name: string) =>
      `${name.padEnd(9)} ${s.state.padEnd(11)} ${s.address}${s.pid ? ` pid ${s.pid}` : ""}${s.log ? ` log ${s.log}` : ""}${s.detail ? ` — ${s.detail}` : ""}`;
    for (const s of statuses) {
      console.log(line(s, s.name));
      for (const [i, b] of (s.brokers ?? []).entries()) console.log(line(b, `  #${i + 1}`));
    }
    if (action === "up" && statuses.some((s) => s.state === "unavailable" || s.state === "stopped" || s.state === "partial")) process.exitCode = 1;
  });
}

registerDlqCommands(program, config);
registerOpsCommands(program, config);
registerScheduleCommand(program, config);

program
  .command("auth")
  .description("run the OAuth authorization-code flow for a connector and store its refresh token (encrypted)")
  .argument("<connector>", "connector id from the config")
  .option("-p, --port <port>", "local port of the redirect listener (register http://127.0.0.1:PORT/oauth/callback in the app)", "1717")
  .action(async (id: string, opts: { port: string }) => {
    const connector = findConnector(config(), id);
    const print = (line: string) => console.log(line);
    const auth = pluginFor(connector.type).auth;
    if (!auth) throw new ConfigError(`connector ${id} is of type ${connector.type}, which has no OAuth flow in this version`);
    await auth.run(connector, { port: Number(opts.port), print });
  });

program
  .command("simulate")
  .description("run a local simulator of a source's API (for tests and the demo)")
  .argument("<api>", simulators.map((s) => s.name).join(" or "))
  .option("-p, --port <port>", "port to listen on (0 = any free port)", "0")
  .option("-d, --data <file>", "the simulator's data file (see simulators/<api>/README.md); with --orgs/--portals also generate:key=value,...")
  .option("--orgs <n>", "salesforce: serve N independent orgs in this process, routed by their credentials")
  .option("--portals <n>", "hubspot: serve N independent portals in this process, routed by their credentials")
  .option("--credentials <file>", "with --orgs/--portals: write every tenant's client id, secret and refresh token to FILE as JSON")
  .option("--redirect-uri <url...>", "hubspot: redirect URIs registered for the app(s), checked by the install page /oauth/authorize (default: any)")
  .action(async (api: string, opts: { port: string; data?: string; orgs?: string; portals?: string; credentials?: string; redirectUri?: string[] }) => {
    const port = Number(opts.port);
    if (!Number.isInteger(port) || port < 0 || port > 65535) throw new ConfigError(`--port must be a port number, got ${opts.port}`);
    const simulator = simulators.find((s) => s.name === api);
    if (!simulator) throw new ConfigError(`unknown simulator ${api}; use ${simulators.map((s) => s.name).join(" or ")}`);
    for (const other of ["orgs", "portals"] as const) {
      if (other !== simulator.tenantsOption && opts[other] !== undefined)
        throw new ConfigError(`--${other} does not apply to ${api}; use --${simulator.tenantsOption}`);
    }
    const given = opts[simulator.tenantsOption];
    const tenants = given === undefined ? undefined : Number(given);
    if (tenants !== undefined && (!Number.isInteger(tenants) || tenants < 1))
      throw new ConfigError(`--${simulator.tenantsOption} must be a positive integer, got ${given}`);
    if (opts.credentials !== undefined && tenants === undefined) throw new ConfigError(`--credentials needs --${simulator.tenantsOption}`);
    if (opts.redirectUri !== undefined && !simulator.redirectUris) throw new ConfigError(`--redirect-uri does not apply to ${api}`);
    await simulator.run({
      port,
      data: opts.data,
      tenants,
      credentials: opts.credentials,
      ...(opts.redirectUri !== undefined ? { redirectUris: opts.redirectUri } : {}),
    });
  });

/** "A, B and C". */
function listOf(names: string[]): string {
  return names.length > 1 ? `${names.slice(0, -1).join(", ")} and ${names.at(-1)}` : names.join("");
}

/** A path relative to the working directory when it is under it. */
function displayPath(file: string): string {
  const rel = relative(process.cwd(), file);
  return rel && !rel.startsWith("..") && !isAbsolute(rel) ? rel : file;
}

function print(json: boolean, obj: unknown, text: string): void {
  if (json) console.log(JSON.stringify(obj));
  else if (text) console.log(text);
}

/** A warning while a command goes on: one human line on standard error (below a progress bar). */
function warn(text: string): void {
  if (process.stdout.isTTY) process.stdout.write("\n");
  console.error(`qobra-sync: warning: ${text}`);
}

function progressPrinter(json: boolean): (p: Progress) => void {
  // A bar with records read, mapped and written on a terminal; plain lines otherwise (ops/progress.ts).
  return syncProgress({ json });
}

// Background work of some client libraries (Google's Cloud SQL connector refreshing certificates)
// can reject with nobody listening: log it; the operation that needed it reports its own error.
process.on("unhandledRejection", (reason) => {
  logger.error({ err: describeError(reason) }, "unhandled rejection in a background task");
});

try {
  await program.parseAsync(process.argv);
} catch (e) {
  const message = describeError(e);
  const configError = e instanceof EtlError && e.code === "CONFIG";
  logger.error({ err: e }, "command failed");
  // A configuration error is said whole in its line; for others, the log may tell more.
  const file = logFilePath();
  const where = file && !configError ? ` (details: ${displayPath(file)})` : "";
  console.error(`qobra-sync: ${maskSecrets(message)}${where}`);
  process.exitCode = configError ? 2 : 1;
}
