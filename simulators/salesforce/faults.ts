// What the Salesforce simulator's fault rules answer: the default error of each status, and the named faults of
// real orgs (`"fault": "concurrentRequests" | "queryTimeout" | "bulkJobRefused"`) that fill in a rule. The rules
// themselves (matching, counts) are the kit's (simulators/kit/faults.ts); they are applied in server.ts.

import type { SimFaultPreset, SimFaultRule } from "./types.ts";

/** The answer a fault with this status gives when the rule names no error code or message. */
export function defaultFaultError(status: number): { errorCode: string; message: string } {
  if (status === 401) return { errorCode: "INVALID_SESSION_ID", message: "Session expired or invalid" };
  if (status === 403) return { errorCode: "REQUEST_LIMIT_EXCEEDED", message: "TotalRequests Limit exceeded." };
  if (status === 503) return { errorCode: "SERVER_UNAVAILABLE", message: "Server temporarily unavailable. Please try again later." };
  if (status >= 500)
    return {
      errorCode: "UNKNOWN_EXCEPTION",
      message: "An unexpected error occurred. Please include this ErrorId if you contact support: 1949384578-12345 (-1234567890)",
    };
  return { errorCode: "SIMULATED_FAULT", message: `Simulated fault (HTTP ${status})` };
}

/**
 * Named faults of real orgs, answered exactly as Salesforce answers them:
 *  - concurrentRequests: the org's concurrent long-running request limit (help article 000389067), which
 *    clears in seconds, unlike the rolling 24 h budget ("TotalRequests Limit exceeded.") of the same code;
 *  - queryTimeout: a REST query Salesforce gave up on (restforce#790, airbyte#17503), on the first page only;
 *  - bulkJobRefused: a Bulk API 2.0 query job refused at creation, here for the daily job limit (the answer
 *    Airbyte's tests record).
 */
export const FAULT_PRESETS: Record<SimFaultPreset, Omit<SimFaultRule, "fault">> = {
  concurrentRequests: {
    path: "/services/data/**",
    status: 403,
    errorCode: "REQUEST_LIMIT_EXCEEDED",
    message: "ConcurrentRequests (Concurrent API Requests) Limit exceeded.",
  },
  queryTimeout: {
    method: "GET",
    path: "^/services/data/v[^/]+/(query|queryAll)$",
    status: 400,
    errorCode: "QUERY_TIMEOUT",
    message: "Your query request was running for too long.",
  },
  bulkJobRefused: {
    method: "POST",
    path: "/services/data/*/jobs/query",
    status: 400,
    errorCode: "LIMIT_EXCEEDED",
    message: "Max bulk v2 query jobs (10000) per 24 hrs has been reached (10001)",
  },
};

/** A rule with its preset's defaults filled in (the rule's own keys win). */
export function expandFault(rule: SimFaultRule): SimFaultRule {
  if (rule.fault === undefined) return rule;
  const preset = FAULT_PRESETS[rule.fault];
  if (!preset) throw new Error(`unknown fault "${String(rule.fault)}" (known: ${Object.keys(FAULT_PRESETS).join(", ")})`);
  const own = Object.fromEntries(Object.entries(rule).filter(([, v]) => v !== undefined));
  return { ...preset, ...own } as SimFaultRule;
}
