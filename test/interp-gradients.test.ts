/** The gradient methods against brute force: attribution patching is real patching to first order, integrated
 *  gradients are complete, gradient × input is a directional derivative. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { Model, Tensor, ActivationPatching, AttributionPatching, InputAttribution, logitDifference, type Metric } from "../engine/index.ts";
import { expertContributions } from "../engine/interp/experts.ts";
import { metricGradient } from "../engine/interp/metric.ts";
import { ROOT, TINY } from "./helpers.ts";

const MINI = join(ROOT, "engine", "checkpoints", "mini-80k");

/** The metric of one corrupted forward pass with `hooks`. */
async function metricWith(model: Model, ids: number[], metric: Metric, hooks: [string, (v: Tensor) => Tensor | void][]): Promise<number> {
  const { logits } = await model.hooks.with(hooks, () => model.forward(ids));
  const vocab = model.config.vocabSize;
  return metric(logits.f32.subarray((ids.length - 1) * vocab));
}

test("attribution patching equals real patching to first order: a patch of ε·(clean − corrupted), central differences", async () => {
  const model = await Model.load(MINI);
  const metric = logitDifference(model, "1", "0");
  const ap = await ActivationPatching.prepare(model, "<s> 4 8 + 9 3 = <think> 8 3 0 1 1", "<s> 4 8 + 9 1 = <think> 8 1 0 9 0", metric);
  const atp = await AttributionPatching.compute(ap);
  const [pair] = ap.pairs;
  const ids = pair.corruptedIds;
  const n = ids.length;
  const eps = 1e-2;
  /** d metric / dε of patching a ← a + ε·delta at hook `name`, by central differences */
  const derivative = async (name: string, delta: (x: Float32Array, sign: number) => void) => {
    const at = (sign: number) => metricWith(model, ids, metric, [[name, (v) => delta(v.f32, sign * eps)]]);
    return ((await at(1)) - (await at(-1))) / (2 * eps);
  };
  const checked: [string, number, number][] = [];
  for (const hook of ["hook_resid_pre", "hook_attn_out", "attn.hook_z", "lightning.hook_o"]) {
    const est = atp.positions(hook);
    for (const l of est.spec.rows.filter((_, i) => i % 3 === 0 || i === est.spec.rows.length - 1)) {
      const name = `blocks.${l}.${hook}`;
      const clean = pair.cleanActs.get(name)!.f32, corrupt = pair.corruptActs.get(name)!.f32;
      const width = clean.length / n;
      for (const p of [pair.firstDifference, n - 2, n - 1]) {
        const real = await derivative(name, (x, e) => {
          for (let i = p * width; i < (p + 1) * width; i++) x[i] += e * (clean[i] - corrupt[i]);
        });
        checked.push([`${name} @ ${p}`, est.at(l, p) - ap.corrupted, real]);
      }
    }
  }
  const experts = atp.experts();
  const l = model.config.numLayers - 1;
  const shares = [pair.cleanActs, pair.corruptActs].map((acts) => expertContributions(model.config, l, (x) => acts.get(x)!));
  for (let e = 0; e < model.config.numExperts; e++) {
    const real = await derivative(`blocks.${l}.hook_mlp_out`, (x, s) => {
      for (let i = 0; i < x.length; i++) x[i] += s * (shares[0][e][i] - shares[1][e][i]);
    });
    checked.push([`expert ${e} of layer ${l}`, experts.at(l, e) - ap.corrupted, real]);
  }
  for (const [what, estimate, real] of checked) {
    assert.ok(Math.abs(estimate - real) <= 2e-2 * Math.abs(real) + 2e-3, `${what}: attribution ${estimate} vs real first-order ${real}`);
  }
  assert.ok(checked.some(([, , real]) => Math.abs(real) > 1), "some patches must matter");
});

test("integrated gradients are complete within 1e-3 at 64 steps; the input gradient is the derivative along any direction", async () => {
  const model = await Model.load(TINY);
  const ids = [1, 17, 300, 42, 9, 77, 5, 123, 64, 480, 3, 19];
  const metric = logitDifference(model, 17, 300);
  const ia = await InputAttribution.compute(model, ids, metric, { steps: 64, baseline: 5 });
  assert.ok(Math.abs(ia.completenessError) < 1e-3, `Σ IG − (F(x) − F(b)) = ${ia.completenessError}`);
  assert.ok(Math.abs(ia.value - ia.baseline) > 0.1, "the baseline must change the metric");
  assert.equal(ia.integratedGradients[6], 0, "a position already at the baseline token gets nothing");
  const eps = 1e-3;
  const hs = model.config.hiddenSize;
  const grad = ia.prompts[0].gradient.f32;
  for (const t of [0, 4, ids.length - 1]) {
    const direction = Float32Array.from({ length: hs }, (_, i) => Math.cos(i * 1.7 + t));
    const at = (s: number) => metricWith(model, ids, metric, [["embed", (v) => { for (let i = 0; i < hs; i++) v.f32[t * hs + i] += s * direction[i]; }]]);
    const real = ((await at(eps)) - (await at(-eps))) / (2 * eps);
    const predicted = direction.reduce((sum, d, i) => sum + d * grad[t * hs + i], 0);
    assert.ok(Math.abs(predicted - real) < 1e-2 * Math.abs(real) + 1e-4, `token ${t}: ${predicted} vs ${real}`);
    assert.ok(Math.abs(real) > 1e-2, "the direction must matter");
  }
  assert.equal(ia.table().numRows, ids.length);
});

test("a metric without a gradient is differentiated numerically; bad steps are refused", async () => {
  const model = await Model.load(MINI);
  const logits = Float32Array.from({ length: model.config.vocabSize }, (_, i) => Math.sin(i));
  const g = metricGradient((l) => l[3] * l[4] - l[5], logits);
  assert.ok(Math.abs(g[3] - logits[4]) < 1e-4 && Math.abs(g[4] - logits[3]) < 1e-4 && Math.abs(g[5] + 1) < 1e-4 && g[0] === 0);
  await assert.rejects(InputAttribution.compute(model, "<s> 1 2", logitDifference(model, "1", "0"), { steps: 0 }), /steps must be a positive integer, got 0/);
  assert.throws(() => logitDifference(model, "1 2", "0"), /target "1 2" is 2 tokens, not one/);
});
