/**
 * `npm run docs:config`: writes docs/configuration.md, the configuration reference generated from
 * the zod schemas (app/config-reference.ts). Run it after changing a schema or a `.describe()`
 * text; test/unit/config-reference.test.ts fails until the checked-in file matches.
 */
import { writeFileSync } from "node:fs";
import { renderConfigReference } from "../app/config-reference.ts";

const target = new URL("../docs/configuration.md", import.meta.url);
writeFileSync(target, renderConfigReference());
console.log(`wrote ${target.pathname}`);
