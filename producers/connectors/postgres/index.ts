/**
 * The PostgreSQL source plugin: a customer's PostgreSQL database (or Cloud SQL instance), read in
 * full refreshes on a schedule of a few times a day. Everything about the source is in this folder:
 * the config schema (config.ts), the schedule (schedule.ts), how to connect (connection.ts), the
 * `where` compiler (where.ts) and the connector itself (source.ts).
 */
import type { SourcePlugin } from "../../connector.ts";
import { PostgresConnector } from "./config.ts";
import { postgresEndpoints } from "./connection.ts";
import {
  PostgresSchedule,
  defaultPostgresSchedule,
  describePostgresSchedule,
  postgresCronRules,
  postgresScheduleForm,
  preparePostgresScheduleEdit,
} from "./schedule.ts";
import { PostgresSource } from "./source.ts";

export const postgresPlugin: SourcePlugin<PostgresConnector, PostgresSchedule> = {
  type: "postgres",
  title: "PostgreSQL",
  configSchema: PostgresConnector,
  scheduleSchema: PostgresSchedule,
  defaultSchedule: defaultPostgresSchedule,
  cronRules: postgresCronRules,
  describeSchedule: describePostgresSchedule,
  prepareScheduleEdit: preparePostgresScheduleEdit,
  scheduleForm: postgresScheduleForm,
  // Every run reads whole tables: a refresh is a full sync.
  incremental: false,
  create: (config) => new PostgresSource(config),
  endpoints: (config) => postgresEndpoints(config.connection),
  typePrefix: "pg",
};
