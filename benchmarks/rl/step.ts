/**
 * One RL step's wall time on the engine, split into rollout, log-probabilities (the forward pass of each update
 * round under the weights being trained, which the round's backward pass reuses), backward (the objective's token
 * weights and the weighted backward pass) and optimiser (AdamW and the BF16 weights rewritten from the f32
 * masters), beside the same step in PyTorch eager (benchmarks/peers/rl_step_torch.py: the same checkpoint,
 * problems × G completions, budget, rounds, thread count and split). Each side's figure is the best of `tries` steps
 * after a warm-up step.
 *
 *   node --import tsx benchmarks/rl/step.ts [--model mini-40k] [--problems 4] [--group 8] [--digits 7] [--budget 48]
 *        [--rounds 4] [--threads 2] [--tries 2] [--no-peer] [--write]
 *
 * --write: also keeps the figures (benchmarks/perf/results/rl-step.json) and writes them, with the FMA peak
 * measured in the same run, into benchmarks/perf/TRAINING.md.
 */
import { parseArgs } from "node:util";
import os from "node:os";
import { execFileSync } from "node:child_process";
import { fileURLToPath } from "node:url";
import { loadLocalModel } from "../registry.ts";
import * as native from "../../native/index.ts";
import { TrainingLoop } from "../../engine/rl/train.ts";
import { EnginePolicy } from "../../engine/rl/engine-policy.ts";
import { staged } from "../../engine/rl/recipes.ts";
import { answerDigitCredit } from "../../engine/rl/rewards.ts";
import { cpuModel, fmaPeak } from "../perf/machine.ts";
import { writeRlStepReport, type RlStepResults } from "../perf/training-report.ts";

const { values } = parseArgs({
  options: {
    model: { type: "string", default: "mini-40k" }, problems: { type: "string", default: "4" }, group: { type: "string", default: "8" },
    digits: { type: "string", default: "7" }, budget: { type: "string", default: "48" }, rounds: { type: "string", default: "4" },
    threads: { type: "string", default: "2" }, tries: { type: "string", default: "2" }, "no-peer": { type: "boolean" },
    write: { type: "boolean" },
  },
});
const num = (k: keyof typeof values) => Number(values[k]);
native.setThreads(num("threads"));
const loadavgStart = os.loadavg()[0];
const { model } = await loadLocalModel(values.model!);
const stages = [{ fromStep: 0, budget: num("budget"), digits: [num("digits")] }];
type Split = RlStepResults["engine"];
const total = (t: Split) => t.rollout + t.logprobs + t.backward + t.optimiser;
const split = (t: Split) => `rollout ${t.rollout.toFixed(2)} s, log-probs ${t.logprobs.toFixed(2)} s, backward ${t.backward.toFixed(2)} s, ` +
  `optimiser ${t.optimiser.toFixed(2)} s, total ${total(t).toFixed(2)} s`;
let best: Split | null = null;
for (let k = 0; k <= num("tries"); k++) {
  const policy = new EnginePolicy(model, { lr: 1e-5, betas: [0.9, 0.95], eps: 1e-15 });
  const trainer = new TrainingLoop(policy, {
    mode: "rl", objective: "cispo", seed: k, steps: 1, batchSize: num("problems"), groupSize: num("group"), rounds: num("rounds"),
    temperature: 1, maxNewTokens: num("budget") + num("digits") + 4, ...staged(stages), reward: answerDigitCredit,
    dynamicSampling: false, checkpointEvery: 1,
  });
  const [m] = await trainer.run();
  const t = { ...m.seconds, newTokens: Math.round(m.responseLength * num("problems") * num("group")) };
  // the first run warms up (native objects, the pool); the best of the others counts
  if (k > 0 && (!best || total(t) < total(best))) best = t;
}
console.log(`engine (${num("threads")} threads): ${split(best!)} (${best!.newTokens} new tokens)`);
let peer: RlStepResults["peer"];
if (!values["no-peer"]) {
  const script = fileURLToPath(new URL("../peers/rl_step_torch.py", import.meta.url));
  const out = JSON.parse(execFileSync("/usr/bin/python3", [script, model.checkpoint.dir, "--threads", values.threads!, "--problems", values.problems!,
    "--group", values.group!, "--digits", values.digits!, "--budget", values.budget!, "--rounds", values.rounds!, "--tries", values.tries!], { encoding: "utf8" }));
  peer = { rollout: out.rollout_s, logprobs: out.logprobs_s, backward: out.backward_s, optimiser: out.optimiser_s, torch: out.torch, newTokens: out.new_tokens };
  console.log(`PyTorch ${out.torch} eager (${out.threads} threads): ${split(peer)} (${out.new_tokens} new tokens)`);
  console.log(`engine speed-up on the whole step: ${(total(peer) / total(best!)).toFixed(2)}x`);
}
if (values.write) {
  const shape = Object.fromEntries((["problems", "group", "digits", "budget", "rounds"] as const).map((k) => [k, num(k)]));
  const written = writeRlStepReport({
    date: new Date().toISOString(), model: values.model!, shape, fmaPeakGflops: fmaPeak(), engine: best!, peer,
    host: { cpu: cpuModel(), cores: os.availableParallelism(), isa: native.cpuInfo().isa, threads: num("threads"), node: process.version,
      loadavgStart, loadavgEnd: os.loadavg()[0] },
  });
  console.log(`wrote ${written.join(", ")}`);
}
