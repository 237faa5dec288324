/**
 * HubSpot's error bodies. Non-429 API errors follow the spec's `Error` schema plus HubSpot's
 * `"status":"error"`; 429s follow the API usage guidelines' shape (no `category`); the OAuth token
 * endpoint answers `{status:"BAD_REFRESH_TOKEN", message}`-style bodies.
 */
import { randomUUID } from "node:crypto";

export type JsonObject = Record<string, unknown>;

/** Thrown by handlers; turned into a JSON response by the server. */
export class HttpError extends Error {
  readonly status: number;
  readonly body: JsonObject;
  readonly headers: Record<string, string>;
  constructor(status: number, body: JsonObject, headers: Record<string, string> = {}) {
    super(typeof body.message === "string" ? body.message : `HTTP ${status}`);
    this.status = status;
    this.body = body;
    this.headers = headers;
  }
}

export function correlationId(): string {
  return randomUUID();
}

interface ErrorExtras {
  subCategory?: string;
  context?: Record<string, string[]>;
  errors?: Array<{ message: string; in?: string; code?: string; subCategory?: string; context?: Record<string, string[]> }>;
  links?: Record<string, string>;
}

export function apiError(status: number, category: string, message: string, extras: ErrorExtras = {}): HttpError {
  const body: JsonObject = { status: "error", message, correlationId: correlationId(), category };
  if (extras.subCategory !== undefined) body.subCategory = extras.subCategory;
  if (extras.context !== undefined) body.context = extras.context;
  if (extras.errors !== undefined) body.errors = extras.errors;
  if (extras.links !== undefined) body.links = extras.links;
  return new HttpError(status, body);
}

export const validationError = (message: string, extras: ErrorExtras = {}): HttpError => apiError(400, "VALIDATION_ERROR", message, extras);

export const notFound = (message: string, extras: ErrorExtras = {}): HttpError => apiError(404, "OBJECT_NOT_FOUND", message, extras);

export function missingAuthentication(): HttpError {
  return apiError(
    401,
    "INVALID_AUTHENTICATION",
    "Authentication credentials not found. This API supports OAuth 2.0 authentication and you can find more details at https://developers.hubspot.com/docs/methods/auth/oauth-overview",
  );
}

export function invalidAuthentication(): HttpError {
  return apiError(
    401,
    "INVALID_AUTHENTICATION",
    "The OAuth token used to make this call is invalid or has been revoked. Refresh the token or re-authorize the app.",
  );
}

export function expiredAuthentication(secondsAgo: number): HttpError {
  return apiError(401, "EXPIRED_AUTHENTICATION", `The OAuth token used to make this call expired ${secondsAgo} second(s) ago.`);
}

export function missingScopes(requiredAnyOf: string[]): HttpError {
  return apiError(
    403,
    "MISSING_SCOPES",
    "This app hasn't been granted all required scopes to make this call. Read more about required scopes here: https://developers.hubspot.com/scopes.",
    {
      errors: [{ message: "One or more of the following scopes are required.", context: { requiredGranularScopes: requiredAnyOf } }],
      links: { scopes: "https://developers.hubspot.com/scopes" },
    },
  );
}

export type RatePolicy = "TEN_SECONDLY_ROLLING" | "SECONDLY" | "DAILY";

const RATE_MESSAGES: Record<RatePolicy, string> = {
  TEN_SECONDLY_ROLLING: "You have reached your ten_secondly_rolling limit.",
  SECONDLY: "You have reached your secondly limit.",
  DAILY: "You have reached your daily limit.",
};

/** The 429 body of HubSpot's usage guidelines (the exact strings the v14 retry decorator matches). */
export function rateLimited(policy: RatePolicy, headers: Record<string, string>, groupName: string): HttpError {
  return new HttpError(
    429,
    {
      status: "error",
      message: RATE_MESSAGES[policy],
      errorType: "RATE_LIMIT",
      correlationId: correlationId(),
      policyName: policy,
      groupName,
    },
    headers,
  );
}

/** Errors of POST /oauth/v1/token: `{status: "BAD_REFRESH_TOKEN", message}` as HubSpot answers them. */
export function oauthError(status: string, message: string, httpStatus = 400): HttpError {
  return new HttpError(httpStatus, { status, message, correlationId: correlationId() });
}
