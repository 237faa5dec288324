/**
 * The Avro schema of a mapped table, derived from the table's field configuration (and, for
 * dates, the source column's declared type). Registered under `<mapped topic>-value` with
 * BACKWARD compatibility: adding a field adds an optional field (default null), which old
 * readers and the sink absorb; changing a field's type is refused by the registry.
 *
 * Every field carries `qobra.type` so the sink and downstream users know the Qobra type of each
 * column without the config.
 */
import type avro from "avsc";
import type { FieldSpec, QobraType } from "../../lib/config.ts";

type DateKind = "date" | "datetime";

interface MappedField {
  /** Avro field (and sink column) name. */
  name: string;
  /** The configured source field this column comes from. */
  source: string;
  qobraType: QobraType | "currency" | "user_id" | "object_table";
  avro: avro.Schema;
}

export interface TableLayout {
  connector: string;
  table: string;
  fields: MappedField[];
  dateKinds: Record<string, DateKind>;
}

const nullable = (t: avro.Schema): avro.Schema => ["null", t] as unknown as avro.Schema;
const DECIMAL_STRING = { type: "string", "qobra.logical": "decimal" } as unknown as avro.Schema;

/** The date kind of a field: the config's `format`, else what the source column holds. */
function dateKindOf(spec: FieldSpec, sourceType: string | undefined): DateKind {
  if (spec.format) return spec.format;
  if (!sourceType) return "date";
  const t = sourceType.toLowerCase();
  if (/(^|:)(timestamp|timestamptz|datetime)$/.test(t) || t.endsWith(":date-time")) return "datetime";
  return "date";
}

/**
 * Layouts already derived, by fields object then source types object: the mapper asks for one per
 * record, and a page's records share both objects (the raw record reader gives them the same
 * frozen source types), so the answer is the same object, found without deriving it again.
 */
const layouts = new WeakMap<object, WeakMap<object, TableLayout>>();

/** The mapped columns of a table: what its configured fields give, with the source's date kinds. */
export function tableLayout(connector: string, table: string, fields: Record<string, FieldSpec>, sourceTypes: Record<string, string>): TableLayout {
  let bySourceTypes = layouts.get(fields);
  if (!bySourceTypes) layouts.set(fields, (bySourceTypes = new WeakMap()));
  const known = bySourceTypes.get(sourceTypes);
  if (known && known.connector === connector && known.table === table) return known;
  const layout = deriveLayout(connector, table, fields, sourceTypes);
  // Only frozen source types cannot change under the cached layout.
  if (Object.isFrozen(sourceTypes)) bySourceTypes.set(sourceTypes, layout);
  return layout;
}

function deriveLayout(connector: string, table: string, fields: Record<string, FieldSpec>, sourceTypes: Record<string, string>): TableLayout {
  const out: MappedField[] = [];
  const dateKinds: Record<string, DateKind> = {};
  for (const [name, spec] of Object.entries(fields)) {
    const f = (col: string, qobraType: MappedField["qobraType"], t: avro.Schema) => out.push({ name: col, source: name, qobraType, avro: t });
    switch (spec.type) {
      case "string":
      case "picklist":
        f(name, spec.type, "string");
        break;
      case "multipicklist":
        f(name, spec.type, { type: "array", items: "string" });
        break;
      case "user":
        f(name, "user", "string");
        f(`${name}_user_id`, "user_id", "string");
        break;
      case "number":
      case "percentage":
        f(name, spec.type, DECIMAL_STRING);
        break;
      case "amount":
        f(name, "amount", DECIMAL_STRING);
        f(`${name}_currency`, "currency", "string");
        break;
      case "bool":
        f(name, "bool", "boolean");
        break;
      case "object":
        f(name, "object", "string");
        f(`${name}_table`, "object_table", "string");
        break;
      case "date": {
        const kind = dateKindOf(spec, sourceTypes[name]);
        dateKinds[name] = kind;
        f(name, "date", kind === "date" ? { type: "int", logicalType: "date" } : { type: "long", logicalType: "timestamp-micros" });
        break;
      }
    }
  }
  return { connector, table, fields: out, dateKinds };
}

function avroName(s: string): string {
  return s.replace(/[^A-Za-z0-9_]/g, "_").replace(/^([0-9])/, "_$1");
}

/** The Avro record schema of a mapped table. System fields first, then the configured fields in order. */
export function mappedSchema(layout: TableLayout): avro.Schema {
  return {
    type: "record",
    name: avroName(layout.table),
    namespace: `dev.qobrasync.mapped.${avroName(layout.connector)}`,
    doc: `Qobra table ${layout.table} of connector ${layout.connector}, mapped by qobra-sync.`,
    fields: [
      { name: "_external_id", type: "string" },
      { name: "_name", type: nullable("string"), default: null },
      { name: "_source_updated_at", type: nullable({ type: "long", logicalType: "timestamp-micros" }), default: null },
      { name: "_run_id", type: "string" },
      { name: "_deleted", type: "boolean", default: false },
      { name: "_version", type: "long", doc: "Position of the source record in its raw topic; a higher version is newer." },
      ...layout.fields.map((f) => ({ name: f.name, type: nullable(f.avro), default: null, "qobra.type": f.qobraType })),
    ],
  } as unknown as avro.Schema;
}
