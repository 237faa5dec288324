/**
 * The pure mapping core: one raw record + the table's configuration → one mapped value, or the
 * list of every problem found in it (all fields are checked, not only the first bad one).
 */
import type { FieldSpec } from "../../lib/config.ts";
import type { DeadLetterIssue, RawRecord } from "../../schemas/index.ts";
import { ConversionError, toBool, toCurrency, toDate, toDecimal, toInstantMicros, toList, toText } from "./convert.ts";
import type { TableLayout } from "./mapped-schema.ts";
import { EMPTY_USERS, type UserIndex } from "./users.ts";

interface MapContext {
  /** Field configuration of the table. */
  fields: Record<string, FieldSpec>;
  layout: TableLayout;
  /** Connector default, else the sink's. */
  defaultCurrency: string;
  /** Raw topic offset of the record: the version the sink's guard compares. */
  version: number;
  /** Qobra's users (immutable snapshot). */
  users?: UserIndex;
}

type MappedValue = Record<string, unknown>;
type MapResult = { ok: true; value: MappedValue; unresolvedUsers: string[] } | { ok: false; issues: DeadLetterIssue[] };

export function mapRecord(raw: RawRecord, ctx: MapContext): MapResult {
  const issues: DeadLetterIssue[] = [];
  const value: MappedValue = {
    _external_id: raw.externalId,
    _name: raw.name,
    _source_updated_at: null,
    _run_id: raw.runId,
    _deleted: raw.op === "DELETE",
    _version: ctx.version,
  };
  if (raw.externalId === "") issues.push({ path: "_external_id", code: "missing_id", message: "the record has an empty id" });
  if (raw.sourceUpdatedAt !== null) {
    try {
      value._source_updated_at = toInstantMicros(raw.sourceUpdatedAt);
    } catch (e) {
      issues.push(issue("_source_updated_at", e));
    }
  }
  for (const f of ctx.layout.fields) value[f.name] = null;
  const unresolvedUsers: string[] = [];
  if (raw.op === "UPSERT") {
    for (const [name, spec] of Object.entries(ctx.fields)) {
      const v = raw.fields[name];
      // A raw record read before the field was configured (a replay after adding it) has no value
      // for it: null, until the next sync reads it.
      if (v === undefined) continue;
      try {
        convertField(name, spec, v, raw, ctx, value);
        if (spec.type === "user" && typeof value[name] === "string") {
          const id = (ctx.users ?? EMPTY_USERS).lookup(value[name] as string, spec.userKey ?? "email");
          value[`${name}_user_id`] = id;
          if (id === null) unresolvedUsers.push(`${name}=${value[name] as string}`);
        }
      } catch (e) {
        issues.push(issue(name, e));
      }
    }
  }
  return issues.length > 0 ? { ok: false, issues } : { ok: true, value, unresolvedUsers };
}

function convertField(name: string, spec: FieldSpec, v: RawRecord["fields"][string], raw: RawRecord, ctx: MapContext, out: MappedValue): void {
  if (v === null) {
    // A null stays null; an amount still gets no currency (nothing to qualify).
    return;
  }
  switch (spec.type) {
    case "string":
    case "picklist":
      out[name] = Array.isArray(v) ? v.filter((x) => x !== null).join(";") : toText(v);
      return;
    case "multipicklist":
      out[name] = toList(v);
      return;
    case "user": {
      const key = toText(v).trim();
      out[name] = key === "" ? null : spec.userKey ? key : key.toLowerCase();
      return;
    }
    case "number":
      out[name] = toDecimal(v as string);
      return;
    // Percentages are mapped in percent points for every source; a fraction (0.125) is shifted exactly.
    case "percentage":
      out[name] = spec.scale === "fraction" ? toDecimal(`${toDecimal(v as string)}e2`) : toDecimal(v as string);
      return;
    case "bool":
      out[name] = toBool(v);
      return;
    case "object": {
      // A polymorphic reference's resolved type comes from the source, as the raw field `<name>__type`.
      const resolved = raw.fields[`${name}__type`];
      out[name] = toText(v);
      out[`${name}_table`] = spec.references ?? (typeof resolved === "string" ? resolved : null);
      return;
    }
    case "date":
      out[name] = ctx.layout.dateKinds[name] === "datetime" ? toInstantMicros(v) : toDate(v);
      return;
    case "amount": {
      out[name] = toDecimal(v as string);
      let currency: string;
      if (spec.currency) currency = spec.currency;
      else if (spec.currencyColumn) {
        const c = raw.fields[spec.currencyColumn];
        if (c === undefined || c === null || c === "") currency = ctx.defaultCurrency;
        else {
          try {
            currency = toCurrency(c);
          } catch (e) {
            throw new ConversionError("invalid_currency", `currency column ${spec.currencyColumn}: ${(e as Error).message}`);
          }
        }
      } else currency = ctx.defaultCurrency;
      out[`${name}_currency`] = currency;
      return;
    }
  }
}

function issue(path: string, e: unknown): DeadLetterIssue {
  if (e instanceof ConversionError) return { path, code: e.kind, message: e.message };
  return { path, code: "error", message: (e as Error)?.message ?? String(e) };
}
