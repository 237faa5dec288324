/**
 * The ids a connector's table holds as live in its raw topic, kept by the worker process from one
 * full run to the next. A full run infers deletes from them (deletes.ts), and reading them means
 * scanning the raw topic: a consumer of its own, a group created and deleted on the broker, and a
 * read of every record. When the raw topic has not changed since this process's last full run of
 * the table ended (the same end offset on every partition), that run's result is the answer. This
 * is usual, because requests keyed by connector keep going to the same worker.
 *
 * Only a full run that completed (every table read in full, its deletes published) stores an
 * entry: the ids it saw, which are then exactly what the topic holds as live. Anything written to
 * the raw topic since (another worker's run, a re-driven dead letter) moves an end offset, and the
 * topic is scanned as before. A connector's runs never overlap (producers/connector-lock.ts), so
 * nothing is written between the end offsets read and the scan.
 *
 * One case it cannot tell: a raw topic deleted and created again, then filled by another process's
 * runs to the very same end offsets; judged negligible (the topics of a removed connector stay
 * unless an operator deletes them).
 *
 * Memory is bounded: at most `maxIds` ids over all entries (least recently used dropped first),
 * and a table larger than a quarter of that is never kept.
 */
/** A partition's end offset, as rawEndOffsets (events.ts) gives it. */
interface TopicPartitionOffset {
  partition: number;
  offset: number;
}

interface Entry {
  ends: string;
  ids: ReadonlySet<string>;
}

export class LiveIdCache {
  private readonly entries = new Map<string, Entry>();
  private total = 0;
  private readonly maxIds: number;

  constructor(maxIds = 2_000_000) {
    this.maxIds = maxIds;
  }

  /** The live ids stored for a table at these end offsets (a copy: the caller may change it), else undefined. */
  get(topic: string, table: string, ends: TopicPartitionOffset[]): Set<string> | undefined {
    const k = keyOf(topic, table);
    const e = this.entries.get(k);
    if (!e) return undefined;
    if (e.ends !== endsKey(ends)) {
      this.drop(topic, table);
      return undefined;
    }
    // Most recently used last.
    this.entries.delete(k);
    this.entries.set(k, e);
    return new Set(e.ids);
  }

  /** Stores what a completed full run left live, with the raw topic's end offsets after it. */
  set(topic: string, table: string, ends: TopicPartitionOffset[], ids: ReadonlySet<string>): void {
    this.drop(topic, table);
    if (ids.size > this.maxIds / 4) return;
    this.entries.set(keyOf(topic, table), { ends: endsKey(ends), ids });
    this.total += ids.size;
    for (const [k, e] of this.entries) {
      if (this.total <= this.maxIds) break;
      this.entries.delete(k);
      this.total -= e.ids.size;
    }
  }

  drop(topic: string, table: string): void {
    const k = keyOf(topic, table);
    const e = this.entries.get(k);
    if (!e) return;
    this.entries.delete(k);
    this.total -= e.ids.size;
  }

  /** Ids held over all entries (for tests). */
  get size(): number {
    return this.total;
  }
}

const keyOf = (topic: string, table: string) => `${topic}\u0000${table}`;
const endsKey = (ends: TopicPartitionOffset[]) =>
  ends
    .map((e) => `${e.partition}:${e.offset}`)
    .sort()
    .join(",");
