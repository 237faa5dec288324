/**
 * No connection string in any message (issue 14, item 3), the paths that need nothing running:
 * URLs whose password holds `#`, `/`, `?`, `@` or `%` are described by host, port and database
 * only; the driver receives them whole; the PostgreSQL source's errors (a real pg client against a
 * closed port), the registry's (a real fetch), the log lines of a real process, run events and
 * the settings page's state show no piece of any password. The integration test
 * (test/integration/secrets.test.ts) runs the same URLs through the real broker and CLI.
 */
import { spawnSync } from "node:child_process";
import { createServer } from "node:net";
import { parse as parsePgUrl } from "pg-connection-string";
import { describe, expect, it } from "vitest";
import { parseConfig } from "../../app/config.ts";
import { newEvent } from "../../lib/codec.ts";
import { describeEndpoint, driverUrl, parseEndpointUrl, withoutCredentials } from "../../lib/endpoint.ts";
import { maskSecrets } from "../../lib/redact.ts";
import { Registry } from "../../lib/registry.ts";
import { buildOpsState } from "../../ops/page-state.ts";
import { RunBook } from "../../ops/runs.ts";
import { describeTarget } from "../../producers/connectors/postgres/connection.ts";
import { PostgresSource } from "../../producers/connectors/postgres/source.ts";
import type { PostgresConnector } from "../../producers/connectors/postgres/config.ts";
import { ISSUE_URLS, leaks } from "./secrets-fixtures.ts";

async function closedPort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, "127.0.0.1", r));
  const port = (s.address() as { port: number }).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

describe("a connection URL is described by host, port and database", () => {
  it.each(ISSUE_URLS)("$url", ({ url, password, host, port, db }) => {
    const text = describeEndpoint(url);
    expect(text).toBe(`${host}:${port}/${db}`);
    expect(leaks(text, password)).toEqual([]);
    const p = parseEndpointUrl(url)!;
    expect(p.password).toBe(password);
  });

  it("says 'an unparseable connection URL' for what it cannot read, and echoes none of it", () => {
    for (const url of ["postgres://u:S3cr3tPw@host:notaport/db", "S3cr3tPw@host/db", "postgres://u:S3cr3tPw@ho st/db", ""]) {
      expect(describeEndpoint(url)).toBe("an unparseable connection URL");
    }
  });

  it("names a registry by host and port, never its credentials or path", () => {
    expect(describeEndpoint("https://reg:R3g#Pw/x@registry.example:8443/apis/ccompat/v7")).toBe("registry.example:8443");
    expect(describeEndpoint("http://127.0.0.1/apis")).toBe("127.0.0.1:80");
    expect(withoutCredentials("https://reg:R3g#Pw/x@registry.example:8443/apis/ccompat/v7")).toBe("https://registry.example:8443/apis/ccompat/v7");
  });

  it("the PostgreSQL source names its target the same way (old code printed the URL whole)", () => {
    for (const { url, password, host, port, db } of ISSUE_URLS) {
      const text = describeTarget({ url, port: 5432, statementTimeoutMs: 1000 });
      expect(text).toBe(`${host}:${port}/${db}`);
      expect(leaks(text, password)).toEqual([]);
    }
  });
});

describe("the driver receives the password whole", () => {
  it.each(ISSUE_URLS)("$url reaches node-postgres as the intended host, port, database and password", ({ url, password, host, port, db }) => {
    const parsed = parsePgUrl(driverUrl(url));
    expect({ host: parsed.host, port: parsed.port || "5432", database: parsed.database, user: parsed.user, password: parsed.password }).toEqual({
      host,
      port,
      database: db,
      user: parsed.user,
      password,
    });
  });
});

describe("errors of a real PostgreSQL client and a real registry client", () => {
  it("the PostgreSQL source's check against a closed port names host, port and database, no password", async () => {
    const port = await closedPort();
    for (const { url, password, db } of ISSUE_URLS) {
      const target = url.replace(/@[^@]*$/, `@127.0.0.1:${port}/${db}`);
      const source = new PostgresSource({
        id: "crm",
        type: "postgres",
        connection: { url: target, port: 5432, statementTimeoutMs: 1000 },
        tables: [{ name: "deals", source: "deals", idColumn: "id", nameColumn: "name", fields: {} }],
      } as unknown as PostgresConnector);
      const error = await source.check().then(
        () => new Error("expected a failure"),
        (e: Error) => e,
      );
      await source.close();
      const text = `${error.message} ${String((error.cause as Error | undefined)?.message)}`;
      expect(text).toContain(`PostgreSQL at 127.0.0.1:${port}/${db} refused the connection`);
      expect(leaks(text, password)).toEqual([]);
    }
  });

  it("the registry, with credentials in its URL, fails without printing them (fetch itself would)", async () => {
    const port = await closedPort();
    const password = "R3g#Pw/x?y@Zz";
    const registry = new Registry({ url: `http://reg:${password}@127.0.0.1:${port}/apis/ccompat/v7` });
    const error = await registry.schemaJson(1).then(
      () => new Error("expected a failure"),
      (e: Error) => e,
    );
    expect(error.message).toContain(`schema registry at 127.0.0.1:${port} is unreachable`);
    expect(leaks(`${error.message} ${String(error.stack)}`, password)).toEqual([]);
  });
});

describe("last line of defence", () => {
  it("masks the user-info of any URL in a text, whatever the password holds", () => {
    for (const { url, password } of ISSUE_URLS) {
      const text = maskSecrets(`connect to ${url} failed; also "${url}" and (${url})`);
      expect(leaks(text, password)).toEqual([]);
      expect(text).toContain("connect to postgres");
    }
    expect(maskSecrets("see https://example.com/docs and mail ops@example.com")).toBe("see https://example.com/docs and mail ops@example.com");
  });

  it("remembers the config's secret values, not the addresses of its URLs", () => {
    parseConfig(
      `
kafka: { brokers: ["127.0.0.1:9092"] }
schemaRegistry: { url: "http://127.0.0.1:8080/apis/ccompat/v7", username: reg, password: "Rm3mb3r3d-Pw" }
sink: { databaseUrl: "postgres://postgres:Shrt@127.0.0.1:5432/q", defaultCurrency: EUR }
`,
      "t",
      {},
    );
    expect(maskSecrets("registry http://127.0.0.1:8080/apis/ccompat/v7 said Rm3mb3r3d-Pw (Rm3mb3r3d-Pw encoded: Rm3mb3r3d-Pw)")).toBe(
      "registry http://127.0.0.1:8080/apis/ccompat/v7 said *** (*** encoded: ***)",
    );
    // Under five characters a value is left alone (masking it would garble ordinary words); inside a URL it is masked anyway.
    expect(maskSecrets("host 127.0.0.1:5432/q, a Shrt word")).toBe("host 127.0.0.1:5432/q, a Shrt word");
    expect(maskSecrets("postgres://postgres:Shrt@127.0.0.1:5432/q")).toBe("postgres://***@127.0.0.1:5432/q");
  });

  it("a run event's error is masked before it is encoded", () => {
    for (const { url, password } of ISSUE_URLS) {
      const e = newEvent({ runId: "r", connector: "crm", type: "RUN_FAILED", error: `could not read ${url}` });
      expect(leaks(e.error ?? "", password)).toEqual([]);
    }
  });

  it("the settings page's state masks run errors and monitor errors (an old event on the topic, say)", () => {
    const config = parseConfig(
      `
kafka: { brokers: ["127.0.0.1:9092"] }
schemaRegistry: { url: "http://127.0.0.1:8080/apis/ccompat/v7" }
sink: { databaseUrl: "postgres://x@127.0.0.1/q", defaultCurrency: EUR }
connectors:
  - id: crm
    type: postgres
    connection: { url: "postgres://r@127.0.0.1/crm" }
    tables: [{ name: deals, source: deals, idColumn: id, nameColumn: name }]
`,
      "t",
      {},
    );
    const book = new RunBook();
    const base = { runId: "r1", connector: "crm", stage: "producer", table: null, full: false, counts: {}, offsets: [], taskId: null, retriable: null };
    book.apply({ ...base, type: "RUN_STARTED", at: 1, error: null });
    book.apply({ ...base, type: "RUN_FAILED", at: 2, error: `PostgreSQL at ${ISSUE_URLS[0].url} refused`, retriable: false });
    const state = buildOpsState({
      now: 3,
      ready: true,
      config,
      effective: config,
      overrides: [],
      book,
      tableStats: [],
      dlq: [],
      health: { ok: true, at: 3, groups: [], problems: [] },
      lag: null,
      errors: [`sink statistics failed: ${ISSUE_URLS[1].url}`],
    });
    const text = JSON.stringify(state);
    expect(text).toContain("refused");
    expect(leaks(text, ISSUE_URLS[0].password, ISSUE_URLS[1].password)).toEqual([]);
  });

  it("the logger of a real process masks URLs and the config's secret values, in messages and in objects", () => {
    // lib/config.ts's parser without source plugins: the core's secret fields are enough here.
    const script = `
      const { configParser } = await import("./lib/config.ts");
      const { logger } = await import("./lib/log.ts");
      configParser([]).parse(process.env.CONFIG, "c", process.env);
      logger.warn("connecting to ${ISSUE_URLS[1].url}");
      logger.error({ err: new Error("refused: ${ISSUE_URLS[0].url}") }, "failed");
      logger.error({ detail: { text: "the secret is " + process.env.REG_PASSWORD } }, "echoed by a library");
      logger.error({ where: "${ISSUE_URLS[3].url}" }, "x");
    `;
    const config = `
kafka: { brokers: ["127.0.0.1:9092"] }
schemaRegistry: { url: "http://127.0.0.1:8080/apis/ccompat/v7", username: reg, password: "\${env:REG_PASSWORD}" }
sink: { databaseUrl: "postgres://x@127.0.0.1/q", defaultCurrency: EUR }
`;
    const r = spawnSync(process.execPath, ["--input-type=module", "-e", script], {
      encoding: "utf8",
      env: { ...process.env, QOBRA_SYNC_LOG_LEVEL: "info", CONFIG: config, REG_PASSWORD: "Rg#Cl13nt/S3cret" },
    });
    expect(r.status, r.stderr).toBe(0);
    const out = r.stdout + r.stderr;
    expect(out).toMatch(/"msg":"connecting to postgres:\/\/\*\*\*@host\/db"/);
    expect(out).toMatch(/echoed by a library/);
    expect(leaks(out, ...ISSUE_URLS.map((u) => u.password), "Rg#Cl13nt/S3cret")).toEqual([]);
  });
});
