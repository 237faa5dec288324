/**
 * The configuration reference (docs/configuration.md), generated from the zod schemas themselves:
 * every key's path, type, default and `.describe()` text, for the core of the file and for each
 * source plugin in the registry. Written by `npm run docs:config` (scripts/config-reference.ts);
 * test/unit/config-reference.test.ts fails when the checked-in file differs, so the reference
 * cannot drift from the schemas.
 */
import type { z } from "zod";
import { FieldEntry, FieldSpec } from "../lib/config-common.ts";
import { isSecretSchema } from "../lib/config-secret.ts";
import { sourcePlugins } from "../producers/connectors/registry.ts";
import { configSchema } from "./config.ts";

/** One documented key. */
interface Row {
  path: string;
  type: string;
  required: boolean;
  default: string;
  description: string;
}

/** The parts of zod's definitions this walker reads (zod 4's `_zod.def`). */
interface Def {
  type: string;
  innerType?: z.ZodType;
  in?: z.ZodType;
  out?: z.ZodType;
  defaultValue?: unknown;
  shape?: Record<string, z.ZodType>;
  element?: z.ZodType;
  valueType?: z.ZodType;
  options?: z.ZodType[];
  entries?: Record<string, string>;
  values?: unknown[];
  checks?: Array<{ _zod: { def: { check: string; format?: string } } }>;
}

const defOf = (s: z.ZodType): Def => (s as unknown as { _zod: { def: Def } })._zod.def;

/** Strips optional, default and transform wrappers: the schema underneath, and what the wrappers said. */
function unwrap(schema: z.ZodType): { base: z.ZodType; optional: boolean; defaultValue: unknown; hasDefault: boolean; description: string | undefined } {
  let s = schema;
  let optional = false;
  let hasDefault = false;
  let defaultValue: unknown;
  let description = s.description;
  for (;;) {
    const d = defOf(s);
    if (d.type === "optional" || d.type === "nullable") {
      optional = true;
      s = d.innerType!;
    } else if (d.type === "default" || d.type === "prefault") {
      if (!hasDefault) {
        hasDefault = true;
        defaultValue = d.defaultValue;
      }
      s = d.innerType!;
    } else if (d.type === "pipe" && defOf(d.in!).type !== "transform") s = d.in!;
    else break;
    description ??= s.description;
  }
  return { base: s, optional, defaultValue, hasDefault, description };
}

/** The type of a schema, for people. */
function typeName(schema: z.ZodType): string {
  if (schema === FieldEntry) return "field (see [Fields](#fields))";
  const { base } = unwrap(schema);
  const d = defOf(base);
  switch (d.type) {
    case "string":
      return "string";
    case "number":
      return d.checks?.some((c) => c._zod.def.check === "number_format" && /int/.test(c._zod.def.format ?? "")) ? "integer" : "number";
    case "boolean":
      return "boolean";
    case "enum":
      return Object.values(d.entries ?? {})
        .map((v) => `\`${v}\``)
        .join(" \\| ");
    case "literal":
      return (d.values ?? []).map((v) => `\`${String(v)}\``).join(" \\| ");
    case "object":
      return "object";
    case "array":
      return `list of ${typeName(d.element!)}`;
    case "record":
      return `map of ${typeName(d.valueType!)}`;
    case "union":
      return (d.options ?? []).map(typeName).join(" or ");
    default:
      return "any";
  }
}

function formatDefault(v: unknown): string {
  if (v === undefined) return "";
  return `\`${JSON.stringify(v)}\``;
}

/** Rows of an object schema's keys, recursing into nested objects and lists of objects. */
function rows(schema: z.ZodType, prefix: string, out: Row[] = [], skip: readonly string[] = []): Row[] {
  const shape = defOf(unwrap(schema).base).shape ?? {};
  for (const [key, child] of Object.entries(shape)) {
    if (skip.includes(key)) continue;
    const u = unwrap(child);
    const path = `${prefix}${key}`;
    out.push({
      path,
      type: typeName(child),
      required: !u.optional && !u.hasDefault,
      default: formatDefault(u.defaultValue),
      description: `${isSecretSchema(child) ? "**Secret** (`${env:NAME}` allowed; never shown in messages). " : ""}${u.description ?? ""}`,
    });
    const d = defOf(u.base);
    if (d.type === "object") rows(u.base, `${path}.`, out);
    else if (d.type === "array" && defOf(unwrap(d.element!).base).type === "object") rows(d.element!, `${path}[].`, out);
  }
  return out;
}

const cell = (text: string) => text.replace(/\|/g, "\\|").replace(/</g, "&lt;").replace(/\n/g, " ");

function table(list: Row[]): string {
  const lines = ["| key | type | required | default | description |", "|---|---|---|---|---|"];
  for (const r of list) lines.push(`| \`${r.path}\` | ${r.type} | ${r.required ? "yes" : ""} | ${cell(r.default)} | ${cell(r.description)} |`);
  return lines.join("\n");
}

/** The whole of docs/configuration.md. */
export function renderConfigReference(): string {
  const parts: string[] = [];
  parts.push(
    "# Configuration reference",
    "",
    "<!-- Generated from the zod schemas by `npm run docs:config` (scripts/config-reference.ts); do not edit by hand. -->",
    "",
    "One YAML file (`--config FILE`, else `$QOBRA_SYNC_CONFIG`, else `./qobra-sync.yaml`), validated at start-up;",
    "`${env:NAME}` is replaced by that environment variable in the fields marked **Secret** below (passwords, client secrets,",
    "refresh tokens, API tokens, connection and registry URLs), and refused in any other field. The README has an example.",
    "A key marked required has no default; the others may be left out.",
    "",
    "## Core",
    "",
    table(rows(configSchema, "", [], ["connectors"])),
    "",
    "## Connectors",
    "",
    "`connectors` is a list; each entry's `type` names its source, and the source sets its other keys:",
    "",
    ...sourcePlugins.map((p) => `- \`${p.type}\`: [${p.title}](#${p.title.toLowerCase()})`),
    "",
    "Every connector may also have `tenant` (the customer it belongs to; lower-case letters, digits, - and _). A tenant's",
    "connector is known to the pipeline as `<tenant>.<id>` (its topics `<prefix>.raw.<tenant>.<id>`, …), its tables land in",
    "the schema `sink.tenantSchema` names for the tenant, and its user fields match that tenant's users only. Connectors",
    "given through the HTTP API (`/api/tenants/<tenant>/connectors/<id>`, docs/operations.md) take the same keys, in JSON.",
    "",
    "### Fields",
    "",
    "A table's `fields` maps a source field to a Qobra type name (`closed_on: date`) or to an object with options:",
    "",
    table(rows(FieldSpec, "")),
  );
  for (const plugin of sourcePlugins) {
    parts.push(
      "",
      `### ${plugin.title}`,
      "",
      `Keys of a connector with \`type: ${plugin.type}\` (paths relative to the connector's entry).`,
      "",
      table(rows(plugin.configSchema, "")),
    );
  }
  return `${parts.join("\n")}\n`;
}
