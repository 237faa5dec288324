/**
 * A table configured without `fields` syncs every field its source sends, each as the Qobra type
 * Qobra's page gives by default for its source type. That table belongs to the source: the mapper
 * asks the plugin whose `typePrefix` the raw type carries (`sf:currency` → the Salesforce plugin's
 * `defaultFieldType`); a source without the hook maps no field by default. The connector marks
 * references to User with a `<field>__id` companion and polymorphic ones with `<field>__type`.
 */
import type { FieldSpec, QobraType } from "../../lib/config.ts";
import type { SourcePlugin } from "../../producers/connector.ts";
import { sourcePlugins } from "../../producers/connectors/registry.ts";

const pluginsByPrefix = new Map<string, SourcePlugin>((sourcePlugins as readonly SourcePlugin[]).map((p) => [p.typePrefix, p]));

/** The default Qobra type of a raw source type (`sf:currency`), or undefined when its source gives none. */
function defaultTypeOf(sourceType: string): QobraType | undefined {
  const [prefix, type = ""] = sourceType.split(":", 2) as [string, string];
  return pluginsByPrefix.get(prefix)?.defaultFieldType?.(type);
}

export function effectiveFields(configured: Record<string, FieldSpec>, sourceTypes: Record<string, string>): Record<string, FieldSpec> {
  if (Object.keys(configured).length > 0) return configured;
  const out: Record<string, FieldSpec> = {};
  for (const [name, st] of Object.entries(sourceTypes)) {
    if (name.startsWith("_") || /__(id|type|currency)$/.test(name) || !/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) continue;
    const qobra = defaultTypeOf(st);
    if (!qobra) continue;
    if (sourceTypes[`${name}__id`] !== undefined) {
      out[name] = { type: "user" };
      continue;
    }
    out[name] = qobra === "amount" && sourceTypes.CurrencyIsoCode !== undefined ? { type: "amount", currencyColumn: "CurrencyIsoCode" } : { type: qobra };
  }
  return out;
}
