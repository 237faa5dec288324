// SOQL: parsing with @jetstreamapp/soql-parser-js, validation against the loaded describes (with Salesforce's
// error codes and message shape), evaluation over in-memory records, and result rendering (REST JSON, Bulk CSV).

import { composeQuery, parseQuery } from '@jetstreamapp/soql-parser-js';
import type { FieldType, OrderByClause, Query, WhereClause } from '@jetstreamapp/soql-parser-js';
import { csvLine, csvValue, jsonValue } from './format.ts';
import { isIdString, normalizeId } from './ids.ts';
import { parseDateTime } from './model.ts';
import type { ObjectModel, OrgModel } from './model.ts';
import type { FieldDescribe, SimRecord } from './types.ts';

export class SfError extends Error {
  readonly status: number;
  readonly errorCode: string;
  readonly fields: string[] | undefined;
  constructor(status: number, errorCode: string, message: string, fields?: string[]) {
    super(message);
    this.status = status;
    this.errorCode = errorCode;
    this.fields = fields;
  }
  body(): Record<string, unknown>[] {
    const b: Record<string, unknown> = { message: this.message, errorCode: this.errorCode };
    if (this.fields) b.fields = this.fields;
    return [b];
  }
}

// ---------- error helpers (Salesforce's "\n<line>\n<caret>\nERROR at Row:r:Column:c\n<text>" shape) ----------

function positionOf(soql: string, needle: string, from = 0): number {
  if (needle === '') return soql.length;
  const re = new RegExp(`(^|[^A-Za-z0-9_.])(${needle.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')})(?![A-Za-z0-9_])`, 'i');
  const m = re.exec(soql.slice(from));
  if (!m) {
    const i = soql.toLowerCase().indexOf(needle.toLowerCase(), from);
    return i >= 0 ? i : from;
  }
  return from + m.index + (m[1]?.length ?? 0);
}

export function queryError(errorCode: string, soql: string, pos: number, text: string, status = 400): SfError {
  const before = soql.slice(0, pos);
  const row = before.split('\n').length;
  const lineStart = before.lastIndexOf('\n') + 1;
  const col = pos - lineStart + 1;
  const lineEnd = soql.indexOf('\n', pos);
  const line = soql.slice(lineStart, lineEnd < 0 ? soql.length : lineEnd);
  return new SfError(status, errorCode, `\n${line}\n${' '.repeat(col - 1)}^\nERROR at Row:${row}:Column:${col}\n${text}`);
}

const NO_SUCH_COLUMN = (f: string, o: string) =>
  `No such column '${f}' on entity '${o}'. If you are attempting to use a custom field, be sure to append the '__c' after the custom field name. Please reference your WSDL or the describe call for the appropriate names.`;
const BAD_RELATIONSHIP = (r: string) =>
  `Didn't understand relationship '${r}' in field path. If you are attempting to use a custom relationship, be sure to append the '__r' after the custom relationship name. Please reference your WSDL or the describe call for the appropriate names.`;
const NOT_SUPPORTED_TYPE = (o: string) =>
  `sObject type '${o}' is not supported. If you are attempting to use a custom object, be sure to append the '__c' after the entity name. Please reference your WSDL or the describe call for the appropriate names.`;

function unsupported(what: string): SfError {
  return new SfError(400, 'SIMULATOR_UNSUPPORTED', `The Salesforce simulator does not implement ${what}`);
}

// ---------- field paths ----------

/** Fields available through a polymorphic relationship (the Name entity). */
const NAME_ENTITY_FIELDS = ['Id', 'Name', 'Type', 'Alias', 'Email', 'FirstName', 'LastName', 'IsActive', 'Phone', 'Title', 'Username', 'UserRoleId', 'ProfileId', 'RecordTypeId', 'LastReferencedDate', 'LastViewedDate', 'NameOrAlias', 'CommunityNickname'];
const NAME_ENTITY_TYPES: Record<string, string> = { Id: 'id', IsActive: 'boolean', LastReferencedDate: 'datetime', LastViewedDate: 'datetime', UserRoleId: 'reference', ProfileId: 'reference', RecordTypeId: 'reference' };

interface RelStep {
  /** The reference field on the source object. */
  refField: FieldDescribe;
  /** Canonical relationship name (JSON key). */
  relName: string;
  polymorphic: boolean;
  /** Target model (non-polymorphic, when loaded). */
  target: ObjectModel | undefined;
}

export interface FieldPath {
  steps: RelStep[];
  /** Canonical final field name. */
  name: string;
  /** Final field describe when known. */
  field: FieldDescribe | undefined;
  /** Column header / dotted path with canonical names, e.g. Owner.Email. */
  header: string;
  get(rec: SimRecord): unknown;
  /** Resolves the record that holds the final field (the parent for relationship paths). */
  holder(rec: SimRecord): { model: ObjectModel | undefined; rec: SimRecord } | null;
}

function fieldOfHolder(model: ObjectModel | undefined, name: string): FieldDescribe | undefined {
  return model?.fields.get(name.toLowerCase());
}

function readField(model: ObjectModel | undefined, rec: SimRecord, name: string, polymorphic: boolean): unknown {
  if (polymorphic) {
    if (name === 'Type') return model?.name ?? null;
    if (name === 'Name' && model?.nameField) return rec[model.nameField.name] ?? null;
  }
  const f = fieldOfHolder(model, name);
  if (f && f.type === 'address') return compoundAddress(model!, rec, f.name);
  if (f && f.type === 'location') return compoundLocation(model!, rec, f.name);
  return rec[f ? f.name : name] ?? null;
}

function compoundAddress(model: ObjectModel, rec: SimRecord, compound: string): Record<string, unknown> | null {
  const out: Record<string, unknown> = {};
  let any = false;
  const prefix = compound.replace(/Address$/, '');
  for (const [key, suffix] of [['city', 'City'], ['country', 'Country'], ['geocodeAccuracy', 'GeocodeAccuracy'], ['latitude', 'Latitude'], ['longitude', 'Longitude'], ['postalCode', 'PostalCode'], ['state', 'State'], ['street', 'Street']] as const) {
    const f = model.fields.get(`${prefix}${suffix}`.toLowerCase());
    const v = f ? rec[f.name] ?? null : null;
    if (v !== null) any = true;
    out[key] = v;
  }
  return any ? out : null;
}

function compoundLocation(model: ObjectModel, rec: SimRecord, compound: string): Record<string, unknown> | null {
  const base = compound.replace(/__c$/, '');
  const lat = model.fields.get(`${base}__latitude__s`.toLowerCase()) ?? model.fields.get(`${base}Latitude`.toLowerCase());
  const lon = model.fields.get(`${base}__longitude__s`.toLowerCase()) ?? model.fields.get(`${base}Longitude`.toLowerCase());
  const la = lat ? rec[lat.name] ?? null : null;
  const lo = lon ? rec[lon.name] ?? null : null;
  return la === null && lo === null ? null : { latitude: la, longitude: lo };
}

function resolvePath(org: OrgModel, model: ObjectModel, parts: string[], soql: string, searchFrom: number, rawForError: string): FieldPath {
  const steps: RelStep[] = [];
  let cur: ObjectModel | undefined = model;
  let polymorphic = false;
  for (let i = 0; i < parts.length - 1; i++) {
    const relName = parts[i]!;
    if (polymorphic) throw queryError('INVALID_FIELD', soql, positionOf(soql, rawForError, searchFrom), BAD_RELATIONSHIP(relName));
    if (!cur) break; // target object not loaded: path values are null, names unchecked
    const ref: FieldDescribe | undefined = cur.rels.get(relName.toLowerCase());
    if (!ref) throw queryError('INVALID_FIELD', soql, positionOf(soql, rawForError, searchFrom), BAD_RELATIONSHIP(relName));
    const targets: string[] = ref.referenceTo ?? [];
    const poly: boolean = targets.length > 1 || ref.polymorphicForeignKey === true;
    const target: ObjectModel | undefined = poly ? undefined : org.model(targets[0] ?? '');
    steps.push({ refField: ref, relName: ref.relationshipName!, polymorphic: poly, target });
    polymorphic = poly;
    cur = target;
  }
  const last = parts[parts.length - 1]!;
  let name = last;
  let field: FieldDescribe | undefined;
  if (polymorphic) {
    const canon = NAME_ENTITY_FIELDS.find((n) => n.toLowerCase() === last.toLowerCase());
    if (!canon) throw queryError('INVALID_FIELD', soql, positionOf(soql, rawForError, searchFrom), NO_SUCH_COLUMN(last, 'Name'));
    name = canon;
    field = { name: canon, type: NAME_ENTITY_TYPES[canon] ?? 'string' };
  } else if (cur) {
    field = cur.fields.get(last.toLowerCase());
    if (!field) {
      const pos = positionOf(soql, rawForError, searchFrom);
      throw queryError('INVALID_FIELD', soql, pos, NO_SUCH_COLUMN(last, cur.name));
    }
    name = field.name;
  } else if (steps.length === 0) {
    throw queryError('INVALID_FIELD', soql, positionOf(soql, rawForError, searchFrom), NO_SUCH_COLUMN(last, model.name));
  }
  const header = [...steps.map((s) => s.relName), name].join('.');
  const holder = (rec: SimRecord): { model: ObjectModel | undefined; rec: SimRecord } | null => {
    let r: SimRecord = rec;
    let m: ObjectModel | undefined = model;
    for (const s of steps) {
      const id = r[s.refField.name];
      if (typeof id !== 'string') return null;
      const hit = org.lookup(id);
      if (!hit) return null;
      r = hit.rec;
      m = hit.model;
    }
    return { model: m, rec: r };
  };
  const finalName = name;
  const get = steps.length === 0
    ? (field && (field.type === 'address' || field.type === 'location')
      ? (rec: SimRecord) => readField(model, rec, finalName, false)
      : (rec: SimRecord) => rec[finalName] ?? null)
    : (rec: SimRecord) => {
      const h = holder(rec);
      return h ? readField(h.model, h.rec, finalName, polymorphic) : null;
    };
  return { steps, name, field, header, get, holder };
}

// ---------- compiled query ----------

export interface AggColumn {
  alias: string;
  fn: string;
  path: FieldPath | null;
}

export interface CompiledQuery {
  soql: string;
  model: ObjectModel;
  kind: 'records' | 'count' | 'aggregate';
  columns: FieldPath[];
  aggregates: AggColumn[];
  where: ((rec: SimRecord) => boolean) | null;
  compare: ((a: SimRecord, b: SimRecord) => number) | null;
  limit: number | undefined;
  offset: number | undefined;
  /** Constructs Bulk API 2.0 rejects. */
  bulkUnsupported: string | null;
  /** Number of long text custom fields selected (two or more cap the REST batch size at 200). */
  longTextFields: number;
}

function splitPath(raw: string, alias: string | undefined, objectName: string): string[] {
  const parts = raw.split('.');
  if (parts.length > 1) {
    const head = parts[0]!.toLowerCase();
    if ((alias && head === alias.toLowerCase()) || head === objectName.toLowerCase()) parts.shift();
  }
  return parts;
}

function parseSoql(soql: string): Query {
  try {
    return parseQuery(soql);
  } catch (e) {
    const msg = (e as Error).message ?? '';
    let found: string | null = null;
    const m1 = /but found --> '(.*?)' <--/.exec(msg) ?? /but found: '(.*?)'/.exec(msg) ?? /but found: (\S+)/.exec(msg);
    if (m1) found = m1[1] ?? '';
    const m2 = /at offset: (\d+)/.exec(msg);
    let pos: number;
    let text: string;
    if (m2) {
      pos = Number(m2[1]);
      text = `unexpected token: '${soql[pos] ?? ''}'`;
    } else if (found === null || found === '') {
      pos = soql.length;
      text = 'unexpected token: <EOF>';
    } else {
      pos = positionOf(soql, found, 0);
      text = `unexpected token: '${found}'`;
    }
    throw queryError('MALFORMED_QUERY', soql, Math.min(pos, soql.length), text);
  }
}

export interface CompileOptions {
  /** Clock for date literals such as TODAY. */
  now: number;
}

export function compileQuery(org: OrgModel, soql: string, opts: CompileOptions): CompiledQuery {
  if (!soql || soql.trim() === '') throw new SfError(400, 'MALFORMED_QUERY', 'A query string has to be specified');
  const q = parseSoql(soql);
  const fromPos = positionOf(soql, 'FROM', 0);
  const objectName = q.sObject ?? '';
  const model = org.model(objectName);
  if (!model) throw queryError('INVALID_TYPE', soql, positionOf(soql, objectName, fromPos), NOT_SUPPORTED_TYPE(objectName));
  if (q.groupBy || q.having) throw unsupported('GROUP BY / HAVING');
  if (q.withDataCategory) throw unsupported('WITH DATA CATEGORY');
  const alias = q.sObjectAlias;
  let bulkUnsupported: string | null = null;

  const columns: FieldPath[] = [];
  const aggregates: AggColumn[] = [];
  let countOnly = false;
  const seen = new Set<string>();
  const selectPos = positionOf(soql, 'SELECT', 0);
  const addColumn = (p: FieldPath, raw: string) => {
    const key = p.header.toLowerCase();
    if (seen.has(key)) throw queryError('MALFORMED_QUERY', soql, positionOf(soql, raw, selectPos), `duplicate field selected: ${p.header}`);
    seen.add(key);
    columns.push(p);
  };
  let exprN = 0;
  for (const f of (q.fields ?? []) as FieldType[]) {
    switch (f.type) {
      case 'Field':
      case 'FieldRelationship': {
        const raw = f.type === 'Field' ? (('rawValue' in f && typeof f.rawValue === 'string') ? f.rawValue : f.field) : (f.rawValue ?? [...f.relationships, f.field].join('.'));
        const parts = splitPath(raw, alias, model.name);
        const p = resolvePath(org, model, parts, soql, selectPos, parts[parts.length - 1]!);
        if (p.field && (p.field.type === 'address' || p.field.type === 'location')) bulkUnsupported ??= `compound field ${p.header}`;
        addColumn(p, raw);
        break;
      }
      case 'FieldFunctionExpression': {
        const fn = f.functionName.toUpperCase();
        if (fn === 'FIELDS') {
          const which = String(f.parameters[0] ?? '').toUpperCase();
          bulkUnsupported ??= 'FIELDS()';
          if ((which === 'ALL' || which === 'CUSTOM') && (q.limit === undefined || q.limit > 200)) {
            throw queryError('MALFORMED_QUERY', soql, positionOf(soql, 'FIELDS', selectPos), 'The SOQL FIELDS function must have a LIMIT of at most 200');
          }
          for (const fd of model.describe.fields) {
            const isCustom = fd.custom === true || fd.name.endsWith('__c');
            if (which === 'CUSTOM' && !isCustom) continue;
            if (which === 'STANDARD' && isCustom) continue;
            if (seen.has(fd.name.toLowerCase())) continue;
            addColumn(resolvePath(org, model, [fd.name], soql, selectPos, fd.name), fd.name);
          }
          break;
        }
        if (fn === 'COUNT' && f.parameters.length === 0) {
          countOnly = true;
          bulkUnsupported ??= 'COUNT()';
          break;
        }
        if (['COUNT', 'COUNT_DISTINCT', 'SUM', 'AVG', 'MIN', 'MAX'].includes(fn)) {
          bulkUnsupported ??= `aggregate function ${fn}()`;
          const param = f.parameters[0];
          if (typeof param !== 'string') throw unsupported(`nested functions in ${fn}()`);
          const path = resolvePath(org, model, splitPath(param, alias, model.name), soql, selectPos, param.split('.').pop()!);
          aggregates.push({ alias: f.alias ?? `expr${exprN++}`, fn, path });
          break;
        }
        throw unsupported(`the function ${f.functionName}() in SELECT`);
      }
      case 'FieldSubquery':
        throw unsupported('parent-to-child subqueries');
      case 'FieldTypeof':
        throw unsupported('TYPEOF');
      default:
        throw unsupported('this SELECT item');
    }
  }
  if (countOnly && (columns.length > 0 || aggregates.length > 0)) {
    throw queryError('MALFORMED_QUERY', soql, positionOf(soql, 'COUNT', selectPos), 'COUNT() can not be combined with other fields');
  }
  if (aggregates.length > 0 && columns.length > 0) {
    throw queryError('MALFORMED_QUERY', soql, positionOf(soql, columns[0]!.name, selectPos), `Field must be grouped or aggregated: ${columns[0]!.name}`);
  }
  if (columns.length === 0 && aggregates.length === 0 && !countOnly) throw queryError('MALFORMED_QUERY', soql, fromPos, "unexpected token: 'FROM'");

  const wherePos = q.where ? positionOf(soql, 'WHERE', fromPos) : fromPos;
  const where = q.where ? compileWhere(org, model, alias, q.where, soql, wherePos, opts) : null;

  let compare: CompiledQuery['compare'] = null;
  if (q.orderBy) {
    const orderPos = positionOf(soql, 'ORDER', wherePos);
    const clauses = (Array.isArray(q.orderBy) ? q.orderBy : [q.orderBy]) as OrderByClause[];
    const keys = clauses.map((c) => {
      if (!('field' in c)) throw unsupported('functions in ORDER BY');
      const parts = splitPath(c.field, alias, model.name);
      const p = resolvePath(org, model, parts, soql, orderPos, parts[parts.length - 1]!);
      if (p.field && p.field.sortable === false) {
        throw queryError('INVALID_FIELD', soql, positionOf(soql, parts[parts.length - 1]!, orderPos), `field '${p.name}' can not be sorted in a query call`);
      }
      const type = p.field?.type ?? 'string';
      return { get: p.get, desc: c.order === 'DESC', nullsLast: c.nulls === 'LAST', exact: type === 'id' || type === 'reference' };
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
    bulkUnsupported ??= 'OFFSET';
    if (q.offset > 2000) throw new SfError(400, 'NUMBER_OUTSIDE_VALID_RANGE', 'Maximum SOQL offset allowed is 2000');
  }
  if (q.for) { /* FOR VIEW / FOR REFERENCE / FOR UPDATE: no effect here */ }
  const longTextFields = columns.filter((c) => c.steps.length === 0 && c.field?.type === 'textarea' && (c.field.length ?? 0) > 255 && (c.field.custom === true)).length;
  return {
    soql, model, kind: countOnly ? 'count' : aggregates.length > 0 ? 'aggregate' : 'records', columns, aggregates, where, compare,
    limit: q.limit, offset: q.offset, bulkUnsupported, longTextFields,
  };
}

function compareValues(a: unknown, b: unknown): number {
  if (typeof a === 'number' && typeof b === 'number') return a - b;
  if (typeof a === 'boolean' && typeof b === 'boolean') return a === b ? 0 : a ? 1 : -1;
  const sa = String(a).toUpperCase();
  const sb = String(b).toUpperCase();
  return sa < sb ? -1 : sa > sb ? 1 : 0;
}

// ---------- WHERE ----------

type Tok = { t: '(' } | { t: ')' } | { t: 'AND' } | { t: 'OR' } | { t: 'NOT' } | { t: 'cond'; c: Record<string, unknown> };

function flattenWhere(w: WhereClause | undefined, out: Tok[]): void {
  if (!w) return;
  const left = (w as { left: Record<string, unknown> | null }).left;
  if (left) {
    const open = Number(left.openParen ?? 0);
    for (let i = 0; i < open; i++) out.push({ t: '(' });
    if ('field' in left || 'fn' in left) {
      out.push({ t: 'cond', c: left });
      const close = Number(left.closeParen ?? 0);
      for (let i = 0; i < close; i++) out.push({ t: ')' });
    }
  }
  const op = (w as { operator?: string }).operator;
  if (op === 'AND' || op === 'OR' || op === 'NOT') out.push({ t: op });
  flattenWhere((w as { right?: WhereClause }).right, out);
}

type Pred = (rec: SimRecord) => boolean;

function compileWhere(org: OrgModel, model: ObjectModel, alias: string | undefined, w: WhereClause, soql: string, wherePos: number, opts: CompileOptions): Pred {
  const toks: Tok[] = [];
  flattenWhere(w, toks);
  let i = 0;
  const malformed = (tok: Tok | undefined): never => {
    const name = tok ? (tok.t === 'cond' ? String(tok.c.field ?? '') : tok.t) : '';
    throw queryError('MALFORMED_QUERY', soql, tok ? positionOf(soql, name, wherePos) : soql.length, tok ? `unexpected token: '${name}'` : 'unexpected token: <EOF>');
  };
  const parseExpr = (): Pred => {
    const first = parseUnary();
    const preds = [first];
    let op: 'AND' | 'OR' | null = null;
    while (i < toks.length && (toks[i]!.t === 'AND' || toks[i]!.t === 'OR')) {
      const t = toks[i]!.t as 'AND' | 'OR';
      if (op && op !== t) malformed(toks[i]);
      op = t;
      i++;
      preds.push(parseUnary());
    }
    if (preds.length === 1) return first;
    return op === 'AND' ? (r) => preds.every((p) => p(r)) : (r) => preds.some((p) => p(r));
  };
  const parseUnary = (): Pred => {
    const tok = toks[i];
    if (!tok) return malformed(undefined);
    if (tok.t === 'NOT') {
      i++;
      const inner = parseUnary();
      return (r) => !inner(r);
    }
    if (tok.t === '(') {
      i++;
      const e = parseExpr();
      if (toks[i]?.t !== ')') malformed(toks[i]);
      i++;
      return e;
    }
    if (tok.t === 'cond') {
      i++;
      return compileCondition(org, model, alias, tok.c, soql, wherePos, opts);
    }
    return malformed(tok);
  };
  const pred = parseExpr();
  if (i < toks.length) malformed(toks[i]);
  return pred;
}

const STRINGISH = new Set(['string', 'picklist', 'multipicklist', 'textarea', 'email', 'phone', 'url', 'combobox', 'encryptedstring', 'id', 'reference']);

function unescapeSoqlString(raw: string, keepLikeEscapes: boolean): string {
  const body = raw.startsWith("'") && raw.endsWith("'") ? raw.slice(1, -1) : raw;
  let out = '';
  for (let k = 0; k < body.length; k++) {
    const ch = body[k]!;
    if (ch !== '\\') { out += ch; continue; }
    const nx = body[++k] ?? '';
    switch (nx) {
      case 'n': case 'N': out += '\n'; break;
      case 'r': case 'R': out += '\r'; break;
      case 't': case 'T': out += '\t'; break;
      case 'b': case 'B': out += '\b'; break;
      case 'f': case 'F': out += '\f'; break;
      case '%': case '_': out += keepLikeEscapes ? `\\${nx}` : `\\${nx}`; break;
      default: out += nx;
    }
  }
  return out;
}

function likeToRegExp(pattern: string): RegExp {
  let re = '';
  for (let k = 0; k < pattern.length; k++) {
    const ch = pattern[k]!;
    if (ch === '\\' && (pattern[k + 1] === '%' || pattern[k + 1] === '_')) { re += pattern[++k]; continue; }
    if (ch === '%') re += '.*';
    else if (ch === '_') re += '.';
    else re += ch.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  }
  return new RegExp(`^${re}$`, 'is');
}

type Range = [number, number];

const DAY = 86_400_000;

function startOfDay(ms: number): number {
  return Math.floor(ms / DAY) * DAY;
}

function shiftMonths(ms: number, months: number): number {
  const d = new Date(ms);
  return Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + months, 1);
}

function unitStart(now: number, unit: 'DAY' | 'WEEK' | 'MONTH' | 'QUARTER' | 'YEAR', offset: number): number {
  const d = new Date(now);
  switch (unit) {
    case 'DAY': return startOfDay(now) + offset * DAY;
    case 'WEEK': return startOfDay(now) - d.getUTCDay() * DAY + offset * 7 * DAY;
    case 'MONTH': return shiftMonths(Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), 1), offset);
    case 'QUARTER': return shiftMonths(Date.UTC(d.getUTCFullYear(), Math.floor(d.getUTCMonth() / 3) * 3, 1), offset * 3);
    case 'YEAR': return Date.UTC(d.getUTCFullYear() + offset, 0, 1);
  }
}

/** [start, end) in UTC ms for a SOQL date literal (org time zone taken as UTC, fiscal year = calendar year). */
function dateLiteralRange(lit: string, n: number | undefined, now: number): Range | null {
  const L = lit.toUpperCase().split(':')[0]!;
  const u = (unit: Parameters<typeof unitStart>[1], from: number, to: number): Range => [unitStart(now, unit, from), unitStart(now, unit, to)];
  const k = n ?? 0;
  switch (L) {
    case 'YESTERDAY': return u('DAY', -1, 0);
    case 'TODAY': return u('DAY', 0, 1);
    case 'TOMORROW': return u('DAY', 1, 2);
    case 'LAST_WEEK': return u('WEEK', -1, 0);
    case 'THIS_WEEK': return u('WEEK', 0, 1);
    case 'NEXT_WEEK': return u('WEEK', 1, 2);
    case 'LAST_MONTH': return u('MONTH', -1, 0);
    case 'THIS_MONTH': return u('MONTH', 0, 1);
    case 'NEXT_MONTH': return u('MONTH', 1, 2);
    case 'LAST_90_DAYS': return u('DAY', -90, 1);
    case 'NEXT_90_DAYS': return u('DAY', 1, 91);
    case 'THIS_QUARTER': case 'THIS_FISCAL_QUARTER': return u('QUARTER', 0, 1);
    case 'LAST_QUARTER': case 'LAST_FISCAL_QUARTER': return u('QUARTER', -1, 0);
    case 'NEXT_QUARTER': case 'NEXT_FISCAL_QUARTER': return u('QUARTER', 1, 2);
    case 'THIS_YEAR': case 'THIS_FISCAL_YEAR': return u('YEAR', 0, 1);
    case 'LAST_YEAR': case 'LAST_FISCAL_YEAR': return u('YEAR', -1, 0);
    case 'NEXT_YEAR': case 'NEXT_FISCAL_YEAR': return u('YEAR', 1, 2);
    case 'LAST_N_DAYS': return u('DAY', -k, 1);
    case 'NEXT_N_DAYS': return u('DAY', 1, k + 1);
    case 'N_DAYS_AGO': return u('DAY', -k, -k + 1);
    case 'LAST_N_WEEKS': return u('WEEK', -k, 0);
    case 'NEXT_N_WEEKS': return u('WEEK', 1, k + 1);
    case 'N_WEEKS_AGO': return u('WEEK', -k, -k + 1);
    case 'LAST_N_MONTHS': return u('MONTH', -k, 0);
    case 'NEXT_N_MONTHS': return u('MONTH', 1, k + 1);
    case 'N_MONTHS_AGO': return u('MONTH', -k, -k + 1);
    case 'LAST_N_QUARTERS': case 'LAST_N_FISCAL_QUARTERS': return u('QUARTER', -k, 0);
    case 'NEXT_N_QUARTERS': case 'NEXT_N_FISCAL_QUARTERS': return u('QUARTER', 1, k + 1);
    case 'N_QUARTERS_AGO': case 'N_FISCAL_QUARTERS_AGO': return u('QUARTER', -k, -k + 1);
    case 'LAST_N_YEARS': case 'LAST_N_FISCAL_YEARS': return u('YEAR', -k, 0);
    case 'NEXT_N_YEARS': case 'NEXT_N_FISCAL_YEARS': return u('YEAR', 1, k + 1);
    case 'N_YEARS_AGO': case 'N_FISCAL_YEARS_AGO': return u('YEAR', -k, -k + 1);
    default: return null;
  }
}

function isoDate(ms: number): string {
  return new Date(ms).toISOString().slice(0, 10);
}

function compileCondition(org: OrgModel, model: ObjectModel, alias: string | undefined, c: Record<string, unknown>, soql: string, wherePos: number, opts: CompileOptions): Pred {
  if ('fn' in c) throw unsupported('functions in WHERE');
  const rawField = String(c.field);
  const parts = splitPath(rawField, alias, model.name);
  const lastPart = parts[parts.length - 1]!;
  const path = resolvePath(org, model, parts, soql, wherePos, lastPart);
  const f = path.field;
  const type = f?.type ?? 'string';
  const fpos = () => positionOf(soql, lastPart, wherePos);
  if (f && f.filterable === false) throw queryError('INVALID_FIELD', soql, fpos(), `field '${path.name}' can not be filtered in a query call`);
  const operator = String(c.operator).toUpperCase();
  const get = path.get;

  if (c.valueQuery) {
    if (operator !== 'IN' && operator !== 'NOT IN') throw unsupported(`${operator} with a subquery`);
    const inner = compileQuery(org, composeQuery(c.valueQuery as Query), opts);
    const col = inner.columns[0];
    if (inner.kind !== 'records' || inner.columns.length !== 1 || !col) {
      throw queryError('MALFORMED_QUERY', soql, fpos(), 'semi join sub-selects must select exactly one field');
    }
    const set = new Set(executeQuery(inner, false).map((r) => col.get(r)).filter((v) => v !== null && v !== undefined).map((v) => String(v).toUpperCase()));
    const neg = operator === 'NOT IN';
    return (rec) => {
      const x = get(rec);
      const hit = x !== null && x !== undefined && set.has(String(x).toUpperCase());
      return hit !== neg;
    };
  }

  const values = Array.isArray(c.value) ? (c.value as string[]) : [String(c.value)];
  const ltRaw = c.literalType;
  const lts = (Array.isArray(ltRaw) ? ltRaw : values.map(() => ltRaw)) as (string | undefined)[];
  const dateVars = Array.isArray(c.dateLiteralVariable) ? (c.dateLiteralVariable as number[]) : values.map(() => c.dateLiteralVariable as number | undefined);

  const typeName = type === 'datetime' ? 'dateTime' : type === 'int' ? 'integer' : ['double', 'currency', 'percent', 'long'].includes(type) ? 'double' : type;
  const literal = (raw: string, lt: string | undefined, k: number): { v: unknown; range?: Range } => {
    const L = (lt ?? 'STRING').toUpperCase();
    if (L === 'NULL') return { v: null };
    const bad = (quoted: boolean) => {
      const needQuotes = STRINGISH.has(type);
      const text = needQuotes
        ? `value of filter criterion for field '${path.name}' must be of type ${type === 'id' || type === 'reference' ? 'id' : 'string'} and should be enclosed in quotes`
        : `value of filter criterion for field '${path.name}' must be of type ${typeName} and should not be enclosed in quotes`;
      void quoted;
      return queryError('INVALID_FIELD', soql, positionOf(soql, raw, wherePos), text);
    };
    if (L === 'APEX_BIND_VARIABLE') throw queryError('MALFORMED_QUERY', soql, positionOf(soql, raw, wherePos), `unexpected token: '${raw}'`);
    switch (type) {
      case 'datetime':
        if (L === 'DATETIME') return { v: parseDateTime(raw) };
        if (L === 'DATE_LITERAL' || L === 'DATE_N_LITERAL') {
          const r = dateLiteralRange(raw, dateVars[k], opts.now);
          if (!r) throw unsupported(`the date literal ${raw}`);
          return { v: null, range: r };
        }
        throw bad(L === 'STRING');
      case 'date':
        if (L === 'DATE') return { v: raw };
        if (L === 'DATE_LITERAL' || L === 'DATE_N_LITERAL') {
          const r = dateLiteralRange(raw, dateVars[k], opts.now);
          if (!r) throw unsupported(`the date literal ${raw}`);
          return { v: null, range: r };
        }
        throw bad(L === 'STRING');
      case 'boolean':
        if (L === 'BOOLEAN') return { v: raw.toUpperCase() === 'TRUE' };
        throw bad(L === 'STRING');
      case 'int': case 'long': case 'double': case 'currency': case 'percent':
        if (L === 'INTEGER' || L === 'DECIMAL') return { v: Number(raw) };
        if ((L === 'INTEGER_WITH_CURRENCY_PREFIX' || L === 'DECIMAL_WITH_CURRENCY_PREFIX') && type === 'currency') return { v: Number(raw.slice(3)) };
        throw bad(L === 'STRING');
      default:
        if (L !== 'STRING') throw bad(false);
        if (type === 'id' || type === 'reference') {
          const s = unescapeSoqlString(raw, false);
          if (operator === 'LIKE') return { v: s };
          if (!isIdString(s)) {
            if (s === '') return { v: null };
            throw queryError('INVALID_QUERY_FILTER_OPERATOR', soql, positionOf(soql, raw, wherePos), `invalid ID field: ${s}`);
          }
          return { v: normalizeId(s) };
        }
        return { v: unescapeSoqlString(raw, operator === 'LIKE') };
    }
  };

  const lits = values.map((raw, k) => literal(raw, lts[k], k));
  const isStr = STRINGISH.has(type) && type !== 'id' && type !== 'reference';
  const eq = (a: unknown, b: unknown): boolean => {
    if (a === null || a === undefined) return b === null;
    if (b === null) return false;
    if (isStr) return String(a).toUpperCase() === String(b).toUpperCase();
    if (type === 'id' || type === 'reference') return String(a).toUpperCase() === String(b).toUpperCase();
    return a === b;
  };
  const inRange = (v: unknown, r: Range): boolean => {
    if (v === null || v === undefined) return false;
    if (type === 'date') return String(v) >= isoDate(r[0]) && String(v) < isoDate(r[1]);
    return (v as number) >= r[0] && (v as number) < r[1];
  };
  const rangeCmp = (v: unknown, r: Range, op: string): boolean => {
    if (v === null || v === undefined) return op === '!=';
    const lo = type === 'date' ? isoDate(r[0]) : r[0];
    const hi = type === 'date' ? isoDate(r[1]) : r[1];
    const x = v as number | string;
    switch (op) {
      case '=': return x >= lo && x < hi;
      case '!=': return !(x >= lo && x < hi);
      case '<': return x < lo;
      case '<=': return x < hi;
      case '>': return x >= hi;
      case '>=': return x >= lo;
      default: return false;
    }
  };
  const cmp = (a: unknown, b: unknown): number => (isStr ? compareValues(a, b) : compareValues(a, b));

  const one = lits[0]!;
  switch (operator) {
    case '=':
    case '!=': {
      const neg = operator === '!=';
      if (one.range) { const r = one.range; return (rec) => rangeCmp(get(rec), r, operator); }
      const v = one.v;
      return (rec) => eq(get(rec), v) !== neg;
    }
    case '<': case '<=': case '>': case '>=': {
      if (one.range) { const r = one.range; return (rec) => rangeCmp(get(rec), r, operator); }
      const v = one.v;
      if (v === null) return () => false;
      return (rec) => {
        const x = get(rec);
        if (x === null || x === undefined) return false;
        const c2 = cmp(x, v);
        return operator === '<' ? c2 < 0 : operator === '<=' ? c2 <= 0 : operator === '>' ? c2 > 0 : c2 >= 0;
      };
    }
    case 'LIKE': {
      if (!STRINGISH.has(type)) throw queryError('INVALID_FIELD', soql, fpos(), `invalid operator on field '${path.name}' of type ${typeName}`);
      const re = likeToRegExp(String(one.v ?? ''));
      return (rec) => {
        const x = get(rec);
        return x !== null && x !== undefined && re.test(String(x));
      };
    }
    case 'IN':
    case 'NOT IN': {
      const neg = operator === 'NOT IN';
      return (rec) => {
        const x = get(rec);
        const hit = lits.some((l) => (l.range ? inRange(x, l.range) : eq(x, l.v)));
        return hit !== neg;
      };
    }
    case 'INCLUDES':
    case 'EXCLUDES': {
      if (type !== 'multipicklist') throw queryError('INVALID_FIELD', soql, fpos(), `invalid operator on field '${path.name}' of type ${typeName}`);
      const sets = lits.map((l) => String(l.v ?? '').split(';').map((s) => s.trim().toUpperCase()));
      const neg = operator === 'EXCLUDES';
      return (rec) => {
        const x = get(rec);
        const have = new Set(x === null || x === undefined ? [] : String(x).split(';').map((s) => s.trim().toUpperCase()));
        const hit = sets.some((s) => s.every((v) => have.has(v)));
        return hit !== neg;
      };
    }
    default:
      throw queryError('MALFORMED_QUERY', soql, fpos(), `unexpected token: '${operator}'`);
  }
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
      case 'COUNT': v = vals.length; break;
      case 'COUNT_DISTINCT': v = new Set(vals.map((x) => (typeof x === 'string' ? x.toUpperCase() : x))).size; break;
      case 'SUM': v = vals.length ? vals.reduce((s: number, x) => s + (x as number), 0) : null; break;
      case 'AVG': v = vals.length ? vals.reduce((s: number, x) => s + (x as number), 0) / vals.length : null; break;
      case 'MIN': v = vals.length ? vals.reduce((m, x) => (compareValues(x, m) < 0 ? x : m)) : null; break;
      case 'MAX': v = vals.length ? vals.reduce((m, x) => (compareValues(x, m) > 0 ? x : m)) : null; break;
    }
    const f = a.fn === 'COUNT' || a.fn === 'COUNT_DISTINCT' ? { name: a.alias, type: 'int' } : a.fn === 'AVG' ? { name: a.alias, type: 'double' } : a.path!.field;
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
  return `{"type":${JSON.stringify(modelName)},"url":${JSON.stringify(`/services/data/v${version}/sobjects/${modelName}/${String(id ?? '')}`)}}`;
}

function renderObject(org: OrgModel, nodes: RenderNode[], model: ObjectModel | undefined, rec: SimRecord, version: string, polymorphic: boolean): string {
  let out = `{"attributes":${attributes(model?.name ?? 'Name', rec.Id, version)}`;
  for (const n of nodes) {
    if (n.step) {
      const id = rec[n.step.refField.name];
      const hit = typeof id === 'string' ? org.lookup(id) : undefined;
      out += `,${JSON.stringify(n.key)}:${hit ? renderObject(org, n.children!, hit.model, hit.rec, version, n.step.polymorphic) : 'null'}`;
    } else {
      const name = n.column!.name;
      const v = readField(model, rec, name, polymorphic);
      const f = (model && model.fields.get(name.toLowerCase())) ?? n.column!.field;
      out += `,${JSON.stringify(name)}:${jsonValue(f, v)}`;
    }
  }
  return `${out}}`;
}

export function renderJsonRecord(org: OrgModel, tree: RenderNode[], cq: CompiledQuery, rec: SimRecord, version: string): string {
  return renderObject(org, tree, cq.model, rec, version, false);
}

export function csvHeader(cq: CompiledQuery, delimiter: string): string {
  return csvLine(cq.columns.map((c) => c.header), delimiter);
}

export function csvRow(cq: CompiledQuery, rec: SimRecord, delimiter: string): string {
  return csvLine(cq.columns.map((c) => {
    const v = c.get(rec);
    if (c.steps.length === 0) return csvValue(c.field, v);
    const h = c.holder(rec);
    const f = (h?.model && h.model.fields.get(c.name.toLowerCase())) ?? c.field;
    return csvValue(f, v);
  }), delimiter);
}
