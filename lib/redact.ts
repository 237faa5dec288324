/**
 * The last line of defence against a secret in a message: the logger, the run events and the
 * settings page pass their text through `maskSecrets`. The first line is never building such a
 * message (connections are described by host, port and database: lib/endpoint.ts).
 *
 *  - Any `scheme://user-info@` has its user-info replaced by `***`, even when the password holds
 *    `#`, `/`, `?`, `@` or `%` (everything up to the last '@' before a space or a quote goes).
 *  - The values of the config's secret fields (and the passwords inside its URLs), remembered when
 *    the config is loaded (`rememberSecret`), are replaced by `***` wherever they appear, raw or
 *    percent-encoded. Values shorter than MIN_SECRET characters are not remembered: masking them
 *    would garble ordinary text, and they are not worth stealing anyway.
 */
import { credentialsOf } from "./endpoint.ts";

const MIN_SECRET = 5;
const known = new Set<string>();

// scheme:// then user-info ending at the last '@' before whitespace, a quote, '<', '>' or a backslash
// (a JSON-escaped quote): greedy, so '@' inside the password is taken too.
const USER_INFO = /\b([A-Za-z][A-Za-z0-9+.-]*:\/\/)[^\s"'<>\\]*@/g;

/** Remembers a secret value (and, for a URL, the password it carries), to be masked wherever it appears. */
export function rememberSecret(value: string): void {
  // A URL is not a secret in itself (a registry's address): only the password it may carry is.
  const isUrl = /^[A-Za-z][A-Za-z0-9+.-]*:\/\//.test(value);
  const values = isUrl ? [credentialsOf(value)?.password ?? ""] : [value];
  for (const v of values) {
    if (v.length < MIN_SECRET) continue;
    for (const form of new Set([v, encodeURIComponent(v), JSON.stringify(v).slice(1, -1)])) known.add(form);
  }
}

/** Masks credential-bearing URLs and remembered secret values in a text. */
export function maskSecrets(text: string): string {
  let out = text.includes("://") ? text.replace(USER_INFO, "$1***@") : text;
  for (const s of known) if (out.includes(s)) out = out.split(s).join("***");
  return out;
}

/** `maskSecrets` applied to every string of a JSON-like value (a page state, an event), keys included. */
export function maskDeep<T>(value: T): T {
  if (typeof value === "string") return maskSecrets(value) as T;
  if (Array.isArray(value)) return value.map((v) => maskDeep(v)) as T;
  if (value && typeof value === "object" && Object.getPrototypeOf(value) === Object.prototype) {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [maskSecrets(k), maskDeep(v)])) as T;
  }
  return value;
}
