/**
 * Training recipes as data: the staged thinking window of the RL experiment (MiniMax-M1 widened its window
 * 40K → 48K → … → 80K; here 40 → 48 → … → 80 thought tokens, with operands growing with the window), and the demo
 * pair's supervised recipe (engine/checkpoints/README.md).
 */
import { InputError } from "../errors.ts";
import type { Rng } from "../sampling.ts";
import { additionProblems, type Problem } from "./tasks.ts";

/** From `fromStep` on (until the next stage): this thinking budget, operands of these digit counts. */
export interface Stage {
  fromStep: number;
  budget: number;
  digits: number[];
}

/**
 * Stages written as "BUDGET:DIGITS,..." with DIGITS a count or a range ("48:6-7,56:7-8"), each lasting `stepsEach`
 * steps, in order.
 */
export function parseStages(text: string, stepsEach: number): Stage[] {
  if (!(Number.isInteger(stepsEach) && stepsEach >= 1)) throw new InputError(`steps per stage must be an integer >= 1, got ${stepsEach}`);
  const stages = text.split(",").map((part, i) => {
    const m = /^\s*(\d+):(\d+)(?:-(\d+))?\s*$/.exec(part);
    if (!m) throw new InputError(`stage ${i + 1} "${part}": expected BUDGET:DIGITS or BUDGET:LOW-HIGH (e.g. 48:6-7)`);
    const [lo, hi] = [Number(m[2]), Number(m[3] ?? m[2])];
    if (lo < 1 || hi < lo) throw new InputError(`stage ${i + 1} "${part}": digit counts must be >= 1 and increasing`);
    return { fromStep: i * stepsEach, budget: Number(m[1]), digits: Array.from({ length: hi - lo + 1 }, (_, k) => lo + k) };
  });
  if (stages.length === 0) throw new InputError("no stages given");
  return stages;
}

export function stageAt(stages: readonly Stage[], step: number): Stage {
  let at = stages[0];
  for (const s of stages) if (s.fromStep <= step) at = s;
  return at;
}

/** The loop's `thinkingBudget` and `problems` for a list of stages. */
export function staged(stages: readonly Stage[]): { thinkingBudget: (step: number) => number; problems: (rng: Rng, step: number, count: number) => Problem[] } {
  return {
    thinkingBudget: (step) => stageAt(stages, step).budget,
    problems: (rng, step, count) => additionProblems(rng, stageAt(stages, step).digits, count),
  };
}

/** The experiment's default window schedule from mini-40k: each stage one budget step wider, at the frontier. */
export const DEFAULT_RL_STAGES = "48:6-7,56:7-8,64:8-9,72:9-10,80:10-12";

/**
 * How the demo pair was made (engine/checkpoints/README.md), as supervised runs of the loop; and the RL experiment's
 * bridge (docs/rl.md): mini-40k never writes an answer longer than six digits plus a carry, so the exact verifier gives
 * group-relative RL no signal beyond 6 digits; a few supervised steps on 5-8 digit additions put its 7-digit success
 * at temperature 1 between 5% and 95% for the RL stages to start from.
 */
export const SFT_RECIPES = {
  "mini-40k": { from: "random init", steps: 2150, lr: 2e-3, digits: [1, 6], budget: 40, batchSize: 256, warmupSteps: 200 },
  "mini-80k": { from: "mini-40k", steps: 1887, lr: 1e-3, digits: [1, 12], budget: 80, batchSize: 256, warmupSteps: 200 },
  "rl-bridge": { from: "mini-40k", steps: 24, lr: 8e-4, digits: [5, 8], budget: 56, batchSize: 16, warmupSteps: 1 },
} as const;
/** Shared by all: AdamW (0.9, 0.95), weight decay 0.01, gradient clip 1.0, the recipe's warm-up steps then cosine. */
export const SFT_OPTIMIZER = { betas: [0.9, 0.95] as [number, number], weightDecay: 0.01, maxGradNorm: 1.0 };
