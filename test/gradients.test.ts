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
import { TINY, TINY_ROPE8, relErr } from "./helpers.ts";

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
    const ids: number[] = Array.from(golden.read("input_ids").data as Int32Array);
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
      const e = relErr(got.data as Float32Array, ref);
      if (e > worst) [worst, worstName] = [e, key];
    }
    errors.weights = worst;
    assert.ok(worst <= 1e-4, `worst weight gradient ${worstName}: ${worst}`);
    let worstHidden = 0;
    hidden.forEach((hook, i) => {
      const e = relErr(r.activations.get(hook)![0].data as Float32Array, f(`grad.hidden.${i}`));
      worstHidden = Math.max(worstHidden, e);
    });
    errors.hidden = worstHidden;
    assert.ok(worstHidden <= 1e-4, `worst grad.hidden: ${worstHidden}`);
    console.log(`${name}: ${JSON.stringify(errors)}`);
  });
}
