/**
 * The connect-time side of lib/network-policy.ts: a tenant's connector (one given through the API:
 * its config carries `egress`, app/connectors.ts) connects only through an EgressGuard, which
 * resolves the host, checks every address against the policy, and connects to the checked address
 * (TLS still verifies the certificate against the host name). So a name that resolved to a public
 * address when the connector was stored and to 127.0.0.1 later (DNS rebinding), a redirect, or an
 * address a source answers with (Salesforce's instance_url) is refused where it is used.
 *
 *  - undici (jsforce, fetch of this package): `dispatcher()`, an Agent whose connect goes through
 *    the guard; jsforce's requests use one process-wide dispatcher, so `routingDispatcher` picks the
 *    guard of the request's async context (`run`), or the ordinary agent outside any.
 *  - node:http(s) (@hubspot/api-client's httpAgent): `httpAgent(protocol)`.
 *  - PostgreSQL: `resolve(host)`, then connect to the address with the host name as TLS servername.
 *
 * A refusal is a NetworkRefusedError (a ConfigError: never retried) naming the connector and field.
 */
import { AsyncLocalStorage } from "node:async_hooks";
import * as http from "node:http";
import * as https from "node:https";
import { isIP } from "node:net";
import type { Duplex } from "node:stream";
import { Agent, buildConnector, Dispatcher } from "undici";
import type { ConnectorBase } from "./config.ts";
import { type NetworkPolicy, type NetworkPolicyConfig, networkPolicy, normalHost } from "./network-policy.ts";

const scope = new AsyncLocalStorage<EgressGuard>();

export class EgressGuard {
  readonly policy: NetworkPolicy;
  readonly connector: string;
  /** host[:port] → the config field it comes from, for messages; others are `unknownField`. */
  private readonly fields = new Map<string, string>();
  private readonly unknownField: string;
  private agent: Agent | undefined;
  private readonly httpAgents = new Map<string, http.Agent>();

  constructor(policy: NetworkPolicy, connector: string, unknownField = "an address the source answered with") {
    this.policy = policy;
    this.connector = connector;
    this.unknownField = unknownField;
  }

  /** Names the field a URL comes from (messages name it when its host is refused). */
  label(url: string, field: string): this {
    try {
      const u = new URL(url);
      this.fields.set(normalHost(u.hostname), field);
    } catch {
      /* unparseable: the config refused it already */
    }
    return this;
  }

  fieldOf(host: string): string {
    return this.fields.get(normalHost(host)) ?? this.unknownField;
  }

  /** The first checked address of a host (every address is checked); a NetworkRefusedError otherwise. */
  async resolve(host: string, field = this.fieldOf(host)): Promise<{ address: string; family: number }> {
    const addrs = await this.policy.resolve(host, { connector: this.connector, field });
    return addrs[0]!;
  }

  /** An undici dispatcher connecting only to checked addresses (one per guard, pooled by origin). */
  dispatcher(): Agent {
    if (this.agent) return this.agent;
    const base = buildConnector({ allowH2: false });
    const connect: buildConnector.connector = (opts, callback) => {
      const host = normalHost(opts.hostname);
      this.resolve(host).then(
        ({ address }) =>
          base({ ...opts, hostname: address, ...(opts.protocol === "https:" && isIP(host) === 0 ? { servername: opts.servername || host } : {}) }, callback),
        (e: Error) => callback(e, null),
      );
    };
    this.agent = new Agent({ connect });
    return this.agent;
  }

  /** A node:http(s) agent connecting only to checked addresses (TLS verified against the host name). */
  httpAgent(protocol: string): http.Agent {
    const key = protocol === "https:" ? "https:" : "http:";
    const known = this.httpAgents.get(key);
    if (known) return known;
    const guard = this;
    const Base = key === "https:" ? https.Agent : http.Agent;
    const create = Base.prototype.createConnection as (options: unknown) => Duplex | null | undefined;
    const Guarded = class extends Base {
      override createConnection(options: http.ClientRequestArgs, callback?: (err: Error | null, stream: Duplex) => void): Duplex | null | undefined {
        const o = options as http.ClientRequestArgs & { servername?: string };
        const host = normalHost(String(o.host ?? o.hostname ?? "localhost"));
        const done = callback ?? (() => {});
        guard.resolve(host).then(
          ({ address }) => {
            const next = { ...o, host: address, ...(key === "https:" && isIP(host) === 0 ? { servername: o.servername || host } : {}) };
            let socket: Duplex | null | undefined;
            try {
              socket = create.call(this, next);
            } catch (e) {
              done(e as Error, undefined as unknown as Duplex);
              return;
            }
            if (socket) done(null, socket);
          },
          (e: Error) => done(e, undefined as unknown as Duplex),
        );
        return undefined;
      }
    };
    const agent = new Guarded({ keepAlive: true });
    this.httpAgents.set(key, agent);
    return agent;
  }

  /** Runs `fn` with this guard as the async context's (requests through `routingDispatcher` use it). */
  run<T>(fn: () => T): T {
    return scope.run(this, fn);
  }

  async close(): Promise<void> {
    for (const a of this.httpAgents.values()) a.destroy();
    this.httpAgents.clear();
    const agent = this.agent;
    this.agent = undefined;
    await agent?.close().catch(() => {});
  }
}

/** The guard of a connector given through the API (its config carries `egress`); undefined for the YAML file's. */
export function egressGuardOf(config: Pick<ConnectorBase, "id"> & { egress?: NetworkPolicyConfig }, unknownField?: string): EgressGuard | undefined {
  return config.egress ? new EgressGuard(networkPolicy(config.egress), config.id, unknownField) : undefined;
}

/** The guard of the current async context, if any. */
export function currentGuard(): EgressGuard | undefined {
  return scope.getStore();
}

/**
 * A dispatcher for clients that take one process-wide (jsforce): each request goes through the
 * guard of its async context (`EgressGuard.run`), else through an ordinary agent.
 */
export class RoutingDispatcher extends Dispatcher {
  private readonly fallback: Dispatcher;
  constructor(fallback: Dispatcher = new Agent({ connect: { allowH2: false } })) {
    super();
    this.fallback = fallback;
  }
  override dispatch(opts: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler): boolean {
    return (scope.getStore()?.dispatcher() ?? this.fallback).dispatch(opts, handler);
  }
  override close(): Promise<void>;
  override close(callback: () => void): void;
  override close(callback?: () => void): Promise<void> | void {
    const p = this.fallback.close();
    if (callback) void p.then(callback, callback);
    else return p;
  }
  override destroy(): Promise<void>;
  override destroy(err: Error | null): Promise<void>;
  override destroy(callback: () => void): void;
  override destroy(err: Error | null, callback: () => void): void;
  override destroy(a?: Error | null | (() => void), b?: () => void): Promise<void> | void {
    const err = typeof a === "function" ? null : (a ?? null);
    const cb = typeof a === "function" ? a : b;
    const p = this.fallback.destroy(err);
    if (cb) void p.then(cb, cb);
    else return p;
  }
}
