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
import { ConfigError, SourceUnavailableError } from "../../../lib/errors.ts";
import { describeEndpoint, driverUrl } from "../../../lib/endpoint.ts";
import type { PostgresConnection } from "./config.ts";

const pemOrFile = (v: string | undefined): string | undefined => (v === undefined ? undefined : v.includes("-----BEGIN") ? v : readFileSync(v, "utf8"));

/** Where the connection goes, for messages: host:port/database (never a URL, a user or a password). */
export function describeTarget(c: PostgresConnection): string {
  if (c.url) return describeEndpoint(c.url);
  if (c.cloudSql) return `Cloud SQL instance ${c.cloudSql.instanceConnectionName} (database ${c.database})`;
  return `${c.host}:${c.port}/${c.database}`;
}

export async function pgClientConfig(c: PostgresConnection, connectorId: string): Promise<{ config: pg.ClientConfig; close: () => Promise<void> }> {
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
