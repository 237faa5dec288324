// The Salesforce simulator's OAuth pages and identity: the authorization-code flow's authorize page (an HTML
// consent form, or an immediate redirect with autoApprove), the identity URL / userinfo, and the API versions
// list. The token endpoint's bookkeeping is in oauth.ts.

import type { IncomingMessage } from "node:http";
import type { SalesforceSimControls } from "./controls.ts";
import { normalizeId } from "./ids.ts";
import { escapeHtml, HTML_CT, jsonReply, readBody } from "./reply.ts";
import type { Reply } from "./reply.ts";

function versionLabel(v: number): string {
  const idx = v - 62;
  const cycle = Math.floor(idx / 3);
  const pos = ((idx % 3) + 3) % 3;
  return `${["Winter", "Spring", "Summer"][pos]} '${String(25 + cycle).padStart(2, "0")}`;
}

export function versions(c: SalesforceSimControls): Reply {
  const max = Number(c.org.org.apiVersion);
  const min = Number(c.org.org.minApiVersion);
  const list = [];
  for (let v = Math.ceil(min); v <= max; v++) list.push({ label: versionLabel(v), url: `/services/data/v${v}.0`, version: `${v}.0` });
  return jsonReply(200, list);
}

export function identity(c: SalesforceSimControls, userId: string): Record<string, unknown> {
  const u = c.org.model("User")!.records.get(userId) ?? {};
  const orgId = c.org.org.id;
  const v = c.org.org.apiVersion;
  const b = c.baseUrl;
  return {
    id: `${b}/id/${orgId}/${userId}`,
    asserted_user: true,
    user_id: userId,
    organization_id: orgId,
    username: u.Username ?? null,
    nick_name: u.Alias ?? null,
    display_name: u.Name ?? null,
    email: u.Email ?? null,
    email_verified: true,
    first_name: u.FirstName ?? null,
    last_name: u.LastName ?? null,
    timezone: u.TimeZoneSidKey ?? "GMT",
    active: u.IsActive !== false,
    user_type: "STANDARD",
    language: "en_US",
    locale: "en_US",
    utcOffset: 0,
    urls: {
      enterprise: `${b}/services/Soap/c/{version}/${orgId.slice(0, 15)}`,
      partner: `${b}/services/Soap/u/{version}/${orgId.slice(0, 15)}`,
      rest: `${b}/services/data/v{version}/`,
      sobjects: `${b}/services/data/v{version}/sobjects/`,
      query: `${b}/services/data/v{version}/query/`,
      profile: `${b}/${userId}`,
      custom_domain: b,
    },
    is_app_installed: true,
    last_modified_date: typeof u.LastModifiedDate === "number" ? new Date(u.LastModifiedDate).toISOString().replace("Z", "+0000") : null,
    api_version: v,
  };
}

export async function authorize(c: SalesforceSimControls, method: string, url: URL, req: IncomingMessage): Promise<Reply> {
  const params = method === "POST" ? new URLSearchParams(await readBody(req)) : url.searchParams;
  const clientId = params.get("client_id") ?? undefined;
  const redirectUri = params.get("redirect_uri") ?? "";
  const state = params.get("state");
  const problem = c.oauth.checkClient(clientId, redirectUri);
  if (problem || !redirectUri) {
    const text =
      problem === "redirect_uri_mismatch"
        ? "redirect_uri_mismatch: redirect_uri must match configuration"
        : !redirectUri
          ? "invalid_request: missing redirect_uri"
          : "invalid_client_id: client identifier invalid";
    return {
      status: 400,
      body: `<!DOCTYPE html><html><body><h1>Remote Access Application error</h1><p>${escapeHtml(text)}</p></body></html>`,
      contentType: HTML_CT,
    };
  }
  const redirect = (q: Record<string, string>): Reply => {
    const target = new URL(redirectUri);
    for (const [k, v] of Object.entries(q)) target.searchParams.set(k, v);
    if (state !== null) target.searchParams.set("state", state);
    const loc = target.toString();
    return {
      status: 302,
      body: `<html><body>Redirecting to <a href="${escapeHtml(loc)}">${escapeHtml(loc)}</a></body></html>`,
      contentType: HTML_CT,
      headers: { Location: loc },
    };
  };
  const responseType = params.get("response_type");
  if (responseType !== "code") return redirect({ error: "unsupported_response_type", error_description: "response type not supported" });
  const users = [...c.org.model("User")!.records.values()].filter((u) => u.IsActive !== false);
  const pick = (ref: string | null): string | undefined => {
    if (!ref) return users[0]?.Id as string | undefined;
    return users.find((u) => u.Username === ref || u.Id === normalizeId(ref))?.Id as string | undefined;
  };
  if (method === "POST") {
    if (params.get("action") === "deny") return redirect({ error: "access_denied", error_description: "end-user denied authorization" });
    const userId = pick(params.get("username"));
    if (!userId) return { status: 400, body: "<!DOCTYPE html><html><body><p>Unknown user</p></body></html>", contentType: HTML_CT };
    return redirect({ code: c.oauth.issueCode(userId, clientId!, redirectUri) });
  }
  if (c.oauth.autoApprove) {
    const userId = pick(params.get("login_hint"));
    if (userId) return redirect({ code: c.oauth.issueCode(userId, clientId!, redirectUri) });
  }
  const hidden = ["client_id", "redirect_uri", "state", "response_type", "scope"]
    .filter((k) => params.get(k) !== null)
    .map((k) => `<input type="hidden" name="${k}" value="${escapeHtml(params.get(k)!)}">`)
    .join("");
  const options = users
    .map(
      (u) =>
        `<option value="${escapeHtml(String(u.Username))}"${u.Username === params.get("login_hint") ? " selected" : ""}>${escapeHtml(String(u.Name ?? u.Username))} (${escapeHtml(String(u.Username))})</option>`,
    )
    .join("");
  const html = `<!DOCTYPE html><html><head><title>Allow Access? | Salesforce simulator</title></head><body>
<h1>Allow Access?</h1><p>The application <b>${escapeHtml(clientId!)}</b> asks to access the simulated org ${escapeHtml(c.org.org.name)}.</p>
<form method="POST" action="/services/oauth2/authorize">${hidden}
<label>Log in as <select name="username">${options}</select></label>
<button type="submit" name="action" value="allow">Allow</button> <button type="submit" name="action" value="deny">Deny</button>
</form></body></html>`;
  return { status: 200, body: html, contentType: HTML_CT };
}
