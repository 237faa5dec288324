/**
 * The connectors the roles serve: the YAML file's (read-only, as parsed at start) and the API's
 * (lib/connector-store.ts), as one list that changes at run time. `liveConfig` gives the roles a
 * config whose `connectors` is always this list, so that a role that looks a connector up when it
 * needs one (the producer worker per task, the HTTP server per request) sees every change at once;
 * the roles that subscribe to topics by connector (the mapper, the sink) and the scheduler are
 * restarted or re-armed in-process on a change (app/roles.ts). No process restarts.
 *
 * The file wins: a stored connector whose pipeline id is a file connector's is left out (and the
 * API refuses to write one).
 */
import type { Config, ConnectorBase } from "./config.ts";
import type { ConnectorStore, StoredConnector } from "./connector-store.ts";
import { logger } from "./log.ts";

const log = logger.child({ component: "connectors" });

export class ConnectorCatalog {
  private readonly fileConnectors: readonly ConnectorBase[];
  private readonly fileIds: Set<string>;
  readonly store: ConnectorStore | undefined;
  private current: ConnectorBase[];

  constructor(fileConnectors: readonly ConnectorBase[], store?: ConnectorStore) {
    this.fileConnectors = fileConnectors;
    this.fileIds = new Set(fileConnectors.map((c) => c.id));
    this.store = store;
    this.current = this.merge(store?.list() ?? []);
    store?.onChange((stored) => {
      this.current = this.merge(stored);
    });
  }

  /** Every connector, the file's first. */
  list(): ConnectorBase[] {
    return this.current;
  }

  /** Whether a pipeline id is one of the YAML file's connectors (read-only through the API). */
  fromFile(id: string): boolean {
    return this.fileIds.has(id);
  }

  /** Calls back after each change of the stored connectors (with the merged list). */
  onChange(listener: (connectors: readonly ConnectorBase[]) => void): () => void {
    if (!this.store) return () => {};
    return this.store.onChange(() => listener(this.current));
  }

  private merge(stored: readonly StoredConnector[]): ConnectorBase[] {
    const out = [...this.fileConnectors];
    for (const s of stored) {
      if (this.fileIds.has(s.config.id)) {
        log.warn({ connector: s.config.id }, "a stored connector has the id of a connector of the config file; the file's is used");
        continue;
      }
      out.push(s.config);
    }
    return out;
  }
}

/** The config with `connectors` read from the catalog on every access. */
export function liveConfig<C extends Config>(config: C, catalog: ConnectorCatalog): C {
  const live = { ...config };
  Object.defineProperty(live, "connectors", { get: () => catalog.list(), enumerable: true });
  return live;
}
