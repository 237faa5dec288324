/**
 * A role heals itself: when its Kafka client stops for good (kafkajs gives up after a crash it
 * does not restart, such as "Failed to find group coordinator" after a broker restart), the
 * supervisor stops what is left of the role and starts it again, with backoff (1 s doubling to
 * 60 s; back to 1 s once a start has lasted a minute), for as long as the process runs. A role is
 * never left alive without doing its work, and the other roles of the process go on meanwhile.
 *
 * Chosen over exiting the process for an outside supervisor to restart it: one process often runs
 * every role (`qobra-sync run`), and one role's crash must not stop the others. A role that
 * cannot start at all when the process starts still fails the process (wrong config, no broker).
 */
import { describeError } from "../lib/errors.ts";
import { logger } from "../lib/log.ts";
import { backoffMs, sleep, type RetryPolicy } from "../lib/retry.ts";

const log = logger.child({ component: "supervisor" });

/** A started role: how to stop it, and (when it has Kafka consumers) a promise that resolves if one of them stops for good. */
export interface RoleHandle {
  stop(): Promise<void>;
  crashed?: Promise<Error>;
}

interface Supervised {
  stop(): Promise<void>;
  /**
   * Stops the role and starts it again at once (e.g. with the connectors changed); a failed start falls back to the restart loop.
   * Resolves once the role has started again (or gone to the restart loop, or the role stops).
   */
  reload(reason: string): Promise<void>;
  readonly restarts: number;
}

interface SuperviseOptions {
  backoff?: Pick<RetryPolicy, "initialMs" | "maxMs">;
  /** A start that lasted this long resets the backoff. */
  healthyAfterMs?: number;
  sleep?: (ms: number, signal?: AbortSignal) => Promise<void>;
  now?: () => number;
}

/** Starts a role (errors of this first start are thrown) and restarts it whenever it crashes. */
export async function supervise(role: string, start: () => Promise<RoleHandle>, opts: SuperviseOptions = {}): Promise<Supervised> {
  const backoff = opts.backoff ?? { initialMs: 1000, maxMs: 60_000 };
  const healthyAfterMs = opts.healthyAfterMs ?? 60_000;
  const wait = opts.sleep ?? sleep;
  const now = opts.now ?? Date.now;
  const stopping = new AbortController();
  let current: RoleHandle | null = await start();
  let startedAt = now();
  let failures = 0;
  let restarts = 0;

  let requestReload: (reason: string) => void = () => {};
  // The callers of reload() waiting for the next one to be done (the connectors API answers after it).
  let reloadWaiters: Array<() => void> = [];
  const reloadRequested = () =>
    new Promise<string>((resolve) => {
      requestReload = resolve;
    });

  const loop = (async () => {
    let reloading = reloadRequested();
    let reloadError: unknown = null;
    while (!stopping.signal.aborted) {
      const handle: RoleHandle | null = current;
      const crash = handle?.crashed ?? new Promise<never>(() => {});
      const outcome = await Promise.race([crash.then((e) => ({ error: e })), reloading.then((reason) => ({ reason })), aborted(stopping.signal)]);
      if (stopping.signal.aborted || !outcome) return;
      if ("reason" in outcome) {
        reloading = reloadRequested();
        const waiters = reloadWaiters;
        reloadWaiters = [];
        log.info({ role, reason: outcome.reason }, `reloading the ${role} role`);
        await handle?.stop().catch(() => {});
        current = null;
        try {
          current = await start();
          startedAt = now();
          continue;
        } catch (e) {
          reloadError = e;
          log.error({ role, err: describeError(e) }, `the ${role} role could not start again after a reload; retrying with backoff`);
        } finally {
          for (const w of waiters) w();
        }
      }
      const error = "error" in outcome ? outcome.error : new Error(`the role could not start after a reload: ${describeError(reloadError)}`);
      if (now() - startedAt >= healthyAfterMs) failures = 0;
      current = null;
      if ("error" in outcome) await handle?.stop().catch(() => {});
      // Start again until a start succeeds (or the process stops). A start refused by an answer
      // that passes in moments (a topic just created whose leader is not known yet) is retried
      // within seconds, not after the growing backoff of a crash.
      let lastStartError: unknown = "reason" in outcome ? reloadError : null;
      while (!stopping.signal.aborted) {
        failures++;
        const waitMs = isRetriable(lastStartError) ? Math.min(backoffMs(failures, backoff), RETRIABLE_START_MAX_MS) : backoffMs(failures, backoff);
        log.error({ role, err: describeError(error), restartInMs: waitMs, restarts }, `the ${role} role stopped (its Kafka client crashed); restarting it`);
        await wait(waitMs, stopping.signal);
        if (stopping.signal.aborted) return;
        try {
          current = await start();
          startedAt = now();
          restarts++;
          log.warn({ role, restarts }, `the ${role} role restarted`);
          break;
        } catch (e) {
          lastStartError = e;
          log.error({ role, err: describeError(e) }, `the ${role} role could not restart yet`);
        }
      }
    }
  })();

  return {
    get restarts() {
      return restarts;
    },
    reload(reason: string) {
      return new Promise<void>((resolve) => {
        reloadWaiters.push(resolve);
        requestReload(reason);
      });
    },
    async stop() {
      stopping.abort();
      await loop;
      for (const w of reloadWaiters.splice(0)) w();
      await current?.stop();
      current = null;
    },
  };
}

/** The longest wait before starting again a role whose start was refused by a retriable answer. */
const RETRIABLE_START_MAX_MS = 5000;

/** Whether an error says so itself (kafkajs's retriable answers, the pipeline's retriable errors). */
function isRetriable(e: unknown): boolean {
  for (let cur: unknown = e, depth = 0; cur && depth < 8; depth++) {
    if ((cur as { retriable?: unknown }).retriable === true) return true;
    cur = (cur as { cause?: unknown; originalError?: unknown }).cause ?? (cur as { originalError?: unknown }).originalError;
  }
  return false;
}

/** Resolves (with null) when the signal aborts. */
function aborted(signal: AbortSignal): Promise<null> {
  return new Promise((resolve) => {
    if (signal.aborted) resolve(null);
    else signal.addEventListener("abort", () => resolve(null), { once: true });
  });
}
