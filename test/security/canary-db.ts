/**
 * The canary database of the security suites: a dedicated PostgreSQL database created from the
 * shared fixture (../shared/security/where-fixture.sql, beside the repository), non-superuser
 * read roles for the scenarios (default; hijack: search_path = hijack, public; scs_off:
 * standard_conforming_strings = off), and the probes the invariants need: server NOTICEs seen by
 * every pg client of this process (the fixture's canary raises one even when its INSERT then fails
 * in a read-only transaction), a fingerprint of everything a condition could write, and a
 * backend's peak memory (VmHWM in /proc, PostgreSQL running on this machine).
 */
import { randomBytes } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import pg from "pg";
import { adminUrl, dbUrl } from "../../support/env.ts";

const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), "../..");

/** The shared security folder (../shared/security beside the repository); fails clearly when it is missing. */
export function sharedSecurityFile(name: string): string {
  const path = resolve(REPO_ROOT, "../shared/security", name);
  if (!existsSync(path))
    throw new Error(`the shared attack set is missing: expected ${path} (the shared repository is cloned beside this one, as ../shared; CI does so)`);
  return path;
}

export type Scenario = "default" | "hijack" | "scs_off";

export interface CanaryDb {
  database: string;
  /** A connection URL for the scenario's read role (never a superuser). */
  url(scenario: Scenario): string;
  /** Runs `fn` with an admin client on the canary database. */
  admin<T>(fn: (c: pg.Client) => Promise<T>): Promise<T>;
  drop(): Promise<void>;
}

const ROLE_SETTINGS: Record<Scenario, string | null> = {
  default: null,
  hijack: "SET search_path = hijack, public",
  scs_off: "SET standard_conforming_strings = off",
};

async function withAdmin<T>(database: string, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client({ connectionString: database === "postgres" ? adminUrl : dbUrl(database) });
  c.on("error", () => undefined);
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end().catch(() => undefined);
  }
}

/**
 * Creates `database` (dropped first if a crashed run left it) with the shared fixture loaded, and
 * one LOGIN role per scenario named `<rolePrefix>_<scenario>`: CONNECT, USAGE on public and hijack,
 * SELECT on every table (the secret one too, so that only the allowlist keeps a condition from it),
 * INSERT on the canary log (only the read-only transaction stops the canary's write).
 */
export async function createCanaryDb(database: string, rolePrefix: string): Promise<CanaryDb> {
  const fixture = readFileSync(sharedSecurityFile("where-fixture.sql"), "utf8");
  const password = randomBytes(12).toString("hex");
  const role = (s: Scenario) => `${rolePrefix}_${s}`;
  const scenarios = Object.keys(ROLE_SETTINGS) as Scenario[];
  const drop = async () => {
    await withAdmin("postgres", async (c) => {
      await c.query("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()", [database]);
      await c.query(`DROP DATABASE IF EXISTS "${database}"`);
      for (const s of scenarios) await c.query(`DROP ROLE IF EXISTS "${role(s)}"`);
    });
  };
  await drop();
  await withAdmin("postgres", async (c) => {
    await c.query(`CREATE DATABASE "${database}"`);
    for (const s of scenarios) await c.query(`CREATE ROLE "${role(s)}" LOGIN NOSUPERUSER PASSWORD '${password}'`);
  });
  await withAdmin(database, async (c) => {
    await c.query(fixture);
    for (const s of scenarios) {
      const r = `"${role(s)}"`;
      await c.query(
        `GRANT CONNECT ON DATABASE "${database}" TO ${r}; GRANT USAGE ON SCHEMA public, hijack TO ${r};
         GRANT SELECT ON ALL TABLES IN SCHEMA public TO ${r}; GRANT INSERT ON public.canary_log TO ${r};
         GRANT USAGE, SELECT ON SEQUENCE public.canary_seq TO ${r}`,
      );
      if (ROLE_SETTINGS[s]) await c.query(`ALTER ROLE ${r} IN DATABASE "${database}" ${ROLE_SETTINGS[s]}`);
    }
  });
  return {
    database,
    url(scenario) {
      const u = new URL(dbUrl(database));
      u.username = role(scenario);
      u.password = password;
      return u.toString();
    },
    admin: (fn) => withAdmin(database, fn),
    drop,
  };
}

/**
 * Everything a condition could change in the database: its tables, the canary log, the sequence,
 * its catalog object counts, large objects. (Cluster-wide catalogs such as pg_roles are left out:
 * other suites create roles at the same time.)
 */
export async function fingerprint(c: pg.Client): Promise<string> {
  const r = await c.query<{ f: string }>(
    `SELECT concat_ws(' / ',
       (SELECT md5(string_agg(a::text, '|' ORDER BY a.id)) FROM public.accounts a),
       (SELECT md5(coalesce(string_agg(s::text, '|' ORDER BY s::text), '')) FROM public.secret_table s),
       (SELECT count(*) FROM public.canary_log),
       (SELECT last_value::text || is_called::text FROM public.canary_seq),
       (SELECT count(*) FROM pg_class), (SELECT count(*) FROM pg_proc), (SELECT count(*) FROM pg_namespace),
       (SELECT count(*) FROM pg_largeobject_metadata)) AS f`,
  );
  return r.rows[0]!.f;
}

export interface Notice {
  pid: number | null;
  message: string;
}

/**
 * Hooks every pg client connected from now on (the connector's included): records its server
 * NOTICEs and keeps it, to find the connector's backend pid. `restore()` unhooks.
 */
export function watchClients(): { notices: Notice[]; clients: pg.Client[]; restore(): void } {
  const notices: Notice[] = [];
  const clients: pg.Client[] = [];
  const proto = pg.Client.prototype as unknown as { connect: (...args: unknown[]) => unknown };
  const original = proto.connect;
  proto.connect = function (this: pg.Client, ...args: unknown[]) {
    clients.push(this);
    this.on("notice", (n) => notices.push({ pid: (this as unknown as { processID: number | null }).processID, message: n.message ?? "" }));
    return original.apply(this, args);
  };
  return {
    notices,
    clients,
    restore() {
      proto.connect = original;
    },
  };
}

/** The pid of the last connected client whose application_name is `app`. */
export function backendPid(clients: pg.Client[], app: string): number | null {
  for (let i = clients.length - 1; i >= 0; i--) {
    const c = clients[i] as unknown as { processID: number | null; connectionParameters?: { application_name?: string } };
    if (c.connectionParameters?.application_name === app && c.processID) return c.processID;
  }
  return null;
}

/** A backend's peak resident memory in kB (VmHWM), or why it cannot be read. */
export function peakMemoryKb(pid: number | null): { kb: number } | { unreadable: string } {
  if (!pid) return { unreadable: "no backend pid" };
  const file = `/proc/${pid}/status`;
  try {
    const cmdline = readFileSync(`/proc/${pid}/cmdline`, "utf8");
    if (!cmdline.includes("postgres")) return { unreadable: `pid ${pid} on this machine is not a PostgreSQL backend (is PostgreSQL remote?)` };
    const m = /^VmHWM:\s+(\d+) kB/m.exec(readFileSync(file, "utf8"));
    return m ? { kb: Number(m[1]) } : { unreadable: `${file} has no VmHWM line` };
  } catch (e) {
    return { unreadable: `${file}: ${(e as Error).message} (PostgreSQL on another machine or in a container?)` };
  }
}
