/**
 * A table configured without `fields` syncs every field its source sends, each as the Qobra type
 * Qobra's page gives by default for its source type (Salesforce's table). The connector marks
 * references to User with a `<field>__id` companion and polymorphic ones with `<field>__type`.
 */
import type { FieldSpec, QobraType } from "../../lib/config.ts";

const SALESFORCE: Record<string, QobraType> = {
  int: "number", long: "number", double: "number", percent: "percentage", currency: "amount",
  picklist: "picklist", multipicklist: "multipicklist", boolean: "bool", date: "date", datetime: "date",
  string: "string", textarea: "string", combobox: "string", phone: "string", email: "string", url: "string", id: "string",
  reference: "object",
};

export function effectiveFields(configured: Record<string, FieldSpec>, sourceTypes: Record<string, string>): Record<string, FieldSpec> {
  if (Object.keys(configured).length > 0) return configured;
  const out: Record<string, FieldSpec> = {};
  for (const [name, st] of Object.entries(sourceTypes)) {
    if (name.startsWith("_") || /__(id|type|currency)$/.test(name) || !/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) continue;
    const [source, type = ""] = st.split(":", 2) as [string, string];
    if (source !== "sf") continue;
    if (sourceTypes[`${name}__id`] !== undefined) { out[name] = { type: "user" }; continue; }
    const qobra = SALESFORCE[type];
    if (!qobra) continue;
    out[name] = qobra === "amount" && sourceTypes.CurrencyIsoCode !== undefined ? { type: "amount", currencyColumn: "CurrencyIsoCode" } : { type: qobra };
  }
  return out;
}
