/**
 * Progress of long commands (`sync --wait`, `replay`): a bar with records read, mapped and
 * written on a terminal (one line, redrawn), plain lines otherwise (on each phase change and at
 * most every `plainEveryMs`), nothing with --json (the command prints its JSON result).
 */
import type { Progress } from "../lib/wait.ts";
import { formatCount, formatDuration } from "./time.ts";

interface Counts {
  phase: string;
  read: number | null;
  mapped: number | null;
  written: number | null;
  total: number | null;
  note?: string;
}

export function bar(done: number, total: number, width = 24): string {
  const f = total > 0 ? Math.min(1, Math.max(0, done / total)) : 1;
  const full = Math.floor(f * width);
  const partial = f * width - full;
  const tail = full < width ? (partial >= 0.5 ? "▌" : " ") : "";
  return `[${"█".repeat(full)}${tail}${" ".repeat(Math.max(0, width - full - tail.length))}] ${String(Math.floor(f * 100)).padStart(3)}%`;
}

/** One line: `writing [█████     ]  42% · read 10,000 · mapped 10,000 · written 4,200 / 10,000 · 12 s`. */
function formatCounts(c: Counts, elapsedMs: number, withBar: boolean): string {
  const n = (v: number | null) => (v === null ? "…" : formatCount(v));
  const cur = c.phase === "reading" ? c.read : c.phase === "mapping" ? c.mapped : c.written;
  const parts = [c.phase.padEnd(7)];
  if (withBar && c.total !== null && c.total > 0 && c.phase !== "reading") parts.push(bar(cur ?? 0, c.total));
  const body = [`read ${n(c.read)}`, `mapped ${n(c.mapped)}`, `written ${n(c.written)}${c.total !== null ? ` / ${formatCount(c.total)}` : ""}`];
  const line = `${parts.join(" ")} · ${body.join(" · ")} · ${formatDuration(elapsedMs)}`;
  return c.note ? `${line} · ${c.note}` : line;
}

interface Renderer {
  update(c: Counts): void;
  end(): void;
}

export function createRenderer(opts: { tty: boolean; json: boolean; write?: (s: string) => void; plainEveryMs?: number; now?: () => number }): Renderer {
  const write = opts.write ?? ((s: string) => process.stdout.write(s));
  const now = opts.now ?? Date.now;
  const started = now();
  let lastPhase = "";
  let lastPlainAt = 0;
  let lastLine = "";
  let open = false;
  return {
    update(c) {
      if (opts.json) return;
      const line = formatCounts(c, now() - started, opts.tty);
      if (opts.tty) {
        if (line === lastLine) return;
        lastLine = line;
        write(`\r\x1b[2K${line}`);
        open = true;
        if (c.phase === "done") {
          write("\n");
          open = false;
        }
        return;
      }
      const t = now();
      if (c.phase !== lastPhase || c.phase === "done" || t - lastPlainAt >= (opts.plainEveryMs ?? 5000)) {
        if (line === lastLine) return;
        lastPhase = c.phase;
        lastPlainAt = t;
        lastLine = line;
        write(`${line}\n`);
      }
    },
    end() {
      if (open) {
        write("\n");
        open = false;
      }
    },
  };
}

/**
 * `sync --wait`: turns lib/wait.ts's Progress (events while the producer reads, then the mapper's
 * and the sink's remaining records) into read / mapped / written counts.
 */
export function syncProgress(opts: {
  json: boolean;
  tty?: boolean;
  write?: (s: string) => void;
  plainEveryMs?: number;
  now?: () => number;
}): (p: Progress) => void {
  const r = createRenderer({
    tty: opts.tty ?? process.stdout.isTTY === true,
    json: opts.json,
    write: opts.write,
    plainEveryMs: opts.plainEveryMs,
    now: opts.now,
  });
  let read = 0,
    mappedByEvents = 0,
    total: number | null = null;
  let startMapLag: number | null = null;
  let table: string | null = null;
  return (p) => {
    const e = p.event;
    if (e?.type === "PROGRESS" && e.stage === "mapper") mappedByEvents += (e.counts.mapped ?? 0) + (e.counts.dlq ?? 0);
    else if (e?.type === "PROGRESS" && e.counts.read !== undefined) {
      read = Math.max(read, e.counts.read);
      table = e.table;
    } else if (e?.type === "TABLE_COMPLETED") table = null;
    else if (e?.type === "RUN_COMPLETED") {
      read = e.counts.read ?? read;
      total = (e.counts.read ?? 0) + (e.counts.deleted ?? 0);
    }
    read = Math.max(read, p.read);
    if (p.phase === "reading") {
      r.update({ phase: "reading", read, mapped: mappedByEvents, written: null, total, note: table ? `table ${table}` : undefined });
    } else if (p.phase === "mapping") {
      startMapLag ??= p.mappedLag;
      const t = total ?? startMapLag;
      const mapped = Math.max(mappedByEvents, t - p.mappedLag);
      r.update({ phase: "mapping", read, mapped: Math.min(t, mapped), written: null, total: t });
    } else if (p.phase === "writing") {
      const t = total ?? read;
      r.update({ phase: "writing", read, mapped: t, written: Math.max(0, t - p.sinkLag), total: t });
    } else {
      const t = total ?? read;
      r.update({ phase: "done", read, mapped: t, written: t, total: t });
      r.end();
    }
  };
}
