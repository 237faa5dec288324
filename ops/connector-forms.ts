/**
 * The settings page's connector forms, built from each source plugin's config schema (so a new
 * key of a plugin appears in its form without touching the page): the scalar keys of the entry and
 * of its objects become inputs (text, number, checkbox, a select for a closed list, a password
 * input for a secret), and what is a list or a map (tables and their fields, schedule hours) is
 * edited as JSON. The server validates whatever comes back with the file's schema
 * (ops/connectors-api.ts), so the form is a convenience, never the check.
 */
import { z } from "zod";
import { sourcePlugins } from "../producers/connectors/registry.ts";

export interface FormField {
  /** Dotted path in the connector entry (`connection.url`). */
  path: string;
  kind: "string" | "number" | "integer" | "boolean" | "enum" | "json";
  secret: boolean;
  required: boolean;
  description?: string;
  default?: unknown;
  options?: unknown[];
}

export interface ConnectorForm {
  type: string;
  title: string;
  fields: FormField[];
  /** A starting point for the tables list (JSON), in the form of the file's entries. */
  tablesExample: unknown[];
  /** Whether the source has an OAuth flow: the page offers Authorize (ops/oauth-web.ts). */
  oauth: boolean;
}

interface JsonSchema {
  type?: string | string[];
  properties?: Record<string, JsonSchema>;
  required?: string[];
  description?: string;
  default?: unknown;
  enum?: unknown[];
  const?: unknown;
  secret?: boolean;
  anyOf?: JsonSchema[];
  items?: JsonSchema;
}

/** Keys the page never shows as inputs: the path gives `id`, the form's choice gives `type`, `tables` has its own editor. */
const HIDDEN = new Set(["id", "type", "tables"]);

const TABLE_EXAMPLES: Record<string, unknown[]> = {
  postgres: [{ name: "deals", source: "public.deals", idColumn: "id", nameColumn: "name", fields: { amount: "amount", closed_on: "date" } }],
  salesforce: [{ name: "opportunities", object: "Opportunity", fields: { Amount: "amount", CloseDate: "date", OwnerId: "user" } }],
  hubspot: [{ name: "deals", object: "deals", fields: { amount: "amount", closedate: "date", hubspot_owner_id: "user" } }],
};

function kindOf(s: JsonSchema): FormField["kind"] {
  if (s.enum && s.enum.length > 0) return "enum";
  const t = Array.isArray(s.type) ? s.type.find((x) => x !== "null") : s.type;
  if (t === "string" || t === "number" || t === "integer" || t === "boolean") return t;
  if (s.anyOf) {
    const first = s.anyOf.find((o) => o.type !== "null");
    if (first && (first.type === "string" || first.type === "number" || first.type === "integer" || first.type === "boolean")) return first.type;
  }
  return "json";
}

function fieldsOf(schema: JsonSchema, prefix: string, depth: number): FormField[] {
  const out: FormField[] = [];
  for (const [key, s] of Object.entries(schema.properties ?? {})) {
    if (depth === 0 && HIDDEN.has(key)) continue;
    const path = prefix ? `${prefix}.${key}` : key;
    const required = schema.required?.includes(key) ?? false;
    if (s.properties && depth < 1) {
      out.push(...fieldsOf(s, path, depth + 1).map((f) => ({ ...f, required: f.required && required })));
      continue;
    }
    const kind = kindOf(s);
    out.push({
      path,
      kind,
      secret: s.secret === true,
      required,
      ...(s.description ? { description: s.description } : {}),
      ...(s.default !== undefined ? { default: s.default } : {}),
      ...(kind === "enum" ? { options: s.enum } : {}),
    });
  }
  return out;
}

let cached: ConnectorForm[] | undefined;

/** One form per source type, in the registry's order. */
export function connectorForms(): ConnectorForm[] {
  cached ??= sourcePlugins.map((p) => {
    const schema = z.toJSONSchema(p.configSchema, { io: "input", unrepresentable: "any" }) as JsonSchema;
    return { type: p.type, title: p.title, fields: fieldsOf(schema, "", 0), tablesExample: TABLE_EXAMPLES[p.type] ?? [], oauth: p.auth !== undefined };
  });
  return cached;
}
