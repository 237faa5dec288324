import { describe, expect, it } from "vitest";
import { parseConfig } from "../../app/config.ts";
import type { PostgresConnector } from "../../producers/connectors/postgres/config.ts";
import { ConfigError } from "../../lib/errors.ts";

const base = (connectors: string) => `
kafka: { brokers: ["127.0.0.1:9092"] }
schemaRegistry: { url: "http://127.0.0.1:8080/apis/ccompat/v7" }
sink:
  databaseUrl: "postgres://postgres@127.0.0.1:5432/qobra"
  defaultCurrency: EUR
connectors:
${connectors}`;

const pgConnector = `
  - id: crm
    type: postgres
    connection: { url: "postgres://reader:\${env:CRM_PASSWORD}@127.0.0.1:5432/crm" }
    schedule: { timesPerDay: 4, timezone: "Europe/Paris" }
    tables:
      - name: deals
        source: public.deals
        idColumn: id
        nameColumn: title
        where: "stage = 'won'"
        fields: { amount: { type: amount, currencyColumn: currency }, closed_on: date, owner_email: user, tags: multipicklist }`;

function error(text: string, env: NodeJS.ProcessEnv = { CRM_PASSWORD: "x" }): string {
  try {
    parseConfig(text, "qobra-sync.yaml", env);
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    return (e as Error).message;
  }
  throw new Error("expected a ConfigError");
}

describe("config", () => {
  it("parses the documented example, with defaults and env interpolation", () => {
    const c = parseConfig(base(pgConnector), "x", { CRM_PASSWORD: "s3cret" });
    expect(c.topicPrefix).toBe("qobra");
    expect(c.sink.schema).toBe("qobra_data");
    const conn = c.connectors[0]! as PostgresConnector;
    expect(conn.connection.url).toBe("postgres://reader:s3cret@127.0.0.1:5432/crm");
    expect(conn.tables[0]!.fields.closed_on).toEqual({ type: "date" });
    expect(conn.tables[0]!.fields.amount).toEqual({ type: "amount", currencyColumn: "currency" });
  });
  it("names a missing environment variable", () => {
    expect(error(base(pgConnector), {})).toMatch(/connectors\[0\]\.connection\.url: environment variable CRM_PASSWORD is not set/);
  });
  it("rejects an unknown connector type with the supported ones", () => {
    expect(error(base(pgConnector.replace("type: postgres", "type: mysql")))).toMatch(
      /connectors\[0\]\.type: unknown connector type "mysql"; this version supports postgres/,
    );
  });
  it("rejects a missing idColumn by path", () => {
    expect(error(base(pgConnector.replace("idColumn: id", "")))).toMatch(/connectors\[0\]\.tables\[0\]\.idColumn: is required/);
  });
  it("rejects an unknown Qobra type and unknown keys", () => {
    expect(error(base(pgConnector.replace("closed_on: date", "closed_on: datum")))).toMatch(/closed_on.*datum/);
    expect(error(base(pgConnector.replace("idColumn: id", "idColumn: id\n        idColum: id")))).toMatch(/unknown key idColum/);
  });
  it("rejects a bad time zone, bad broker, bad YAML", () => {
    expect(error(base(pgConnector.replace("Europe/Paris", "Mars/Olympus")))).toMatch(/schedule\.timezone: must be an IANA time zone/);
    expect(error(base(pgConnector).replace("127.0.0.1:9092", "localhost"))).toMatch(/kafka\.brokers\[0\]: must be host:port/);
    expect(error("kafka: [")).toMatch(/not valid YAML/);
  });
  it("takes a URL, discrete fields with TLS, or a Cloud SQL instance — exactly one", () => {
    const host = base(
      pgConnector.replace(
        /connection: \{[^\n]*\}/,
        'connection: { host: db.internal, database: crm, user: reader, password: "${env:CRM_PASSWORD}", ssl: { mode: require } }',
      ),
    );
    const c = parseConfig(host, "x", { CRM_PASSWORD: "p" }).connectors[0] as PostgresConnector;
    expect(c.connection).toMatchObject({ host: "db.internal", port: 5432, ssl: { mode: "require" } });
    const cloud = base(
      pgConnector.replace(
        /connection: \{[^\n]*\}/,
        'connection: { cloudSql: { instanceConnectionName: "acme-prod:europe-west1:crm" }, database: crm, user: "etl@acme-prod.iam" }',
      ),
    );
    expect((parseConfig(cloud, "x", {}).connectors[0] as PostgresConnector).connection.cloudSql).toEqual({
      instanceConnectionName: "acme-prod:europe-west1:crm",
      ipType: "PUBLIC",
      iamAuth: true,
    });
    expect(error(base(pgConnector.replace(/connection: \{[^\n]*\}/, "connection: { host: h, url: 'postgres://x' }")))).toMatch(/give exactly one of url, host/);
    expect(
      error(base(pgConnector.replace(/connection: \{[^\n]*\}/, "connection: { cloudSql: { instanceConnectionName: crm }, database: d, user: u }"))),
    ).toMatch(/must be project:region:instance/);
    expect(error(base(pgConnector.replace(/connection: \{[^\n]*\}/, "connection: { host: h, user: u }")))).toMatch(/database and user are required/);
  });

  it("rejects duplicate connector ids", () => {
    expect(error(base(pgConnector + pgConnector))).toMatch(/duplicate connector id crm/);
  });
});
