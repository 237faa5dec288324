/**
 * The network policy of tenants' connectors (lib/network-policy.ts) and its connect-time guards
 * (lib/egress.ts) in each source: the refused ranges, the spellings that lead to them, the allow
 * entries, and refusals where the connection is made (PostgreSQL, jsforce's login and the token
 * answer's instance_url, HubSpot's node:http agent, undici fetch).
 */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { fetch as undiciFetch } from "undici";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EgressGuard } from "../../lib/egress.ts";
import { NetworkPolicy, NetworkRefusedError, networkRefusalIn, parseLooseIPv4 } from "../../lib/network-policy.ts";
import { parseConfig } from "../../app/config.ts";
import { HubSpotConnector } from "../../producers/connectors/hubspot/config.ts";
import { HubSpotSource } from "../../producers/connectors/hubspot/source.ts";
import { PostgresConnector } from "../../producers/connectors/postgres/config.ts";
import { admitNetwork, createConnector } from "../../producers/connectors/registry.ts";
import { SalesforceClient } from "../../producers/connectors/salesforce/client.ts";
import { SalesforceConnector } from "../../producers/connectors/salesforce/config.ts";
import type { TokenStore } from "../../producers/oauth/token-store.ts";

const deny = new NetworkPolicy({ allow: [] });
const at = (host: string, policy = deny, lookup?: (h: string) => Promise<Array<{ address: string; family: number }>>) =>
  policy.resolve(host, { connector: "acme.crm", field: "connection.host" }, lookup);

describe("the default policy", () => {
  it.each([
    ["127.0.0.1", "loopback"],
    ["127.255.0.9", "loopback"],
    ["0.0.0.0", "unspecified"],
    ["10.1.2.3", "private"],
    ["172.16.0.1", "private"],
    ["172.31.255.255", "private"],
    ["192.168.1.1", "private"],
    ["169.254.169.254", "link-local"],
    ["100.64.0.1", "carrier-grade NAT"],
    ["224.0.0.1", "multicast"],
    ["240.0.0.1", "reserved"],
    ["255.255.255.255", "reserved"],
    ["192.0.2.1", "reserved"],
    ["198.18.0.1", "reserved"],
    ["::1", "loopback"],
    ["::", "unspecified"],
    ["fc00::1", "private"],
    ["fd12:3456::1", "private"],
    ["fe80::1", "link-local"],
    ["ff02::1", "multicast"],
    ["2001:db8::1", "reserved"],
    ["::ffff:127.0.0.1", "loopback"],
    ["::ffff:7f00:1", "loopback"],
    ["::ffff:a9fe:a9fe", "link-local"],
    ["::127.0.0.1", "loopback"],
    ["::ffff:0:10.0.0.1", "private"],
    ["64:ff9b::a9fe:a9fe", "link-local"],
    ["2002:7f00:1::", "loopback"],
  ])("refuses %s (%s)", (address, kind) => {
    expect(deny.refusal(address)).toContain(kind);
  });

  it.each(["8.8.8.8", "1.1.1.1", "172.32.0.1", "100.128.0.1", "2606:4700::1111", "::ffff:8.8.8.8", "64:ff9b::808:808"])("lets %s through", (address) => {
    expect(deny.refusal(address)).toBeNull();
  });

  it.each([
    ["2130706433", "127.0.0.1"],
    ["0x7f000001", "127.0.0.1"],
    ["0177.0.0.1", "127.0.0.1"],
    ["127.1", "127.0.0.1"],
    ["0x7f.1", "127.0.0.1"],
    ["10.0x10.1", "10.16.0.1"],
  ])("reads %s as %s", (spelled, address) => {
    expect(parseLooseIPv4(spelled)).toBe(address);
  });

  it.each(["2130706433", "0x7f000001", "0177.0.0.1", "127.1", "[::1]", "[::ffff:127.0.0.1]", "localhost", "db.localhost", "LOCALHOST.", "/var/run/postgresql"])(
    "refuses the host %s without asking DNS",
    async (host) => {
      const lookup = async () => {
        throw new Error("DNS asked");
      };
      const e = await at(host, deny, lookup).catch((x: unknown) => x);
      expect(e).toBeInstanceOf(NetworkRefusedError);
      expect((e as Error).message).toMatch(/^connector acme\.crm: connection\.host: .*refused.*tenantNetwork\.allow/);
    },
  );

  it("checks every address a name resolves to, and does not show them", async () => {
    const e = await at("db.example.com", deny, async () => [
      { address: "93.184.216.34", family: 4 },
      { address: "10.0.0.7", family: 4 },
    ]).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(NetworkRefusedError);
    expect((e as Error).message).toContain("db.example.com resolves to a private address");
    expect((e as Error).message).not.toContain("10.0.0.7");
    expect(await at("db.example.com", deny, async () => [{ address: "93.184.216.34", family: 4 }])).toEqual([{ address: "93.184.216.34", family: 4 }]);
  });

  it("a name that resolves to loopback through the real resolver is refused", async () => {
    await expect(at("localhost.", new NetworkPolicy({ allow: ["10.0.0.0/8"] }))).rejects.toBeInstanceOf(NetworkRefusedError);
  });
});

describe("allow entries", () => {
  const policy = new NetworkPolicy({ allow: ["10.20.0.0/16", "127.0.0.1", "fd00:1::/32", "crm.internal.example"] });

  it("open CIDRs and addresses, and their IPv4-mapped forms, nothing around them", () => {
    expect(policy.refusal("10.20.3.4")).toBeNull();
    expect(policy.refusal("::ffff:10.20.3.4")).toBeNull();
    expect(policy.refusal("10.21.0.1")).toContain("private");
    expect(policy.refusal("127.0.0.1")).toBeNull();
    expect(policy.refusal("127.0.0.2")).toContain("loopback");
    expect(policy.refusal("fd00:1::5")).toBeNull();
    expect(policy.refusal("fd00:2::5")).toContain("private");
  });

  it("an allowed spelling is the address it stands for", async () => {
    expect(await at("2130706433", policy)).toEqual([{ address: "127.0.0.1", family: 4 }]);
  });

  it("an exact host name is trusted whatever it resolves to; others are checked", async () => {
    const lookup = async () => [{ address: "10.99.0.1", family: 4 }];
    expect(await at("CRM.internal.example.", policy, lookup)).toEqual([{ address: "10.99.0.1", family: 4 }]);
    await expect(at("other.internal.example", policy, lookup)).rejects.toBeInstanceOf(NetworkRefusedError);
  });

  it("the config validates the entries", () => {
    const base = `kafka: { brokers: ["127.0.0.1:9092"] }\nschemaRegistry: { url: "http://127.0.0.1:8080" }\nsink: { databaseUrl: "postgres://u:p@127.0.0.1/db", defaultCurrency: EUR }\n`;
    expect(parseConfig(base).tenantNetwork).toEqual({ allow: [] });
    expect(parseConfig(`${base}tenantNetwork: { allow: ["10.0.0.0/8", "db.example.com", "::1"] }\n`).tenantNetwork.allow).toHaveLength(3);
    expect(() => parseConfig(`${base}tenantNetwork: { allow: ["10.0.0.0/40"] }\n`)).toThrow(/tenantNetwork\.allow\[0\]: must be a CIDR/);
    expect(() => parseConfig(`${base}tenantNetwork: { allow: ["http://x"] }\n`)).toThrow(/tenantNetwork\.allow\[0\]/);
  });
});

const pgTenant = (connection: Record<string, unknown>, allow: string[] = []) => ({
  ...PostgresConnector.parse({
    id: "crm",
    type: "postgres",
    connection,
    tables: [{ name: "deals", source: "public.deals", idColumn: "id", nameColumn: "title" }],
  }),
  id: "acme.crm",
  tenant: "acme",
  egress: { allow },
});

describe("admission of a tenant's connector (PUT, check)", () => {
  it("names the field, never the URL's password", async () => {
    const e = await admitNetwork(pgTenant({ url: "postgres://u:s3cret-pass@127.0.0.1:5432/db" })).catch((x: unknown) => x);
    expect((e as { problems: string[] }).problems).toEqual([expect.stringMatching(/^connection\.url: 127\.0\.0\.1 is a loopback address, refused/)]);
    expect(String((e as Error).message)).not.toContain("s3cret");
    await expect(admitNetwork(pgTenant({ host: "169.254.169.254", database: "d", user: "u" }))).rejects.toMatchObject({
      problems: [expect.stringMatching(/^connection\.host: 169\.254\.169\.254 is a link-local/)],
    });
    await expect(admitNetwork(pgTenant({ url: "postgres://u:p@db.example.com/db?host=/var/run/postgresql" }))).rejects.toMatchObject({
      problems: [expect.stringMatching(/^connection\.url: a host= query parameter/)],
    });
    await expect(admitNetwork(pgTenant({ cloudSql: { instanceConnectionName: "p:r:i" }, database: "d", user: "u" }))).rejects.toMatchObject({
      problems: [expect.stringMatching(/^connection\.cloudSql: is not available/)],
    });
  });

  it("refuses what would make the pipeline read one of its own files: ssl paths and file query parameters", async () => {
    const e = await admitNetwork(
      pgTenant(
        { url: "postgres://u:p@127.0.0.1:5432/db?sslrootcert=/etc/shadow&sslmode=verify-ca", ssl: { mode: "verify-ca", ca: "/etc/ssl/private/x.pem" } },
        ["127.0.0.1"],
      ),
    ).catch((x: unknown) => x);
    expect((e as { problems: string[] }).problems).toEqual([
      expect.stringMatching(/^connection\.ssl\.ca: must be the PEM text itself/),
      expect.stringMatching(/^connection\.url: the sslrootcert query parameter names a file/),
    ]);
    expect(String((e as Error).message)).not.toMatch(/shadow|private/);
    // Where the connection is made too, before any file is read.
    const c = createConnector(pgTenant({ host: "127.0.0.1", database: "d", user: "u", ssl: { mode: "require", key: "/root/.ssh/id_rsa" } }, ["127.0.0.1"]));
    const refused = await c.check().catch((x: unknown) => x);
    await c.close();
    expect(String((refused as Error).message)).toMatch(/connection\.ssl\.key: must be the PEM text itself/);
    expect(String((refused as Error).message)).not.toContain("id_rsa");
    // PEM text is accepted.
    await admitNetwork(
      pgTenant({ host: "127.0.0.1", database: "d", user: "u", ssl: { mode: "require", ca: "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----" } }, [
        "127.0.0.1",
      ]),
    );
  });

  it("lets an allowed address through, and leaves the config file's connectors alone", async () => {
    await admitNetwork(pgTenant({ url: "postgres://u:p@127.0.0.1:5432/db" }, ["127.0.0.1"]));
    const { egress: _e, ...fileConnector } = pgTenant({ url: "postgres://u:p@127.0.0.1:5432/db" });
    await admitNetwork(fileConnector);
  });
});

describe("refusals where the connection is made", () => {
  it("PostgreSQL: the check fails before connecting, naming the connector and field", async () => {
    const c = createConnector(pgTenant({ host: "0x7f000001", database: "d", user: "u", password: "pw" }));
    const e = await c.check().catch((x: unknown) => x);
    await c.close();
    expect(e).toBeInstanceOf(NetworkRefusedError);
    expect((e as NetworkRefusedError).retriable).toBe(false);
    expect((e as Error).message).toMatch(/^connector acme\.crm: connection\.host: 0x7f000001 is a loopback address/);
  });

  let server: Server;
  let port = 0;
  let instanceUrl = "";
  let tokenCalls = 0;
  beforeAll(async () => {
    // A login server that answers every token request with the instance_url of the test.
    server = createServer((req, res) => {
      req.resume();
      req.on("end", () => {
        tokenCalls++;
        res.writeHead(200, { "content-type": "application/json" });
        res.end(JSON.stringify({ access_token: "at", instance_url: instanceUrl, id: "https://x/id/00D/005" }));
      });
    });
    await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
    port = (server.address() as AddressInfo).port;
  });
  afterAll(() => new Promise<void>((r) => server.close(() => r())));

  const noStore = {
    load: async () => null,
    withLock: async <T>(_id: string, fn: () => Promise<T>) => fn(),
    save: async () => {},
  } as unknown as TokenStore;
  const sfTenant = (allow: string[]) => ({
    ...SalesforceConnector.parse({
      id: "sf",
      type: "salesforce",
      loginUrl: `http://127.0.0.1:${port}`,
      clientId: "cid",
      clientSecret: "secret",
      refreshToken: "rt",
      tables: [{ name: "o", object: "Opportunity", fields: { Amount: "amount" } }],
    }),
    id: "acme.sf",
    tenant: "acme",
    egress: { allow },
  });

  it("Salesforce: the login URL is refused at connect (jsforce's requests go through the guard)", async () => {
    const before = tokenCalls;
    const client = new SalesforceClient(sfTenant([]), { tokenStore: noStore });
    const e = await client.connect().catch((x: unknown) => x);
    await client.close();
    expect(e).toBeInstanceOf(NetworkRefusedError);
    expect((e as Error).message).toMatch(/^connector acme\.sf: loginUrl: 127\.0\.0\.1 is a loopback address, refused/);
    expect(tokenCalls).toBe(before);
  });

  it.each(["http://169.254.169.254", "http://127.0.0.2:9", "http://[::ffff:10.0.0.1]"])(
    "Salesforce: an allowed login server whose token answer names %s fails the run, not retried",
    async (url) => {
      instanceUrl = url;
      const before = tokenCalls;
      const client = new SalesforceClient(sfTenant(["127.0.0.1"]), { tokenStore: noStore });
      const e = await client.connect().catch((x: unknown) => x);
      await client.close();
      expect(tokenCalls).toBe(before + 1);
      expect(e).toBeInstanceOf(NetworkRefusedError);
      expect((e as NetworkRefusedError).retriable).toBe(false);
      expect((e as Error).message).toMatch(/^connector acme\.sf: instance_url \(the address Salesforce's token answer gives\): .* refused/);
    },
  );

  it("Salesforce: the same login server serves the config file's connector (no guard)", async () => {
    instanceUrl = "http://127.0.0.2:9";
    const { egress: _e, ...fileConnector } = sfTenant([]);
    const client = new SalesforceClient(fileConnector, { tokenStore: noStore });
    await client.connect();
    await client.close();
  });

  it("HubSpot: the token request through the node:http agent is refused", async () => {
    const config = {
      ...HubSpotConnector.parse({
        id: "hs",
        type: "hubspot",
        baseUrl: `http://localhost:${port}`,
        clientId: "cid",
        clientSecret: "secret",
        refreshToken: "rt",
        tables: [{ name: "deals", object: "deals" }],
      }),
      id: "acme.hs",
      tenant: "acme",
      egress: { allow: [] },
    };
    const before = tokenCalls;
    const source = new HubSpotSource(config, { tokenStore: async () => null });
    const e = await source.api.authenticate().catch((x: unknown) => x);
    await source.close();
    expect(networkRefusalIn(e)).toBeInstanceOf(NetworkRefusedError);
    expect((e as Error).message).toMatch(/^connector acme\.hs: baseUrl: localhost is a loopback address, refused/);
    expect(tokenCalls).toBe(before);
  });

  it("undici: a redirect to a refused address is refused at its connection", async () => {
    const redirector = createServer((_req, res) => {
      res.writeHead(302, { location: "http://127.0.0.2:8081/latest/meta-data" });
      res.end();
    });
    await new Promise<void>((r) => redirector.listen(0, "127.0.0.1", () => r()));
    const guard = new EgressGuard(new NetworkPolicy({ allow: ["127.0.0.1"] }), "acme.sf");
    try {
      const url = `http://127.0.0.1:${(redirector.address() as AddressInfo).port}/`;
      const e = await undiciFetch(url, { dispatcher: guard.dispatcher() }).catch((x: unknown) => x);
      expect(networkRefusalIn(e)?.message, String(e)).toMatch(/127\.0\.0\.2 is a loopback address/);
    } finally {
      await guard.close();
      await new Promise<void>((r) => redirector.close(() => r()));
    }
  });
});
