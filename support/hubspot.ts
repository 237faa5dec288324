/**
 * Helpers of the HubSpot tests (simulator, connector, pipeline): the demo and tiny portals (data in
 * simulators/hubspot/ and test/fixtures/hubspot/), a client, a controllable clock, API error checks.
 */
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { Client } from "@hubspot/api-client";
import { expect } from "vitest";
import type { HubSpotSimData } from "../simulators/hubspot/types.ts";

export const DEMO_DATA_PATH = fileURLToPath(new URL("../simulators/hubspot/demo-data.json", import.meta.url));
export const TINY_PORTAL_PATH = fileURLToPath(new URL("../test/fixtures/hubspot/tiny-portal.json", import.meta.url));

/** A fresh deep copy of the demo portal, to tweak per test. */
export function demoData(): HubSpotSimData {
  return JSON.parse(readFileSync(DEMO_DATA_PATH, "utf8")) as HubSpotSimData;
}

/** Every client the tests build shares these settings (the client's decorators are a process singleton). */
export function hubspotClient(basePath: string, accessToken: string): Client {
  return new Client({ accessToken, basePath, numberOfApiCallRetries: 0 });
}

/** A controllable clock for the `clock` option. */
export function testClock(startIso = "2024-06-03T08:00:00.000Z"): { now: () => number; advance: (ms: number) => void; set: (ms: number) => void } {
  let t = Date.parse(startIso);
  return {
    now: () => t,
    advance: (ms) => {
      t += ms;
    },
    set: (ms) => {
      t = ms;
    },
  };
}

interface ApiErrorLike {
  code: number;
  body: Record<string, unknown>;
  headers: Record<string, string>;
  message: string;
}

/** Awaits a client call that must fail with an HTTP status; returns the client's ApiException. */
export async function expectApiError(p: Promise<unknown>, status: number): Promise<ApiErrorLike> {
  try {
    await p;
  } catch (e) {
    const err = e as ApiErrorLike;
    expect(err.code, `expected HTTP ${status}, got ${String(err.code)}: ${err.message} ${JSON.stringify(err.body)}`).toBe(status);
    return err;
  }
  throw new Error(`expected the call to fail with HTTP ${status}, it succeeded`);
}

export const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** Sort rule objects as HubSpot documents them (the v14 model types `sorts` as string[]). */
export function sortBy(propertyName: string, direction: "ASCENDING" | "DESCENDING" = "ASCENDING"): string[] {
  return [{ propertyName, direction }] as unknown as string[];
}
