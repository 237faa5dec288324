import { randomBytes } from "node:crypto";
import { describe, expect, it } from "vitest";
import { connectorSchema, parseConnectorEntry } from "../../app/config.ts";
import { ConnectorCatalog, liveConfig } from "../../lib/connector-catalog.ts";
import { MASK, SecretBox, keepMaskedSecrets, mapSecrets, maskedEntry } from "../../lib/connector-store.ts";
import type { Config } from "../../lib/config.ts";

const entry = () => ({
  type: "postgres",
  connection: { url: "postgres://reader:p%40ss-w0rd@db.example.com:5432/crm", password: "other-secret" },
  tables: [{ name: "deals", source: "public.deals", idColumn: "id", nameColumn: "title", fields: { amount: "amount" } }],
});

describe("connector store: secrets at rest", () => {
  it("finds the secret fields through the plugin's schema, and nothing else", () => {
    const seen: string[] = [];
    mapSecrets(entry(), connectorSchema, (v, path) => {
      seen.push(`${path.join(".")}=${v}`);
      return v;
    });
    expect(seen.sort()).toEqual(["connection.password=other-secret", "connection.url=postgres://reader:p%40ss-w0rd@db.example.com:5432/crm"]);
  });

  it("masks every secret for the API, and keeps stored secrets where an edit sends the mask back", () => {
    const masked = maskedEntry(entry(), connectorSchema) as ReturnType<typeof entry>;
    expect(masked.connection).toEqual({ url: MASK, password: MASK });
    expect(JSON.stringify(masked)).not.toContain("w0rd");
    const edited = { ...masked, tables: [{ ...masked.tables[0]!, fields: { amount: "amount", closed_on: "date" } }] };
    const kept = keepMaskedSecrets(edited, entry(), connectorSchema) as ReturnType<typeof entry>;
    expect(kept.connection).toEqual(entry().connection);
    expect(() => keepMaskedSecrets(masked, undefined, connectorSchema)).toThrow(/stands for a stored secret/);
  });

  it("seals with AES-GCM bound to the connector and field: another key, connector or field does not open it", () => {
    const key = randomBytes(32);
    const box = new SecretBox(key);
    const sealed = box.seal("s3cr3t-value", "acme/crm:connection.url");
    expect(sealed).toMatch(/^enc:v1:/);
    expect(sealed).not.toContain("s3cr3t");
    expect(box.open(sealed, "acme/crm:connection.url")).toBe("s3cr3t-value");
    expect(() => box.open(sealed, "globex/crm:connection.url")).toThrow();
    expect(() => box.open(sealed, "acme/crm:connection.password")).toThrow();
    expect(() => new SecretBox(randomBytes(32)).open(sealed, "acme/crm:connection.url")).toThrow();
    expect(() => box.open("postgres://in-clear", "acme/crm:connection.url")).toThrow(/in clear/);
    // A fresh IV each time: the same value never seals to the same text.
    expect(box.seal("s3cr3t-value", "a")).not.toBe(box.seal("s3cr3t-value", "a"));
  });

  it("validates an API entry with the file's schema, naming the field, and never echoes a secret", () => {
    const c = parseConnectorEntry(entry(), { tenant: "acme", id: "crm" });
    expect(c.id).toBe("acme.crm");
    expect(c.tenant).toBe("acme");
    const bad = { ...entry(), tables: [{ name: "Deals!", source: "public.deals", idColumn: "id", nameColumn: "title", fields: {} }] };
    expect(() => parseConnectorEntry(bad, { tenant: "acme", id: "crm" })).toThrow(/tables\[0\]\.name/);
    const env = { ...entry(), connection: { url: "postgres://x:${env:QOBRA_SYNC_TOKEN_KEY}@evil.example.com/db" } };
    expect(() => parseConnectorEntry(env, { tenant: "acme", id: "crm" })).toThrow(/connection\.url: `\$\{env:…\}` is not allowed/);
    expect(() => parseConnectorEntry({ ...entry(), id: "x" }, { tenant: "acme", id: "crm" })).toThrow(/id: is taken from the path/);
    try {
      parseConnectorEntry({ ...entry(), connection: { ...entry().connection, port: "not-a-port" } }, { tenant: "acme", id: "crm" });
      expect.unreachable();
    } catch (e) {
      expect((e as Error).message).not.toContain("w0rd");
      expect((e as Error).message).not.toContain("other-secret");
    }
  });
});

describe("connector catalog", () => {
  it("merges the file's connectors and the stored ones, the file winning; the live config follows it", () => {
    const file = [parseConnectorEntry(entry(), { tenant: "acme", id: "crm" })];
    const listeners: Array<(l: unknown[]) => void> = [];
    let stored: Array<{ config: ReturnType<typeof parseConnectorEntry> }> = [];
    const store = {
      list: () => stored,
      onChange: (l: (x: unknown[]) => void) => {
        listeners.push(l);
        return () => {};
      },
    };
    const catalog = new ConnectorCatalog(file, store as never);
    const config = liveConfig({ connectors: file } as unknown as Config, catalog);
    expect(config.connectors.map((c) => c.id)).toEqual(["acme.crm"]);
    stored = [
      { config: parseConnectorEntry(entry(), { tenant: "globex", id: "crm" }) },
      { config: parseConnectorEntry(entry(), { tenant: "acme", id: "crm" }) },
    ];
    for (const l of listeners) l(stored);
    expect(config.connectors.map((c) => c.id)).toEqual(["acme.crm", "globex.crm"]);
    expect(catalog.fromFile("acme.crm")).toBe(true);
    expect(catalog.fromFile("globex.crm")).toBe(false);
  });
});

describe("tenant schemas", () => {
  it("refuses a tenant whose sink schema would be the sink's own, in the file and through the API", async () => {
    const { parseConfig } = await import("../../app/config.ts");
    const { tenantSchemaProblem } = await import("../../app/connectors.ts");
    const yaml = (tenant: string) => `
kafka: { brokers: ["127.0.0.1:9092"] }
schemaRegistry: { url: "http://127.0.0.1:8080/apis/ccompat/v7" }
sink: { databaseUrl: "postgres://postgres@127.0.0.1:5432/postgres", defaultCurrency: EUR }
connectors:
  - { id: crm, tenant: ${tenant}, type: postgres, connection: { url: "postgres://r@127.0.0.1:5432/src" }, tables: [ { name: deals, source: deals, idColumn: id, nameColumn: name, fields: {} } ] }
`;
    expect(() => parseConfig(yaml("data"), "config", {})).toThrow(/connectors\[0\]\.tenant: "data" would write into qobra_data/);
    const ok = parseConfig(yaml("acme"), "config", {});
    expect(ok.connectors[0]!.id).toBe("acme.crm");
    expect(tenantSchemaProblem(ok, "data")).toMatch(/sink's own schema/);
    expect(tenantSchemaProblem(ok, "acme")).toBeNull();
    expect(tenantSchemaProblem(ok, undefined)).toBeNull();
  });
});
