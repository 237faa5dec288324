/**
 * The configuration file: one YAML document, validated once at start-up with zod.
 * `${env:NAME}` is replaced by that environment variable in the fields marked secret (passwords,
 * client secrets, refresh tokens, API tokens, connection and registry URLs: lib/config-secret.ts)
 * and refused anywhere else. Errors name the path of the bad key and what would fix it, and never
 * show a secret field's value. The shape is a public contract:
 * extend it, don't rename it.
 *
 * This module holds the core of the file (kafka, schemaRegistry, topicPrefix, sink, http), what
 * every connector has (ConnectorBase: what the roles read of a connector), and the parsing. It
 * names no source: each source's connector schema lives in its plugin
 * (producers/connectors/<source>/), and the list of them is given to `configParser` by the
 * composition root (app/config.ts), which the CLI, tests and tools use.
 */
import { readFileSync } from "node:fs";
import { parseDocument } from "yaml";
import { z } from "zod";
import { ConfigError } from "./errors.ts";
import { CURRENCY_CODE, SQL_IDENT, postgresUrl, required, secret, type FieldSpec } from "./config-common.ts";
import { dispatchOn, expandEnv, formatPath } from "./config-secret.ts";
import { parseEndpointUrl } from "./endpoint.ts";
import { allowEntry, type NetworkPolicyConfig } from "./network-policy.ts";
import { maskSecrets, rememberSecret } from "./redact.ts";
import { singleSelectProblem } from "./sql-statement.ts";
import { TENANT_ID, TENANT_PLACEHOLDER, pipelineId, sinkSchemaOf } from "./tenants.ts";

/** Whether a listen address is loopback-only (127.0.0.0/8, ::1, localhost): the only ones allowed without http.tokens. */
export function isLoopbackAddress(host: string): boolean {
  const h = host.toLowerCase().replace(/^\[|\]$/g, "");
  return h === "localhost" || h === "::1" || /^127(\.\d{1,3}){3}$/.test(h);
}

export { FieldSpec, type QobraType } from "./config-common.ts";

/** What every connector's table config has: the Qobra table name and its fields. */
export interface TableConfig {
  name: string;
  fields: Record<string, FieldSpec>;
}

/**
 * What every connector config has, whatever its source: all the producer worker, the mapper, the
 * sink, the scheduler and ops read of it. A source's own keys are its plugin's business.
 */
export interface ConnectorBase {
  /** The pipeline id: `<tenant>.<id>` for a tenant's connector, else the id as written (lib/tenants.ts). */
  id: string;
  type: string;
  /** The tenant the connector belongs to; absent: a single-tenant connector of the YAML file. */
  tenant?: string;
  tables: TableConfig[];
  /** The schedule block (its other keys are the source's); absent: the source's default schedule; `enabled: false`: manual syncs only. */
  schedule?: { enabled: boolean; timezone: string };
  /** The currency of amounts when the record tells none (else sink.defaultCurrency). */
  defaultCurrency?: string;
  /** A full run that would delete more than this share of a table's records stops and asks. */
  massDeleteThreshold?: number;
  /**
   * Set on the connectors given through the API (tenants'), never by an entry: the network policy
   * (`tenantNetwork`) their connections are checked against (lib/network-policy.ts, lib/egress.ts).
   * Absent: a connector of the YAML file, unrestricted.
   */
  egress?: NetworkPolicyConfig;
}

/** A connector config as the roles see it: what every source has (its own keys are its plugin's). */
export type ConnectorConfig = ConnectorBase;

/** A source's connector schema, as the config file's schema needs it. */
interface ConnectorSchema {
  type: string;
  configSchema: z.ZodType<ConnectorBase>;
}

/** One connector entry's schema: the plugin of its `type` validates it; `tenant` makes its id `<tenant>.<id>`. */
function buildConnectorSchema(sources: readonly ConnectorSchema[]) {
  const types = sources.map((s) => s.type);
  const byType = new Map(sources.map((s) => [s.type, s.configSchema] as const));
  const connector = dispatchOn(
    z.custom<unknown>().transform((c, ctx): ConnectorBase => {
      const type = (c as { type?: unknown } | null)?.type;
      const schema = typeof type === "string" ? byType.get(type) : undefined;
      if (schema) {
        // `tenant` is the pipeline's key, not the source's: taken off before the plugin's schema sees the entry.
        const { tenant: rawTenant, ...entry } = c as Record<string, unknown>;
        const tenant = rawTenant === undefined ? undefined : TENANT_ID.safeParse(rawTenant);
        if (tenant && !tenant.success)
          for (const issue of tenant.error.issues) ctx.addIssue({ code: "custom", path: ["tenant"], message: humanMessage(issue) });
        const r = schema.safeParse(entry);
        if (r.success && (!tenant || tenant.success)) {
          const t = tenant?.data;
          return t === undefined ? r.data : { ...r.data, tenant: t, id: pipelineId(t, r.data.id) };
        }
        if (!r.success) for (const issue of r.error.issues) ctx.addIssue({ code: "custom", path: issue.path, message: humanMessage(issue) });
        return z.NEVER;
      }
      ctx.addIssue({
        code: "custom",
        path: ["type"],
        message:
          type === undefined
            ? `is required: the connector type (${types.join(", ")})`
            : `unknown connector type ${JSON.stringify(type)}; this version supports ${types.join(", ")}`,
      });
      return z.NEVER;
    }),
    // For `${env:}` checks: which fields of a connector are secret depends on its type.
    (c) => {
      const type = (c as { type?: unknown } | null)?.type;
      return typeof type === "string" ? byType.get(type) : undefined;
    },
  );
  return connector;
}

/** The config file's schema, for the given connector types (in the order they are listed to users). */
function buildConfigSchema(sources: readonly ConnectorSchema[]) {
  const connector = buildConnectorSchema(sources);
  return z
    .strictObject({
      kafka: z
        .strictObject({
          brokers: z
            .array(z.string().regex(/^[^:\s]+:\d+$/, { error: "must be host:port" }))
            .min(1, { error: "list at least one broker host:port" })
            .describe("The Kafka bootstrap brokers, as host:port."),
          clientId: z.string().default("qobra-sync").describe("The Kafka client id of every connection (brokers' logs and quotas)."),
          partitions: z
            .number()
            .int()
            .min(1)
            .default(3)
            .describe("Partitions of the topics the pipeline creates (but sync.requests and sync.tasks: requestPartitions)."),
          requestPartitions: z
            .number()
            .int()
            .min(1)
            .default(12)
            .describe(
              "Partitions of sync.requests and sync.tasks when the pipeline creates them: how many producer worker processes (group members) can share the requests. A long run does not hold up the other connectors of its partition (each worker runs producer.concurrentRuns connectors at once; docs/scaling.md). An existing topic keeps its partitions.",
            ),
          replicationFactor: z.number().int().min(1).default(1).describe("Replicas of the topics the pipeline creates (3 on a production cluster)."),
          minInsyncReplicas: z
            .number()
            .int()
            .min(1)
            .optional()
            .describe(
              "min.insync.replicas of the topics the pipeline creates: how many replicas must have a write before it is acknowledged (every producer sends with acks=all). Default: 2 when replicationFactor is 3 or more (one broker may be lost without losing an acknowledged record or stopping writes), else the broker's own setting.",
            ),
          sessionTimeoutMs: z
            .number()
            .int()
            .min(1000)
            .default(6000)
            .describe(
              "Consumer group session timeout of every role (producer worker, mapper, sink): how long a member that stopped heartbeating (killed, paused, cut off) keeps its partitions. Must lie within the broker's group.min/max.session.timeout.ms (6 s to 30 min by default).",
            ),
          heartbeatIntervalMs: z
            .number()
            .int()
            .min(100)
            .default(1000)
            .describe("How often a role's consumer heartbeats; also how soon a member learns that its group is rebalancing. Below sessionTimeoutMs / 3."),
          rebalanceTimeoutMs: z
            .number()
            .int()
            .min(1000)
            .default(60_000)
            .describe("How long a rebalance waits for a live member to finish its batch and rejoin before the group goes on without it."),
          transactionTimeoutMs: z
            .number()
            .int()
            .min(1000)
            .default(15_000)
            .describe(
              "Timeout of the mapper's Kafka transactions: an open transaction nobody takes over is aborted by the broker after this long (a mapper that takes a partition over aborts its predecessor's at once).",
            ),
        })
        .superRefine((k, ctx) => {
          if (k.minInsyncReplicas !== undefined && k.minInsyncReplicas > k.replicationFactor)
            ctx.addIssue({
              code: "custom",
              path: ["minInsyncReplicas"],
              message: `must be at most replicationFactor (${k.replicationFactor}): no write could ever be acknowledged`,
            });
          if (k.heartbeatIntervalMs * 3 > k.sessionTimeoutMs)
            ctx.addIssue({
              code: "custom",
              path: ["heartbeatIntervalMs"],
              message: `must be at most a third of sessionTimeoutMs (${k.sessionTimeoutMs}), so that a heartbeat or two may be lost without losing the partitions`,
            });
        })
        .describe("The Kafka cluster the pipeline runs on."),
      schemaRegistry: z
        .strictObject({
          url: secret(
            z.string().refine((u) => /^https?$/.test(parseEndpointUrl(u)?.scheme ?? ""), {
              error:
                "must be the registry's Confluent-compatible base URL, e.g. http://127.0.0.1:8080/apis/ccompat/v7 (the value is not shown: it may hold a password)",
            }),
          ).describe(
            "The schema registry's Confluent-compatible base URL (Apicurio: /apis/ccompat/v7); https://user:password@host/… gives basic-auth credentials.",
          ),
          username: z.string().optional().describe("Basic-auth user of the registry, if it asks for one."),
          password: secret(z.string()).optional().describe("Basic-auth password of the registry (use ${env:NAME})."),
        })
        .describe("The schema registry holding the mapped topics' Avro schemas."),
      topicPrefix: z
        .string()
        .regex(/^[A-Za-z0-9._-]+$/, { error: "may hold letters, digits, '.', '_' and '-' only" })
        .default("qobra")
        .describe("The prefix of every topic name (<prefix>.raw.<connector>, <prefix>.mapped.<connector>.<table>, …)."),
      sink: z
        .strictObject({
          databaseUrl: postgresUrl(required("the postgres:// URL of Qobra's database")).describe(
            "The postgres:// URL of Qobra's database, where the sink writes.",
          ),
          schema: z
            .string()
            .regex(SQL_IDENT, { error: "must be a plain SQL identifier" })
            .default("qobra_data")
            .describe("The schema of the sink tables (<connector>__<table>) of connectors without a tenant, and of the pipeline's own tables."),
          tenantSchema: z
            .string()
            .refine((t) => t.includes(TENANT_PLACEHOLDER) && /^[A-Za-z_][A-Za-z0-9_]*$/.test(t.split(TENANT_PLACEHOLDER).join("t")), {
              error: `must hold ${TENANT_PLACEHOLDER} and otherwise letters, digits and _ (e.g. qobra_${TENANT_PLACEHOLDER})`,
            })
            .default(`qobra_${TENANT_PLACEHOLDER}`)
            .describe(`The schema of a tenant's sink tables: ${TENANT_PLACEHOLDER} is replaced by the tenant id (its - kept: the name is quoted).`),
          defaultCurrency: CURRENCY_CODE.describe("The currency of amounts when neither the record, the field nor the connector tells one."),
          batchSize: z
            .number()
            .int()
            .min(1)
            .max(50_000)
            .default(5000)
            .describe(
              "Records written per PostgreSQL transaction at most (each batch is COPYed into a temporary table and merged with one INSERT … ON CONFLICT).",
            ),
          users: z
            .strictObject({
              query: z
                .string()
                .superRefine((q, ctx) => {
                  const problem = singleSelectProblem(q);
                  if (problem) ctx.addIssue({ code: "custom", message: problem });
                })
                .default("SELECT id, email FROM qobra.users")
                .describe(
                  "Qobra's users: an `id` column plus the key columns user fields match (email by default, or a field's userKey). Where it uses $1, it runs once per tenant with $1 = the tenant id (NULL for connectors without a tenant), and a tenant's user fields match only its own users. One SELECT only (no other statement, data-modifying WITH, INTO or FOR UPDATE/SHARE), run in a READ ONLY transaction.",
                ),
              refreshSeconds: z
                .number()
                .int()
                .min(5)
                .default(300)
                .describe("How often the in-memory user index is reloaded (also on a miss, at most once a minute)."),
            })
            .default({ query: "SELECT id, email FROM qobra.users", refreshSeconds: 300 })
            .describe("How user fields are resolved against Qobra's users."),
        })
        .describe("Qobra's PostgreSQL, which the sink keeps in step."),
      producer: z
        .strictObject({
          retryForSeconds: z
            .number()
            .int()
            .min(0)
            .max(86_400)
            .default(300)
            .describe(
              "How long a run waits out a failure that may pass (a refused connection, a source's 5xx, a broker or registry restart), retrying the table with backoff from its last saved cursor, before the run fails. 0: fail at once.",
            ),
          concurrentRuns: z
            .number()
            .int()
            .min(1)
            .max(256)
            .default(4)
            .describe(
              "Connectors one producer worker process runs at once, whichever sync.requests partitions their requests share (a long run holds one of them, never the connectors behind it); also the split tasks it serves at once. Add worker processes to serve more.",
            ),
        })
        .default({ retryForSeconds: 300, concurrentRuns: 4 })
        .describe("The producer workers' runs."),
      scheduler: z
        .strictObject({
          spreadMinutes: z
            .number()
            .int()
            .min(0)
            .max(59)
            .default(30)
            .describe(
              "Each connector's scheduled runs start a stable number of seconds after their set times, derived from a hash of its id and below this many minutes (and below the gap between a rule's minutes: an every-15-minutes rule keeps its period), so that connectors sharing a schedule do not all start at one instant. 0: exactly at the set times.",
            ),
        })
        .default({ spreadMinutes: 30 })
        .describe("The scheduler role's scheduled runs."),
      connectors: z.array(connector).default([]).describe("The sources to sync: one entry per connector, whose other keys depend on its type."),
      tenantNetwork: z
        .strictObject({
          allow: z
            .array(
              z.string().refine((e) => allowEntry(e) !== undefined, {
                error: "must be a CIDR (10.20.0.0/16, fd00::/8), an address (10.20.1.5) or an exact host name (crm.example.com)",
              }),
            )
            .default([])
            .describe(
              "Addresses and hosts that connectors given through the API (tenants') may reach although they lie in a refused range: CIDRs or addresses (checked against every address a host resolves to) and exact host names (trusted whatever they resolve to). Refused by default: loopback, unspecified, private (10/8, 172.16/12, 192.168/16, fc00::/7), link-local (169.254/16, fe80::/10: metadata services), carrier-grade NAT (100.64/10), multicast and reserved ranges, and their IPv4-in-IPv6 forms (docs/security.md).",
            ),
        })
        .default({ allow: [] })
        .describe(
          "Where connectors given through the API may connect: not to the pipeline's own network (its sink, Kafka, the registry, metadata services, internal hosts) unless listed here. The config file's connectors are not restricted.",
        ),
      http: z
        .strictObject({
          port: z.number().int().min(0).max(65535).default(7070).describe("Port of the HTTP server (0: any free port)."),
          host: z
            .string()
            .default("127.0.0.1")
            .describe(
              "Interface to listen on. Without `tokens` only a loopback address is accepted (127.0.0.1, ::1, localhost) and a random operator token is generated at start (see docs/operations.md).",
            ),
          stallSeconds: z
            .number()
            .int()
            .min(1)
            .default(60)
            .describe("/healthz fails when a consumer group has lag and its committed offsets have not moved for this long."),
          tokens: z
            .array(
              z.strictObject({
                token: secret(
                  z
                    .string(required("an API token, e.g. ${env:QOBRA_API_TOKEN}"))
                    .min(32, { error: "is too short: use at least 32 characters of random data (generate one with `openssl rand -base64 32`)" }),
                ).describe("An API token (use ${env:NAME}): service calls send `Authorization: Bearer <token>`, and the page logs in with it."),
                tenants: z
                  .array(
                    z.string().regex(/^(\*|[a-z][a-z0-9_-]*)$/, {
                      error: 'must be "*" (an operator: every connector) or a tenant id (lower-case letters, digits, - and _)',
                    }),
                  )
                  .min(1, { error: 'list the tenants the token reaches: ["*"] for an operator' })
                  .describe('What the token reaches: ["*"] for an operator (every connector and route); tenant ids take effect with multi-tenancy.'),
              }),
            )
            .min(1, { error: "list at least one token, or remove the key (the server then generates one and listens on loopback only)" })
            .optional()
            .describe(
              "Who may use the page and the API. Without it the server listens on loopback only and generates an operator token at start, written to <stack dir>/http-token-<port> (`qobra-sync web-token` prints it).",
            ),
          allowedHosts: z
            .array(
              z
                .string()
                .regex(/^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?)$/, { error: "must be a host name or address, without scheme or port" }),
            )
            .default([])
            .describe(
              "Other Host names the server answers to (e.g. the public name a reverse proxy forwards); localhost, 127.0.0.1, [::1] and http.host always are. Others are refused (DNS rebinding).",
            ),
          publicUrl: z
            .string()
            .refine(
              (v) => {
                try {
                  const u = new URL(v);
                  return (u.protocol === "http:" || u.protocol === "https:") && !u.search && !u.hash && !u.username && !u.password;
                } catch {
                  return false;
                }
              },
              { error: "must be an http(s) URL without query, fragment or credentials, e.g. https://sync.example.com" },
            )
            .optional()
            .describe(
              "The URL users reach the server at (e.g. behind a reverse proxy); the settings page's OAuth Authorize redirects to <publicUrl>/oauth/callback, which is the redirect URL to register with the provider. Default: http://<host>:<port> of the server. Its host must be one the server answers to (http.allowedHosts).",
            ),
          sessionHours: z.number().min(0.01).max(720).default(12).describe("Lifetime of a page login (the session cookie), in hours."),
          secureCookie: z
            .boolean()
            .default(false)
            .describe("Mark the session cookie Secure: set it when a TLS-terminating proxy serves the page over https (plain http is this server's own)."),
          maxStreams: z.number().int().min(1).max(10_000).default(20).describe("Open /api/stream connections at most, in total (beyond: 503)."),
          maxStreamsPerSession: z
            .number()
            .int()
            .min(1)
            .max(1000)
            .default(4)
            .describe("Open /api/stream connections at most per session or token (beyond: 429)."),
          protectMetrics: z
            .boolean()
            .default(false)
            .describe(
              'Require an operator token (Bearer or a page session of a token with tenants ["*"]) for /metrics and /healthz too: they name every tenant\'s connectors; by default they are open, under the Host check, for scrapers and probes.',
            ),
        })
        .superRefine((h, ctx) => {
          if (h.tokens === undefined && !isLoopbackAddress(h.host))
            ctx.addIssue({
              code: "custom",
              path: ["host"],
              message: `${JSON.stringify(h.host)} is not a loopback address: a server reachable from other machines needs http.tokens (or keep 127.0.0.1)`,
            });
          const seen = new Set<string>();
          h.tokens?.forEach((t, i) => {
            if (seen.has(t.token)) ctx.addIssue({ code: "custom", path: ["tokens", i, "token"], message: "repeats another token of the list" });
            seen.add(t.token);
          });
        })
        .optional()
        .describe("Serve /metrics, /healthz and the integration-settings page from `qobra-sync run` (see docs/operations.md)."),
    })
    .superRefine((c, ctx) => {
      const seen = new Set<string>();
      c.connectors.forEach((conn, i) => {
        if (conn.tenant !== undefined && sinkSchemaOf(c.sink, conn) === c.sink.schema)
          ctx.addIssue({
            code: "custom",
            path: ["connectors", i, "tenant"],
            message: `${JSON.stringify(conn.tenant)} would write into ${c.sink.schema}, the sink's own schema (sink.tenantSchema gives it that name); choose another tenant id or change sink.tenantSchema`,
          });
        if (seen.has(conn.id)) ctx.addIssue({ code: "custom", path: ["connectors", i, "id"], message: `duplicate connector id ${conn.id}` });
        seen.add(conn.id);
        const names = new Set<string>();
        conn.tables.forEach((t, j) => {
          if (names.has(t.name))
            ctx.addIssue({ code: "custom", path: ["connectors", i, "tables", j, "name"], message: `duplicate table name ${t.name} in connector ${conn.id}` });
          names.add(t.name);
        });
      });
    });
}

/** A parsed config; `C` is the connectors' type (the composition root narrows it to the plugins' union). */
export type Config<C extends ConnectorBase = ConnectorBase> = Omit<z.output<ReturnType<typeof buildConfigSchema>>, "connectors"> & { connectors: C[] };

/** Parses, validates and reads config files against the schema built from the given connector types. */
export function configParser(sources: readonly ConnectorSchema[]) {
  const schema = buildConfigSchema(sources);

  /** Parses and validates a configuration document. Throws ConfigError listing every problem. */
  function parse(text: string, source = "config", env: NodeJS.ProcessEnv = process.env): Config {
    const doc = parseDocument(text, { prettyErrors: true });
    if (doc.errors.length > 0) {
      throw new ConfigError(`${source} is not valid YAML: ${doc.errors.map((e) => yamlProblem(e.message)).join("; ")}`);
    }
    let tree: unknown;
    try {
      tree = doc.toJS() ?? {};
    } catch (e) {
      // An alias whose anchor is missing (a value starting with `*`) throws here, not in doc.errors.
      throw new ConfigError(`${source} is not valid YAML: ${yamlProblem((e as Error).message)}`);
    }
    const { value: raw, problems: envProblems, secrets } = expandEnv(tree, schema, env);
    for (const s of secrets) rememberSecret(s);
    if (envProblems.length > 0) throw new ConfigError(`${source}: ${envProblems.join("; ")}`);
    const result = schema.safeParse(raw);
    if (!result.success) {
      const problems = result.error.issues.map((i) => `${formatPath(i.path)}: ${humanMessage(i)}`);
      throw new ConfigError(withoutSecrets(`${source} is invalid: ${problems.join("; ")}`, secrets));
    }
    return result.data;
  }

  /** Reads the config file named by --config, QOBRA_SYNC_CONFIG, or ./qobra-sync.yaml. */
  function load(file?: string, env: NodeJS.ProcessEnv = process.env): { config: Config; file: string } {
    const path = file ?? env.QOBRA_SYNC_CONFIG ?? "qobra-sync.yaml";
    let text: string;
    try {
      text = readFileSync(path, "utf8");
    } catch (e) {
      throw new ConfigError(
        `cannot read the config file ${path} (${(e as NodeJS.ErrnoException).code ?? String(e)}); pass --config FILE or set QOBRA_SYNC_CONFIG`,
      );
    }
    return { config: parse(text, path, env), file: path };
  }

  const connectorSchema = buildConnectorSchema(sources);

  /**
   * Validates one connector entry given through the connectors API (the JSON form of a YAML entry,
   * without `id` and `tenant`: the path gives them), with the same schema as the file. Unlike the
   * file, an entry from the API may not read the server's environment: `${env:NAME}` is refused
   * everywhere (a tenant could otherwise send the server's own secrets to a host of its choosing).
   * Throws ConfigError naming each bad field; secret values are never echoed.
   */
  function parseConnector(entry: unknown, where: { tenant: string; id: string }): ConnectorBase {
    if (entry === null || typeof entry !== "object" || Array.isArray(entry))
      throw new ConfigError("the connector must be a JSON object (a YAML connector entry without id and tenant)");
    const problems: string[] = [];
    for (const k of ["id", "tenant"])
      if (k in entry) problems.push(`${k}: is taken from the path (/api/tenants/<tenant>/connectors/<id>); remove it from the body`);
    const tree = { ...(entry as Record<string, unknown>), id: where.id };
    const { secrets } = expandEnv(tree, connectorSchema, {});
    for (const s of secrets) if (s.length > 0) rememberSecret(s);
    const walk = (v: unknown, path: Array<string | number>): void => {
      if (typeof v === "string" && /\$\{env:/.test(v))
        problems.push(`${formatPath(path)}: \`\${env:…}\` is not allowed in connectors given through the API; write the value itself (it is stored encrypted)`);
      else if (Array.isArray(v)) for (const [i, x] of v.entries()) walk(x, [...path, i]);
      else if (v && typeof v === "object") for (const [k, x] of Object.entries(v)) walk(x, [...path, k]);
    };
    walk(tree, []);
    if (problems.length === 0) {
      const r = connectorSchema.safeParse({ ...tree, tenant: where.tenant });
      if (r.success) return r.data;
      problems.push(...r.error.issues.map((i) => `${formatPath(i.path)}: ${humanMessage(i)}`));
    }
    // Each problem apart too ("<field>: <message>"): the API answers them one by one (ops/connectors-api.ts).
    throw Object.assign(new ConfigError(withoutSecrets(`the connector is invalid: ${problems.join("; ")}`, secrets)), {
      problems: problems.map((p) => withoutSecrets(p, secrets)),
    });
  }

  return { schema, connectorSchema, parse, parseConnector, load };
}

/**
 * A YAML error's first line, without the source text some messages quote ("Unresolved tag: !x",
 * "Aliased anchor not found: x"): it could be a piece of a password. Line and column stay.
 */
function yamlProblem(message: string): string {
  const first = message.split("\n")[0] ?? message;
  const at = / at line \d+, column \d+/.exec(first)?.[0] ?? "";
  const colon = first.indexOf(": ");
  return `${colon >= 0 ? first.slice(0, colon) : first.replace(/ at line \d+, column \d+:?$/, "")}${at}`;
}

/**
 * A config error's text with every secret field's value masked (a custom message could echo its
 * input), and any credential-bearing URL (lib/redact.ts). Values under five characters are left:
 * masking them would garble the message's own words.
 */
function withoutSecrets(text: string, secrets: readonly string[]): string {
  let out = maskSecrets(text);
  for (const s of secrets) if (s.length >= 5 && out.includes(s)) out = out.split(s).join("***");
  return out;
}

function humanMessage(issue: z.core.$ZodIssue): string {
  if (issue.code === "unrecognized_keys")
    return `unknown key${issue.keys.length > 1 ? "s" : ""} ${issue.keys.join(", ")}; check the spelling against the README's config reference`;
  if (issue.code === "invalid_type" && issue.input === undefined) return `is required (${issue.message})`;
  return issue.message;
}

export function findConnector<C extends ConnectorBase>(config: { connectors: C[] }, id: string): C {
  const c = config.connectors.find((x) => x.id === id);
  if (!c) throw new ConfigError(`no connector ${JSON.stringify(id)} in the config; known: ${config.connectors.map((x) => x.id).join(", ") || "(none)"}`);
  return c;
}
