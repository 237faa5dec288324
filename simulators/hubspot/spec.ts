/**
 * HubSpot's official OpenAPI specs (copied verbatim in ./specs, see specs/SOURCES.md) used for:
 *  - request validation (query parameters, JSON / form bodies) → 400 VALIDATION_ERROR like HubSpot,
 *  - response validation (the `validateResponses` option, and the tests),
 *  - scopes required per operation (`security` → oauth2 scopes, any one alternative suffices),
 *  - rate-limit exemptions (`x-hubspot-rate-limit-exemptions: ["ten-secondly"]`).
 *
 * Where the published spec contradicts what HubSpot documents or actually sends, a patch below
 * corrects it; every patch names its reason. Request bodies are validated strictly: a field the
 * schema does not declare is rejected, as HubSpot's JSON reader does ("Unrecognized field").
 */
import { readFileSync } from "node:fs";
import { Ajv, type ErrorObject, type ValidateFunction } from "ajv";
import formatsModule from "ajv-formats";
import type { FormatsPlugin } from "ajv-formats";

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
type JsonSchema = { [k: string]: Json };

interface OpenApiOperation {
  operationId?: string;
  parameters?: Array<{ name: string; in: string; required?: boolean; schema?: JsonSchema }>;
  requestBody?: { required?: boolean; content?: Record<string, { schema?: JsonSchema }> };
  responses?: Record<string, { $ref?: string; content?: Record<string, { schema?: JsonSchema }> }>;
  security?: Array<Record<string, string[]>>;
  "x-hubspot-rate-limit-exemptions"?: string[];
}

interface OpenApiDoc {
  paths: Record<string, Record<string, OpenApiOperation>>;
  components?: { schemas?: Record<string, JsonSchema>; responses?: Record<string, { content?: Record<string, { schema?: JsonSchema }> }> };
}

/** Identifies one operation of one spec file. */
export interface OpRef {
  file: string;
  path: string;
  method: string;
}

interface SpecPatch {
  schema: string;
  reason: string;
  /** "request", "response" or "both": which validator view receives the patch. */
  view: "request" | "response" | "both";
  apply(schema: JsonSchema): void;
}

const NULLABLE_STRING: JsonSchema = { type: ["string", "null"] };

/** Deviations from the published spec, each justified by HubSpot's docs or observed behaviour. */
const SPEC_PATCHES: SpecPatch[] = [
  {
    schema: "PublicObjectSearchRequest",
    view: "request",
    reason:
      "The spec marks after/filterGroups/limit/properties/sorts required; HubSpot's search guide documents them as optional (limit defaults to 10, sorts to creation date) and @hubspot/api-client 14 types them optional.",
    apply(s) {
      s.required = [];
    },
  },
  {
    schema: "PublicObjectSearchRequest",
    view: "request",
    reason: "The spec types `sorts` as string[]; HubSpot's search guide sends objects {propertyName, direction} (and the v14 client passes them through).",
    apply(s) {
      const props = s.properties as JsonSchema;
      props.sorts = {
        type: "array",
        items: {
          anyOf: [
            { type: "string" },
            {
              type: "object",
              required: ["propertyName"],
              additionalProperties: false,
              properties: { propertyName: { type: "string" }, direction: { type: "string", enum: ["ASCENDING", "DESCENDING"] } },
            },
          ],
        },
      };
    },
  },
  {
    schema: "BatchReadInputSimplePublicObjectId",
    view: "request",
    reason: "The spec requires properties and propertiesWithHistory; HubSpot's batch-read examples send only inputs (+ properties / idProperty).",
    apply(s) {
      s.required = ["inputs"];
    },
  },
  ...["SimplePublicObject", "SimplePublicObjectWithAssociations"].map(
    (name): SpecPatch => ({
      schema: name,
      view: "response",
      reason: "HubSpot returns null for a requested property that has no value; the spec types property values as string only.",
      apply(s) {
        ((s.properties as JsonSchema).properties as JsonSchema).additionalProperties = NULLABLE_STRING;
      },
    }),
  ),
  {
    schema: "PublicOwner",
    view: "response",
    reason: "Archived/deactivated owners have userId null (userIdIncludingInactive keeps the id); the spec types userId as integer.",
    apply(s) {
      (s.properties as JsonSchema).userId = { type: ["integer", "null"] };
    },
  },
  {
    schema: "MultiAssociatedObjectWithLabel",
    view: "response",
    reason: "v4 batch read sends toObjectId as a JSON number (older rollout 50914 says int32; rollout 130902 says string).",
    apply(s) {
      (s.properties as JsonSchema).toObjectId = { type: ["integer", "string"] };
    },
  },
  {
    schema: "AssociationSpecWithLabel",
    view: "response",
    reason: 'Unlabeled associations carry "label": null.',
    apply(s) {
      (s.properties as JsonSchema).label = NULLABLE_STRING;
    },
  },
  {
    schema: "StandardError",
    view: "response",
    reason: "HubSpot sends subCategory as a string (e.g. crm.associations.NO_ASSOCIATIONS_FOUND); the spec declares an empty object.",
    apply(s) {
      (s.properties as JsonSchema).subCategory = {};
    },
  },
];

/** 429 body per HubSpot's API usage guidelines (not described by the specs). */
const RATE_LIMIT_ERROR_SCHEMA: JsonSchema = {
  type: "object",
  required: ["status", "message", "errorType", "correlationId", "policyName"],
  properties: {
    status: { const: "error" },
    message: { type: "string" },
    errorType: { const: "RATE_LIMIT" },
    correlationId: { type: "string", format: "uuid" },
    policyName: { enum: ["TEN_SECONDLY_ROLLING", "SECONDLY", "DAILY"] },
    groupName: { type: "string" },
  },
};

/** Error body of POST /oauth/v1/token as HubSpot sends it (`status` carries the error code). */
const OAUTH_ERROR_SCHEMA: JsonSchema = {
  type: "object",
  required: ["status", "message"],
  properties: { status: { type: "string" }, message: { type: "string" }, correlationId: { type: "string", format: "uuid" } },
};

const SPEC_DIR = new URL("./specs/", import.meta.url);
const ID_BASE = "https://hubspot-simulator.local/";

function deepClone<T>(v: T): T {
  return structuredClone(v);
}

/** Adds additionalProperties:false to every object schema that lists properties and says nothing else. */
function closeObjects(node: Json): void {
  if (Array.isArray(node)) {
    for (const n of node) closeObjects(n);
    return;
  }
  if (node === null || typeof node !== "object") return;
  if (
    node.type === "object" &&
    node.properties &&
    node.additionalProperties === undefined &&
    node.oneOf === undefined &&
    node.anyOf === undefined &&
    node.allOf === undefined
  ) {
    node.additionalProperties = false;
  }
  for (const v of Object.values(node)) closeObjects(v);
}

function rewriteRefs(node: Json, base: string): Json {
  if (Array.isArray(node)) return node.map((n) => rewriteRefs(n, base));
  if (node === null || typeof node !== "object") return node;
  const out: { [k: string]: Json } = {};
  for (const [k, v] of Object.entries(node)) {
    out[k] = k === "$ref" && typeof v === "string" && v.startsWith("#") ? base + v : rewriteRefs(v, base);
  }
  return out;
}

export interface ValidationProblem {
  where: string;
  message: string;
}

function describe(errors: ErrorObject[] | null | undefined, where: string): ValidationProblem[] {
  return (errors ?? []).map((e) => {
    const at =
      where +
      e.instancePath
        .split("/")
        .slice(1)
        .map((seg) => (/^\d+$/.test(seg) ? `[${seg}]` : `.${seg}`))
        .join("");
    let message = e.message ?? "is invalid";
    if (e.keyword === "additionalProperties") message = `has unrecognized field "${String((e.params as { additionalProperty?: string }).additionalProperty)}"`;
    if (e.keyword === "enum") message = `must be one of ${JSON.stringify((e.params as { allowedValues?: unknown }).allowedValues)}`;
    return { where: at, message };
  });
}

export class SpecRegistry {
  private readonly ajv: Ajv;
  private readonly docs = new Map<string, OpenApiDoc>();
  private readonly loaded = new Set<string>();
  private readonly validators = new Map<string, ValidateFunction>();

  constructor() {
    this.ajv = new Ajv({ strict: false, allErrors: true, validateFormats: true });
    const addFormats = ((formatsModule as unknown as { default?: FormatsPlugin }).default ?? formatsModule) as FormatsPlugin;
    addFormats(this.ajv);
    this.ajv.addFormat("int32", { type: "number", validate: (n: number) => Number.isInteger(n) && n >= -(2 ** 31) && n < 2 ** 31 });
    this.ajv.addFormat("int64", { type: "number", validate: (n: number) => Number.isInteger(n) });
  }

  doc(file: string): OpenApiDoc {
    let d = this.docs.get(file);
    if (!d) {
      d = JSON.parse(readFileSync(new URL(file, SPEC_DIR), "utf8")) as OpenApiDoc;
      this.docs.set(file, d);
    }
    return d;
  }

  operation(ref: OpRef): OpenApiOperation {
    const op = this.doc(ref.file).paths[ref.path]?.[ref.method.toLowerCase()];
    if (!op) throw new Error(`spec ${ref.file} has no operation ${ref.method} ${ref.path}`);
    return op;
  }

  private viewId(view: "request" | "response", file: string): string {
    return `${ID_BASE}${view}/${file}`;
  }

  /** Registers the file's components once per view, patched (and, for requests, closed). */
  private ensureView(view: "request" | "response", file: string): string {
    const id = this.viewId(view, file);
    if (this.loaded.has(id)) return id;
    const doc = this.doc(file);
    const components = deepClone(doc.components ?? {}) as { schemas?: Record<string, JsonSchema>; responses?: Json };
    const schemas = components.schemas ?? {};
    for (const patch of SPEC_PATCHES) {
      const target = schemas[patch.schema];
      if (target && (patch.view === view || patch.view === "both")) patch.apply(target);
    }
    if (view === "request") closeObjects(schemas as unknown as Json);
    this.ajv.addSchema({ $id: id, components: components as unknown as Json }, id);
    this.loaded.add(id);
    return id;
  }

  private compile(key: string, schema: JsonSchema): ValidateFunction {
    let v = this.validators.get(key);
    if (!v) {
      v = this.ajv.compile(schema);
      this.validators.set(key, v);
    }
    return v;
  }

  private schemaValidator(view: "request" | "response", file: string, schema: JsonSchema, key: string): ValidateFunction {
    const id = this.ensureView(view, file);
    let s = rewriteRefs(schema, id) as JsonSchema;
    if (view === "request" && typeof schema.$ref !== "string") {
      s = deepClone(s);
      closeObjects(s);
    }
    return this.compile(`${view}|${file}|${key}`, s);
  }

  /**
   * Validates and coerces the query parameters an operation declares. Unknown parameters are
   * ignored (HubSpot ignores them). Arrays are repeated keys; comma-separated values are split.
   */
  validateQuery(ref: OpRef, query: URLSearchParams): { values: Record<string, unknown>; problems: ValidationProblem[] } {
    const op = this.operation(ref);
    const values: Record<string, unknown> = {};
    const problems: ValidationProblem[] = [];
    for (const p of op.parameters ?? []) {
      if (p.in !== "query") continue;
      const raw = query.getAll(p.name);
      const schema = p.schema ?? {};
      if (raw.length === 0) {
        if (p.required) problems.push({ where: `query.${p.name}`, message: "is required" });
        continue;
      }
      let value: unknown;
      if (schema.type === "array") {
        const itemType = (schema.items as JsonSchema | undefined)?.type;
        value = raw
          .flatMap((r) => r.split(","))
          .filter((s) => s !== "")
          .map((s) => coerce(s, itemType));
      } else {
        value = coerce(raw[raw.length - 1] ?? "", schema.type);
      }
      const v = this.compile(`param|${JSON.stringify(schema)}`, stripNullExamples(schema));
      if (!v(value)) problems.push(...describe(v.errors, `query.${p.name}`));
      values[p.name] = value;
    }
    return { values, problems };
  }

  /** The media types the operation's request body accepts (empty when it has no body). */
  requestMediaTypes(ref: OpRef): string[] {
    return Object.keys(this.operation(ref).requestBody?.content ?? {});
  }

  requestBodyRequired(ref: OpRef): boolean {
    return this.operation(ref).requestBody?.required === true;
  }

  validateRequestBody(ref: OpRef, mediaType: string, body: unknown): ValidationProblem[] {
    const schema = this.operation(ref).requestBody?.content?.[mediaType]?.schema;
    if (!schema) return [];
    const v = this.schemaValidator("request", ref.file, schema, `${ref.method} ${ref.path} body ${mediaType}`);
    return v(body) ? [] : describe(v.errors, "body");
  }

  /** The schema a response of `status` must follow: null = no body, undefined = status not declared. */
  private responseSchema(ref: OpRef, status: number): JsonSchema | null | undefined {
    if (status === 429) return RATE_LIMIT_ERROR_SCHEMA;
    if (ref.file === "oauth-v1.json" && ref.path === "/oauth/v1/token" && status >= 400) return OAUTH_ERROR_SCHEMA;
    const op = this.operation(ref);
    const r = op.responses?.[String(status)] ?? op.responses?.default;
    if (!r) return undefined;
    let content = r.content;
    if (!content && r.$ref) {
      const name = r.$ref.split("/").pop() ?? "";
      content = this.doc(ref.file).components?.responses?.[name]?.content;
    }
    const first = content ? Object.values(content)[0] : undefined;
    return first?.schema ?? null;
  }

  /** Problems of a response body against the (patched) spec; [] when it conforms. */
  validateResponse(ref: OpRef, status: number, body: unknown): ValidationProblem[] {
    const schema = this.responseSchema(ref, status);
    if (schema === undefined) {
      const declared = Object.keys(this.operation(ref).responses ?? {});
      return [{ where: "status", message: `${status} is not a response the spec declares (${declared.join(", ")})` }];
    }
    if (schema === null) {
      return body === undefined || body === null ? [] : [{ where: "response", message: `the spec declares no body for ${status}` }];
    }
    const v = this.schemaValidator("response", ref.file, schema, `${ref.method} ${ref.path} ${status}`);
    return v(body) ? [] : describe(v.errors, "response");
  }

  /** oauth2 scope alternatives of the operation: any one inner list grants access. */
  scopeAlternatives(ref: OpRef): string[][] {
    const out: string[][] = [];
    for (const alt of this.operation(ref).security ?? []) {
      const scopes = alt.oauth2;
      if (scopes) out.push(scopes);
    }
    return out;
  }

  exemptFromTenSecondly(ref: OpRef): boolean {
    return (this.operation(ref)["x-hubspot-rate-limit-exemptions"] ?? []).includes("ten-secondly");
  }
}

function coerce(raw: string, type: Json | undefined): unknown {
  if (type === "boolean") return raw === "true" ? true : raw === "false" ? false : raw;
  if (type === "integer") return /^-?\d+$/.test(raw) ? Number(raw) : raw;
  if (type === "number") return raw.trim() !== "" && Number.isFinite(Number(raw)) ? Number(raw) : raw;
  return raw;
}

function stripNullExamples(schema: JsonSchema): JsonSchema {
  const out = deepClone(schema);
  delete out.example;
  return out;
}

let shared: SpecRegistry | undefined;
/** One registry per process: specs are parsed and validators compiled once. */
export function specRegistry(): SpecRegistry {
  shared ??= new SpecRegistry();
  return shared;
}
