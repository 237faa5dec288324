/**
 * Three hot spots of kafkajs 2.2.4's producer, replaced by equivalent code before kafkajs loads
 * (profiles in docs/benchmarks.md; the producer and the mapper send every record of a sync):
 *  - grouping a send's messages by partition (src/producer/groupMessagesPerPartition.js) copies
 *    the partition's array for every message, O(n²) per send (kafkajs pull request #1576, never
 *    released): here one pass, the same groups in the same order;
 *  - the CRC-32C of each record batch (src/protocol/recordBatch/crc32C/crc32C.js) reads one byte
 *    per step: here eight (slicing-by-8 tables of the same Castagnoli polynomial), the same value;
 *  - each record (src/protocol/recordBatch/record/v0/index.js) is written into a zero-filled
 *    512-byte buffer of its own, and each header into another, sizes computed with 64-bit Long
 *    arithmetic: here the record's exact size is computed first and it is written once into a
 *    buffer from Node's shared pool, the same bytes.
 * test/unit/kafkajs-speedups.test.ts holds all three equal to kafkajs's own on random input.
 *
 * They are put in Node's module cache under kafkajs's own file names, so kafkajs's `require`
 * finds them; that works only before kafkajs is first loaded (bin/qobra-sync.js installs them
 * first thing) and only for the kafkajs version they were written against: otherwise nothing is
 * replaced and kafkajs runs as it is.
 */
import { Module, createRequire } from "node:module";

const require = createRequire(import.meta.url);

interface GroupArgs<M> {
  topic: string;
  partitionMetadata: unknown[];
  messages: M[];
  partitioner: (args: { topic: string; partitionMetadata: unknown[]; message: M }) => number;
}

/** kafkajs's groupMessagesPerPartition, in one pass. */
export function groupMessagesPerPartition<M>({ topic, partitionMetadata, messages, partitioner }: GroupArgs<M>): Record<number, M[]> {
  const result: Record<number, M[]> = {};
  if (partitionMetadata.length === 0) return result;
  for (const message of messages) {
    const partition = partitioner({ topic, partitionMetadata, message });
    const group = result[partition];
    if (group) group.push(message);
    else result[partition] = [message];
  }
  return result;
}

/** Slicing-by-8 tables of CRC-32C (reflected polynomial 0x82F63B78), table k at [256 k, 256 k + 256). */
const T = (() => {
  const t = new Int32Array(2048);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ 0x82f63b78 : c >>> 1;
    t[n] = c;
  }
  for (let s = 1; s < 8; s++) for (let n = 0; n < 256; n++) t[s * 256 + n] = (t[(s - 1) * 256 + n]! >>> 8) ^ t[t[(s - 1) * 256 + n]! & 0xff]!;
  return t;
})();

/** CRC-32C of a buffer, unsigned, as kafkajs's crc32C.js returns it. */
export function crc32c(buffer: Uint8Array): number {
  let crc = -1;
  let i = 0;
  const n = buffer.length;
  const end8 = n - (n & 7);
  while (i < end8) {
    const a = crc ^ (buffer[i]! | (buffer[i + 1]! << 8) | (buffer[i + 2]! << 16) | (buffer[i + 3]! << 24));
    crc =
      T[1792 + (a & 0xff)]! ^
      T[1536 + ((a >>> 8) & 0xff)]! ^
      T[1280 + ((a >>> 16) & 0xff)]! ^
      T[1024 + (a >>> 24)]! ^
      T[768 + buffer[i + 4]!]! ^
      T[512 + buffer[i + 5]!]! ^
      T[256 + buffer[i + 6]!]! ^
      T[buffer[i + 7]!]!;
    i += 8;
  }
  while (i < n) {
    crc = T[(crc ^ buffer[i]!) & 0xff]! ^ (crc >>> 8);
    i++;
  }
  return (crc ^ -1) >>> 0;
}

type Bytes = Buffer | string | number | null | undefined;

interface RecordArgs {
  offsetDelta?: number;
  timestampDelta?: number;
  key?: Bytes;
  value?: Bytes;
  headers?: Record<string, Bytes | Bytes[]>;
}

/** What kafkajs's record batch takes of an encoded record (Encoder#writeEncoderArray: `buf`, `buffer`). */
interface EncodedRecord {
  readonly buf: Buffer;
  readonly offset: number;
  readonly buffer: Buffer;
}

const zigzag32 = (n: number): number => ((n << 1) ^ (n >> 31)) >>> 0;
const sizeOfUVarInt = (u: number): number => (u < 0x80 ? 1 : u < 0x4000 ? 2 : u < 0x200000 ? 3 : u < 0x10000000 ? 4 : 5);
const sizeOfVarInt = (n: number): number => sizeOfUVarInt(zigzag32(n));
const zigzag64 = (n: number): bigint => (n >= 0 ? BigInt(n) * 2n : -BigInt(n) * 2n - 1n);
const sizeOfVarLong = (n: number): number => {
  let u = zigzag64(n);
  let size = 1;
  while (u >= 0x80n) {
    u >>= 7n;
    size++;
  }
  return size;
};

/** A key or value: null, a string or a Buffer (kafkajs sizes it with Buffer.byteLength, which throws on anything else). */
const asBytes = (v: Bytes): Buffer | string | null => {
  if (v === null || v === undefined) return null;
  if (typeof v === "string" || Buffer.isBuffer(v)) return v;
  throw new TypeError(`a key or value must be a string or a Buffer, not ${typeof v}`);
};
const byteLength = (v: Buffer | string): number => (typeof v === "string" ? Buffer.byteLength(v, "utf8") : v.length);

/** kafkajs's record v0 (Length, Attributes, TimestampDelta, OffsetDelta, Key, Value, Headers), written once at its exact size. */
export function encodeRecord({ offsetDelta = 0, timestampDelta = 0, key, value, headers = {} }: RecordArgs): EncodedRecord {
  const pairs: Array<[string, Buffer | string | null]> = [];
  // kafkajs sizes header values with Buffer.byteLength: anything but a string or a Buffer throws there, and here.
  const headerValue = (v: unknown): Buffer | string => {
    if (typeof v === "string" || Buffer.isBuffer(v)) return v;
    throw new TypeError(`a header value must be a string or a Buffer, not ${v === null ? "null" : typeof v}`);
  };
  for (const name of Object.keys(headers)) {
    const v = headers[name];
    if (Array.isArray(v)) for (const x of v) pairs.push([name, headerValue(x)]);
    else pairs.push([name, headerValue(v)]);
  }
  const k = asBytes(key);
  const val = asBytes(value);
  const keySize = k === null ? -1 : byteLength(k);
  const valueSize = val === null ? -1 : byteLength(val);
  let headersSize = sizeOfVarInt(pairs.length);
  const sizes: number[] = new Array(pairs.length * 2);
  for (let i = 0; i < pairs.length; i++) {
    const [name, v] = pairs[i]!;
    const ks = Buffer.byteLength(name, "utf8");
    const vs = v === null ? -1 : byteLength(v);
    sizes[2 * i] = ks;
    sizes[2 * i + 1] = vs;
    headersSize += sizeOfVarInt(ks) + ks + sizeOfVarInt(vs) + Math.max(vs, 0);
  }
  const smallDelta = Number.isInteger(timestampDelta) && timestampDelta >= -0x40000000 && timestampDelta < 0x40000000;
  const body =
    1 +
    (smallDelta ? sizeOfVarInt(timestampDelta) : sizeOfVarLong(timestampDelta)) +
    sizeOfVarInt(offsetDelta) +
    sizeOfVarInt(keySize) +
    Math.max(keySize, 0) +
    sizeOfVarInt(valueSize) +
    Math.max(valueSize, 0) +
    headersSize;
  const total = sizeOfVarInt(body) + body;
  const buf = Buffer.allocUnsafe(total);
  let pos = writeUVarInt(buf, 0, zigzag32(body));
  buf[pos++] = 0; // attributes
  if (smallDelta) pos = writeUVarInt(buf, pos, zigzag32(timestampDelta));
  else {
    let u = zigzag64(timestampDelta);
    while (u >= 0x80n) {
      buf[pos++] = Number(u & 0x7fn) | 0x80;
      u >>= 7n;
    }
    buf[pos++] = Number(u);
  }
  pos = writeUVarInt(buf, pos, zigzag32(offsetDelta));
  pos = writeBytes(buf, pos, k, keySize);
  pos = writeBytes(buf, pos, val, valueSize);
  pos = writeUVarInt(buf, pos, zigzag32(pairs.length));
  for (let i = 0; i < pairs.length; i++) {
    const [name, v] = pairs[i]!;
    pos = writeBytes(buf, pos, name, sizes[2 * i]!);
    pos = writeBytes(buf, pos, v, sizes[2 * i + 1]!);
  }
  return new WrittenRecord(buf, pos);
}

/** A written record, as kafkajs's record batch reads an Encoder (`buf`, `buffer`). */
class WrittenRecord implements EncodedRecord {
  readonly buf: Buffer;
  readonly offset: number;
  constructor(buf: Buffer, offset: number) {
    this.buf = buf;
    this.offset = offset;
  }
  get buffer(): Buffer {
    // Written at its exact size: the whole buffer.
    return this.offset === this.buf.length ? this.buf : this.buf.subarray(0, this.offset);
  }
}

function writeUVarInt(buf: Buffer, pos: number, u: number): number {
  while (u >= 0x80) {
    buf[pos++] = (u & 0x7f) | 0x80;
    u >>>= 7;
  }
  buf[pos] = u;
  return pos + 1;
}

function writeBytes(buf: Buffer, pos: number, v: Buffer | string | null, size: number): number {
  pos = writeUVarInt(buf, pos, zigzag32(size));
  if (v === null) return pos;
  if (typeof v === "string") buf.write(v, pos, size, "utf8");
  else v.copy(buf, pos);
  return pos + size;
}

/** The kafkajs version these replacements were written against (its internal files and their contracts). */
const KAFKAJS_VERSION = "2.2.4";

/** Puts the replacements in the module cache; false when kafkajs is another version or already loaded. */
export function installKafkajsSpeedups(): boolean {
  try {
    const version = (require("kafkajs/package.json") as { version: string }).version;
    const entry = require.resolve("kafkajs");
    if (version !== KAFKAJS_VERSION || require.cache[entry]) return false;
    const files: Array<[string, unknown]> = [
      ["kafkajs/src/producer/groupMessagesPerPartition.js", groupMessagesPerPartition],
      ["kafkajs/src/protocol/recordBatch/crc32C/crc32C.js", crc32c],
      ["kafkajs/src/protocol/recordBatch/record/v0/index.js", encodeRecord],
    ];
    for (const [file, exports] of files) {
      const filename = require.resolve(file);
      const m = new Module(filename);
      m.filename = filename;
      m.exports = exports;
      m.loaded = true;
      require.cache[filename] = m;
    }
    return true;
  } catch {
    return false;
  }
}
