/*
 * The page's connector editor (imported by app.js): a tenant's connectors, and a form per source
 * type built from the plugin's config schema (GET /api/connector-types, ops/connector-forms.ts).
 * Save sends the entry to PUT /api/tenants/<t>/connectors/<id>; the server validates it with the
 * config file's schema and its errors name the field, shown under the form. Secrets are shown as
 * ******** (the server never returns them); leaving the mask in place keeps the stored value.
 * "Test connection" runs the connector's checks, "Sync now" requests a full sync, "Authorize"
 * (sources with OAuth) asks the server for the provider's authorize URL and opens it: the provider
 * redirects back to the server's /oauth/callback, which stores the refresh token (ops/oauth-web.ts).
 * Everything shown is escaped (esc).
 */
import { esc } from "/render.js";

const MASK = "********";
const ed = { api: null, forms: null, tenant: null, connectors: [], editing: null, message: null, operator: false, tenants: [] };

export function initConnectors(api, session) {
  ed.api = api;
  ed.operator = session.operator;
  ed.tenants = Array.isArray(session.tenants) ? session.tenants : [];
  const input = document.getElementById("tenant-id");
  if (!ed.operator && ed.tenants.length > 0 && !ed.tenant) ed.tenant = ed.tenants[0];
  if (ed.tenant) input.value = ed.tenant;
  document.getElementById("tenant-connectors").hidden = false;
  if (ed.tenant) void load();
}

async function forms() {
  ed.forms ??= (await ed.api("GET", "/api/connector-types")).types;
  return ed.forms;
}

const base = () => `/api/tenants/${encodeURIComponent(ed.tenant)}/connectors`;

async function load() {
  try {
    await forms().catch(() => []); // which types have OAuth (the list's Authorize)
    const r = await ed.api("GET", base());
    ed.connectors = r.connectors;
    ed.loadError = null;
  } catch (e) {
    ed.connectors = [];
    ed.loadError = e.message;
  }
  draw();
}

const get = (obj, path) => path.split(".").reduce((o, k) => (o && typeof o === "object" ? o[k] : undefined), obj);
function set(obj, path, value) {
  const keys = path.split(".");
  let o = obj;
  for (const k of keys.slice(0, -1)) o = o[k] ??= {};
  o[keys.at(-1)] = value;
}

function inputFor(f, value) {
  const name = `f:${f.path}`;
  const title = f.description ? ` title="${esc(f.description)}"` : "";
  const req = f.required ? ' <span class="bad-text">*</span>' : "";
  const label = `<span class="mono">${esc(f.path)}</span>${req}`;
  if (f.kind === "boolean")
    return `<label${title}><input type="checkbox" name="${esc(name)}"${value === true || (value === undefined && f.default === true) ? " checked" : ""}> ${label}</label>`;
  if (f.kind === "enum")
    return `<label${title}>${label} <select name="${esc(name)}"><option value=""></option>${f.options
      .map((o) => `<option${o === value ? " selected" : ""}>${esc(o)}</option>`)
      .join("")}</select></label>`;
  if (f.kind === "json")
    return `<label${title}>${label} <input name="${esc(name)}" data-json="1" value="${esc(value === undefined ? "" : JSON.stringify(value))}" placeholder="JSON"></label>`;
  const type = f.secret ? "password" : f.kind === "string" ? "text" : "number";
  const placeholder = f.default !== undefined ? ` placeholder="${esc(f.default)}"` : "";
  return `<label${title}>${label} <input type="${type}" name="${esc(name)}" value="${esc(value ?? "")}"${placeholder} autocomplete="off"${f.secret ? ' data-secret="1"' : ""}></label>`;
}

function editorHtml(forms) {
  const e = ed.editing;
  const form = forms.find((f) => f.type === e.type) ?? forms[0];
  const entry = e.entry ?? {};
  const tables = entry.tables ?? form.tablesExample;
  return `<form class="editor connector-form" id="connector-form" data-testid="connector-form" method="post">
    <div class="form-row"><label>Id <input name="connectorId" value="${esc(e.id ?? "")}" ${e.existing ? "readonly" : ""} required pattern="[a-z][a-z0-9_-]*" placeholder="crm"></label>
    <label>Type <select name="type" ${e.existing ? "disabled" : ""}>${forms
      .map((f) => `<option value="${esc(f.type)}"${f.type === form.type ? " selected" : ""}>${esc(f.title)}</option>`)
      .join("")}</select></label></div>
    <div class="form-grid">${form.fields.map((f) => inputFor(f, get(entry, f.path))).join("")}</div>
    <label class="block">Tables (JSON: the name in Qobra, the source, the id and name columns, and the fields with their Qobra types)
      <textarea name="tables" rows="8" spellcheck="false">${esc(JSON.stringify(tables, null, 2))}</textarea></label>
    <div class="form-actions">
      <button class="primary" type="submit">Save</button>
      <button type="button" data-editor="cancel">Cancel</button>
      <span class="small" data-field="editor-message" data-testid="editor-message"></span>
    </div>
  </form>`;
}

function readForm(form, type, forms) {
  const def = forms.find((f) => f.type === type);
  const entry = { type };
  const problems = [];
  for (const f of def.fields) {
    const el = form.elements.namedItem(`f:${f.path}`);
    if (!el) continue;
    if (f.kind === "boolean") {
      if (el.checked || f.default === true) set(entry, f.path, el.checked);
      continue;
    }
    const v = el.value.trim();
    if (v === "") continue;
    if (f.kind === "json") {
      try {
        set(entry, f.path, JSON.parse(v));
      } catch {
        problems.push(`${f.path}: is not valid JSON`);
      }
    } else if (f.kind === "number" || f.kind === "integer") set(entry, f.path, Number(v));
    else set(entry, f.path, v);
  }
  try {
    entry.tables = JSON.parse(form.elements.namedItem("tables").value);
  } catch {
    problems.push("tables: is not valid JSON");
  }
  return { entry, problems };
}

const hasOAuth = (type) => Boolean(ed.forms?.find((f) => f.type === type)?.oauth);

function listHtml() {
  if (ed.loadError) return `<p class="bad-text small">${esc(ed.loadError)}</p>`;
  if (ed.connectors.length === 0) return `<p class="muted small">No connector for this tenant yet.</p>`;
  return `<table class="tenant-connectors"><thead><tr><th>Id</th><th>Type</th><th>Updated</th><th></th></tr></thead><tbody>${ed.connectors
    .map(
      (c) =>
        `<tr data-tenant-connector="${esc(c.id)}"><td class="mono">${esc(c.id)}</td><td>${esc(c.type)}</td><td class="small muted">${esc(
          c.readOnly ? "config file (read-only)" : (c.updatedAt ?? ""),
        )}</td><td class="actions">${
          c.readOnly
            ? ""
            : `<button type="button" data-editor="edit" data-id="${esc(c.id)}">Edit</button><button type="button" data-editor="delete" data-id="${esc(c.id)}">Remove</button>${
                hasOAuth(c.type) ? `<button type="button" data-editor="authorize" data-id="${esc(c.id)}">Authorize</button>` : ""
              }`
        }<button type="button" data-editor="check" data-id="${esc(c.id)}">Test connection</button><button type="button" data-editor="sync" data-id="${esc(c.id)}">Sync now</button></td></tr>`,
    )
    .join("")}</tbody></table>`;
}

async function draw() {
  const list = document.getElementById("tenant-list");
  list.innerHTML = ed.tenant ? listHtml() : `<p class="muted small">Choose a tenant.</p>`;
  const msg = document.getElementById("tenant-message");
  msg.textContent = ed.message?.text ?? "";
  msg.classList.toggle("bad-text", Boolean(ed.message?.bad));
  const editor = document.getElementById("connector-editor");
  editor.innerHTML = ed.editing ? editorHtml(await forms()) : "";
  document.getElementById("add-connector").hidden = !ed.tenant || Boolean(ed.editing);
}

function say(text, bad = false) {
  ed.message = { text, bad };
  const msg = document.getElementById("tenant-message");
  msg.textContent = text;
  msg.classList.toggle("bad-text", bad);
}

document.addEventListener("submit", async (ev) => {
  // getAttribute, not .id: a form's named controls shadow its properties.
  const formId = ev.target.getAttribute("id");
  if (formId === "tenant-form") {
    ev.preventDefault();
    ed.tenant = document.getElementById("tenant-id").value.trim();
    ed.editing = null;
    ed.message = null;
    await load();
    return;
  }
  if (formId !== "connector-form") return;
  ev.preventDefault();
  const form = ev.target;
  const out = form.querySelector('[data-field="editor-message"]');
  const type = ed.editing.type;
  const id = form.elements.namedItem("connectorId").value.trim();
  const { entry, problems } = readForm(form, type, await forms());
  if (problems.length > 0 || !id) {
    out.textContent = [...(id ? [] : ["id: is required"]), ...problems].join("; ");
    out.classList.add("bad-text");
    return;
  }
  try {
    await ed.api("PUT", `${base()}/${encodeURIComponent(id)}`, entry);
    ed.editing = null;
    say(`Connector ${id} saved; it applies without a restart.`);
    await load();
  } catch (e) {
    out.textContent = e.problems?.length ? e.problems.join("; ") : e.message;
    out.classList.add("bad-text");
  }
});

document.addEventListener("change", async (ev) => {
  const el = ev.target;
  if (el.name !== "type" || !el.closest("#connector-form")) return;
  ed.editing = { type: el.value, id: el.form.elements.namedItem("connectorId").value };
  await draw();
});

document.addEventListener("click", async (ev) => {
  const b = ev.target.closest("button[data-editor]");
  if (!b) return;
  const action = b.dataset.editor;
  const id = b.dataset.id;
  try {
    if (action === "add") {
      ed.editing = { type: (await forms())[0].type };
      ed.message = null;
    } else if (action === "cancel") ed.editing = null;
    else if (action === "edit") {
      const c = ed.connectors.find((x) => x.id === id);
      ed.editing = { id, type: c.type, entry: c.entry, existing: true };
    } else if (action === "delete") {
      await ed.api("DELETE", `${base()}/${encodeURIComponent(id)}`);
      say(`Connector ${id} removed: it is no longer scheduled (its topics and sink tables are kept).`);
      await load();
      return;
    } else if (action === "check") {
      b.disabled = true;
      say(`Testing ${id}…`);
      const r = await ed.api("POST", `${base()}/${encodeURIComponent(id)}/check`, {});
      b.disabled = false;
      const problems = r.error ? [r.error] : r.tables.flatMap((t) => t.problems.map((p) => `${t.table}: ${p}`));
      say(`${id}: ${r.ok ? "connection and tables OK" : `problems: ${problems.join("; ")}`}`, !r.ok);
      return;
    } else if (action === "authorize") {
      const r = await ed.api("POST", `${base()}/${encodeURIComponent(id)}/authorize`, {});
      const url = new URL(r.url);
      if (url.protocol !== "https:" && url.protocol !== "http:") throw new Error("the server answered an authorize URL that is not http(s)");
      window.open(url.href, "_blank", "noopener,noreferrer");
      say(`Authorize ${id} in the provider's window (within 10 minutes); the token is stored when it redirects back. If no window opened: `);
      const a = document.createElement("a");
      a.href = url.href;
      a.target = "_blank";
      a.rel = "noopener noreferrer";
      a.textContent = "open the provider's page";
      document.getElementById("tenant-message").append(a);
      return;
    } else if (action === "sync") {
      const r = await ed.api("POST", `${base()}/${encodeURIComponent(id)}/sync`, { full: true });
      say(`Full sync of ${id} requested (run ${r.runId}).`);
      return;
    }
    await draw();
  } catch (e) {
    b.disabled = false;
    say(e.message, true);
  }
});

export { MASK };
