/** Salesforce connector configuration, schedules, type rules, the where validation and the token store (no network). */
import { randomBytes } from "node:crypto";
import { mkdtemp, readFile, readdir, rm, stat } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseConfig } from "../../app/config.ts";
import type { SalesforceConnector } from "../../producers/connectors/salesforce/config.ts";
import { ConfigError } from "../../lib/errors.ts";
import { cursorCondition, normalizeWhere } from "../../producers/connectors/salesforce/soql.ts";
import { defaultQobraType, incompatibility, rawValue, JsonNumber } from "../../producers/connectors/salesforce/types.ts";
import { TokenStore, singleFlight } from "../../producers/oauth/token-store.ts";
import { cronRules } from "../../scheduler/scheduler.ts";

const doc = (connector: string) => `
kafka: { brokers: ["127.0.0.1:9092"] }
schemaRegistry: { url: "http://127.0.0.1:8080/apis/ccompat/v7" }
sink: { databaseUrl: "postgres://postgres@127.0.0.1:5432/qobra", defaultCurrency: EUR }
connectors:
${connector}`;

const issueExample = `
  - id: sf
    type: salesforce
    loginUrl: "https://login.salesforce.com"
    clientId: "3MVG9..."
    clientSecret: "\${env:SF_CLIENT_SECRET}"
    refreshToken: "\${env:SF_REFRESH_TOKEN}"
    schedule: { fullAt: "02:00", incrementalEveryHours: 2, timezone: "Europe/Paris" }
    tables:
      - name: opportunities
        object: Opportunity
        where: "StageName = 'Closed Won'"
        fields: { Amount: amount, CloseDate: date, OwnerId: user, AccountId: object }`;

const parse = (text: string, env: NodeJS.ProcessEnv = { SF_CLIENT_SECRET: "s", SF_REFRESH_TOKEN: "r" }) =>
  parseConfig(doc(text), "x", env).connectors[0] as SalesforceConnector;

function configError(text: string): string {
  try {
    parse(text);
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    return (e as Error).message;
  }
  throw new Error("expected a ConfigError");
}

describe("Salesforce configuration", () => {
  it("parses the issue's example with defaults; amounts default to the record's CurrencyIsoCode", () => {
    const c = parse(issueExample);
    expect(c).toMatchObject({
      type: "salesforce",
      apiVersion: "62.0",
      lookbackSeconds: 600,
      bulkThreshold: 10_000,
      clientSecret: "s",
      refreshToken: "r",
      maxApiUsagePercent: 100,
    });
    expect(c.tables[0]!.fields).toEqual({
      Amount: { type: "amount", currencyColumn: "CurrencyIsoCode" },
      CloseDate: { type: "date" },
      OwnerId: { type: "user" },
      AccountId: { type: "object" },
    });
    expect(c.tables[0]!.api).toBe("auto");
    // refreshToken is optional (the stored one is used), fields too (every field)
    const bare = parse(issueExample.replace(/\n {4}refreshToken:.*/, "").replace(/\n {8}fields:.*/, ""));
    expect(bare.refreshToken).toBeUndefined();
    expect(bare.tables[0]!.fields).toEqual({});
  });

  it("rejects what it cannot use, by path", () => {
    expect(configError(issueExample.replace("object: Opportunity", 'object: "Opportunity; DROP"'))).toMatch(
      /tables\[0\]\.object: must be a Salesforce API name/,
    );
    expect(configError(issueExample.replace('fullAt: "02:00"', 'fullAt: "2am"'))).toMatch(/schedule\.fullAt: must be a local time HH:MM/);
    expect(configError(issueExample.replace("Europe/Paris", "Mars/Olympus"))).toMatch(/schedule\.timezone/);
    expect(configError(issueExample.replace('clientId: "3MVG9..."', ""))).toMatch(/clientId: is required/);
    expect(configError(`${issueExample}\n    apiVersion: "40.0"`)).toMatch(/apiVersion: must be 47\.0 or later/);
    expect(configError(`${issueExample}\n    lookback: 10`)).toMatch(/unknown key lookback/);
  });

  it("schedules the nightly full at fullAt and incrementals every N hours from it, in the zone", () => {
    const c = parse(issueExample);
    expect(cronRules(c)).toEqual([
      { rule: "0 2 * * *", tz: "Europe/Paris", kind: "full" },
      { rule: "0 0,4,6,8,10,12,14,16,18,20,22 * * *", tz: "Europe/Paris", kind: "incremental" },
    ]);
    const odd = parse(issueExample.replace('fullAt: "02:00", incrementalEveryHours: 2', 'fullAt: "23:30", incrementalEveryHours: 5'));
    expect(cronRules(odd)).toEqual([
      { rule: "30 23 * * *", tz: "Europe/Paris", kind: "full" },
      { rule: "30 4,9,14,19 * * *", tz: "Europe/Paris", kind: "incremental" },
    ]);
    expect(cronRules(parse(issueExample.replace("incrementalEveryHours: 2", "incrementalEveryHours: 24")))).toHaveLength(1);
    // Without a schedule block: the source's default, a full at 02:00 UTC and incrementals every 2 hours.
    expect(cronRules(parse(issueExample.replace(/\n {4}schedule:.*/, "")))).toEqual([
      { rule: "0 2 * * *", tz: "UTC", kind: "full" },
      { rule: "0 0,4,6,8,10,12,14,16,18,20,22 * * *", tz: "UTC", kind: "incremental" },
    ]);
  });
});

describe("Salesforce types and values", () => {
  const f = (type: string, extra: Record<string, unknown> = {}) => ({ name: "F", type, ...extra });
  it("maps Salesforce types to the Qobra types they allow, and refuses the others with the reason", () => {
    expect(defaultQobraType(f("currency"))).toBe("amount");
    expect(defaultQobraType(f("percent"))).toBe("percentage");
    expect(defaultQobraType(f("double"))).toBe("number");
    expect(defaultQobraType(f("datetime"))).toBe("date");
    expect(defaultQobraType(f("reference", { referenceTo: ["User"] }))).toBe("user");
    expect(defaultQobraType(f("reference", { referenceTo: ["Group", "User"] }))).toBe("user");
    expect(defaultQobraType(f("reference", { referenceTo: ["Contact", "Lead"] }))).toBe("object");
    expect(defaultQobraType(f("address"))).toBeNull();
    expect(incompatibility(f("textarea"), "multipicklist")).toBeNull();
    expect(incompatibility(f("boolean"), "amount")).toMatch(/F is a Salesforce boolean field and cannot be a Qobra amount; allowed: bool, string/);
    expect(incompatibility(f("base64"), "string")).toMatch(/binary content/);
    expect(incompatibility(f("reference", { referenceTo: ["Account"] }), "user")).toMatch(/references Account, not User/);
  });

  it("gives raw values in the mapper's text forms, from REST JSON and from Bulk CSV alike", () => {
    expect(rawValue(f("currency"), new JsonNumber("1.5E7"), false)).toBe("15000000");
    expect(rawValue(f("currency"), "1.5E7", true)).toBe("15000000");
    expect(rawValue(f("int"), new JsonNumber("9007199254740993"), false)).toBe("9007199254740993");
    expect(rawValue(f("datetime"), "2024-01-02T03:04:05.000+0000", false)).toBe("2024-01-02T03:04:05.000Z");
    expect(rawValue(f("datetime"), "2024-01-02T03:04:05.000Z", true)).toBe("2024-01-02T03:04:05.000Z");
    expect(rawValue(f("boolean"), "false", true)).toBe(false);
    expect(rawValue(f("multipicklist"), "a;b; c", true)).toEqual(["a", "b", "c"]);
    expect(rawValue(f("string"), "", true)).toBeNull();
    expect(rawValue(f("date"), "2024-02-29", false)).toBe("2024-02-29");
  });

  it("validates and re-composes the custom where; refuses what is not one condition", () => {
    expect(normalizeWhere("Opportunity", "StageName = 'Closed Won' AND (Amount > 1000 OR Type IN ('a','b'))")).toBe(
      "StageName = 'Closed Won' AND (Amount > 1000 OR Type IN ('a', 'b'))",
    );
    expect(normalizeWhere("Opportunity", "CloseDate = LAST_N_DAYS:30")).toBe("CloseDate = LAST_N_DAYS:30");
    for (const [where, why] of [
      ["StageName = 'x') OR (Id != null", /not a valid SOQL condition/],
      ["StageName = 'x' ORDER BY Name", /without ORDER BY/],
      ["StageName = 'x' LIMIT 5", /without LIMIT/],
      ["StageName = ", /not a valid SOQL condition/],
      ["1 = 1", /not a valid SOQL condition/],
    ] as const) {
      expect(() => normalizeWhere("Opportunity", where), where).toThrow(why);
    }
  });

  it("builds the incremental bound: inclusive with a lookback, (timestamp, Id) tie-break without", () => {
    const s = { v: 1 as const, field: "SystemModstamp", ts: "2025-06-01T12:00:00.000Z", id: "006Gn00000002bJIAQ", sig: "x" };
    expect(cursorCondition("SystemModstamp", s, 600)).toBe("SystemModstamp >= 2025-06-01T11:50:00Z");
    expect(cursorCondition("SystemModstamp", s, 0)).toBe(
      "(SystemModstamp > 2025-06-01T12:00:00Z OR (SystemModstamp = 2025-06-01T12:00:00Z AND Id > '006Gn00000002bJIAQ'))",
    );
    expect(cursorCondition("SystemModstamp", { ...s, ts: "2025-06-01T12:00:00.250Z" }, 0)).toBe("SystemModstamp >= 2025-06-01T12:00:00Z");
    expect(cursorCondition("LastModifiedDate", { ...s, id: "x' OR Name != '" }, 0)).toBe("LastModifiedDate >= 2025-06-01T12:00:00Z");
  });
});

const KEY1 = randomBytes(32).toString("base64");

describe("OAuth token store", () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "qobra-token-store-"));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("stores tokens encrypted, atomically, private to the user; loads them back", async () => {
    const store = new TokenStore({ dir, key: KEY1 });
    expect(await store.load("hs")).toBeNull();
    await store.save("hs", { refreshToken: "secret-refresh-token", instanceUrl: "https://x.my.salesforce.com", portalId: 42 });
    const raw = await readFile(join(dir, "hs.json"), "utf8");
    expect(raw).not.toContain("secret-refresh-token");
    expect(raw).not.toContain("my.salesforce.com");
    expect((await stat(join(dir, "hs.json"))).mode & 0o777).toBe(0o600);
    expect(await store.load("hs")).toMatchObject({ refreshToken: "secret-refresh-token", instanceUrl: "https://x.my.salesforce.com", portalId: 42 });
    await store.save("hs", { refreshToken: "next" });
    expect((await store.load("hs"))!.refreshToken).toBe("next");
    expect((await readdir(dir)).filter((f) => f.endsWith(".tmp"))).toEqual([]);
    await expect(new TokenStore({ dir, key: randomBytes(32).toString("base64") }).load("hs")).rejects.toThrow(/cannot be read.*QOBRA_SYNC_TOKEN_KEY/);
    await expect(store.load("../etc/passwd")).rejects.toThrow(/invalid connector id/);
  });

  it("refuses to open without a key (nothing is generated beside the tokens; more rules in test/unit/token-store.test.ts)", async () => {
    const d = join(dir, "nokey");
    const saved = process.env.QOBRA_SYNC_TOKEN_KEY;
    delete process.env.QOBRA_SYNC_TOKEN_KEY;
    try {
      expect(() => new TokenStore({ dir: d })).toThrow(/QOBRA_SYNC_TOKEN_KEY is not set/);
      await expect(stat(d)).rejects.toThrow(/ENOENT/);
    } finally {
      if (saved !== undefined) process.env.QOBRA_SYNC_TOKEN_KEY = saved;
    }
  });

  it("serialises work on one credential: a lock across processes, single flight within one", async () => {
    const store = new TokenStore({ dir, key: KEY1 });
    const order: string[] = [];
    const job = (name: string) =>
      store.withLock("sf", async () => {
        order.push(`${name}+`);
        await new Promise((r) => setTimeout(r, 30));
        order.push(`${name}-`);
      });
    await Promise.all([job("a"), job("b")]);
    expect(order.join(" ")).toMatch(/^(a\+ a- b\+ b-|b\+ b- a\+ a-)$/);
    let calls = 0;
    const fn = async () => {
      calls++;
      await new Promise((r) => setTimeout(r, 20));
      return calls;
    };
    const [x, y] = await Promise.all([singleFlight("k", fn), singleFlight("k", fn)]);
    expect([x, y, calls]).toEqual([1, 1, 1]);
  });
});
