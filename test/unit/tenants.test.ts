/**
 * Tenants in the config: a tenant's connector is `<tenant>.<id>` to the pipeline, its tables land in
 * the tenant's schema as `<id>__<table>`, a connector entry given through the API takes neither its
 * id nor its tenant from the body and never reads the server's environment; and the users query
 * with $1 runs once per tenant, each tenant's user fields resolving against its own users only.
 */
import type pg from "pg";
import { describe, expect, it } from "vitest";
import { parseConfig, parseConnectorEntry } from "../../app/config.ts";
import { UserDirectory, usesTenantParameter, userKeyUses } from "../../consumers/mapping/users.ts";
import { sinkRelation } from "../../consumers/sink/sink-sql.ts";
import { ConfigError } from "../../lib/errors.ts";
import { localId, pipelineId, sinkSchemaOf, splitPipelineId } from "../../lib/tenants.ts";

const base = (connectors: string, sink = "") => `
kafka: { brokers: ["127.0.0.1:9092"] }
schemaRegistry: { url: "http://127.0.0.1:8080/apis/ccompat/v7" }
sink:
  databaseUrl: "postgres://postgres@127.0.0.1:5432/qobra"
  defaultCurrency: EUR${sink}
connectors:
${connectors}`;

const connector = (id: string, tenant?: string) => `
  - id: ${id}${tenant === undefined ? "" : `\n    tenant: ${JSON.stringify(tenant)}`}
    type: postgres
    connection: { url: "postgres://reader@127.0.0.1:5432/crm" }
    tables:
      - name: deals
        source: public.deals
        idColumn: id
        nameColumn: title
        fields: { owner_email: user }`;

function configError(text: string): string {
  try {
    parseConfig(text, "qobra-sync.yaml", {});
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    return (e as Error).message;
  }
  throw new Error("expected a ConfigError");
}

function entryError(entry: unknown, where = { tenant: "acme", id: "crm" }): string {
  try {
    parseConnectorEntry(entry, where);
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    return (e as Error).message;
  }
  throw new Error("expected a ConfigError");
}

/** A connector entry as the API takes it: the JSON of a YAML entry, without id and tenant. */
const entry = () => ({
  type: "postgres",
  connection: { url: "postgres://reader@127.0.0.1:5432/crm" },
  tables: [{ name: "deals", source: "public.deals", idColumn: "id", nameColumn: "title" }],
});

describe("tenants in the config file", () => {
  it("makes a tenant's connector <tenant>.<id>, keeping the tenant", () => {
    const c = parseConfig(base(connector("crm", "acme")), "x", {});
    expect(c.connectors[0]).toMatchObject({ id: "acme.crm", tenant: "acme" });
    expect(c.sink.tenantSchema).toBe("qobra_<tenant>");
  });

  it("leaves a connector without a tenant as it was", () => {
    const c = parseConfig(base(connector("crm")), "x", {});
    expect(c.connectors[0]!.id).toBe("crm");
    expect(c.connectors[0]!.tenant).toBeUndefined();
  });

  it("refuses an invalid tenant, naming connectors[0].tenant", () => {
    expect(configError(base(connector("crm", "Acme Corp")))).toMatch(/connectors\[0\]\.tenant: must be 1 to 40 lower-case letters/);
    expect(configError(base(connector("crm", "acme.eu")))).toMatch(/connectors\[0\]\.tenant: /);
    expect(configError(base(connector("crm", "")))).toMatch(/connectors\[0\]\.tenant: /);
  });

  it("allows the same id in two tenants (and without a tenant), refuses it twice in one tenant", () => {
    const c = parseConfig(base(connector("crm", "acme") + connector("crm", "globex") + connector("crm")), "x", {});
    expect(c.connectors.map((x) => x.id)).toEqual(["acme.crm", "globex.crm", "crm"]);
    expect(configError(base(connector("crm", "acme") + connector("crm", "acme")))).toMatch(/connectors\[1\]\.id: duplicate connector id acme\.crm/);
  });

  it("refuses a tenant schema template without <tenant>", () => {
    expect(configError(base(connector("crm", "acme"), "\n  tenantSchema: qobra_tenants"))).toMatch(/sink\.tenantSchema: must hold <tenant>/);
  });
});

describe("tenant names", () => {
  it("splits and joins pipeline ids", () => {
    expect(pipelineId("acme", "crm")).toBe("acme.crm");
    expect(pipelineId(undefined, "crm")).toBe("crm");
    expect(splitPipelineId("acme.crm")).toEqual({ tenant: "acme", id: "crm" });
    expect(splitPipelineId("crm")).toEqual({ id: "crm" });
    expect(localId({ id: "acme.crm", tenant: "acme" })).toBe("crm");
    expect(localId({ id: "crm" })).toBe("crm");
  });

  it("puts a tenant's tables in its schema under the connector's own id, the others where they always were", () => {
    const sink = { schema: "qobra_data", tenantSchema: "qobra_<tenant>" };
    expect(sinkSchemaOf(sink, { tenant: "acme" })).toBe("qobra_acme");
    expect(sinkSchemaOf({ ...sink, tenantSchema: "t_<tenant>_<tenant>" }, { tenant: "a-b" })).toBe("t_a-b_a-b");
    expect(sinkSchemaOf(sink, {})).toBe("qobra_data");
    expect(sinkRelation(sink, { id: "acme.crm", tenant: "acme" }, "deals")).toEqual({
      schema: "qobra_acme",
      name: "crm__deals",
      qualified: '"qobra_acme"."crm__deals"',
    });
    expect(sinkRelation(sink, { id: "crm" }, "deals")).toEqual({ schema: "qobra_data", name: "crm__deals", qualified: '"qobra_data"."crm__deals"' });
  });
});

describe("connector entries given through the API", () => {
  it("takes the id and tenant from the path", () => {
    expect(parseConnectorEntry(entry(), { tenant: "acme", id: "crm" })).toMatchObject({ id: "acme.crm", tenant: "acme", type: "postgres" });
  });

  it("refuses id and tenant in the body, naming the field", () => {
    expect(entryError({ ...entry(), id: "other" })).toMatch(/id: is taken from the path/);
    expect(entryError({ ...entry(), tenant: "globex" })).toMatch(/tenant: is taken from the path/);
  });

  it("refuses ${env:…} anywhere, naming the field", () => {
    const e = entry();
    e.connection.url = "postgres://reader:${env:PGPASSWORD}@127.0.0.1:5432/crm";
    expect(entryError(e)).toMatch(/connection\.url: `\$\{env:…\}` is not allowed/);
    const t = entry();
    t.tables[0]!.source = "${env:TABLE}";
    expect(entryError(t)).toMatch(/tables\[0\]\.source: `\$\{env:…\}` is not allowed/);
  });

  it("refuses what the file refuses, naming the field", () => {
    expect(entryError({ ...entry(), tables: [{ name: "deals", source: "public.deals", nameColumn: "title" }] })).toMatch(/tables\[0\]\.idColumn: is required/);
    expect(entryError(entry(), { tenant: "Not A Tenant", id: "crm" })).toMatch(/tenant: must be 1 to 40 lower-case letters/);
    expect(entryError([])).toMatch(/must be a JSON object/);
  });
});

describe("users per tenant", () => {
  it("runs per tenant only when the query uses the parameter $1 (not the text in a literal)", () => {
    expect(usesTenantParameter("SELECT id, email FROM qobra.users WHERE tenant = $1")).toBe(true);
    expect(usesTenantParameter("SELECT id, email FROM qobra.users WHERE tenant IS NOT DISTINCT FROM $1::text")).toBe(true);
    expect(usesTenantParameter("SELECT id, email FROM qobra.users")).toBe(false);
    expect(usesTenantParameter("SELECT id, email FROM qobra.users WHERE note <> '$1'")).toBe(false);
  });

  /** A pool whose queries answer from rows per tenant ($1), recording the parameters it was given. */
  function fakePool(byTenant: Map<string | null, Array<Record<string, unknown>>>, calls: unknown[][]): pg.Pool {
    const client = {
      query: async (sql: string, params?: unknown[]) => {
        if (/^(BEGIN|COMMIT|ROLLBACK)/.test(sql)) return { rows: [] };
        calls.push(params ?? []);
        const rows = params && params.length > 0 ? (byTenant.get(params[0] as string | null) ?? []) : [...byTenant.values()].flat();
        return { rows };
      },
      release: () => {},
    };
    return { connect: async () => client } as unknown as pg.Pool;
  }

  const byTenant = new Map<string | null, Array<Record<string, unknown>>>([
    ["acme", [{ id: 1, email: "ann@example.com" }]],
    ["globex", [{ id: 2, email: "ann@example.com" }]],
    [null, [{ id: 3, email: "bob@example.com" }]],
  ]);

  it("resolves a tenant's user fields against its own users only", async () => {
    const calls: unknown[][] = [];
    const connectors = [
      { id: "acme.crm", tenant: "acme", tables: [] },
      { id: "globex.crm", tenant: "globex", tables: [] },
      { id: "crm", tables: [] },
    ];
    const d = new UserDirectory(
      fakePool(byTenant, calls),
      "SELECT id, email FROM users WHERE tenant IS NOT DISTINCT FROM $1",
      300,
      userKeyUses(connectors),
      () => connectors.map((c) => c.tenant),
    );
    expect(d.perTenant).toBe(true);
    await d.start();
    d.stop();
    expect(calls.map((c) => c[0]).sort()).toEqual(["acme", "globex", null]);
    expect(d.snapshot("acme").lookup("ann@example.com")).toBe("1");
    expect(d.snapshot("globex").lookup("ann@example.com")).toBe("2");
    expect(d.snapshot("acme").lookup("bob@example.com")).toBeNull();
    expect(d.snapshot().lookup("bob@example.com")).toBe("3");
    expect(d.snapshot().lookup("ann@example.com")).toBeNull();
    // A tenant whose connector came after the start: loaded on its first use.
    expect(d.snapshot("initech").size).toBe(0);
    expect((await d.indexFor("initech")).size).toBe(0);
    expect(calls.at(-1)).toEqual(["initech"]);
  });

  it("keeps one list for everyone when the query has no $1", async () => {
    const calls: unknown[][] = [];
    const d = new UserDirectory(fakePool(byTenant, calls), "SELECT id, email FROM users", 300, [], () => ["acme", "globex", undefined]);
    expect(d.perTenant).toBe(false);
    await d.start();
    d.stop();
    expect(calls).toEqual([[]]);
    expect(d.snapshot("acme").lookup("bob@example.com")).toBe("3");
    expect(d.snapshot().lookup("bob@example.com")).toBe("3");
    expect(await d.indexFor("globex")).toBe(d.snapshot());
  });
});
