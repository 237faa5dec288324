/**
 * The sink keeps the newest version of each key in a batch: by offset for the mapper alone, by
 * version (header qobra.raw.offset) when a replay wrote an older version after a newer one.
 */
import type { KafkaMessage } from "kafkajs";
import { describe, expect, it } from "vitest";
import { newestPerKey } from "../../consumers/sink/run.ts";

const msg = (offset: number, key: string, rawOffset?: number, value: string | null = `v${offset}`): KafkaMessage =>
  ({
    offset: String(offset),
    key: Buffer.from(key),
    value: value === null ? null : Buffer.from(value),
    headers: rawOffset === undefined ? {} : { "qobra.raw.offset": Buffer.from(String(rawOffset)) },
    timestamp: "0",
    attributes: 0,
  }) as KafkaMessage;

const picked = (messages: KafkaMessage[]) => Object.fromEntries([...newestPerKey(messages)].map(([k, m]) => [k, Number(m.offset)]));

describe("newestPerKey", () => {
  it("keeps the last message of a key when versions follow offsets", () => {
    expect(picked([msg(0, "a", 10), msg(1, "b", 11), msg(2, "a", 12)])).toEqual({ a: 2, b: 1 });
  });

  it("keeps a newer version written before an older one (a replay after the mapper)", () => {
    expect(picked([msg(0, "a", 500), msg(1, "a", 20), msg(2, "b", 21)])).toEqual({ a: 0, b: 2 });
  });

  it("re-applies an equal version, and falls back to offsets without the header", () => {
    expect(picked([msg(0, "a", 30), msg(1, "a", 30)])).toEqual({ a: 1 });
    expect(picked([msg(0, "a"), msg(1, "a", 5), msg(2, "b", 9), msg(3, "b")])).toEqual({ a: 1, b: 3 });
  });

  it("passes over tombstones", () => {
    expect(picked([msg(0, "a", 1), msg(1, "a", 2, null)])).toEqual({ a: 0 });
  });
});
