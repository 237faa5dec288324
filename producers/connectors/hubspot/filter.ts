/**
 * A HubSpot table's `filter`: HubSpot's search filter JSON, validated against the operators'
 * rules and the search limits (leaving room for the two filters the connector adds to every
 * group), and normalised to filter groups. Part of the config schema (config.ts); the search
 * reader (search.ts) and the check (check.ts) use the normalised groups.
 */
import { z } from "zod";
import { required } from "../../../lib/config-common.ts";

const FILTER_OPERATORS = [
  "EQ",
  "NEQ",
  "LT",
  "LTE",
  "GT",
  "GTE",
  "BETWEEN",
  "IN",
  "NOT_IN",
  "HAS_PROPERTY",
  "NOT_HAS_PROPERTY",
  "CONTAINS_TOKEN",
  "NOT_CONTAINS_TOKEN",
] as const;

/** HubSpot's search limits (search guide): filter groups, filters per group, filters in total. */
const SEARCH_LIMITS = { maxFilterGroups: 5, maxFiltersPerGroup: 6, maxFilters: 18 } as const;
/** Filters the connector adds to every group of an incremental search: the date window (BETWEEN) and the id keyset (GT). */
export const CONNECTOR_FILTERS_PER_GROUP = 2;

const FilterValue = z.union([z.string(), z.number(), z.boolean()], { error: "must be a string, number or boolean" }).transform(String);

const HubSpotFilter = z
  .strictObject({
    propertyName: z.string(required("the property to filter on")).min(1),
    operator: z.enum(FILTER_OPERATORS, { error: (iss) => `unknown operator ${JSON.stringify(iss.input)}; HubSpot accepts ${FILTER_OPERATORS.join(", ")}` }),
    value: FilterValue.optional(),
    highValue: FilterValue.optional(),
    values: z.array(FilterValue).optional(),
  })
  .superRefine((f, ctx) => {
    const needs = (key: "value" | "highValue" | "values", why: string) => ctx.addIssue({ code: "custom", path: [key], message: `is required: ${why}` });
    const refuses = (key: "value" | "highValue" | "values") =>
      ctx.addIssue({ code: "custom", path: [key], message: `is not used by operator ${f.operator}; remove it` });
    switch (f.operator) {
      case "IN":
      case "NOT_IN":
        if (!f.values || f.values.length === 0) needs("values", `${f.operator} compares with a non-empty list`);
        if (f.value !== undefined) refuses("value");
        if (f.highValue !== undefined) refuses("highValue");
        break;
      case "BETWEEN":
        if (f.value === undefined) needs("value", "BETWEEN's lower bound");
        if (f.highValue === undefined) needs("highValue", "BETWEEN's upper bound");
        if (f.values !== undefined) refuses("values");
        break;
      case "HAS_PROPERTY":
      case "NOT_HAS_PROPERTY":
        if (f.value !== undefined) refuses("value");
        if (f.highValue !== undefined) refuses("highValue");
        if (f.values !== undefined) refuses("values");
        break;
      default:
        if (f.value === undefined) needs("value", `${f.operator} compares with one value`);
        if (f.highValue !== undefined) refuses("highValue");
        if (f.values !== undefined) refuses("values");
    }
  });
type HubSpotFilter = z.infer<typeof HubSpotFilter>;
export const HubSpotFilterGroup = z.strictObject({ filters: z.array(HubSpotFilter).min(1, { error: "a filter group needs at least one filter" }) });
export type HubSpotFilterGroup = z.infer<typeof HubSpotFilterGroup>;

/**
 * A table's filter: a list of filters (all must match), or a list of `{ filters: [...] }` groups
 * (any group may match), as in HubSpot's search body. Normalised to groups. The limits leave room
 * for the two filters the connector adds to each group.
 */
export const HubSpotFilterInput = z
  .array(z.unknown(), { error: "must be a list of filters ({ propertyName, operator, value/values }) or of { filters: [...] } groups" })
  .min(1, { error: "an empty filter list filters nothing; remove the key instead" })
  .transform((items, ctx): HubSpotFilterGroup[] => {
    const grouped = items.some((x) => typeof x === "object" && x !== null && "filters" in x);
    const groups: HubSpotFilterGroup[] = [];
    const flat: HubSpotFilter[] = [];
    items.forEach((item, i) => {
      const r = grouped ? HubSpotFilterGroup.safeParse(item) : HubSpotFilter.safeParse(item);
      if (!r.success) {
        for (const issue of r.error.issues) ctx.addIssue({ code: "custom", path: [i, ...issue.path], message: issue.message });
        return;
      }
      if (grouped) groups.push(r.data as HubSpotFilterGroup);
      else flat.push(r.data as HubSpotFilter);
    });
    const out = grouped ? groups : flat.length > 0 ? [{ filters: flat }] : [];
    const { maxFilterGroups, maxFiltersPerGroup, maxFilters } = SEARCH_LIMITS;
    if (out.length > maxFilterGroups) {
      ctx.addIssue({ code: "custom", path: [], message: `has ${out.length} filter groups; HubSpot's search accepts at most ${maxFilterGroups}` });
    }
    const perGroup = maxFiltersPerGroup - CONNECTOR_FILTERS_PER_GROUP;
    out.forEach((g, i) => {
      if (g.filters.length > perGroup) {
        ctx.addIssue({
          code: "custom",
          path: grouped ? [i, "filters"] : [],
          message: `has ${g.filters.length} filters in one group; HubSpot allows ${maxFiltersPerGroup} per group and the connector adds ${CONNECTOR_FILTERS_PER_GROUP} (the date window and the id keyset), so at most ${perGroup}`,
        });
      }
    });
    const total = out.reduce((n, g) => n + g.filters.length + CONNECTOR_FILTERS_PER_GROUP, 0);
    if (total > maxFilters) {
      ctx.addIssue({
        code: "custom",
        path: [],
        message: `needs ${total} filters in total once the connector adds ${CONNECTOR_FILTERS_PER_GROUP} per group; HubSpot allows ${maxFilters}: use fewer groups or filters`,
      });
    }
    return out;
  });
