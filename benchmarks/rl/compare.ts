/**
 * The experiment of docs/rl.md: CISPO, DAPO and GRPO from mini-40k with equal rollout budgets, several seeds each,
 * on the staged window; every `--eval-every` steps the held-out exact-answer accuracy per digit count (greedy and at
 * temperature 1). Writes results/compare-evals.arrow (one row per run, step, digit count, decoding) and
 * results/compare-steps.arrow (every step's training metrics), and prints a summary.
 *
 *   node --import tsx benchmarks/rl/compare.ts [--objectives cispo,dapo,grpo] [--seeds 0,1,2] [--steps 20]
 *        [--stages 48:7] [--stage-steps 20] [--batch 4] [--group 8] [--rounds 4] [--lr 1e-4] [--max-grad-norm 1] [--reward digits]
 *        [--eval-every 5] [--eval-digits 6,7,8] [--eval-n 16] [--out benchmarks/rl/results]
 */
import fs from "node:fs";
import path from "node:path";
import { parseArgs } from "node:util";
import { tableFromArrays, tableToIPC } from "apache-arrow";
import { loadLocalModel } from "../registry.ts";
import { Rng } from "../../engine/sampling.ts";
import { TrainingLoop, type StepMetrics } from "../../engine/rl/train.ts";
import { EnginePolicy } from "../../engine/rl/engine-policy.ts";
import { parseStages, staged } from "../../engine/rl/recipes.ts";
import { exactAnswer, answerDigitCredit } from "../../engine/rl/rewards.ts";
import { additionProblems } from "../../engine/rl/tasks.ts";
import { rollout } from "../../engine/rl/rollout.ts";
import { metricsTable } from "../../engine/rl/metrics.ts";
import type { ObjectiveName } from "../../engine/rl/objectives.ts";
import type { Model } from "../../engine/model.ts";
import { M1Error } from "../../engine/errors.ts";

const { values } = parseArgs({
  options: {
    objectives: { type: "string", default: "cispo,dapo,grpo" }, seeds: { type: "string", default: "0" },
    steps: { type: "string", default: "20" }, stages: { type: "string", default: "48:7" }, "stage-steps": { type: "string", default: "20" },
    batch: { type: "string", default: "4" }, group: { type: "string", default: "8" }, rounds: { type: "string", default: "4" },
    lr: { type: "string", default: "1e-4" }, "max-grad-norm": { type: "string", default: "1" }, reward: { type: "string", default: "digits" },
    "eval-every": { type: "string", default: "5" }, "eval-digits": { type: "string", default: "6,7,8" }, "eval-n": { type: "string", default: "16" },
    out: { type: "string", default: "benchmarks/rl/results" },
  },
});
const list = (s: string) => s.split(",");
const stages = parseStages(values.stages!, Number(values["stage-steps"]));
const budget = (step: number) => staged(stages).thinkingBudget(step);
const evalDigits = list(values["eval-digits"]!).map(Number);
const evals: { run: string; objective: string; seed: number; step: number; digits: number; decoding: string; accuracy: number }[] = [];
const steps: StepMetrics[][] = [];
const runs: string[] = [];
const diverged: string[] = [];

async function evaluate(model: Model, run: string, objective: string, seed: number, step: number): Promise<void> {
  for (const digits of evalDigits) {
    const problems = additionProblems(new Rng(999_000 + digits), [digits], Number(values["eval-n"]));   // held out: its own stream
    for (const decoding of ["greedy", "t1"] as const) {
      const b = budget(Math.max(0, step - 1));
      const outs = await rollout(model, problems.map((p) => p.prompt), {
        groupSize: 1, seed: 7, ...(decoding === "greedy" ? { greedy: true } : { temperature: 1 }), thinkingBudget: b, maxNewTokens: b + digits + 4,
      });
      const accuracy = outs.reduce((s, o) => s + exactAnswer(problems[o.group], { text: o.text, tokens: 0, truncated: false }), 0) / outs.length;
      evals.push({ run, objective, seed, step, digits, decoding, accuracy });
    }
  }
}

for (const objective of list(values.objectives!) as ObjectiveName[]) {
  for (const seed of list(values.seeds!).map(Number)) {
    const run = `${objective}-seed${seed}`;
    const { model } = await loadLocalModel("mini-40k"); // a fresh copy per run
    const policy = new EnginePolicy(model, { lr: Number(values.lr), betas: [0.9, 0.95], eps: 1e-15, maxGradNorm: Number(values["max-grad-norm"]) });
    const trainer = new TrainingLoop(policy, {
      mode: "rl", objective, seed, steps: Number(values.steps), batchSize: Number(values.batch), groupSize: Number(values.group),
      rounds: Number(values.rounds), temperature: 1, maxNewTokens: Math.max(...stages.map((s) => s.budget + Math.max(...s.digits) + 4)),
      ...staged(stages), reward: values.reward === "exact" ? exactAnswer : answerDigitCredit, verifier: exactAnswer, dynamicSampling: true,
      checkpointEvery: Number(values.steps),
    });
    await evaluate(model, run, objective, seed, 0);
    const t0 = performance.now();
    try {
      await trainer.run(async (m) => {
        process.stderr.write(`${run} step ${m.step}: reward ${m.reward.toFixed(3)} acc ${m.accuracy.toFixed(3)} clip ${m.clipFraction.toFixed(3)} ${((performance.now() - t0) / 1000).toFixed(0)} s\n`);
        if (m.step % Number(values["eval-every"]) === 0 || m.step === trainer.config.steps) await evaluate(model, run, objective, seed, m.step);
      });
    } catch (e) {
      // a run that diverges (e.g. a non-finite gradient) is a result too: it stops there and the others go on
      if (!(e instanceof M1Error)) throw e;
      diverged.push(`${run} stopped in step ${trainer.step + 1}: ${e.message}`);
      process.stderr.write(`${diverged.at(-1)}\n`);
    }
    steps.push(trainer.metrics);
    runs.push(run);
    writeResults();
  }
}
for (const d of diverged) console.log(`- ${d}`);
function writeResults(): void {
fs.mkdirSync(values.out!, { recursive: true });
fs.writeFileSync(path.join(values.out!, "compare-evals.arrow"), tableToIPC(tableFromArrays({
  run: evals.map((e) => e.run), objective: evals.map((e) => e.objective), seed: Int32Array.from(evals, (e) => e.seed),
  step: Int32Array.from(evals, (e) => e.step), digits: Int32Array.from(evals, (e) => e.digits), decoding: evals.map((e) => e.decoding),
  accuracy: Float64Array.from(evals, (e) => e.accuracy),
}), "file"));
for (const [i, run] of runs.entries()) fs.writeFileSync(path.join(values.out!, `compare-steps-${run}.arrow`), tableToIPC(metricsTable(steps[i], run), "file"));
}
console.log(`| run | step | ${evalDigits.map((d) => `${d}d greedy | ${d}d t=1`).join(" | ")} |`);
for (const run of runs) for (const step of [...new Set(evals.filter((e) => e.run === run).map((e) => e.step))]) {
  const cell = (d: number, dec: string) => evals.find((e) => e.run === run && e.step === step && e.digits === d && e.decoding === dec)!.accuracy.toFixed(2);
  console.log(`| ${run} | ${step} | ${evalDigits.map((d) => `${cell(d, "greedy")} | ${cell(d, "t1")}`).join(" | ")} |`);
}
