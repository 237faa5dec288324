/**
 * Headless Chromium for the web test: Debian's chromium package driven by playwright-core. When
 * /usr/bin/chromium is missing, installs it with apt-get (CI runs as root on a fresh machine);
 * when that is impossible, returns why, and the test says so and is skipped.
 */
import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { BrowserContext } from "playwright-core";

const CHROMIUM = "/usr/bin/chromium";

/** Returns null when Chromium is there (installing it if needed), else the reason it is not. */
export function ensureChromium(): string | null {
  if (existsSync(CHROMIUM)) return null;
  if (process.platform !== "linux") return `${CHROMIUM} is missing and this is not Linux (${process.platform})`;
  if (typeof process.getuid === "function" && process.getuid() !== 0)
    return `${CHROMIUM} is missing and installing Debian's chromium package needs root (apt-get install -y chromium)`;
  try {
    execFileSync("apt-get", ["--version"], { stdio: "ignore" });
  } catch {
    return `${CHROMIUM} is missing and apt-get is not available to install Debian's chromium package`;
  }
  try {
    process.stderr.write("[ops-web] installing Debian's chromium package (apt-get install -y chromium)…\n");
    const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
    execFileSync("apt-get", ["update"], { stdio: ["ignore", "ignore", "pipe"], env, timeout: 300_000 });
    execFileSync("apt-get", ["install", "-y", "--no-install-recommends", "chromium"], { stdio: ["ignore", "ignore", "pipe"], env, timeout: 600_000 });
  } catch (e) {
    const err = e as { stderr?: Buffer; message: string };
    return `installing chromium with apt-get failed: ${(err.stderr?.toString() || err.message).trim().split("\n").slice(-3).join(" / ")}`;
  }
  return existsSync(CHROMIUM) ? null : `apt-get install chromium did not provide ${CHROMIUM}`;
}

/** A headless Chromium with a fresh profile (and `args` added to its command line); close() also removes the profile. */
export async function launchChromium(opts: { args?: string[] } = {}): Promise<{ context: BrowserContext; close(): Promise<void> }> {
  const { chromium } = await import("playwright-core");
  const profile = mkdtempSync(join(tmpdir(), "qobra-chromium-"));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    viewport: { width: 1360, height: 900 },
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-quic",
      "--no-first-run",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      ...(opts.args ?? []),
    ],
  });
  return {
    context,
    async close() {
      await context.close().catch(() => {});
      rmSync(profile, { recursive: true, force: true });
    },
  };
}
