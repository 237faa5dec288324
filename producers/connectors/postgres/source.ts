/**
 * PostgreSQL source: a full sync of each configured table or view, streamed through
 * `COPY (SELECT …) TO STDOUT` (copy-reader.ts; no round trip per page, the socket's backpressure
 * paces the server) in a READ ONLY, REPEATABLE READ transaction (one consistent snapshot per table)
 * with a total time limit per read (readTimeoutSeconds) and statementTimeoutMs on each wait for the
 * server, under
 * search_path = pg_catalog, pg_temp and a schema-qualified relation (no planted function or
 * operator can be chosen), and never as a superuser unless allowed (guards.ts). Values leave in
 * PostgreSQL's own text form, so nothing is lost on the way: NUMERIC and MONEY stay exact decimal
 * text (MONEY is cast to NUMERIC, independent of lc_monetary), BIGINT keeps every digit, DATE
 * stays a date, TIMESTAMPTZ is printed in UTC and TIMESTAMP WITHOUT TIME ZONE is read in the
 * connector's configured zone.
 */
import pg from "pg";
import { type EgressGuard, egressGuardOf } from "../../../lib/egress.ts";
import { ConfigError, EtlError, SourceUnavailableError, isRetriablePgError } from "../../../lib/errors.ts";
import { ident } from "../../../lib/pg.ts";
import type { RawValue } from "../../../schemas/index.ts";
import type { ReadOptions, SourceConnector, SourcePage, SourceRecord, TableCheck } from "../../connector.ts";
import { type PostgresConnector, type PostgresTable, READ_TIMEOUT_SECONDS } from "./config.ts";
import { connectionError, describeTarget, pgClientConfig } from "./connection.ts";
import { CopyReader, CopyStalledError, type CopyRow } from "./copy-reader.ts";
import { PrivilegedRoleError, ReadDeadline, ReadTimeoutError, privilegedRole, privilegedRoleMessage } from "./guards.ts";
import { type ColumnInfo, jsonArray, typeProblem, valueExpr } from "./columns.ts";
import { compileWhere } from "./where.ts";

/** Rows per page handed to the run (each page is published, then acknowledged, before the next). */
const PAGE_ROWS = 2000;

/** Clients whose connection emitted an error: what they throw afterwards is a lost connection. */
const lostClients = new WeakSet<pg.Client>();

/** Types returned as text by the driver: we do the parsing where the meaning is known. */
const TEXT_TYPES = { getTypeParser: () => (value: string) => value } as unknown as pg.CustomTypesConfig;

export class PostgresSource implements SourceConnector {
  private readonly config: PostgresConnector;
  private client: pg.Client | undefined;
  /** Why the connected role is too powerful to read with (guards.ts), or null; checked once per connection. */
  private roleProblem: string | null = null;
  private closeTransport: () => Promise<void> = async () => {};

  /** The network guard of a tenant's connector (lib/egress.ts); none for the config file's. */
  private readonly guard: EgressGuard | undefined;

  constructor(config: PostgresConnector) {
    this.config = config;
    this.guard = egressGuardOf(config);
  }

  private async connect(): Promise<pg.Client> {
    if (this.client) return this.client;
    const target = describeTarget(this.config.connection);
    let closeTransport = async () => {};
    let client: pg.Client | undefined;
    try {
      const { config, close } = await pgClientConfig(this.config.connection, this.config.id, this.guard);
      closeTransport = close;
      client = new pg.Client({ ...config, types: TEXT_TYPES, connectionTimeoutMillis: 10_000, application_name: "qobra-sync" });
      client.on("error", () => {
        // The connection is gone (a server restart, a network drop): every later error of this
        // client is that loss, whatever pg's message says; the next read connects again.
        lostClients.add(client!);
        this.client = undefined;
      });
      await client.connect();
      await client.query(
        `SET client_encoding = 'UTF8'; SET TimeZone = 'UTC'; SET DateStyle = 'ISO, YMD'; SET IntervalStyle = 'iso_8601'; SET extra_float_digits = 1; SET standard_conforming_strings = on; SET statement_timeout = ${Number(this.config.connection.statementTimeoutMs)}`,
      );
      this.roleProblem = await privilegedRole(client);
    } catch (e) {
      await client?.end().catch(() => {});
      await closeTransport();
      throw connectionError(e, this.config.id, target);
    }
    this.client = client;
    this.closeTransport = closeTransport;
    return client;
  }

  private tableConfig(name: string): PostgresTable {
    const t = this.config.tables.find((x) => x.name === name);
    if (!t) throw new ConfigError(`connector ${this.config.id} has no table ${name}`);
    return t;
  }

  /**
   * The relation's columns, or null when it does not exist. The name is resolved like SQL would
   * (the connection's search_path); `rel` is its schema-qualified name, which the read uses.
   */
  private async describe(client: pg.Client, source: string): Promise<{ rel: string; columns: Map<string, ColumnInfo> } | null> {
    const rel = await client.query<{ rel: string | null }>(
      `SELECT pg_catalog.quote_ident(n.nspname::pg_catalog.text) OPERATOR(pg_catalog.||) '.' OPERATOR(pg_catalog.||) pg_catalog.quote_ident(c.relname::pg_catalog.text) AS rel
         FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace
        WHERE c.oid OPERATOR(pg_catalog.=) pg_catalog.to_regclass($1::pg_catalog.text)`,
      [source],
    );
    const relName = rel.rows[0]?.rel;
    if (!relName) return null;
    const cols = await client.query<{ attname: string; typname: string; typcategory: string }>(
      `SELECT a.attname, bt.typname, bt.typcategory
         FROM pg_attribute a
         JOIN pg_type t ON t.oid = a.atttypid
         JOIN pg_type bt ON bt.oid = CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.oid END
        WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped
        ORDER BY a.attnum`,
      [source],
    );
    return { rel: relName, columns: new Map(cols.rows.map((r) => [r.attname, { name: r.attname, type: r.typname, category: r.typcategory }])) };
  }

  async check(): Promise<TableCheck[]> {
    const client = await this.connect();
    const out: TableCheck[] = [];
    for (const table of this.config.tables) {
      const problems: string[] = [];
      const warnings: string[] = [];
      if (this.roleProblem) {
        const message = privilegedRoleMessage(this.config.id, this.roleProblem, [table.source]);
        if (this.config.connection.allowSuperuser) warnings.push(`${message} (allowed by connection.allowSuperuser)`);
        else problems.push(message);
      }
      const d = await this.describe(client, table.source);
      if (!d) {
        problems.push(`source ${table.source} does not exist or is not visible to this user`);
      } else {
        const priv = await client.query<{ ok: string }>("SELECT has_table_privilege($1, 'SELECT')::text AS ok", [d.rel]);
        if (priv.rows[0]?.ok !== "true") problems.push(`the user cannot SELECT from ${d.rel}; GRANT SELECT ON ${d.rel} TO the connector's user`);
        for (const [role, col] of [
          ["idColumn", table.idColumn],
          ["nameColumn", table.nameColumn],
          ["updatedAtColumn", table.updatedAtColumn],
        ] as const) {
          if (col && !d.columns.has(col)) problems.push(`${role} ${col} is not a column of ${d.rel} (columns: ${[...d.columns.keys()].join(", ")})`);
        }
        for (const [field, spec] of Object.entries(table.fields)) {
          const col = d.columns.get(field);
          if (!col) problems.push(`field ${field} is not a column of ${d.rel}`);
          else {
            const problem = typeProblem(field, col, spec.type);
            if (problem) problems.push(problem);
          }
          if (spec.currencyColumn && !d.columns.has(spec.currencyColumn))
            problems.push(`currencyColumn ${spec.currencyColumn} of field ${field} is not a column of ${d.rel}`);
        }
        if (table.where !== undefined) {
          try {
            await compileWhere(table.where, new Set(d.columns.keys()));
          } catch (e) {
            problems.push(`where ${JSON.stringify(table.where)} is refused: ${(e as Error).message}`);
          }
        }
        for (const [field, spec] of Object.entries(table.fields)) {
          if (spec.type !== "user" || spec.userKey || !d.columns.has(field) || problems.length > 0) continue;
          const bad = await client.query<{ n: string; sample: string | null }>(
            `SELECT count(*)::text AS n, min(v) AS sample FROM (SELECT ${ident(field)}::text AS v FROM ${d.rel} LIMIT 10000) s
              WHERE v IS NOT NULL AND btrim(v) !~ '^[^@\\s]+@[^@\\s]+\\.[^@\\s]+$'`,
          );
          if (Number(bad.rows[0]?.n ?? 0) > 0) {
            problems.push(
              `user field ${field} should hold e-mails, but ${bad.rows[0]!.n} of the first 10,000 values do not (e.g. ${JSON.stringify(bad.rows[0]!.sample)}); set userKey to the Qobra user column it matches`,
            );
          }
        }
        const write = await client.query<{ w: string }>(
          `SELECT (has_table_privilege($1, 'INSERT') OR has_table_privilege($1, 'UPDATE') OR has_table_privilege($1, 'DELETE') OR has_table_privilege($1, 'TRUNCATE')
                   OR (SELECT rolsuper FROM pg_roles WHERE rolname = current_user))::text AS w`,
          [d.rel],
        );
        if (write.rows[0]?.w === "true") {
          warnings.push(
            `THE CONNECTOR'S ACCOUNT CAN WRITE to ${d.rel} (or is a superuser): qobra-sync only reads; give it a read-only role (GRANT SELECT only)`,
          );
        }
        if (d.columns.has(table.idColumn)) {
          const uniq = await client.query<{ ok: string }>(
            `SELECT EXISTS (SELECT 1 FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
               WHERE i.indrelid = to_regclass($1) AND i.indisunique AND i.indnkeyatts = 1 AND i.indpred IS NULL AND a.attname = $2)::text AS ok`,
            [d.rel, table.idColumn],
          );
          if (uniq.rows[0]?.ok !== "true") {
            const dup = await client.query<{ dups: string }>(`SELECT (count(*) - count(DISTINCT ${ident(table.idColumn)}))::text AS dups FROM ${d.rel}`);
            const dups = Number(dup.rows[0]?.dups ?? 0);
            if (dups > 0) problems.push(`idColumn ${table.idColumn} is not unique in ${d.rel} (${dups} duplicate rows); choose a unique column`);
            else
              warnings.push(`idColumn ${table.idColumn} has no primary key or unique index; it is unique today (checked by a query) but nothing guarantees it`);
          }
        }
      }
      out.push({ table: table.name, ok: problems.length === 0, problems, warnings });
    }
    return out;
  }

  async *read(tableName: string, opts: ReadOptions): AsyncIterable<SourcePage> {
    const table = this.tableConfig(tableName);
    const client = await this.connect();
    if (this.roleProblem && !this.config.connection.allowSuperuser)
      throw new PrivilegedRoleError(
        privilegedRoleMessage(
          this.config.id,
          this.roleProblem,
          this.config.tables.map((t) => t.source),
        ),
      );
    try {
      yield* this.readWith(client, table, opts);
    } catch (e) {
      if (e instanceof EtlError || !(lostClients.has(client) || isRetriablePgError(e))) throw e;
      throw new SourceUnavailableError(`connector ${this.config.id}, table ${table.name}: lost PostgreSQL while reading: ${(e as Error).message}`, e);
    }
  }

  private async *readWith(client: pg.Client, table: PostgresTable, opts: ReadOptions): AsyncIterable<SourcePage> {
    const d = await this.describe(client, table.source);
    if (!d) throw new ConfigError(`connector ${this.config.id}, table ${table.name}: source ${table.source} does not exist or is not visible to this user`);
    const need = (col: string, role: string): ColumnInfo => {
      const c = d.columns.get(col);
      if (!c) throw new ConfigError(`connector ${this.config.id}, table ${table.name}: ${role} ${col} is not a column of ${d.rel}`);
      return c;
    };
    need(table.idColumn, "idColumn");
    need(table.nameColumn, "nameColumn");
    const fieldCols = new Map<string, ColumnInfo>();
    for (const [field, spec] of Object.entries(table.fields)) {
      fieldCols.set(field, need(field, "field"));
      if (spec.currencyColumn) fieldCols.set(spec.currencyColumn, need(spec.currencyColumn, "currencyColumn"));
    }
    const tz = this.config.timestampTimezone;
    const select = [
      `${ident(table.idColumn)}::text`,
      `${ident(table.nameColumn)}::text`,
      table.updatedAtColumn ? valueExpr(need(table.updatedAtColumn, "updatedAtColumn"), tz) : "NULL",
      ...[...fieldCols.values()].map((c) => valueExpr(c, tz)),
    ];
    for (const [field, spec] of Object.entries(table.fields)) {
      const problem = typeProblem(field, fieldCols.get(field)!, spec.type);
      if (problem) throw new ConfigError(`connector ${this.config.id}, table ${table.name}: ${problem}`);
    }
    let where = "";
    if (table.where !== undefined) {
      try {
        where = ` WHERE (${await compileWhere(table.where, new Set(d.columns.keys()))})`;
      } catch (e) {
        throw new ConfigError(`connector ${this.config.id}, table ${table.name}: the where condition is refused: ${(e as Error).message}`, e);
      }
    }
    const sql = `SELECT ${select.join(", ")} FROM ${d.rel}${where}`;
    const sourceTypes: Record<string, string> = {};
    for (const [name, c] of fieldCols) sourceTypes[name] = `pg:${c.type}`;
    const names = [...fieldCols.keys()];
    const bools = names.map((n) => fieldCols.get(n)!.type === "bool");
    const arrays = names.map((n) => fieldCols.get(n)!.category === "A");

    await client.query("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
    const limit = this.config.connection.readTimeoutSeconds ?? READ_TIMEOUT_SECONDS;
    const deadline = new ReadDeadline(client, {
      seconds: limit,
      statementTimeoutMs: this.config.connection.statementTimeoutMs,
      cancel: (pid) => this.cancelBackend(pid),
      error: () =>
        new ReadTimeoutError(
          `connector ${this.config.id}, table ${table.name}: the read took longer than connection.readTimeoutSeconds (${limit} s); it was cancelled and its transaction ended. ` +
            "Not retried: the same read would take as long again. Raise connection.readTimeoutSeconds, or make the table's where condition cheaper",
        ),
    });
    let open = true;
    const copy = new CopyReader({
      columns: select.length,
      pageRows: PAGE_ROWS,
      statementTimeoutMs: this.config.connection.statementTimeoutMs,
      cancel: () => this.cancelClient(client),
      stalled: () =>
        new CopyStalledError(
          `connector ${this.config.id}, table ${table.name}: the source sent no rows for connection.statementTimeoutMs (${this.config.connection.statementTimeoutMs} ms); the query was cancelled. ` +
            "Make the table's where condition cheaper, or raise connection.statementTimeoutMs",
        ),
    });
    let copied: Promise<void> | undefined;
    let stopping: Promise<void> | undefined;
    // Ends the COPY before its last row (the read stopped early or failed): cancel it, drop the rest.
    const stopCopy = (): Promise<void> =>
      (stopping ??= (async () => {
        if (copy.inFlight) {
          await this.cancelClient(client).catch(() => {});
          copy.discard();
        }
        await copied?.catch(() => {});
      })());
    try {
      // Only the built-ins: a function or operator planted in a schema of the role's search_path is never chosen.
      await client.query("SET LOCAL search_path = pg_catalog, pg_temp");
      copied = deadline.run(() => copy.start(client, sql), copy);
      copied.catch(() => {}); // awaited below; a failure also ends nextPage
      while (!opts.signal.aborted) {
        let rows: CopyRow[] | null;
        try {
          rows = await copy.nextPage();
        } catch (e) {
          await copied; // the statement's own failure, as the deadline names it
          throw e;
        }
        if (rows === null) break;
        const records: SourceRecord[] = new Array(rows.length);
        for (let r = 0; r < rows.length; r++) {
          const row = rows[r]!;
          const fields: Record<string, RawValue> = {};
          for (let i = 0; i < names.length; i++) {
            const v = row[i + 3] ?? null;
            fields[names[i]!] = v === null ? null : bools[i] ? v === "true" : arrays[i] ? jsonArray(v) : v;
          }
          records[r] = { externalId: row[0] ?? "", name: row[1] ?? null, sourceUpdatedAt: row[2] ?? null, fields };
        }
        yield { records, sourceTypes };
        await deadline.check();
      }
      if (copy.inFlight)
        await stopCopy(); // stopped early (the run was aborted): not the rest of the table
      else await copied;
      open = false;
      await client.query("COMMIT");
    } catch (e) {
      open = false;
      await deadline.stop(); // a cancel in flight lands before the rollback, not on it
      await stopCopy();
      await client.query("ROLLBACK").catch(() => {});
      if (e instanceof EtlError) throw e;
      if (isRetriablePgError(e))
        throw new SourceUnavailableError(`connector ${this.config.id}, table ${table.name}: lost PostgreSQL while reading: ${(e as Error).message}`, e);
      const code = (e as { code?: string }).code ?? "";
      if (code === "42501") throw connectionError(e, this.config.id, describeTarget(this.config.connection), table.name);
      if (code.startsWith("42"))
        throw new ConfigError(
          `connector ${this.config.id}, table ${table.name}: the source query failed: ${(e as Error).message}; check the table's where and columns`,
          e,
        );
      throw e;
    } finally {
      await deadline.stop();
      // The consumer stopped early (the generator was returned): end the statement and the transaction too.
      if (open) {
        await stopCopy();
        await client.query("ROLLBACK").catch(() => {});
      }
    }
  }

  /** Cancels what `client` runs (its backend's statement). */
  private async cancelClient(client: pg.Client): Promise<void> {
    const pid = (client as unknown as { processID?: number }).processID;
    if (pid) await this.cancelBackend(pid);
  }

  /** Cancels the statement running on backend `pid` from a second connection (ReadDeadline). */
  private async cancelBackend(pid: number): Promise<void> {
    const { config, close } = await pgClientConfig(this.config.connection, this.config.id);
    const side = new pg.Client({ ...config, connectionTimeoutMillis: 10_000, application_name: "qobra-sync cancel" });
    side.on("error", () => {});
    try {
      await side.connect();
      await side.query("SELECT pg_catalog.pg_cancel_backend($1)", [pid]);
    } finally {
      await side.end().catch(() => {});
      await close();
    }
  }

  async close(): Promise<void> {
    const c = this.client;
    this.client = undefined;
    await c?.end().catch(() => {});
    await this.closeTransport();
  }
}
