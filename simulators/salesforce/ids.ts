// Salesforce record ids: 15-character case-sensitive ids and their 18-character case-insensitive form.
// The 3-character suffix encodes, for each 5-character chunk, which characters are upper-case letters
// (bit i set when char i is A-Z), as an index into ABCDEFGHIJKLMNOPQRSTUVWXYZ012345.

const SUFFIX_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345";
const BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
const ID_RE = /^[a-zA-Z0-9]{15}(?:[a-zA-Z0-9]{3})?$/;

export function isIdString(s: string): boolean {
  return ID_RE.test(s);
}

export function to18(id: string): string {
  if (id.length === 18) return canonicalId(id);
  if (id.length !== 15) throw new Error(`not a Salesforce id: ${id}`);
  const out: string[] = [id];
  for (let chunk = 0; chunk < 3; chunk++) {
    let bits = 0;
    for (let i = 0; i < 5; i++) {
      const c = id.charCodeAt(chunk * 5 + i);
      if (c >= 65 && c <= 90) bits |= 1 << i;
    }
    out.push(SUFFIX_ALPHABET[bits]!);
  }
  // join() yields a flat string (repeated += would keep a tree of cons-strings alive for every stored id)
  return out.join("");
}

/** Restores the case of the first 15 characters of an 18-char id from its suffix (18-char ids are case-insensitive). */
function canonicalId(id18: string): string {
  const suffix = id18.slice(15).toUpperCase();
  const out: string[] = [];
  for (let chunk = 0; chunk < 3; chunk++) {
    const bits = SUFFIX_ALPHABET.indexOf(suffix[chunk] ?? "A");
    for (let i = 0; i < 5; i++) {
      const ch = id18[chunk * 5 + i] ?? "0";
      out.push(bits >= 0 && bits & (1 << i) ? ch.toUpperCase() : ch.toLowerCase());
    }
  }
  out.push(suffix);
  const canon = out.join("");
  return canon === id18 ? id18 : canon;
}

/** Normalises a 15- or 18-character id to its canonical 18-character form; other strings are returned unchanged. */
export function normalizeId(s: string): string {
  if (!ID_RE.test(s)) return s;
  return to18(s);
}

function base62(n: number, width: number): string {
  let out = "";
  let v = Math.floor(n);
  while (v > 0) {
    out = BASE62[v % 62] + out;
    v = Math.floor(v / 62);
  }
  return out.padStart(width, "0").slice(-width);
}

/** Mints ids that look like real ones: 3-char key prefix, 2-char pod, '0', 9-char sequence, 3-char suffix. */
export class IdFactory {
  private seq = new Map<string, number>();
  private readonly pod: string;

  constructor(pod = "Qb") {
    this.pod = pod;
  }

  next(prefix: string): string {
    const n = (this.seq.get(prefix) ?? 0) + 1;
    this.seq.set(prefix, n);
    return to18(`${prefix}${this.pod}0${base62(n + 10_000, 9)}`);
  }

  /** Makes sure later ids do not collide with an id loaded from data. */
  observe(id18: string): void {
    if (id18.slice(3, 5) !== this.pod || id18[5] !== "0") return;
    const prefix = id18.slice(0, 3);
    const body = id18.slice(6, 15);
    let n = 0;
    for (const ch of body) {
      const d = BASE62.indexOf(ch);
      if (d < 0) return;
      n = n * 62 + d;
    }
    const cur = this.seq.get(prefix) ?? 0;
    if (n - 10_000 > cur) this.seq.set(prefix, n - 10_000);
  }
}
