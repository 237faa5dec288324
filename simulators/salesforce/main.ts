// CLI entry: `qobra-sync simulate salesforce --port P --data FILE` calls runSalesforceSimulator.
// Prints the URL (and ready-to-use OAuth credentials), then serves until SIGINT/SIGTERM.

import { startSalesforceSimulator } from "./server.ts";

interface RunSalesforceSimulatorArgs {
  port: number;
  data: string;
  host?: string;
  /** instance_url announced to clients (e.g. http://host.docker.internal:P); defaults to the listening URL. */
  publicUrl?: string;
}

export async function runSalesforceSimulator(argv: RunSalesforceSimulatorArgs): Promise<void> {
  const sim = await startSalesforceSimulator({ port: argv.port, data: argv.data, host: argv.host, publicUrl: argv.publicUrl });
  const tokens = sim.state.issueTokens();
  const lines = [
    `Salesforce simulator listening on ${sim.url}`,
    `  login/instance URL : ${sim.url}`,
    `  client id / secret : ${tokens.clientId} / ${tokens.clientSecret}`,
    `  access token       : ${tokens.accessToken}`,
    `  refresh token      : ${tokens.refreshToken}`,
    `  counters           : GET ${sim.url}/__simulator/counters`,
    `  stats              : GET ${sim.url}/__admin/stats`,
    "Press Ctrl+C to stop.",
  ];
  process.stdout.write(`${lines.join("\n")}\n`);
  await new Promise<void>((resolveStop) => {
    const stop = (signal: NodeJS.Signals) => {
      process.off("SIGINT", stop);
      process.off("SIGTERM", stop);
      process.stdout.write(`Salesforce simulator: ${signal}, stopping\n`);
      sim.close().then(
        () => resolveStop(),
        () => resolveStop(),
      );
    };
    process.on("SIGINT", stop);
    process.on("SIGTERM", stop);
  });
}
