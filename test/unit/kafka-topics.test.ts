/**
 * The replication policy of the topics the pipeline creates (lib/kafka.ts topicSpecs): replication
 * factor and min.insync.replicas from the `kafka` section, checked without a broker.
 */
import { describe, expect, it } from "vitest";
import { parseConfig } from "../../app/config.ts";
import { ConfigError } from "../../lib/errors.ts";
import { minInsyncReplicas, topicSpecs } from "../../lib/kafka.ts";

const config = (kafka: string) =>
  parseConfig(
    `
kafka: { brokers: ["127.0.0.1:9092", "127.0.0.1:9094", "127.0.0.1:9096"]${kafka} }
schemaRegistry: { url: "http://127.0.0.1:8080/apis/ccompat/v7" }
sink: { databaseUrl: "postgres://postgres@127.0.0.1:5432/qobra", defaultCurrency: EUR }
connectors:
  - id: crm
    type: postgres
    connection: { url: "postgres://reader@127.0.0.1:5432/crm" }
    tables: [{ name: deals, source: public.deals, idColumn: id, nameColumn: title }]
`,
    "x",
    {},
  );

const minIsrOf = (kafka: string) => topicSpecs(config(kafka)).map((t) => t.configEntries?.find((e) => e.name === "min.insync.replicas")?.value);

describe("topic replication policy", () => {
  it("leaves min.insync.replicas to the broker at the laptop default (one replica)", () => {
    const c = config("");
    expect(c.kafka.replicationFactor).toBe(1);
    expect(minInsyncReplicas(c)).toBeUndefined();
    expect(new Set(minIsrOf(""))).toEqual(new Set([undefined]));
  });

  it("sets min.insync.replicas=2 on every pipeline topic from replicationFactor 3", () => {
    const specs = topicSpecs(config(", replicationFactor: 3"));
    expect(specs.map((t) => t.topic)).toEqual(expect.arrayContaining(["qobra.raw.crm", "qobra.mapped.crm.deals", "qobra.sync.state"]));
    for (const t of specs) {
      expect(t.replicationFactor).toBe(3);
      expect(t.configEntries).toContainEqual({ name: "min.insync.replicas", value: "2" });
    }
    // The policies of the compacted topics are kept beside it.
    expect(specs.find((t) => t.topic === "qobra.raw.crm")?.configEntries).toContainEqual({ name: "cleanup.policy", value: "compact" });
  });

  it("takes an explicit kafka.minInsyncReplicas, and refuses one above the replication factor", () => {
    expect(new Set(minIsrOf(", replicationFactor: 3, minInsyncReplicas: 3"))).toEqual(new Set(["3"]));
    expect(new Set(minIsrOf(", replicationFactor: 2, minInsyncReplicas: 1"))).toEqual(new Set(["1"]));
    expect(() => config(", replicationFactor: 2, minInsyncReplicas: 3")).toThrow(ConfigError);
    expect(() => config(", replicationFactor: 2, minInsyncReplicas: 3")).toThrow(/minInsyncReplicas.*at most replicationFactor \(2\)/s);
  });
});
