import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    globalSetup: ["test/global-setup.ts"],
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
  },
});
