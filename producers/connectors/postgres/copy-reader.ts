/**
 * Reads the result of one query through `COPY (<query>) TO STDOUT` (text format), page by page:
 * the server streams rows without a round trip per page, and the socket applies backpressure while
 * the consumer still holds a page (the server waits; nothing piles up here beyond one socket read).
 *
 * The text format (PostgreSQL's COPY documentation, "Text Format"): a row per line ending in \n,
 * columns separated by \t, NULL as \N, and in a value a backslash escapes itself and the control
 * characters (\b \f \n \r \t \v); \digits (octal) and \xhh (hex) are decoded too, though COPY TO
 * never writes them. A raw \n or \t byte is never part of a value, and UTF-8 multi-byte characters
 * never contain those bytes, so the stream can be cut at any raw newline before it is decoded.
 *
 * `statementTimeoutMs` bounds each wait for the server's next data (the whole COPY is one statement:
 * the time the consumer takes with its pages does not count); past it the statement is cancelled and
 * the read fails with CopyStalledError.
 */
import type pg from "pg";
import { to as copyTo } from "pg-copy-streams";
import { ConfigError } from "../../../lib/errors.ts";

/** One row: the columns' text values, null for SQL NULL. */
export type CopyRow = (string | null)[];

/** The server sent nothing for statementTimeoutMs while the read waited for it. Not retriable: the query is too slow. */
export class CopyStalledError extends ConfigError {}

type CopyStream = ReturnType<typeof copyTo>;

interface CopyReaderOptions {
  /** Columns per row: a row of another width is refused (the text was misread). */
  columns: number;
  pageRows: number;
  statementTimeoutMs: number;
  /** Cancels the running statement (pg_cancel_backend from another connection). */
  cancel(): Promise<void>;
  /** The error a stall ends the read with. */
  stalled(): CopyStalledError;
}

export class CopyReader {
  private readonly opts: CopyReaderOptions;
  private stream: CopyStream | undefined;
  private readonly started: Promise<CopyStream>;
  private markStarted!: (s: CopyStream) => void;
  private ended = false;
  private failure: unknown;
  private wake: (() => void) | undefined;
  private discarding = false;
  private rest: Buffer | null = null;
  private pending: CopyRow[] = [];
  private stall: NodeJS.Timeout | undefined;
  private stalledOut = false;

  constructor(opts: CopyReaderOptions) {
    this.opts = opts;
    this.started = new Promise((resolve) => {
      this.markStarted = resolve;
    });
  }

  /** Sends the COPY on `client`; resolves when the server ended it (every row read or discarded). */
  start(client: pg.Client, query: string): Promise<void> {
    const stream = client.query(copyTo(`COPY (${query}) TO STDOUT`));
    this.stream = stream;
    const done = new Promise<void>((resolve, reject) => {
      stream.on("end", () => {
        this.ended = true;
        this.notify();
        resolve();
      });
      stream.on("error", (e: unknown) => {
        this.failure = this.stalledOut ? this.opts.stalled() : e;
        this.ended = true;
        this.notify();
        reject(this.failure);
      });
    });
    stream.on("readable", () => {
      if (this.discarding) while (stream.read() !== null);
      this.notify();
    });
    this.markStarted(stream);
    return done;
  }

  /** The next page of at most pageRows rows, or null after the last. */
  async nextPage(): Promise<CopyRow[] | null> {
    const stream = await this.started;
    while (this.pending.length < this.opts.pageRows) {
      const chunk = stream.read() as Buffer | null;
      if (chunk !== null) {
        this.take(chunk);
        continue;
      }
      if (this.failure !== undefined) throw this.failure;
      if (this.ended) break;
      await this.waitForData();
    }
    if (this.failure !== undefined) throw this.failure;
    if (this.pending.length === 0) {
      if (this.rest && this.rest.length > 0) throw new Error("COPY output ended inside a row");
      return null;
    }
    const page = this.pending.length <= this.opts.pageRows ? this.pending : this.pending.slice(0, this.opts.pageRows);
    this.pending = page === this.pending ? [] : this.pending.slice(this.opts.pageRows);
    return page;
  }

  /** Whether the server's COPY is still being received (not ended, not failed). */
  get inFlight(): boolean {
    return this.stream !== undefined && !this.ended;
  }

  /**
   * Stops reading rows: what the server still sends is read and dropped, so that the statement
   * ends and the connection is free for the ROLLBACK queued after it (cancel it first to end it soon).
   */
  discard(): void {
    this.discarding = true;
    this.pending = [];
    this.rest = null;
    clearTimeout(this.stall);
    const s = this.stream;
    if (s) while (s.read() !== null);
  }

  private notify(): void {
    const w = this.wake;
    this.wake = undefined;
    w?.();
  }

  /** Waits for the stream's next data; past statementTimeoutMs without any, cancels the statement. */
  private waitForData(): Promise<void> {
    return new Promise<void>((resolve) => {
      this.stall = setTimeout(() => {
        this.stalledOut = true;
        this.opts.cancel().catch(() => {});
      }, this.opts.statementTimeoutMs);
      this.wake = () => {
        clearTimeout(this.stall);
        resolve();
      };
    });
  }

  /** Cuts a chunk at its last raw newline; the complete rows go to `pending`, the tail waits for the next chunk. */
  private take(chunk: Buffer): void {
    const lastNl = chunk.lastIndexOf(10);
    if (lastNl < 0) {
      this.rest = this.rest ? Buffer.concat([this.rest, chunk]) : chunk;
      return;
    }
    const head = this.rest ? Buffer.concat([this.rest, chunk.subarray(0, lastNl)]) : chunk.subarray(0, lastNl);
    this.rest = lastNl + 1 < chunk.length ? chunk.subarray(lastNl + 1) : null;
    parseCopyText(head.toString("utf8"), this.opts.columns, this.pending);
  }
}

/** Parses complete lines of COPY text (without the last newline) into `out`. */
export function parseCopyText(text: string, columns: number, out: CopyRow[]): void {
  let start = 0;
  for (;;) {
    let end = text.indexOf("\n", start);
    if (end < 0) end = text.length;
    const row: CopyRow = text.slice(start, end).split("\t");
    if (row.length !== columns) throw new Error(`COPY row with ${row.length} columns, expected ${columns}`);
    for (let i = 0; i < columns; i++) {
      const c = row[i]!;
      if (c.length > 0 && c.charCodeAt(0) === 92 && c === "\\N") row[i] = null;
      else if (c.includes("\\")) row[i] = unescapeCopy(c);
    }
    out.push(row);
    if (end >= text.length) return;
    start = end + 1;
  }
}

const SIMPLE_ESCAPES: Record<string, string> = { b: "\b", f: "\f", n: "\n", r: "\r", t: "\t", v: "\v" };
const BYTE_ESCAPE = /\\(?:[0-7]|x[0-9a-fA-F])/;

/** Decodes the backslash sequences of one COPY text value. */
export function unescapeCopy(value: string): string {
  if (BYTE_ESCAPE.test(value)) return unescapeBytes(value);
  let out = "";
  let i = 0;
  for (;;) {
    const at = value.indexOf("\\", i);
    if (at < 0 || at === value.length - 1) return out + value.slice(i);
    const c = value[at + 1]!;
    out += value.slice(i, at) + (SIMPLE_ESCAPES[c] ?? c);
    i = at + 2;
  }
}

/** The rare value with \ooo or \xhh sequences: they stand for bytes of the (UTF-8) text, so decode bytes. */
function unescapeBytes(value: string): string {
  const src = Buffer.from(value, "utf8");
  const out = Buffer.alloc(src.length);
  let n = 0;
  const isOct = (b: number | undefined) => b !== undefined && b >= 0x30 && b <= 0x37;
  const hexOf = (b: number | undefined) =>
    b === undefined ? -1 : b >= 0x30 && b <= 0x39 ? b - 0x30 : b >= 0x61 && b <= 0x66 ? b - 0x57 : b >= 0x41 && b <= 0x46 ? b - 0x37 : -1;
  for (let i = 0; i < src.length; ) {
    const b = src[i]!;
    if (b !== 0x5c || i === src.length - 1) {
      out[n++] = b;
      i++;
      continue;
    }
    const c = src[i + 1]!;
    if (isOct(c)) {
      let v = 0,
        j = i + 1;
      while (j < i + 4 && isOct(src[j])) v = v * 8 + (src[j++]! - 0x30);
      out[n++] = v & 0xff;
      i = j;
    } else if (c === 0x78 && hexOf(src[i + 2]) >= 0) {
      let v = hexOf(src[i + 2]),
        j = i + 3;
      if (hexOf(src[j]) >= 0) v = v * 16 + hexOf(src[j++]);
      out[n++] = v;
      i = j;
    } else {
      const simple = SIMPLE_ESCAPES[String.fromCharCode(c)];
      out[n++] = simple ? simple.charCodeAt(0) : c;
      i += 2;
    }
  }
  return out.toString("utf8", 0, n);
}
