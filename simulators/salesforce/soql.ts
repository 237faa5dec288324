// SOQL: parsing with @jetstreamapp/soql-parser-js, validation against the loaded describes (with Salesforce's
// error codes and message shape), evaluation over in-memory records, and result rendering (REST JSON, Bulk CSV).
// The building blocks (errors, field paths) are in soql-base.ts, the WHERE compiler in soql-where.ts.

import { parseQuery } from "@jetstreamapp/soql-parser-js";
import type { FieldType, OrderByClause, Query } from "@jetstreamapp/soql-parser-js";
import { csvLine, csvValue, jsonValue } from "./format.ts";
import type { ObjectModel, OrgModel } from "./model.ts";
import type { SimRecord } from "./types.ts";
import { NOT_SUPPORTED_TYPE, SfError, compareValues, positionOf, queryError, readField, resolvePath, splitPath, unsupported } from "./soql-base.ts";
import type { AggColumn, CompileOptions, CompiledQuery, FieldPath, RelStep } from "./soql-base.ts";
import { compileWhere } from "./soql-where.ts";

export { SfError } from "./soql-base.ts";
export type { CompiledQuery } from "./soql-base.ts";

function parseSoql(soql: string): Query {
  try {
    return parseQuery(soql);
  } catch (e) {
    const msg = (e as Error).message ?? "";
    let found: string | null = null;
    const m1 = /but found --> '(.*?)' <--/.exec(msg) ?? /but found: '(.*?)'/.exec(msg) ?? /but found: (\S+)/.exec(msg);
    if (m1) found = m1[1] ?? "";
    const m2 = /at offset: (\d+)/.exec(msg);
    let pos: number;
    let text: string;
    if (m2) {
      pos = Number(m2[1]);
      text = `unexpected token: '${soql[pos] ?? ""}'`;
    } else if (found === null || found === "") {
      pos = soql.length;
      text = "unexpected token: <EOF>";
    } else {
      pos = positionOf(soql, found, 0);
      text = `unexpected token: '${found}'`;
    }
    throw queryError("MALFORMED_QUERY", soql, Math.min(pos, soql.length), text);
  }
}

export function compileQuery(org: OrgModel, soql: string, opts: CompileOptions): CompiledQuery {
  if (!soql || soql.trim() === "") throw new SfError(400, "MALFORMED_QUERY", "A query string has to be specified");
  const q = parseSoql(soql);
  const fromPos = positionOf(soql, "FROM", 0);
  const objectName = q.sObject ?? "";
  const model = org.model(objectName);
  if (!model) throw queryError("INVALID_TYPE", soql, positionOf(soql, objectName, fromPos), NOT_SUPPORTED_TYPE(objectName));
  if (q.groupBy || q.having) throw unsupported("GROUP BY / HAVING");
  if (q.withDataCategory) throw unsupported("WITH DATA CATEGORY");
  const alias = q.sObjectAlias;
  let bulkUnsupported: string | null = null;

  const columns: FieldPath[] = [];
  const aggregates: AggColumn[] = [];
  let countOnly = false;
  const seen = new Set<string>();
  const selectPos = positionOf(soql, "SELECT", 0);
  const addColumn = (p: FieldPath, raw: string) => {
    const key = p.header.toLowerCase();
    if (seen.has(key)) throw queryError("MALFORMED_QUERY", soql, positionOf(soql, raw, selectPos), `duplicate field selected: ${p.header}`);
    seen.add(key);
    columns.push(p);
  };
  let exprN = 0;
  for (const f of (q.fields ?? []) as FieldType[]) {
    switch (f.type) {
      case "Field":
      case "FieldRelationship": {
        const raw =
          f.type === "Field"
            ? "rawValue" in f && typeof f.rawValue === "string"
              ? f.rawValue
              : f.field
            : (f.rawValue ?? [...f.relationships, f.field].join("."));
        const parts = splitPath(raw, alias, model.name);
        const p = resolvePath(org, model, parts, soql, selectPos, parts[parts.length - 1]!);
        if (p.field && (p.field.type === "address" || p.field.type === "location")) bulkUnsupported ??= `compound field ${p.header}`;
        addColumn(p, raw);
        break;
      }
      case "FieldFunctionExpression": {
        const fn = f.functionName.toUpperCase();
        if (fn === "FIELDS") {
          const which = String(f.parameters[0] ?? "").toUpperCase();
          bulkUnsupported ??= "FIELDS()";
          if ((which === "ALL" || which === "CUSTOM") && (q.limit === undefined || q.limit > 200)) {
            throw queryError("MALFORMED_QUERY", soql, positionOf(soql, "FIELDS", selectPos), "The SOQL FIELDS function must have a LIMIT of at most 200");
          }
          for (const fd of model.describe.fields) {
            const isCustom = fd.custom === true || fd.name.endsWith("__c");
            if (which === "CUSTOM" && !isCustom) continue;
            if (which === "STANDARD" && isCustom) continue;
            if (seen.has(fd.name.toLowerCase())) continue;
            addColumn(resolvePath(org, model, [fd.name], soql, selectPos, fd.name), fd.name);
          }
          break;
        }
        if (fn === "COUNT" && f.parameters.length === 0) {
          countOnly = true;
          bulkUnsupported ??= "COUNT()";
          break;
        }
        if (["COUNT", "COUNT_DISTINCT", "SUM", "AVG", "MIN", "MAX"].includes(fn)) {
          bulkUnsupported ??= `aggregate function ${fn}()`;
          const param = f.parameters[0];
          if (typeof param !== "string") throw unsupported(`nested functions in ${fn}()`);
          const path = resolvePath(org, model, splitPath(param, alias, model.name), soql, selectPos, param.split(".").pop()!);
          aggregates.push({ alias: f.alias ?? `expr${exprN++}`, fn, path });
          break;
        }
        throw unsupported(`the function ${f.functionName}() in SELECT`);
      }
      case "FieldSubquery":
        throw unsupported("parent-to-child subqueries");
      case "FieldTypeof":
        throw unsupported("TYPEOF");
      default:
        throw unsupported("this SELECT item");
    }
  }
  if (countOnly && (columns.length > 0 || aggregates.length > 0)) {
    throw queryError("MALFORMED_QUERY", soql, positionOf(soql, "COUNT", selectPos), "COUNT() can not be combined with other fields");
  }
  if (aggregates.length > 0 && columns.length > 0) {
    throw queryError("MALFORMED_QUERY", soql, positionOf(soql, columns[0]!.name, selectPos), `Field must be grouped or aggregated: ${columns[0]!.name}`);
  }
  if (columns.length === 0 && aggregates.length === 0 && !countOnly) throw queryError("MALFORMED_QUERY", soql, fromPos, "unexpected token: 'FROM'");

  const wherePos = q.where ? positionOf(soql, "WHERE", fromPos) : fromPos;
  const where = q.where
    ? compileWhere(org, model, alias, q.where, soql, wherePos, {
        ...opts,
        compileSubquery: (sub) => compileQuery(org, sub, opts),
        runSubquery: (cq) => executeQuery(cq, false),
      })
    : null;

  let compare: CompiledQuery["compare"] = null;
  if (q.orderBy) {
    const orderPos = positionOf(soql, "ORDER", wherePos);
    const clauses = (Array.isArray(q.orderBy) ? q.orderBy : [q.orderBy]) as OrderByClause[];
    const keys = clauses.map((c) => {
      if (!("field" in c)) throw unsupported("functions in ORDER BY");
      const parts = splitPath(c.field, alias, model.name);
      const p = resolvePath(org, model, parts, soql, orderPos, parts[parts.length - 1]!);
      if (p.field && p.field.sortable === false) {
        throw queryError("INVALID_FIELD", soql, positionOf(soql, parts[parts.length - 1]!, orderPos), `field '${p.name}' can not be sorted in a query call`);
      }
      const type = p.field?.type ?? "string";
      return { get: p.get, desc: c.order === "DESC", nullsLast: c.nulls === "LAST", exact: type === "id" || type === "reference" };
    });
    compare = (a, b) => {
      for (const k of keys) {
        const va = k.get(a);
        const vb = k.get(b);
        const an = va === null || va === undefined;
        const bn = vb === null || vb === undefined;
        if (an || bn) {
          if (an && bn) continue;
          return (an ? -1 : 1) * (k.nullsLast ? -1 : 1);
        }
        // text sorts case-insensitively; ids sort by their (case-sensitive) value
        const c = k.exact ? (String(va) < String(vb) ? -1 : String(va) > String(vb) ? 1 : 0) : compareValues(va, vb);
        if (c !== 0) return k.desc ? -c : c;
      }
      return 0;
    };
  }

  if (q.offset !== undefined) {
    bulkUnsupported ??= "OFFSET";
    if (q.offset > 2000) throw new SfError(400, "NUMBER_OUTSIDE_VALID_RANGE", "Maximum SOQL offset allowed is 2000");
  }
  if (q.for) {
    /* FOR VIEW / FOR REFERENCE / FOR UPDATE: no effect here */
  }
  const longTextFields = columns.filter(
    (c) => c.steps.length === 0 && c.field?.type === "textarea" && (c.field.length ?? 0) > 255 && c.field.custom === true,
  ).length;
  return {
    soql,
    model,
    kind: countOnly ? "count" : aggregates.length > 0 ? "aggregate" : "records",
    columns,
    aggregates,
    where,
    compare,
    limit: q.limit,
    offset: q.offset,
    bulkUnsupported,
    longTextFields,
  };
}

// ---------- execution ----------

export function executeQuery(cq: CompiledQuery, scanAll: boolean): SimRecord[] {
  const rows: SimRecord[] = [];
  for (const rec of cq.model.records.values()) {
    if (!scanAll && rec.IsDeleted === true) continue;
    if (cq.where && !cq.where(rec)) continue;
    rows.push(rec);
  }
  if (cq.compare) rows.sort(cq.compare);
  const start = cq.offset ?? 0;
  const end = cq.limit !== undefined ? start + cq.limit : rows.length;
  return start === 0 && end >= rows.length ? rows : rows.slice(start, end);
}

export function aggregateRow(cq: CompiledQuery, rows: SimRecord[]): string {
  let out = '{"attributes":{"type":"AggregateResult"}';
  for (const a of cq.aggregates) {
    const vals = rows.map((r) => a.path!.get(r)).filter((v) => v !== null && v !== undefined);
    let v: unknown;
    switch (a.fn) {
      case "COUNT":
        v = vals.length;
        break;
      case "COUNT_DISTINCT":
        v = new Set(vals.map((x) => (typeof x === "string" ? x.toUpperCase() : x))).size;
        break;
      case "SUM":
        v = vals.length ? vals.reduce((s: number, x) => s + (x as number), 0) : null;
        break;
      case "AVG":
        v = vals.length ? vals.reduce((s: number, x) => s + (x as number), 0) / vals.length : null;
        break;
      case "MIN":
        v = vals.length ? vals.reduce((m, x) => (compareValues(x, m) < 0 ? x : m)) : null;
        break;
      case "MAX":
        v = vals.length ? vals.reduce((m, x) => (compareValues(x, m) > 0 ? x : m)) : null;
        break;
    }
    const f =
      a.fn === "COUNT" || a.fn === "COUNT_DISTINCT" ? { name: a.alias, type: "int" } : a.fn === "AVG" ? { name: a.alias, type: "double" } : a.path!.field;
    out += `,${JSON.stringify(a.alias)}:${jsonValue(f, v)}`;
  }
  return `${out}}`;
}

// ---------- rendering ----------

interface RenderNode {
  key: string;
  column?: FieldPath;
  step?: RelStep;
  children?: RenderNode[];
}

/** Groups columns into the nested shape Salesforce returns (relationship fields become nested objects). */
export function renderTree(cq: CompiledQuery): RenderNode[] {
  const root: RenderNode[] = [];
  for (const col of cq.columns) {
    let level = root;
    for (const s of col.steps) {
      let node = level.find((n) => n.step && n.key === s.relName);
      if (!node) {
        node = { key: s.relName, step: s, children: [] };
        level.push(node);
      }
      level = node.children!;
    }
    if (!level.some((n) => !n.step && n.key === col.name)) level.push({ key: col.name, column: col });
  }
  return root;
}

function attributes(modelName: string, id: unknown, version: string): string {
  return `{"type":${JSON.stringify(modelName)},"url":${JSON.stringify(`/services/data/v${version}/sobjects/${modelName}/${String(id ?? "")}`)}}`;
}

function renderObject(org: OrgModel, nodes: RenderNode[], model: ObjectModel | undefined, rec: SimRecord, version: string, polymorphic: boolean): string {
  let out = `{"attributes":${attributes(model?.name ?? "Name", rec.Id, version)}`;
  for (const n of nodes) {
    if (n.step) {
      const id = rec[n.step.refField.name];
      const hit = typeof id === "string" ? org.lookup(id) : undefined;
      out += `,${JSON.stringify(n.key)}:${hit ? renderObject(org, n.children!, hit.model, hit.rec, version, n.step.polymorphic) : "null"}`;
    } else {
      const name = n.column!.name;
      const v = readField(model, rec, name, polymorphic);
      const f = model?.fields.get(name.toLowerCase()) ?? n.column!.field;
      out += `,${JSON.stringify(name)}:${jsonValue(f, v)}`;
    }
  }
  return `${out}}`;
}

export function renderJsonRecord(org: OrgModel, tree: RenderNode[], cq: CompiledQuery, rec: SimRecord, version: string): string {
  return renderObject(org, tree, cq.model, rec, version, false);
}

export function csvHeader(cq: CompiledQuery, delimiter: string): string {
  return csvLine(
    cq.columns.map((c) => c.header),
    delimiter,
  );
}

export function csvRow(cq: CompiledQuery, rec: SimRecord, delimiter: string): string {
  return csvLine(
    cq.columns.map((c) => {
      const v = c.get(rec);
      if (c.steps.length === 0) return csvValue(c.field, v);
      const h = c.holder(rec);
      const f = h?.model?.fields.get(c.name.toLowerCase()) ?? c.field;
      return csvValue(f, v);
    }),
    delimiter,
  );
}
