/**
 * The network guard of tenants' Salesforce connectors (lib/egress.ts) wired into jsforce: jsforce
 * sends every request through one process-wide undici dispatcher, so it is replaced (once, when the
 * first tenant's connector opens) by a routing dispatcher that uses the guard of the request's
 * async context; the Connection's and OAuth2 client's transports run each request in their guard's
 * context. Redirects (jsforce follows them itself) go through the same dispatcher. The connectors
 * of the config file have no guard: their requests take the ordinary agent.
 */
import { setDispatcher } from "jsforce/lib/request.js";
import { type EgressGuard, RoutingDispatcher, egressGuardOf } from "../../../lib/egress.ts";
import type { SalesforceConnector } from "./config.ts";

let routed = false;

/** The guard of a tenant's connector: loginUrl is named as such, any other host as the token answer's instance_url. */
export function salesforceGuard(config: SalesforceConnector): EgressGuard | undefined {
  const guard = egressGuardOf(config, "instance_url (the address Salesforce's token answer gives)");
  guard?.label(config.loginUrl, "loginUrl");
  return guard;
}

interface HasTransport {
  _transport: { httpRequest(req: unknown, options?: unknown): unknown };
}

/** Makes every request of a jsforce Connection or OAuth2 client go through the guard. */
export function guardTransport(target: object, guard: EgressGuard | undefined): void {
  if (!guard) return;
  if (!routed) {
    setDispatcher(new RoutingDispatcher());
    routed = true;
  }
  const t = target as HasTransport;
  const base = t._transport;
  t._transport = { httpRequest: (req, options) => guard.run(() => base.httpRequest(req, options)) };
}
