/** The training loop: token weights from the objective, determinism, resume after a kill, SFT learning. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { spawnSync } from "node:child_process";
import { Tokenizer } from "../engine/tokenizer.ts";
import { TrainingLoop, type TrainConfig, type StepMetrics, type Policy } from "../engine/rl/train.ts";
import { objective, groupAdvantages } from "../engine/rl/objectives.ts";
import { stepRng, RATIO_BINS } from "../engine/rl/train.ts";
import type { Rollout } from "../engine/rl/rollout.ts";
import type { TokenWeightsOf } from "../engine/train/loss.ts";
import { scratchpadCompletion, additionProblem } from "../engine/rl/tasks.ts";
import { BigramPolicy, rlConfig } from "./bigram-policy.ts";
import { parseStages, staged, DEFAULT_RL_STAGES } from "../engine/rl/recipes.ts";
import { ROOT, tempDir } from "./helpers.ts";

const tokenizer = (await Tokenizer.load(join(ROOT, "engine", "checkpoints", "mini-80k")))!;

const withoutTimes = (ms: StepMetrics[]) => ms.map(({ seconds: _, ...rest }) => rest);

test("the token weights are minus the objective's gradient on completion tokens, zero on the prompt", async () => {
  const policy = new BigramPolicy(tokenizer);
  let rollouts: Rollout[] = [];
  const calls: { sequences: number[][]; tokenWeights: Float32Array[]; logpNew: Float32Array[] }[] = [];
  const spy: Policy = Object.assign(Object.create(policy) as BigramPolicy, {
    rollout: async (prompts: string[], o: Parameters<Policy["rollout"]>[1]) => (rollouts = await policy.rollout(prompts, o)),
    step: (sequences: number[][], o: { tokenWeights: TokenWeightsOf }) => policy.step(sequences, {
      tokenWeights: (logpNew) => {
        const tokenWeights = o.tokenWeights(logpNew) as Float32Array[];
        calls.push({ sequences, tokenWeights, logpNew: [...logpNew] });
        return tokenWeights;
      },
    }),
  });
  const config = rlConfig({ steps: 1, rounds: 1, objective: "dapo", dynamicSampling: false });
  await new TrainingLoop(spy, config).run();
  assert.equal(calls.length, 1);
  const { sequences, tokenWeights, logpNew } = calls[0];
  assert.equal(sequences.length, config.batchSize * config.groupSize);
  const problems = config.problems(stepRng(config.seed, 0, 0), 0, config.batchSize);
  const rewards = rollouts.map((r) => config.reward!(problems[r.group], { text: r.text, tokens: r.completion.length, truncated: r.truncated }));
  const advantages = groupAdvantages(rewards, rollouts.map((r) => r.group));
  // each recorded sequence is one rollout (in the loop's shuffled order)
  const which = sequences.map((s) => rollouts.findIndex((r) => [...r.prompt, ...r.completion].join() === s.join()));
  const expected = objective("dapo", which.map((i, k) => ({
    group: rollouts[i].group, advantage: advantages[i], logpOld: rollouts[i].logprobs, logpNew: logpNew[k].subarray(rollouts[i].prompt.length - 1),
  })));
  which.forEach((i, k) => {
    const p = rollouts[i].prompt.length;
    assert.ok(tokenWeights[k].subarray(0, p - 1).every((x) => x === 0), "prompt tokens carry no weight");
    assert.deepEqual([...tokenWeights[k].subarray(p - 1)], [...Float32Array.from(expected.gradLogpNew[k], (g) => -g)]);
  });
  assert.ok(advantages.some((a) => a !== 0), "the test has something to check");
});

test("the same seed gives the same run; another seed another", async () => {
  const a = await new TrainingLoop(new BigramPolicy(tokenizer), rlConfig()).run();
  const b = await new TrainingLoop(new BigramPolicy(tokenizer), rlConfig()).run();
  const c = await new TrainingLoop(new BigramPolicy(tokenizer), rlConfig({ seed: 4 })).run();
  assert.deepEqual(withoutTimes(a), withoutTimes(b));
  assert.notDeepEqual(withoutTimes(a), withoutTimes(c));
  assert.ok(a.some((m) => m.keptGroups > 0 && m.gradNorm > 0), "some step trained");
});

test("resume after a kill: no step lost or repeated, the same weights and metrics as an uninterrupted run", async () => {
  const straightPolicy = new BigramPolicy(tokenizer);
  const straight = await new TrainingLoop(straightPolicy, rlConfig()).run();
  const { dir, cleanup } = tempDir();
  try {
    // a child process trains with checkpoints every 2 steps and is killed after step 3 (not checkpointed)
    const child = spawnSync(process.execPath, ["--import", "tsx", join(ROOT, "test", "rl-train-child.ts"), dir, "3"], { cwd: ROOT, encoding: "utf8", timeout: 120_000 });
    assert.equal(child.signal, "SIGKILL", child.stderr);
    const resumedPolicy = new BigramPolicy(tokenizer);
    const trainer = new TrainingLoop(resumedPolicy, rlConfig(), dir);
    assert.equal(trainer.resume(), true);
    assert.equal(trainer.step, 2);
    const all = await trainer.run();
    assert.deepEqual(all.map((m) => m.step), [1, 2, 3, 4, 5, 6]);
    assert.deepEqual(withoutTimes(all), withoutTimes(straight));
    assert.deepEqual([...resumedPolicy.W], [...straightPolicy.W]);
  } finally {
    cleanup();
  }
});

test("SFT through the same loop learns the scratchpad's statistics", async () => {
  const policy = new BigramPolicy(tokenizer, 2);
  const ms = await new TrainingLoop(policy, { ...rlConfig(), mode: "sft", steps: 15, batchSize: 8, reward: undefined, target: (p) => {
    const [a, b] = p.prompt.replace("<s>", "").replace("= <think>", "").split("+").map((s) => s.replace(/\s+/g, ""));
    return scratchpadCompletion(a, b);
  } }).run();
  assert.ok(ms[14].loss < 0.92 * ms[0].loss, `loss ${ms[0].loss} → ${ms[14].loss}`);
});

test("the scratchpad target is the demo format", () => {
  assert.equal(additionProblem("4821", "9375").prompt, "<s> 4 8 2 1 + 9 3 7 5 = <think>");
  assert.equal(scratchpadCompletion("4821", "9375"), " 1 5 0 6 0 , 2 7 0 9 0 , 8 3 0 1 1 , 4 9 1 4 1 , </think> 1 4 1 9 6 </s>");
});

test("bad configurations are named", () => {
  assert.throws(() => new TrainingLoop(new BigramPolicy(tokenizer), rlConfig({ rounds: 0 })), /rounds must be an integer >= 1, got 0/);
  assert.throws(() => new TrainingLoop(new BigramPolicy(tokenizer), rlConfig({ reward: undefined })), /a reward is needed/);
});

test("off-policy rounds move the ratios: clipped tokens and the tokens PPO-style clipping drops are counted", async () => {
  const [first] = await new TrainingLoop(new BigramPolicy(tokenizer, 40), rlConfig({ steps: 1, rounds: 4, groupSize: 8 })).run();
  const inRange = first.ratioHistogram.reduce((a, b) => a + b, 0);
  const beyond = first.ratioHistogram.slice(RATIO_BINS.findIndex((e) => e >= 1.28) + 1).reduce((a, b) => a + b, 0);
  assert.ok(beyond > 0, "some ratios left the range");
  // CISPO (no lower bound) clips exactly the ratios above 1 + 0.28
  assert.equal(first.clipFraction, beyond / inRange);
  const dropped = Object.values(first.ppoDropped).reduce((a, b) => a + b, 0);
  assert.ok(dropped > 0 && dropped <= inRange);
});

test("staged windows: budget and digit counts by step, parsed from the command line's form", () => {
  const stages = parseStages("48:6-7,56:8", 10);
  assert.deepEqual(stages, [{ fromStep: 0, budget: 48, digits: [6, 7] }, { fromStep: 10, budget: 56, digits: [8] }]);
  const { thinkingBudget, problems } = staged(stages);
  assert.deepEqual([0, 9, 10, 99].map(thinkingBudget), [48, 48, 56, 56]);
  assert.ok(problems(stepRng(0, 12, 0), 12, 5).every((p) => p.digits === 8));
  assert.throws(() => parseStages("48:7-6", 10), /stage 1 "48:7-6": digit counts must be >= 1 and increasing/);
  assert.throws(() => parseStages("48;6", 10), /expected BUDGET:DIGITS/);
  assert.equal(parseStages(DEFAULT_RL_STAGES, 1).at(-1)!.budget, 80);
});
