/**
 * `qobra-sync simulate hubspot --port P --data FILE`: runs the simulator until SIGINT/SIGTERM.
 * Prints the base URL on stdout (one line, for scripts) and what to authenticate with on stderr.
 * `--data generate:deals=5000,companies=200` serves a generated portal instead of a file.
 * Also runnable directly: `node simulators/hubspot/main.ts --port 8089 --data simulators/hubspot/demo-data.json`.
 */
import { normalizeHubSpotData } from "./contract.ts";
import { loadData } from "./store.ts";
import { generateHubSpotData, parseGenerateSpec } from "./generate.ts";
import { startHubSpotSimulator } from "./server.ts";
import type { HubSpotSimData } from "./types.ts";

interface RunHubSpotSimulatorArgs {
  port: number;
  /** A JSON file path, or `generate:<key=value,...>` (see generateHubSpotData). */
  data: string;
  host?: string;
  validateResponses?: boolean;
  /** Stops the simulator when aborted (besides SIGINT/SIGTERM). */
  signal?: AbortSignal;
  /** Called with the URL once listening. */
  onListening?: (url: string) => void;
  /** More redirect URIs registered for the portal's main app (`--redirect-uri`; see GET /oauth/authorize). */
  redirectUris?: string[];
}

export async function runHubSpotSimulator(argv: RunHubSpotSimulatorArgs): Promise<void> {
  const data: HubSpotSimData = argv.data.startsWith("generate:")
    ? generateHubSpotData(parseGenerateSpec(argv.data.slice("generate:".length)))
    : normalizeHubSpotData(loadData(argv.data));
  if (argv.redirectUris?.length) {
    const o = data.portal?.oauth ?? {};
    data.portal = { ...(data.portal ?? {}), oauth: { ...o, redirectUris: [...(o.redirectUris ?? []), ...argv.redirectUris] } };
  }
  const sim = await startHubSpotSimulator({
    port: argv.port,
    data,
    validateResponses: argv.validateResponses ?? false,
    log: (line) => process.stderr.write(`${line}\n`),
    ...(argv.host !== undefined ? { host: argv.host } : {}),
  });
  process.stdout.write(`${sim.url}\n`);
  argv.onListening?.(sim.url);
  const o = data.portal?.oauth;
  const tokens = (o?.accessTokens ?? []).map((t) => t.token);
  process.stderr.write(
    `${[
      `hubspot-sim: portal ${sim.settings.portalId}; basePath ${sim.url}`,
      tokens.length ? `hubspot-sim: access tokens from the data file: ${tokens.join(", ")}` : "",
      `hubspot-sim: a fresh OAuth token: POST ${sim.url}/__simulator/tokens ; counters: GET ${sim.url}/__simulator/counters ; stats: GET ${sim.url}/__admin/stats`,
      `hubspot-sim: install page ${sim.url}/oauth/authorize (a connector's appUrl: ${sim.url}); redirect URIs: ${sim.settings.oauth.apps[0]!.redirectUris.join(", ") || "any"}`,
      `hubspot-sim: OAuth client ${sim.settings.oauth.clientId}; refresh tokens: ${(o?.refreshTokens ?? []).map((r) => (typeof r === "string" ? r : r.token)).join(", ") || "(none)"}`,
    ]
      .filter(Boolean)
      .join("\n")}\n`,
  );
  await new Promise<void>((resolve) => {
    const stop = () => {
      process.off("SIGINT", stop);
      process.off("SIGTERM", stop);
      argv.signal?.removeEventListener("abort", stop);
      resolve();
    };
    process.on("SIGINT", stop);
    process.on("SIGTERM", stop);
    if (argv.signal?.aborted) stop();
    else argv.signal?.addEventListener("abort", stop);
  });
  await sim.close();
  process.stderr.write("hubspot-sim: stopped\n");
}

function parseArgs(args: string[]): RunHubSpotSimulatorArgs {
  const out: RunHubSpotSimulatorArgs = { port: 0, data: new URL("./demo-data.json", import.meta.url).pathname };
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    const v = args[i + 1];
    if (a === "--port" && v !== undefined) {
      out.port = Number(v);
      i++;
    } else if (a === "--data" && v !== undefined) {
      out.data = v;
      i++;
    } else if (a === "--host" && v !== undefined) {
      out.host = v;
      i++;
    } else if (a === "--redirect-uri" && v !== undefined) {
      out.redirectUris = [...(out.redirectUris ?? []), v];
      i++;
    } else if (a === "--validate-responses") out.validateResponses = true;
    else throw new Error(`unknown argument ${a}; usage: main.ts --port P --data FILE [--host H] [--redirect-uri URL]... [--validate-responses]`);
  }
  return out;
}

if ((import.meta as ImportMeta & { main?: boolean }).main) {
  runHubSpotSimulator(parseArgs(process.argv.slice(2))).catch((e: unknown) => {
    process.stderr.write(`hubspot-sim: ${(e as Error).message}\n`);
    process.exitCode = 1;
  });
}
