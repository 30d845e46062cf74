// AdamW, gradient clipping and learning-rate schedules against a float64 reference of the update rule written
// here independently (PyTorch's torch.optim.AdamW semantics), and their refusals of bad input.
import { test } from "node:test";
import assert from "node:assert/strict";
import { AdamW, type Parameter } from "../engine/train/optimizer.ts";
import { constantLr, warmupCosine } from "../engine/train/schedule.ts";
import { InputError } from "../engine/errors.ts";
import * as native from "../native/index.ts";
import { f32IntoBf16 } from "../engine/tensor.ts";

function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32 - 0.5;
  };
}

function params(seed: number): Parameter[] {
  const r = rng(seed);
  const make = (name: string, shape: number[]) => ({ name, shape, value: Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, r) });
  return [make("w", [7, 5]), make("norm", [5]), make("e", [3, 5])];
}

function grads(ps: Parameter[], seed: number, size: number): Map<string, Float32Array> {
  const r = rng(seed);
  return new Map(ps.map((p) => [p.name, Float32Array.from(p.value, () => r() * size)]));
}

/** torch.optim.AdamW's rule in float64, from the paper's formulas: decay, moments, bias-corrected step. */
function reference(start: Parameter[], steps: Map<string, Float32Array>[], lrOf: (t: number) => number, o: { b1: number; b2: number; eps: number; wd: number; maxNorm: number }) {
  const p = new Map(start.map((x) => [x.name, Array.from(x.value)]));
  const m = new Map(start.map((x) => [x.name, new Array(x.value.length).fill(0)]));
  const v = new Map(start.map((x) => [x.name, new Array(x.value.length).fill(0)]));
  steps.forEach((g, i) => {
    const t = i + 1;
    const lr = lrOf(t);
    let norm = 0;
    for (const a of g.values()) for (const x of a) norm += x * x;
    norm = Math.sqrt(norm);
    const clip = Math.min(1, o.maxNorm / (norm + 1e-6));
    for (const x of start) {
      const pv = p.get(x.name)!, mv = m.get(x.name)!, vv = v.get(x.name)!, gv = g.get(x.name)!;
      for (let j = 0; j < pv.length; j++) {
        const gj = gv[j] * clip;
        if (x.shape.length >= 2) pv[j] -= lr * o.wd * pv[j];
        mv[j] = o.b1 * mv[j] + (1 - o.b1) * gj;
        vv[j] = o.b2 * vv[j] + (1 - o.b2) * gj * gj;
        const mHat = mv[j] / (1 - o.b1 ** t);
        const vHat = vv[j] / (1 - o.b2 ** t);
        pv[j] -= (lr * mHat) / (Math.sqrt(vHat) + o.eps);
      }
    }
  });
  return p;
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i] - b[i]));
  return d;
}

const settings = { b1: 0.9, b2: 0.95, eps: 1e-8, wd: 0.1, maxNorm: Infinity };

test("one AdamW step equals the float64 reference (decay on matrices only, bias correction)", () => {
  const ps = params(1);
  const start = ps.map((p) => ({ ...p, value: p.value.slice() }));
  const g = grads(ps, 2, 0.3);
  const opt = new AdamW(ps, { lr: 1e-2, betas: [0.9, 0.95], eps: 1e-8, weightDecay: 0.1 });
  const report = opt.step(g);
  assert.equal(report.step, 1);
  assert.equal(report.clipScale, 1);
  const ref = reference(start, [g], () => 1e-2, settings);
  for (const p of ps) {
    // the step moves each element by about lr (Adam's first step is lr·sign(g)); f32 storage rounds at ~1e-7 of |θ|
    assert.ok(maxAbsDiff(p.value, ref.get(p.name)!) < 2e-7, `${p.name}: ${maxAbsDiff(p.value, ref.get(p.name)!)}`);
    assert.ok(maxAbsDiff(p.value, start.find((s) => s.name === p.name)!.value) > 5e-3, `${p.name} moved`);
  }
  // the norm gain got no weight decay: its first step is exactly lr·g/(|g| + eps') per element
  const norm = ps[1];
  const n0 = start[1].value;
  const gn = g.get("norm")!;
  for (let j = 0; j < n0.length; j++) assert.ok(Math.abs(norm.value[j] - (n0[j] - 1e-2 * Math.sign(gn[j]))) < 1e-6);
});

test("five AdamW steps with warm-up + cosine and global-norm clipping equal the float64 reference", () => {
  const ps = params(3);
  const start = ps.map((p) => ({ ...p, value: p.value.slice() }));
  const schedule = warmupCosine({ peak: 3e-2, warmupSteps: 2, totalSteps: 5, min: 1e-3 });
  const opt = new AdamW(ps, { lr: schedule, betas: [0.9, 0.95], eps: 1e-8, weightDecay: 0.1, maxGradNorm: 1 });
  const gs = [4, 5, 6, 7, 8].map((seed) => grads(ps, seed, seed === 5 ? 0.01 : 2)); // step 2 below the clip norm
  const clipped = gs.map((g) => opt.step(g).clipScale);
  assert.ok(clipped[0] < 1 && clipped[1] === 1, `clip scales ${clipped}`);
  const ref = reference(start, gs, schedule, { ...settings, maxNorm: 1 });
  for (const p of ps) assert.ok(maxAbsDiff(p.value, ref.get(p.name)!) < 1e-6, `${p.name}: ${maxAbsDiff(p.value, ref.get(p.name)!)}`);
  assert.equal(opt.steps, 5);
});

test("warm-up + cosine: linear to the peak, half a cosine to the floor, then the floor", () => {
  const s = warmupCosine({ peak: 1, warmupSteps: 4, totalSteps: 12, min: 0.1 });
  assert.equal(s(1), 0.25);
  assert.equal(s(4), 1);
  assert.ok(Math.abs(s(8) - 0.55) < 1e-12);
  assert.equal(s(12), 0.1);
  assert.equal(s(100), 0.1);
  assert.equal(constantLr(0.5)(7), 0.5);
  assert.throws(() => warmupCosine({ peak: 1, warmupSteps: 4, totalSteps: 4 }), /totalSteps must be an integer greater than warmupSteps/);
});

test("bad input is refused with a clear error and leaves parameters and state unchanged", () => {
  const ps = params(9);
  const opt = new AdamW(ps, { lr: 1e-2 });
  const before = ps.map((p) => p.value.slice());
  const good = grads(ps, 10, 1);
  const expectUnchanged = () => {
    ps.forEach((p, i) => assert.deepEqual(p.value, before[i]));
    assert.equal(opt.steps, 0);
  };
  const short = new Map(good);
  short.set("w", new Float32Array(3));
  assert.throws(() => opt.step(short), (e) => e instanceof InputError && /gradient for "w" has 3 elements, the parameter \[7,5\] has 35/.test(e.message));
  expectUnchanged();
  const unknown = new Map(good);
  unknown.set("nope", new Float32Array(1));
  assert.throws(() => opt.step(unknown), /gradient for "nope", which is not a parameter/);
  expectUnchanged();
  const nan = new Map(good);
  nan.set("e", new Float32Array(15).fill(NaN));
  assert.throws(() => opt.step(nan), /gradient of "e" is not finite/);
  expectUnchanged();
  const badLr = new AdamW(ps, { lr: () => NaN });
  assert.throws(() => badLr.step(good), /the learning rate of step 1 must be a finite number ≥ 0, got NaN/);
  expectUnchanged();
  assert.throws(() => new AdamW(ps, { lr: Infinity }), /lr must be a finite number ≥ 0, got Infinity/);
  assert.throws(() => new AdamW(ps, { lr: 1, betas: [1, 0.9] }), /betas\[0\] must be in \[0, 1\)/);
  assert.throws(() => new AdamW(ps, { lr: 1, maxGradNorm: 0 }), /maxGradNorm must be a number > 0/);
  opt.step(good); // and a good step after all those refusals is the first step
  assert.equal(opt.steps, 1);
});

test("the native AdamW and sum-of-squares kernels equal float64 formulas under every ISA and thread count", () => {
  const info = native.cpuInfo();
  const n = 100_003; // several parallel chunks and a vector tail
  const r = rng(11);
  const p0 = Float32Array.from({ length: n }, r);
  const g = Float32Array.from({ length: n }, () => 3 * r());
  const m0 = Float32Array.from({ length: n }, () => 0.1 * r());
  const v0 = Float32Array.from({ length: n }, () => Math.abs(0.01 * r()));
  const s = { gradScale: 0.7, beta1: 0.9, beta2: 0.95, decay: 0.999, stepSize: 0.01, invSqrtBc2: 1.3, eps: 1e-8 };
  let sumSq = 0;
  for (const x of g) sumSq += x * x;
  try {
    for (const isa of info.supported as native.Isa[]) {
      for (const threads of [1, 2]) {
        native.setIsa(isa);
        native.setThreads(threads);
        const [p, m, v] = [p0.slice(), m0.slice(), v0.slice()];
        native.adamw(p, g, m, v, s);
        let worst = 0;
        for (let i = 0; i < n; i++) {
          const gi = g[i] * s.gradScale;
          const mi = s.beta1 * m0[i] + (1 - s.beta1) * gi;
          const vi = s.beta2 * v0[i] + (1 - s.beta2) * gi * gi;
          const step = (s.stepSize * mi) / (Math.sqrt(vi) * s.invSqrtBc2 + s.eps);
          const pi = p0[i] * s.decay - step;
          // f32 rounding, relative to the size of the terms each result is made of (sums may cancel)
          const err = [
            Math.abs(m[i] - mi) / (s.beta1 * Math.abs(m0[i]) + (1 - s.beta1) * Math.abs(gi)),
            Math.abs(v[i] - vi) / vi,
            Math.abs(p[i] - pi) / (Math.abs(p0[i]) + Math.abs(step)),
          ];
          worst = Math.max(worst, ...err);
        }
        assert.ok(worst < 1e-5, `${isa}, ${threads} threads: worst relative error ${worst}`);
        assert.ok(Math.abs(native.sumSquares(g) - sumSq) <= 1e-12 * sumSq, `${isa}: sumSquares`);
        // with a BF16 copy: the same update, and the copy is the new p rounded as f32IntoBf16 rounds, bit for bit
        const [pb, mb, vb, bf16] = [p0.slice(), m0.slice(), v0.slice(), new Uint16Array(n)];
        native.adamw(pb, g, mb, vb, s, bf16);
        assert.deepEqual([pb, mb, vb], [p, m, v], `${isa}, ${threads} threads: the update with a BF16 copy`);
        assert.deepEqual(bf16, f32IntoBf16(p, new Uint16Array(n)), `${isa}, ${threads} threads: the BF16 copy`);
      }
    }
  } finally {
    native.setIsa(info.isa as native.Isa);
    native.setThreads(info.threads);
  }
  assert.throws(() => native.adamw(p0, g.subarray(1), m0, v0, s), /adamw: g .*length/);
  assert.throws(() => native.adamw(p0, g, m0, v0, s, new Uint16Array(n - 1)), /adamw: bf16 .*length/);
});
