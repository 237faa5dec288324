/**
 * HubSpot's rate limits on the simulator clock:
 *  - TEN_SECONDLY_ROLLING: `tenSecondly` requests per rolling `intervalMs` per app (OAuth client
 *    or private-app token); operations the spec marks `x-hubspot-rate-limit-exemptions:
 *    ["ten-secondly"]` (CRM search, associations v4 batch) do not count against it;
 *  - SECONDLY: CRM search requests per rolling second per account;
 *  - DAILY: requests per calendar day (account time zone) per account.
 * Only accepted requests consume budget. Headers follow the API usage guidelines: the
 * X-HubSpot-RateLimit-Daily(-Remaining) pair only for non-OAuth (private app) tokens. Each 429 carries
 * Retry-After unless the portal's `rateLimits.retryAfter` is false (the body's policyName then says which).
 */
import { rateLimited, type HttpError } from "./errors.ts";
import type { Settings } from "./store.ts";
import { zonedParts } from "../../lib/zoned-time.ts";

interface LimitRequest {
  /** The app the burst budget belongs to. */
  bucket: string;
  countsTenSecondly: boolean;
  isSearch: boolean;
  /** Private-app tokens get the daily headers. */
  privateApp: boolean;
}

interface LimitOutcome {
  headers: Record<string, string>;
  error?: HttpError;
}

function prune(list: number[], from: number): void {
  let i = 0;
  while (i < list.length && (list[i] ?? 0) <= from) i++;
  if (i > 0) list.splice(0, i);
}

export class RateLimiter {
  private readonly settings: Settings;
  private readonly burst = new Map<string, number[]>();
  private readonly searches: number[] = [];
  private day = "";
  private dailyCount = 0;

  constructor(settings: Settings) {
    this.settings = settings;
  }

  reset(): void {
    this.burst.clear();
    this.searches.length = 0;
    this.day = "";
    this.dailyCount = 0;
  }

  private dayParts(now: number): { key: string; secondsToMidnight: number } {
    const z = zonedParts(this.settings.timeZone, now);
    const elapsed = z.hour * 3600 + z.minute * 60 + z.second;
    const two = (n: number) => String(n).padStart(2, "0");
    return { key: `${z.year}-${two(z.month)}-${two(z.day)}`, secondsToMidnight: Math.max(1, 86_400 - elapsed) };
  }

  /** The Retry-After header of a 429, unless the portal sends none (`rateLimits.retryAfter: false`). */
  private retryAfter(seconds: number): Record<string, string> {
    return this.settings.rateLimits.retryAfter ? { "Retry-After": String(seconds) } : {};
  }

  /** Checks (and on success consumes) the budgets a request needs at `now`. */
  check(req: LimitRequest, now: number): LimitOutcome {
    const rl = this.settings.rateLimits;
    const headers: Record<string, string> = {};
    const { key, secondsToMidnight } = this.dayParts(now);
    if (key !== this.day) {
      this.day = key;
      this.dailyCount = 0;
    }
    const dailyHeaders = (used: number) => {
      if (req.privateApp) {
        headers["X-HubSpot-RateLimit-Daily"] = String(rl.daily);
        headers["X-HubSpot-RateLimit-Daily-Remaining"] = String(Math.max(0, rl.daily - used));
      }
    };
    const group = `publicapi:${req.privateApp ? "private-app" : "oauth"}-api-calls`;
    if (this.dailyCount >= rl.daily) {
      dailyHeaders(this.dailyCount);
      return { headers, error: rateLimited("DAILY", { ...headers, ...this.retryAfter(secondsToMidnight) }, `${group}-daily:${this.settings.portalId}`) };
    }
    if (req.isSearch) {
      prune(this.searches, now - 1000);
      if (this.searches.length >= rl.searchPerSecond) {
        const wait = Math.max(1, Math.ceil(((this.searches[0] ?? now) + 1000 - now) / 1000));
        return { headers, error: rateLimited("SECONDLY", this.retryAfter(wait), `publicapi:crm-search-secondly:${this.settings.portalId}`) };
      }
    }
    let window: number[] | undefined;
    if (req.countsTenSecondly) {
      window = this.burst.get(req.bucket);
      if (!window) this.burst.set(req.bucket, (window = []));
      prune(window, now - rl.intervalMs);
      if (window.length >= rl.tenSecondly) {
        this.burstHeaders(headers, window, now, 0);
        dailyHeaders(this.dailyCount);
        const wait = Math.max(1, Math.ceil(((window[0] ?? now) + rl.intervalMs - now) / 1000));
        return { headers, error: rateLimited("TEN_SECONDLY_ROLLING", { ...headers, ...this.retryAfter(wait) }, `${group}-ten-secondly:${req.bucket}`) };
      }
    }
    // accepted: consume
    this.dailyCount++;
    if (req.isSearch) this.searches.push(now);
    if (window) {
      window.push(now);
      this.burstHeaders(headers, window, now, Math.max(0, rl.tenSecondly - window.length));
    }
    dailyHeaders(this.dailyCount);
    return { headers };
  }

  private burstHeaders(headers: Record<string, string>, window: number[], now: number, remaining: number): void {
    const rl = this.settings.rateLimits;
    const secondly = Math.max(1, Math.floor(rl.tenSecondly / Math.max(1, rl.intervalMs / 1000)));
    const lastSecond = window.filter((t) => t > now - 1000).length;
    headers["X-HubSpot-RateLimit-Interval-Milliseconds"] = String(rl.intervalMs);
    headers["X-HubSpot-RateLimit-Max"] = String(rl.tenSecondly);
    headers["X-HubSpot-RateLimit-Remaining"] = String(remaining);
    headers["X-HubSpot-RateLimit-Secondly"] = String(secondly);
    headers["X-HubSpot-RateLimit-Secondly-Remaining"] = String(Math.max(0, secondly - lastSecond));
  }

  usage(): { day: string; daily: number; buckets: Record<string, number> } {
    return { day: this.day, daily: this.dailyCount, buckets: Object.fromEntries([...this.burst].map(([k, v]) => [k, v.length])) };
  }
}
