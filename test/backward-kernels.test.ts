/**
 * Every backward kernel alone against central finite differences of a float64 reference forward of its op, under
 * every ISA this machine supports. For an op y = f(x) and a random upstream gradient dy, the kernel's dx must equal
 * ∂(Σ dy·f(x)) / ∂x, estimated as (L(x + h) − L(x − h)) / 2h in float64 on sampled coordinates.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import * as m1 from "../native/index.ts";
import * as bw from "../native/backward.ts";
import { randF32, relErr, rng } from "./helpers.ts";

const TOL = 1e-4;

type Loss = (x: Float64Array) => number;

/** Σ dy·y in float64 */
function dot(dy: ArrayLike<number>, y: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < y.length; i++) s += dy[i] * y[i];
  return s;
}

/**
 * Central differences of loss at x0 on up to `samples` coordinates (all of them for small inputs) against the
 * kernel's gradient `got` on the same coordinates.
 */
function checkGradient(what: string, loss: Loss, x0: ArrayLike<number>, got: ArrayLike<number>, samples = 48, seed = 7): void {
  assert.equal(got.length, x0.length, `${what}: gradient length`);
  const x = Float64Array.from(x0);
  const r = rng(seed);
  const coords = x.length <= samples ? x.map((_, i) => i) : Float64Array.from({ length: samples }, () => Math.floor(r() * x.length));
  const fd: number[] = [];
  const mine: number[] = [];
  for (const i of coords) {
    const h = 1e-4 * Math.max(1, Math.abs(x[i]));
    const keep = x[i];
    x[i] = keep + h;
    const up = loss(x);
    x[i] = keep - h;
    const down = loss(x);
    x[i] = keep;
    fd.push((up - down) / (2 * h));
    mine.push(got[i]);
  }
  const e = relErr(mine, fd);
  assert.ok(e < TOL, `${what}: relative error ${e.toExponential(3)} against central differences`);
}

function bf16(x: Float32Array): Uint16Array {
  const u = new Uint32Array(x.buffer, x.byteOffset, x.length);
  return Uint16Array.from(u, (v) => v >>> 16);
}

function decodeBf16(h: Uint16Array): Float64Array {
  const u = new Uint32Array(h.length);
  for (let i = 0; i < h.length; i++) u[i] = h[i] << 16;
  return Float64Array.from(new Float32Array(u.buffer));
}

const sigmoid = (x: number) => 1 / (1 + Math.exp(-x));
const silu = (x: number) => x * sigmoid(x);

// ------------------------------------------------------------------ float64 reference forwards

/** y[t, j] = Σ_c x[t, c] W[j, c] */
function matmulRef(x: ArrayLike<number>, n: number, W: ArrayLike<number>, rows: number, cols: number): Float64Array {
  const y = new Float64Array(n * rows);
  for (let t = 0; t < n; t++)
    for (let j = 0; j < rows; j++) {
      let s = 0;
      for (let c = 0; c < cols; c++) s += x[t * cols + c] * W[j * cols + c];
      y[t * rows + j] = s;
    }
  return y;
}

function rmsnormRef(x: ArrayLike<number>, n: number, dim: number, w: ArrayLike<number>, eps: number): Float64Array {
  const y = new Float64Array(n * dim);
  for (let t = 0; t < n; t++) {
    let ss = 0;
    for (let i = 0; i < dim; i++) ss += x[t * dim + i] ** 2;
    const r = 1 / Math.sqrt(ss / dim + eps);
    for (let i = 0; i < dim; i++) y[t * dim + i] = w[i] * x[t * dim + i] * r;
  }
  return y;
}

/** NeoX rotate-half on the first rd dims of each head */
function ropeRef(x: ArrayLike<number>, n: number, heads: number, hd: number, rd: number, pos: Int32Array, theta: number): Float64Array {
  const y = Float64Array.from(x);
  const half = rd / 2;
  for (let t = 0; t < n; t++)
    for (let h = 0; h < heads; h++)
      for (let i = 0; i < half; i++) {
        const a = pos[t] * theta ** (-2 * i / rd);
        const o = (t * heads + h) * hd;
        const u = x[o + i], v = x[o + half + i];
        y[o + i] = u * Math.cos(a) - v * Math.sin(a);
        y[o + half + i] = v * Math.cos(a) + u * Math.sin(a);
      }
  return y;
}

/** the recurrence S_t = λ S_{t−1} + k_tᵀ v_t, o_t = q_t S_t from S_0 = 0, per head */
function lightningRef(q: ArrayLike<number>, k: ArrayLike<number>, v: ArrayLike<number>, n: number, heads: number, d: number,
  slopes: Float32Array): Float64Array {
  const o = new Float64Array(n * heads * d);
  for (let h = 0; h < heads; h++) {
    const lam = Math.exp(-slopes[h]);
    const S = new Float64Array(d * d);
    for (let t = 0; t < n; t++) {
      const at = (t * heads + h) * d;
      for (let a = 0; a < d; a++) for (let c = 0; c < d; c++) S[a * d + c] = lam * S[a * d + c] + k[at + a] * v[at + c];
      for (let c = 0; c < d; c++) {
        let s = 0;
        for (let a = 0; a < d; a++) s += q[at + a] * S[a * d + c];
        o[at + c] = s;
      }
    }
  }
  return o;
}

/** causal GQA softmax self-attention; also each row's log-sum-exp [n, heads] */
function attentionRef(q: ArrayLike<number>, k: ArrayLike<number>, v: ArrayLike<number>, n: number, heads: number, kvh: number,
  d: number, scale: number): { out: Float64Array; lse: Float64Array } {
  const out = new Float64Array(n * heads * d);
  const lse = new Float64Array(n * heads);
  const G = heads / kvh;
  for (let t = 0; t < n; t++)
    for (let h = 0; h < heads; h++) {
      const g = Math.floor(h / G);
      const s = new Float64Array(t + 1);
      let mx = -Infinity;
      for (let j = 0; j <= t; j++) {
        let x = 0;
        for (let c = 0; c < d; c++) x += q[(t * heads + h) * d + c] * k[(j * kvh + g) * d + c];
        s[j] = x * scale;
        mx = Math.max(mx, s[j]);
      }
      let sum = 0;
      for (let j = 0; j <= t; j++) sum += Math.exp(s[j] - mx);
      lse[t * heads + h] = mx + Math.log(sum);
      for (let j = 0; j <= t; j++) {
        const p = Math.exp(s[j] - mx) / sum;
        for (let c = 0; c < d; c++) out[(t * heads + h) * d + c] += p * v[(j * kvh + g) * d + c];
      }
    }
  return { out, lse };
}

/** renormalised top-k weights of the chosen experts idx (the choice held fixed) */
function routerRef(logits: ArrayLike<number>, n: number, e: number, k: number, idx: Int32Array): Float64Array {
  const w = new Float64Array(n * k);
  for (let t = 0; t < n; t++) {
    let mx = -Infinity;
    for (let i = 0; i < e; i++) mx = Math.max(mx, logits[t * e + i]);
    let sum = 0;
    for (let i = 0; i < e; i++) sum += Math.exp(logits[t * e + i] - mx);
    let top = 0;
    for (let j = 0; j < k; j++) top += Math.exp(logits[t * e + idx[t * k + j]] - mx) / sum;
    for (let j = 0; j < k; j++) w[t * k + j] = Math.exp(logits[t * e + idx[t * k + j]] - mx) / sum / top;
  }
  return w;
}

/** Σ_t weights[t] · −log softmax(logits[t])[targets[t]], and the log-probabilities */
function crossEntropyRef(logits: ArrayLike<number>, n: number, V: number, targets: Int32Array, w: Float32Array): { loss: number; logprobs: Float64Array } {
  const logprobs = new Float64Array(n);
  let loss = 0;
  for (let t = 0; t < n; t++) {
    let mx = -Infinity;
    for (let i = 0; i < V; i++) mx = Math.max(mx, logits[t * V + i]);
    let sum = 0;
    for (let i = 0; i < V; i++) sum += Math.exp(logits[t * V + i] - mx);
    logprobs[t] = logits[t * V + targets[t]] - mx - Math.log(sum);
    loss -= w[t] * logprobs[t];
  }
  return { loss, logprobs };
}

interface Expert64 { w1: ArrayLike<number>; w3: ArrayLike<number>; w2: ArrayLike<number> }

/** out_t = Σ_j w_tj · W2 (silu(W1 x_t) ⊙ W3 x_t) of expert idx_tj */
function moeRef(x: ArrayLike<number>, n: number, hs: number, F: number, idx: Int32Array, w: ArrayLike<number>, k: number,
  experts: Expert64[]): Float64Array {
  const out = new Float64Array(n * hs);
  for (let t = 0; t < n; t++) {
    const xt = Array.from({ length: hs }, (_, c) => x[t * hs + c]);
    for (let j = 0; j < k; j++) {
      const ex = experts[idx[t * k + j]];
      const a = new Float64Array(F);
      for (let f = 0; f < F; f++) {
        let g = 0, u = 0;
        for (let c = 0; c < hs; c++) {
          g += ex.w1[f * hs + c] * xt[c];
          u += ex.w3[f * hs + c] * xt[c];
        }
        a[f] = silu(g) * u;
      }
      for (let c = 0; c < hs; c++) {
        let y = 0;
        for (let f = 0; f < F; f++) y += ex.w2[c * F + f] * a[f];
        out[t * hs + c] += w[t * k + j] * y;
      }
    }
  }
  return out;
}

// ------------------------------------------------------------------ the kernels, under every ISA

const original = m1.cpuInfo().isa;
for (const isa of m1.cpuInfo().supported as m1.Isa[]) {
  const under = (name: string, body: () => void) => test(`${isa}: ${name}`, () => {
    m1.setIsa(isa);
    try {
      body();
    } finally {
      m1.setIsa(original);
    }
  });

  for (const dtype of ["F32", "BF16"] as const) {
    under(`matmulDx and matmulDw (${dtype} weights, f32 gradients)`, () => {
      const [n, rows, cols] = [70, 37, 45]; // the packed path, with partial tiles in every dimension
      const x = randF32(n * cols, 1);
      const wf = randF32(rows * cols, 2);
      const w: m1.Weight = dtype === "F32" ? { dtype, data: wf, shape: [rows, cols] } : { dtype, data: bf16(wf), shape: [rows, cols] };
      const W64 = dtype === "F32" ? Float64Array.from(wf) : decodeBf16(w.data as Uint16Array);
      const dy = randF32(n * rows, 3);
      const dx = bw.matmulDx(dy, n, w);
      checkGradient("dx", (xx) => dot(dy, matmulRef(xx, n, W64, rows, cols)), x, dx);
      const acc = Float32Array.from(dx);
      bw.matmulDx(dy, n, w, acc);
      assert.ok(relErr(acc, dx.map((v) => 2 * v)) < 1e-6, "matmulDx adds into the array it is given");
      const dw = new Float32Array(rows * cols);
      bw.matmulDw(dy, x, n, dw, rows, cols);
      checkGradient("dW", (ww) => dot(dy, matmulRef(x, n, ww, rows, cols)), W64, dw);
    });
  }

  under("rmsnormBackward: dx and dweight", () => {
    const [n, dim, eps] = [5, 37, 1e-6];
    const x = randF32(n * dim, 4, -2, 2);
    const w = randF32(dim, 5, 0.5, 1.5);
    const dy = randF32(n * dim, 6);
    const dweight = new Float32Array(dim);
    const dx = bw.rmsnormBackward(x, dy, n, dim, w, eps, dweight);
    checkGradient("dx", (xx) => dot(dy, rmsnormRef(xx, n, dim, w, eps)), x, dx, 200);
    checkGradient("dweight", (ww) => dot(dy, rmsnormRef(x, n, dim, ww, eps)), w, dweight);
  });

  under("siluBackward, sigmoidBackward, swigluBackward", () => {
    const len = 53;
    const x = randF32(len, 7, -6, 6);
    const u = randF32(len, 8, -2, 2);
    const dy = randF32(len, 9);
    checkGradient("silu", (xx) => dot(dy, xx.map(silu)), x, bw.siluBackward(x, dy), len);
    checkGradient("sigmoid", (xx) => dot(dy, xx.map(sigmoid)), x, bw.sigmoidBackward(m1.sigmoid(x), dy), len);
    const { dgate, dup } = bw.swigluBackward(x, u, dy);
    checkGradient("swiglu gate", (g) => dot(dy, g.map((v, i) => silu(v) * u[i])), x, dgate, len);
    checkGradient("swiglu up", (uu) => dot(dy, uu.map((v, i) => silu(x[i]) * v)), u, dup, len);
  });

  under("RoPE backward: the rotation by the opposite angle (partial rotary dims)", () => {
    const [n, heads, hd, rd, theta] = [6, 3, 16, 8, 1e4];
    const x = randF32(n * heads * hd, 10);
    const dy = randF32(n * heads * hd, 11);
    const pos = Int32Array.from({ length: n }, (_, t) => 3 + 5 * t);
    const dx = Float32Array.from(dy);
    m1.rope(dx, n, heads, hd, rd, pos.map((p) => -p), theta);
    checkGradient("dx", (xx) => dot(dy, ropeRef(xx, n, heads, hd, rd, pos, theta)), x, dx, 300);
  });

  under("embeddingBackward: scatter-add, repeated ids add up", () => {
    const [vocab, dim] = [11, 19];
    const ids = Int32Array.from([3, 7, 3, 0, 10, 3]);
    const table = randF32(vocab * dim, 12);
    const dy = randF32(ids.length * dim, 13);
    const dtable = new Float32Array(vocab * dim);
    bw.embeddingBackward(ids, dy, dtable, vocab, dim);
    const ref = (tt: Float64Array) => {
      let s = 0;
      ids.forEach((id, t) => {
        for (let c = 0; c < dim; c++) s += dy[t * dim + c] * tt[id * dim + c];
      });
      return s;
    };
    checkGradient("dtable", ref, table, dtable, vocab * dim);
  });

  under("routerTopkBackward: gradient only through the chosen experts' renormalised weights", () => {
    const [n, e, k] = [9, 8, 2];
    const logits = randF32(n * e, 14, -3, 3);
    const idx = new Int32Array(n * k);
    const weights = new Float32Array(n * k);
    m1.routerTopk(logits, n, e, k, idx, weights);
    const dw = randF32(n * k, 15);
    const dlogits = bw.routerTopkBackward(logits, n, e, k, idx, dw);
    checkGradient("dlogits", (ll) => dot(dw, routerRef(ll, n, e, k, idx)), logits, dlogits, n * e);
  });

  under("crossEntropy: token log-probabilities and dlogits of the weighted loss", () => {
    const [n, V] = [6, 83];
    const logits = randF32(n * V, 16, -4, 4);
    const targets = Int32Array.from([0, 82, 5, 41, 41, 7]);
    const w = Float32Array.from([1, -0.5, 2, 0, 0.25, -1.5]);
    const logprobs = new Float32Array(n);
    const dlogits = new Float32Array(n * V);
    bw.crossEntropy(logits, n, V, targets, w, logprobs, dlogits);
    assert.ok(relErr(logprobs, crossEntropyRef(logits, n, V, targets, w).logprobs) < 1e-6, "logprobs");
    checkGradient("dlogits", (ll) => crossEntropyRef(ll, n, V, targets, w).loss, logits, dlogits, 200);
    const inPlace = Float32Array.from(logits);
    bw.crossEntropy(inPlace, n, V, targets, w, new Float32Array(n), inPlace);
    assert.ok(relErr(inPlace, dlogits) < 1e-7, "dlogits written over the logits");
    const alone = new Float32Array(n);
    const before = Float32Array.from(logits);
    bw.tokenLogprobs(logits, n, V, targets, alone);
    assert.deepEqual(alone, logprobs, "tokenLogprobs writes crossEntropy's log-probabilities bit for bit");
    assert.deepEqual(logits, before, "tokenLogprobs leaves the logits alone");
  });

  under("lightningBackward: blocks of 16 with a partial last block, and the interleaved qkv form", () => {
    const [n, heads, d, block] = [37, 2, 8, 16];
    const slopes = Float32Array.from([0.3, 0.05]);
    const len = n * heads * d;
    const [q, k, v] = [randF32(len, 17), randF32(len, 18), randF32(len, 19)];
    const dout = randF32(len, 20);
    const g = bw.lightningBackward(q, k, v, dout, n, heads, d, slopes, block);
    checkGradient("dq", (x) => dot(dout, lightningRef(x, k, v, n, heads, d, slopes)), q, g.dq, 80);
    checkGradient("dk", (x) => dot(dout, lightningRef(q, x, v, n, heads, d, slopes)), k, g.dk, 80);
    checkGradient("dv", (x) => dot(dout, lightningRef(q, k, x, n, heads, d, slopes)), v, g.dv, 80);
    const qkv = new Float32Array(3 * len);
    for (let r = 0; r < n * heads; r++) [q, k, v].forEach((a, c) => qkv.set(a.subarray(r * d, (r + 1) * d), (3 * r + c) * d));
    const dqkv = bw.lightningBackwardQkv(qkv, dout, n, heads, d, slopes, block);
    const parts = m1.splitQkv(dqkv, n, heads, d);
    assert.ok(relErr(parts.q, g.dq) < 1e-6 && relErr(parts.k, g.dk) < 1e-6 && relErr(parts.v, g.dv) < 1e-6, "interleaved form");
    const into = new Float32Array(3 * len).fill(NaN); // every element written
    assert.equal(bw.lightningBackwardQkv(qkv, dout, n, heads, d, slopes, block, into), into);
    assert.deepEqual(into, dqkv, "into out: the same bits");
    assert.throws(() => bw.lightningBackwardQkv(qkv, dout, n, heads, d, slopes, block, new Float32Array(3)), /out/);
    assert.throws(() => bw.lightningBackwardQkv(qkv, dout, n, heads, d, slopes, block, qkv), /overlap|out/);
  });

  under("attentionLse and attentionBackward: GQA, several key tiles, from the saved log-sum-exp", () => {
    const [n, heads, kvh, d] = [70, 4, 2, 16];
    const scale = 1 / Math.sqrt(d);
    const q = randF32(n * heads * d, 21, -2, 2);
    const k = randF32(n * kvh * d, 22, -2, 2);
    const v = randF32(n * kvh * d, 23);
    const dout = randF32(n * heads * d, 24);
    const { out, lse } = bw.attentionLse(q, k, v, n, heads, kvh, d, scale);
    const ref = attentionRef(q, k, v, n, heads, kvh, d, scale);
    assert.ok(relErr(out, ref.out) < 1e-5 && relErr(lse, ref.lse) < 1e-6, "forward output and lse");
    const g = bw.attentionBackward(q, k, v, out, dout, lse, n, heads, kvh, d, scale);
    checkGradient("dq", (x) => dot(dout, attentionRef(x, k, v, n, heads, kvh, d, scale).out), q, g.dq, 40);
    checkGradient("dk", (x) => dot(dout, attentionRef(q, x, v, n, heads, kvh, d, scale).out), k, g.dk, 40);
    checkGradient("dv", (x) => dot(dout, attentionRef(q, k, x, n, heads, kvh, d, scale).out), v, g.dv, 40);
  });

  under("moeBackward: inputs, routing weights and every routed expert's weights, grouped by expert", () => {
    const [n, hs, F, E, k] = [7, 12, 10, 4, 2];
    const x = randF32(n * hs, 25);
    const idx = Int32Array.from([0, 2, 2, 1, 0, 1, 2, 0, 1, 2, 0, 2, 2, 1]); // expert 3 unused
    const w = randF32(n * k, 26, 0.1, 0.9);
    const experts = Array.from({ length: E }, (_, e) => ({
      w1: { dtype: "F32" as const, data: randF32(F * hs, 30 + e), shape: [F, hs] },
      w3: { dtype: "F32" as const, data: randF32(F * hs, 40 + e), shape: [F, hs] },
      w2: { dtype: "F32" as const, data: randF32(hs * F, 50 + e), shape: [hs, F] },
    }));
    const e64 = (e: number): Expert64 => ({ w1: experts[e].w1.data, w3: experts[e].w3.data, w2: experts[e].w2.data });
    const dout = randF32(n * hs, 27);
    const grads = experts.map((ex, e) => (e === 3 ? null : { w1: new Float32Array(F * hs), w3: new Float32Array(F * hs), w2: new Float32Array(hs * F) }));
    const r = bw.moeBackward(x, n, hs, idx, w, k, experts.map((ex, e) => (e === 3 ? null : ex)), dout, grads);
    const all = () => [0, 1, 2, 3].map(e64);
    checkGradient("dx", (xx) => dot(dout, moeRef(xx, n, hs, F, idx, w, k, all())), x, r.dx, 84);
    checkGradient("dweights", (ww) => dot(dout, moeRef(x, n, hs, F, idx, ww, k, all())), w, r.dweights, 14);
    for (const part of ["w1", "w3", "w2"] as const) {
      const with2 = (p: Float64Array) => all().map((ex, e) => (e === 2 ? { ...ex, [part]: p } : ex));
      checkGradient(`expert 2 ${part}`, (p) => dot(dout, moeRef(x, n, hs, F, idx, w, k, with2(p))), experts[2][part].data, grads[2]![part], 60);
    }
    // reading what the forward kept (moeExperts' slots and gateUp) instead of recomputing gives the same gradients
    const gateUp = new Float32Array(n * k * 2 * F);
    const slots = m1.moeExperts(x, n, hs, idx, k, experts, undefined, gateUp);
    const keptGrads = grads.map((g) => g && { w1: new Float32Array(F * hs), w3: new Float32Array(F * hs), w2: new Float32Array(hs * F) });
    const kept = bw.moeBackward(x, n, hs, idx, w, k, experts, dout, keptGrads, { slots, gateUp });
    assert.ok(relErr(kept.dx, r.dx) < 1e-6 && relErr(kept.dweights, r.dweights) < 1e-6, "dx, dweights from the kept products");
    for (const part of ["w1", "w3", "w2"] as const) assert.ok(relErr(keptGrads[2]![part], grads[2]![part]) < 1e-6, part);
  });

  under("moeBackward reads moeExperts' gateUp across token chunks (a wide hidden size: chunks of 256 tokens)", () => {
    const [n, hs, F, E, k] = [600, 8192, 4, 3, 2];
    const x = randF32(n * hs, 60);
    const idx = Int32Array.from({ length: n * k }, (_, s) => (s % k === 0 ? (s >> 1) % E : ((s >> 1) + 1 + (s >> 3) % (E - 1)) % E));
    const w = randF32(n * k, 61, 0.1, 0.9);
    const experts = Array.from({ length: E }, (_, e) => ({
      w1: { dtype: "F32" as const, data: randF32(F * hs, 62 + e), shape: [F, hs] },
      w3: { dtype: "F32" as const, data: randF32(F * hs, 65 + e), shape: [F, hs] },
      w2: { dtype: "F32" as const, data: randF32(hs * F, 68 + e), shape: [hs, F] },
    }));
    const dout = randF32(n * hs, 71);
    const fresh = () => experts.map(() => ({ w1: new Float32Array(F * hs), w3: new Float32Array(F * hs), w2: new Float32Array(hs * F) }));
    const grads = fresh();
    const r = bw.moeBackward(x, n, hs, idx, w, k, experts, dout, grads);
    const gateUp = new Float32Array(n * k * 2 * F);
    const slots = m1.moeExperts(x, n, hs, idx, k, experts, undefined, gateUp);
    const keptGrads = fresh();
    const kept = bw.moeBackward(x, n, hs, idx, w, k, experts, dout, keptGrads, { slots, gateUp });
    assert.ok(relErr(kept.dx, r.dx) < 1e-6 && relErr(kept.dweights, r.dweights) < 1e-6, "dx, dweights from the kept products");
    for (let e = 0; e < E; e++) {
      for (const part of ["w1", "w3", "w2"] as const) assert.ok(relErr(keptGrads[e][part], grads[e][part]) < 1e-6, `expert ${e} ${part}`);
    }
    // the SwiGLU products kept too (act): the same forward and the same gradients, bit for bit
    const act = new Float32Array(n * k * F);
    const gateUp2 = new Float32Array(n * k * 2 * F);
    assert.deepEqual(m1.moeExperts(x, n, hs, idx, k, experts, undefined, gateUp2, act), slots);
    assert.deepEqual(gateUp2, gateUp);
    const actGrads = fresh();
    const withAct = bw.moeBackward(x, n, hs, idx, w, k, experts, dout, actGrads, { slots, gateUp, act });
    assert.deepEqual(withAct, kept);
    assert.deepEqual(actGrads, keptGrads);
    const zeroActGrads = fresh(); // dW2 = dyᵀ act is read from act: zeros give zeros
    bw.moeBackward(x, n, hs, idx, w, k, experts, dout, zeroActGrads, { slots, gateUp, act: new Float32Array(n * k * F) });
    for (let e = 0; e < E; e++) assert.ok(zeroActGrads[e].w2.every((v) => v === 0) && zeroActGrads[e].w1.some((v) => v !== 0), `expert ${e}`);
    assert.throws(() => m1.moeExperts(x, n, hs, idx, k, experts, undefined, undefined, act), /act.*gateUp/);
    assert.throws(() => m1.moeExperts(x, n, hs, idx, k, experts, undefined, gateUp2, act.subarray(1)), /act/);
  });
}
