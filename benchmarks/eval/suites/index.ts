// The built-in suites by name, with the parameters each one takes (as the `m1 eval` command passes them).
import { InputError } from "../../../engine/errors.ts";
import type { Task } from "../types.ts";
import { arithmeticSuite } from "./arithmetic.ts";
import { retrievalSuite } from "./passkey.ts";
import { mrcrSuite } from "./mrcr.ts";
import { recallSuite } from "./recall.ts";

export interface SuiteParams {
  /** items per cell (per digit count, length × depth, conversation length, list size) */
  n?: number;
  seed?: number;
  digits?: number[];
  format?: string;
  lengths?: number[];
  depths?: number[];
  turns?: number[];
  needles?: number;
  pairs?: number[];
}

const ACCEPTS: Record<string, (keyof SuiteParams)[]> = {
  arithmetic: ["n", "seed", "digits", "format"],
  passkey: ["n", "seed", "lengths", "depths"],
  needle: ["n", "seed", "lengths", "depths"],
  mrcr: ["n", "seed", "turns", "needles"],
  recall: ["n", "seed", "pairs"],
};

export const SUITES = Object.keys(ACCEPTS);

export function builtinSuite(name: string, p: SuiteParams): Task {
  const accepts = ACCEPTS[name];
  if (!accepts) throw new InputError(`no built-in suite "${name}" (have ${SUITES.join(", ")}; or give a task .json / lm-eval .yaml file)`);
  const extra = (Object.keys(p) as (keyof SuiteParams)[]).filter((k) => p[k] !== undefined && !accepts.includes(k));
  if (extra.length) throw new InputError(`suite ${name} does not take ${extra.map((k) => `--${k}`).join(", ")} (it takes ${accepts.map((k) => `--${k}`).join(", ")})`);
  switch (name) {
    case "arithmetic":
      return arithmeticSuite({ digits: p.digits, perDigits: p.n, seed: p.seed, format: p.format as "scratchpad" | "natural" | undefined });
    case "passkey":
    case "needle":
      return retrievalSuite({ kind: name, lengths: p.lengths, depths: p.depths, perCell: p.n, seed: p.seed });
    case "mrcr":
      return mrcrSuite({ turns: p.turns, needles: p.needles, perCell: p.n, seed: p.seed });
    default:
      return recallSuite({ pairs: p.pairs, perCell: p.n, seed: p.seed });
  }
}
