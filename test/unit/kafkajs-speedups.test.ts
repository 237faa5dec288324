/**
 * lib/kafkajs-speedups.ts against the kafkajs files it replaces: the same groups in the same order
 * and the same CRC-32C, on random input.
 */
import { createRequire } from "node:module";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { crc32c, encodeRecord, groupMessagesPerPartition } from "../../lib/kafkajs-speedups.ts";

const require = createRequire(import.meta.url);
const originalGroup = require("kafkajs/src/producer/groupMessagesPerPartition.js") as typeof groupMessagesPerPartition;
const originalCrc = require("kafkajs/src/protocol/recordBatch/crc32C/index.js") as (b: Buffer) => number;
const originalRecord = require("kafkajs/src/protocol/recordBatch/record/v0/index.js") as (args: unknown) => { buffer: Buffer };

describe("kafkajs speed-ups", () => {
  it("group messages by partition exactly as kafkajs does", () => {
    fc.assert(
      fc.property(fc.array(fc.record({ key: fc.string(), n: fc.nat(7) }), { maxLength: 300 }), fc.integer({ min: 0, max: 4 }), (messages, partitions) => {
        const args = {
          topic: "t",
          partitionMetadata: Array.from({ length: partitions }, (_, i) => ({ partitionId: i })),
          messages,
          partitioner: ({ message }: { message: { n: number } }) => message.n % Math.max(1, partitions),
        };
        const ours = groupMessagesPerPartition(args);
        const theirs = originalGroup(args);
        expect(ours).toEqual(theirs);
        expect(Object.keys(ours)).toEqual(Object.keys(theirs));
      }),
    );
  });

  it("write each record as kafkajs writes it", () => {
    const bytes = fc.oneof(
      fc.constant(null),
      fc.string({ maxLength: 300 }),
      fc.uint8Array({ maxLength: 300 }).map((a) => Buffer.from(a)),
      fc.integer(),
    );
    fc.assert(
      fc.property(
        fc.record({
          offsetDelta: fc.oneof(fc.nat(100_000), fc.integer({ min: -5, max: 2 ** 31 - 1 })),
          timestampDelta: fc.oneof(fc.constant(0), fc.integer(), fc.integer({ min: -(2 ** 52), max: 2 ** 52 })),
          key: bytes,
          value: bytes,
          headers: fc.dictionary(fc.string({ maxLength: 20 }), fc.oneof(bytes, fc.array(bytes, { maxLength: 3 })), { maxKeys: 4 }),
        }),
        (args) => {
          const a = args as Parameters<typeof encodeRecord>[0];
          let theirs: Buffer | undefined;
          try {
            theirs = originalRecord(a).buffer;
          } catch {
            expect(() => encodeRecord(a)).toThrow(); // what kafkajs refuses (a header value that is not bytes), refused too
            return;
          }
          expect(encodeRecord(a).buffer.equals(theirs)).toBe(true);
        },
      ),
      { numRuns: 1000 },
    );
    const plain = { offsetDelta: 3, key: '["deals","42"]', value: Buffer.from([0, 0, 0, 0, 1, 2]), headers: { "qobra.raw.offset": "17" } };
    expect(encodeRecord(plain).buffer.equals(originalRecord(plain).buffer)).toBe(true);
    expect(encodeRecord({}).buffer.equals(originalRecord({}).buffer)).toBe(true);
  });

  it("compute the CRC-32C kafkajs computes", () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 2000 }), (bytes) => {
        const b = Buffer.from(bytes);
        expect(crc32c(b)).toBe(originalCrc(b));
      }),
      { numRuns: 500 },
    );
    expect(crc32c(Buffer.from("123456789"))).toBe(0xe3069283); // the CRC-32C check value
  });
});
