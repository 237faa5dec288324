import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    include: ["test/**/*.test.ts"],
    globalSetup: ["test/global-setup.ts"],
    testTimeout: 180_000,
    hookTimeout: 600_000,
    maxWorkers: 2,
    env: { QOBRA_SYNC_LOG_LEVEL: process.env.QOBRA_SYNC_LOG_LEVEL ?? "warn" },
  },
});
