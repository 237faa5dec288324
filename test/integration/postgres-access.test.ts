/**
 * Access errors of the PostgreSQL source, against the real local server and up to the network
 * boundary for Cloud SQL: each names the connector (and table) and says what to do.
 */
import { generateKeyPairSync } from "node:crypto";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { ConfigError, SourceUnavailableError } from "../../lib/errors.ts";
import { createConnector } from "../../producers/connectors/registry.ts";
import { connectionError } from "../../producers/connectors/postgres/connection.ts";
import { dbUrl, ensureDatabase, testConfig, testConfigYaml, uniqueId, withDb } from "../../support/env.ts";

const DB = "qobra_it_source";
let id: string;

function connectorWith(connection: string, source = `public.access_${id}`) {
  const yaml = testConfigYaml({
    prefix: id,
    sinkSchema: "s",
    sourceDb: DB,
    sinkDb: DB,
    tables: `
      - { name: t, source: ${source}, idColumn: id, nameColumn: name, fields: {} }`,
  }).replace(/connection: \{[^\n]*\}/, `connection: ${connection}`);
  return createConnector(testConfig(yaml).connectors[0]!);
}

async function readError(connection: string, source?: string): Promise<Error> {
  const c = connectorWith(connection, source);
  try {
    for await (const _ of c.read("t", { full: true, signal: new AbortController().signal, state: null, runStartedAt: Date.now() })) {
      /* drain */
    }
  } catch (e) {
    return e as Error;
  } finally {
    await c.close();
  }
  throw new Error("expected an error");
}

beforeAll(async () => {
  id = uniqueId("acc");
  await ensureDatabase(DB);
  await withDb(DB, (c) => c.query(`CREATE TABLE public.access_${id} (id int PRIMARY KEY, name text); CREATE ROLE noaccess_${id} LOGIN`));
});

describe("PostgreSQL source access errors", () => {
  it("unknown host", async () => {
    const e = await readError(`{ host: no-such-host.invalid, database: d, user: u }`);
    expect(e).toBeInstanceOf(SourceUnavailableError);
    expect(e.message).toMatch(/connector crm: PostgreSQL at no-such-host\.invalid:5432\/d: the host name does not resolve.*check the host/);
  });
  it("refused connection", async () => {
    const e = await readError(`{ url: "postgres://u@127.0.0.1:1/d" }`);
    // Named by host, port and database only: never the URL (issue 14, test/integration/secrets.test.ts).
    expect(e.message).toMatch(/connector crm: PostgreSQL at 127\.0\.0\.1:1\/d refused the connection.*is the server running/);
  });
  it("missing database", async () => {
    const e = await readError(`{ url: "${dbUrl(`nodb_${id}`)}" }`);
    expect(e).toBeInstanceOf(ConfigError);
    expect(e.message).toMatch(new RegExp(`database "nodb_${id}" does not exist; check the database name`));
  });
  it("permission denied names the table and the GRANT", async () => {
    const url = new URL(dbUrl(DB));
    url.username = `noaccess_${id}`;
    const e = await readError(`{ url: "${url}" }`);
    expect(e).toBeInstanceOf(ConfigError);
    expect(e.message).toMatch(/connector crm, table t: .*permission denied.*GRANT SELECT/);
  });
  it("TLS required by the config but not offered by the server", async () => {
    const e = await readError(`{ host: 127.0.0.1, database: ${DB}, user: postgres, ssl: { mode: require } }`);
    expect(e.message).toMatch(/does not accept TLS; set ssl\.mode: disable/);
  });
  it("maps wrong credentials and bad certificates (driver error codes)", () => {
    expect(connectionError({ code: "28P01", message: 'password authentication failed for user "x"' }, "crm", "h/db").message).toMatch(
      /connector crm: PostgreSQL at h\/db refused the credentials .*check the user and password/,
    );
    expect(connectionError({ code: "SELF_SIGNED_CERT_IN_CHAIN", message: "self-signed certificate in certificate chain" }, "crm", "h/db")).toBeInstanceOf(
      ConfigError,
    );
  });
  it("Cloud SQL: a missing key file, then the network boundary", async () => {
    const missing = await readError(
      `{ cloudSql: { instanceConnectionName: "acme:europe-west1:crm", credentialsFile: /nonexistent/key.json }, database: d, user: "etl@acme.iam" }`,
    );
    expect(missing).toBeInstanceOf(ConfigError);
    expect(missing.message).toMatch(/service-account key file \/nonexistent\/key\.json does not exist/);

    const dir = mkdtempSync(join(tmpdir(), "qobra-gcp-"));
    const { privateKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
    const keyFile = join(dir, "key.json");
    writeFileSync(
      keyFile,
      JSON.stringify({
        type: "service_account",
        project_id: "acme",
        private_key_id: "k1",
        client_email: "etl@acme.iam.gserviceaccount.com",
        client_id: "1",
        private_key: privateKey.export({ type: "pkcs8", format: "pem" }),
        token_uri: "http://127.0.0.1:1/token",
      }),
    );
    const e = await readError(
      `{ cloudSql: { instanceConnectionName: "acme:europe-west1:crm", credentialsFile: "${keyFile}" }, database: d, user: "etl@acme.iam" }`,
    );
    expect(e).toBeInstanceOf(SourceUnavailableError);
    expect(e.message).toMatch(/connector crm: the Cloud SQL connector could not reach instance acme:europe-west1:crm .*roles\/cloudsql\.client/);
    expect(e.message).not.toContain("BEGIN PRIVATE KEY");
  });
});
