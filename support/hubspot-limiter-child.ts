/**
 * A producer-like worker process for test/integration/hubspot-shared-limiter.test.ts: builds the
 * HubSpot connector through its factory (with the PostgreSQL-backed rate limits in the context,
 * as producers/worker.ts does), fetches a token, prints `@@{"ready":true}`, waits for `go` on
 * stdin, then makes `calls` standard API calls at once (GET /account-info/v3/details, each under
 * the connector's rate limiter) and prints `@@{...}`: every HTTP attempt's start/end (epoch ms)
 * and status, the API's stats and the store's.
 *
 * Run: node support/hubspot-limiter-child.ts '<json options>' (Node 24 strips the types).
 */
import { createInterface } from "node:readline";
import { readRawAnswer } from "../producers/connectors/hubspot/api.ts";
import { HubSpotConnector } from "../producers/connectors/hubspot/config.ts";
import { hubspotPlugin } from "../producers/connectors/hubspot/index.ts";
import type { HubSpotSource } from "../producers/connectors/hubspot/source.ts";
import { SharedRateLimitStore } from "../producers/shared-rate-store.ts";

export interface ChildOptions {
  baseUrl: string;
  clientId: string;
  clientSecret: string;
  refreshToken: string;
  calls: number;
  perTenSeconds: number;
  /** The connector's `rateLimits.shared`. */
  shared: boolean;
  /** The sink database (the store is made from it, as the worker does). */
  databaseUrl: string;
  schema: string;
}

interface Attempt {
  start: number;
  end: number;
  status: number;
}
export interface ChildResult {
  pid: number;
  ok: number;
  failed: string[];
  attempts: Attempt[];
  api: { requests: number; rateLimited: number; retries: number };
  store: { acquired: number; waits: number; failures: number };
}

const say = (x: unknown) => process.stdout.write(`@@${JSON.stringify(x)}\n`);

async function main(): Promise<void> {
  const o = JSON.parse(process.argv[2] ?? "{}") as ChildOptions;
  const config = HubSpotConnector.parse({
    id: "hs",
    type: "hubspot",
    baseUrl: o.baseUrl,
    clientId: o.clientId,
    clientSecret: o.clientSecret,
    refreshToken: o.refreshToken,
    rateLimits: { perTenSeconds: o.perTenSeconds, searchPerSecond: 5, shared: o.shared },
    tables: [{ name: "deals", object: "deals" }],
  });
  const store = new SharedRateLimitStore({ databaseUrl: o.databaseUrl, schema: o.schema });
  const src = hubspotPlugin.create(config, { rateLimits: store }) as HubSpotSource;
  await src.api.authenticate();
  if (o.shared) await store.ready();
  say({ ready: true });
  const lines = createInterface({ input: process.stdin });
  await new Promise<void>((resolve) =>
    lines.on("line", (l) => {
      if (l.trim() === "go") resolve();
    }),
  );
  lines.close();

  const attempts: Attempt[] = [];
  const failed: string[] = [];
  let ok = 0;
  await Promise.all(
    Array.from({ length: o.calls }, async () => {
      try {
        await src.api.call("standard", "GET /account-info/v3/details", async (c) => {
          const a: Attempt = { start: Date.now(), end: 0, status: 0 };
          attempts.push(a);
          const res = await c.apiRequest({ method: "GET", path: "/account-info/v3/details" });
          a.end = Date.now();
          a.status = res.status;
          return readRawAnswer(res);
        });
        ok++;
      } catch (e) {
        failed.push((e as Error).message);
      }
    }),
  );
  await src.close();
  await store.close();
  const result: ChildResult = { pid: process.pid, ok, failed, attempts, api: { ...src.api.stats }, store: { ...store.stats } };
  say(result);
}

main().then(
  () => process.exit(0),
  (e: unknown) => {
    say({ error: (e as Error)?.stack ?? String(e) });
    process.exit(1);
  },
);
