/**
 * Where a checkpoint's success ends: the mean reward per operand digit count and thinking budget, sampled at a
 * temperature (batched rollouts, G completions of each of n problems), and the share of groups whose rewards are not
 * all equal (those that give group-relative RL a gradient), to choose each RL stage's problems where the starting
 * success rate is between about 5% and 95%.
 *
 *   node --import tsx benchmarks/rl/frontier.ts [--model mini-40k] [--budgets 40,48,56,64,72,80] [--digits 5,6,7,8,9]
 *        [--n 16] [--group 4] [--reward exact|digits] [--temperature 1] [--seed 0] [--json out.json]
 */
import fs from "node:fs";
import { parseArgs } from "node:util";
import { loadLocalModel } from "../registry.ts";
import { Rng } from "../../engine/sampling.ts";
import { additionProblem, randomOperands } from "../../engine/rl/tasks.ts";
import { exactAnswer, answerDigitCredit } from "../../engine/rl/rewards.ts";
import { rollout } from "../../engine/rl/rollout.ts";
import { informativeGroups } from "../../engine/rl/objectives.ts";
import { InputError } from "../../engine/errors.ts";

const { values } = parseArgs({
  options: {
    model: { type: "string", default: "mini-40k" },
    budgets: { type: "string", default: "40,48,56,64,72,80" },
    digits: { type: "string", default: "5,6,7,8,9" },
    n: { type: "string", default: "16" },
    group: { type: "string", default: "4" },
    reward: { type: "string", default: "exact" },
    temperature: { type: "string", default: "1" },
    seed: { type: "string", default: "0" },
    json: { type: "string" },
  },
});
const list = (s: string) => s.split(",").map(Number);
const rewards = { exact: exactAnswer, digits: answerDigitCredit };
const reward = rewards[values.reward as keyof typeof rewards];
if (!reward) throw new InputError(`--reward must be exact or digits, got ${values.reward}`);
const { model } = await loadLocalModel(values.model!);
const n = Number(values.n);
const G = Number(values.group);
const temperature = Number(values.temperature);
const rows: { budget: number; digits: number; reward: number; informative: number }[] = [];
console.log(`${values.model}, temperature ${temperature}, ${n} problems x G = ${G} per cell, reward ${values.reward}: mean reward (share of groups with unequal rewards)`);
console.log(`| budget | ${list(values.digits!).join(" | ")} |`);
console.log(`|---|${list(values.digits!).map(() => "---").join("|")}|`);
for (const budget of list(values.budgets!)) {
  const cells: string[] = [];
  for (const digits of list(values.digits!)) {
    const rng = new Rng(Number(values.seed) * 1000 + digits);
    const problems = Array.from({ length: n }, () => additionProblem(...randomOperands(rng, digits)));
    const outs = await rollout(model, problems.map((p) => p.prompt), {
      groupSize: G, seed: Number(values.seed), temperature, greedy: temperature === 0, thinkingBudget: budget, maxNewTokens: budget + digits + 4,
    });
    const r = outs.map((o) => reward(problems[o.group], { text: o.text, tokens: o.completion.length, truncated: o.truncated }));
    const mean = r.reduce((a, b) => a + b, 0) / r.length;
    const informative = informativeGroups(r, outs.map((o) => o.group)).size / n;
    rows.push({ budget, digits, reward: mean, informative });
    cells.push(`${mean.toFixed(2)} (${informative.toFixed(2)})`);
  }
  console.log(`| ${budget} | ${cells.join(" | ")} |`);
}
if (values.json) fs.writeFileSync(values.json, JSON.stringify({ model: values.model, temperature, n, groupSize: G, reward: values.reward, rows }, null, 1));
