/**
 * The WHERE-condition attack set of the security review (../shared/security/where-conditions.json,
 * 327 conditions: hostile, benign, resource exhaustion, search_path hijack), each read through the
 * real PostgreSQL connector against a canary database (canary-db.ts) as a non-superuser role, with
 * a low time limit. For every condition: refused or accepted as expected, an accepted one reads
 * exactly the rows the same condition selects when the test runs it directly, and the invariants
 * hold — no canary call, no write anywhere, no relation but the table in the rebuilt query's plan,
 * the read within its limit. Prints the figures at the end (refused, accepted, side effects, peak
 * backend memory, longest read).
 */
import { readFileSync } from "node:fs";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ConfigError } from "../../lib/errors.ts";
import { PostgresConnector } from "../../producers/connectors/postgres/config.ts";
import { ReadTimeoutError } from "../../producers/connectors/postgres/guards.ts";
import { PostgresSource } from "../../producers/connectors/postgres/source.ts";
import { compileWhere } from "../../producers/connectors/postgres/where.ts";
import { dbUrl } from "../../support/env.ts";
import { type CanaryDb, type Scenario, backendPid, createCanaryDb, fingerprint, peakMemoryKb, sharedSecurityFile, watchClients } from "./canary-db.ts";

interface Payload {
  id: string;
  category: string;
  expect: "refuse" | "accept" | "any";
  condition?: string;
  build?: Array<string | { repeat: string; times: number } | { utf8hex: string }>;
  scenario?: Scenario;
  note?: string;
}

interface Outcome {
  payload: Payload;
  result: "refused" | "accepted" | "timeout" | "error";
  /** The rows read were compared with the direct query's (false when that query itself failed). */
  compared: boolean;
  detail: string;
  ids: string[];
  ms: number;
  memory: { kb: number } | { unreadable: string };
  problems: string[];
}

const DATABASE = "qobra_sync_security";
const COLUMNS = ["id", "name", "amount", "created_at", "closed_on", "status", "email", "owner", "vname", "tags", "score", "active", "Mixed Case", "select"];
/** The time limit of each read: low, and lower still for the denial-of-service entries. */
const LIMIT_SECONDS = { default: 10, dos: 5 };
const MARGIN_MS = 3000;

const conditionOf = (p: Payload): string =>
  p.condition ??
  (p.build ?? [])
    .map((part) => (typeof part === "string" ? part : "repeat" in part ? part.repeat.repeat(part.times) : Buffer.from(part.utf8hex, "hex").toString("utf8")))
    .join("");

let db: CanaryDb;
let watch: ReturnType<typeof watchClients>;
let admin: pg.Client;
let reference: pg.Client;
let payloads: Payload[];
const outcomes: Outcome[] = [];

beforeAll(async () => {
  payloads = (JSON.parse(readFileSync(sharedSecurityFile("where-conditions.json"), "utf8")) as { payloads: Payload[] }).payloads;
  db = await createCanaryDb(DATABASE, "qobra_sync_security");
  watch = watchClients();
  // The fingerprint is taken as the database's owner, the reference query runs as the read role.
  admin = new pg.Client({ connectionString: dbUrl(DATABASE) });
  reference = new pg.Client({ connectionString: db.url("default"), application_name: "qobra-sync-security-reference" } as pg.ClientConfig);
  await admin.connect();
  await reference.connect();
}, 120_000);

afterAll(async () => {
  watch?.restore();
  await admin?.end().catch(() => undefined);
  await reference?.end().catch(() => undefined);
  await db?.drop();
});

/** The rows the condition selects when run directly (the meaning the connector must keep), or its error. */
async function referenceIds(condition: string): Promise<string[] | Error> {
  await reference.query("BEGIN READ ONLY");
  try {
    await reference.query("SET LOCAL statement_timeout = 10000");
    const r = await reference.query<{ id: string }>(`SELECT a.id::text AS id FROM public.accounts a WHERE (${condition}) ORDER BY a.id`);
    return r.rows.map((x) => x.id);
  } catch (e) {
    return e as Error;
  } finally {
    await reference.query("ROLLBACK").catch(() => undefined);
  }
}

/** The relations in the plan of the connector's rebuilt condition, and whether it holds a subplan. */
async function planRelations(rebuilt: string): Promise<{ relations: string[]; subplans: number }> {
  await reference.query("BEGIN READ ONLY");
  try {
    await reference.query("SET LOCAL search_path = pg_catalog, pg_temp");
    const r = await reference.query<{ "QUERY PLAN": unknown }>(`EXPLAIN (VERBOSE, FORMAT JSON) SELECT id FROM public.accounts WHERE (${rebuilt})`);
    const relations: string[] = [];
    let subplans = 0;
    const walk = (n: unknown): void => {
      if (Array.isArray(n)) {
        n.forEach(walk);
        return;
      }
      if (!n || typeof n !== "object") return;
      const o = n as Record<string, unknown>;
      if (typeof o["Relation Name"] === "string") relations.push(`${o.Schema}.${o["Relation Name"]}`);
      if (o["Subplan Name"] || o["Node Type"] === "Function Scan" || o["Node Type"] === "Subquery Scan") subplans++;
      Object.values(o).forEach(walk);
    };
    walk(r.rows[0]!["QUERY PLAN"]);
    return { relations, subplans };
  } finally {
    await reference.query("ROLLBACK").catch(() => undefined);
  }
}

async function run(payload: Payload): Promise<Outcome> {
  const condition = conditionOf(payload);
  const seconds = payload.category === "dos" ? LIMIT_SECONDS.dos : LIMIT_SECONDS.default;
  const config = PostgresConnector.parse({
    id: "security",
    type: "postgres",
    connection: { url: db.url(payload.scenario ?? "default"), statementTimeoutMs: seconds * 1000, readTimeoutSeconds: seconds },
    tables: [{ name: "accounts", source: "public.accounts", idColumn: "id", nameColumn: "name", where: condition, fields: {} }],
  });
  const before = await fingerprint(admin);
  const noticesBefore = watch.notices.length;
  const source = new PostgresSource(config);
  const ids: string[] = [];
  const started = performance.now();
  let result: Outcome["result"] = "accepted";
  let detail = "";
  let memory: Outcome["memory"];
  try {
    try {
      for await (const page of source.read("accounts", { full: true, signal: new AbortController().signal, state: null, runStartedAt: Date.now() }))
        for (const r of page.records) ids.push(r.externalId);
    } catch (e) {
      detail = (e as Error).message;
      result = e instanceof ReadTimeoutError ? "timeout" : e instanceof ConfigError && /the where condition is refused/.test(detail) ? "refused" : "error";
    }
  } finally {
    memory = peakMemoryKb(backendPid(watch.clients, "qobra-sync"));
    await source.close();
  }
  const ms = performance.now() - started;
  const problems: string[] = [];
  let compared = false;
  const canary = watch.notices.slice(noticesBefore).filter((n) => /CANARY/.test(n.message));
  if (canary.length > 0) problems.push(`canary called: ${canary.map((n) => n.message).join("; ")}`);
  if ((await fingerprint(admin)) !== before) problems.push("the database changed (a write)");
  if (ms > seconds * 1000 + MARGIN_MS) problems.push(`the read took ${Math.round(ms)} ms, over its ${seconds} s limit`);
  if (result === "timeout") problems.push(`the read hit its time limit: ${detail}`);
  if (payload.expect === "refuse" && result !== "refused") problems.push(`expected a refusal, got ${result} ${detail}`);
  if (payload.expect === "accept" && result !== "accepted") problems.push(`expected to be accepted, got ${result}: ${detail}`);
  if (result === "accepted") {
    const rebuilt = await compileWhere(condition, new Set(COLUMNS));
    const plan = await planRelations(rebuilt);
    if (plan.subplans > 0 || plan.relations.some((r) => r !== "public.accounts"))
      problems.push(`the plan reads ${plan.relations.join(", ")} with ${plan.subplans} subplans`);
    const expected = await referenceIds(condition);
    const got = [...ids].sort((a, b) => Number(a) - Number(b));
    if (expected instanceof Error) {
      if (payload.expect === "accept") problems.push(`the reference query failed: ${expected.message}`);
    } else {
      compared = true;
      const at = got.findIndex((g, i) => g !== expected[i]);
      if (at >= 0 || got.length !== expected.length)
        problems.push(
          `read ${got.length} rows, the condition selects ${expected.length} (first difference at row ${at}: ${got[at]} / ${expected[at]}; rebuilt: ${rebuilt.slice(0, 200)})`,
        );
    }
  }
  return { payload, result, compared, detail, ids, ms, memory, problems };
}

describe("custom WHERE conditions against a canary database (../shared/security)", () => {
  it("refuses or accepts every condition as expected, with no side effect, each read within its limit", async () => {
    expect(payloads.length).toBeGreaterThanOrEqual(300);
    for (const p of payloads) outcomes.push(await run(p));
    const failures = outcomes.filter((o) => o.problems.length > 0).map((o) => `${o.payload.id}: ${o.problems.join(" | ")}`);
    expect(failures).toEqual([]);
  }, 900_000);

  it("the hijack scenario reads through the planted schema's connection and calls nothing planted", () => {
    const hijack = outcomes.filter((o) => o.payload.scenario === "hijack");
    expect(hijack.length).toBeGreaterThanOrEqual(4);
    for (const o of hijack) expect(o.result, o.payload.id).toBe("accepted");
    expect(hijack.find((o) => o.payload.id === "hijack-321")?.ids.length).toBeGreaterThan(0);
  });

  afterAll(() => {
    if (outcomes.length === 0) return;
    const by = (r: Outcome["result"]) => outcomes.filter((o) => o.result === r).length;
    const sideEffects = outcomes.filter((o) => o.problems.some((p) => /canary|changed|plan reads/.test(p))).length;
    const measured = outcomes.filter((o) => "kb" in o.memory) as Array<Outcome & { memory: { kb: number } }>;
    const peak = measured.reduce<(typeof measured)[number] | undefined>((a, o) => (!a || o.memory.kb > a.memory.kb ? o : a), undefined);
    const peakRead = measured
      .filter((o) => o.result === "accepted")
      .reduce<(typeof measured)[number] | undefined>((a, o) => (!a || o.memory.kb > a.memory.kb ? o : a), undefined);
    const longest = outcomes.reduce((a, o) => (o.ms > a.ms ? o : a));
    const unreadable = outcomes.find((o) => "unreadable" in o.memory)?.memory as { unreadable: string } | undefined;
    const lines = [
      `WHERE-condition attack suite: ${outcomes.length} conditions (${payloads.filter((p) => p.expect === "refuse").length} hostile, ${payloads.filter((p) => p.expect === "accept").length} benign, ${payloads.filter((p) => p.expect === "any").length} informative)`,
      `  refused: ${by("refused")}, accepted: ${by("accepted")} (${outcomes.filter((o) => o.compared).length} compared with the direct query, all equal unless listed above), ` +
        `errors raised by PostgreSQL: ${by("error")} (${outcomes
          .filter((o) => o.result === "error")
          .map((o) => o.payload.id)
          .join(", ")}), timeouts: ${by("timeout")}`,
      `  side effects (canary calls, writes, other relations read): ${sideEffects}`,
      peak
        ? `  peak backend memory (VmHWM): ${(peak.memory.kb / 1024).toFixed(1)} MB (${peak.payload.id}); median ${(measured.map((o) => o.memory.kb).sort((a, b) => a - b)[Math.floor(measured.length / 2)]! / 1024).toFixed(1)} MB over ${measured.length} backends; peak of a read that returned rows ${((peakRead?.memory.kb ?? 0) / 1024).toFixed(1)} MB (${peakRead?.payload.id})`
        : `  peak backend memory: unreadable (${unreadable?.unreadable ?? "no measure"})`,
      `  longest read: ${Math.round(longest.ms)} ms (${longest.payload.id}, ${longest.result}); limits ${LIMIT_SECONDS.default} s, ${LIMIT_SECONDS.dos} s for denial-of-service entries`,
    ];
    console.log(lines.join("\n"));
  });
});
