/**
 * Where a checkpoint's success ends: exact-answer rate per operand digit count and thinking budget, sampled at a
 * temperature (batched rollouts), to choose each RL stage's problems where the starting success rate is between
 * about 5% and 95%.
 *
 *   node --import tsx benchmarks/rl/frontier.ts [--model mini-40k] [--budgets 40,48,56,64,72,80] [--digits 5,6,7,8,9]
 *        [--n 64] [--temperature 1] [--seed 0] [--json out.json]
 */
import fs from "node:fs";
import { parseArgs } from "node:util";
import { loadLocalModel } from "../registry.ts";
import { Rng } from "../../engine/sampling.ts";
import { additionProblem, randomOperands } from "../../engine/rl/tasks.ts";
import { exactAnswer } from "../../engine/rl/rewards.ts";
import { rollout } from "../../engine/rl/rollout.ts";

const { values } = parseArgs({
  options: {
    model: { type: "string", default: "mini-40k" },
    budgets: { type: "string", default: "40,48,56,64,72,80" },
    digits: { type: "string", default: "5,6,7,8,9" },
    n: { type: "string", default: "64" },
    temperature: { type: "string", default: "1" },
    seed: { type: "string", default: "0" },
    json: { type: "string" },
  },
});
const list = (s: string) => s.split(",").map(Number);
const { model } = await loadLocalModel(values.model!);
const n = Number(values.n);
const temperature = Number(values.temperature);
const rows: { budget: number; digits: number; success: number }[] = [];
console.log(`${values.model}, temperature ${temperature}, ${n} problems per cell: exact-answer rate`);
console.log(`| budget | ${list(values.digits!).join(" | ")} |`);
for (const budget of list(values.budgets!)) {
  const cells: string[] = [];
  for (const digits of list(values.digits!)) {
    const rng = new Rng(Number(values.seed) * 1000 + digits);
    const problems = Array.from({ length: n }, () => additionProblem(...randomOperands(rng, digits)));
    const outs = await rollout(model, problems.map((p) => p.prompt), {
      groupSize: 1, seed: Number(values.seed), temperature, greedy: temperature === 0, thinkingBudget: budget, maxNewTokens: budget + digits + 4,
    });
    const success = outs.reduce((s, o) => s + exactAnswer(problems[o.group], { text: o.text, tokens: o.completion.length, truncated: o.truncated }), 0) / n;
    rows.push({ budget, digits, success });
    cells.push(success.toFixed(2));
  }
  console.log(`| ${budget} | ${cells.join(" | ")} |`);
}
if (values.json) fs.writeFileSync(values.json, JSON.stringify({ model: values.model, temperature, n, rows }, null, 1));
