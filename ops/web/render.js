/*
 * The integration-settings page's rendering (imported by app.js): the page's state and the HTML of
 * each part (connector cards, schedules and their edit form, runs, lag). Everything shown is
 * escaped (esc) before it is put in the page; nothing here sets a style attribute (the page's
 * Content-Security-Policy refuses them; bar widths go through the CSSOM in render()).
 */
export const state = { data: null, pending: new Map(), editing: new Set(), message: new Map(), csrf: null, stream: null, operator: false };

export const esc = (v) => String(v ?? "").replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
const num = (n) => (n === null || n === undefined ? "—" : Number(n).toLocaleString("en-US"));
function dur(ms) {
  if (ms === null || ms === undefined) return "—";
  const s = Math.round(ms / 1000);
  if (ms < 10000) return (Math.round(ms / 100) / 10).toFixed(1) + " s";
  if (s < 60) return s + " s";
  if (s < 3600) return Math.floor(s / 60) + " min " + String(s % 60).padStart(2, "0") + " s";
  if (s < 86400) return Math.floor(s / 3600) + " h " + String(Math.floor((s % 3600) / 60)).padStart(2, "0") + " min";
  return Math.floor(s / 86400) + " d " + Math.floor((s % 86400) / 3600) + " h";
}
const ago = (t) => (t ? `<span title="${esc(new Date(t).toISOString())}">${dur(Date.now() - t)} ago</span>` : "—");
const when = (t) =>
  t ? `<span title="${esc(new Date(t).toISOString())}">${esc(new Date(t).toLocaleString("en-GB", { dateStyle: "short", timeStyle: "medium" }))}</span>` : "—";

function runStatus(r) {
  if (r.status === "failed") return `<span class="pill bad">failed</span>`;
  if (r.status === "coalesced") return `<span class="pill info">coalesced</span>`;
  if (r.status === "running") return `<span class="pill warn">${r.kind === "replay" ? "replaying" : "reading"}</span>`;
  if (r.phase === "mapping" || r.phase === "writing") return `<span class="pill warn">${r.phase}</span>`;
  if (r.phase === "done") return `<span class="pill ok">completed</span>`;
  return `<span class="pill ok">completed</span> <span class="muted small">(read)</span>`;
}

function progressBlock(c) {
  const r = c.active;
  const pend = [...state.pending.values()].filter((p) => p.connector === c.id && !c.runs.some((x) => x.runId === p.runId));
  if (!r && pend.length === 0) return "";
  if (!r) {
    const p = pend[0];
    return `<div class="progress" data-field="progress" data-phase="requested">Sync ${esc(p.full ? "(full)" : "(incremental)")} requested · run <code>${esc(p.runId.slice(0, 8))}</code> · waiting for a producer worker…</div>`;
  }
  let label,
    pct = null;
  if (r.status === "running" && r.kind === "replay") {
    const total = r.counts.records || 0,
      mapped = r.counts.mapped || 0;
    label = `Replaying from Kafka (no source call): ${num(mapped)} / ${num(total)} mapped`;
    pct = total ? mapped / total : null;
  } else if (r.status === "running") {
    label = `Reading${r.currentTable ? " " + esc(r.currentTable) : ""}: ${num(r.read)} records read · ${num(r.mapped)} mapped`;
  } else {
    const total = (r.read || 0) + (r.deleted || 0);
    const left = r.remaining ?? total;
    label = `${r.phase === "mapping" ? "Mapping" : "Writing to Qobra"}: ${num(r.remaining)} records left · ${num(r.read)} read · ${num(r.mapped)} mapped`;
    pct = total ? Math.max(0, Math.min(1, 1 - left / total)) : null;
    if (r.phase === "writing" && pct !== null) pct = 0.5 + pct / 2;
    else if (pct !== null) pct = pct / 2;
  }
  return `<div class="progress" data-field="progress" data-phase="${esc(r.status === "running" ? "reading" : r.phase)}" data-run="${esc(r.runId)}">
    <div><strong>${r.full ? "Full" : "Incremental"} ${r.kind === "replay" ? "replay" : "sync"}</strong> · run <code>${esc(r.runId.slice(0, 8))}</code> · started ${ago(r.startedAt)} · ${label}</div>
    <div class="bar"><span data-pct="${pct === null ? 12 : Math.round(pct * 100)}"${pct === null ? ' class="unknown"' : ""}></span></div></div>`;
}

// Where the schedule comes from (s.origin): the source's default, the config file, or an edit from this page.
const ORIGINS = { default: "default schedule", config: "from the config file", edited: "edited on this page" };

function scheduleBlock(c) {
  const s = c.schedule;
  const times =
    s.times.length > 48
      ? ""
      : `<span class="hours" data-field="schedule-hours">${s.times.map((t) => `<span class="${t.kind === "incremental" ? "" : esc(t.kind)}" title="${esc(t.kind)}">${esc(t.at)}</span>`).join("")}</span>`;
  // Each job's kind and its next fire times (the next 24 hours, in the schedule's zone).
  const jobs =
    s.jobs.length === 0
      ? ""
      : `<ul class="jobs" data-field="schedule-jobs">${s.jobs
          .map(
            (j) =>
              `<li data-kind="${esc(j.kind)}"><strong>${esc(j.kind)}</strong> · next: ${
                j.next.length === 0
                  ? "none in 24 h"
                  : esc(
                      j.next
                        .slice(0, 6)
                        .map((n) => n.slice(11, 16))
                        .join(", "),
                    ) + (j.next.length > 6 ? ` … (${j.next.length} in 24 h)` : "")
              }${j.next.length ? ` <span class="muted">(${esc(j.next[0].slice(0, 10))}, ${esc(j.next[0].slice(19))})</span>` : ""}</li>`,
          )
          .join("")}</ul>`;
  return `<div class="schedule"><strong data-field="schedule-count">${s.enabled ? s.perDay + " refresh" + (s.perDay > 1 ? "es" : "") + " a day" : "Manual only"}</strong>
    ${times}<span class="pill info" data-field="schedule-origin" data-origin="${esc(s.origin)}">${esc(ORIGINS[s.origin] || s.origin)}</span><span class="muted small" data-field="schedule-summary">${esc(s.summary)}${s.overridden ? ` · edited ${s.updatedAt ? ago(Date.parse(s.updatedAt)) : ""}` : ""}</span>
    <button data-action="edit-schedule" data-connector="${esc(c.id)}">Edit schedule</button></div>${jobs}
    <div data-slot="schedule-form" data-connector="${esc(c.id)}"></div>`;
}

// The schedule's edit form: the controls the source's plugin describes (c.scheduleForm, see
// ScheduleFormField in producers/connector.ts), then the zone and the switch every schedule has.
export function scheduleForm(c) {
  const s = c.schedule.settings;
  const tz = `<label>Time zone <input name="timezone" value="${esc(s.timezone || "UTC")}" size="18"></label>`;
  const en = `<label><input type="checkbox" name="enabled" ${s.enabled !== false ? "checked" : ""}> Scheduled refreshes enabled</label>`;
  const fields = c.scheduleForm.map((f) => formField(f, s)).join("\n      ");
  return `<form class="edit" data-connector="${esc(c.id)}">${fields}${tz}${en}
    <div class="form-actions"><button class="primary" type="submit">Save schedule</button><button type="button" data-action="cancel-schedule">Cancel</button>
    ${c.schedule.overridden ? `<button type="button" data-action="reset-schedule">Back to the config file</button>` : ""}
    <span class="small muted" data-field="schedule-message"></span></div>
    <div class="small muted">Edits are stored in Qobra's database (${esc(state.data.sinkSchema)}._qobra_sync_settings) and read by the scheduler role.</div></form>`;
}

function formField(f, s) {
  const v = s[f.name];
  const name = esc(f.name),
    label = esc(f.label);
  if (f.kind === "hours") {
    const hours = Array.isArray(v) && v.length ? v : spread(Number(s[f.count.name]) || f.count.min);
    return `<label>${esc(f.count.label)} <input type="number" name="${esc(f.count.name)}" min="${f.count.min}" max="${f.count.max}" value="${hours.length}" data-hours-count="${name}"></label>
      <div><span class="small muted">${label}</span> <span data-slot="hours" data-hours="${name}">${hourSelects(hours)}</span></div>`;
  }
  if (f.kind === "time") return `<label>${label} <input type="time" name="${name}" value="${typeof v === "string" ? esc(v) : ""}"></label>`;
  if (f.kind === "number")
    return `<label>${label} <input type="number" name="${name}" min="${f.min}" max="${f.max}" value="${esc(v)}">${f.suffix ? " " + esc(f.suffix) : ""}</label>`;
  if (f.kind === "select")
    return `<label>${label} <select name="${name}">${f.options.map((o) => `<option value="${esc(o.value)}" ${o.value === v ? "selected" : ""}>${esc(o.label)}</option>`).join("")}</select></label>`;
  return "";
}

// The schedule edit the form's controls make (the server's plugin hook reconciles what depends on them).
export function formBody(c, form) {
  const f = new FormData(form);
  const body = { timezone: f.get("timezone"), enabled: f.get("enabled") === "on" };
  for (const field of c.scheduleForm) {
    if (field.kind === "hours") body[field.name] = [...form.querySelectorAll(`[data-hours="${CSS.escape(field.name)}"] select`)].map((el) => Number(el.value));
    else if (field.kind === "number") body[field.name] = Number(f.get(field.name));
    else if (field.kind === "select") {
      const o = field.options.find((x) => String(x.value) === f.get(field.name));
      body[field.name] = o ? o.value : f.get(field.name);
    } else body[field.name] = f.get(field.name);
  }
  return body;
}

export const spread = (n) => Array.from({ length: n }, (_, i) => Math.floor((i * 24) / n));
export const hourSelects = (hours) =>
  hours
    .map(
      (h) =>
        `<select name="hour">${Array.from({ length: 24 }, (_, k) => `<option value="${k}" ${k === h ? "selected" : ""}>${String(k).padStart(2, "0")}:00</option>`).join("")}</select>`,
    )
    .join(" ");

function connectorCard(c) {
  const busy = c.active && c.active.status === "running";
  const refreshTitle = c.incremental
    ? "Incremental: what changed since the last successful run"
    : `${c.title} sources have no incremental: a refresh reads the whole table`;
  const tables = c.tables
    .map(
      (t) => `<tr data-table="${esc(t.name)}">
      <td><strong>${esc(t.name)}</strong><div class="muted small">${esc(t.relation)}</div></td>
      <td class="num" data-field="rows">${t.exists ? num(t.live) : '<span class="muted">no table yet</span>'}</td>
      <td class="num" data-field="deleted">${t.exists ? num(t.deleted) : "—"}</td>
      <td data-field="last-success">${t.lastSuccess ? when(t.lastSuccess.startedAt) + ` <span class="muted small">${t.lastSuccess.full ? "full" : "incremental"}</span>` : '<span class="muted">never</span>'}</td>
      <td data-field="staleness">${t.stalenessMs === null ? "—" : `<span class="pill ${t.stalenessMs > 86400000 ? "bad" : t.stalenessMs > 6 * 3600000 ? "warn" : "ok"}">${dur(t.stalenessMs)}</span>`}</td>
      <td data-field="last-synced">${ago(t.lastSyncedAt)}</td>
      <td class="num" data-field="dlq">${t.dlq ? `<span class="pill bad">${num(t.dlq)}</span>` : "0"}</td></tr>`,
    )
    .join("");
  const runs = c.runs
    .map((r) => {
      const api = r.apiUsed !== null ? `${num(r.apiUsed)}${r.apiLimit ? " / " + num(r.apiLimit) : ""}` : "—";
      return `<tr data-run="${esc(r.runId)}" data-status="${esc(r.status)}" data-phase="${esc(r.phase)}">
      <td>${when(r.startedAt ?? r.endedAt)}</td><td>${r.kind === "replay" ? "replay" : r.full ? "full" : "incremental"}</td>
      <td data-field="status">${runStatus(r)}</td><td class="num">${dur(r.durationMs)}</td>
      <td class="num" data-field="read">${r.kind === "replay" ? num(r.counts.records) : num(r.read)}</td><td class="num">${num(r.deleted)}</td>
      <td class="num">${num(r.mapped)}</td><td class="num">${r.dlq ? `<span class="pill bad">${num(r.dlq)}</span>` : "0"}</td>
      <td class="num">${num(r.unresolvedUsers)}</td><td class="num">${api}</td>
      <td class="err">${esc(r.error ?? "")}</td></tr>`;
    })
    .join("");
  const msg = state.message.get(c.id);
  return `<section class="card" data-connector="${esc(c.id)}">
    <div class="card-head"><h2>${esc(c.id)}</h2><span class="type">${esc(c.type)}</span>
      <span class="muted small">${num(c.totals.runs.completed)} completed · ${num(c.totals.runs.failed)} failed runs${c.totals.apiUsed !== null ? ` · API ${num(c.totals.apiUsed)}${c.totals.apiLimit ? " / " + num(c.totals.apiLimit) : ""}` : ""}</span>
      <div class="actions">
        <button class="primary" data-action="refresh" data-connector="${esc(c.id)}" title="${esc(refreshTitle)}" ${busy ? "disabled" : ""}>Refresh</button>
        <button data-action="full" data-connector="${esc(c.id)}" title="Read everything again from the source (also detects deletes)" ${busy ? "disabled" : ""}>Full resync</button>
        <button data-action="replay" data-connector="${esc(c.id)}" title="Rebuild its Qobra tables from the raw topic, without calling the source; every sync keeps running" ${busy ? "disabled" : ""}>Replay</button>
      </div></div>
    ${msg ? `<div class="small msg ${msg.bad ? "banner bad" : "muted"}">${esc(msg.text)}</div>` : ""}
    ${progressBlock(c)}
    <h3>Schedule</h3>${scheduleBlock(c)}
    <h3>Tables</h3>
    <table><thead><tr><th>Qobra table</th><th class="num">Rows</th><th class="num">Deleted</th><th>Last successful sync</th><th>Staleness</th><th>Last write</th><th class="num">Dead letters</th></tr></thead><tbody>${tables}</tbody></table>
    <h3>Last runs</h3>
    ${c.runs.length ? `<table data-field="runs"><thead><tr><th>Started</th><th>Kind</th><th>Status</th><th class="num">Duration</th><th class="num">Read</th><th class="num">Deleted</th><th class="num">Mapped</th><th class="num">DLQ</th><th class="num">Unresolved users</th><th class="num">API calls</th><th>Error</th></tr></thead><tbody>${runs}</tbody></table>` : '<p class="muted">No run yet.</p>'}
  </section>`;
}

function lagBlock(d) {
  const groups = d.lag.groups
    .map(
      (g) => `<tr data-group="${esc(g.group)}"><td class="name"><strong>${esc(g.group)}</strong></td><td>${esc(g.role)}</td>
    <td>${g.members} <span class="muted small">${esc(g.state)}</span></td><td class="num" data-field="group-lag">${num(g.lag)}</td>
    <td>${g.oldestUnprocessedAt ? dur(Date.now() - g.oldestUnprocessedAt) : "—"}</td>
    <td>${g.healthy ? (g.lag > 0 ? '<span class="pill warn">catching up</span>' : '<span class="pill ok">up to date</span>') : `<span class="pill bad">stalled ${dur(g.stalledMs)}</span>`}</td></tr>`,
    )
    .join("");
  const parts = d.lag.partitions
    .filter((p) => p.lag > 0 || p.committed >= 0)
    .map(
      (p) => `<tr data-partition="${esc(p.group + "/" + p.topic + "/" + p.partition)}">
    <td class="name">${esc(p.group)}</td><td class="name">${esc(p.topic)}</td><td class="num">${p.partition}</td><td class="num">${p.committed < 0 ? "—" : num(p.committed)}</td>
    <td class="num">${num(p.end)}</td><td class="num" data-field="lag">${p.lag ? `<strong>${num(p.lag)}</strong>` : "0"}</td><td>${p.oldestUnprocessedAt ? dur(Date.now() - p.oldestUnprocessedAt) : "—"}</td></tr>`,
    )
    .join("");
  return `<div class="grid2"><div><h3>Groups</h3><table><thead><tr><th>Group</th><th>Role</th><th>Members</th><th class="num">Lag</th><th>Oldest waiting</th><th>Health</th></tr></thead><tbody>${groups}</tbody></table>
    <p class="small muted">Dead letters: mapper ${num(d.dlq.mapper)} · sink ${num(d.dlq.sink)}</p></div>
    <div><h3>Partitions</h3><table><thead><tr><th>Group</th><th>Topic</th><th class="num">P</th><th class="num">Committed</th><th class="num">End</th><th class="num">Lag</th><th>Oldest waiting</th></tr></thead><tbody>${parts || '<tr><td colspan="7" class="muted">nothing consumed yet</td></tr>'}</tbody></table></div></div>`;
}

export function render() {
  const d = state.data;
  if (!d) return;
  const h = document.getElementById("health");
  h.className = "pill " + (d.health.ok ? "ok" : "bad");
  h.textContent = d.health.ok ? "healthy" : "unhealthy";
  h.title = d.health.problems.join("\n");
  document.getElementById("meta").textContent =
    `prefix ${d.topicPrefix} · sink schema ${d.sinkSchema} · updated ${new Date(d.generatedAt).toLocaleTimeString("en-GB")}${d.ready ? "" : " · loading history…"}`;
  const problems = [...d.health.problems, ...d.errors];
  document.getElementById("banner").innerHTML = problems.length ? `<div class="banner bad" data-testid="problems">${problems.map(esc).join("<br>")}</div>` : "";
  // Keep open schedule forms as they are while the rest refreshes.
  const forms = new Map();
  for (const id of state.editing) {
    const f = document.querySelector(`form.edit[data-connector="${CSS.escape(id)}"]`);
    if (f) forms.set(id, f);
  }
  document.getElementById("connectors").innerHTML =
    d.connectors.map(connectorCard).join("") ||
    `<div class="card muted">${state.operator ? "No connector in the configuration." : "No connector of yours yet: add one below."}</div>`;
  for (const id of state.editing) {
    const slot = document.querySelector(`[data-slot="schedule-form"][data-connector="${CSS.escape(id)}"]`);
    const c = d.connectors.find((x) => x.id === id);
    if (!slot || !c) continue;
    if (forms.has(id)) slot.appendChild(forms.get(id));
    else slot.innerHTML = scheduleForm(c);
  }
  // Bar widths through the CSSOM (style attributes in markup are refused by the page's CSP).
  for (const el of document.querySelectorAll(".bar > span[data-pct]")) el.style.width = `${el.dataset.pct}%`;
  document.getElementById("lag").innerHTML = lagBlock(d);
  document.getElementById("lag-at").textContent = d.lag.at ? "sampled " + new Date(d.lag.at).toLocaleTimeString("en-GB") : "";
}
