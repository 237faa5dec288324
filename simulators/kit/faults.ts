/**
 * Injected faults, written once for both simulators: a list of rules, each matching requests by method and
 * path and firing for its next `count` matches (an error status, a delay, a dropped connection, a corrupt body:
 * what a rule does is the simulator's business, in its API's wire format). The two simulators spell paths
 * differently — HubSpot: exact, or a prefix ending in `*`; Salesforce: a glob, or a regular expression — so
 * the path test is given by the caller (prefixPathTest, globPathTest).
 */

/** What every fault rule carries; each simulator adds its own fields (status, body, policy, action, ...). */
interface FaultRuleBase {
  path: string;
  method?: string;
  /** How many matching requests the rule fires for. Default 1. */
  count?: number;
}

interface FaultRulesOptions {
  /** Compiles a rule's path into a test on request paths. */
  pathTest: (pattern: string) => (path: string) => boolean;
  /**
   * What a rule added with a count of 0 (or less) does: "never" fires and is dropped after the next fault fires
   * (HubSpot simulator), "once" fires once (Salesforce simulator).
   */
  spentRules: "never" | "once";
}

interface ActiveRule<R> {
  rule: R;
  test: (path: string) => boolean;
  remaining: number;
}

export class FaultRules<R extends FaultRuleBase> {
  private rules: Array<ActiveRule<R>> = [];
  private readonly opts: FaultRulesOptions;

  constructor(opts: FaultRulesOptions) {
    this.opts = opts;
  }

  add(rule: R): void {
    this.rules.push({ rule, test: this.opts.pathTest(rule.path), remaining: rule.count ?? 1 });
  }

  clear(): void {
    this.rules = [];
  }

  /** The pending rules with what is left of their counts. */
  list(): Array<R & { remaining: number }> {
    return this.rules.map((f) => ({ ...f.rule, remaining: f.remaining }));
  }

  /** The first rule matching this request, now counted; undefined when none does. */
  take(method: string, path: string): R | undefined {
    const i = this.rules.findIndex(
      (f) => (this.opts.spentRules === "once" || f.remaining > 0) && (!f.rule.method || f.rule.method.toUpperCase() === method) && f.test(path),
    );
    const f = this.rules[i];
    if (!f) return undefined;
    f.remaining--;
    if (this.opts.spentRules === "never") this.rules = this.rules.filter((x) => x.remaining > 0);
    else if (f.remaining <= 0) this.rules.splice(i, 1);
    return f.rule;
  }
}

/** HubSpot simulator paths: equal to the pattern (a trailing slash on it ignored), or starting with it when it ends in `*`. */
export function prefixPathTest(pattern: string): (path: string) => boolean {
  if (pattern.endsWith("*")) {
    const prefix = pattern.slice(0, -1);
    return (path) => path.startsWith(prefix);
  }
  const exact = pattern.replace(/\/$/, "");
  return (path) => path === exact;
}

/** Salesforce simulator paths: a glob (`*` within one segment, `**` across), or a regular expression when it starts with `^`. */
export function globPathTest(pattern: string): (path: string) => boolean {
  const re = globToRegExp(pattern);
  return (path) => re.test(path);
}

function globToRegExp(glob: string): RegExp {
  if (glob.startsWith("^")) return new RegExp(glob);
  let re = "";
  for (let i = 0; i < glob.length; i++) {
    const ch = glob[i]!;
    if (ch === "*" && glob[i + 1] === "*") {
      re += ".*";
      i++;
    } else if (ch === "*") re += "[^/]*";
    else re += ch.replace(/[.+?^${}()|[\]\\]/g, "\\$&");
  }
  return new RegExp(`^${re}$`);
}
