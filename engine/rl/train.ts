/**
 * The training loop, RL and SFT alike: a batch of problems → (RL) G rollouts each, rewards, group advantages,
 * dynamic sampling, then `rounds` off-policy update rounds (one minibatch each: the current log-probabilities, the
 * objective's per-token gradient as token weights, the model's weighted backward pass, an optimiser step);
 * (SFT) the reference completion of each problem with token weights 1/Σ|o|. Metrics per step; a checkpoint every
 * `checkpointEvery` steps from which `resume` continues with no step lost or repeated. Every random choice is a
 * function of (seed, step), so the same seed gives the same run, resumed or not.
 */
import fs from "node:fs";
import path from "node:path";
import { Rng } from "../sampling.ts";
import { InputError } from "../errors.ts";
import { objective, groupAdvantages, informativeGroups, DEFAULT_CLIP, type ObjectiveName, type ClipRange, type ObjectiveResult,
  type ScoredSequence } from "./objectives.ts";
import type { Problem } from "./tasks.ts";
import type { Reward } from "./rewards.ts";
import type { Rollout, RepetitionRule } from "./rollout.ts";
import type { TokenWeightsOf } from "../train/loss.ts";

/** What the loop needs of a model: rollouts, a weighted optimiser step, saving and loading. */
export interface Policy {
  rollout(prompts: readonly string[], options: { groupSize: number; seed: number; temperature: number; maxNewTokens: number; thinkingBudget: number; repetition?: RepetitionRule }): Promise<Rollout[]>;
  /** one optimiser step on loss = Σ_t w_t · −log p(ids[t+1] | ids[..t]): a forward pass gives log p of every token
   *  after the first of each sequence (n_i − 1 per sequence) under the weights being trained, `tokenWeights` turns
   *  them into the w_t, then the weighted backward pass and the optimiser; later rollouts use the new weights */
  step(sequences: number[][], options: { tokenWeights: TokenWeightsOf }): Promise<PolicyStep>;
  /** tokens of a text (for SFT targets) */
  encode(text: string): number[];
  save(dir: string): void;
  load(dir: string): void;
}

export interface PolicyStep {
  loss: number;
  /** the log-probabilities the weights were computed from */
  tokenLogprobs: Float32Array[];
  gradNorm: number;
  lr: number;
  /** wall time of the forward pass to the log-probabilities, of the weights and the backward pass, of the optimiser */
  seconds: { forward: number; backward: number; optimiser: number };
}

export interface TrainConfig {
  mode: "rl" | "sft";
  objective: ObjectiveName;
  clip?: ClipRange;
  seed: number;
  steps: number;
  /** problems per step */
  batchSize: number;
  /** completions per problem (RL) */
  groupSize: number;
  /** off-policy update rounds (minibatches) per rollout batch (the paper: 16) */
  rounds: number;
  temperature: number;
  maxNewTokens: number;
  /** thinking budget of the step, e.g. a staged window (40 → 48 → … → 80) */
  thinkingBudget: (step: number) => number;
  /** the step's problems, drawn from its own random stream */
  problems: (rng: Rng, step: number, count: number) => Problem[];
  /** RL: the reward of a completion; SFT: the reference completion of a problem */
  reward?: Reward;
  /** RL: what `accuracy` counts, the completions it scores above 0 (default: the reward itself), e.g. the exact
   *  verifier beside a partial-credit reward */
  verifier?: Reward;
  target?: (problem: Problem) => string;
  /** drop groups whose rewards are all equal (DAPO's dynamic sampling) */
  dynamicSampling: boolean;
  repetition?: RepetitionRule;
  checkpointEvery: number;
}

/** One row per step. */
export interface StepMetrics {
  step: number;
  budget: number;
  loss: number;
  reward: number;
  /** share of completions the verifier accepts */
  accuracy: number;
  responseLength: number;
  /** tokens whose clip range bound, over all tokens of the update rounds */
  clipFraction: number;
  /** groups kept by dynamic sampling, of all groups */
  keptGroups: number;
  truncated: number;
  /** entropy estimate: mean −log p of the sampled tokens under the rollout policy */
  entropy: number;
  gradNorm: number;
  lr: number;
  /** counts of IS ratios in the bins of RATIO_BINS */
  ratioHistogram: number[];
  /** by token id: tokens whose update PPO-style clipping (DAPO's range 0.8/1.28) drops — the ratio beyond the range in
   *  the direction of the advantage. A DAPO/GRPO run lost their gradient; a CISPO run kept it. */
  ppoDropped: Record<number, number>;
  /** wall time of the step's parts: the rollouts; the log-probabilities under the weights being trained (the forward
   *  pass of each update round, which its backward pass reuses); the objective's token weights and the backward
   *  passes; the optimiser steps */
  seconds: { rollout: number; logprobs: number; backward: number; optimiser: number };
}

/** The PPO-style clip range against which every run counts the tokens such clipping drops (DAPO's). */
const PPO_CLIP = DEFAULT_CLIP.dapo;

/** Upper edges of the IS-ratio histogram bins (the last bin takes the rest). */
export const RATIO_BINS = [0.5, 0.8, 0.9, 0.95, 1.0, 1.05, 1.1, 1.2, 1.28, 1.5, 2, Infinity];

/** The random stream of one step of one run. */
export function stepRng(seed: number, step: number, stream: number): Rng {
  return new Rng(((seed >>> 0) * 1000003 + step * 7919 + stream) >>> 0);
}

export class TrainingLoop {
  /** steps done */
  step = 0;
  readonly metrics: StepMetrics[] = [];

  constructor(readonly policy: Policy, readonly config: TrainConfig, readonly dir: string | null = null) {
    if (config.mode === "rl" && !config.reward) throw new InputError("train rl: a reward is needed");
    if (config.mode === "sft" && !config.target) throw new InputError("train sft: a target completion is needed");
    for (const k of ["steps", "batchSize", "groupSize", "rounds", "maxNewTokens", "checkpointEvery"] as const) {
      if (!(Number.isInteger(config[k]) && config[k] >= 1)) throw new InputError(`train: ${k} must be an integer >= 1, got ${config[k]}`);
    }
  }

  /** Continues from the newest checkpoint in `dir` (if any): its weights, optimiser state, step and metrics. */
  resume(): boolean {
    if (!this.dir) throw new InputError("resume: the trainer has no checkpoint directory");
    const latest = path.join(this.dir, "latest.json");
    if (!fs.existsSync(latest)) return false;
    const { step } = JSON.parse(fs.readFileSync(latest, "utf8")) as { step: number };
    const at = stepDir(this.dir, step);
    this.policy.load(at);
    this.step = step;
    this.metrics.splice(0, this.metrics.length, ...(JSON.parse(fs.readFileSync(path.join(at, "metrics.json"), "utf8")) as StepMetrics[]));
    return true;
  }

  /** Runs until `config.steps` (or `until`), calling (and awaiting) `onStep` after each step. */
  async run(onStep?: (m: StepMetrics) => void | Promise<void>, until = this.config.steps): Promise<StepMetrics[]> {
    while (this.step < Math.min(until, this.config.steps)) {
      const m = this.config.mode === "rl" ? await this.rlStep() : await this.sftStep();
      this.step++;
      this.metrics.push(m);
      if (this.dir && (this.step % this.config.checkpointEvery === 0 || this.step === this.config.steps)) this.checkpoint();
      await onStep?.(m);
    }
    return this.metrics;
  }

  /** Writes the step's checkpoint, then points latest.json at it (a kill in between leaves the previous one). */
  private checkpoint(): void {
    const at = stepDir(this.dir!, this.step);
    fs.rmSync(at, { recursive: true, force: true });
    fs.mkdirSync(at, { recursive: true });
    this.policy.save(at);
    fs.writeFileSync(path.join(at, "metrics.json"), JSON.stringify(this.metrics));
    const tmp = path.join(this.dir!, "latest.json.tmp");
    fs.writeFileSync(tmp, JSON.stringify({ step: this.step }));
    fs.renameSync(tmp, path.join(this.dir!, "latest.json"));
  }

  private async rlStep(): Promise<StepMetrics> {
    const { config, policy } = this;
    const step = this.step;
    const budget = config.thinkingBudget(step);
    const problems = config.problems(stepRng(config.seed, step, 0), step, config.batchSize);
    let t0 = performance.now();
    const rollouts = await policy.rollout(problems.map((p) => p.prompt), {
      groupSize: config.groupSize, seed: stepRng(config.seed, step, 1).next() * 2 ** 31 >>> 0, temperature: config.temperature,
      maxNewTokens: config.maxNewTokens, thinkingBudget: budget, repetition: config.repetition,
    });
    const seconds = { rollout: (performance.now() - t0) / 1000, logprobs: 0, backward: 0, optimiser: 0 };
    const completions = rollouts.map((r) => ({ text: r.text, tokens: r.completion.length, truncated: r.truncated }));
    const rewards = rollouts.map((r, i) => config.reward!(problems[r.group], completions[i]));
    const verifier = config.verifier ?? config.reward!;
    const correct = rollouts.map((r, i) => (verifier(problems[r.group], completions[i]) > 0 ? 1 : 0));
    const groups = rollouts.map((r) => r.group);
    const advantages = groupAdvantages(rewards, groups);
    const kept = config.dynamicSampling ? informativeGroups(rewards, groups) : new Set(groups);
    const train = rollouts.map((r, i) => ({ r, advantage: advantages[i] })).filter((x) => kept.has(x.r.group));
    // minibatches: the kept sequences in a seeded order, dealt into `rounds` slices
    const order = shuffle(train.map((_, i) => i), stepRng(config.seed, step, 2));
    const slices = Array.from({ length: config.rounds }, (_, k) => order.filter((_, i) => i % config.rounds === k)).filter((s) => s.length > 0);
    let loss = 0, clippedTokens = 0, tokens = 0, gradNorm = 0, lr = 0;
    const histogram = new Array<number>(RATIO_BINS.length).fill(0);
    const ppoDropped: Record<number, number> = {};
    for (const slice of slices) {
      const mb = slice.map((i) => train[i]);
      const sequences = mb.map((x) => [...x.r.prompt, ...x.r.completion]);
      const masks = mb.map((x) => x.r.forced.map((f) => (f ? 0 : 1)));
      const scored: ScoredSequence[] = mb.map((x, k) => ({ group: x.r.group, advantage: x.advantage, logpOld: x.r.logprobs, logpNew: [], mask: masks[k] }));
      const results: ObjectiveResult[] = [];
      // the objective from the round's own forward pass (which its backward pass reuses): loss = Σ w · (−log p) has
      // d/d log p = −w, so the weights are minus the objective's gradient
      const report = await policy.step(sequences, {
        tokenWeights: (current) => {
          scored.forEach((x, k) => (x.logpNew = current[k].subarray(mb[k].r.prompt.length - 1)));
          const result = objective(config.objective, scored, config.clip ?? DEFAULT_CLIP[config.objective]);
          results.push(result);
          return mb.map((x, k) => {
            const w = new Float32Array(sequences[k].length - 1);
            result.gradLogpNew[k].forEach((g, t) => (w[x.r.prompt.length - 1 + t] = -g));
            return w;
          });
        },
      });
      const obj = results[0];
      if (results.length !== 1) throw new Error(`train: the policy's step asked for the token weights ${results.length} times, not once`);
      seconds.logprobs += report.seconds.forward;
      seconds.backward += report.seconds.backward;
      seconds.optimiser += report.seconds.optimiser;
      loss += obj.loss / slices.length;
      gradNorm = Math.max(gradNorm, report.gradNorm);
      lr = report.lr;
      obj.clipped.forEach((c, k) => c.forEach((x, t) => {
        if (!masks[k][t]) return;
        tokens++;
        clippedTokens += x;
        const r = obj.ratios[k][t];
        histogram[RATIO_BINS.findIndex((edge) => r <= edge)]++;
        const A = scored[k].advantage;
        if ((A > 0 && r > 1 + PPO_CLIP.epsHigh) || (A < 0 && r < 1 - PPO_CLIP.epsLow)) {
          const id = mb[k].r.completion[t];
          ppoDropped[id] = (ppoDropped[id] ?? 0) + 1;
        }
      }));
    }
    const sampled = rollouts.flatMap((r) => r.logprobs.filter((_, t) => !r.forced[t]));
    return {
      step: step + 1, budget, loss,
      reward: mean(rewards), accuracy: mean(correct), responseLength: mean(rollouts.map((r) => r.completion.length)),
      clipFraction: tokens ? clippedTokens / tokens : 0,
      keptGroups: kept.size / problems.length,
      truncated: mean(rollouts.map((r) => (r.truncated ? 1 : 0))),
      entropy: sampled.length ? -mean(sampled) : 0,
      gradNorm, lr, ratioHistogram: histogram, ppoDropped, seconds,
    };
  }

  private async sftStep(): Promise<StepMetrics> {
    const { config, policy } = this;
    const step = this.step;
    const problems = config.problems(stepRng(config.seed, step, 0), step, config.batchSize);
    const pairs = problems.map((p) => ({ prompt: policy.encode(p.prompt), completion: policy.encode(config.target!(p)) }));
    const total = pairs.reduce((s, p) => s + p.completion.length, 0);
    const sequences = pairs.map((p) => [...p.prompt, ...p.completion]);
    const tokenWeights = pairs.map((p, k) => {
      const w = new Float32Array(sequences[k].length - 1);
      w.fill(1 / total, p.prompt.length - 1);
      return w;
    });
    const report = await policy.step(sequences, { tokenWeights: () => tokenWeights });
    const logps = report.tokenLogprobs.flatMap((lp, k) => [...lp.subarray(pairs[k].prompt.length - 1)]);
    return {
      step: step + 1, budget: config.thinkingBudget(step), loss: report.loss, reward: 0, accuracy: 0,
      responseLength: total / pairs.length, clipFraction: 0, keptGroups: 1, truncated: 0, entropy: -mean(logps),
      gradNorm: report.gradNorm, lr: report.lr, ratioHistogram: new Array<number>(RATIO_BINS.length).fill(0), ppoDropped: {},
      seconds: { rollout: 0, logprobs: report.seconds.forward, backward: report.seconds.backward, optimiser: report.seconds.optimiser },
    };
  }
}

function stepDir(dir: string, step: number): string {
  return path.join(dir, `step-${String(step).padStart(6, "0")}`);
}

function mean(xs: readonly number[]): number {
  return xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : 0;
}

/** Fisher-Yates with the given stream. */
function shuffle<T>(xs: T[], rng: Rng): T[] {
  for (let i = xs.length - 1; i > 0; i--) {
    const j = Math.floor(rng.next() * (i + 1));
    [xs[i], xs[j]] = [xs[j], xs[i]];
  }
  return xs;
}
