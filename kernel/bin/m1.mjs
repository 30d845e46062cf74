#!/usr/bin/env node
// The `m1` command: registers tsx so the TypeScript sources run as they are, then hands over to the CLI
// (which loads the engine and its native addon only for the commands that compute).
import { register } from "tsx/esm/api";
import { register as registerCommonJs } from "tsx/cjs/api";

register();
registerCommonJs(); // .ts files outside a "type": "module" package load as CommonJS

const { main } = await import("../cli/main.ts");
process.exitCode = await main(process.argv.slice(2));
