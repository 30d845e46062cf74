/** Engine rollouts for RL: groups, the rollout policy's log-probabilities, the repetition rule. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { Model } from "../engine/index.ts";
import { rollout, repetitive } from "../engine/rl/rollout.ts";
import { additionProblem } from "../engine/rl/tasks.ts";
import { exactAnswer } from "../engine/rl/rewards.ts";
import { ROOT } from "./helpers.ts";

const mini = await Model.load(join(ROOT, "engine", "checkpoints", "mini-40k"));
const problems = [additionProblem("123", "456"), additionProblem("98765", "43210")];

test("G completions per prompt, in prompt-major order, each with its log-probabilities; greedy ones are right", async () => {
  const outs = await rollout(mini, problems.map((p) => p.prompt), { groupSize: 3, seed: 0, greedy: true, thinkingBudget: 40, maxNewTokens: 48 });
  assert.deepEqual(outs.map((o) => o.group), [0, 0, 0, 1, 1, 1]);
  for (const o of outs) {
    assert.equal(o.logprobs.length, o.completion.length);
    assert.ok(o.logprobs.every((lp) => lp <= 0));
    assert.equal(exactAnswer(problems[o.group], { text: o.text, tokens: o.completion.length, truncated: o.truncated }), 1, o.text);
    assert.equal(o.truncated, false);
  }
});

test("the repetition rule cuts a sequence once `run` tokens in a row were each more likely than the threshold", async () => {
  assert.equal(repetitive([-0.001, -0.001, -0.001], { run: 3, probability: 0.99 }), true);
  assert.equal(repetitive([-0.001, -0.5, -0.001], { run: 3, probability: 0.99 }), false);
  assert.equal(repetitive([-0.001], { run: 3, probability: 0.99 }), false);
  const outs = await rollout(mini, [problems[0].prompt], { groupSize: 1, seed: 0, greedy: true, thinkingBudget: 40, maxNewTokens: 48, repetition: { run: 4, probability: 0.5 } });
  assert.equal(outs[0].repetitionStop, true);
  assert.equal(outs[0].truncated, true);
  assert.ok(repetitive(outs[0].logprobs, { run: 4, probability: 0.5 }));
  assert.ok(!repetitive(outs[0].logprobs.slice(0, -1), { run: 4, probability: 0.5 }), "cut at the first such run");
});
