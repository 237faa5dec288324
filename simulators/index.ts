/**
 * The list of API simulators `qobra-sync simulate <api>` can run, so that the CLI names none of
 * them: each entry loads its simulator when asked (the CLI's other commands never pay for it) and
 * serves its demo data unless given a data file (see simulators/<api>/README.md).
 */

interface SimulatorEntry {
  /** The `<api>` argument of `qobra-sync simulate`. */
  name: string;
  /** Runs the simulator until SIGINT/SIGTERM. */
  run(opts: { port: number; data?: string }): Promise<void>;
}

export const simulators: readonly SimulatorEntry[] = [
  {
    name: "salesforce",
    run: async ({ port, data }) => {
      const { runSalesforceSimulator } = await import("./salesforce/main.ts");
      await runSalesforceSimulator({ port, data: data ?? new URL("./salesforce/demo-data.json", import.meta.url).pathname });
    },
  },
  {
    name: "hubspot",
    run: async ({ port, data }) => {
      const { runHubSpotSimulator } = await import("./hubspot/main.ts");
      await runHubSpotSimulator({ port, data: data ?? new URL("./hubspot/demo-data.json", import.meta.url).pathname });
    },
  },
];
