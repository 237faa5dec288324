/** Where the project keeps things: its root, the download cache, and the local stack's state and logs. */
import { homedir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

export const projectRoot = resolve(fileURLToPath(new URL("..", import.meta.url)));

/** Downloaded jars and Node builds, shared by every clone on the machine. */
export const cacheDir = process.env.QOBRA_SYNC_CACHE ?? join(process.env.XDG_CACHE_HOME ?? join(homedir(), ".cache"), "qobra-sync");

/** The local stack's data, pid files and logs (one known folder: `<stackDir>/logs`). */
export const stackDir = process.env.QOBRA_SYNC_STACK_DIR ?? join(projectRoot, ".stack");
export const logsDir = join(stackDir, "logs");
