/**
 * Apicurio Registry 3.3.3 as a detached java process: its Confluent-compatible API at
 * `http://127.0.0.1:<port>/apis/ccompat/v7`, global compatibility BACKWARD, schemas kept in an H2
 * file under `<stateDir>/registry` (so schema ids survive a restart like Kafka's messages do).
 */
import { mkdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import { StackError, describeError } from "../lib/errors.ts";
import { failure, isOurs, livePid, portOpen, readPid, spawnJava, stopManaged, waitReady, type Managed, type Print, type ServiceStatus } from "./process.ts";
import { APICURIO_VERSION, apicurioHome, fetchApicurio, findJava } from "./tools.ts";

export interface RegistrySpec {
  port: number;
  mgmtPort: number;
  stateDir: string;
  logsDir: string;
}

export const registryUrl = (spec: RegistrySpec): string => `http://127.0.0.1:${spec.port}/apis/ccompat/v7`;

function managed(spec: RegistrySpec): Managed {
  return {
    name: "registry",
    label: `Apicurio Registry ${APICURIO_VERSION}`,
    address: registryUrl(spec),
    pidFile: join(spec.stateDir, "registry.pid"),
    logFile: join(spec.logsDir, "registry.log"),
    marker: (args) => args.some((a) => a === "quarkus-run.jar" || a.endsWith("/quarkus-run.jar")),
  };
}

async function httpGet(url: string, timeoutMs = 3_000): Promise<{ status: number; body: string }> {
  const res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
  return { status: res.status, body: await res.text() };
}

export async function registryProbe(spec: RegistrySpec): Promise<void> {
  const r = await httpGet(`${registryUrl(spec)}/subjects`);
  if (r.status !== 200) throw new Error(`GET /subjects answered ${r.status}`);
}

async function registryCompatibility(spec: RegistrySpec): Promise<string | undefined> {
  const r = await httpGet(`${registryUrl(spec)}/config`);
  if (r.status !== 200) return undefined;
  try {
    const body = JSON.parse(r.body) as { compatibilityLevel?: string; compatibility?: string };
    return body.compatibilityLevel ?? body.compatibility;
  } catch {
    return undefined;
  }
}

/** Makes sure the registry's global compatibility is BACKWARD (the start flag sets it; PUT if not). */
async function ensureBackward(spec: RegistrySpec, print: Print): Promise<void> {
  if ((await registryCompatibility(spec)) === "BACKWARD") return;
  const res = await fetch(`${registryUrl(spec)}/config`, {
    method: "PUT",
    headers: { "content-type": "application/vnd.schemaregistry.v1+json" },
    body: JSON.stringify({ compatibility: "BACKWARD" }),
    signal: AbortSignal.timeout(5_000),
  });
  await res.text();
  const now = await registryCompatibility(spec);
  if (now !== "BACKWARD") {
    throw new Error(`the global compatibility is ${now ?? "unknown"} and PUT /config answered ${res.status}; expected BACKWARD`);
  }
  print("registry: global compatibility set to BACKWARD through PUT /config");
}

export async function upRegistry(spec: RegistrySpec, print: Print): Promise<ServiceStatus> {
  const svc = managed(spec);
  const base = { name: "registry" as const, address: svc.address, log: svc.logFile };
  const probe = () => registryProbe(spec);
  const pid = livePid(svc);
  if (pid !== undefined) {
    await waitReady(svc, probe, () => (isOurs(svc, pid) ? undefined : "the java process is gone"));
    await ensureBackward(spec, print).catch((e: unknown) => {
      throw failure(svc, describeError(e), e);
    });
    print(`registry: already running (pid ${pid}) at ${svc.address}`);
    return { ...base, state: "running", pid, detail: "already running" };
  }
  if (await portOpen(spec.port)) {
    try {
      await probe();
    } catch (e) {
      throw new StackError(
        `${svc.label} failed: port ${spec.port} is taken by a program that does not answer ` +
          `GET /apis/ccompat/v7/subjects (${describeError(e)}). Stop it, or set QOBRA_SYNC_REGISTRY_PORT to a free port.`,
        e,
      );
    }
    const compat = await registryCompatibility(spec).catch(() => undefined);
    print(`registry: a schema registry already answers at ${svc.address} (not started by qobra-sync); using it`);
    return {
      ...base,
      state: "external",
      log: undefined,
      detail: `answering, but not started by qobra-sync (left alone); global compatibility ${compat ?? "unknown"}`,
    };
  }
  if (await portOpen(spec.mgmtPort)) {
    throw new StackError(
      `${svc.label} failed: its management port ${spec.mgmtPort} is taken by another program. Free it, or set QOBRA_SYNC_REGISTRY_MGMT_PORT to another port.`,
    );
  }
  const java = findJava(21, svc.label);
  await fetchApicurio(print);
  const dataDir = join(spec.stateDir, "registry");
  mkdirSync(dataDir, { recursive: true });
  const started = Date.now();
  print(`registry: starting ${svc.label} at ${svc.address} with ${java} (log: ${svc.logFile})`);
  const { child, exited } = spawnJava(
    svc,
    java,
    [
      "-Xms128m",
      "-Xmx512m",
      "-Dquarkus.http.host=127.0.0.1",
      `-Dquarkus.http.port=${spec.port}`,
      "-Dquarkus.management.host=127.0.0.1",
      `-Dquarkus.management.port=${spec.mgmtPort}`,
      "-Dapicurio.rules.global.compatibility=BACKWARD",
      // Default storage is in-memory H2: every restart would forget the schemas (and reuse their ids)
      // while Kafka keeps the messages that reference them. A file keeps the two in step.
      `-Dapicurio.datasource.url=jdbc:h2:file:${join(dataDir, "registry")}`,
      "-jar",
      "quarkus-run.jar",
    ],
    apicurioHome,
  );
  try {
    await waitReady(svc, probe, exited);
    await ensureBackward(spec, print).catch((e: unknown) => {
      throw failure(svc, describeError(e), e);
    });
  } catch (e) {
    await stopManaged(svc, () => undefined).catch(() => undefined);
    rmSync(svc.pidFile, { force: true });
    throw e;
  }
  const secs = ((Date.now() - started) / 1000).toFixed(1);
  print(`registry: ready in ${secs} s (pid ${child.pid})`);
  return { ...base, state: "running", pid: child.pid!, detail: `started, ready in ${secs} s; global compatibility BACKWARD` };
}

export async function downRegistry(spec: RegistrySpec, print: Print): Promise<ServiceStatus> {
  const svc = managed(spec);
  const stopped = await stopManaged(svc, print);
  if (stopped) return stopped;
  if (await portOpen(spec.port)) {
    print(`registry: something answers at ${svc.address} that qobra-sync did not start; left alone`);
    return { name: "registry", state: "external", address: svc.address, detail: "not started by qobra-sync; left alone" };
  }
  return { name: "registry", state: "stopped", address: svc.address, log: svc.logFile, detail: "was not running" };
}

export async function registryStatus(spec: RegistrySpec): Promise<ServiceStatus> {
  const svc = managed(spec);
  const pid = livePid(svc);
  if (pid !== undefined) {
    const ok = await registryProbe(spec).then(
      () => true,
      () => false,
    );
    return {
      name: "registry",
      state: "running",
      pid,
      address: svc.address,
      log: svc.logFile,
      detail: ok ? "answering" : "process alive but not answering yet (starting, or unhealthy: see the log)",
    };
  }
  if (await portOpen(spec.port)) return { name: "registry", state: "external", address: svc.address, detail: "answering, but not started by qobra-sync" };
  return { name: "registry", state: "stopped", address: svc.address, log: svc.logFile };
}

/** The registry's pid when this stack started it and it runs (the chaos suite stops it). */
export function registryPid(spec: RegistrySpec): number | undefined {
  const svc = managed(spec);
  const pid = readPid(svc);
  return pid !== undefined && isOurs(svc, pid) ? pid : undefined;
}
