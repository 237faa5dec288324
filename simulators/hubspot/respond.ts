/**
 * How the HubSpot simulator writes a response: JSON with HubSpot's content type and a Content-Length, or the
 * corrupted bodies a fault asks for (truncated, malformed, empty, an HTML gateway page, no Content-Type);
 * and how it reads a request body (HubSpot's 413 over 20 MiB).
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import { readBody } from "../kit/http.ts";
import { apiError } from "./errors.ts";

const JSON_TYPE = "application/json;charset=utf-8";

/** Body corruptions a fault can ask for. */
export type CorruptBody = "truncated" | "malformed" | "empty" | "html" | "no-content-type";

export function send(res: ServerResponse, status: number, body: unknown, headers: Record<string, string>, corrupt?: CorruptBody): void {
  let text = status === 204 || body === undefined ? "" : JSON.stringify(body);
  const h: Record<string, string> = { "Content-Type": JSON_TYPE, ...headers };
  if (corrupt === "truncated") text = text.slice(0, Math.max(1, Math.floor(text.length / 2)));
  else if (corrupt === "malformed") text = `{"results": [${text.slice(0, 20)}<<not json>>`;
  else if (corrupt === "empty") text = "";
  else if (corrupt === "html") {
    h["Content-Type"] = "text/html; charset=utf-8";
    text = `<html><head><title>${status} Error</title></head><body><h1>${status}</h1><p>The server encountered a temporary error.</p></body></html>`;
  } else if (corrupt === "no-content-type") delete h["Content-Type"];
  h["Content-Length"] = String(Buffer.byteLength(text));
  res.writeHead(status, h);
  res.end(text);
}

/** Reads a request body; over 20 MiB the read fails with HubSpot's 413. */
export function readRequestBody(req: IncomingMessage): Promise<Buffer> {
  return readBody(req, { maxBytes: 20 * 1024 * 1024, tooLarge: () => apiError(413, "VALIDATION_ERROR", "Request body too large.") });
}
