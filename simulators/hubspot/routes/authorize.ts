/**
 * HubSpot's install page, app.hubspot.com/oauth/authorize, served on the simulator's origin: GET shows the consent
 * form (the account to install the app into, "Connect app" or "Deny"); the form's POST answers with a redirect to
 * the redirect_uri carrying `code` and `state`, or `error=access_denied` and `state` when denied. A request HubSpot
 * would not redirect (unknown client_id, a redirect_uri not registered for the app, no scope or a required one
 * missing) gets an HTML error page (400) and no redirect. The checks and the codes are in auth.ts; HTML without
 * scripts, every value escaped.
 */
import type { TokenStore } from "../auth.ts";
import type { Settings } from "../store.ts";

export const AUTHORIZE_PATH = "/oauth/authorize";
const HTML_TYPE = "text/html;charset=utf-8";

interface PageReply {
  status: number;
  body: string;
  headers: Record<string, string>;
}

function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]!);
}

function html(status: number, title: string, inner: string, headers: Record<string, string> = {}): PageReply {
  return {
    status,
    body: `<!DOCTYPE html><html><head><meta charset="utf-8"><title>${escapeHtml(title)} | HubSpot simulator</title></head><body>${inner}</body></html>`,
    headers: { "Content-Type": HTML_TYPE, "Cache-Control": "no-store", ...headers },
  };
}

/**
 * GET or POST /oauth/authorize. `params`: the query (GET) or the form (POST). `portalId`: the one account this
 * portal's install page offers (a multi-portal simulator routes the request to the portal of its client_id).
 */
export function authorizePage(tokens: TokenStore, settings: Settings, method: string, params: URLSearchParams, now: number): PageReply {
  const checked = tokens.authorizeRequest(params);
  if ("problem" in checked) {
    return html(
      400,
      "Authorization failed",
      `<h1>Authorization failed</h1><p>Authorization failed because this app is misconfigured. ${escapeHtml(checked.problem)}</p>` +
        "<p>Contact the app's developer.</p>",
    );
  }
  const { app, redirectUri, scopes, state } = checked;
  const redirect = (q: Record<string, string>): PageReply => {
    const target = new URL(redirectUri);
    for (const [k, v] of Object.entries(q)) target.searchParams.set(k, v);
    if (state !== null) target.searchParams.set("state", state);
    const location = target.toString();
    return html(302, "Redirecting", `<p>Redirecting to <a href="${escapeHtml(location)}">${escapeHtml(location)}</a></p>`, { Location: location });
  };
  const account = String(settings.portalId);
  if (method === "POST") {
    const action = params.get("action");
    // RFC 6749 §4.1.2.1: the user's refusal goes back to the app (HubSpot's docs and specs describe no other parameters).
    if (action === "deny") return redirect({ error: "access_denied", error_description: "The user denied access to the app." });
    if (action !== "approve") return html(400, "Authorization failed", "<h1>Authorization failed</h1><p>Choose Connect app or Deny.</p>");
    if (params.get("portal") !== account)
      return html(400, "Authorization failed", `<h1>Authorization failed</h1><p>Choose an account this app can be installed into.</p>`);
    return redirect({ code: tokens.issueCode(app.clientId, redirectUri, scopes, now) });
  }
  const hidden = ["client_id", "redirect_uri", "scope", "optional_scope", "state"]
    .filter((k) => params.get(k) !== null)
    .map((k) => `<input type="hidden" name="${k}" value="${escapeHtml(params.get(k)!)}">`)
    .join("");
  const items = scopes.map((s) => `<li>${escapeHtml(s)}</li>`).join("");
  return html(
    200,
    "Choose an account",
    `<h1>Choose an account</h1><p>The app <b>${escapeHtml(app.clientId)}</b> asks to be installed, with access to:</p><ul>${items}</ul>` +
      `<form method="POST" action="${AUTHORIZE_PATH}">${hidden}` +
      `<label>Account <select name="portal"><option value="${account}" selected>${account} (sim-${account}.hubspot.com)</option></select></label> ` +
      `<button type="submit" name="action" value="approve">Connect app</button> <button type="submit" name="action" value="deny">Deny</button>` +
      "</form>",
  );
}
