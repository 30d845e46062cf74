/**
 * The precision finding (MiniMax-M1 Fig. 3) on a checkpoint: rollouts at temperature 1, then each completion
 * token's probability with the LM head in f32 and in BF16, and their correlation.
 *
 *   node --import tsx benchmarks/rl/precision.ts [--model mini-40k] [--digits 6] [--n 64] [--budget 40] [--seed 0]
 */
import { parseArgs } from "node:util";
import { loadLocalModel } from "../registry.ts";
import { Rng } from "../../engine/sampling.ts";
import { additionPrompt, randomOperands } from "../../engine/rl/tasks.ts";
import { rollout } from "../../engine/rl/rollout.ts";
import { headPrecision } from "../../engine/rl/precision.ts";

const { values } = parseArgs({
  options: {
    model: { type: "string", default: "mini-40k" },
    digits: { type: "string", default: "6" },
    n: { type: "string", default: "64" },
    budget: { type: "string", default: "40" },
    seed: { type: "string", default: "0" },
  },
});
const { model } = await loadLocalModel(values.model!);
const rng = new Rng(Number(values.seed));
const digits = Number(values.digits);
const prompts = Array.from({ length: Number(values.n) }, () => additionPrompt(...randomOperands(rng, digits)));
const outs = await rollout(model, prompts, { groupSize: 1, seed: Number(values.seed), temperature: 1, thinkingBudget: Number(values.budget), maxNewTokens: Number(values.budget) + digits + 4 });
const r = await headPrecision(model, outs);
console.log(`${values.model}: ${r.f32.length} tokens of ${outs.length} rollouts (${digits} digits, temperature 1)`);
console.log(`correlation of p(token) with the LM head in f32 vs BF16: ${r.correlation.toFixed(6)}; largest |Δp| ${r.maxDifference.toExponential(2)}`);
