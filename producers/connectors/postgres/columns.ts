/**
 * The PostgreSQL source's columns: how each is read in a lossless text form, and which Qobra types
 * each PostgreSQL type may map to.
 */
import type { QobraType } from "../../../lib/config-common.ts";
import { ident, literal } from "../../../lib/pg.ts";

export interface ColumnInfo {
  name: string;
  type: string;
  category: string;
}

/** The SQL that reads one column in a lossless text form. */
export function valueExpr(c: ColumnInfo, timestampZone: string): string {
  const col = ident(c.name);
  if (c.category === "A") return `array_to_json(${col})::text`;
  switch (c.type) {
    case "money":
      return `${col}::numeric::text`;
    case "timestamp":
      return `(${col} AT TIME ZONE ${literal(timestampZone)})::text`;
    default:
      return `${col}::text`;
  }
}

export function jsonArray(text: string): (string | null)[] {
  const flat = (v: unknown): (string | null)[] => (Array.isArray(v) ? v.flatMap(flat) : [v === null ? null : typeof v === "string" ? v : JSON.stringify(v)]);
  return flat(JSON.parse(text));
}

/**
 * The Qobra types each PostgreSQL type may map to (Qobra's PostgreSQL page, plus documented rules
 * for types outside it: uuid, json, enums, arrays; domains follow their base type).
 */
function allowedQobraTypes(c: Pick<ColumnInfo, "type" | "category">): readonly QobraType[] {
  const TEXT: QobraType[] = ["string", "picklist", "multipicklist", "user"];
  switch (c.type) {
    case "text":
    case "varchar":
    case "bpchar":
    case "citext":
    case "name":
      return TEXT;
    case "date":
    case "timestamp":
    case "timestamptz":
      return ["date"];
    case "int2":
    case "int4":
    case "int8":
      return ["number", "amount", "percentage", "user"];
    case "float4":
    case "float8":
    case "numeric":
      return ["number", "amount", "percentage"];
    case "money":
      return ["amount"];
    case "bool":
      return ["bool"];
    case "bit":
    case "varbit":
      return ["string"];
    case "uuid":
      return ["string", "picklist", "user"];
    case "json":
    case "jsonb":
    case "xml":
      return ["string"];
  }
  if (c.category === "E") return ["string", "picklist", "multipicklist"];
  if (c.category === "A") return ["multipicklist", "string"];
  return [];
}

export function typeProblem(field: string, col: ColumnInfo, type: QobraType): string | null {
  const allowed = allowedQobraTypes(col);
  if (allowed.length === 0)
    return `field ${field} has PostgreSQL type ${col.type}, which qobra-sync does not support (see the README's type table); cast it in a view`;
  if (!allowed.includes(type)) return `field ${field} has PostgreSQL type ${col.type}, which maps to ${allowed.join(", ")}, not ${type}`;
  return null;
}
