/**
 * The sink's offsets, stored in the sink database next to the rows (`<schema>._qobra_sync_offsets`)
 * and written in the same transaction as them: they are the truth about what was applied. This
 * file holds the only SQL that touches that table, and the positioning of the consumer on them
 * (on assignment, and on the first batch of a partition the assignment missed).
 */
import type pg from "pg";
import { ident } from "../../lib/pg.ts";
import { OFFSETS_TABLE } from "./sink-sql.ts";

type Queryable = Pick<pg.ClientBase, "query">;

export class OffsetStore {
  private readonly table: string;
  private readonly group: string;

  constructor(schema: string, group: string) {
    this.table = `${ident(schema)}.${ident(OFFSETS_TABLE)}`;
    this.group = group;
  }

  /** The next offset to apply of each partition of a topic that has one stored. */
  async stored(db: Queryable, topic: string): Promise<Map<number, number>> {
    const r = await db.query<{ partition: number; next_offset: string }>(
      `SELECT partition, next_offset FROM ${this.table} WHERE consumer_group = $1 AND topic = $2`,
      [this.group, topic],
    );
    return new Map(r.rows.map((x) => [x.partition, Number(x.next_offset)]));
  }

  /**
   * Inside a batch's transaction: locks the partition's row (created at 0 the first time) until
   * the commit, so two sinks never apply the same partition at once, and returns its next offset.
   */
  async lock(client: Queryable, topic: string, partition: number): Promise<number> {
    await client.query(`INSERT INTO ${this.table} (consumer_group, topic, partition, next_offset) VALUES ($1, $2, $3, 0) ON CONFLICT DO NOTHING`, [
      this.group,
      topic,
      partition,
    ]);
    const cur = await client.query<{ next_offset: string }>(
      `SELECT next_offset FROM ${this.table} WHERE consumer_group = $1 AND topic = $2 AND partition = $3 FOR UPDATE`,
      [this.group, topic, partition],
    );
    return Number(cur.rows[0]?.next_offset ?? 0);
  }

  /** Inside the same transaction as the rows: the partition's next offset. */
  async advance(client: Queryable, topic: string, partition: number, nextOffset: number): Promise<void> {
    await client.query(`UPDATE ${this.table} SET next_offset = $4, updated_at = now() WHERE consumer_group = $1 AND topic = $2 AND partition = $3`, [
      this.group,
      topic,
      partition,
      nextOffset,
    ]);
  }
}

interface PositionerDeps {
  store: Pick<OffsetStore, "stored">;
  db: Queryable;
  /** Log start offsets of a topic's partitions (where a sink database without offsets starts). */
  lowOffsets(topic: string): Promise<Map<number, number>>;
  seek(topic: string, partition: number, offset: number): void;
}

/**
 * Puts the consumer where the stored offsets say, or at the topic's beginning for a partition
 * without any (a new or dropped sink database replays everything).
 */
export class Positioner {
  private readonly positioned = new Set<string>();
  private readonly deps: PositionerDeps;
  constructor(deps: PositionerDeps) {
    this.deps = deps;
  }

  /**
   * On a new assignment: every assigned partition at once, even those that receive nothing new
   * (a rebuilt sink database is refilled right away). Forgets the previous positions first, synchronously.
   */
  async assigned(assignment: Record<string, number[]>, isOurs: (topic: string) => boolean): Promise<void> {
    this.positioned.clear();
    for (const [topic, partitions] of Object.entries(assignment)) {
      if (!isOurs(topic)) continue;
      const stored = await this.deps.store.stored(this.deps.db, topic);
      const low = stored.size < partitions.length ? await this.deps.lowOffsets(topic) : new Map<number, number>();
      for (const partition of partitions) {
        this.deps.seek(topic, partition, stored.get(partition) ?? low.get(partition) ?? 0);
        this.positioned.add(`${topic}:${partition}`);
      }
    }
  }

  /**
   * Before the first batch of a partition not positioned yet: false when the batch starts past
   * the stored offset (the consumer was sent back there, the batch must be dropped); true when it
   * starts at or before it (the transaction skips what was already applied).
   */
  async check(topic: string, partition: number, firstOffset: number): Promise<{ ok: boolean; target?: number }> {
    const key = `${topic}:${partition}`;
    if (this.positioned.has(key)) return { ok: true };
    const stored = (await this.deps.store.stored(this.deps.db, topic)).get(partition);
    const target = stored ?? (await this.deps.lowOffsets(topic)).get(partition) ?? 0;
    this.positioned.add(key);
    if (firstOffset <= target) return { ok: true };
    this.deps.seek(topic, partition, target);
    return { ok: false, target };
  }
}
