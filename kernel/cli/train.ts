// `m1 train rl|sft <checkpoint> --out DIR [...]`: the training loop of engine/rl on a checkpoint, with a progress line
// per step, the metrics as Arrow files (metrics.arrow, ratios.arrow, rewritten after every step), a checkpoint every
// N steps under DIR, and --resume to continue a killed run exactly. docs/rl.md explains every option.
import fs from "node:fs";
import path from "node:path";
import { tableToIPC } from "apache-arrow";
import { InputError } from "../../engine/errors.ts";
import { parseFlags } from "./args.ts";
import { loadLocalModel } from "../../benchmarks/registry.ts";
import { OBJECTIVES, type ObjectiveName } from "../../engine/rl/objectives.ts";
import { exactAnswer, answerDigitCredit } from "../../engine/rl/rewards.ts";
import { scratchpadCompletion, problemOperands } from "../../engine/rl/tasks.ts";
import { TrainingLoop, type TrainConfig, type StepMetrics } from "../../engine/rl/train.ts";
import { parseStages, staged, DEFAULT_RL_STAGES, SFT_RECIPES, SFT_OPTIMIZER } from "../../engine/rl/recipes.ts";
import { metricsTable, ratioTable } from "../../engine/rl/metrics.ts";
import { EnginePolicy } from "../../engine/rl/engine-policy.ts";
import { warmupCosine } from "../../engine/train/schedule.ts";

export const TRAIN_USAGE = `m1 train rl <checkpoint> --out DIR [--objective ${OBJECTIVES.join("|")}] [--steps N] [--stages ${DEFAULT_RL_STAGES}]
              [--stage-steps N] [--batch P] [--group G] [--rounds R] [--lr LR] [--temperature T] [--reward exact|digits]
              [--no-dynamic-sampling] [--checkpoint-every N] [--seed S] [--resume]
  m1 train sft <checkpoint> --out DIR --recipe ${Object.keys(SFT_RECIPES).join("|")} [--steps N] [--batch N] [--lr LR] [--checkpoint-every N] [--seed S] [--resume]`;

const REWARDS = { exact: exactAnswer, digits: answerDigitCredit };

export async function train(args: string[]): Promise<number> {
  const [mode, ...rest] = args;
  if (mode !== "rl" && mode !== "sft") throw new InputError(`expected rl or sft, got ${mode ?? "nothing"}\nusage: ${TRAIN_USAGE}`);
  const { values, positionals } = parseFlags(rest, {
    out: { type: "string" }, objective: { type: "string" }, steps: { type: "uint", min: 1 }, stages: { type: "string" },
    "stage-steps": { type: "uint", min: 1 }, batch: { type: "uint", min: 1 }, group: { type: "uint", min: 1 }, rounds: { type: "uint", min: 1 },
    lr: { type: "number" }, temperature: { type: "number" }, reward: { type: "string" }, "no-dynamic-sampling": { type: "boolean" },
    "checkpoint-every": { type: "uint", min: 1 }, seed: { type: "uint" }, resume: { type: "boolean" }, recipe: { type: "string" },
  });
  if (positionals.length !== 1) throw new InputError(`expected one checkpoint, got ${positionals.length ? positionals.join(" ") : "none"}\nusage: ${TRAIN_USAGE}`);
  if (!values.out) throw new InputError(`--out DIR is required (checkpoints and metrics go there)\nusage: ${TRAIN_USAGE}`);
  const positive = (name: string, x: number) => {
    if (!(x > 0)) throw new InputError(`--${name}: ${x} is not a number > 0`);
    return x;
  };
  const seed = values.seed ?? 0;
  const objective = values.objective ?? "cispo";
  const checkpointEvery = values["checkpoint-every"] ?? 10;
  const { model } = await loadLocalModel(positionals[0]);
  let config: TrainConfig;
  let policy: EnginePolicy;
  if (mode === "rl") {
    if (!OBJECTIVES.includes(objective as ObjectiveName)) throw new InputError(`--objective must be one of ${OBJECTIVES.join(", ")}, got ${objective}`);
    const reward = REWARDS[(values.reward ?? "digits") as keyof typeof REWARDS];
    if (!reward) throw new InputError(`--reward must be exact or digits, got ${values.reward}`);
    const stages = parseStages(values.stages ?? DEFAULT_RL_STAGES, values["stage-steps"] ?? 20);
    const maxBudget = Math.max(...stages.map((s) => s.budget));
    const maxDigits = Math.max(...stages.flatMap((s) => s.digits));
    config = {
      mode, objective: objective as ObjectiveName, seed, steps: values.steps ?? 100, batchSize: values.batch ?? 8,
      groupSize: values.group ?? 8, rounds: values.rounds ?? 4, temperature: positive("temperature", values.temperature ?? 1),
      maxNewTokens: maxBudget + maxDigits + 4, ...staged(stages), reward, verifier: exactAnswer, dynamicSampling: !values["no-dynamic-sampling"],
      repetition: { run: maxBudget + maxDigits + 3, probability: 0.99 }, checkpointEvery,
    };
    // the paper's RL optimiser: AdamW β = (0.9, 0.95), ε = 1e-15
    policy = new EnginePolicy(model, { lr: positive("lr", values.lr ?? 5e-5), betas: [0.9, 0.95], eps: 1e-15 });
  } else {
    const recipe = SFT_RECIPES[values.recipe as keyof typeof SFT_RECIPES];
    if (!recipe) throw new InputError(`--recipe must be one of ${Object.keys(SFT_RECIPES).join(", ")}, got ${values.recipe ?? "nothing"}`);
    const steps = values.steps ?? recipe.steps;
    const [lo, hi] = recipe.digits;
    const stages = [{ fromStep: 0, budget: recipe.budget, digits: Array.from({ length: hi - lo + 1 }, (_, k) => lo + k) }];
    config = {
      mode, objective: "reinforce", seed, steps, batchSize: values.batch ?? recipe.batchSize, groupSize: 1, rounds: 1,
      temperature: 1, maxNewTokens: 1, ...staged(stages), dynamicSampling: false, checkpointEvery,
      target: (p) => scratchpadCompletion(...problemOperands(p.prompt)),
    };
    const lr = positive("lr", values.lr ?? recipe.lr);
    policy = new EnginePolicy(model, {
      lr: warmupCosine({ peak: lr, warmupSteps: Math.min(recipe.warmupSteps, steps - 1), totalSteps: steps }), betas: SFT_OPTIMIZER.betas,
      weightDecay: SFT_OPTIMIZER.weightDecay, maxGradNorm: SFT_OPTIMIZER.maxGradNorm,
    });
  }
  const out = path.resolve(values.out);
  fs.mkdirSync(out, { recursive: true });
  const trainer = new TrainingLoop(policy, config, out);
  if (values.resume && trainer.resume()) process.stderr.write(`m1 train: resumed ${out} at step ${trainer.step}\n`);
  else if (fs.existsSync(path.join(out, "latest.json"))) throw new InputError(`${out} holds a run already: add --resume to continue it, or choose another --out`);
  const started = performance.now();
  const controller = new AbortController();
  process.once("SIGINT", () => controller.abort());
  await trainer.run((m) => {
    writeMetrics(out, trainer.metrics);
    process.stderr.write(progressLine(m, config.steps, (performance.now() - started) / 1000) + "\n");
  });
  const final = path.join(out, "final");
  fs.rmSync(final, { recursive: true, force: true });
  fs.mkdirSync(final);
  policy.save(final);
  process.stderr.write(`m1 train: ${config.steps} steps done; the model is ${path.join(out, "final", "model")}\n`);
  return 0;
}

function writeMetrics(dir: string, metrics: readonly StepMetrics[]): void {
  for (const [name, table] of [["metrics.arrow", metricsTable(metrics)], ["ratios.arrow", ratioTable(metrics)]] as const) {
    const tmp = path.join(dir, `${name}.tmp`);
    fs.writeFileSync(tmp, tableToIPC(table, "file"));
    fs.renameSync(tmp, path.join(dir, name));
  }
}

function progressLine(m: StepMetrics, steps: number, seconds: number): string {
  const width = 20;
  const done = Math.round((m.step / steps) * width);
  return `[${"█".repeat(done)}${"░".repeat(width - done)}] step ${m.step}/${steps} budget ${m.budget} loss ${m.loss.toFixed(4)} ` +
    `reward ${m.reward.toFixed(3)} acc ${m.accuracy.toFixed(3)} len ${m.responseLength.toFixed(1)} clip ${m.clipFraction.toFixed(3)} ` +
    `grad ${m.gradNorm.toExponential(2)} ${seconds.toFixed(0)} s`;
}
