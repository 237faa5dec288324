/**
 * Freshness from Qobra's PostgreSQL itself: per sink table, the live and soft-deleted rows and
 * the last write (`max(_synced_at)`).
 */
import type pg from "pg";
import { sinkRelation } from "../consumers/sink/sink-sql.ts";
import type { Config } from "../lib/config.ts";

export interface SinkTableStats {
  connector: string;
  table: string;
  /** schema.connector__table (a tenant's: its schema, the connector's own id) */
  relation: string;
  exists: boolean;
  live: number;
  deleted: number;
  lastSyncedAt: number | null;
}

/** The sink table of a connector's table, as people read it: `schema.connector__table`. */
export function sinkRelationName(config: Pick<Config, "sink">, connector: { id: string; tenant?: string }, table: string): string {
  const r = sinkRelation(config.sink, connector, table);
  return `${r.schema}.${r.name}`;
}

export async function sinkTableStats(pool: pg.Pool, config: Config, opts: { exactCounts?: boolean } = {}): Promise<SinkTableStats[]> {
  const out: SinkTableStats[] = [];
  for (const c of config.connectors) {
    for (const t of c.tables) {
      const where = sinkRelation(config.sink, c, t.name);
      const relation = where.qualified;
      const present = await pool.query<{ r: string | null }>("SELECT to_regclass($1)::text AS r", [relation]);
      const row: SinkTableStats = {
        connector: c.id,
        table: t.name,
        relation: `${where.schema}.${where.name}`,
        exists: present.rows[0]?.r != null,
        live: 0,
        deleted: 0,
        lastSyncedAt: null,
      };
      if (row.exists) {
        const r = await pool.query<{ live: string; deleted: string; last: Date | null }>(
          opts.exactCounts === false
            ? `SELECT greatest(c.reltuples, 0)::bigint AS live, 0 AS deleted, (SELECT max("_synced_at") FROM ${relation}) AS last FROM pg_class c WHERE c.oid = to_regclass($1)`
            : `SELECT count(*) FILTER (WHERE "_deleted_at" IS NULL) AS live, count(*) FILTER (WHERE "_deleted_at" IS NOT NULL) AS deleted, max("_synced_at") AS last FROM ${relation}`,
          opts.exactCounts === false ? [relation] : [],
        );
        const s = r.rows[0];
        if (s) {
          row.live = Number(s.live);
          row.deleted = Number(s.deleted);
          row.lastSyncedAt = s.last ? s.last.getTime() : null;
        }
      }
      out.push(row);
    }
  }
  return out;
}
