/**
 * Request counting, written once for both simulators: a tally of named counters (the `/__simulator/counters`
 * controls) and the admin stats (`GET /__admin/stats`, `POST /__admin/stats/reset`), which count the same
 * route keys but are reset on their own.
 */

/** Named counters; read back as a plain object sorted by name. */
export class Tally {
  private readonly counts = new Map<string, number>();

  add(key: string, n = 1): void {
    this.counts.set(key, (this.counts.get(key) ?? 0) + n);
  }

  /** The counters as `{ name: count }`, names in sorted order. */
  snapshot(): Record<string, number> {
    return Object.fromEntries([...this.counts.entries()].sort(([a], [b]) => a.localeCompare(b)));
  }

  total(): number {
    let n = 0;
    for (const c of this.counts.values()) n += c;
    return n;
  }

  clear(): void {
    this.counts.clear();
  }
}

/** What `GET /__admin/stats` answers in both simulators (HubSpot adds `rateLimited`). */
export interface RouteStats {
  total: number;
  requests: Record<string, number>;
}

/** The admin stats' per-route counts. */
export class StatsBook {
  private readonly routes = new Tally();

  count(route: string): void {
    this.routes.add(route);
  }

  stats(): RouteStats {
    return { total: this.routes.total(), requests: this.routes.snapshot() };
  }

  reset(): void {
    this.routes.clear();
  }
}
