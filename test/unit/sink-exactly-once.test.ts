/**
 * The sink's exactly-once logic without PostgreSQL or Kafka: a fake database that understands the
 * offsets SQL, the staged batch path (COPY into the session's staging table, then the guarded
 * merge), the row-by-row upsert and savepoints, with real transaction semantics (ROLLBACK undoes
 * rows and offsets alike). Checks that offsets are stored in the same transaction as the rows and read back
 * to position, that a redelivered batch writes nothing twice, and that one bad row is
 * dead-lettered while the others are applied and the offset advances once.
 */
import { Writable } from "node:stream";
import type pg from "pg";
import { describe, expect, it } from "vitest";
import { applyBatch, type ApplyDeps, type DecodedRow } from "../../consumers/sink/apply.ts";
import { OffsetStore, Positioner } from "../../consumers/sink/offset-store.ts";
import type { TableState } from "../../consumers/sink/table-evolution.ts";
import { upsertSql } from "../../consumers/sink/sink-sql.ts";

interface Data {
  offsets: Map<string, number>;
  rows: Map<string, { version: number; value: string }>;
}
const copy = (d: Data): Data => ({ offsets: new Map(d.offsets), rows: new Map(d.rows) });

/** An in-memory stand-in of the sink database: one client, transactions and savepoints. */
class FakeDb {
  data: Data = { offsets: new Map(), rows: new Map() };
  log: string[] = [];
  commits = 0;
  /** External ids PostgreSQL refuses (as a data exception, SQLSTATE 22P02). */
  bad = new Set<string>();
  /** Fails the next statement matching this with a lost connection. */
  breakOn: RegExp | undefined;
  private tx: Data | undefined;
  private savepoint: Data | undefined;
  /** The staging table's rows (ON COMMIT DELETE ROWS: emptied at COMMIT and ROLLBACK). */
  private staged: Array<{ id: string; version: number; value: string }> = [];

  client(): pg.PoolClient {
    // A COPY is a stream (pg-copy-streams): the fake answers it with a stream of its own.
    const query = (text: string | { text: string }, params: unknown[] = []) => (typeof text === "string" ? this.query(text, params) : this.copyIn(text.text));
    return { query, release: () => {} } as unknown as pg.PoolClient;
  }

  pool(): { connect(): Promise<pg.PoolClient> } {
    return {
      connect: async () =>
        ({
          ...this.client(),
          release: () => {
            this.log.push("release");
          },
        }) as unknown as pg.PoolClient,
    };
  }

  private async query(text: string, params: unknown[]): Promise<{ rows: unknown[] }> {
    const sql = text.trim();
    this.log.push(sql.split(/\s+/).slice(0, 2).join(" "));
    if (this.breakOn?.test(sql)) {
      this.breakOn = undefined;
      throw Object.assign(new Error("connection terminated"), { code: "57P01" });
    }
    if (sql === "BEGIN") {
      this.tx = copy(this.data);
      return { rows: [] };
    }
    if (sql === "COMMIT") {
      this.staged = [];
      this.data = this.tx!;
      this.tx = undefined;
      this.commits++;
      return { rows: [] };
    }
    if (sql === "ROLLBACK") {
      this.staged = [];
      this.tx = undefined;
      return { rows: [] };
    }
    if (sql === "SAVEPOINT qobra_row") {
      this.savepoint = copy(this.live());
      return { rows: [] };
    }
    if (sql === "RELEASE SAVEPOINT qobra_row") {
      this.savepoint = undefined;
      return { rows: [] };
    }
    if (sql === "ROLLBACK TO SAVEPOINT qobra_row") {
      this.tx = this.savepoint;
      return { rows: [] };
    }
    const d = this.live();
    if (sql.includes("_qobra_sync_offsets")) {
      const [group, topic, partition, next] = params as [string, string, number?, number?];
      const k = (p: number) => `${group}|${topic}|${p}`;
      if (sql.startsWith("INSERT")) {
        if (!d.offsets.has(k(partition!))) d.offsets.set(k(partition!), 0);
        return { rows: [] };
      }
      if (sql.startsWith("UPDATE")) {
        d.offsets.set(k(partition!), next!);
        return { rows: [] };
      }
      if (sql.includes("FOR UPDATE")) {
        const v = d.offsets.get(k(partition!));
        return { rows: v === undefined ? [] : [{ next_offset: String(v) }] };
      }
      return {
        rows: [...d.offsets]
          .filter(([key]) => key.startsWith(`${group}|${topic}|`))
          .map(([key, v]) => ({ partition: Number(key.split("|")[2]), next_offset: String(v) })),
      };
    }
    if (sql.startsWith("CREATE TEMPORARY TABLE IF NOT EXISTS pg_temp.")) return { rows: [] };
    if (sql.startsWith("TRUNCATE pg_temp.")) {
      this.staged = [];
      return { rows: [] };
    }
    if (sql.startsWith("INSERT INTO") && sql.includes("FROM pg_temp.")) {
      for (const r of this.staged) {
        const have = d.rows.get(r.id);
        if (!have || have.version <= r.version) d.rows.set(r.id, { version: r.version, value: r.value });
      }
      return { rows: [] };
    }
    if (sql.startsWith("INSERT INTO")) {
      const [ids, , , , versions, values] = params as [string[], unknown, unknown, unknown, number[], string[]];
      if (ids.some((id) => this.bad.has(id))) throw Object.assign(new Error("invalid input syntax for type numeric"), { code: "22P02" });
      ids.forEach((id, i) => {
        const have = d.rows.get(id);
        if (!have || have.version <= versions[i]!) d.rows.set(id, { version: versions[i]!, value: values[i]! });
      });
      return { rows: [] };
    }
    throw new Error(`fake database: unexpected statement ${sql}`);
  }

  /** COPY of the staging table's columns (_external_id, _name, _source_updated_at, _run_id, _version, amount). */
  private copyIn(sql: string): Writable {
    this.log.push(sql.split(/\s+/).slice(0, 2).join(" "));
    let text = "";
    return new Writable({
      write: (chunk: Buffer, _e, done) => {
        text += chunk.toString();
        done();
      },
      final: (done) => {
        const rows = text
          .split("\n")
          .filter(Boolean)
          .map((l) => l.split("\t"));
        if (rows.some((r) => this.bad.has(r[0]!))) return done(Object.assign(new Error("invalid input syntax for type numeric"), { code: "22P02" }));
        for (const r of rows) this.staged.push({ id: r[0]!, version: Number(r[4]), value: r[5]! });
        done();
      },
    });
  }

  /** Inside a transaction its view; outside, the committed data (the sink's reads on the pool). */
  private live(): Data {
    return this.tx ?? this.data;
  }
}

// One data column (text) after the system columns: _external_id, _name, _source_updated_at, _run_id, _version, amount.
const table: TableState = {
  qualified: '"s"."crm__deals"',
  columns: [{ name: "amount", pgType: "text", kind: "text" }],
  schemaId: 1,
  upsert: upsertSql('"s"."crm__deals"', [{ name: "amount", pgType: "text", kind: "text" }]),
};
const row = (offset: number, id: string, amount = `${offset}`): DecodedRow => ({
  offset,
  schemaId: 1,
  value: { _external_id: id, _name: null, _source_updated_at: null, _run_id: "r1", _version: offset, _deleted: false, amount },
});

function setup() {
  const db = new FakeDb();
  const offsets = new OffsetStore("s", "g");
  const dead: Array<{ offset: number; error: unknown }> = [];
  let forgotten = 0;
  const deps: ApplyDeps = {
    db: db.pool(),
    offsets,
    batchSize: 1000,
    tables: {
      tableFor: async () => table,
      forget: () => {
        forgotten++;
      },
    },
    deadLetter: async (_t, _p, items) => {
      dead.push(...items);
    },
  };
  return { db, offsets, dead, deps, forgotten: () => forgotten };
}

describe("sink offset store", () => {
  it("stores the next offset in the same transaction as the rows, and positions there", async () => {
    const { db, offsets, deps } = setup();
    await applyBatch(deps, { topic: "t", partition: 0, rows: [row(0, "a"), row(1, "b")], nextOffset: 2 });
    expect(db.commits).toBe(1);
    expect([...db.data.rows.keys()]).toEqual(["a", "b"]);
    expect(db.data.offsets.get("g|t|0")).toBe(2);
    // The transaction is one: BEGIN, lock, rows (staged by COPY, merged), offset, COMMIT, then the client goes back.
    expect(db.log).toEqual([
      "BEGIN",
      "INSERT INTO",
      "SELECT next_offset",
      "CREATE TEMPORARY",
      'COPY pg_temp."qobra_stage_d871f57f"',
      "INSERT INTO",
      'UPDATE "s"."_qobra_sync_offsets"',
      "COMMIT",
      "release",
    ]);

    const seeks: Array<[string, number, number]> = [];
    const positioner = new Positioner({
      store: offsets,
      db: db.client(),
      lowOffsets: async () =>
        new Map([
          [0, 0],
          [1, 5],
        ]),
      seek: (t, p, o) => seeks.push([t, p, o]),
    });
    await positioner.assigned({ t: [0, 1], other: [0] }, (topic) => topic === "t");
    expect(seeks).toEqual([
      ["t", 0, 2],
      ["t", 1, 5],
    ]); // stored offset; log start where none is stored
    // A partition positioned on assignment takes its first batch as it is.
    expect(await positioner.check("t", 0, 7)).toEqual({ ok: true });
  });

  it("a batch the assignment missed is sent back to the stored offset when it starts past it", async () => {
    const { db, offsets, deps } = setup();
    await applyBatch(deps, { topic: "t", partition: 0, rows: [row(0, "a")], nextOffset: 3 });
    const seeks: Array<[string, number, number]> = [];
    const positioner = new Positioner({ store: offsets, db: db.client(), lowOffsets: async () => new Map(), seek: (t, p, o) => seeks.push([t, p, o]) });
    expect(await positioner.check("t", 0, 10)).toEqual({ ok: false, target: 3 });
    expect(seeks).toEqual([["t", 0, 3]]);
    expect(await positioner.check("t", 0, 10)).toEqual({ ok: true }); // once per assignment
  });

  it("a redelivered batch writes nothing twice and leaves the offset where it was", async () => {
    const { db, deps } = setup();
    await applyBatch(deps, { topic: "t", partition: 0, rows: [row(0, "a"), row(1, "b")], nextOffset: 2 });
    db.data.rows.get("a")!.value = "edited in the sink";
    const again = await applyBatch(deps, { topic: "t", partition: 0, rows: [row(0, "a"), row(1, "b"), row(2, "c")], nextOffset: 3 });
    expect(again).toEqual({ written: 1, dead: 0, skipped: 2 });
    expect(db.data.rows.get("a")!.value).toBe("edited in the sink");
    expect(db.data.offsets.get("g|t|0")).toBe(3);
  });

  it("a lost connection rolls back rows and offset together", async () => {
    const { db, deps } = setup();
    db.breakOn = /^UPDATE/;
    await expect(applyBatch(deps, { topic: "t", partition: 0, rows: [row(0, "a")], nextOffset: 1 })).rejects.toThrow(/sink PostgreSQL failed/);
    expect(db.data.rows.size).toBe(0);
    expect(db.data.offsets.size).toBe(0);
    expect(db.log.slice(-2)).toEqual(["ROLLBACK", "release"]);
  });
});

describe("sink batch → row by row fallback", () => {
  it("dead-letters the one bad row, applies the others, and advances the offset once", async () => {
    const { db, dead, deps } = setup();
    db.bad.add("b");
    const r = await applyBatch(deps, { topic: "t", partition: 0, rows: [row(4, "a"), row(5, "b"), row(6, "c")], nextOffset: 7 });
    expect(r).toEqual({ written: 2, dead: 1, skipped: 0 });
    expect(dead.map((d) => d.offset)).toEqual([5]);
    expect((dead[0]!.error as { code: string }).code).toBe("22P02");
    expect([...db.data.rows.keys()].sort()).toEqual(["a", "c"]);
    expect(db.data.offsets.get("g|t|0")).toBe(7);
    // The refused batch was rolled back, then the batch applied again under savepoints: one commit.
    expect(db.commits).toBe(1);
    expect(db.log.filter((l) => l === 'UPDATE "s"."_qobra_sync_offsets"')).toHaveLength(1);
    expect(db.log.filter((l) => l === "ROLLBACK TO")).toHaveLength(1);
  });

  it("a table dropped under the sink is forgotten and created again, once per batch", async () => {
    const { db, deps, forgotten } = setup();
    let calls = 0;
    deps.tables.tableFor = async () => {
      if (calls++ === 0) throw Object.assign(new Error('relation "s.crm__deals" does not exist'), { code: "42P01" });
      return table;
    };
    await applyBatch(deps, { topic: "t", partition: 0, rows: [row(0, "a")], nextOffset: 1 });
    expect(forgotten()).toBe(1);
    expect(db.data.rows.has("a")).toBe(true);
  });
});
