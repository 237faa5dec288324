/**
 * Passwords that break naive URL parsing (`#`, `/`, `?`, `@`, `%` in them, raw or percent-encoded),
 * the URLs that carry them, and `leaks`: every distinctive piece of a password found in a text,
 * raw, percent-encoded or decoded. Shared by test/unit/secrets-*.test.ts and
 * test/integration/secrets.test.ts.
 */

/** The issue's examples: each password as written in the URL, and as the server must receive it. */
export const ISSUE_URLS = [
  { url: "postgres://u:2024#S3cr3t@host:5432/db", password: "2024#S3cr3t", host: "host", port: "5432", db: "db" },
  { url: "postgres://u:p/a?s@s@host/db", password: "p/a?s@s", host: "host", port: "5432", db: "db" },
  { url: "postgres://u:p%40ss%23w@host/db", password: "p@ss#w", host: "host", port: "5432", db: "db" },
  { url: "postgresql://etl:Zq9%2F#x?y@Wk@db.internal:6543/crm?connect_timeout=5", password: "Zq9/#x?y@Wk", host: "db.internal", port: "6543", db: "crm" },
  { url: "postgres://u:50%off@host/db", password: "50%off", host: "host", port: "5432", db: "db" },
] as const;

/**
 * Pieces of a password that must never show: the whole (raw, percent-encoded, decoded), and in
 * each form its parts between special characters (4+ characters) and the 3-character windows
 * around each special character.
 */
export function fragments(password: string): string[] {
  const forms = new Set<string>([password, encodeURIComponent(password)]);
  try {
    forms.add(decodeURIComponent(password));
  } catch {
    // not percent-encoded text
  }
  const out = new Set<string>(forms);
  for (const form of forms) {
    for (const part of form.split(/[#/?@%:]/)) if (part.length >= 4) out.add(part);
    for (let i = 1; i < form.length - 1; i++) if ("#/?@%:".includes(form[i]!)) out.add(form.slice(i - 1, i + 2));
  }
  return [...out];
}

/** The fragments of `passwords` that occur in `text` (an empty list: nothing leaked). */
export function leaks(text: string, ...passwords: string[]): string[] {
  return passwords.flatMap((p) => fragments(p).filter((f) => text.includes(f)));
}
