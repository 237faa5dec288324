/**
 * The raw record (schemas/raw-record.avsc) in Avro binary, written and read by hand because every
 * record of a run passes here twice (producer, mapper): the same bytes avsc writes (test/unit/
 * raw-codec.test.ts holds them equal for any record), in a fraction of the time, because most of
 * a record repeats from one record to the next (connector, table, run id, the field names, the
 * source types) and is written from, or read into, what the previous records left:
 *  - writing, the encoding of such strings is cached, and the source types map (one object per
 *    page) is encoded once per object;
 *  - reading, a string whose bytes equal a recently read one is that string, and a source types
 *    map whose bytes equal the previous record's is the same (frozen) object.
 * Codec uses it for the schema id whose parsing canonical form is raw-record.avsc's; any other
 * writer schema (an older raw record) goes through avsc.
 */
import type { RawRecord, RawValue } from "../schemas/index.ts";

const OPS = ["UPSERT", "DELETE"] as const;
const CACHE_LIMIT = 4096;

/** Encoded strings (zigzag length + UTF-8) of the repeating positions. */
const encodedStrings = new Map<string, Buffer>();
/** Encoded source types maps, by object (a page's records share one). */
const encodedMaps = new WeakMap<object, Buffer>();

/**
 * Writes `r` at `pos` of `buf`; returns the end, or (like avsc's Type#encode) minus the number of
 * bytes missing when `buf` is too short. Throws on a value the schema does not allow.
 */
export function encodeRawRecord(r: RawRecord, buf: Buffer, pos: number): number {
  const bound = pos + upperBound(r);
  if (bound > buf.length) return buf.length - bound;
  pos = writeCached(buf, pos, r.connector);
  pos = writeCached(buf, pos, r.table);
  pos = writeString(buf, pos, r.externalId);
  const op = OPS.indexOf(r.op);
  if (op < 0) throw new Error(`invalid op ${JSON.stringify(r.op)}`);
  buf[pos++] = op << 1;
  pos = writeCached(buf, pos, r.runId);
  pos = writeLong(buf, pos, r.readAt);
  // Fields with a default take it when undefined, as avsc does.
  pos = writeNullableString(buf, pos, r.sourceUpdatedAt === undefined ? null : r.sourceUpdatedAt);
  pos = writeNullableString(buf, pos, r.name === undefined ? null : r.name);
  const keys = Object.keys(r.fields);
  if (keys.length > 0) {
    pos = writeLong(buf, pos, keys.length);
    for (const k of keys) {
      pos = writeCached(buf, pos, k);
      pos = writeValue(buf, pos, r.fields[k]!);
    }
  }
  buf[pos++] = 0;
  const sourceTypes = r.sourceTypes === undefined ? {} : r.sourceTypes;
  let types = encodedMaps.get(sourceTypes);
  if (!types) {
    if (typeof sourceTypes !== "object" || sourceTypes === null || Array.isArray(sourceTypes)) throw new Error("invalid sourceTypes");
    types = encodeStringMap(sourceTypes);
    encodedMaps.set(sourceTypes, types);
  }
  types.copy(buf, pos);
  return pos + types.length;
}

/** Bytes `r` takes at most (3 per UTF-16 unit, 10 per length or count). */
function upperBound(r: RawRecord): number {
  let n = 64 + 3 * (r.connector.length + r.table.length + r.externalId.length + r.runId.length);
  n += 3 * ((r.sourceUpdatedAt?.length ?? 0) + (r.name?.length ?? 0));
  if (typeof r.fields !== "object" || r.fields === null || Array.isArray(r.fields)) throw new Error("invalid fields");
  for (const k in r.fields) {
    const v = r.fields[k];
    n += 20 + 3 * k.length;
    if (typeof v === "string") n += 3 * v.length;
    else if (Array.isArray(v)) for (const x of v) n += 12 + 3 * (x?.length ?? 0);
  }
  for (const k in r.sourceTypes) n += 20 + 3 * (k.length + (r.sourceTypes[k]?.length ?? 0));
  return n;
}

function writeValue(buf: Buffer, pos: number, v: RawValue): number {
  if (v === null) {
    buf[pos] = 0;
    return pos + 1;
  }
  if (typeof v === "boolean") {
    buf[pos] = 2;
    buf[pos + 1] = v ? 1 : 0;
    return pos + 2;
  }
  if (typeof v === "string") {
    buf[pos] = 4;
    return writeString(buf, pos + 1, v);
  }
  if (!Array.isArray(v)) throw new Error(`invalid field value ${JSON.stringify(v)}`);
  buf[pos++] = 6;
  if (v.length > 0) {
    pos = writeLong(buf, pos, v.length);
    for (const x of v) pos = writeNullableString(buf, pos, x);
  }
  buf[pos] = 0;
  return pos + 1;
}

function writeNullableString(buf: Buffer, pos: number, s: string | null): number {
  if (s === null) {
    buf[pos] = 0;
    return pos + 1;
  }
  if (typeof s !== "string") throw new Error(`invalid string ${JSON.stringify(s)}`);
  buf[pos] = 2;
  return writeString(buf, pos + 1, s);
}

function encodeStringMap(m: Record<string, string>): Buffer {
  const keys = Object.keys(m);
  let size = 11;
  for (const k of keys) size += 20 + 3 * (k.length + m[k]!.length);
  const buf = Buffer.alloc(size);
  let pos = 0;
  if (keys.length > 0) {
    pos = writeLong(buf, pos, keys.length);
    for (const k of keys) {
      pos = writeCached(buf, pos, k);
      pos = writeString(buf, pos, m[k]!);
    }
  }
  buf[pos++] = 0;
  return buf.subarray(0, pos);
}

function writeCached(buf: Buffer, pos: number, s: string): number {
  let enc = encodedStrings.get(s);
  if (!enc) {
    if (typeof s !== "string") throw new Error(`invalid string ${JSON.stringify(s)}`);
    const tmp = Buffer.alloc(10 + 3 * s.length);
    enc = Buffer.from(tmp.subarray(0, writeString(tmp, 0, s)));
    if (encodedStrings.size >= CACHE_LIMIT) encodedStrings.clear();
    encodedStrings.set(s, enc);
  }
  enc.copy(buf, pos);
  return pos + enc.length;
}

/** A string: zigzag length, then UTF-8 (ASCII written in place, anything else through the native encoder). */
function writeString(buf: Buffer, pos: number, s: string): number {
  if (typeof s !== "string") throw new Error(`invalid string ${JSON.stringify(s)}`);
  const n = s.length;
  if (n < 64) {
    let p = pos + 1;
    let i = 0;
    for (; i < n; i++) {
      const c = s.charCodeAt(i);
      if (c >= 0x80) break;
      buf[p++] = c;
    }
    if (i === n) {
      buf[pos] = n << 1;
      return p;
    }
  }
  const len = Buffer.byteLength(s);
  pos = writeLong(buf, pos, len);
  buf.write(s, pos, len, "utf8");
  return pos + len;
}

/** Avro long: zigzag, then base-128 varint (exact for any safe integer). */
function writeLong(buf: Buffer, pos: number, n: number): number {
  // avsc's range: the safe integers but the two extremes.
  if (!Number.isInteger(n) || n > 9007199254740990 || n < -9007199254740990) throw new Error(`invalid long ${n}`);
  if (n >= -1073741824 && n < 1073741824) {
    let m = n >= 0 ? n << 1 : (~n << 1) | 1;
    while (m > 0x7f) {
      buf[pos++] = (m & 0x7f) | 0x80;
      m >>>= 7;
    }
    buf[pos] = m;
    return pos + 1;
  }
  let f = n >= 0 ? n * 2 : -n * 2 - 1;
  while (f >= 128) {
    buf[pos++] = (f % 128) | 0x80;
    f = Math.floor(f / 128);
  }
  buf[pos] = f;
  return pos + 1;
}

/** Reads raw records, remembering what repeats (see the file header); one reader per consumer. */
export class RawRecordReader {
  private buf: Buffer = Buffer.alloc(0);
  private pos = 0;
  /** Recently read repeating strings, by a hash of their bytes. */
  private readonly strings = new Map<number, { bytes: Buffer; value: string }>();
  private lastTypes: { bytes: Buffer; value: Record<string, string> } | undefined;

  /** Decodes one record (the Avro body, after the Confluent framing); throws on bytes that are not one. */
  read(buf: Buffer): RawRecord {
    this.buf = buf;
    this.pos = 0;
    const connector = this.cachedString();
    const table = this.cachedString();
    const externalId = this.string();
    const op = OPS[this.long()];
    if (op === undefined) throw new Error("invalid op index");
    const runId = this.cachedString();
    const readAt = this.long();
    const sourceUpdatedAt = this.nullableString();
    const name = this.nullableString();
    const fields: Record<string, RawValue> = {};
    for (let n = this.count(); n !== 0; n = this.count()) {
      for (let i = 0; i < n; i++) {
        const key = this.cachedString();
        fields[key] = this.value();
      }
    }
    const sourceTypes = this.sourceTypes();
    if (this.pos > buf.length) throw new Error("truncated buffer");
    if (this.pos < buf.length) throw new Error("trailing data");
    return { connector, table, externalId, op, runId, readAt, sourceUpdatedAt, name, fields, sourceTypes };
  }

  private sourceTypes(): Record<string, string> {
    const start = this.pos;
    const last = this.lastTypes;
    const length = this.buf.length - start;
    if (last && last.bytes.length === length && this.buf.compare(last.bytes, 0, length, start) === 0) {
      this.pos = this.buf.length;
      return last.value;
    }
    const m: Record<string, string> = {};
    for (let n = this.count(); n !== 0; n = this.count()) {
      for (let i = 0; i < n; i++) {
        const key = this.cachedString();
        m[key] = this.cachedString();
      }
    }
    const value = Object.freeze(m);
    if (this.pos === this.buf.length) this.lastTypes = { bytes: Buffer.from(this.buf.subarray(start)), value };
    return value;
  }

  private value(): RawValue {
    switch (this.long()) {
      case 0:
        return null;
      case 1: {
        const b = this.buf[this.pos++];
        if (b !== 0 && b !== 1) throw new Error("invalid boolean");
        return b === 1;
      }
      case 2:
        return this.string();
      case 3: {
        const items: (string | null)[] = [];
        for (let n = this.count(); n !== 0; n = this.count()) for (let i = 0; i < n; i++) items.push(this.nullableString());
        return items;
      }
      default:
        throw new Error("invalid union index");
    }
  }

  /** A block count (a negative one is followed by the block's size in bytes, which is skipped). */
  private count(): number {
    const n = this.long();
    if (n >= 0) return n;
    this.long();
    return -n;
  }

  private nullableString(): string | null {
    const branch = this.long();
    if (branch === 0) return null;
    if (branch !== 1) throw new Error("invalid union index");
    return this.string();
  }

  private string(): string {
    const len = this.long();
    const pos = this.pos;
    if (len < 0 || pos + len > this.buf.length) throw new Error("truncated buffer");
    this.pos = pos + len;
    return this.buf.toString("utf8", pos, pos + len);
  }

  /** A string of a repeating position: the one read before when the bytes are the same. */
  private cachedString(): string {
    const len = this.long();
    const buf = this.buf;
    const pos = this.pos;
    if (len < 0 || pos + len > buf.length) throw new Error("truncated buffer");
    this.pos = pos + len;
    let h = 0x811c9dc5 ^ len;
    for (let i = pos; i < pos + len; i++) h = Math.imul(h ^ buf[i]!, 0x01000193);
    const hit = this.strings.get(h);
    if (hit && hit.bytes.length === len && buf.compare(hit.bytes, 0, len, pos, pos + len) === 0) return hit.value;
    const value = buf.toString("utf8", pos, pos + len);
    if (this.strings.size >= CACHE_LIMIT) this.strings.clear();
    this.strings.set(h, { bytes: Buffer.from(buf.subarray(pos, pos + len)), value });
    return value;
  }

  private long(): number {
    const buf = this.buf;
    let b = buf[this.pos++]!;
    if (b === undefined) throw new Error("truncated buffer");
    let n = b & 0x7f;
    let k = 7;
    while (b & 0x80 && k < 28) {
      b = buf[this.pos++]!;
      if (b === undefined) throw new Error("truncated buffer");
      n |= (b & 0x7f) << k;
      k += 7;
    }
    if (!(b & 0x80)) return (n >>> 1) ^ -(n & 1);
    let f = n;
    let fk = 268435456;
    do {
      b = buf[this.pos++]!;
      if (b === undefined) throw new Error("truncated buffer");
      f += (b & 0x7f) * fk;
      fk *= 128;
    } while (b & 0x80);
    return (f % 2 ? -(f + 1) : f) / 2;
  }
}
