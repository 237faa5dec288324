// How the Salesforce simulator answers over HTTP: a reply value (status, text body, content type, headers),
// JSON replies and Salesforce's error arrays, body reading and JSON parsing with Salesforce's error code.

import type { IncomingMessage } from "node:http";
import { readBody as readRawBody } from "../kit/http.ts";
import { SfError } from "./soql.ts";

export const JSON_CT = "application/json;charset=UTF-8";
export const HTML_CT = "text/html;charset=UTF-8";
export const CSV_CT = "text/csv";

export interface Reply {
  status: number;
  body: string;
  contentType?: string;
  headers?: Record<string, string>;
}

export function jsonReply(status: number, body: unknown): Reply {
  return { status, body: typeof body === "string" ? body : JSON.stringify(body), contentType: JSON_CT };
}

export function errorReply(e: SfError): Reply {
  return jsonReply(e.status, e.body());
}

export const NOT_FOUND_ERR = () => new SfError(404, "NOT_FOUND", "The requested resource does not exist");

export async function readBody(req: IncomingMessage): Promise<string> {
  return (await readRawBody(req)).toString("utf8");
}

export function parseJsonBody(text: string): unknown {
  if (text.trim() === "") return null;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new SfError(400, "JSON_PARSER_ERROR", "The request body is not valid JSON");
  }
}

export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]!);
}

/** The token of an `Authorization: Bearer <token>` (or `OAuth <token>`) header. */
export function bearer(req: IncomingMessage): string | undefined {
  const h = req.headers.authorization;
  if (!h) return undefined;
  const mm = /^(?:Bearer|OAuth)\s+(.+)$/i.exec(h.trim());
  return mm?.[1]?.trim();
}
