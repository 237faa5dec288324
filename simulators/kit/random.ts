/**
 * Seeded randomness for the data generators: the same seed gives the same document, run after run. Both
 * generate.ts use mulberry32 (a small 32-bit generator, good enough for test data) and pick from lists.
 */

/** A generator of numbers in [0, 1) from a 32-bit seed (mulberry32). */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Picks an element of a (non-empty) list with a generator from seededRandom. */
export function picker(rand: () => number): <T>(list: readonly T[]) => T {
  return <T>(list: readonly T[]): T => list[Math.floor(rand() * list.length)] as T;
}

/** ISO 8601 text of an epoch-ms instant. */
export function iso(ms: number): string {
  return new Date(ms).toISOString();
}
