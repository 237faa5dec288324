/**
 * Errors are classified by type where they happen, never by their message text: the schema
 * registry's decode (unreachable registry → retriable; bad bytes → a MappingError the mapper
 * dead-letters), the HubSpot client's retry policies (run on a fake clock), Salesforce's answers
 * by status, and the retriable decision of every pipeline error class.
 */
import { randomBytes } from "node:crypto";
import avro from "avsc";
import { describe, expect, it } from "vitest";
import {
  ConfigError,
  EtlError,
  MappingError,
  RegistryUnavailableError,
  RunFailedError,
  SchemaIncompatibleError,
  SourceRequestError,
  SourceUnavailableError,
} from "../../lib/errors.ts";
import { Registry } from "../../lib/registry.ts";
import { isRetriable } from "../../lib/retry.ts";
import { ConversionError } from "../../consumers/mapping/convert.ts";
import { SinkSchemaError } from "../../consumers/sink/table-evolution.ts";
import { WhereError } from "../../producers/connectors/postgres/where.ts";
import { PrivilegedRoleError, ReadTimeoutError } from "../../producers/connectors/postgres/guards.ts";
import { HubSpotApi } from "../../producers/connectors/hubspot/api.ts";
import { RETRY } from "../../producers/connectors/hubspot/api-core.ts";
import {
  HubSpotDailyLimitError,
  HubSpotRateLimitError,
  HubSpotRequestError,
  HubSpotUnauthorizedError,
  HubSpotUnavailableError,
  TimeoutError,
} from "../../producers/connectors/hubspot/errors.ts";
import { SalesforceConnector } from "../../producers/connectors/salesforce/config.ts";
import { SalesforceClient } from "../../producers/connectors/salesforce/client.ts";
import { SalesforceApiError, SalesforceUnavailableError } from "../../producers/connectors/salesforce/errors.ts";
import { TokenStore } from "../../producers/oauth/token-store.ts";

const RECORD = avro.Type.forSchema({
  type: "record",
  name: "R",
  fields: [
    { name: "a", type: "string" },
    { name: "n", type: "long" },
  ],
});

/** A Confluent frame: magic byte 0, the schema id, the Avro body. */
function framed(id: number, body: Buffer): Buffer {
  const head = Buffer.alloc(5);
  head.writeInt32BE(id, 1);
  return Buffer.concat([head, body]);
}

/** A Registry whose client answers the schema lookup with `getSchema`. */
function registryWith(getSchema: (id: number) => Promise<unknown>): Registry {
  const r = new Registry({ url: "http://127.0.0.1:1" });
  Object.defineProperty(r, "client", { value: { getSchema } });
  return r;
}

async function caught(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (e) {
    return e;
  }
  throw new Error("expected a rejection");
}

describe("registry decode: classified where it happens", () => {
  it("decodes a framed message with its writer schema", async () => {
    const r = registryWith(async () => RECORD);
    expect(await r.decode(framed(7, RECORD.toBuffer({ a: "x", n: 3 })))).toEqual({ a: "x", n: 3 });
  });

  it("bytes that are not a frame, or do not match the writer schema, are a MappingError of kind decode (not retriable)", async () => {
    const r = registryWith(async () => RECORD);
    for (const bytes of [
      Buffer.from('{"json":true}'),
      Buffer.from([0, 0]),
      framed(7, RECORD.toBuffer({ a: "x", n: 3 }).subarray(0, 2)),
      framed(7, Buffer.from([0xff, 0xff, 0xff])),
    ]) {
      const e = await caught(r.decode(bytes));
      expect(e).toBeInstanceOf(MappingError);
      expect((e as MappingError).kind).toBe("decode");
      expect(isRetriable(e)).toBe(false);
    }
  });

  it("a schema lookup the registry does not answer is RegistryUnavailableError (retriable), whatever the text says", async () => {
    for (const status of [400, 408, 500, 503, 404]) {
      const r = registryWith(async () => {
        throw Object.assign(new Error("magic byte truncated buffer"), { name: "ResponseError", status });
      });
      const e = await caught(r.decode(framed(7, RECORD.toBuffer({ a: "x", n: 3 }))));
      expect(e, String(status)).toBeInstanceOf(RegistryUnavailableError);
      expect(isRetriable(e)).toBe(true);
    }
  });

  it("refused registry credentials are a ConfigError", async () => {
    const r = registryWith(async () => {
      throw Object.assign(new Error("unauthorized"), { status: 401 });
    });
    expect(await caught(r.decode(framed(7, RECORD.toBuffer({ a: "x", n: 3 }))))).toBeInstanceOf(ConfigError);
  });

  it("with the real client, a registry that refuses connections is retriable", async () => {
    const r = new Registry({ url: "http://127.0.0.1:1" });
    const e = await caught(r.decode(framed(7, RECORD.toBuffer({ a: "x", n: 3 }))));
    expect(e).toBeInstanceOf(RegistryUnavailableError);
    expect(isRetriable(e)).toBe(true);
  });
});

describe("every pipeline error is an EtlError whose class decides retriable", () => {
  it.each([
    ["WhereError", new WhereError("x"), ConfigError, false],
    ["PrivilegedRoleError", new PrivilegedRoleError("x"), ConfigError, false],
    ["ReadTimeoutError", new ReadTimeoutError("x"), ConfigError, false],
    ["ConversionError", new ConversionError("invalid_number", "x"), MappingError, false],
    ["SinkSchemaError", new SinkSchemaError("x"), SchemaIncompatibleError, false],
    ["TimeoutError", new TimeoutError("x"), SourceUnavailableError, true],
    ["HubSpotUnauthorizedError", new HubSpotUnauthorizedError("x", 1), ConfigError, false],
    ["HubSpotRateLimitError", new HubSpotRateLimitError("x", "SECONDLY", 1000), SourceUnavailableError, true],
    ["HubSpotDailyLimitError", new HubSpotDailyLimitError("x"), SourceUnavailableError, true],
    ["HubSpotUnavailableError", new HubSpotUnavailableError("x"), SourceUnavailableError, true],
    ["HubSpotRequestError", new HubSpotRequestError("x", 400, undefined), ConfigError, false],
    ["SalesforceApiError", new SalesforceApiError(400, "MALFORMED_QUERY", "x"), SourceRequestError, false],
    ["SalesforceUnavailableError", new SalesforceUnavailableError(503, "SERVER_UNAVAILABLE", "x"), SourceUnavailableError, true],
    ["RunFailedError", new RunFailedError("x"), EtlError, false],
  ] as const)("%s", (name, e, base, retriable) => {
    expect(e).toBeInstanceOf(EtlError);
    expect(e).toBeInstanceOf(base);
    expect(e.name).toBe(name);
    expect(e.retriable).toBe(retriable);
  });

  it("a conversion error keeps its issue code as its kind", () => {
    expect(new ConversionError("no_zone", "x").kind).toBe("no_zone");
    expect(new ConversionError("no_zone", "x").code).toBe("MAPPING");
  });
});

describe("Salesforce answers classified by status", () => {
  const client = new SalesforceClient(
    SalesforceConnector.parse({ id: "sf", type: "salesforce", clientId: "c", clientSecret: "s", tables: [{ name: "opps", object: "Opportunity" }] }),
    { tokenStore: new TokenStore({ dir: "/nonexistent", key: randomBytes(32).toString("base64") }) },
  );
  const body = (code: string) => JSON.stringify([{ errorCode: code, message: "m" }]);

  it("5xx and no answer are SalesforceUnavailableError (retriable); other answers SalesforceApiError (not)", () => {
    const down = client.translate(new Error("x"), { statusCode: 503, headers: {}, body: body("SERVER_UNAVAILABLE") });
    expect(down).toBeInstanceOf(SalesforceUnavailableError);
    expect(isRetriable(down)).toBe(true);
    const refused = client.translate(new Error("x"), { statusCode: 400, headers: {}, body: body("MALFORMED_QUERY") });
    expect(refused).toBeInstanceOf(SalesforceApiError);
    expect((refused as SalesforceApiError).errorCode).toBe("MALFORMED_QUERY");
    expect(isRetriable(refused)).toBe(false);
    expect(isRetriable(client.translate(Object.assign(new Error("connect refused"), { code: "ECONNREFUSED" })))).toBe(true);
  });
});

describe("HubSpot call: retry policies by class, on the client's clock", () => {
  function fakeApi(opts: { maxTransientRetries?: number; maxRateLimitRetries?: number } = {}) {
    let t = 1_000_000;
    const waits: number[] = [];
    const clock = {
      now: () => t,
      sleep: async (ms: number) => {
        if (ms > 0) waits.push(ms);
        t += Math.max(0, ms);
      },
    };
    const api = new HubSpotApi({
      connectorId: "hs",
      baseUrl: `http://fake-${Math.random()}`,
      clientId: "c",
      clientSecret: "s",
      refreshToken: "r",
      clock,
      rateLimits: { perTenSeconds: 1000, searchPerSecond: 100 },
      ...opts,
    });
    let generation = 1;
    const renewed: number[] = [];
    // The token refresh is the simulator tests' business: here a session is always at hand.
    Object.assign(api, {
      getSession: async () => ({ client: {}, token: "t", expiresAt: Infinity, generation }),
      renew: async (stale: number) => {
        renewed.push(stale);
        generation++;
      },
    });
    return { api, waits, renewed };
  }
  const answer = (code: number, body: unknown = {}, headers: Record<string, string> = {}) => Object.assign(new Error(`HTTP ${code}`), { code, body, headers });
  const scripted = (script: unknown[]) => {
    let i = 0;
    return async () => {
      const next = script[i++];
      if (next instanceof Error) throw next;
      return { data: "ok", headers: {} };
    };
  };

  it("waits Retry-After on a 429 and backoff on a 5xx, each counted on its own", async () => {
    const { api, waits } = fakeApi();
    const out = await api.call(
      "standard",
      "GET x",
      scripted([
        answer(429, { policyName: "SECONDLY" }, { "Retry-After": "2" }),
        answer(502),
        answer(429, { policyName: "TEN_SECONDLY_ROLLING" }, { "Retry-After": "3" }),
      ]),
    );
    expect(out).toBe("ok");
    expect(waits[0]).toBe(2000);
    expect(waits[1]).toBeGreaterThanOrEqual(RETRY.transient.initialMs / 2);
    expect(waits[1]).toBeLessThanOrEqual(RETRY.transient.initialMs);
    expect(waits[2]).toBe(3000);
    expect(api.stats).toMatchObject({ rateLimited: 2, retries: 3, requests: 4 });
  });

  it("a DAILY 429 with a far reset fails at once; 429s past the count fail with the count", async () => {
    const daily = fakeApi();
    const e = await caught(daily.api.call("standard", "GET x", scripted([answer(429, { policyName: "DAILY" }, { "Retry-After": "3600" })])));
    expect(e).toBeInstanceOf(HubSpotDailyLimitError);
    expect(daily.waits).toEqual([]);
    const limited = fakeApi({ maxRateLimitRetries: 2 });
    const r429 = answer(429, { policyName: "TEN_SECONDLY_ROLLING" }, { "Retry-After": "1" });
    await expect(limited.api.call("standard", "GET x", scripted([r429, r429, r429, r429]))).rejects.toThrow(
      /still rate limited by HubSpot \(TEN_SECONDLY_ROLLING\) after 2 retries/,
    );
  });

  it("5xx up to maxTransientRetries, then HubSpotUnavailableError; a 400 is not retried", async () => {
    const { api } = fakeApi({ maxTransientRetries: 2 });
    const e = await caught(api.call("standard", "GET x", scripted([answer(503), answer(503), answer(503), answer(503)])));
    expect(e).toBeInstanceOf(HubSpotUnavailableError);
    expect((e as Error).message).toMatch(/GET x failed 3 times/);
    const bad = fakeApi();
    expect(await caught(bad.api.call("standard", "GET x", scripted([answer(400, { message: "no" })])))).toBeInstanceOf(HubSpotRequestError);
    expect(bad.api.stats.requests).toBe(1);
  });

  it("a 401 refreshes the token and retries at most twice, then is a ConfigError", async () => {
    const ok = fakeApi();
    expect(await ok.api.call("standard", "GET x", scripted([answer(401)]))).toBe("ok");
    expect(ok.renewed).toEqual([1]);
    const never = fakeApi();
    const e = await caught(never.api.call("standard", "GET x", scripted([answer(401), answer(401), answer(401), answer(401)])));
    expect(e).toBeInstanceOf(HubSpotUnauthorizedError);
    expect(e).toBeInstanceOf(ConfigError);
    expect(never.renewed).toEqual([1, 2]);
    expect(never.api.stats.retries).toBe(0);
  });
});
