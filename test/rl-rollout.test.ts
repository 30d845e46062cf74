/** Engine rollouts for RL: groups, the rollout policy's log-probabilities, the repetition rule. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { Model } from "../engine/index.ts";
import { rollout, repetitive, completionProbability } from "../engine/rl/rollout.ts";
import { additionProblem, additionPrompt, scratchpadCompletion } from "../engine/rl/tasks.ts";
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

test("the exact-path probability: the right scratchpad is near-certain at 4 digits, a wrong one near-impossible; the 7th answer digit never comes", async () => {
  const right = await completionProbability(mini, additionPrompt("4821", "9375"), scratchpadCompletion("4821", "9375"));
  assert.ok(right > 0.9 && right <= 1, String(right));
  const wrong = await completionProbability(mini, additionPrompt("4821", "9375"), scratchpadCompletion("4821", "9376"));
  assert.ok(wrong < 1e-3, String(wrong));
  // mini-40k's frontier (docs/rl.md): a 7-digit sum without a carry out is never written out in full
  assert.ok((await completionProbability(mini, additionPrompt("4821937", "51"), scratchpadCompletion("4821937", "51"))) < 1e-4);
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

test("a sampled <pad> ends its rollout, so its zero embedding row is never an input and the gradients stay finite", async () => {
  const pad = mini.tokenizer!.padTokenId!;
  assert.equal(mini.tokenizer!.tokenId("<pad>"), pad);
  // at temperature 8 the 32-row head is near uniform: <pad> comes up in most completions
  const outs = await rollout(mini, problems.map((p) => p.prompt), { groupSize: 8, seed: 3, temperature: 8, thinkingBudget: 40, maxNewTokens: 48 });
  const padded = outs.filter((o) => o.completion.includes(pad));
  assert.ok(padded.length >= 4, `<pad> was sampled in ${padded.length} of ${outs.length} completions`);
  for (const o of padded) {
    assert.equal(o.completion.indexOf(pad), o.completion.length - 1, "<pad> is the last token");
    assert.equal(o.truncated, false);
  }
  const sequences = padded.map((o) => [...o.prompt, ...o.completion]);
  const tokenWeights = padded.map((o) => [...o.prompt.map(() => 0), ...o.completion.map(() => 1)].slice(1));
  const { loss, weights } = await mini.lossAndGradients(sequences, { tokenWeights });
  assert.ok(Number.isFinite(loss));
  for (const [name, g] of weights) assert.ok(g.f32.every(Number.isFinite), `${name}: non-finite gradient`);
});
