/**
 * The PostgreSQL source's guards against a real server (issue 14): it refuses to read as a
 * superuser or as a member of the server-file/program roles unless connection.allowSuperuser, and
 * says why (check reports it too); and a read has a total time limit (readTimeoutSeconds), not only
 * a per-statement one: a statement running past it is cancelled, a transaction idle between pages
 * past it is ended at once (its snapshot released while the consumer still holds the page), and the
 * error names the connector, the table and the setting, and is not retried.
 */
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PostgresConnector } from "../../producers/connectors/postgres/config.ts";
import { PrivilegedRoleError, ReadTimeoutError } from "../../producers/connectors/postgres/guards.ts";
import { PostgresSource } from "../../producers/connectors/postgres/source.ts";
import type { SourcePage } from "../../producers/connector.ts";
import { dbUrl } from "../../support/env.ts";
import { type CanaryDb, createCanaryDb } from "./canary-db.ts";

const DATABASE = "qobra_sync_security_guards";
const PREFIX = "qobra_sync_guards";
const EXTRA_ROLES = { files: "pg_read_server_files", program: "pg_execute_server_program" } as const;

let db: CanaryDb;
const roleUrl = (role: string) => {
  const u = new URL(db.url("default"));
  u.username = role;
  return u.toString();
};

function source(url: string, table: { source: string; where?: string }, connection: Record<string, unknown> = {}): PostgresSource {
  return new PostgresSource(
    PostgresConnector.parse({
      id: "guarded",
      type: "postgres",
      connection: { url, ...connection },
      tables: [{ name: "t", source: table.source, idColumn: "id", nameColumn: "name", fields: {}, ...(table.where ? { where: table.where } : {}) }],
    }),
  );
}

const readOpts = () => ({ full: true, signal: new AbortController().signal, state: null, runStartedAt: Date.now() });

async function drain(s: PostgresSource): Promise<number> {
  let n = 0;
  for await (const page of s.read("t", readOpts())) n += page.records.length;
  return n;
}

/** The state of the connector's backend (application_name qobra-sync, the given role) on the server. */
async function backendState(role: string): Promise<Array<{ state: string; xmin: string | null; query: string }>> {
  return db.admin(async (c) => {
    const r = await c.query<{ state: string; xmin: string | null; query: string }>(
      "SELECT state, backend_xmin::text AS xmin, query FROM pg_stat_activity WHERE usename = $1 AND application_name = 'qobra-sync'",
      [role],
    );
    return r.rows;
  });
}

beforeAll(async () => {
  db = await createCanaryDb(DATABASE, PREFIX);
  await db.admin(async (c) => {
    for (const [name, group] of Object.entries(EXTRA_ROLES)) {
      await c.query(`DROP ROLE IF EXISTS ${PREFIX}_${name}`);
      await c.query(`CREATE ROLE ${PREFIX}_${name} LOGIN PASSWORD '${new URL(db.url("default")).password}' IN ROLE ${group}`);
      await c.query(`GRANT CONNECT ON DATABASE ${DATABASE} TO ${PREFIX}_${name}; GRANT SELECT ON public.accounts TO ${PREFIX}_${name}`);
    }
    await c.query(`
      CREATE TABLE public.big AS SELECT i AS id, 'row ' || i AS name FROM generate_series(1, 10000) i;
      -- about 2 ms per row: each FETCH of 2,000 rows takes ~4 s, the whole read ~20 s
      CREATE VIEW public.slow_rows AS SELECT b.id, b.name FROM public.big b WHERE pg_sleep(0.001)::text = '';
      -- about 10 ms per row: one FETCH takes ~20 s
      CREATE VIEW public.slower_rows AS SELECT b.id, b.name FROM public.big b WHERE pg_sleep(0.01)::text = '';
      GRANT SELECT ON public.big, public.slow_rows, public.slower_rows TO ${PREFIX}_default;`);
  });
}, 120_000);

afterAll(async () => {
  await db?.drop();
  const c = new pg.Client({ connectionString: dbUrl("postgres") });
  await c.connect();
  for (const name of Object.keys(EXTRA_ROLES)) await c.query(`DROP ROLE IF EXISTS ${PREFIX}_${name}`);
  await c.end();
});

describe("a read refuses a role that can reach the server's programs or files", () => {
  it("refuses a superuser, says why and how to make a read-only role; check reports it", async () => {
    const s = source(dbUrl(DATABASE), { source: "public.accounts" });
    try {
      const e = await drain(s).catch((err: unknown) => err);
      expect(e).toBeInstanceOf(PrivilegedRoleError);
      expect((e as PrivilegedRoleError).retriable).toBe(false);
      const message = (e as Error).message;
      expect(message).toMatch(/^connector guarded: the connection's PostgreSQL role is a superuser/);
      expect(message).toMatch(/READ ONLY transaction does not stop such a role .* \(COPY … TO PROGRAM\)/);
      expect(message).toMatch(/CREATE ROLE qobra_sync_reader LOGIN .* GRANT SELECT ON public\.accounts TO qobra_sync_reader/);
      expect(message).toMatch(/connection\.allowSuperuser: true/);
      const [check] = await s.check();
      expect(check!.ok).toBe(false);
      expect(check!.problems.join("\n")).toMatch(/role is a superuser.*COPY … TO PROGRAM/);
    } finally {
      await s.close();
    }
  });

  it.each(Object.entries(EXTRA_ROLES))("refuses a member of %s's group (%s)", async (name, group) => {
    const s = source(roleUrl(`${PREFIX}_${name}`), { source: "public.accounts" });
    try {
      const e = await drain(s).catch((err: unknown) => err);
      expect(e).toBeInstanceOf(PrivilegedRoleError);
      expect((e as Error).message).toMatch(new RegExp(`role is a member of ${group}, and qobra-sync refuses to read with it`));
    } finally {
      await s.close();
    }
  });

  it("reads as a superuser with allowSuperuser: true (check warns), and as a plain role without it", async () => {
    const allowed = source(dbUrl(DATABASE), { source: "public.accounts" }, { allowSuperuser: true });
    const plain = source(db.url("default"), { source: "public.accounts" });
    try {
      expect(await drain(allowed)).toBe(2000);
      const [check] = await allowed.check();
      expect(check!.problems).toEqual([]);
      expect(check!.warnings.join("\n")).toMatch(/role is a superuser.*allowed by connection\.allowSuperuser/);
      expect(await drain(plain)).toBe(2000);
      const [plainCheck] = await plain.check();
      expect(plainCheck!.ok).toBe(true);
      expect(plainCheck!.warnings.join("\n")).not.toMatch(/superuser/);
    } finally {
      await allowed.close();
      await plain.close();
    }
  });
});

describe("a read has a total time limit (connection.readTimeoutSeconds)", () => {
  const role = `${PREFIX}_default`;

  it("ends a read of many statements, each within statement_timeout, at the read's limit", async () => {
    // Each FETCH takes ~4 s, under its 6 s statement_timeout; the whole read would take ~20 s.
    const s = source(db.url("default"), { source: "public.slow_rows" }, { readTimeoutSeconds: 5, statementTimeoutMs: 6000 });
    const started = performance.now();
    try {
      const e = await drain(s).catch((err: unknown) => err);
      const ms = performance.now() - started;
      expect(e).toBeInstanceOf(ReadTimeoutError);
      expect((e as ReadTimeoutError).retriable).toBe(false);
      expect((e as Error).message).toMatch(
        /^connector guarded, table t: the read took longer than connection\.readTimeoutSeconds \(5 s\); it was cancelled and its transaction ended\. Not retried: the same read would take as long again\. Raise connection\.readTimeoutSeconds/,
      );
      expect(ms).toBeGreaterThan(4500);
      expect(ms).toBeLessThan(7000);
      expect(await backendState(role)).toEqual([expect.objectContaining({ state: "idle", xmin: null })]);
    } finally {
      await s.close();
    }
  });

  it("cancels a statement still running at the deadline (the timer's pg_cancel_backend, before statement_timeout's backstop)", async () => {
    const s = source(db.url("default"), { source: "public.slower_rows" }, { readTimeoutSeconds: 2, statementTimeoutMs: 60_000 });
    const started = performance.now();
    try {
      const e = await drain(s).catch((err: unknown) => err);
      const ms = performance.now() - started;
      expect(e).toBeInstanceOf(ReadTimeoutError);
      // the server's own statement_timeout would only cancel it a second after the deadline
      expect(ms).toBeLessThan(2900);
      const [state] = await backendState(role);
      expect(state).toMatchObject({ state: "idle", xmin: null });
    } finally {
      await s.close();
    }
  });

  it("ends a transaction left idle between pages at the deadline, while the consumer still holds a page", async () => {
    const s = source(db.url("default"), { source: "public.big" }, { readTimeoutSeconds: 1 });
    try {
      const pages = s.read("t", readOpts())[Symbol.asyncIterator]();
      const first = (await pages.next()) as IteratorResult<SourcePage>;
      expect(first.value.records).toHaveLength(2000);
      // The snapshot is held while the consumer holds the page: the COPY either still streams (the
      // server "active", writing to the client) or is done and the transaction idle (a CI run saw
      // "active" right after the first page: the 10,000 rows had not all been sent yet).
      const [held] = await backendState(role);
      expect(["idle in transaction", "active"]).toContain(held?.state);
      expect(held?.xmin).not.toBeNull();
      await new Promise((r) => setTimeout(r, 2000));
      // the consumer has not come back, yet the snapshot is gone
      expect(await backendState(role)).toEqual([expect.objectContaining({ state: "idle", xmin: null })]);
      await expect(pages.next()).rejects.toBeInstanceOf(ReadTimeoutError);
    } finally {
      await s.close();
    }
  });

  it("ends the transaction when the consumer stops early, and reads fully within the limit", async () => {
    const s = source(db.url("default"), { source: "public.big" }, { readTimeoutSeconds: 30 });
    try {
      for await (const page of s.read("t", readOpts())) {
        expect(page.records).toHaveLength(2000);
        break;
      }
      expect(await backendState(role)).toEqual([expect.objectContaining({ state: "idle" })]);
      expect(await drain(s)).toBe(10_000);
    } finally {
      await s.close();
    }
  });
});
