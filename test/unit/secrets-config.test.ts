/**
 * The config and secrets (issue 14, items 3, 7 and 8): `${env:NAME}` expands only in fields marked
 * secret and is refused, naming the field, anywhere else (so `where: "x = '${env:QOBRA_SYNC_TOKEN_KEY}'"`
 * cannot print the key); no config error shows a secret field's value or a password of a URL,
 * whatever characters it holds; the generated reference marks the secret fields; `sink.users.query`
 * must be exactly one SELECT that neither writes nor locks.
 */
import type pg from "pg";
import { describe, expect, it } from "vitest";
import { parseConfig } from "../../app/config.ts";
import { renderConfigReference } from "../../app/config-reference.ts";
import { UserDirectory } from "../../consumers/mapping/users.ts";
import { ConfigError } from "../../lib/errors.ts";
import { singleSelectProblem } from "../../lib/sql-statement.ts";
import { leaks } from "./secrets-fixtures.ts";

const TOKEN_KEY = "Tk3y0fTh3St0re+9f2a7c1e5b3d8a6f4c2e0b9d7a5f3c1e";

const doc = (o: { registry?: string; sink?: string; source?: string; extra?: string; table?: string; users?: string } = {}) => `
kafka: { brokers: ["127.0.0.1:9092"] }
schemaRegistry: { url: "${o.registry ?? "http://127.0.0.1:8080/apis/ccompat/v7"}" }
sink:
  databaseUrl: "${o.sink ?? "postgres://postgres@127.0.0.1:5432/qobra"}"
  defaultCurrency: EUR${o.users !== undefined ? `\n  users: { query: ${JSON.stringify(o.users)} }` : ""}
connectors:
  - id: crm
    type: postgres
    connection: { url: "${o.source ?? "postgres://reader@127.0.0.1:5432/crm"}" }
    tables:
      - { name: deals, source: public.deals, idColumn: id, nameColumn: title${o.table ?? ""} }
${o.extra ?? ""}`;

function configError(text: string, env: NodeJS.ProcessEnv = {}): string {
  try {
    parseConfig(text, "qobra-sync.yaml", env);
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    return (e as Error).message;
  }
  throw new Error("expected a ConfigError");
}

describe("config errors never show a secret", () => {
  const passwords = { sink: "Snk#P4ss/w0rd?x@y", registry: "Rg#Pw%2F@Zz", source: "Src%40Pw#1/2?3" };
  const urls = {
    sink: `postgres://postgres:${passwords.sink}@127.0.0.1:5432/qobra`,
    registry: `http://reg:${passwords.registry}@127.0.0.1:8080/apis/ccompat/v7`,
    source: `postgres://reader:${passwords.source}@127.0.0.1:5432/crm`,
  };

  it("URLs whose password holds # / ? @ % are accepted, as written or through ${env:}", () => {
    const c = parseConfig(doc(urls), "x", {});
    expect(c.sink.databaseUrl).toBe(urls.sink);
    expect(c.schemaRegistry.url).toBe(urls.registry);
    const viaEnv = parseConfig(doc({ sink: "${env:SINK_URL}", registry: "${env:REG_URL}", source: "${env:SRC_URL}" }), "x", {
      SINK_URL: urls.sink,
      REG_URL: urls.registry,
      SRC_URL: urls.source,
    });
    expect(viaEnv.sink.databaseUrl).toBe(urls.sink);
  });

  it("an error elsewhere in the file lists its problems without any of them", () => {
    const text = configError(doc({ ...urls, table: ", idColum: x", extra: "topicPrefix: 'not a prefix!'" }));
    expect(text).toMatch(/unknown key idColum/);
    expect(text).toMatch(/topicPrefix: may hold letters/);
    expect(leaks(text, ...Object.values(passwords))).toEqual([]);
  });

  it("an unreadable URL is refused by its path, without its value", () => {
    const pw = "S3cr3tPw#x";
    const text = configError(doc({ sink: `postgres://u:${pw}@host:notaport/db`, registry: `ftp://u:${pw}@host/x`, source: `mysql://u:${pw}@host/db` }));
    expect(text).toMatch(/sink\.databaseUrl: cannot be read as a postgres:\/\/ URL: user and password, then host\[:port\]\/database after the last '@'/);
    expect(text).toMatch(/schemaRegistry\.url: must be the registry's Confluent-compatible base URL/);
    expect(text).toMatch(/connectors\[0\]\.connection\.url: must start with postgres:\/\//);
    expect(leaks(text, pw)).toEqual([]);
  });

  it("a secret field's value is masked even where another field's message would echo it", () => {
    const pw = "Echo3dS3cret";
    const text = configError(doc({ source: "postgres://reader:${env:PW}@127.0.0.1:5432/crm", table: `, fields: { amount: "${pw}" }` }), { PW: pw });
    expect(text).toMatch(/fields\.amount/);
    expect(text).not.toContain(pw);
  });

  it("a YAML error does not quote the source text (a password starting with * is an alias)", () => {
    const text = configError(doc().replace("defaultCurrency: EUR", "defaultCurrency: EUR\n  extra: *Al1asPw"));
    expect(text).toMatch(/not valid YAML/);
    expect(text).not.toContain("Al1asPw");
  });
});

describe("${env:NAME} only in secret fields", () => {
  const env = { V: "from-the-environment-0123456789-abcdefgh", QOBRA_SYNC_TOKEN_KEY: TOKEN_KEY };

  it("expands in every secret field", () => {
    const c = parseConfig(
      `
kafka: { brokers: ["127.0.0.1:9092"] }
schemaRegistry: { url: "http://u:\${env:V}@127.0.0.1:8080/apis/ccompat/v7", username: reg, password: "\${env:V}" }
sink: { databaseUrl: "postgres://p:\${env:V}@127.0.0.1:5432/q", defaultCurrency: EUR }
http: { tokens: [{ token: "\${env:V}", tenants: ["*"] }] }
connectors:
  - id: crm
    type: postgres
    connection: { host: h, database: d, user: u, password: "\${env:V}", ssl: { mode: require, key: "\${env:V}" } }
    tables: [{ name: deals, source: deals, idColumn: id, nameColumn: title }]
  - id: sf
    type: salesforce
    clientId: abc
    clientSecret: "\${env:V}"
    refreshToken: "\${env:V}"
    tables: [{ name: opps, object: Opportunity }]
  - id: hs
    type: hubspot
    clientId: abc
    clientSecret: "\${env:V}"
    refreshToken: "\${env:V}"
    tables: [{ name: deals, object: deals }]
`,
      "x",
      env,
    );
    expect(c.schemaRegistry.password).toBe(env.V);
    expect(c.sink.databaseUrl).toBe(`postgres://p:${env.V}@127.0.0.1:5432/q`);
    expect(JSON.stringify(c.connectors)).not.toContain("${env:");
    expect(JSON.stringify(c.connectors).split(env.V).length - 1).toBe(6);
  });

  it("refuses `where: \"x = '${env:QOBRA_SYNC_TOKEN_KEY}'\"` at load, naming the field, never printing the key", () => {
    const text = configError(doc({ table: ", where: \"x = '${env:QOBRA_SYNC_TOKEN_KEY}'\"" }), env);
    expect(text).toContain("connectors[0].tables[0].where: `${env:QOBRA_SYNC_TOKEN_KEY}` is only allowed in secret fields");
    expect(text).not.toContain(TOKEN_KEY);
    expect(text).not.toContain(TOKEN_KEY.slice(0, 12));
  });

  it.each([
    ["kafka.brokers[0]", (d: string) => d.replace('"127.0.0.1:9092"', '"${env:V}"')],
    ["topicPrefix", (d: string) => `${d}\ntopicPrefix: "\${env:V}"`],
    ["schemaRegistry.username", (d: string) => d.replace('apis/ccompat/v7" }', 'apis/ccompat/v7", username: "${env:V}" }')],
    ["sink.users.query", (d: string) => d.replace("defaultCurrency: EUR", 'defaultCurrency: EUR\n  users: { query: "SELECT id, email FROM ${env:V}" }')],
    ["connectors[0].tables[0].name", (d: string) => d.replace("name: deals", 'name: "${env:V}"')],
    ["connectors[0].tables[0].source", (d: string) => d.replace("source: public.deals", 'source: "${env:V}"')],
  ])("refuses it in %s", (path, patch) => {
    const text = configError(patch(doc()), env);
    expect(text).toContain(`${path}: \`\${env:V}\` is only allowed in secret fields`);
    expect(text).not.toContain(env.V);
  });

  it("refuses it in a source's non-secret fields too (Salesforce clientId and loginUrl, a HubSpot filter value)", () => {
    const text = configError(
      doc({
        extra: `  - id: sf
    type: salesforce
    clientId: "\${env:V}"
    loginUrl: "https://\${env:V}.my.salesforce.com"
    clientSecret: s
    tables: [{ name: opps, object: Opportunity }]
  - id: hs
    type: hubspot
    clientId: abc
    clientSecret: s
    tables: [{ name: deals, object: deals, filter: [{ propertyName: dealstage, operator: EQ, value: "\${env:V}" }] }]`,
      }),
      env,
    );
    expect(text).toContain("connectors[1].clientId: `${env:V}` is only allowed in secret fields");
    expect(text).toContain("connectors[1].loginUrl: `${env:V}`");
    expect(text).toContain("connectors[2].tables[0].filter[0].value: `${env:V}`");
    expect(text).not.toContain(env.V);
  });

  it("still names an unset variable in a secret field, and an unknown connector type before anything in it", () => {
    expect(configError(doc({ sink: "postgres://u:${env:NOPE}@h/db" }))).toMatch(/sink\.databaseUrl: environment variable NOPE is not set/);
    expect(configError(doc({ source: "postgres://u:${env:V}@h/db" }).replace("type: postgres", "type: oracle"), env)).toMatch(
      /connectors\[0\]\.type: unknown connector type "oracle"/,
    );
  });

  it("the generated reference marks exactly the secret fields", () => {
    const ref = renderConfigReference();
    const secretRows = ref
      .split("\n")
      .filter((l) => l.startsWith("| `") && l.includes("**Secret**"))
      .map((l) => /^\| `([^`]+)`/.exec(l)?.[1]);
    expect(secretRows.sort()).toEqual(
      [
        "schemaRegistry.url",
        "schemaRegistry.password",
        "sink.databaseUrl",
        "http.tokens[].token",
        "connection.url",
        "connection.password",
        "connection.ssl.key",
        "clientSecret",
        "refreshToken",
        "clientSecret",
        "refreshToken",
      ].sort(),
    );
  });
});

describe("sink.users.query is one SELECT", () => {
  it.each([
    "SELECT id, email FROM qobra.users",
    "SELECT u.id, u.email, e.no AS employee_no FROM qobra.users u JOIN qobra.employees e ON e.user_id = u.id WHERE NOT u.archived",
    "WITH active AS (SELECT * FROM qobra.users WHERE active) SELECT id, email FROM active UNION ALL SELECT 'x', 'y@z'",
    "SELECT id, email FROM qobra.users;",
    "TABLE qobra.users",
  ])("accepts %s", (query) => {
    expect(singleSelectProblem(query)).toBeUndefined();
    expect(parseConfig(doc({ users: query }), "x", {}).sink.users.query).toBe(query);
  });

  it.each([
    ["SELECT id, email FROM qobra.users; DELETE FROM qobra.users", /exactly one SELECT statement, and it holds 2 statements/],
    ["DELETE FROM qobra.users RETURNING id, email", /must be a SELECT statement, and it is a DeleteStmt/],
    ["WITH gone AS (DELETE FROM qobra.users RETURNING *) SELECT id, email FROM gone", /must only read, and it holds a DELETE/],
    ["SELECT * FROM (WITH d AS (UPDATE qobra.users SET email = '' RETURNING *) SELECT * FROM d) s", /must only read, and it holds a UPDATE/],
    ["WITH a AS (INSERT INTO t VALUES (1) RETURNING 1) SELECT 1 AS id", /must only read, and it holds a INSERT/],
    ["SELECT id, email INTO stolen FROM qobra.users", /SELECT … INTO creates a table/],
    ["SELECT id, email FROM qobra.users FOR UPDATE", /FOR UPDATE \/ FOR SHARE locks rows/],
    ["SELECT id, email FROM qobra.users WHERE id IN (SELECT id FROM qobra.users FOR SHARE)", /FOR UPDATE \/ FOR SHARE locks rows/],
    ["CREATE TABLE t AS SELECT 1", /must be a SELECT statement/],
    ["", /must be exactly one SELECT statement, and it is empty/],
    ["-- nothing", /must be exactly one SELECT statement, and it holds none/],
    ["SELEC id FROM users", /is not valid SQL \(syntax error at or near "SELEC"\)/],
  ])("refuses %s", (query, reason) => {
    expect(singleSelectProblem(query)).toMatch(reason);
    expect(configError(doc({ users: query }))).toMatch(new RegExp(`sink\\.users\\.query: .*${reason.source}`));
  });

  it("the mapper's user directory refuses one too (a second guard beside the config)", () => {
    expect(() => new UserDirectory({} as pg.Pool, "SELECT 1 AS id; DROP TABLE qobra.users", 60)).toThrow(
      /sink\.users\.query must be exactly one SELECT statement/,
    );
  });
});
