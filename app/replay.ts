/**
 * `qobra-sync replay` wired to the role it may run (the sink, when none is running): ops/replay.ts
 * does the work and is handed the composition root's role starter, so that ops never depends on
 * the roles' wiring.
 */
import type { Config } from "../lib/config.ts";
import { replayFromRaw, type ReplayOptions, type ReplayResult } from "../ops/replay.ts";
import { runRoles } from "./roles.ts";

export { ReplayRefused, type ReplayProgress, type ReplayResult } from "../ops/replay.ts";

/**
 * A full resync of a connector's sink tables from its raw topic (see ops/replay.ts). `config` holds
 * the connector (one given through the API added to the file's: app/connectors.ts lookupConnector);
 * a role the replay runs starts from the file's connectors, `fileConfig`'s, as `qobra-sync run` does
 * (it reads the API's connectors itself).
 */
export function replay(config: Config, connectorId: string, opts: ReplayOptions = {}, fileConfig: Config = config): Promise<ReplayResult> {
  return replayFromRaw((c, roles) => runRoles({ ...c, connectors: fileConfig.connectors }, roles), config, connectorId, opts);
}
