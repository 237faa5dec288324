/**
 * Tenants: each customer of the one pipeline. A connector may belong to a tenant (`tenant: acme`
 * in the YAML file, or the path of the connectors API); a connector without one is a
 * single-tenant connector of the YAML file and keeps every name it has always had.
 *
 * The pipeline knows a connector by one id, which names its topics, its sync requests, its events,
 * its cursor state and its OAuth tokens. For a tenant's connector that id is `<tenant>.<id>`
 * (`acme.crm`), so two tenants may both have a connector `crm` and every topic name, lag line,
 * event and dead letter carries the tenant: `qobra.raw.acme.crm`, `qobra.mapped.acme.crm.deals`.
 * Neither part can hold a dot, so the split is never ambiguous. The tenant's sink tables keep the
 * connector's own id (`crm__deals`) inside the tenant's schema (`qobra_acme`).
 */
import { z } from "zod";

/** A tenant id: it names a sink schema and a part of topic names. */
export const TENANT_ID = z
  .string()
  .regex(/^[a-z][a-z0-9_-]{0,39}$/, {
    error: "must be 1 to 40 lower-case letters, digits, - and _, starting with a letter (it names topics and a sink schema)",
  })
  .describe("The tenant (customer) the connector belongs to: its tables land in the tenant's sink schema, its topics carry the tenant's name.");

/** What a connector says of its tenant. */
interface Tenanted {
  id: string;
  tenant?: string;
}

/** The pipeline id of a connector: `<tenant>.<id>`, or the id alone without a tenant. */
export function pipelineId(tenant: string | undefined, id: string): string {
  return tenant === undefined ? id : `${tenant}.${id}`;
}

/** The connector's own id, without its tenant (`crm` of `acme.crm`). */
export function localId(c: Tenanted): string {
  return c.tenant !== undefined && c.id.startsWith(`${c.tenant}.`) ? c.id.slice(c.tenant.length + 1) : c.id;
}

/** Splits a pipeline id into its tenant and local id (no dot: no tenant). */
export function splitPipelineId(id: string): { tenant?: string; id: string } {
  const dot = id.indexOf(".");
  return dot < 0 ? { id } : { tenant: id.slice(0, dot), id: id.slice(dot + 1) };
}

export const TENANT_PLACEHOLDER = "<tenant>";

/** The sink schema of a connector's tables: the tenant's (from the template), or the sink's own. */
export function sinkSchemaOf(sink: { schema: string; tenantSchema: string }, c: { tenant?: string }): string {
  return c.tenant === undefined ? sink.schema : sink.tenantSchema.split(TENANT_PLACEHOLDER).join(c.tenant);
}
