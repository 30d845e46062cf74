/**
 * Where a checkpoint's success ends, per problem family (operand digit counts "7" or mixed "7+3") and thinking
 * budget: the mean reward sampled at a temperature (batched rollouts, G completions of each of n problems), the share
 * of groups whose rewards are not all equal (those that give group-relative RL a gradient), and — with --path — the
 * probability of the exact scratchpad completion (the exact-answer success rate at temperature 1, measured without
 * sampling: mean over the problems, and the share of problems between 5% and 95%). Chooses each RL stage's problems
 * where the starting success rate is between about 5% and 95%.
 *
 *   node --import tsx benchmarks/rl/frontier.ts [--model mini-40k] [--budgets 40,48,56,64,72,80] [--digits 5,6,7,7+3,8]
 *        [--n 16] [--group 4] [--reward exact|digits] [--temperature 1] [--path] [--seed 0] [--json out.json]
 */
import fs from "node:fs";
import { parseArgs } from "node:util";
import { loadLocalModel } from "../registry.ts";
import { Rng } from "../../engine/sampling.ts";
import { familyProblems, parseFamily, problemOperands, scratchpadCompletion } from "../../engine/rl/tasks.ts";
import { exactAnswer, answerDigitCredit } from "../../engine/rl/rewards.ts";
import { rollout, completionProbability } from "../../engine/rl/rollout.ts";
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
    path: { type: "boolean", default: false },
    seed: { type: "string", default: "0" },
    json: { type: "string" },
  },
});
const rewards = { exact: exactAnswer, digits: answerDigitCredit };
const reward = rewards[values.reward as keyof typeof rewards];
if (!reward) throw new InputError(`--reward must be exact or digits, got ${values.reward}`);
const { model } = await loadLocalModel(values.model!);
const n = Number(values.n);
const G = Number(values.group);
const temperature = Number(values.temperature);
const families = values.digits!.split(",");
const rows: { budget: number; family: string; reward: number; informative: number; pathProbability?: number; pathBetween?: number }[] = [];
console.log(`${values.model}, temperature ${temperature}, ${n} problems x G = ${G} per cell, reward ${values.reward}: mean reward (share of groups with unequal rewards)` +
  (values.path ? "; exact-path probability: mean [share of problems between 0.05 and 0.95]" : ""));
console.log(`| budget | ${families.join(" | ")} |`);
console.log(`|---|${families.map(() => "---").join("|")}|`);
for (const budget of values.budgets!.split(",").map(Number)) {
  const cells: string[] = [];
  for (const family of families) {
    const lengths = parseFamily(family);
    const rng = new Rng(Number(values.seed) * 1000 + lengths[0] * 31 + lengths[1]);
    const problems = familyProblems(rng, lengths, n);
    const longest = Math.max(...lengths);
    const outs = await rollout(model, problems.map((p) => p.prompt), {
      groupSize: G, seed: Number(values.seed), temperature, greedy: temperature === 0, thinkingBudget: budget, maxNewTokens: budget + longest + 4,
    });
    const r = outs.map((o) => reward(problems[o.group], { text: o.text, tokens: o.completion.length, truncated: o.truncated }));
    const row: (typeof rows)[number] = { budget, family, reward: mean(r), informative: informativeGroups(r, outs.map((o) => o.group)).size / n };
    let cell = `${row.reward.toFixed(2)} (${row.informative.toFixed(2)})`;
    // the scratchpad path fits the budget only if its steps (6 tokens a digit) do
    if (values.path && 6 * longest <= budget) {
      const p: number[] = [];
      for (const q of problems) p.push(await completionProbability(model, q.prompt, scratchpadCompletion(...problemOperands(q.prompt))));
      row.pathProbability = mean(p);
      row.pathBetween = p.filter((x) => x >= 0.05 && x <= 0.95).length / p.length;
      cell += ` ${row.pathProbability.toPrecision(2)} [${row.pathBetween.toFixed(2)}]`;
    }
    rows.push(row);
    cells.push(cell);
  }
  console.log(`| ${budget} | ${cells.join(" | ")} |`);
}
if (values.json) fs.writeFileSync(values.json, JSON.stringify({ model: values.model, temperature, n, groupSize: G, reward: values.reward, rows }, null, 1));

function mean(xs: readonly number[]): number {
  return xs.reduce((a, b) => a + b, 0) / xs.length;
}
