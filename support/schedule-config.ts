/**
 * The config the schedule tests (test/unit/scheduler.test.ts, test/unit/spread.test.ts) build on:
 * one connector of each source (`crm` PostgreSQL, `sf` Salesforce, `hs` HubSpot), each with its
 * source's default schedule unless a schedule block is given, parsed as the config file is.
 */
import { parseConfig, type Config } from "../app/config.ts";

export interface ScheduleConfigOptions {
  /** scheduler.spreadMinutes (its default when absent). */
  spreadMinutes?: number;
  /** The Salesforce and HubSpot connectors' schedule blocks, as YAML flow maps. */
  sfSchedule?: string;
  hsSchedule?: string;
  /** YAML appended under `connectors:` (more entries). */
  extra?: string;
}

export function scheduleConfig(opts: ScheduleConfigOptions = {}): Config {
  const schedule = (block?: string) => (block ? `\n    schedule: ${block}` : "");
  return parseConfig(
    `
kafka: { brokers: ["127.0.0.1:9092"] }${opts.spreadMinutes === undefined ? "" : `\nscheduler: { spreadMinutes: ${opts.spreadMinutes} }`}
schemaRegistry: { url: "http://127.0.0.1:8080/apis/ccompat/v7" }
sink: { databaseUrl: "postgres://x@127.0.0.1/q", defaultCurrency: EUR }
connectors:
  - id: crm
    type: postgres
    connection: { url: "postgres://r@127.0.0.1/crm" }
    tables: [{ name: deals, source: public.deals, idColumn: id, nameColumn: title }]
  - id: sf
    type: salesforce
    clientId: a
    clientSecret: b${schedule(opts.sfSchedule)}
    tables: [{ name: opportunities, object: Opportunity }]
  - id: hs
    type: hubspot
    clientId: a
    clientSecret: b${schedule(opts.hsSchedule)}
    tables: [{ name: deals, object: deals }]
${opts.extra ?? ""}`,
    "test",
    {},
  );
}
