/**
 * Two test tiers, as vitest projects:
 *  - unit: everything under test/ except test/integration (pure code, and the Salesforce and
 *    HubSpot simulators run in-process). Needs no Java, Kafka, registry or PostgreSQL, and has no
 *    global setup: `npm run test:unit` (`vitest run --project unit`).
 *  - integration: test/integration, against the real broker, registry and PostgreSQL, which
 *    test/global-setup.ts brings up (testcontainers where a Docker engine answers, else the Maven
 *    jars of stack/stack.ts).
 *  - security: test/security, the attack suites against a canary database they create on the
 *    local PostgreSQL (the custom WHERE conditions of ../shared/security); PostgreSQL only, no
 *    Kafka, no global setup: `vitest run --project security`.
 * `npm test` (scripts/test.sh) runs all three.
 */
import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    testTimeout: 180_000,
    hookTimeout: 600_000,
    maxWorkers: 2,
    env: { QOBRA_SYNC_LOG_LEVEL: process.env.QOBRA_SYNC_LOG_LEVEL ?? "warn" },
    // Google's Cloud SQL connector keeps refreshing in the background after the test at the
    // network boundary (no internet here) and lets that promise reject unhandled; the product
    // logs such rejections (cli/main.ts). Any other unhandled error still fails the run.
    onUnhandledError(error) {
      const text = `${(error as Error)?.message ?? ""}\n${(error as Error)?.stack ?? ""}`;
      return !/oauth2\.googleapis\.com|sqladmin\.googleapis\.com|cloud-sql-connector/.test(text);
    },
    projects: [
      {
        extends: true,
        test: { name: "unit", include: ["test/**/*.test.ts"], exclude: ["test/integration/**", "test/security/**"] },
      },
      {
        extends: true,
        test: { name: "integration", include: ["test/integration/**/*.test.ts"], globalSetup: ["test/global-setup.ts"] },
      },
      {
        extends: true,
        test: { name: "security", include: ["test/security/**/*.test.ts"] },
      },
    ],
  },
});
