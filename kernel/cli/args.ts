/**
 * The one argument parser of the `m1` command line. Each subcommand declares its flags once, with their type; every
 * value is checked here and an error names the flag. A flag that takes a value takes the next word whatever it looks
 * like, so `--max-new -1` reaches the check of --max-new (node's parseArgs calls such a value ambiguous). Numbers are
 * decimal only: `0x10`, `1e1` and `1.5` are not integers, `Infinity` is not a number.
 */
import { InputError } from "../../engine/errors.ts";

export interface Flag {
  /** int: an integer; uint: an integer >= 0; number: a finite decimal number; uints: comma-separated integers >= 0 (token ids, layers, lengths);
   *  numbers: comma-separated numbers; string; boolean: present or not (takes no value) */
  type: "int" | "uint" | "number" | "uints" | "numbers" | "string" | "boolean";
  /** may be given more than once: the values in the order given */
  multiple?: boolean;
  /** a one-letter alias: -p for --parameter */
  short?: string;
  /** bounds of an int, uint or number (inclusive) */
  min?: number;
  max?: number;
}
export type Flags = Record<string, Flag>;

type One<F extends Flag> = F["type"] extends "boolean" ? boolean
  : F["type"] extends "string" ? string
  : F["type"] extends "uints" | "numbers" ? number[]
  : number;
export type FlagValues<S extends Flags> = { [K in keyof S]?: S[K]["multiple"] extends true ? One<S[K]>[] : One<S[K]> };

/** A command line that does not parse: an unknown flag, a missing value, a flag given twice (exit status 2, with the
 *  usage). A value of the wrong type or out of range is an InputError naming the flag (exit status 1). */
export class UsageError extends InputError {}

const INTEGER = /^[+-]?\d+$/;
const DECIMAL = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;

export function parseFlags<S extends Flags>(args: readonly string[], flags: S): { values: FlagValues<S>; positionals: string[] } {
  const values: Record<string, unknown> = {};
  const positionals: string[] = [];
  const byShort = new Map(Object.entries(flags).filter(([, f]) => f.short).map(([name, f]) => [f.short!, name]));
  for (let i = 0; i < args.length; i++) {
    const word = args[i];
    if (word === "--") {
      positionals.push(...args.slice(i + 1));
      break;
    }
    let name: string;
    let inline: string | undefined;
    if (word.startsWith("--")) {
      const eq = word.indexOf("=");
      name = eq < 0 ? word.slice(2) : word.slice(2, eq);
      inline = eq < 0 ? undefined : word.slice(eq + 1);
    } else if (/^-[^-\d.]$/.test(word)) {
      name = byShort.get(word[1]) ?? word;
    } else {
      positionals.push(word);
      continue;
    }
    const flag = flags[name];
    if (!flag) throw new UsageError(`unknown option ${word.startsWith("--") ? `--${name}` : word}`);
    let value: unknown;
    if (flag.type === "boolean") {
      if (inline !== undefined) throw new UsageError(`--${name} takes no value (got "${inline}")`);
      value = true;
    } else {
      const text = inline ?? args[++i];
      if (text === undefined) throw new UsageError(`--${name} needs a value`);
      value = convert(name, flag, text);
    }
    if (flag.multiple) ((values[name] ??= []) as unknown[]).push(value);
    else if (name in values) throw new UsageError(`--${name} is given more than once`);
    else values[name] = value;
  }
  return { values: values as FlagValues<S>, positionals };
}

function convert(name: string, flag: Flag, text: string): string | number | number[] {
  switch (flag.type) {
    case "string":
      return text;
    case "uints":
      return text.split(",").map((s, i) => {
        if (!INTEGER.test(s.trim()) || Number(s) < 0 || !Number.isSafeInteger(Number(s))) {
          throw new InputError(`--${name}: item ${i} ("${s}") is not a non-negative integer`);
        }
        return Number(s);
      });
    case "numbers":
      return text.split(",").map((s, i) => {
        if (!DECIMAL.test(s.trim())) throw new InputError(`--${name}: item ${i} ("${s}") of "${text}" is not a number`);
        return Number(s);
      });
    default:
      return scalar(name, flag, text);
  }
}

function scalar(name: string, flag: Flag, text: string): number {
  const integer = flag.type !== "number";
  const min = flag.type === "uint" ? Math.max(0, flag.min ?? 0) : flag.min;
  const x = Number(text);
  const kind = integer ? "an integer" : "a number";
  const range = min !== undefined && flag.max !== undefined ? ` in [${min}, ${flag.max}]` : min !== undefined ? ` >= ${min}` : flag.max !== undefined ? ` <= ${flag.max}` : "";
  const ok = (integer ? INTEGER.test(text.trim()) && Number.isSafeInteger(x) : DECIMAL.test(text.trim()) && Number.isFinite(x)) &&
    (min === undefined || x >= min) && (flag.max === undefined || x <= flag.max);
  if (!ok) throw new InputError(`--${name}: "${text}" is not ${kind}${range}`);
  return x;
}
