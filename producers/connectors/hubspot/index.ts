/**
 * The HubSpot source plugin: a HubSpot portal, read through the CRM APIs with an OAuth app's
 * refresh token, incrementally every few minutes in date windows any producer worker may take.
 * Everything about the source is in this folder: the config schema (config.ts, filter.ts), the
 * object catalog (catalog.ts), the schedule (schedule.ts), the OAuth flow of `qobra-sync auth`
 * (auth.ts), the HTTP client (api.ts, limits.ts, tokens.ts, errors.ts, api-types.ts), value
 * conversion (values.ts), search windows (search.ts), metadata and read plans (plan.ts), the
 * check (check.ts), the association sweep (associations.ts) and the connector itself (source.ts).
 */
import type { SourcePlugin } from "../../connector.ts";
import { HubSpotConnector } from "./config.ts";
import {
  HubSpotSchedule,
  INCREMENTAL_MINUTES,
  defaultHubSpotSchedule,
  describeHubSpotSchedule,
  hubspotCronRules,
  hubspotScheduleForm,
  prepareHubSpotScheduleEdit,
} from "./schedule.ts";
import { HubSpotSource } from "./source.ts";

export const hubspotPlugin: SourcePlugin<HubSpotConnector, HubSpotSchedule> = {
  type: "hubspot",
  title: "HubSpot",
  configSchema: HubSpotConnector,
  scheduleSchema: HubSpotSchedule,
  defaultSchedule: defaultHubSpotSchedule,
  cronRules: hubspotCronRules,
  describeSchedule: describeHubSpotSchedule,
  prepareScheduleEdit: prepareHubSpotScheduleEdit,
  scheduleHint: `(incrementalEveryMinutes: one of ${INCREMENTAL_MINUTES.join(", ")}; reconcileAt: HH:MM, or empty for none)`,
  scheduleForm: hubspotScheduleForm,
  incremental: true,
  create: (config, ctx) => new HubSpotSource(config, { sharedLimits: ctx?.rateLimits }),
  endpoints: (config) => [{ field: "baseUrl", host: new URL(config.baseUrl).hostname }],
  typePrefix: "hs",
  auth: {
    // Loaded when used: the flow's listener serves only the OAuth flows.
    run: async (config, opts) => (await import("./auth.ts")).runHubSpotAuth(config, opts),
    // HubSpot's flow has no PKCE: the client secret authenticates the exchange.
    authorizeUrl: async (config, redirectUri, state) => ({ url: (await import("./auth.ts")).hubspotAuthorizeUrl(config, { redirectUri, state }) }),
    exchange: async (config, code, redirectUri) => ({
      refreshToken: (await (await import("./auth.ts")).requestHubSpotTokens(config, code, redirectUri)).refreshToken,
      summary: "",
    }),
  },
};
