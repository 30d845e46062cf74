/**
 * Gradients against the golden data (test/fixtures/golden/README.md, Gradients): PyTorch autograd in float64 of the
 * per-token weighted cross-entropy. In f32: loss and token log-probabilities within 1e-5 relative, every gradient
 * tensor with norm above 1e-6 of the largest within 1e-4 relative, the residual-stream gradients grad.hidden.i too.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { Model } from "../engine/model.ts";
import { SafetensorsFile } from "../engine/safetensors.ts";
import { Tensor } from "../engine/tensor.ts";
import { TINY, TINY_ROPE8, relErr, tempDir, writeBf16Pair } from "./helpers.ts";

function norm(a: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * a[i];
  return Math.sqrt(s);
}

for (const dir of [TINY, TINY_ROPE8]) {
  const name = dir === TINY ? "tiny-m1" : "tiny-m1-rope8";
  test(`${name}: loss, token log-probabilities and every gradient match golden`, async () => {
    const golden = SafetensorsFile.open(join(dir, "grad.safetensors"));
    const f = (key: string) => golden.read(key).toFloat32();
    const model = await Model.load(dir);
    const ids: number[] = Array.from(golden.read("input_ids").i32);
    const layers = model.config.numLayers;
    const hidden = Array.from({ length: layers + 1 }, (_, i) => (i === 0 ? "embed" : `blocks.${i - 1}.hook_resid_post`));
    const r = await model.lossAndGradients(ids as number[], { tokenWeights: Array.from(f("token_weights")), activationGrads: hidden });
    const errors: Record<string, number> = {};
    errors.loss = Math.abs(r.loss - f("loss")[0]) / Math.abs(f("loss")[0]);
    errors.token_logprobs = relErr(r.tokenLogprobs[0], f("token_logprobs"));
    assert.ok(errors.loss <= 1e-5, `loss ${r.loss} vs ${f("loss")[0]}`);
    assert.ok(errors.token_logprobs <= 1e-5, `token_logprobs rel err ${errors.token_logprobs}`);
    const gradNames = golden.names().filter((k) => k.startsWith("grad.") && !k.startsWith("grad.hidden."));
    assert.equal(gradNames.length, r.weights.size, "one gradient per weight");
    const largest = Math.max(...gradNames.map((k) => norm(f(k))));
    let worst = 0;
    let worstName = "";
    for (const key of gradNames) {
      const ref = f(key);
      const got = r.weights.get(key.slice(5));
      assert.ok(got, `gradient of ${key.slice(5)}`);
      assert.deepEqual(got.shape, golden.info(key).shape, key);
      if (norm(ref) <= 1e-6 * largest) continue;
      const e = relErr(got.f32, ref);
      if (e > worst) [worst, worstName] = [e, key];
    }
    errors.weights = worst;
    assert.ok(worst <= 1e-4, `worst weight gradient ${worstName}: ${worst}`);
    let worstHidden = 0;
    hidden.forEach((hook, i) => {
      const e = relErr(r.activations.get(hook)![0].f32, f(`grad.hidden.${i}`));
      worstHidden = Math.max(worstHidden, e);
    });
    errors.hidden = worstHidden;
    assert.ok(worstHidden <= 1e-4, `worst grad.hidden: ${worstHidden}`);
    console.log(`${name}: ${JSON.stringify(errors)}`);
  });
}

function weightsOf(ids: number[], seed: number): number[] {
  return Array.from({ length: ids.length - 1 }, (_, t) => Math.sin(seed + 1.7 * t));
}

test("a batch of sequences of different lengths: per-sequence log-probabilities, gradients add up", async () => {
  const model = await Model.load(TINY);
  const a = Array.from({ length: 37 }, (_, t) => (t * 37 + 5) % model.config.vocabSize);
  const b = Array.from({ length: 20 }, (_, t) => (t * 11 + 3) % model.config.vocabSize);
  const batch = await model.lossAndGradients([a, b], { tokenWeights: [weightsOf(a, 1), weightsOf(b, 2)], activationGrads: ["embed"] });
  const ra = await model.lossAndGradients(a, { tokenWeights: weightsOf(a, 1), activationGrads: ["embed"] });
  const rb = await model.lossAndGradients(b, { tokenWeights: weightsOf(b, 2), activationGrads: ["embed"] });
  assert.ok(Math.abs(batch.loss - (ra.loss + rb.loss)) <= 1e-5 * Math.abs(ra.loss + rb.loss), "loss is the sum");
  assert.ok(relErr(batch.tokenLogprobs[0], ra.tokenLogprobs[0]) < 1e-6, "sequence 0 log-probabilities");
  assert.ok(relErr(batch.tokenLogprobs[1], rb.tokenLogprobs[0]) < 1e-6, "sequence 1 log-probabilities (positions restart)");
  const embed = batch.activations.get("embed")!;
  assert.deepEqual(embed.map((t) => t.shape), [[37, model.config.hiddenSize], [20, model.config.hiddenSize]]);
  assert.ok(relErr(embed[1].f32, rb.activations.get("embed")![0].f32) < 1e-5);
  for (const [name, g] of batch.weights) {
    const sum = ra.weights.get(name)!.f32.map((v, i) => v + rb.weights.get(name)!.f32[i]);
    if (norm(sum) === 0) continue;
    assert.ok(relErr(g.f32, sum) < 1e-5, `${name}: the batch gradient is the sum of the sequences'`);
  }
});

test("token weights as a function of the pass's log-probabilities: called once with them, the same result as the weights given", async () => {
  const model = await Model.load(TINY);
  const a = Array.from({ length: 33 }, (_, t) => (t * 37 + 5) % model.config.vocabSize);
  const b = Array.from({ length: 18 }, (_, t) => (t * 11 + 3) % model.config.vocabSize);
  const seen: Float32Array[][] = [];
  // weights that depend on the log-probabilities, as an RL objective's do
  const weightsFrom = (logprobs: readonly Float32Array[]) => logprobs.map((lp, i) => Float32Array.from(lp, (x, t) => Math.sin(i + t) * Math.exp(x)));
  const r = await model.lossAndGradients([a, b], { tokenWeights: (logprobs) => (seen.push(logprobs.map((lp) => lp.slice())), weightsFrom(logprobs)) });
  assert.equal(seen.length, 1, "called once");
  assert.deepEqual(seen[0], r.tokenLogprobs, "with the log-probabilities the pass returns, bit for bit");
  const given = await model.lossAndGradients([a, b], { tokenWeights: weightsFrom(r.tokenLogprobs) });
  assert.equal(r.loss, given.loss);
  for (const [name, g] of given.weights) assert.deepEqual(r.weights.get(name)!.data, g.data, name);
  await assert.rejects(model.lossAndGradients([a, b], { tokenWeights: () => [[1]] }), /1 tokenWeights lists for 2 sequences/);
});

test("a memory budget of 0 recomputes every layer in backward: the same gradients", async () => {
  const model = await Model.load(TINY_ROPE8);
  const ids = Array.from({ length: 40 }, (_, t) => (t * 29 + 1) % model.config.vocabSize);
  const full = await model.forwardForBackward(ids);
  const none = await model.forwardForBackward(ids, { memoryBudgetBytes: 0 });
  assert.equal(full.keptLayers, model.config.numLayers);
  assert.equal(none.keptLayers, 0);
  assert.ok(none.keptBytes < full.keptBytes / 4, `kept ${none.keptBytes} of ${full.keptBytes} bytes`);
  const dLogits = [Float32Array.from({ length: 40 * model.config.vocabSize }, (_, i) => Math.cos(i))];
  const g1 = await full.backward(dLogits);
  const g0 = await none.backward(dLogits);
  for (const [name, g] of g1.weights) assert.deepEqual(g0.weights.get(name)!.data, g.data, name);
});

test("hooks fire in the training forward; a replacement is used and differentiated through", async () => {
  const model = await Model.load(TINY);
  const ids = Array.from({ length: 30 }, (_, t) => (t * 13 + 2) % model.config.vocabSize);
  const tokenWeights = weightsOf(ids, 3);
  const at = "blocks.3.hook_attn_out";
  let original: Float32Array | null = null;
  const lossAt = async (alpha: number) => {
    const remove = model.hooks.add(at, (x) => {
      original = x.f32.slice();
      return new Tensor("F32", x.shape, x.f32.map((v) => alpha * v));
    });
    try {
      return await model.lossAndGradients(ids, { tokenWeights, activationGrads: [at, "blocks.2.lightning.hook_gate"] });
    } finally {
      remove();
    }
  };
  // h = 1e-2: the loss is f32, so a smaller step's difference is mostly rounding (at 1e-3 it moves by ±0.1% from one
  // ISA's summation order to another's); the curvature's error at 1e-2 is under 0.05%
  const alpha = 0.6, h = 1e-2;
  const r = await lossAt(alpha);
  const g = r.activations.get(at)![0].f32;
  // d loss / d alpha = Σ (d loss / d out') · out, out' = alpha · out
  let dAlpha = 0;
  for (let i = 0; i < g.length; i++) dAlpha += g[i] * original![i];
  const fd = ((await lossAt(alpha + h)).loss - (await lossAt(alpha - h)).loss) / (2 * h);
  assert.ok(Math.abs(dAlpha - fd) <= 1e-3 * Math.abs(fd), `d loss / d alpha ${dAlpha} vs central difference ${fd}`);
  assert.deepEqual(r.activations.get("blocks.2.lightning.hook_gate")![0].shape, [30, model.config.numHeads * model.config.headDim]);
});

test("bad input: a clear error, nothing computed, the model unchanged", async () => {
  const model = await Model.load(TINY);
  const V = model.config.vocabSize;
  const ids = [1, 2, 3, 4, 5];
  const before = (await model.forward(ids)).logits.data;
  await assert.rejects(model.lossAndGradients([1, V, 3], { tokenWeights: [1, 1] }), /token id \d+ at index 1 is outside the vocabulary/);
  await assert.rejects(model.lossAndGradients(ids, { tokenWeights: [1, 1, 1] }), /tokenWeights has 3 entries, expected n − 1 = 4/);
  await assert.rejects(model.lossAndGradients(ids, { tokenWeights: [1, NaN, 1, 1] }), /tokenWeights\[1\] = NaN is not a finite number/);
  await assert.rejects(model.lossAndGradients([ids, ids], { tokenWeights: [[1, 1, 1, 1]] }), /1 tokenWeights lists for 2 sequences/);
  await assert.rejects(model.forwardForBackward(ids, { activationGrads: ["blocks.0.moe.hook_topk_idx"] }), /has no gradient/);
  await assert.rejects(model.forwardForBackward(ids, { activationGrads: ["blocks.99.hook_resid_post"] }), /is not a hook name/);
  const tape = await model.forwardForBackward(ids);
  await assert.rejects(tape.backward([new Float32Array(3)]), /dLogits\[0\] must be a Float32Array of 5·\d+/);
  const remove = model.hooks.add("blocks.7.attn.hook_pattern", () => undefined);
  await assert.rejects(model.forwardForBackward(ids), /training forward does not build/);
  remove();
  assert.deepEqual((await model.forward(ids)).logits.data, before);
});

test("BF16 weights get f32 gradients equal to those of f32 weights holding the same values", async () => {
  const { dir, cleanup } = tempDir();
  try {
    writeBf16Pair(dir);
    const ids = Array.from({ length: 37 }, (_, t) => (t * 23 + 4) % 512);
    const tokenWeights = weightsOf(ids, 5);
    const ours = await (await Model.load(join(dir, "bf16"))).lossAndGradients(ids, { tokenWeights });
    const ref = await (await Model.load(join(dir, "rounded"))).lossAndGradients(ids, { tokenWeights });
    assert.ok(Math.abs(ours.loss - ref.loss) <= 1e-6 * Math.abs(ref.loss), "loss");
    for (const [name, g] of ref.weights) {
      const mine = ours.weights.get(name)!;
      assert.equal(mine.dtype, "F32", name);
      if (norm(g.f32) > 0) assert.ok(relErr(mine.f32, g.f32) <= 1e-5, `${name}: ${relErr(mine.f32, g.f32)}`);
    }
  } finally {
    cleanup();
  }
});
