/**
 * The connectors API of the settings server (ops/server.ts mounts these routes):
 *
 *   GET    /api/tenants/:t/connectors            the tenant's connectors (stored ones and the file's, read-only) and stored problems
 *   GET    /api/tenants/:t/connectors/:id        one connector
 *   PUT    /api/tenants/:t/connectors/:id        body: a YAML connector entry in JSON, without id and tenant → 201 created / 200 replaced
 *   DELETE /api/tenants/:t/connectors/:id        204; topics and sink tables stay (removing them is a separate action)
 *   POST   /api/tenants/:t/connectors/:id/check  runs the connector's checks (time-limited) → results
 *   POST   /api/tenants/:t/connectors/:id/sync   {"full": bool} → 202 {"runId"}
 *
 * Every answer shows an entry with each secret field replaced by "********" (a PUT may send it back
 * to keep the stored value). A caller whose credentials do not reach the tenant gets 404 for
 * everything under it, whether or not the tenant or the connector exists, so that nothing tells a
 * tenant about another's connectors. The order of the checks keeps it so: the path's form (400),
 * then the tenant (404), and only then the body and the connector. Changes are logged with the
 * caller's label, never with the entry. docs/operations.md ("Connectors through the API") and
 * docs/security.md tell the rules to users.
 */
import type { ServerResponse } from "node:http";
import type { Producer } from "kafkajs";
import { type Config, type ConnectorBase, configParser } from "../lib/config.ts";
import { CONNECTOR_ID } from "../lib/config-common.ts";
import type { ConnectorCatalog } from "../lib/connector-catalog.ts";
import { type ConnectorStore, maskedEntry, type StoredConnector } from "../lib/connector-store.ts";
import { ConfigError, describeError } from "../lib/errors.ts";
import { logger } from "../lib/log.ts";
import { newRequest, publishRequest } from "../lib/protocol.ts";
import { maskDeep } from "../lib/redact.ts";
import type { Runtime } from "../lib/runtime.ts";
import { TENANT_ID, pipelineId } from "../lib/tenants.ts";
import type { TableCheck } from "../producers/connector.ts";
import { admitNetwork, createConnector, sourcePlugins } from "../producers/connectors/registry.ts";
import { reachesTenant } from "./http-auth.ts";
import type { Caller, Route } from "./http-gate.ts";
import { HttpError, readJsonObject } from "./http-security.ts";

const log = logger.child({ component: "connectors-api" });
const BODY_LIMIT = 64 * 1024;
const NO_KEY = "QOBRA_SYNC_TOKEN_KEY is not set";
/** The connector entry's schema, for its secret fields (app/config.ts binds the same one; ops sits below app). */
const connectorSchema = configParser(sourcePlugins).connectorSchema;

export interface ConnectorsApiDeps {
  /** The live config: `connectors` follows the catalog (lib/connector-catalog.ts liveConfig). */
  config: Config;
  rt: Runtime;
  getProducer(): Promise<Producer>;
  /** Called after a sync request is published (the monitor samples sooner). */
  requested?(): void;
  /** Called after a connector is removed: forgets what else is stored under its pipeline id (its schedule edit). */
  removed?(pipelineId: string): Promise<void>;
  /** The time limit of a check (default 30 s). */
  checkTimeoutMs?: number;
  /** Checks running at once, in all (default 4; one per connector). */
  maxChecks?: number;
  /** How long a change waits for this process's roles to serve it before the answer (default 20 s). */
  applyWaitMs?: number;
}

/** One connector as the API shows it. */
export interface ConnectorView {
  id: string;
  tenant: string;
  /** The id the pipeline knows it by: topics, runs and /api/state (`<tenant>.<id>`). */
  pipelineId: string;
  type: string;
  /** A connector of the YAML file: changed only there. */
  readOnly: boolean;
  /** The entry, without id and tenant, each secret replaced by "********". */
  entry: Record<string, unknown>;
  updatedAt?: string;
  updatedBy?: string;
}

/** A problem of a refused entry: the field (as `connection.password`, `tables[0].fields`) and what is wrong with it. */
export interface FieldProblem {
  field: string;
  message: string;
}

/** The tenant of the path: 400 when malformed, 404 when the caller does not reach it (it may or may not exist). */
export function tenantOf(raw: string, caller: Caller): string {
  if (!TENANT_ID.safeParse(raw).success)
    throw new HttpError(400, "the tenant in the path must be 1 to 40 lower-case letters, digits, - and _, starting with a letter");
  if (!reachesTenant(caller.principal, raw)) throw new HttpError(404, `no tenant ${JSON.stringify(raw)}`);
  return raw;
}

/** The connector id of the path: 400 when malformed. */
export function idOf(raw: string): string {
  if (!CONNECTOR_ID.safeParse(raw).success || raw.length > 100)
    throw new HttpError(400, "the connector id in the path must be lower-case letters, digits, - and _, starting with a letter");
  return raw;
}

/** The routes, in the server's Route shape. */
/** The YAML file's connector of that tenant and id (read-only through the API), if there is one. */
export function fileConnectorOf(config: Config, catalog: ConnectorCatalog | undefined, tenant: string, id: string): ConnectorBase | undefined {
  const pid = pipelineId(tenant, id);
  const fromFile = catalog ? catalog.fromFile(pid) : true;
  return fromFile ? config.connectors.find((c) => c.id === pid && c.tenant === tenant) : undefined;
}

export function connectorsApiRoutes(deps: ConnectorsApiDeps): Route[] {
  const { config, rt } = deps;
  const catalog: ConnectorCatalog | undefined = rt.catalog;
  const checkTimeoutMs = deps.checkTimeoutMs ?? 30_000;
  const maxChecks = deps.maxChecks ?? 4;
  const checking = new Set<string>();

  const under = (seg: string[], n: number, last?: string): boolean =>
    seg.length === n && seg[0] === "api" && seg[1] === "tenants" && seg[3] === "connectors" && (last === undefined || seg[n - 1] === last);

  /**
   * Waits (bounded) until this process's roles serve the last change (app/roles.ts: topics created,
   * mapper and sink reloaded, schedules re-armed), so that a sync requested after the answer runs
   * with it. Past the bound the change still applies, a moment later.
   */
  async function applied(): Promise<void> {
    const done = rt.whenApplied?.();
    if (!done) return;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([done, new Promise<void>((resolve) => (timer = setTimeout(resolve, deps.applyWaitMs ?? 20_000)))]).finally(() => clearTimeout(timer));
  }

  const store = (): ConnectorStore => {
    const s = catalog?.store;
    if (!s)
      throw new HttpError(
        503,
        "this server does not hold the connector store: connectors are created and changed through the server of `qobra-sync run` (with an http section)",
      );
    return s;
  };

  /** The file's connector of the tenant with this id, if any (the file wins over a stored one). */
  const fileConnector = (tenant: string, id: string) => fileConnectorOf(config, catalog, tenant, id);

  const fileView = (tenant: string, id: string, c: ConnectorBase): ConnectorView => {
    const { id: _pid, tenant: _tenant, ...entry } = c as ConnectorBase & Record<string, unknown>;
    return { id, tenant, pipelineId: c.id, type: c.type, readOnly: true, entry: maskedEntry(entry, connectorSchema) };
  };

  const storedView = (s: StoredConnector): ConnectorView => ({
    id: s.id,
    tenant: s.tenant,
    pipelineId: pipelineId(s.tenant, s.id),
    type: s.config.type,
    readOnly: false,
    entry: maskedEntry(s.entry, connectorSchema),
    updatedAt: s.updatedAt,
    ...(s.updatedBy ? { updatedBy: s.updatedBy } : {}),
  });

  /** The tenant's connector with this id, the file's first; 404 when there is none. */
  function find(tenant: string, id: string): { view: ConnectorView; config: ConnectorBase } {
    const f = fileConnector(tenant, id);
    if (f) return { view: fileView(tenant, id, f), config: f };
    const s = catalog?.store?.get(tenant, id);
    if (s) return { view: storedView(s), config: s.config };
    const problem = catalog?.store?.problems().find((p) => p.key === `${tenant}/${id}`);
    throw new HttpError(
      404,
      problem
        ? `connector ${JSON.stringify(id)} is stored but cannot be used (${problem.problem}); PUT a valid entry to replace it, or DELETE it`
        : `no connector ${JSON.stringify(id)}`,
    );
  }

  function list(tenant: string) {
    const views: ConnectorView[] = [];
    for (const c of config.connectors) {
      if (c.tenant !== tenant) continue;
      const own = c.id.slice(tenant.length + 1);
      const s = !catalog || catalog.fromFile(c.id) ? undefined : catalog.store?.get(tenant, own);
      views.push(s ? storedView(s) : fileView(tenant, own, c));
    }
    const problems = (catalog?.store?.problems() ?? [])
      .filter((p) => p.key.startsWith(`${tenant}/`))
      .map((p) => ({ id: p.key.slice(tenant.length + 1), problem: p.problem }));
    return { connectors: views.sort((a, b) => a.id.localeCompare(b.id)), problems };
  }

  /** A ConfigError as the problems of the entry, each naming its field. */
  function fieldProblems(e: ConfigError): FieldProblem[] {
    const raw = (e as ConfigError & { problems?: unknown }).problems;
    const texts = Array.isArray(raw) && raw.every((p) => typeof p === "string") ? (raw as string[]) : [e.message];
    return texts.map((t) => {
      const i = t.indexOf(": ");
      return i > 0 ? { field: t.slice(0, i), message: t.slice(i + 2) } : { field: "(top level)", message: t };
    });
  }

  async function put(tenant: string, id: string, body: Record<string, unknown>, caller: Caller, res: ServerResponse): Promise<void> {
    const s = store();
    if (fileConnector(tenant, id))
      throw new HttpError(409, `connector ${JSON.stringify(id)} is defined in the config file: change it there (the API cannot change or remove it)`);
    const existed = s.get(tenant, id) !== undefined;
    let stored: StoredConnector;
    try {
      stored = await s.put(tenant, id, body, caller.principal.label);
    } catch (e) {
      if (e instanceof ConfigError && e.message.startsWith(NO_KEY)) throw new HttpError(503, e.message);
      if (e instanceof ConfigError) return json(res, 400, maskDeep({ error: e.message, problems: fieldProblems(e) }));
      log.error({ tenant, connector: id, err: describeError(e), by: caller.principal.label }, "could not store a connector");
      throw new HttpError(503, `storing the connector did not complete (${describeError(e)}); GET it to see whether it was stored, then try again`, {
        "retry-after": "5",
      });
    }
    await applied();
    log.info(
      { tenant, connector: id, type: stored.config.type, by: caller.principal.label },
      existed ? "connector replaced through the API" : "connector created through the API",
    );
    if (!existed) res.setHeader("location", `/api/tenants/${tenant}/connectors/${id}`);
    json(res, existed ? 200 : 201, maskDeep(storedView(stored)));
  }

  async function check(tenant: string, id: string, target: ConnectorBase, caller: Caller, res: ServerResponse): Promise<void> {
    const key = pipelineId(tenant, id);
    if (checking.has(key)) throw new HttpError(429, "a check of this connector is running; try again when it is done", { "retry-after": "5" });
    if (checking.size >= maxChecks) throw new HttpError(429, "too many checks running; try again shortly", { "retry-after": "5" });
    // A tenant's connector: a host the network policy refuses is a 400 naming the field, before any connection.
    try {
      await admitNetwork(target);
    } catch (e) {
      if (e instanceof ConfigError) return json(res, 400, maskDeep({ error: e.message, problems: fieldProblems(e) }));
      throw e;
    }
    checking.add(key);
    const started = Date.now();
    try {
      const connector = createConnector(target);
      let timer: NodeJS.Timeout | undefined;
      const outcome = await Promise.race([
        connector.check().then(
          (tables): { tables: TableCheck[] } => ({ tables }),
          (e: unknown) => ({ error: describeError(e) }),
        ),
        new Promise<{ timedOut: true }>((resolve) => {
          timer = setTimeout(() => resolve({ timedOut: true }), checkTimeoutMs);
        }),
      ]).finally(() => clearTimeout(timer));
      // Closing also ends a check still running past the limit (its connections).
      await connector.close().catch(() => {});
      log.info({ tenant, connector: id, ms: Date.now() - started, by: caller.principal.label }, "connector checked through the API");
      if ("timedOut" in outcome) throw new HttpError(504, `the check did not finish within ${Math.round(checkTimeoutMs / 1000)} s`);
      // Texts from the source and the driver: masked, as a last line of defence (lib/redact.ts).
      if ("error" in outcome) return json(res, 200, maskDeep({ connector: id, tenant, ok: false, error: outcome.error, tables: [] }));
      json(res, 200, maskDeep({ connector: id, tenant, ok: outcome.tables.every((t) => t.ok), tables: outcome.tables }));
    } finally {
      checking.delete(key);
    }
  }

  async function sync(target: ConnectorBase, body: Record<string, unknown>, caller: Caller, res: ServerResponse): Promise<void> {
    if (body.full !== undefined && typeof body.full !== "boolean") throw new HttpError(400, 'full: must be true or false ({"full": true})');
    if (body.tables !== undefined && !(Array.isArray(body.tables) && body.tables.every((t) => typeof t === "string")))
      throw new HttpError(400, "tables: must be a list of table names");
    const full = body.full === true;
    const tables = (body.tables as string[] | undefined) ?? [];
    for (const t of tables) if (!target.tables.some((x) => x.name === t)) throw new HttpError(400, `tables: the connector has no table ${JSON.stringify(t)}`);
    const request = newRequest(target.id, { full, tables, by: caller.session ? "web" : "api" });
    await publishRequest(await deps.getProducer(), rt.codec, rt.port.topics, request);
    log.info({ connector: target.id, runId: request.requestId, full, by: caller.principal.label }, "sync requested through the connectors API");
    deps.requested?.();
    json(res, 202, { runId: request.requestId, connector: target.id, full, tables });
  }

  return [
    {
      match: (seg) => (under(seg, 4) ? [seg[2]!] : null),
      methods: {
        GET: {
          access: "api",
          async run({ res, params, caller }) {
            json(res, 200, maskDeep(list(tenantOf(params[0]!, caller!))));
          },
        },
      },
    },
    {
      match: (seg) => (under(seg, 5) ? [seg[2]!, seg[4]!] : null),
      methods: {
        GET: {
          access: "api",
          async run({ res, params, caller }) {
            const tenant = tenantOf(params[0]!, caller!);
            json(res, 200, maskDeep(find(tenant, idOf(params[1]!)).view));
          },
        },
        PUT: {
          access: "write",
          async run({ req, res, params, caller }) {
            const tenant = tenantOf(params[0]!, caller!);
            const id = idOf(params[1]!);
            await put(tenant, id, await readJsonObject(req, BODY_LIMIT), caller!, res);
          },
        },
        DELETE: {
          access: "write",
          async run({ res, params, caller }) {
            const tenant = tenantOf(params[0]!, caller!);
            const id = idOf(params[1]!);
            if (fileConnector(tenant, id))
              throw new HttpError(409, `connector ${JSON.stringify(id)} is defined in the config file: remove it there (the API cannot change or remove it)`);
            const s = store();
            if (!(await s.remove(tenant, id))) {
              find(tenant, id); // 404, with the stored problem if there is one
              throw new HttpError(404, `no connector ${JSON.stringify(id)}`);
            }
            await applied();
            const pid = pipelineId(tenant, id);
            await deps
              .removed?.(pid)
              .catch((e: unknown) => log.warn({ connector: pid, err: describeError(e) }, "could not forget the removed connector's schedule edit"));
            log.info({ tenant, connector: id, by: caller!.principal.label }, "connector removed through the API (its topics and sink tables stay)");
            res.writeHead(204, { "cache-control": "no-store" }).end();
          },
        },
      },
    },
    {
      match: (seg) => (under(seg, 6, "check") ? [seg[2]!, seg[4]!] : null),
      methods: {
        POST: {
          access: "write",
          async run({ res, params, caller }) {
            const tenant = tenantOf(params[0]!, caller!);
            const id = idOf(params[1]!);
            await check(tenant, id, find(tenant, id).config, caller!, res);
          },
        },
      },
    },
    {
      match: (seg) => (under(seg, 6, "sync") ? [seg[2]!, seg[4]!] : null),
      methods: {
        POST: {
          access: "write",
          async run({ req, res, params, caller }) {
            const tenant = tenantOf(params[0]!, caller!);
            const id = idOf(params[1]!);
            const target = find(tenant, id).config;
            await sync(target, await readJsonObject(req, BODY_LIMIT), caller!, res);
          },
        },
      },
    },
  ];
}

function json(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { "content-type": "application/json; charset=utf-8", "cache-control": "no-store" });
  res.end(JSON.stringify(body));
}
