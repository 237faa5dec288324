/**
 * Opens a connection to a PostgreSQL source from the connector's `connection` config: a URL,
 * discrete fields with TLS options, or a Cloud SQL instance through Google's Cloud SQL Node.js
 * connector (IAM database authentication as a service account). Every failure becomes one clear
 * error naming the connector and what to do. A connection is named by host, port and database
 * only, never by its URL (lib/endpoint.ts); a URL reaches the driver with its user-info encoded,
 * so a password holding `#`, `/`, `?` or `@` stays the password.
 */
import { existsSync, readFileSync } from "node:fs";
import type pg from "pg";
import { isIP } from "node:net";
import type { EgressGuard } from "../../../lib/egress.ts";
import { ConfigError, SourceUnavailableError } from "../../../lib/errors.ts";
import { describeEndpoint, driverUrl, parseEndpointUrl } from "../../../lib/endpoint.ts";
import { NetworkRefusedError } from "../../../lib/network-policy.ts";
import type { ConnectorEndpoint } from "../../connector.ts";
import type { PostgresConnection } from "./config.ts";

const pemOrFile = (v: string | undefined): string | undefined => (v === undefined ? undefined : v.includes("-----BEGIN") ? v : readFileSync(v, "utf8"));

/** Where the connection goes, for messages: host:port/database (never a URL, a user or a password). */
export function describeTarget(c: PostgresConnection): string {
  if (c.url) return describeEndpoint(c.url);
  if (c.cloudSql) return `Cloud SQL instance ${c.cloudSql.instanceConnectionName} (database ${c.database})`;
  return `${c.host}:${c.port}/${c.database}`;
}

/** A connection URL's query parameters (undefined for a URL that does not parse). */
function urlQuery(url: string): URLSearchParams | undefined {
  const p = parseEndpointUrl(url);
  return p ? new URLSearchParams(p.rest.replace(/^[^?]*\??/, "").replace(/#.*$/, "")) : undefined;
}

/** URL query parameters that move the connection elsewhere than the URL's host (libpq's, which node-postgres reads). */
const HOST_PARAMS = ["host", "hostaddr"];

/**
 * Where a connection goes, for the network policy of tenants' connectors: the URL's host (a
 * `host`/`hostaddr` query parameter is refused: it would override it, possibly with a Unix
 * socket), the host field, or a problem for cloudSql (it logs in with the pipeline's own Google
 * credentials: Application Default Credentials come from the metadata server).
 */
export function postgresEndpoints(c: PostgresConnection): ConnectorEndpoint[] {
  return [...hostEndpoints(c), ...localFileProblems(c)];
}

/**
 * URL query parameters naming files of the machine that connects: node-postgres (pg-connection-string)
 * reads sslrootcert, sslcert and sslkey from disk; libpq's others are refused too, in case a driver
 * reads them.
 */
const FILE_PARAMS = ["sslrootcert", "sslcert", "sslkey", "sslcrl", "sslcrldir", "passfile", "service", "servicefile"];

/**
 * What in a tenant's connection would make the pipeline read a file of its own machines (a path in
 * ssl.ca / ssl.cert / ssl.key, which a file connector may give; a file query parameter of the URL):
 * refused, for the tenant's own PEM text only. The value is never echoed.
 */
function localFileProblems(c: PostgresConnection): ConnectorEndpoint[] {
  const out: ConnectorEndpoint[] = [];
  for (const k of ["ca", "cert", "key"] as const) {
    const v = c.ssl?.[k];
    if (v !== undefined && !v.includes("-----BEGIN"))
      out.push({
        field: `connection.ssl.${k}`,
        problem: "must be the PEM text itself (-----BEGIN …) in connectors given through the API: a path would be read from the pipeline's own machines",
      });
  }
  if (c.url) {
    const query = urlQuery(c.url);
    const named = FILE_PARAMS.filter((k) => query?.has(k));
    if (named.length > 0)
      out.push({
        field: "connection.url",
        problem: `the ${named.join(", ")} query parameter${named.length > 1 ? "s name files" : " names a file"} of the pipeline's own machines, not accepted in connectors given through the API; give ssl.ca / ssl.cert / ssl.key as PEM text`,
      });
  }
  return out;
}

function hostEndpoints(c: PostgresConnection): ConnectorEndpoint[] {
  if (c.url) {
    const p = parseEndpointUrl(c.url);
    const query = urlQuery(c.url);
    const override = HOST_PARAMS.find((k) => query?.has(k));
    if (override)
      return [
        {
          field: "connection.url",
          problem: `a ${override}= query parameter is not accepted in connectors given through the API; write the host before the path`,
        },
      ];
    return [{ field: "connection.url", host: p?.host ?? "" }];
  }
  if (c.host !== undefined) return [{ field: "connection.host", host: c.host }];
  return [
    {
      field: "connection.cloudSql",
      problem:
        "is not available to connectors given through the API: the Cloud SQL connector signs in with the pipeline's own Google credentials (the metadata server's) or a key file on its machines; give url or host",
    },
  ];
}

/**
 * The client config of a tenant's connector: its host resolved and checked (lib/egress.ts), and the
 * connection made to the checked address (not resolved again, so that a name cannot point
 * elsewhere in between); TLS still verifies the certificate against the host name.
 */
async function guardedClientConfig(c: PostgresConnection, connectorId: string, guard: EgressGuard, ssl: pg.ClientConfig["ssl"]): Promise<pg.ClientConfig> {
  const [endpoint] = postgresEndpoints(c);
  if (!endpoint) throw new ConfigError(`connector ${connectorId}: no host to connect to`);
  if ("problem" in endpoint) throw new NetworkRefusedError(connectorId, endpoint.field, endpoint.problem);
  const host = endpoint.host.replace(/^\[|\]$/g, "");
  const { address } = await guard.resolve(host, endpoint.field);
  const tls = ssl && typeof ssl === "object" && isIP(host) === 0 ? { ...ssl, servername: host } : ssl;
  if (c.url) {
    const p = parseEndpointUrl(c.url)!;
    const at = isIP(address) === 6 ? `[${address}]` : address;
    const userInfo = p.user !== undefined ? `${encodeURIComponent(p.user)}${p.password !== undefined ? `:${encodeURIComponent(p.password)}` : ""}@` : "";
    return { connectionString: `${p.scheme}://${userInfo}${at}${p.port !== undefined ? `:${p.port}` : ""}${p.rest}`, ...(tls ? { ssl: tls } : {}) };
  }
  return { host: address, port: c.port, database: c.database, user: c.user, password: c.password, ...(tls ? { ssl: tls } : {}) };
}

export async function pgClientConfig(
  c: PostgresConnection,
  connectorId: string,
  guard?: EgressGuard,
): Promise<{ config: pg.ClientConfig; close: () => Promise<void> }> {
  if (guard) {
    // Before anything is read or resolved: a tenant's connection names no file of this machine.
    const refused = localFileProblems(c)[0];
    if (refused && "problem" in refused) throw new ConfigError(`connector ${connectorId}: ${refused.field}: ${refused.problem}`);
  }
  const ssl: pg.ClientConfig["ssl"] =
    !c.ssl || c.ssl.mode === "disable"
      ? undefined
      : {
          rejectUnauthorized: c.ssl.mode !== "require",
          ...(c.ssl.ca ? { ca: pemOrFile(c.ssl.ca) } : {}),
          ...(c.ssl.cert ? { cert: pemOrFile(c.ssl.cert) } : {}),
          ...(c.ssl.key ? { key: pemOrFile(c.ssl.key) } : {}),
          ...(c.ssl.mode === "verify-ca" ? { checkServerIdentity: () => undefined } : {}),
        };
  if (guard) return { config: await guardedClientConfig(c, connectorId, guard, ssl), close: async () => {} };
  if (c.url) return { config: { connectionString: driverUrl(c.url), ...(ssl ? { ssl } : {}) }, close: async () => {} };
  if (c.host)
    return { config: { host: c.host, port: c.port, database: c.database, user: c.user, password: c.password, ...(ssl ? { ssl } : {}) }, close: async () => {} };
  const cloud = c.cloudSql!;
  if (cloud.credentialsFile && !existsSync(cloud.credentialsFile)) {
    throw new ConfigError(
      `connector ${connectorId}: the service-account key file ${cloud.credentialsFile} does not exist; download a key for the service account or remove credentialsFile to use Application Default Credentials`,
    );
  }
  const { Connector, IpAddressTypes, AuthTypes } = await import("@google-cloud/cloud-sql-connector");
  const { GoogleAuth } = await import("google-auth-library");
  const auth = new GoogleAuth({
    scopes: ["https://www.googleapis.com/auth/sqlservice.admin"],
    ...(cloud.credentialsFile ? { keyFile: cloud.credentialsFile } : {}),
  });
  const connector = new Connector({ auth });
  try {
    const opts = await connector.getOptions({
      instanceConnectionName: cloud.instanceConnectionName,
      ipType: IpAddressTypes[cloud.ipType],
      authType: cloud.iamAuth ? AuthTypes.IAM : AuthTypes.PASSWORD,
    });
    return {
      config: { ...opts, database: c.database, user: c.user, ...(cloud.iamAuth ? {} : { password: c.password }) } as pg.ClientConfig,
      close: async () => connector.close(),
    };
  } catch (e) {
    connector.close();
    throw new SourceUnavailableError(
      `connector ${connectorId}: the Cloud SQL connector could not reach instance ${cloud.instanceConnectionName} (${(e as Error).message}); ` +
        "check the instance connection name, that the service account has roles/cloudsql.client (and cloudsql.instanceUser for IAM login), and that this machine can reach sqladmin.googleapis.com",
      e,
    );
  }
}

/** Turns a driver error into the message a user can act on. */
export function connectionError(e: unknown, connectorId: string, target: string, table?: string): Error {
  const err = e as { code?: string; message?: string };
  const where = `connector ${connectorId}${table ? `, table ${table}` : ""}: PostgreSQL at ${target}`;
  switch (err.code) {
    case "28P01":
    case "28000":
      return new ConfigError(`${where} refused the credentials (${err.message}); check the user and password of the connection`, e);
    case "3D000":
      return new ConfigError(`${where}: ${err.message}; check the database name of the connection`, e);
    case "42501":
      return new ConfigError(`${where}: permission denied (${err.message}); GRANT SELECT on the table (and USAGE on its schema) to the connector's user`, e);
    case "ENOTFOUND":
    case "EAI_AGAIN":
      return new SourceUnavailableError(`${where}: the host name does not resolve (${err.message}); check the host`, e);
    case "ECONNREFUSED":
      return new SourceUnavailableError(`${where} refused the connection (${err.message}); is the server running and listening on that port?`, e);
    case "ETIMEDOUT":
      return new SourceUnavailableError(`${where} did not answer (${err.message}); check the host, port and firewall`, e);
    case "DEPTH_ZERO_SELF_SIGNED_CERT":
    case "SELF_SIGNED_CERT_IN_CHAIN":
    case "UNABLE_TO_VERIFY_LEAF_SIGNATURE":
    case "ERR_TLS_CERT_ALTNAME_INVALID":
      return new ConfigError(
        `${where}: the server's TLS certificate was not accepted (${err.message}); give ssl.ca, or ssl.mode: require to encrypt without checking`,
        e,
      );
  }
  if (/does not support SSL|The server does not support SSL/i.test(err.message ?? ""))
    return new ConfigError(`${where} does not accept TLS; set ssl.mode: disable (or enable TLS on the server)`, e);
  if (/timeout expired|Connection terminated due to connection timeout/i.test(err.message ?? ""))
    return new SourceUnavailableError(`${where} did not answer in time; check the host, port and firewall`, e);
  if (e instanceof ConfigError || e instanceof SourceUnavailableError) return e;
  return new SourceUnavailableError(`${where}: ${err.message ?? String(e)}`, e);
}
