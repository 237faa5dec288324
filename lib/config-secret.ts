/**
 * Secret fields of the configuration: passwords, client secrets, refresh tokens, API tokens and
 * URLs that may carry credentials. A schema marks one with `secret(…)` (zod metadata, so the
 * generated reference can say so). Only a secret field may take its value from the environment
 * (`${env:NAME}`); anywhere else the reference is refused with the field's path, so a value
 * copied from the environment can never land in a field whose errors echo what it holds (a
 * `where` condition, a table name). Secret values are remembered for masking (lib/redact.ts) and
 * never appear in a config error.
 *
 * `secretAt` finds whether a path of the raw YAML tree is a secret field by walking the zod schema
 * beside the value (objects, lists, maps, unions, optional/default/pipe wrappers); a schema that
 * picks its shape from the value (a connector by its `type`) says how with `dispatchOn`.
 */
import { z } from "zod";

type Path = ReadonlyArray<string | number>;

/** The parts of zod 4's definitions the walker reads. */
interface Def {
  type: string;
  innerType?: z.ZodType;
  in?: z.ZodType;
  out?: z.ZodType;
  shape?: Record<string, z.ZodType>;
  element?: z.ZodType;
  valueType?: z.ZodType;
  options?: z.ZodType[];
  left?: z.ZodType;
  right?: z.ZodType;
  items?: z.ZodType[];
  getter?: () => z.ZodType;
}
const defOf = (s: z.ZodType): Def => (s as unknown as { _zod: { def: Def } })._zod.def;

/** Marks a field as secret: `${env:NAME}` is allowed in it, and its value is never echoed. */
export function secret<T extends z.ZodType>(schema: T): T {
  return schema.meta({ secret: true }) as T;
}

/** Whether this very schema (not its wrappers or parts) is marked secret. */
const marked = (s: z.ZodType): boolean => (z.globalRegistry.get(s) as { secret?: unknown } | undefined)?.secret === true;

/** Whether a field's schema is secret, through its optional/default/pipe wrappers (for the generated docs). */
export function isSecretSchema(schema: z.ZodType): boolean {
  let s: z.ZodType | undefined = schema;
  while (s) {
    if (marked(s)) return true;
    const d = defOf(s);
    s = d.innerType ?? (d.type === "pipe" ? (defOf(d.in!).type === "transform" ? d.out : d.in) : undefined);
  }
  return false;
}

const dispatchers = new WeakMap<z.ZodType, (value: unknown) => z.ZodType | undefined>();

/** Says which schema applies to a value for a schema that decides at parse time (a z.custom). */
export function dispatchOn<T extends z.ZodType>(schema: T, pick: (value: unknown) => z.ZodType | undefined): T {
  dispatchers.set(schema, pick);
  return schema;
}

const child = (value: unknown, key: string | number): unknown =>
  value !== null && typeof value === "object" ? (value as Record<string | number, unknown>)[key] : undefined;

/**
 * Whether `path` (from the schema's root, with `value` the raw value there) names a secret field
 * or lies inside one; undefined when no schema applies to it (a connector of an unknown type,
 * which the schema refuses anyway).
 */
export function secretAt(schema: z.ZodType, path: Path, value: unknown): boolean | undefined {
  if (marked(schema)) return true;
  const pick = dispatchers.get(schema);
  if (pick) {
    const s = pick(value);
    return s ? secretAt(s, path, value) : undefined;
  }
  const d = defOf(schema);
  switch (d.type) {
    case "optional":
    case "nullable":
    case "default":
    case "prefault":
    case "readonly":
    case "catch":
    case "nonoptional":
      return secretAt(d.innerType!, path, value);
    case "pipe":
      return secretAt(defOf(d.in!).type === "transform" ? d.out! : d.in!, path, value);
    case "lazy":
      return secretAt(d.getter!(), path, value);
    case "union":
      return (d.options ?? []).some((o) => secretAt(o, path, value) === true);
    case "intersection":
      return secretAt(d.left!, path, value) === true || secretAt(d.right!, path, value) === true;
  }
  if (path.length === 0) return false;
  const [key, ...rest] = path as [string | number, ...Array<string | number>];
  switch (d.type) {
    case "object": {
      const s = d.shape?.[String(key)];
      return s ? secretAt(s, rest, child(value, key)) : false;
    }
    case "array":
      return secretAt(d.element!, rest, child(value, key));
    case "tuple": {
      const s = typeof key === "number" ? d.items?.[key] : undefined;
      return s ? secretAt(s, rest, child(value, key)) : false;
    }
    case "record":
      return secretAt(d.valueType!, rest, child(value, key));
    default:
      return false;
  }
}

const ENV_REF = /\$\{env:([A-Za-z_][A-Za-z0-9_]*)\}/g;

/** A key path as people write it: `connectors[0].connection.url`. */
export function formatPath(path: ReadonlyArray<PropertyKey>): string {
  let out = "";
  for (const p of path) out += typeof p === "number" ? `[${p}]` : out ? `.${String(p)}` : String(p);
  return out || "(top level)";
}

/** What `expandEnv` found: the tree with `${env:…}` replaced, the problems, and every secret value. */
export interface Expanded {
  value: unknown;
  problems: string[];
  secrets: string[];
}

/**
 * Replaces `${env:NAME}` in the secret fields of a parsed YAML tree, refuses it in any other
 * field (naming the path and the variable, never a value), reports unset variables, and
 * collects the values of every secret field (expanded or written in the file) for masking.
 */
export function expandEnv(root: unknown, schema: z.ZodType, env: NodeJS.ProcessEnv): Expanded {
  const problems: string[] = [];
  const secrets: string[] = [];
  const walk = (value: unknown, path: Array<string | number>): unknown => {
    if (typeof value === "string") {
      const isSecret = secretAt(schema, path, root);
      // No schema for it (a connector of an unknown type): left as written; the type error says why.
      if (isSecret === undefined) return value;
      if (!isSecret) {
        for (const m of value.matchAll(ENV_REF))
          problems.push(
            `${formatPath(path)}: \`\${env:${m[1]}}\` is only allowed in secret fields: passwords, client secrets, refresh tokens, API tokens and connection or registry URLs (docs/configuration.md marks them); write this field's value itself`,
          );
        return value;
      }
      const expanded = value.replace(ENV_REF, (_m, name: string) => {
        const v = env[name];
        if (v === undefined) {
          problems.push(`${formatPath(path)}: environment variable ${name} is not set; export it or remove the reference`);
          return "";
        }
        return v;
      });
      secrets.push(expanded);
      return expanded;
    }
    if (Array.isArray(value)) return value.map((v, i) => walk(v, [...path, i]));
    if (value && typeof value === "object") return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, walk(v, [...path, k])]));
    return value;
  };
  return { value: walk(root, []), problems, secrets };
}
