/**
 * One RL step's wall time on the engine, split into rollout, log-probability recomputation and update (the weighted
 * backward pass and AdamW), beside the same step in PyTorch eager (benchmarks/peers/rl_step_torch.py: the same
 * checkpoint, problems × G completions, budget, rounds and thread count).
 *
 *   node --import tsx benchmarks/rl/step.ts [--model mini-40k] [--problems 4] [--group 8] [--digits 7] [--budget 48]
 *        [--rounds 4] [--threads 2] [--tries 2] [--no-peer]
 */
import { parseArgs } from "node:util";
import { execFileSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { loadLocalModel } from "../registry.ts";
import * as native from "../../native/index.ts";
import { TrainingLoop } from "../../engine/rl/train.ts";
import { EnginePolicy } from "../../engine/rl/engine-policy.ts";
import { staged } from "../../engine/rl/recipes.ts";
import { answerDigitCredit } from "../../engine/rl/rewards.ts";

const { values } = parseArgs({
  options: {
    model: { type: "string", default: "mini-40k" }, problems: { type: "string", default: "4" }, group: { type: "string", default: "8" },
    digits: { type: "string", default: "7" }, budget: { type: "string", default: "48" }, rounds: { type: "string", default: "4" },
    threads: { type: "string", default: "2" }, tries: { type: "string", default: "2" }, "no-peer": { type: "boolean" },
  },
});
const num = (k: keyof typeof values) => Number(values[k]);
native.setThreads(num("threads"));
const { model } = await loadLocalModel(values.model!);
const stages = [{ fromStep: 0, budget: num("budget"), digits: [num("digits")] }];
let best: { rollout: number; logprobs: number; update: number; tokens: number } | null = null;
for (let k = 0; k <= num("tries"); k++) {
  const policy = new EnginePolicy(model, { lr: 1e-5, betas: [0.9, 0.95], eps: 1e-15 });
  const trainer = new TrainingLoop(policy, {
    mode: "rl", objective: "cispo", seed: k, steps: 1, batchSize: num("problems"), groupSize: num("group"), rounds: num("rounds"),
    temperature: 1, maxNewTokens: num("budget") + num("digits") + 4, ...staged(stages), reward: answerDigitCredit,
    dynamicSampling: false, checkpointEvery: 1,
  });
  const [m] = await trainer.run();
  const t = { ...m.seconds, tokens: Math.round(m.responseLength * num("problems") * num("group")) };
  // the first run warms up (native objects, the pool); the best of the others counts
  if (k > 0 && (!best || t.rollout + t.logprobs + t.update < best.rollout + best.logprobs + best.update)) best = t;
}
const total = best!.rollout + best!.logprobs + best!.update;
console.log(`engine (${num("threads")} threads): rollout ${best!.rollout.toFixed(2)} s, log-probs ${best!.logprobs.toFixed(2)} s, update ${best!.update.toFixed(2)} s, total ${total.toFixed(2)} s (${best!.tokens} new tokens)`);
if (!values["no-peer"]) {
  const script = fileURLToPath(new URL("../peers/rl_step_torch.py", import.meta.url));
  const out = JSON.parse(execFileSync("/usr/bin/python3", [script, model.checkpoint.dir, "--threads", values.threads!, "--problems", values.problems!,
    "--group", values.group!, "--digits", values.digits!, "--budget", values.budget!, "--rounds", values.rounds!], { encoding: "utf8" }));
  console.log(`PyTorch ${out.torch} eager (${out.threads} threads): rollout ${out.rollout_s.toFixed(2)} s, log-probs ${out.logprobs_s.toFixed(2)} s, update ${out.update_s.toFixed(2)} s, total ${out.total_s.toFixed(2)} s (${out.new_tokens} new tokens)`);
  console.log(`engine speed-up on the whole step: ${(out.total_s / total).toFixed(2)}x`);
}
