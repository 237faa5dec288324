/**
 * Creates the demo source: database qobra_demo_crm with public.deals (N rows, default 10,000),
 * a read-only role qobra_demo_reader, and the sink database qobra. Idempotent.
 * Usage: node demo/seed.ts [rows] [admin-url]
 */
import pg from "pg";

async function seedDemo(opts: { rows?: number; adminUrl?: string; database?: string; reader?: string } = {}): Promise<void> {
  const rows = opts.rows ?? 10_000;
  const adminUrl = opts.adminUrl ?? process.env.QOBRA_SYNC_PG_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";
  const database = opts.database ?? "qobra_demo_crm";
  const reader = opts.reader ?? "qobra_demo_reader";
  const admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
  try {
    for (const db of [database, "qobra"]) {
      const exists = await admin.query("SELECT 1 FROM pg_database WHERE datname = $1", [db]);
      if (exists.rowCount === 0) await admin.query(`CREATE DATABASE "${db}"`);
    }
    const role = await admin.query("SELECT 1 FROM pg_roles WHERE rolname = $1", [reader]);
    if (role.rowCount === 0) await admin.query(`CREATE ROLE "${reader}" LOGIN`);
  } finally {
    await admin.end();
  }
  const url = new URL(adminUrl);
  url.pathname = `/${database}`;
  const db = new pg.Client({ connectionString: url.toString() });
  await db.connect();
  try {
    await db.query(
      `
      DROP TABLE IF EXISTS public.deals;
      CREATE TABLE public.deals (
        id bigint PRIMARY KEY,
        title text NOT NULL,
        amount numeric(18,4),
        currency char(3),
        closed_on date,
        owner_email text,
        tags text,
        stage text,
        won boolean,
        probability double precision,
        big_counter bigint,
        updated_at timestamp without time zone NOT NULL
      );
      INSERT INTO public.deals
      SELECT 9007199254740993 + g,
             'Deal #' || g,
             round((g * 1234.5678 + 0.0001)::numeric, 4),
             (ARRAY['EUR','USD','GBP'])[1 + g % 3],
             DATE '2026-01-01' + (g % 300),
             'Rep' || (g % 25) || '@Example.com',
             CASE WHEN g % 4 = 0 THEN 'new;upsell' WHEN g % 4 = 1 THEN 'renewal' ELSE NULL END,
             (ARRAY['prospect','negotiation','won'])[1 + g % 3],
             g % 3 = 2,
             (g % 100) / 100.0,
             9007199254740993 + g * 2,
             TIMESTAMP '2026-03-29 01:30:00' + g * interval '1 minute'
        FROM generate_series(1, $1::int) g;
      GRANT CONNECT ON DATABASE "${database}" TO "${reader}";
      GRANT USAGE ON SCHEMA public TO "${reader}";
      GRANT SELECT ON public.deals TO "${reader}";
    `.replace("$1::int", String(Math.trunc(rows))),
    );
  } finally {
    await db.end();
  }
  await seedQobraUsers(adminUrl);
}

/**
 * Qobra's users in the sink database (`qobra.users`, the sink's default users query): most demo
 * owners exist, a few do not, so the page and /metrics show unresolved users too. Idempotent.
 */
async function seedQobraUsers(adminUrl: string): Promise<void> {
  const url = new URL(adminUrl);
  url.pathname = "/qobra";
  const db = new pg.Client({ connectionString: url.toString() });
  await db.connect();
  try {
    await db.query(`
      CREATE SCHEMA IF NOT EXISTS qobra;
      CREATE TABLE IF NOT EXISTS qobra.users (id text PRIMARY KEY, email text NOT NULL);
      INSERT INTO qobra.users
      SELECT 'user-rep-' || g, 'rep' || g || '@example.com' FROM generate_series(0, 19) g
      UNION ALL VALUES ('user-ada', 'ada.lovelace@example.com'), ('user-grace', 'grace.thompson@example.com'),
                       ('user-alice', 'alice.martin@example.com'), ('user-bruno', 'bruno.dupont@example.com')
      ON CONFLICT (id) DO NOTHING;`);
  } finally {
    await db.end();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const rows = process.argv[2] ? Number(process.argv[2]) : undefined;
  await seedDemo({ rows, adminUrl: process.argv[3] });
  console.log(
    `demo source ready: qobra_demo_crm.public.deals (${rows ?? 10_000} rows), read by role qobra_demo_reader; sink database qobra with 24 Qobra users (qobra.users)`,
  );
}
