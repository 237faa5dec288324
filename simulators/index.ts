/**
 * The list of API simulators `qobra-sync simulate <api>` can run, so that the CLI names none of
 * them: each entry loads its simulator when asked (the CLI's other commands never pay for it) and
 * serves its demo data unless given a data file (see simulators/<api>/README.md).
 */

interface SimulatorEntry {
  /** The `<api>` argument of `qobra-sync simulate`. */
  name: string;
  /** The CLI option that serves several tenants in one process (`--orgs N`, `--portals N`). */
  tenantsOption: "orgs" | "portals";
  /** Whether `--redirect-uri` (the app's registered redirect URIs) applies. */
  redirectUris?: boolean;
  /**
   * Runs the simulator until SIGINT/SIGTERM. With `tenants`, serves that many independent orgs/portals, routed
   * by their credentials, and prints theirs (or writes them as JSON to `credentials`).
   */
  run(opts: { port: number; data?: string; tenants?: number; credentials?: string; redirectUris?: string[] }): Promise<void>;
}

export const simulators: readonly SimulatorEntry[] = [
  {
    name: "salesforce",
    tenantsOption: "orgs",
    run: async ({ port, data, tenants, credentials }) => {
      const file = data ?? new URL("./salesforce/demo-data.json", import.meta.url).pathname;
      if (tenants !== undefined) {
        const { runMultiOrgSalesforceSimulator } = await import("./salesforce/multi-org.ts");
        await runMultiOrgSalesforceSimulator({ port, data: file, orgs: tenants, ...(credentials !== undefined ? { credentials } : {}) });
        return;
      }
      const { runSalesforceSimulator } = await import("./salesforce/main.ts");
      await runSalesforceSimulator({ port, data: file });
    },
  },
  {
    name: "hubspot",
    tenantsOption: "portals",
    redirectUris: true,
    run: async ({ port, data, tenants, credentials, redirectUris }) => {
      const file = data ?? new URL("./hubspot/demo-data.json", import.meta.url).pathname;
      const uris = redirectUris !== undefined ? { redirectUris } : {};
      if (tenants !== undefined) {
        const { runMultiPortalHubSpotSimulator } = await import("./hubspot/multi-portal.ts");
        await runMultiPortalHubSpotSimulator({ port, data: file, portals: tenants, ...(credentials !== undefined ? { credentials } : {}), ...uris });
        return;
      }
      const { runHubSpotSimulator } = await import("./hubspot/main.ts");
      await runHubSpotSimulator({ port, data: file, ...uris });
    },
  },
];
