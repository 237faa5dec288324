/*
 * The integration-settings page's script (ops/web/index.html; no inline script: the server's
 * Content-Security-Policy allows this origin's files only). It logs in with a token (POST
 * /api/login sets an HttpOnly session cookie and returns the session's CSRF token), then renders
 * GET /api/state and follows /api/stream; every write sends the CSRF token in X-CSRF-Token.
 * Everything shown is escaped (esc) before it is put in the page. Loaded as a module (strict mode).
 */
import { initConnectors } from "/connectors.js";
import { esc, formBody, hourSelects, render, spread, state } from "/render.js";

class ApiError extends Error {
  constructor(status, message, problems) {
    super(message);
    this.status = status;
    this.problems = problems;
  }
}

async function api(method, path, body) {
  const headers = {};
  if (body !== undefined) headers["content-type"] = "application/json";
  if (method !== "GET" && state.csrf) headers["x-csrf-token"] = state.csrf;
  const res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), credentials: "same-origin" });
  const text = await res.text();
  let data = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = { error: text };
  }
  if (res.status === 401 && path !== "/api/login") {
    showLogin("Your session has ended: log in again.");
    throw new ApiError(401, "not logged in");
  }
  if (!res.ok)
    throw new ApiError(
      res.status,
      data?.error || res.statusText,
      Array.isArray(data?.problems) ? data.problems.map((p) => (p?.field ? `${p.field}: ${p.message}` : String(p?.message ?? p))) : undefined,
    );
  return data;
}

document.addEventListener("click", async (ev) => {
  const b = ev.target.closest("button[data-action]");
  if (!b) return;
  const id = b.dataset.connector || b.closest("[data-connector]")?.dataset.connector;
  const c = state.data?.connectors.find((x) => x.id === id);
  if (!c) return;
  const action = b.dataset.action;
  if (action === "refresh" || action === "full") {
    const full = action === "full" || !c.incremental;
    b.disabled = true;
    try {
      const r = await api("POST", `/api/connectors/${encodeURIComponent(id)}/sync`, { full });
      state.pending.set(r.runId, { runId: r.runId, connector: id, full, at: Date.now() });
      state.message.set(id, { text: `${full ? "Full" : "Incremental"} sync requested (run ${r.runId}).`, runId: r.runId });
    } catch (e) {
      state.message.set(id, { text: `Could not request the sync: ${e.message}`, bad: true });
    }
    render();
  } else if (action === "replay") {
    b.disabled = true;
    try {
      const r = await api("POST", `/api/connectors/${encodeURIComponent(id)}/replay`, {});
      state.message.set(id, { text: `Replay started (run ${r.runId}): its progress shows under Last runs.`, runId: r.runId });
    } catch (e) {
      state.message.set(id, { text: `Could not start the replay: ${e.message}`, bad: true });
    }
    render();
  } else if (action === "edit-schedule") {
    state.editing.add(id);
    render();
  } else if (action === "cancel-schedule") {
    state.editing.delete(id);
    render();
  } else if (action === "reset-schedule") {
    try {
      await api("DELETE", `/api/connectors/${encodeURIComponent(id)}/schedule`);
      state.editing.delete(id);
      await refresh();
    } catch (e) {
      setFormMessage(id, e.message, true);
    }
  }
});

document.addEventListener("change", (ev) => {
  const input = ev.target;
  const name = input.dataset?.hoursCount;
  if (!name) return;
  const form = input.closest("form.edit");
  const n = Math.max(Number(input.min) || 1, Math.min(Number(input.max) || 24, Number(input.value) || 1));
  const slot = form.querySelector(`[data-hours="${CSS.escape(name)}"]`);
  const current = [...slot.querySelectorAll('select[name="hour"]')].map((el) => Number(el.value));
  if (current.length === n) return; // nothing to change (a second change event, e.g. on blur)
  slot.innerHTML = hourSelects(spread(n));
});

document.addEventListener("submit", async (ev) => {
  const form = ev.target.closest("form.edit");
  if (!form) return;
  ev.preventDefault();
  const id = form.dataset.connector;
  const c = state.data.connectors.find((x) => x.id === id);
  const body = formBody(c, form);
  try {
    await api("PUT", `/api/connectors/${encodeURIComponent(id)}/schedule`, body);
    state.editing.delete(id);
    state.message.set(id, { text: "Schedule saved." });
    await refresh();
  } catch (e) {
    setFormMessage(id, e.message, true);
  }
});

function setFormMessage(id, text, bad) {
  const el = document.querySelector(`form.edit[data-connector="${CSS.escape(id)}"] [data-field="schedule-message"]`);
  if (el) {
    el.textContent = text;
    el.classList.toggle("bad-text", Boolean(bad));
  }
}

function accept(d) {
  state.data = d;
  for (const [runId, p] of state.pending)
    if (Date.now() - p.at > 600000 || d.connectors.some((c) => c.runs.some((r) => r.runId === runId))) state.pending.delete(runId);
  for (const [id, m] of state.message) {
    const run = m.runId && d.connectors.find((c) => c.id === id)?.runs.find((r) => r.runId === m.runId);
    if (run && (run.phase === "done" || run.status === "failed")) state.message.delete(id);
  }
  render();
}

async function refresh() {
  try {
    accept(await api("GET", "/api/state"));
  } catch (e) {
    if (e.status !== 401) document.getElementById("banner").innerHTML = `<div class="banner bad">Cannot reach qobra-sync: ${esc(e.message)}</div>`;
  }
}

// Live updates: server-sent events after each sample; polling if the stream is unavailable.
let poller = null;
function startPolling() {
  if (!poller) poller = setInterval(refresh, 2000);
}
function stopLive() {
  if (state.stream) {
    state.stream.close();
    state.stream = null;
  }
  if (poller) {
    clearInterval(poller);
    poller = null;
  }
}
function startLive() {
  stopLive();
  if (!window.EventSource) return startPolling();
  const es = new EventSource("/api/stream");
  state.stream = es;
  es.addEventListener("state", (e) => {
    accept(JSON.parse(e.data));
  });
  es.onerror = () => {
    startPolling();
  };
  es.onopen = () => {
    if (poller) {
      clearInterval(poller);
      poller = null;
    }
  };
}

// Login: the form posts the token once; the session cookie (HttpOnly) carries the login afterwards.
function showLogin(message) {
  stopLive();
  state.csrf = null;
  document.getElementById("app").hidden = true;
  document.getElementById("health").hidden = true;
  document.getElementById("logout").hidden = true;
  document.getElementById("login").hidden = false;
  document.getElementById("login-message").textContent = message || "";
  document.getElementById("login-token").focus();
}

function showApp(session) {
  state.csrf = session.csrfToken;
  document.getElementById("login").hidden = true;
  document.getElementById("app").hidden = false;
  document.getElementById("health").hidden = false;
  document.getElementById("logout").hidden = session.via !== "session";
  state.operator = session.operator;
  initConnectors(api, session);
  // An operator sees the whole pipeline; a tenant the same view of its connectors only: their
  // cards, runs, lag and health (the server filters /api/state and /api/stream, ops/page-state.ts).
  refresh();
  startLive();
}

document.getElementById("login-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const input = document.getElementById("login-token");
  try {
    const session = await api("POST", "/api/login", { token: input.value });
    input.value = "";
    showApp(session);
  } catch (e) {
    document.getElementById("login-message").textContent = e.status === 401 ? "Wrong token." : `Cannot log in: ${e.message}`;
  }
});

document.getElementById("logout").addEventListener("click", async () => {
  try {
    await api("POST", "/api/logout");
  } catch {}
  showLogin("Logged out.");
});

(async () => {
  try {
    showApp(await api("GET", "/api/session"));
  } catch (e) {
    if (e.status !== 401) showLogin(`Cannot reach qobra-sync: ${e.message}`);
  }
})();
