/**
 * The Salesforce source plugin: a Salesforce org, read through the REST and Bulk API 2.0 with a
 * connected app's OAuth refresh token. Everything about the source is in this folder: the config
 * schema (config.ts), the schedule (schedule.ts), the OAuth flow of `qobra-sync auth` (auth.ts),
 * the HTTP client (client.ts, bulk.ts, results-stream.ts; errors in errors.ts), value conversion (types.ts), the org's metadata and read
 * plans (plan.ts), SOQL (soql.ts) and the connector itself (source.ts).
 */
import type { SourcePlugin } from "../../connector.ts";
import { SalesforceConnector } from "./config.ts";
import { SalesforceSchedule, defaultSalesforceSchedule, describeSalesforceSchedule, salesforceCronRules, salesforceScheduleForm } from "./schedule.ts";
import { SalesforceSource } from "./source.ts";
import { defaultFieldType } from "./types.ts";

export const salesforcePlugin: SourcePlugin<SalesforceConnector, SalesforceSchedule> = {
  type: "salesforce",
  title: "Salesforce",
  configSchema: SalesforceConnector,
  scheduleSchema: SalesforceSchedule,
  defaultSchedule: defaultSalesforceSchedule,
  cronRules: salesforceCronRules,
  describeSchedule: describeSalesforceSchedule,
  scheduleForm: salesforceScheduleForm,
  incremental: true,
  create: (config) => new SalesforceSource(config),
  endpoints: (config) => [{ field: "loginUrl", host: new URL(config.loginUrl).hostname }],
  typePrefix: "sf",
  defaultFieldType,
  auth: {
    // Loaded when used: the flow's listener and jsforce's OAuth client serve only the OAuth flows.
    run: async (config, opts) => (await import("./auth.ts")).runSalesforceAuth(config, opts),
    authorizeUrl: async (config, redirectUri, state) => (await import("./auth.ts")).salesforceAuthorizeUrl(config, redirectUri, state),
    exchange: async (config, code, redirectUri, verifier) => (await import("./auth.ts")).exchangeSalesforceCode(config, code, redirectUri, verifier),
  },
};
