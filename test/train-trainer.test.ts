// The fine-tuning API: model.trainer(...).step(batch) = lossAndGradients + AdamW on f32 masters, written back into
// the model (BF16 weights re-rounded), the loss going down, save → load giving the trained logits, and bad input
// refused with the model unchanged.
import { test } from "node:test";
import assert from "node:assert/strict";
import path from "node:path";
import { Model } from "../engine/model.ts";
import { bf16ToF32 } from "../engine/tensor.ts";
import { InputError } from "../engine/errors.ts";
import { ROOT, TINY, tempDir } from "./helpers.ts";

const MINI_40K = path.join(ROOT, "engine", "checkpoints", "mini-40k");
const BATCH = [[1, 5, 9, 3, 7, 2, 11, 4, 6], [3, 8, 2, 2, 10, 1]]; // two sequences of different lengths

function snapshot(model: Model): Map<string, Float32Array> {
  return new Map(model.checkpoint.names().map((n) => [n, model.checkpoint.get(n).toFloat32().slice()]));
}

test("the first step moves every weight by lr · g/(|g| + ε) after decoupled decay, from the engine's own gradients", async () => {
  const reference = await Model.load(TINY);
  const tokenWeights = BATCH.map((s) => Array.from({ length: s.length - 1 }, (_, t) => (t % 3 === 0 ? -0.5 : 1)));
  const r = await reference.lossAndGradients(BATCH, { tokenWeights });
  const before = snapshot(reference);

  const model = await Model.load(TINY);
  const lr = 1e-3, wd = 0.1, eps = 1e-8;
  const trainer = model.trainer({ lr, weightDecay: wd, eps });
  const step = await trainer.step(BATCH, { tokenWeights });
  assert.equal(step.loss, r.loss);
  assert.deepEqual(step.tokenLogprobs, r.tokenLogprobs);
  // Adam's first step: m̂ = g, v̂ = g², so θ₁ = θ₀(1 − lr·λ) − lr · g / (|g| + ε) (no decay on 1-D norm gains)
  let worst = 0;
  for (const [name, w0] of before) {
    const g = r.weights.get(name)!.f32;
    const w1 = model.checkpoint.get(name).f32;
    const decay = model.checkpoint.info(name).shape.length >= 2 ? 1 - lr * wd : 1;
    for (let i = 0; i < w0.length; i++) worst = Math.max(worst, Math.abs(w1[i] - (w0[i] * decay - (lr * g[i]) / (Math.abs(g[i]) + eps))));
  }
  assert.ok(worst < 1e-6, `worst deviation ${worst}`);
  const mem = trainer.memory;
  assert.equal(mem.masterBytes, 0, "f32 weights are their own masters");
  assert.equal(mem.optimizerBytes, 2 * mem.weightBytes);
});

test("ten steps lower the loss; the trained model saves and loads with its logits", async (t) => {
  const model = await Model.load(TINY);
  const trainer = model.trainer({ lr: 3e-3, maxGradNorm: 1 });
  const losses: number[] = [];
  for (let i = 0; i < 10; i++) losses.push((await trainer.step(BATCH)).loss);
  assert.ok(losses[9] < 0.8 * losses[0], `losses ${losses.map((l) => l.toFixed(3)).join(" ")}`);
  const { dir, cleanup } = tempDir();
  t.after(cleanup);
  model.save(path.join(dir, "tuned"));
  const loaded = await Model.load(path.join(dir, "tuned"));
  assert.deepEqual((await loaded.forward(BATCH[0])).logits.f32, (await model.forward(BATCH[0])).logits.f32);
});

test("BF16 weights train on f32 masters and are re-rounded to BF16 after each step", async () => {
  const model = await Model.load(MINI_40K);
  const trainer = model.trainer({ lr: 1e-4 });
  const name = "model.layers.0.self_attn.qkv_proj.weight";
  const before = model.checkpoint.get(name).u16.slice();
  await trainer.step([[1, 12, 16, 5, 17, 11, 6, 3]]);
  const bf16 = model.checkpoint.get(name);
  assert.equal(bf16.dtype, "BF16");
  const master = trainer.master(name);
  let moved = 0, rounded = 0;
  for (let i = 0; i < master.length; i++) {
    if (bf16.u16[i] !== before[i]) moved++;
    if (Math.abs(bf16ToF32(bf16.u16[i]) - master[i]) <= Math.abs(master[i]) * 2 ** -8) rounded++;
  }
  assert.equal(rounded, master.length, "every BF16 weight is its master rounded");
  assert.ok(moved > 0 && moved < master.length, `${moved} of ${master.length} BF16 values moved (the rest kept their update in the master)`);
  assert.ok(trainer.memory.masterBytes > 0);
});

test("bad input is refused with a clear error and leaves the model unchanged", async () => {
  const model = await Model.load(TINY);
  const before = snapshot(model);
  const logits = (await model.forward(BATCH[0])).logits.f32.slice();
  const unchanged = async () => {
    for (const [name, w] of snapshot(model)) assert.deepEqual(w, before.get(name), name);
    assert.deepEqual((await model.forward(BATCH[0])).logits.f32, logits);
  };
  const nanLr = model.trainer({ lr: () => NaN });
  await assert.rejects(nanLr.step(BATCH), (e) => e instanceof InputError && /learning rate of step 1 must be a finite number/.test(e.message));
  await unchanged();
  const trainer = model.trainer({ lr: 1e-2 });
  await assert.rejects(trainer.step([[1, 2, 3, 99999]]), /token id 99999 at index 3 is outside the vocabulary/);
  await assert.rejects(trainer.step(BATCH, { tokenWeights: [[1, 1], [1, 1, 1, 1, 1]] }), /sequence 0: tokenWeights has 2 entries, expected n − 1 = 8/);
  await assert.rejects(trainer.step([[4]]), /no sequence has two or more tokens/);
  assert.throws(() => model.trainer({ lr: Infinity }), /lr must be a finite number ≥ 0, got Infinity/);
  await unchanged();
  assert.equal(trainer.optimizer.steps, 0);
});
