// Multi-digit addition, both operands with exactly n digits. "scratchpad" is the demo pair's format
// ("<s> 4 8 2 1 + 9 3 7 5 = <think>", answer digits after "</think>"), graded by exact match of the digits;
// "natural" asks in words for a \boxed{} answer, graded by math equivalence (for chat models such as M1).
import { InputError } from "../../../engine/errors.ts";
import type { EvalItem, Reference, Task } from "../types.ts";
import { exactMatch } from "../graders/exact.ts";
import { mathGrader } from "../graders/math.ts";
import { miniArithmeticData, citation } from "../../paper/data.ts";
import { Picker } from "./random.ts";

export interface ArithmeticOptions {
  digits?: number[];
  /** problems per digit count */
  perDigits?: number;
  seed?: number;
  format?: "scratchpad" | "natural";
}

export function arithmeticSuite(options: ArithmeticOptions = {}): Task {
  const { digits = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12], perDigits = 50, seed = 0, format = "scratchpad" } = options;
  if (!digits.every((n) => Number.isInteger(n) && n >= 1 && n <= 30)) throw new InputError(`arithmetic: digits must be integers in 1..30, got ${digits.join(",")}`);
  if (!(Number.isInteger(perDigits) && perDigits >= 1)) throw new InputError(`arithmetic: perDigits must be an integer >= 1`);
  if (format !== "scratchpad" && format !== "natural") throw new InputError(`arithmetic: format must be "scratchpad" or "natural"`);
  const items: EvalItem[] = [];
  for (const n of digits) {
    const pick = new Picker(seed * 1000 + n); // one stream per digit count: adding a count leaves the others unchanged
    for (let k = 0; k < perDigits; k++) {
      const a = operand(pick, n);
      const b = operand(pick, n);
      const sum = (BigInt(a) + BigInt(b)).toString();
      const prompt = format === "scratchpad"
        ? `<s> ${spaced(a)} + ${spaced(b)} = <think>`
        : [{ role: "user", content: `What is ${a} + ${b}? Put the final answer in \\boxed{}.` }];
      items.push({ id: `${n}d-${k}`, prompt, target: sum, group: String(n) });
    }
  }
  const maxDigits = Math.max(...digits);
  return {
    name: `arithmetic-${format}`,
    description: `addition of two ${digits.join("/")}-digit numbers, ${perDigits} per digit count, seed ${seed}, ${format} format`,
    items,
    grader: format === "scratchpad" ? exactMatch({ regexesToIgnore: ["\\s+", "</s>"] }) : mathGrader(),
    // scratchpad: 6 thought tokens per digit, "</think>", n + 1 answer digits, "</s>"
    generation: { maxTokens: format === "scratchpad" ? 7 * maxDigits + 8 : 1024 },
    groups: digits.map(String),
    groupTitle: "digits per operand",
    reference: format === "scratchpad" ? demoReference : undefined,
  };
}

/** The checkpoints README's accuracy row for this demo checkpoint and thinking budget, if it has one. */
function demoReference(model: string, thinkingBudget: number | undefined): Reference | null {
  const data = miniArithmeticData();
  const row = data.rows.find((r) => r.checkpoint === model && r.thinking_budget === thinkingBudget);
  if (!row) return null;
  return {
    label: `${row.checkpoint} budget ${row.thinking_budget} (published)`,
    source: citation(data.source),
    points: Object.fromEntries(data.digits.map((d, i) => [String(d), row.accuracy[i]])),
  };
}

function operand(pick: Picker, n: number): string {
  return String(pick.int(1, 9)) + pick.chars(n - 1, "0123456789");
}

const spaced = (s: string) => s.split("").join(" ");
