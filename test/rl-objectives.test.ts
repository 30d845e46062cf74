/** RL objectives against the PyTorch float64 reference (test/fixtures/rl/objectives.json), group advantages,
 *  dynamic sampling, rewards. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { objective, groupAdvantages, informativeGroups, DEFAULT_CLIP, type ObjectiveName } from "../engine/rl/objectives.ts";
import { exactAnswer, answerAfterThought, withLengthPenalty, answerDigitCredit } from "../engine/rl/rewards.ts";
import { FIXTURES } from "./helpers.ts";

interface GoldenCase {
  name: string;
  sequences: { group: number; adv: number; logp_old: number[]; logp_new: number[] }[];
  results: Record<string, { loss: number; grad_logp_new: number[][] }>;
}
const golden = JSON.parse(readFileSync(join(FIXTURES, "rl", "objectives.json"), "utf8")) as {
  settings: Record<string, { eps_low: number; eps_high: number }>;
  cases: GoldenCase[];
};

test("the default clip ranges are the reference's settings", () => {
  for (const [name, s] of Object.entries(golden.settings)) {
    assert.deepEqual(DEFAULT_CLIP[name as ObjectiveName], { epsLow: s.eps_low, epsHigh: s.eps_high }, name);
  }
});

for (const c of golden.cases) {
  test(`loss and d loss / d logp_new within 1e-9 of the reference: ${c.name}`, () => {
    const seqs = c.sequences.map((s) => ({ group: s.group, advantage: s.adv, logpOld: s.logp_old, logpNew: s.logp_new }));
    for (const [name, want] of Object.entries(c.results)) {
      const got = objective(name as ObjectiveName, seqs);
      assert.ok(Math.abs(got.loss - want.loss) <= 1e-9, `${name} loss ${got.loss} vs ${want.loss}`);
      want.grad_logp_new.forEach((row, i) => row.forEach((g, t) => {
        assert.ok(Math.abs(got.gradLogpNew[i][t] - g) <= 1e-9, `${name} seq ${i} token ${t}: ${got.gradLogpNew[i][t]} vs ${g}`);
      }));
    }
  });
}

test("group advantages reproduce the reference's advantages from rewards", () => {
  // case 0: group 0 rewards [1, 0, 0, 1], group 1 rewards [0, 0, 1, 0]
  const c = golden.cases[0];
  const adv = groupAdvantages([1, 0, 0, 1, 0, 0, 1, 0], c.sequences.map((s) => s.group));
  adv.forEach((a, i) => assert.ok(Math.abs(a - c.sequences[i].adv) <= 1e-12, `sequence ${i}: ${a} vs ${c.sequences[i].adv}`));
  assert.deepEqual(groupAdvantages([1, 1, 1], [0, 0, 0]), [0, 0, 0]);
  assert.deepEqual(groupAdvantages([1], [3]), [0]);
  assert.throws(() => groupAdvantages([1, 0], [0]), /2 rewards for 1 group indices/);
});

test("dynamic sampling keeps only groups with unequal rewards", () => {
  assert.deepEqual([...informativeGroups([1, 1, 0, 0, 1, 0, 0, 0], [0, 0, 1, 1, 2, 2, 3, 3])].sort(), [2]);
});

test("a masked token neither counts in the normaliser nor gets a gradient", () => {
  const base = { group: 0, advantage: 1, logpOld: [-1, -1, -1], logpNew: [-0.9, -1.1, -1] };
  const full = objective("cispo", [base]);
  const masked = objective("cispo", [{ ...base, mask: [1, 1, 0] }]);
  const two = objective("cispo", [{ ...base, logpOld: [-1, -1], logpNew: [-0.9, -1.1] }]);
  assert.equal(masked.gradLogpNew[0][2], 0);
  assert.ok(Math.abs(masked.loss - two.loss) < 1e-15);
  assert.notEqual(full.loss, masked.loss);
  assert.throws(() => objective("cispo", [{ ...base, mask: [1] }]), /mask has 1 entries for 3 tokens/);
  assert.throws(() => objective("ppo" as ObjectiveName, [base]), /unknown objective "ppo"/);
});

test("REINFORCE with the group baseline: gradient −A/Σ|o| on every token, nothing clipped", () => {
  const r = objective("reinforce", [
    { group: 0, advantage: 2, logpOld: [-1, -2], logpNew: [-5, 0] },
    { group: 0, advantage: -1, logpOld: [-1], logpNew: [-1] },
  ]);
  assert.deepEqual([...r.gradLogpNew[0]], [-2 / 3, -2 / 3]);
  assert.deepEqual([...r.gradLogpNew[1]], [1 / 3]);
  assert.ok(r.clipped.every((c) => c.every((x) => x === 0)));
});

test("the arithmetic verifier reads the digits after </think>; the length penalty falls linearly to −1", () => {
  const p = { prompt: "<s> 1 2 + 3 4 = <think>", answer: "46", digits: 2 };
  const c = (text: string, tokens = 10) => ({ text, tokens, truncated: false });
  assert.equal(exactAnswer(p, c(" 2 4 0 6 0 , 1 3 0 4 0 , </think> 4 6 </s>")), 1);
  assert.equal(exactAnswer(p, c(" 2 4 0 6 0 , </think> 4 7 </s>")), 0);
  assert.equal(exactAnswer(p, c(" 2 4 0 6 0 , 4 6")), 0); // no </think>: no answer
  assert.equal(answerAfterThought("x </think> 1 2"), "12");
  const penalised = withLengthPenalty(exactAnswer, 50, 10);
  assert.equal(penalised(p, c("</think> 4 6", 40)), 1);
  assert.equal(penalised(p, c("</think> 4 6", 45)), 0.5);
  assert.equal(penalised(p, c("</think> 4 6", 70)), 0);
});

test("partial credit: the share of the sum's digits right, aligned at the least significant digit", () => {
  const p = { prompt: "", answer: "16669038", digits: 7 };
  const c = (text: string) => ({ text, tokens: 10, truncated: false });
  assert.equal(answerDigitCredit(p, c("</think> 1 6 6 6 9 0 3 8 </s>")), 1);
  assert.equal(answerDigitCredit(p, c("</think> 6 6 9 0 3 8 </s>")), 6 / 8);
  assert.equal(answerDigitCredit(p, c("</think> 4 0 4 6 9 3 </s>")), 0);
  assert.equal(answerDigitCredit(p, c("</think> 9 1 6 6 6 9 0 3 8 </s>")), 8 / 9);
  assert.equal(answerDigitCredit(p, c("1 6 6 6 9 0 3 8")), 0);
});
