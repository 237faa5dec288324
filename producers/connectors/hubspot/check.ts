/**
 * `qobra-sync check` for a HubSpot connector: authentication, then per table the object, its read
 * scope, every field against the object's properties, the association reads, and the filter
 * (against the properties and HubSpot's operator rules, then HubSpot's own validation of the
 * search it becomes). Problems fail the table; warnings do not.
 */
import { ConfigError } from "../../../lib/errors.ts";
import type { TableCheck } from "../../connector.ts";
import { HubSpotRequestError, MissingScopesError } from "./errors.ts";
import type { HubSpotApi } from "./api.ts";
import type { PropertyDef } from "./api-types.ts";
import type { HubSpotConnector, HubSpotTable } from "./config.ts";
import type { HubSpotFilterGroup } from "./filter.ts";
import type { HubSpotClock } from "./limits.ts";
import { PIPELINE_PROPS, STAGE_PROPS, suggest, type HubSpotMetadata } from "./plan.ts";
import { windowSearchBody } from "./search.ts";
import { instantMs, referencesUsers } from "./values.ts";

/** What the check reads with: the source's API client, metadata cache and clock. */
interface CheckContext {
  config: HubSpotConnector;
  api: HubSpotApi;
  metadata: HubSpotMetadata;
  clock: HubSpotClock;
}

export async function checkHubSpot(s: CheckContext): Promise<TableCheck[]> {
  try {
    await s.api.authenticate();
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    return s.config.tables.map((t) => ({ table: t.name, ok: false, problems: [e.message], warnings: [] }));
  }
  const granted = await s.api.grantedScopes().catch(() => null);
  const out: TableCheck[] = [];
  for (const table of s.config.tables) {
    const problems: string[] = [];
    const warnings: string[] = [];
    try {
      await checkTable(s, table, problems, warnings);
    } catch (e) {
      if (!(e instanceof ConfigError)) throw e;
      problems.push(e instanceof MissingScopesError && granted ? `${e.message} (granted: ${granted.join(", ") || "none"})` : e.message);
    }
    out.push({ table: table.name, ok: problems.length === 0, problems, warnings });
  }
  return out;
}

async function checkTable(s: CheckContext, table: HubSpotTable, problems: string[], warnings: string[]): Promise<void> {
  const object = await s.metadata.resolveObject(table.object);
  if (!object) {
    problems.push(`HubSpot has no object ${JSON.stringify(table.object)}`);
    return;
  }
  const props = await s.metadata.properties(object.api);
  // Reading records needs the object's read scope (properties may be readable without it).
  await s.api.listPage(object.api, { limit: 1, archived: false, properties: ["hs_object_id"] });
  const r = await s.metadata.resolveFields(table, object, props);
  problems.push(...r.problems);
  const nameProperties = table.nameProperty ? [table.nameProperty] : object.nameProperties;
  for (const p of nameProperties) if (!props.has(p)) problems.push(`name property ${p} is not a property of ${object.key}`);
  if (nameProperties.length === 0 && object.key !== "contacts") warnings.push(`${object.key} has no name property; records get no name (set nameProperty)`);
  if (!props.has(object.lastModifiedProperty))
    problems.push(`${object.key} has no ${object.lastModifiedProperty} property; incremental runs cannot read its changes`);
  for (const f of r.propertyFields) {
    if (f.spec.type === "user" && !referencesUsers(f.prop)) {
      warnings.push(`field ${f.field} (${f.prop.type}) is synced as a user: its values must be emails or owner ids`);
    }
  }
  if (r.propertyFields.some((f) => f.spec.type === "user")) await s.metadata.owners();
  for (const a of r.associationFields) {
    await s.api.associations(object.api, a.target.api, ["0"]).catch((e: unknown) => {
      if (e instanceof ConfigError) problems.push(`field ${a.field}: cannot read ${object.key}→${a.target.key} associations: ${e.message}`);
      else throw e;
    });
  }
  if (table.filter) {
    checkFilter(table.filter, props, problems, warnings);
    if (problems.length === 0) {
      // HubSpot's own validation of the filter, combined with the connector's window and keyset filters.
      const body = windowSearchBody(
        { lastModifiedProperty: object.lastModifiedProperty, properties: ["hs_object_id"], filterGroups: table.filter },
        { from: 0, to: s.clock.now() },
        "0",
        1,
      );
      await s.api.search(object.api, body).catch((e: unknown) => {
        if (e instanceof HubSpotRequestError && e.status === 400) problems.push(`filter: HubSpot rejects it: ${e.message}`);
        else throw e;
      });
    }
  }
}

/** Filters against the object's properties and HubSpot's operator rules. */
function checkFilter(groups: HubSpotFilterGroup[], props: Map<string, PropertyDef>, problems: string[], warnings: string[]): void {
  groups.forEach((g, gi) => {
    g.filters.forEach((f, fi) => {
      const where = groups.length > 1 ? `filter group ${gi + 1}, filter ${fi + 1}` : `filter ${fi + 1}`;
      if (f.propertyName.startsWith("associations.")) {
        if (f.operator !== "EQ" && f.operator !== "IN") problems.push(`${where}: ${f.propertyName} supports EQ and IN only`);
        return;
      }
      const p = props.get(f.propertyName);
      if (!p) {
        problems.push(`${where}: ${f.propertyName} is not a property${suggest(f.propertyName, props)}`);
        return;
      }
      const values = [f.value, f.highValue, ...(f.values ?? [])].filter((v): v is string => v !== undefined);
      if (p.type === "number" && !["CONTAINS_TOKEN", "NOT_CONTAINS_TOKEN"].includes(f.operator)) {
        for (const v of values)
          if (v.trim() === "" || !Number.isFinite(Number(v))) problems.push(`${where}: ${JSON.stringify(v)} is not a number (${f.propertyName} is a number)`);
      }
      if (p.type === "date" || p.type === "datetime") {
        for (const v of values) if (instantMs(v) === undefined) problems.push(`${where}: ${JSON.stringify(v)} is not a date (epoch milliseconds or ISO 8601)`);
      }
      if (
        p.type === "enumeration" &&
        p.options &&
        p.options.length > 0 &&
        (f.operator === "EQ" || f.operator === "NEQ" || f.operator === "IN" || f.operator === "NOT_IN")
      ) {
        const known = new Set(p.options.map((o) => o.value));
        const unknown = values.filter((v) => !known.has(v));
        if (unknown.length > 0 && !PIPELINE_PROPS.has(p.name) && !STAGE_PROPS.has(p.name)) {
          warnings.push(
            `${where}: ${unknown.map((v) => JSON.stringify(v)).join(", ")} ${unknown.length > 1 ? "are" : "is"} not among ${f.propertyName}'s internal values (${[...known].slice(0, 10).join(", ")}); enumeration filters match internal values exactly`,
          );
        }
      }
      if ((f.operator === "IN" || f.operator === "NOT_IN") && p.type === "string" && values.some((v) => v !== v.toLowerCase())) {
        warnings.push(
          `${where}: HubSpot compares IN/NOT_IN string values in lower case; ${values
            .filter((v) => v !== v.toLowerCase())
            .map((v) => JSON.stringify(v))
            .join(", ")} will never match`,
        );
      }
      if (
        (f.operator === "BETWEEN" || f.operator === "LT" || f.operator === "LTE" || f.operator === "GT" || f.operator === "GTE") &&
        !["number", "date", "datetime", "string"].includes(p.type)
      ) {
        warnings.push(`${where}: ${f.operator} on ${f.propertyName} (${p.type}) compares text`);
      }
    });
  });
}
