/**
 * The precision finding (MiniMax-M1 Fig. 3, docs/rl.md) on a checkpoint: at step 0 and after CISPO training steps,
 * fresh rollouts at temperature 1, then each completion token's probability as the rollout engine gives it (the
 * stored BF16 weights, LM head in BF16 or f32) and as the training path gives it (the trainer's f32 masters, f32
 * head); their correlation, mean and largest |Δp|, and the share of tokens with |Δp| > 0.01.
 *
 *   node --import tsx benchmarks/rl/precision.ts [--model mini-40k] [--at 0,10,20] [--digits 6] [--n 64] [--budget 40]
 *        [--stages 48:6-7] [--lr 1e-4] [--seed 0]
 */
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { parseArgs } from "node:util";
import { loadLocalModel } from "../registry.ts";
import { Rng } from "../../engine/sampling.ts";
import { additionPrompt, randomOperands } from "../../engine/rl/tasks.ts";
import { rollout } from "../../engine/rl/rollout.ts";
import { masterModel, precisionComparison, MOVED_PROBABILITY } from "../../engine/rl/precision.ts";
import { TrainingLoop } from "../../engine/rl/train.ts";
import { EnginePolicy } from "../../engine/rl/engine-policy.ts";
import { parseStages, staged } from "../../engine/rl/recipes.ts";
import { answerDigitCredit, exactAnswer } from "../../engine/rl/rewards.ts";

const { values } = parseArgs({
  options: {
    model: { type: "string", default: "mini-40k" },
    at: { type: "string", default: "0,10,20" },
    digits: { type: "string", default: "6" },
    n: { type: "string", default: "64" },
    budget: { type: "string", default: "40" },
    stages: { type: "string", default: "48:6-7" },
    lr: { type: "string", default: "1e-4" },
    seed: { type: "string", default: "0" },
  },
});
const at = values.at!.split(",").map(Number);
if (!at.every((s, i) => Number.isInteger(s) && s >= 0 && (i === 0 || s > at[i - 1]))) throw new Error(`--at "${values.at}": expected increasing step numbers >= 0, e.g. 0,10,20`);
const digits = Number(values.digits);
const seed = Number(values.seed);
const { model } = await loadLocalModel(values.model!);
const policy = new EnginePolicy(model, { lr: Number(values.lr), betas: [0.9, 0.95], eps: 1e-15, maxGradNorm: 1 });
const stages = parseStages(values.stages!, Math.max(...at, 1));
const loop = new TrainingLoop(policy, {
  mode: "rl", objective: "cispo", seed, steps: Math.max(...at, 1), batchSize: 4, groupSize: 8, rounds: 4, temperature: 1,
  maxNewTokens: Math.max(...stages.map((s) => s.budget + Math.max(...s.digits) + 4)), ...staged(stages),
  reward: answerDigitCredit, verifier: exactAnswer, dynamicSampling: true, checkpointEvery: Math.max(...at, 1),
});
const scratch = fs.mkdtempSync(path.join(os.tmpdir(), "m1-precision-"));
console.log(`${values.model}: CISPO steps (${values.stages}, 4 problems × G = 8, 4 rounds, lr ${values.lr}); at each step listed, ` +
  `${values.n} rollouts of ${digits}-digit additions at temperature 1 (budget ${values.budget})`);
console.log(`| step | LM head of the rollout engine | tokens | correlation | mean |Δp| | largest |Δp| | |Δp| > ${MOVED_PROBABILITY} |`);
console.log("|---|---|---|---|---|---|---|");
try {
  for (const step of at) {
    await loop.run(undefined, step);
    const rng = new Rng(1000 + step);
    const prompts = Array.from({ length: Number(values.n) }, () => additionPrompt(...randomOperands(rng, digits)));
    const outs = await rollout(model, prompts, { groupSize: 1, seed, temperature: 1, thinkingBudget: Number(values.budget), maxNewTokens: Number(values.budget) + digits + 4 });
    const masters = await masterModel(policy.trainer, path.join(scratch, `step-${step}`));
    const r = await precisionComparison(model, masters, outs);
    masters.checkpoint.close();
    for (const [head, a] of [["BF16", r.bf16Head], ["f32", r.f32Head]] as const) {
      console.log(`| ${loop.step} | ${head} | ${r.tokens} | ${a.correlation.toFixed(7)} | ${a.meanAbsDifference.toExponential(2)} | ${a.maxDifference.toExponential(2)} | ${(100 * a.shareMoved).toFixed(2)}% |`);
    }
  }
} finally {
  fs.rmSync(scratch, { recursive: true, force: true });
}
