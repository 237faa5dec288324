/** Where log lines go: standard output, except for a `--json` command (its answer owns standard output). */
import { execFileSync, spawnSync } from "node:child_process";
import { describe, expect, it } from "vitest";

const script =
  "const { logger } = await import('./lib/log.ts'); logger.warn({ password: 'hunter2' }, 'a warning'); console.log(JSON.stringify({ answer: 42 }));";
const run = (extra: string[]) =>
  spawnSync(process.execPath, ["--input-type=module", "-e", script, ...extra], { encoding: "utf8", env: { ...process.env, QOBRA_SYNC_LOG_LEVEL: "warn" } });

describe("log destination", () => {
  it("a --json command's standard output is its answer alone; the log line is on standard error, redacted", () => {
    const r = run(["--", "--json"]);
    expect(r.status).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({ answer: 42 });
    expect(r.stderr).toMatch(/"msg":"a warning"/);
    expect(r.stderr).not.toMatch(/hunter2/);
  });

  it("other commands log to standard output", () => {
    const out = execFileSync(process.execPath, ["--input-type=module", "-e", script], {
      encoding: "utf8",
      env: { ...process.env, QOBRA_SYNC_LOG_LEVEL: "warn" },
    });
    // pino writes asynchronously: the log line may come before or after the answer, but on standard output.
    expect(out.split("\n").some((line) => /"msg":"a warning"/.test(line))).toBe(true);
    expect(out).not.toMatch(/hunter2/);
  });
});
