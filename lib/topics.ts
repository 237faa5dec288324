/** Every topic name the pipeline uses is built here, and only here. */
export interface Topics {
  syncRequests: string;
  syncTasks: string;
  syncEvents: string;
  syncState: string;
  /** The connectors given through the API (compacted, one partition: lib/connector-store.ts). */
  connectors: string;
  raw(connector: string): string;
  mapped(connector: string, table: string): string;
  dlqMapper: string;
  dlqSink: string;
  /** Matches every mapped topic (the sink subscribes by pattern so new tables are picked up). */
  mappedPattern: RegExp;
}

export function topics(prefix = "qobra"): Topics {
  const p = (name: string) => `${prefix}.${name}`;
  const esc = prefix.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  return {
    syncRequests: p("sync.requests"),
    syncTasks: p("sync.tasks"),
    syncEvents: p("sync.events"),
    syncState: p("sync.state"),
    connectors: p("connectors"),
    raw: (connector) => p(`raw.${connector}`),
    mapped: (connector, table) => p(`mapped.${connector}.${table}`),
    dlqMapper: p("dlq.mapper"),
    dlqSink: p("dlq.sink"),
    mappedPattern: new RegExp(`^${esc}\\.mapped\\.`),
  };
}

/** Consumer group ids, one per role. */
export function groups(prefix = "qobra") {
  return {
    producers: `${prefix}-producers`,
    mapper: `${prefix}-mapper`,
    sink: `${prefix}-sink`,
    /** A replay's own group (ops/replay.ts): one per run, deleted when it ends. */
    replay: (connector: string, runId: string) => `${prefix}-replay-${connector}-${runId.replace(/-/g, "").slice(0, 8)}`,
    /** The base of a replay's transactional ids: one per connector, so that a re-run fences a crashed run's transactions. */
    replayTransactions: (connector: string) => `${prefix}-replay-${connector}`,
  };
}
