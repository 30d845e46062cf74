// Native addon vs plain float64 TypeScript references, under every supported ISA and 1 and 2 threads.
import { test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { createRequire } from "node:module";
import * as m1 from "../native/index.ts";
import { randF32, relErr, rng } from "./helpers.ts";

const TOL = 1e-6;

// ------------------------------------------------------------------ helpers
function assertClose(a: ArrayLike<number>, b: ArrayLike<number>, what: string, tol = TOL): void {
  const e = relErr(a, b);
  assert.ok(e < tol, `${what}: relative error ${e.toExponential(3)} >= ${tol}`);
}

function bf16ToF32(h: number): number {
  const dv = new DataView(new ArrayBuffer(4));
  dv.setUint32(0, h << 16);
  return dv.getFloat32(0);
}

function f16ToF32(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

/** Truncates f32 values to bf16 bit patterns. */
function toBf16(x: Float32Array): Uint16Array {
  const u = new Uint32Array(x.buffer, x.byteOffset, x.length);
  return Uint16Array.from(u, (v) => v >>> 16);
}

/** Random finite f16 bit patterns, subnormals included (|x| < 4). */
function randF16(len: number, seed: number): Uint16Array {
  const r = rng(seed);
  const a = new Uint16Array(len);
  for (let i = 0; i < len; i++) {
    const sign = r() < 0.5 ? 0x8000 : 0;
    const exp = Math.floor(r() * 17); // 0 (subnormal) .. 16
    const man = Math.floor(r() * 1024);
    a[i] = sign | (exp << 10) | man;
  }
  return a;
}

function decode(w: m1.Weight): Float64Array {
  if (w.dtype === "F32") return Float64Array.from(w.data as Float32Array);
  if (w.dtype === "BF16") return Float64Array.from(w.data as Uint16Array, bf16ToF32);
  return Float64Array.from(w.data as Uint16Array, f16ToF32);
}

function makeWeight(dtype: m1.WeightDType, rows: number, cols: number, seed: number, scale = 1): m1.Weight {
  if (dtype === "F16") return { dtype, data: randF16(rows * cols, seed), shape: [rows, cols] };
  const f = randF32(rows * cols, seed, -scale, scale);
  return { dtype, data: dtype === "F32" ? f : toBf16(f), shape: [rows, cols] };
}

const silu64 = (x: number) => x / (1 + Math.exp(-x));

// ------------------------------------------------------------------ references (float64)
function refMatmul(x: ArrayLike<number>, n: number, w: Float64Array, rows: number, cols: number): Float64Array {
  const out = new Float64Array(n * rows);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < rows; j++) {
      let s = 0;
      for (let k = 0; k < cols; k++) s += x[i * cols + k] * w[j * cols + k];
      out[i * rows + j] = s;
    }
  }
  return out;
}

function refLightning(q: Float32Array, k: Float32Array, v: Float32Array, n: number, heads: number, d: number,
  slopes: Float32Array, state0: Float32Array): { out: Float64Array; state: Float64Array } {
  const out = new Float64Array(n * heads * d);
  const state = Float64Array.from(state0);
  for (let h = 0; h < heads; h++) {
    const lam = Math.exp(-slopes[h]);
    const S = state.subarray(h * d * d, (h + 1) * d * d);
    for (let t = 0; t < n; t++) {
      const o = (t * heads + h) * d;
      for (let a = 0; a < d; a++) {
        for (let c = 0; c < d; c++) S[a * d + c] = lam * S[a * d + c] + k[o + a] * v[o + c];
      }
      for (let c = 0; c < d; c++) {
        let s = 0;
        for (let a = 0; a < d; a++) s += q[o + a] * S[a * d + c];
        out[o + c] = s;
      }
    }
  }
  return { out, state };
}

function refAttention(q: Float32Array, kc: Float32Array, vc: Float32Array, n: number, total: number, heads: number,
  kvHeads: number, d: number, scale: number): { out: Float64Array; probs: Float64Array } {
  const out = new Float64Array(n * heads * d);
  const probs = new Float64Array(heads * n * total);
  const group = heads / kvHeads;
  for (let h = 0; h < heads; h++) {
    const g = Math.floor(h / group);
    for (let t = 0; t < n; t++) {
      const vis = total - n + t + 1;
      const s = new Float64Array(vis);
      let mx = -Infinity;
      for (let j = 0; j < vis; j++) {
        let dot = 0;
        for (let c = 0; c < d; c++) dot += q[(t * heads + h) * d + c] * kc[(j * kvHeads + g) * d + c];
        s[j] = dot * scale;
        mx = Math.max(mx, s[j]);
      }
      let sum = 0;
      for (let j = 0; j < vis; j++) sum += (s[j] = Math.exp(s[j] - mx));
      for (let j = 0; j < vis; j++) {
        const p = s[j] / sum;
        probs[(h * n + t) * total + j] = p;
        for (let c = 0; c < d; c++) out[(t * heads + h) * d + c] += p * vc[(j * kvHeads + g) * d + c];
      }
    }
  }
  return { out, probs };
}

// ------------------------------------------------------------------ configurations
const info = m1.cpuInfo();
const defaultIsa = info.isa;
const defaultThreads = info.threads;
const configs: { isa: m1.Isa; threads: number }[] = [];
for (const isa of info.supported as m1.Isa[]) for (const threads of [1, 2]) configs.push({ isa, threads });

/** Runs body once per (isa, threads) configuration, as separate tests. */
function each(name: string, body: () => void | Promise<void>): void {
  for (const { isa, threads } of configs) {
    test(`${name} [${isa}, ${threads} thread${threads > 1 ? "s" : ""}]`, async () => {
      m1.setIsa(isa);
      m1.setThreads(threads);
      try {
        assert.equal(m1.cpuInfo().isa, isa);
        assert.equal(m1.cpuInfo().threads, threads);
        await body();
      } finally {
        m1.setIsa(defaultIsa);
        m1.setThreads(defaultThreads);
      }
    });
  }
}

test("cpuInfo reports the ISA, supported list and threads", () => {
  assert.ok(["avx512", "avx2", "scalar"].includes(info.isa));
  assert.ok(info.supported.includes("scalar"));
  assert.ok(info.supported.includes(info.isa));
  const chosen = process.env.M1_ISA;
  if (chosen) assert.equal(info.isa, chosen, "M1_ISA chooses the ISA");
  else assert.equal(info.supported[info.supported.length - 1], info.isa, "defaults to the best supported ISA");
  assert.equal(typeof info.avx512bf16, "boolean");
  assert.ok(Number.isInteger(info.threads) && info.threads >= 1);
});

// ------------------------------------------------------------------ matmul
const matmulCases: { n: number; rows: number; cols: number }[] = [
  { n: 1, rows: 67, cols: 67 },
  { n: 3, rows: 67, cols: 67 },
  { n: 4, rows: 33, cols: 300 },
  { n: 5, rows: 67, cols: 67 },
  { n: 20, rows: 67, cols: 300 }, // 17-64 rows: x transposed, W read in place
  { n: 64, rows: 40, cols: 67 },
  { n: 37, rows: 67, cols: 67 },
  { n: 37, rows: 130, cols: 300 }, // two k-panels (KC = 256), partial column panel
  { n: 200, rows: 70, cols: 520 }, // more rows than one MC block, three k-panels
];
const matmulData = new Map<string, { x: Float32Array; w: m1.Weight; ref: Float64Array }>();
function matmulCase(dtype: m1.WeightDType, c: { n: number; rows: number; cols: number }, seed: number) {
  const key = `${dtype}:${c.n}:${c.rows}:${c.cols}`;
  let e = matmulData.get(key);
  if (!e) {
    const x = randF32(c.n * c.cols, seed);
    const w = makeWeight(dtype, c.rows, c.cols, seed + 1);
    e = { x, w, ref: refMatmul(x, c.n, decode(w), c.rows, c.cols) };
    matmulData.set(key, e);
  }
  return e;
}

for (const dtype of ["F32", "BF16", "F16"] as const) {
  each(`matmul ${dtype}`, () => {
    matmulCases.forEach((c, i) => {
      const { x, w, ref } = matmulCase(dtype, c, 100 + i * 7);
      const out = m1.matmul(x, c.n, w);
      assert.equal(out.length, c.n * c.rows);
      assertClose(out, ref, `matmul ${dtype} n=${c.n} rows=${c.rows} cols=${c.cols}`);
      // into a caller-provided buffer (overwritten, not accumulated)
      const buf = new Float32Array(c.n * c.rows).fill(Number.NaN);
      assert.equal(m1.matmul(x, c.n, w, buf), buf);
      assertClose(buf, ref, `matmul ${dtype} (out) n=${c.n}`);
    });
  });
}

// A weight with an infinite and a NaN element (two outputs of every row non-finite).
function weightWithSpecials(dtype: m1.WeightDType, rows: number, cols: number, seed: number): m1.Weight {
  const w = makeWeight(dtype, rows, cols, seed);
  const [inf, nan] = dtype === "F32" ? [Infinity, Number.NaN] : dtype === "BF16" ? [0x7f80, 0x7fc1] : [0x7c00, 0x7e01];
  w.data[1 * cols + Math.min(3, cols - 1)] = inf;
  w.data[(rows - 2) * cols + cols - 1] = nan;
  return w;
}

// The bits of a, every NaN as one: x86 returns one of the NaN operands of an FMA or add, and which one depends on the
// instruction form the compiler picks (a NaN payload means nothing for the tokens).
function bitsNaNsAsOne(a: Float32Array): Uint32Array {
  const u = new Uint32Array(a.buffer.slice(a.byteOffset, a.byteOffset + a.byteLength));
  a.forEach((v, i) => {
    if (Number.isNaN(v)) u[i] = 0x7fc00000;
  });
  return u;
}

for (const dtype of ["F32", "BF16", "F16"] as const) {
  // the dot path (n <= 16) sums each output in one order, whatever the tile its row and weight row land in: the
  // bits that batched decode relies on. cols 5 and 67: a masked last step (5: nothing else); rows 67 and 203: tiles of
  // every width, the narrower tiles of a leftover, blocks of weight rows; rows of x with NaN, ±inf and an inf - inf.
  each(`matmul ${dtype}: every row of x gets the bits it gets alone, for 1 to 16 rows`, () => {
    for (const cols of [5, 67, 128, 256]) {
      for (const rows of [67, 203]) {
        const w = weightWithSpecials(dtype, rows, cols, 31 + cols);
        const x = randF32(16 * cols, 32 + rows);
        x[3 * cols + cols - 1] = Number.NaN;
        x[6 * cols] = Infinity;
        x[9 * cols] = -Infinity;
        x[9 * cols + cols - 1] = Infinity;
        const product = (n: number, first = 0) =>
          bitsNaNsAsOne(m1.matmul(x.subarray(first * cols, (first + n) * cols), n, w));
        const alone = Array.from({ length: 16 }, (_, i) => product(1, i));
        for (let n = 2; n <= 16; n++) {
          const out = product(n);
          for (let i = 0; i < n; i++) {
            const where = `n=${n} rows=${rows} cols=${cols}: row ${i}`;
            assert.deepEqual(out.subarray(i * rows, (i + 1) * rows), alone[i], where);
          }
        }
      }
    }
  });
}

test("matmul handles empty dimensions", () => {
  const w: m1.Weight = { dtype: "F32", data: new Float32Array(0), shape: [5, 0] };
  assert.deepEqual(Array.from(m1.matmul(new Float32Array(0), 3, w)), [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
  assert.equal(m1.matmul(new Float32Array(0), 0, { dtype: "F32", data: new Float32Array(12), shape: [3, 4] }).length, 0);
});

// ------------------------------------------------------------------ element-wise
each("silu, sigmoid, swiglu, mul, axpby", () => {
  const len = 1037;
  const x = randF32(len, 1, -12, 12);
  const y = randF32(len, 2, -3, 3);
  const ref = (f: (i: number) => number) => Float64Array.from({ length: len }, (_, i) => f(i));
  assertClose(m1.silu(x), ref((i) => silu64(x[i])), "silu");
  assertClose(m1.sigmoid(x), ref((i) => 1 / (1 + Math.exp(-x[i]))), "sigmoid");
  assertClose(m1.swiglu(x, y), ref((i) => silu64(x[i]) * y[i]), "swiglu");
  assertClose(m1.mul(x, y), ref((i) => x[i] * y[i]), "mul");
  assertClose(m1.axpby(0.75, x, -1.25, y), ref((i) => 0.75 * x[i] - 1.25 * y[i]), "axpby");
  // large elementwise arrays go through the thread pool
  const big = randF32(100_003, 3, -20, 20);
  assertClose(m1.silu(big), Float64Array.from(big, silu64), "silu (large)");
  // in place
  const z = x.slice();
  m1.sigmoid(z, z);
  assertClose(z, ref((i) => 1 / (1 + Math.exp(-x[i]))), "sigmoid in place");
  // extremes
  const ext = new Float32Array([-1000, -100, -88, 0, 88, 100, 1000, Number.NaN]);
  const s = m1.sigmoid(ext);
  assert.equal(s[0], 0);
  assert.equal(s[3], 0.5);
  assert.equal(s[6], 1);
  assert.ok(Number.isNaN(s[7]));
  const si = m1.silu(ext);
  assert.equal(Math.abs(si[0]), 0);
  assert.equal(si[6], 1000);
  assert.ok(si[1] <= 0 && si[1] > -1e-30, "silu(-100) is a tiny non-positive value");
  assert.ok(Number.isNaN(si[7]));
});

each("rmsnorm", () => {
  for (const [n, dim] of [[1, 67], [3, 67], [37, 130]]) {
    const x = randF32(n * dim, 10 + n, -4, 4);
    const w = randF32(dim, 20 + n, 0.5, 1.5);
    const eps = 1e-6;
    const ref = new Float64Array(n * dim);
    for (let t = 0; t < n; t++) {
      let ss = 0;
      for (let c = 0; c < dim; c++) ss += x[t * dim + c] ** 2;
      const r = 1 / Math.sqrt(ss / dim + eps);
      for (let c = 0; c < dim; c++) ref[t * dim + c] = w[c] * x[t * dim + c] * r;
    }
    assertClose(m1.rmsnorm(x, n, dim, w, eps), ref, `rmsnorm n=${n} dim=${dim}`);
    const inPlace = x.slice();
    m1.rmsnorm(inPlace, n, dim, w, eps, inPlace);
    assertClose(inPlace, ref, "rmsnorm in place");
  }
});

each("weightedSum", () => {
  const n = 37, k = 3, dim = 67;
  const slots = randF32(n * k * dim, 5);
  const w = randF32(n * k, 6, 0, 1);
  const ref = new Float64Array(n * dim);
  for (let t = 0; t < n; t++)
    for (let j = 0; j < k; j++)
      for (let c = 0; c < dim; c++) ref[t * dim + c] += w[t * k + j] * slots[(t * k + j) * dim + c];
  assertClose(m1.weightedSum(slots, w, n, k, dim), ref, "weightedSum");
});

// ------------------------------------------------------------------ embedding
each("embedding (F32, BF16, F16)", () => {
  const ids = new Int32Array([0, 5, 49, 17, 5, 33, 2]);
  for (const dtype of ["F32", "BF16", "F16"] as const) {
    const table = makeWeight(dtype, 50, 37, 42);
    const full = decode(table);
    const out = m1.embedding(ids, table);
    const ref = new Float64Array(ids.length * 37);
    ids.forEach((id, t) => ref.set(full.subarray(id * 37, (id + 1) * 37), t * 37));
    assert.deepEqual(Array.from(out), Array.from(ref), `embedding ${dtype} is exact`);
  }
});

each("16-bit conversions are exact for every bit pattern", () => {
  const all = Uint16Array.from({ length: 65536 }, (_, i) => i);
  const ids = Int32Array.from({ length: 4096 }, (_, i) => i);
  for (const [dtype, dec] of [["F16", f16ToF32], ["BF16", bf16ToF32]] as const) {
    const out = m1.embedding(ids, { dtype, data: all, shape: [4096, 16] });
    for (let i = 0; i < 65536; i++) {
      const want = dec(i);
      if (Number.isNaN(want)) assert.ok(Number.isNaN(out[i]), `${dtype} 0x${i.toString(16)} should be NaN`);
      else assert.ok(Object.is(out[i], Math.fround(want)), `${dtype} 0x${i.toString(16)}: got ${out[i]}, want ${want}`);
    }
  }
});

// ------------------------------------------------------------------ rope
each("rope (partial rotary, tail unchanged)", () => {
  const n = 7, heads = 3, headDim = 20, rotaryDim = 12;
  const positions = new Int32Array([0, 1, 2, 17, 255, 4096, 100000]);
  for (const theta of [1e4, 1e7]) {
    const x = randF32(n * heads * headDim, 77);
    const y = x.slice();
    m1.rope(y, n, heads, headDim, rotaryDim, positions, theta);
    const ref = Float64Array.from(x);
    const half = rotaryDim / 2;
    for (let t = 0; t < n; t++) {
      for (let h = 0; h < heads; h++) {
        const o = (t * heads + h) * headDim;
        for (let i = 0; i < half; i++) {
          const ang = positions[t] * theta ** (-2 * i / rotaryDim);
          const c = Math.cos(ang), s = Math.sin(ang);
          ref[o + i] = x[o + i] * c - x[o + i + half] * s;
          ref[o + i + half] = x[o + i + half] * c + x[o + i] * s;
        }
        for (let i = rotaryDim; i < headDim; i++) {
          assert.ok(Object.is(y[o + i], x[o + i]), `dim ${i} >= rotaryDim must be unchanged`);
        }
      }
    }
    assertClose(y, ref, `rope theta=${theta}`);
    // position 0 is the identity
    for (let i = 0; i < heads * headDim; i++) assert.ok(Math.abs(y[i] - x[i]) <= 1e-7 * Math.max(1, Math.abs(x[i])));
  }
  // rotaryDim = 64 wide heads exercise the vector path
  const x = randF32(3 * 2 * 128, 78);
  const y = x.slice();
  m1.rope(y, 3, 2, 128, 64, new Int32Array([5, 6, 7]), 1e7);
  for (let t = 0; t < 3; t++) {
    for (let h = 0; h < 2; h++) {
      const o = (t * 2 + h) * 128;
      for (let i = 0; i < 32; i++) {
        const ang = (5 + t) * 1e7 ** (-2 * i / 64);
        const want = x[o + i] * Math.cos(ang) - x[o + i + 32] * Math.sin(ang);
        assert.ok(Math.abs(y[o + i] - want) < 1e-6, "rope 128/64");
      }
      for (let i = 64; i < 128; i++) assert.ok(Object.is(y[o + i], x[o + i]));
    }
  }
});

// ------------------------------------------------------------------ lightning attention
const L = (() => {
  const n = 600, heads = 3, d = 20;
  const q = Float32Array.from(randF32(n * heads * d, 31, -2, 2), silu64);
  const k = Float32Array.from(randF32(n * heads * d, 32, -2, 2), silu64);
  const v = Float32Array.from(randF32(n * heads * d, 33, -2, 2), silu64);
  const slopes = new Float32Array([0.9, 0.1, 2 ** -8]);
  const state0 = randF32(heads * d * d, 34, -0.5, 0.5);
  return { n, heads, d, q, k, v, slopes, state0, ref: refLightning(q, k, v, n, heads, d, slopes, state0) };
})();

each("lightningPrefill == lightningStep == float64 recurrence (600 tokens, B=256, nonzero state)", () => {
  const { n, heads, d, q, k, v, slopes, state0, ref } = L;
  const sStep = state0.slice();
  const oStep = m1.lightningStep(q, k, v, n, heads, d, slopes, sStep);
  assertClose(oStep, ref.out, "step output vs f64");
  assertClose(sStep, ref.state, "step state vs f64");
  for (const B of [256, 7, 1000]) {
    const sPre = state0.slice();
    const oPre = m1.lightningPrefill(q, k, v, n, heads, d, slopes, B, sPre);
    assertClose(oPre, ref.out, `prefill B=${B} output vs f64`);
    assertClose(sPre, ref.state, `prefill B=${B} state vs f64`);
    assertClose(oPre, oStep, `prefill B=${B} vs step output`);
    assertClose(sPre, sStep, `prefill B=${B} vs step state`);
  }
  // prefill in two calls (the state carries over) equals one call
  const s2 = state0.slice();
  const cut = 300;
  const part = (a: Float32Array, lo: number, hi: number) => a.slice(lo * heads * d, hi * heads * d);
  const o1 = m1.lightningPrefill(part(q, 0, cut), part(k, 0, cut), part(v, 0, cut), cut, heads, d, slopes, 256, s2);
  const o2 = m1.lightningPrefill(part(q, cut, n), part(k, cut, n), part(v, cut, n), n - cut, heads, d, slopes, 256, s2);
  const joined = new Float32Array(n * heads * d);
  joined.set(o1);
  joined.set(o2, o1.length);
  assertClose(joined, ref.out, "prefill in two calls");
  assertClose(s2, ref.state, "prefill in two calls (state)");
});

each("lightning with d = 128 (full vector tiles) and decode steps", () => {
  const n = 70, heads = 2, d = 128;
  const q = Float32Array.from(randF32(n * heads * d, 41, -1, 1), silu64);
  const k = Float32Array.from(randF32(n * heads * d, 42, -1, 1), silu64);
  const v = Float32Array.from(randF32(n * heads * d, 43, -1, 1), silu64);
  const slopes = new Float32Array([0.917, 0.0039]);
  const state0 = randF32(heads * d * d, 44, -0.1, 0.1);
  const ref = refLightning(q, k, v, n, heads, d, slopes, state0);
  const s = state0.slice();
  assertClose(m1.lightningPrefill(q, k, v, n, heads, d, slopes, 32, s), ref.out, "prefill d=128");
  assertClose(s, ref.state, "prefill d=128 state");
  const s1 = state0.slice();
  const out = new Float32Array(n * heads * d);
  for (let t = 0; t < n; t++) {
    const sl = (a: Float32Array) => a.subarray(t * heads * d, (t + 1) * heads * d);
    m1.lightningStep(sl(q), sl(k), sl(v), 1, heads, d, slopes, s1, sl(out));
  }
  assertClose(out, ref.out, "decode steps d=128");
  assertClose(s1, ref.state, "decode steps d=128 state");
});

/** Interleaves q, k, v [n, heads, d] into the qkv projection's layout [n, heads, 3, d]. */
function interleave(q: Float32Array, k: Float32Array, v: Float32Array, rows: number, d: number): Float32Array {
  const qkv = new Float32Array(3 * rows * d);
  for (let r = 0; r < rows; r++) {
    qkv.set(q.subarray(r * d, (r + 1) * d), 3 * r * d);
    qkv.set(k.subarray(r * d, (r + 1) * d), (3 * r + 1) * d);
    qkv.set(v.subarray(r * d, (r + 1) * d), (3 * r + 2) * d);
  }
  return qkv;
}

each("splitQkv, lightningPrefillQkv and lightningStepQkv read the interleaved layout (bitwise = split first)", () => {
  const { n, heads, d, q, k, v, slopes, state0 } = L;
  const qkv = interleave(q, k, v, n * heads, d);
  const parts = m1.splitQkv(qkv, n, heads, d);
  assert.deepEqual(parts.q, q);
  assert.deepEqual(parts.k, k);
  assert.deepEqual(parts.v, v);
  for (const B of [256, 7]) {
    const sPlain = state0.slice(), sPacked = state0.slice();
    const plain = m1.lightningPrefill(q, k, v, n, heads, d, slopes, B, sPlain);
    const out = new Float32Array(n * heads * d).fill(Number.NaN);
    assert.equal(m1.lightningPrefillQkv(qkv, n, heads, d, slopes, B, sPacked, out), out);
    assert.deepEqual(out, plain, `prefill B=${B}`);
    assert.deepEqual(sPacked, sPlain, `prefill B=${B} state`);
  }
  const sPlain = state0.slice(), sPacked = state0.slice();
  assert.deepEqual(m1.lightningStepQkv(qkv, n, heads, d, slopes, sPacked), m1.lightningStep(q, k, v, n, heads, d, slopes, sPlain));
  assert.deepEqual(sPacked, sPlain);
  assert.throws(() => m1.lightningPrefillQkv(q, n, heads, d, slopes, 256, state0.slice()), { name: "RangeError", message: /qkv has \d+ elements, expected n\*heads\*3\*d/ });
});

// ------------------------------------------------------------------ softmax attention
each("attention: GQA prefill, chunked prefill and decode vs float64", () => {
  const heads = 4, kvHeads = 2, d = 24;
  const cases = [
    { n: 37, total: 37 },
    { n: 5, total: 70 },
    { n: 1, total: 50 },
    { n: 70, total: 150 }, // several key tiles and query blocks
  ];
  for (const { n, total } of cases) {
    const capacity = total + 3;
    const q = randF32(n * heads * d, 50 + n, -2, 2);
    const kc = randF32(capacity * kvHeads * d, 60 + n, -2, 2);
    const vc = randF32(capacity * kvHeads * d, 70 + n, -2, 2);
    kc.fill(Number.NaN, total * kvHeads * d); // rows past `total` must never be read
    vc.fill(Number.NaN, total * kvHeads * d);
    const scale = 1 / Math.sqrt(d);
    const ref = refAttention(q, kc, vc, n, total, heads, kvHeads, d, scale);
    const out = m1.attention(q, kc, vc, n, total, heads, kvHeads, d, scale);
    assertClose(out, ref.out, `attention n=${n} total=${total}`);
    const probs = new Float32Array(heads * n * total).fill(Number.NaN);
    const out2 = m1.attention(q, kc, vc, n, total, heads, kvHeads, d, scale, undefined, probs);
    assertClose(out2, ref.out, `attention with probs n=${n} total=${total}`);
    assertClose(probs, ref.probs, `probs n=${n} total=${total}`);
    for (let h = 0; h < heads; h++) {
      for (let t = 0; t < n; t++) {
        const row = probs.subarray((h * n + t) * total, (h * n + t + 1) * total);
        const vis = total - n + t + 1;
        let sum = 0;
        for (let j = 0; j < total; j++) {
          if (j >= vis) assert.equal(row[j], 0, `probs[${h}, ${t}, ${j}] above the diagonal`);
          sum += row[j];
        }
        assert.ok(Math.abs(sum - 1) < 1e-5, `probs row (${h}, ${t}) sums to ${sum}`);
      }
    }
  }
});

each("attention: scores far apart (online softmax rescaling) and d = 128", () => {
  const heads = 8, kvHeads = 1, d = 128, n = 20, total = 300;
  const q = randF32(n * heads * d, 90, -1, 1);
  const kc = randF32(total * kvHeads * d, 91, -1, 1);
  const vc = randF32(total * kvHeads * d, 92, -1, 1);
  // a late key with a large score forces the running max to move after earlier tiles
  for (let c = 0; c < d; c++) kc[(200 * kvHeads) * d + c] = q[c] * 30;
  const ref = refAttention(q, kc, vc, n, total, heads, kvHeads, d, 0.3);
  assertClose(m1.attention(q, kc, vc, n, total, heads, kvHeads, d, 0.3), ref.out, "attention d=128 shifted max");
});

each("attention: few queries against a long cache (key ranges merged), GQA 4:1 and 1:1", () => {
  const d = 16;
  for (const { heads, kvHeads, n, total } of [
    { heads: 4, kvHeads: 1, n: 1, total: 1300 },
    { heads: 2, kvHeads: 2, n: 3, total: 1100 },
    { heads: 8, kvHeads: 2, n: 1, total: 513 },
  ]) {
    const q = randF32(n * heads * d, 110 + total, -2, 2);
    const kc = randF32((total + 5) * kvHeads * d, 120 + total, -2, 2);
    const vc = randF32((total + 5) * kvHeads * d, 130 + total, -2, 2);
    kc.fill(Number.NaN, total * kvHeads * d);
    vc.fill(Number.NaN, total * kvHeads * d);
    // the largest scores sit in the last key range for some heads, in the first for others
    for (let c = 0; c < d; c++) {
      kc[(total - 2) * kvHeads * d + c] = 4 * q[c];
      kc[c] = 4 * q[(heads - 1) * d + c];
    }
    const ref = refAttention(q, kc, vc, n, total, heads, kvHeads, d, 0.25);
    assertClose(m1.attention(q, kc, vc, n, total, heads, kvHeads, d, 0.25), ref.out, `attention n=${n} total=${total} ${heads}:${kvHeads}`);
  }
});

// ------------------------------------------------------------------ router
each("routerTopk (softmax, top-k, renormalised, ties to the lower index)", () => {
  const n = 37, experts = 8;
  const logits = randF32(n * experts, 80, -3, 3);
  for (const k of [1, 2, 3]) {
    const idx = new Int32Array(n * k);
    const w = new Float32Array(n * k);
    m1.routerTopk(logits, n, experts, k, idx, w);
    const refW = new Float64Array(n * k);
    for (let t = 0; t < n; t++) {
      const row = Array.from(logits.subarray(t * experts, (t + 1) * experts));
      const mx = Math.max(...row);
      const e = row.map((x) => Math.exp(x - mx));
      const z = e.reduce((a, b) => a + b, 0);
      const p = e.map((x) => x / z);
      const order = p.map((x, i) => i).sort((a, b) => p[b] - p[a] || a - b).slice(0, k);
      const top = order.reduce((a, i) => a + p[i], 0);
      assert.deepEqual(Array.from(idx.subarray(t * k, (t + 1) * k)), order, `router idx row ${t}`);
      order.forEach((i, j) => (refW[t * k + j] = p[i] / top));
    }
    assertClose(w, refW, `router weights k=${k}`);
  }
  // ties: equal logits go to the lower index, weights split evenly
  const tie = new Float32Array([1, 3, 3, 0, 3, 2, 2, 2, 2, 2]);
  const idx = new Int32Array(4);
  const w = new Float32Array(4);
  m1.routerTopk(tie, 2, 5, 2, idx, w);
  assert.deepEqual(Array.from(idx), [1, 2, 0, 1]);
  assert.deepEqual(Array.from(w), [0.5, 0.5, 0.5, 0.5]);
});

// ------------------------------------------------------------------ MoE experts
function refExpert(x: Float32Array, t: number, hidden: number, e: { w1: Float64Array; w3: Float64Array; w2: Float64Array }, F: number): Float64Array {
  const h = new Float64Array(F);
  for (let f = 0; f < F; f++) {
    let g = 0, u = 0;
    for (let c = 0; c < hidden; c++) {
      g += x[t * hidden + c] * e.w1[f * hidden + c];
      u += x[t * hidden + c] * e.w3[f * hidden + c];
    }
    h[f] = silu64(g) * u;
  }
  const y = new Float64Array(hidden);
  for (let c = 0; c < hidden; c++) {
    let s = 0;
    for (let f = 0; f < F; f++) s += e.w2[c * F + f] * h[f];
    y[c] = s;
  }
  return y;
}

each("moeExperts vs reference (mixed dtypes, a null expert nobody routes to)", () => {
  const hidden = 20, F = 36, k = 2;
  const dtypes: m1.WeightDType[] = ["F32", "BF16", "F16", "F32", "BF16"];
  const experts: (m1.ExpertWeights | null)[] = dtypes.map((dt, e) => ({
    w1: makeWeight(dt, F, hidden, 200 + e, 0.5),
    w3: makeWeight(dt, F, hidden, 300 + e, 0.5),
    w2: makeWeight(dt, hidden, F, 400 + e, 0.5),
  }));
  experts[3] = null;
  const decoded = experts.map((e) => e && { w1: decode(e.w1), w3: decode(e.w3), w2: decode(e.w2) });
  for (const n of [1, 3, 37]) {
    const x = randF32(n * hidden, 500 + n);
    const r = rng(600 + n);
    const idx = new Int32Array(n * k);
    for (let s = 0; s < n * k; s++) idx[s] = [0, 1, 2, 4][Math.floor(r() * 4)];
    const out = m1.moeExperts(x, n, hidden, idx, k, experts);
    const ref = new Float64Array(n * k * hidden);
    for (let s = 0; s < n * k; s++) ref.set(refExpert(x, Math.floor(s / k), hidden, decoded[idx[s]]!, F), s * hidden);
    assertClose(out, ref, `moeExperts n=${n}`);
  }
  assert.throws(
    () => m1.moeExperts(new Float32Array(2 * hidden), 2, hidden, new Int32Array([0, 1, 3, 2]), k, experts),
    (e: Error) => /expert 3/.test(e.message) && /experts\[3\] is null/.test(e.message),
  );
});

each("moe == moeExperts + weightedSum (bitwise): decode, few rows per expert, GEMM groups, row blocks", () => {
  const hidden = 24, F = 40, k = 2, E = 6;
  const experts: m1.ExpertWeights[] = Array.from({ length: E }, (_, e) => ({
    w1: makeWeight(e % 2 ? "BF16" : "F32", F, hidden, 700 + e, 0.5),
    w3: makeWeight("F32", F, hidden, 710 + e, 0.5),
    w2: makeWeight(e % 3 ? "F32" : "F16", hidden, F, 720 + e, 0.5),
  }));
  const decoded = experts.map((e) => ({ w1: decode(e.w1), w3: decode(e.w3), w2: decode(e.w2) }));
  for (const n of [1, 5, 60, 1100]) {
    const x = randF32(n * hidden, 730 + n);
    const logits = randF32(n * E, 740 + n, -2, 2);
    if (n === 1100) for (let t = 0; t < n; t++) logits.set([9, 8], t * E); // > 1024 rows for experts 0 and 1
    const idx = new Int32Array(n * k);
    const w = new Float32Array(n * k);
    m1.routerTopk(logits, n, E, k, idx, w);
    const slots = m1.moeExperts(x, n, hidden, idx, k, experts);
    const combined = m1.moe(x, n, hidden, idx, w, k, experts);
    assert.deepEqual(combined, m1.weightedSum(slots, w, n, k, hidden), `moe n=${n}`);
    if (n <= 60) {
      const ref = new Float64Array(n * hidden);
      for (let t = 0; t < n; t++) {
        for (let j = 0; j < k; j++) {
          const y = refExpert(x, t, hidden, decoded[idx[t * k + j]], F);
          for (let c = 0; c < hidden; c++) ref[t * hidden + c] += w[t * k + j] * y[c];
        }
      }
      assertClose(combined, ref, `moe n=${n} vs f64`);
    }
  }
  // a wide model: tokens go through in chunks (of 2^22 slot values)
  {
    const wide = 2048, n = 1100, f = 8;
    const ex = [0, 1, 2].map((e) => ({ w1: makeWeight("F32", f, wide, 760 + e), w3: makeWeight("BF16", f, wide, 770 + e), w2: makeWeight("F32", wide, f, 780 + e) }));
    const x = randF32(n * wide, 790);
    const idx = Int32Array.from({ length: n * k }, (_, s) => (s % k === 0 ? s % 3 : (s + 1) % 3));
    const w = randF32(n * k, 791, 0, 1);
    assert.deepEqual(m1.moe(x, n, wide, idx, w, k, ex), m1.weightedSum(m1.moeExperts(x, n, wide, idx, k, ex), w, n, k, wide), "moe in chunks");
  }
  const odd = { ...experts[1], w1: makeWeight("F32", F + 1, hidden, 1, 0.5), w3: makeWeight("F32", F + 1, hidden, 2, 0.5), w2: makeWeight("F32", hidden, F + 1, 3, 0.5) };
  assert.throws(() => m1.moe(new Float32Array(hidden), 1, hidden, new Int32Array([0, 1]), new Float32Array(2), 2, [experts[0], odd]),
    { name: "RangeError", message: /experts\[1\] has intermediate size 41, other routed experts have 40/ });
});

// ------------------------------------------------------------------ threads
test("setThreads: more threads than cores still gives the same results", () => {
  const c = matmulCases[7];
  const { x, w, ref } = matmulCase("BF16", c, 100 + 7 * 7);
  try {
    m1.setThreads(5);
    assert.equal(m1.cpuInfo().threads, 5);
    assertClose(m1.matmul(x, c.n, w), ref, "matmul with 5 threads");
    const { n, heads, d, q, k, v, slopes, state0 } = L;
    const s = state0.slice();
    assertClose(m1.lightningPrefill(q, k, v, n, heads, d, slopes, 256, s), L.ref.out, "lightning with 5 threads");
  } finally {
    m1.setThreads(defaultThreads);
  }
});

each("results do not depend on the thread count (bitwise)", () => {
  const c = matmulCases[8];
  const { x, w } = matmulCase("F16", c, 100 + 8 * 7);
  const { n, heads, d, q, k, v, slopes, state0 } = L;
  const run = () => {
    const s = state0.slice();
    const o = m1.lightningPrefill(q, k, v, n, heads, d, slopes, 256, s);
    const aq = randF32(70 * 4 * 24, 7), ak = randF32(150 * 2 * 24, 8), av = randF32(150 * 2 * 24, 9);
    const dq = randF32(4 * 24, 10), dk = randF32(1200 * 2 * 24, 11);
    return [m1.matmul(x, c.n, w), m1.matmul(x.subarray(0, 40 * w.shape[1]), 40, w), o, s,
      m1.attention(aq, ak, av, 70, 150, 4, 2, 24, 0.2), m1.attention(dq, dk, dk, 1, 1200, 4, 2, 24, 0.2)];
  };
  const base = run();
  const threads = m1.cpuInfo().threads;
  try {
    for (const t of [1, 2, 3]) {
      m1.setThreads(t);
      run().forEach((r, i) => assert.deepEqual(r, base[i], `result ${i} with ${t} threads`));
    }
  } finally {
    m1.setThreads(threads);
  }
});

// ------------------------------------------------------------------ output pool and machine ceilings
test("large outputs are recycled after garbage collection, and fully overwritten", async () => {
  const v8 = await import("node:v8");
  const vm = await import("node:vm");
  v8.setFlagsFromString("--expose-gc");
  const gc = vm.runInNewContext("gc") as () => void;
  const n = 600, rows = 512, cols = 40; // out: 1.17 MiB, pooled
  const w = makeWeight("F32", rows, cols, 900);
  const x = randF32(n * cols, 901);
  const ref = refMatmul(x, n, decode(w), rows, cols);
  const settle = async () => {
    gc();
    await new Promise((resolve) => setTimeout(resolve, 5)); // finalizers run later on the event loop
  };
  await settle();
  m1.releaseMemory();
  let dirty: Float32Array | null = m1.silu(new Float32Array(n * rows).fill(3)); // a pooled array full of other values
  const live = m1.memoryStats().liveBytes;
  assert.equal(dirty.length, n * rows);
  dirty = null;
  for (let i = 0; i < 20 && m1.memoryStats().liveBytes > live - n * rows * 4; i++) await settle();
  const before = m1.memoryStats();
  assert.ok(before.pooledBytes >= n * rows * 4, `pooled ${before.pooledBytes}`);
  const out = m1.matmul(x, n, w);
  assert.equal(m1.memoryStats().reused, before.reused + 1);
  assertClose(out, ref, "matmul into a recycled block");
  assert.equal(m1.empty(10).length, 10);
  assert.equal(m1.empty(n * rows).length, n * rows);
  m1.releaseMemory();
  assert.equal(m1.memoryStats().pooledBytes, 0);
});

test("fmaPeak and bf16DotPeak count their FLOPs, readAll sums, copy copies", () => {
  // vector lanes and independent accumulators (as many as the registers hold) of each ISA
  const { lanes, accumulators } = { avx512: { lanes: 16, accumulators: 16 }, avx2: { lanes: 8, accumulators: 12 }, scalar: { lanes: 1, accumulators: 12 } }[m1.cpuInfo().isa];
  assert.equal(m1.fmaPeak(3, 1000), 3 * 1000 * accumulators * lanes * 2);
  const bf16 = m1.bf16DotPeak(3, 1000);
  assert.ok(bf16 === 0 || bf16 === 3 * 1000 * 16 * 16 * 4, `bf16DotPeak ${bf16}`);
  if (m1.cpuInfo().isa !== "avx512" || !m1.cpuInfo().avx512bf16) assert.equal(bf16, 0);
  const src = randF32(300_000, 950), dst = new Float32Array(src.length);
  assert.ok(Math.abs(m1.readAll(src) - src.reduce((a, b) => a + b, 0)) < 1e-6 * src.length);
  m1.copy(src, dst);
  assert.deepEqual(dst, src);
  assert.throws(() => m1.copy(src, new Float32Array(3)), { name: "RangeError", message: /copy: dst has 3 elements/ });
});

// ------------------------------------------------------------------ argument validation
test("argument validation names the argument", () => {
  const w: m1.Weight = { dtype: "F32", data: new Float32Array(4 * 64), shape: [4, 64] };
  assert.throws(() => m1.matmul(new Float32Array(100), 2, w), {
    name: "RangeError",
    message: "matmul: x has 100 elements, expected n*cols = 128",
  });
  assert.throws(() => m1.matmul(new Float32Array(128), 2, w, new Float32Array(7)), {
    name: "RangeError",
    message: "matmul: out has 7 elements, expected n*rows = 8",
  });
  assert.throws(() => m1.matmul(new Float64Array(128) as unknown as Float32Array, 2, w), { name: "TypeError", message: /matmul: x must be a Float32Array/ });
  assert.throws(() => m1.matmul(new Float32Array(128), 2, { dtype: "BF16", data: new Float32Array(256), shape: [4, 64] }), {
    name: "TypeError",
    message: /matmul: w\.data must be a Uint16Array/,
  });
  assert.throws(() => m1.matmul(new Float32Array(128), 2, { dtype: "F32", data: new Float32Array(255), shape: [4, 64] }), {
    name: "RangeError",
    message: /matmul: w\.data has 255 elements, expected shape\[0\]\*shape\[1\] = 256/,
  });
  assert.throws(() => m1.matmul(new Float32Array(128), 2.5, w), { name: "RangeError", message: /matmul: n must be a non-negative integer/ });
  const table: m1.Weight = { dtype: "BF16", data: new Uint16Array(50 * 8), shape: [50, 8] };
  assert.throws(() => m1.embedding(new Int32Array([1, 2, 50]), table), {
    name: "RangeError",
    message: "embedding: ids[2] = 50 is outside the vocabulary [0, 50)",
  });
  assert.throws(() => m1.embedding(new Int32Array([-1]), table), { name: "RangeError", message: /ids\[0\] = -1/ });
  assert.throws(() => m1.rmsnorm(new Float32Array(12), 3, 4, new Float32Array(5), 1e-5), {
    name: "RangeError",
    message: "rmsnorm: weight has 5 elements, expected dim = 4",
  });
  assert.throws(() => m1.swiglu(new Float32Array(3), new Float32Array(4)), { name: "RangeError", message: /swiglu: up has 4 elements/ });
  assert.throws(() => m1.attention(new Float32Array(8), new Float32Array(8), new Float32Array(8), 1, 1, 3, 2, 2, 1), {
    name: "RangeError",
    message: /attention: kvHeads \(2\) must be >= 1 and divide heads \(3\)/,
  });
  assert.throws(() => m1.attention(new Float32Array(8), new Float32Array(8), new Float32Array(8), 1, 3, 4, 2, 2, 1), {
    name: "RangeError",
    message: /attention: kCache has 8 elements \(2 rows\), expected at least total\*kvHeads\*d = 12/,
  });
  assert.throws(() => m1.attention(new Float32Array(8), new Float32Array(12), new Float32Array(12), 1, 3, 4, 2, 2, 1, undefined, new Float32Array(5)), {
    name: "RangeError",
    message: /attention: probs has 5 elements, expected heads\*n\*total = 12/,
  });
  assert.throws(() => m1.lightningStep(new Float32Array(8), new Float32Array(8), new Float32Array(8), 1, 2, 4, new Float32Array(2), new Float32Array(31)), {
    name: "RangeError",
    message: "lightningStep: state has 31 elements, expected heads*d*d = 32",
  });
  assert.throws(() => m1.lightningPrefill(new Float32Array(8), new Float32Array(8), new Float32Array(8), 1, 2, 4, new Float32Array(1), 256, new Float32Array(32)), {
    name: "RangeError",
    message: "lightningPrefill: slopes has 1 elements, expected heads = 2",
  });
  assert.throws(() => m1.rope(new Float32Array(16), 2, 2, 4, 6, new Int32Array(2), 1e4), { name: "RangeError", message: /rope: rotaryDim \(6\) must be <= headDim \(4\)/ });
  assert.throws(() => m1.rope(new Float32Array(16), 2, 2, 4, 4, new Int32Array(3), 1e4), { name: "RangeError", message: /rope: positions has 3 elements, expected n = 2/ });
  assert.throws(() => m1.routerTopk(new Float32Array(8), 2, 4, 5, new Int32Array(10), new Float32Array(10)), { name: "RangeError", message: /routerTopk: k must be in \[1, experts = 4\]/ });
  assert.throws(() => m1.routerTopk(new Float32Array(8), 2, 4, 2, new Int32Array(3), new Float32Array(4)), { name: "RangeError", message: "routerTopk: idx has 3 elements, expected n*k = 4" });
  assert.throws(() => m1.moeExperts(new Float32Array(4), 1, 4, new Int32Array([7, 0]), 2, [null]), { name: "RangeError", message: /moeExperts: idx\[0\] = 7 is not an expert index/ });
  assert.throws(() => m1.weightedSum(new Float32Array(10), new Float32Array(2), 1, 2, 4), { name: "RangeError", message: "weightedSum: slots has 10 elements, expected n*k*dim = 8" });
  assert.throws(() => m1.setIsa("sse" as m1.Isa), { name: "TypeError", message: /setIsa/ });
  assert.throws(() => m1.setThreads(0), { name: "RangeError", message: /setThreads: n must be in \[1, 1024\]/ });
});

test("the addon validates too when called directly (no out-of-bounds access)", () => {
  const raw = createRequire(import.meta.url)(m1.addonPath);
  const w = { dtype: "F32", data: new Float32Array(8), shape: [2, 4] };
  assert.throws(() => raw.matmul(new Float32Array(3), 2, w), { name: "RangeError", message: "matmul: x has 3 elements, expected n*cols = 8" });
  assert.throws(() => raw.matmul(new Float32Array(8), 2, { ...w, shape: [3, 4] }), { name: "RangeError", message: /w\.data has 8 elements/ });
  assert.throws(() => raw.matmul(new Float32Array(8), 2, { ...w, dtype: "I32" }), { name: "TypeError", message: /w\.dtype/ });
  assert.throws(() => raw.matmul(new Float32Array(8), -1, w), { name: "RangeError", message: /n must be a non-negative integer/ });
  assert.throws(() => raw.embedding(new Int32Array([2]), w), { name: "RangeError", message: "embedding: ids[0] = 2 is outside the vocabulary [0, 2)" });
  assert.throws(() => raw.attention(new Float32Array(8), new Float32Array(8), new Float32Array(8), 1, 3, 4, 2, 2, 1), { name: "RangeError", message: /kCache/ });
  assert.throws(() => raw.lightningPrefill(new Float32Array(8), new Float32Array(8), new Float32Array(8), 1, 2, 4, new Float32Array(2), 0, new Float32Array(32)), { name: "RangeError", message: /blockSize/ });
  assert.throws(() => raw.moeExperts(new Float32Array(4), 1, 4, new Int32Array([0]), 1, [undefined]), { message: /expert 0 is routed to .* experts\[0\] is undefined/ });
  assert.throws(() => raw.routerTopk(new Float32Array(8), 2, 4, 2, new Int32Array(4), new Float32Array(3)), { name: "RangeError", message: /weights has 3 elements/ });
  assert.throws(() => raw.silu(new Float32Array(4), new Float32Array(3)), { name: "RangeError", message: /out has 3 elements/ });
  // overlapping output (e.g. a view of the input) is rejected
  const buf = new Float32Array(16);
  assert.throws(() => raw.matmul(buf.subarray(0, 8), 2, { dtype: "F32", data: new Float32Array(8), shape: [2, 4] }, buf.subarray(4, 8)), { name: "RangeError", message: /out must not overlap x/ });
  assert.throws(() => raw.silu(buf.subarray(0, 8), buf.subarray(1, 9)), { name: "RangeError", message: /partially overlaps/ });
  assert.throws(() => raw.setIsa("avx9"), { name: "TypeError" });
});

test("M1_ISA and M1_THREADS are honoured at load; bad values fail with a clear message", () => {
  const probe = (env: Record<string, string>) =>
    spawnSync(process.execPath, ["-e", `const m = require(${JSON.stringify(m1.addonPath)}); console.log(JSON.stringify(m.cpuInfo()))`], {
      env: { ...process.env, ...env },
      encoding: "utf8",
    });
  const ok = probe({ M1_ISA: "scalar", M1_THREADS: "3" });
  assert.equal(ok.status, 0, ok.stderr);
  const ci = JSON.parse(ok.stdout);
  assert.equal(ci.isa, "scalar");
  assert.equal(ci.threads, 3);
  const bad = probe({ M1_ISA: "avx1024" });
  assert.notEqual(bad.status, 0);
  assert.match(bad.stderr, /M1_ISA=avx1024: unknown ISA/);
  const badT = probe({ M1_THREADS: "many" });
  assert.notEqual(badT.status, 0);
  assert.match(badT.stderr, /M1_THREADS=many is not a thread count/);
  if (!info.supported.includes("avx512")) {
    const uns = probe({ M1_ISA: "avx512" });
    assert.notEqual(uns.status, 0);
    assert.match(uns.stderr, /not supported/);
  }
});

// ------------------------------------------------------------------ decoder layer
/** A random decoder layer (hidden 32, 4 heads × 8, 2 KV heads, 4 experts top-2, intermediate 24). */
function layerSpec(kind: "lightning" | "softmax", dtype: m1.WeightDType): m1.DecoderLayerSpec {
  const hs = 32, nh = 4, d = 8, inner = nh * d, f = 24;
  let seed = 900;
  const w = (rows: number, cols: number) => makeWeight(dtype, rows, cols, seed++, 0.3);
  const spec: m1.DecoderLayerSpec = {
    hidden: hs, heads: nh, headDim: d,
    ln1: randF32(hs, seed++, 0.5, 1.5), ln2: randF32(hs, seed++, 0.5, 1.5), eps: 1e-5,
    alpha: 1.7, beta: 0.9, postnorm: true,
    router: w(4, hs), topK: 2,
    experts: Array.from({ length: 4 }, () => ({ w1: w(f, hs), w3: w(f, hs), w2: w(hs, f) })),
    mlpAlpha: 1.3, mlpBeta: 1.1,
  };
  if (kind === "lightning") {
    spec.lightning = { qkv: w(3 * inner, hs), gate: w(inner, hs), out: w(hs, inner), norm: randF32(inner, seed++, 0.5, 1.5), normEps: 1e-6,
      slopes: Float32Array.from([0.5, 0.25, 0.125, 0.0625]), blockSize: 2 };
  } else {
    spec.softmax = { q: w(inner, hs), k: w(2 * d, hs), v: w(2 * d, hs), o: w(hs, inner), kvHeads: 2, rotaryDim: 4, theta: 1e4 };
  }
  return spec;
}

/** The same layer as engine/layers.ts computes it when hooks listen: one op at a time. */
/** A softmax layer's cache as the native decoder takes it. */
type KvCache = { keys: Float32Array; values: Float32Array; length: number; position: number };

function layerByOps(s: m1.DecoderLayerSpec, x: Float32Array, n: number, cache: { state?: Float32Array; keys?: Float32Array; values?: Float32Array; length?: number; position?: number }): Float32Array {
  const { hidden: hs, heads: nh, headDim: d } = s;
  const a = m1.rmsnorm(x, n, hs, s.ln1, s.eps);
  let attn: Float32Array;
  if (s.lightning) {
    const l = s.lightning;
    const qkv = m1.silu(m1.matmul(a, n, l.qkv));
    const o = n === 1 ? m1.lightningStepQkv(qkv, n, nh, d, l.slopes, cache.state!) : m1.lightningPrefillQkv(qkv, n, nh, d, l.slopes, l.blockSize, cache.state!);
    m1.rmsnorm(o, n, nh * d, l.norm, l.normEps, o);
    const gate = m1.sigmoid(m1.matmul(a, n, l.gate));
    attn = m1.matmul(m1.mul(gate, o), n, l.out);
  } else {
    const sm = s.softmax!;
    const q = m1.matmul(a, n, sm.q), k = m1.matmul(a, n, sm.k), v = m1.matmul(a, n, sm.v);
    const positions = Int32Array.from({ length: n }, (_, t) => cache.position! + t);
    m1.rope(q, n, nh, d, sm.rotaryDim, positions, sm.theta);
    m1.rope(k, n, sm.kvHeads, d, sm.rotaryDim, positions, sm.theta);
    cache.keys!.set(k, cache.length! * sm.kvHeads * d);
    cache.values!.set(v, cache.length! * sm.kvHeads * d);
    const z = m1.attention(q, cache.keys!, cache.values!, n, cache.length! + n, nh, sm.kvHeads, d, 1 / Math.sqrt(d));
    attn = m1.matmul(z, n, sm.o);
  }
  const h = m1.axpby(s.alpha, s.postnorm ? a : x, s.beta, attn);
  const b = m1.rmsnorm(h, n, hs, s.ln2, s.eps);
  const logits = m1.matmul(b, n, s.router);
  const idx = new Int32Array(n * s.topK), weights = new Float32Array(n * s.topK);
  m1.routerTopk(logits, n, s.experts.length, s.topK, idx, weights);
  const mlp = m1.moe(b, n, hs, idx, weights, s.topK, s.experts);
  return m1.axpby(s.mlpAlpha, s.postnorm ? b : h, s.mlpBeta, mlp);
}

for (const kind of ["lightning", "softmax"] as const) {
  each(`decoderLayer (${kind}) equals its ops one by one, bit for bit, F32 and BF16, prefill then decode`, () => {
    for (const dtype of ["F32", "BF16"] as const) {
      const spec = layerSpec(kind, dtype);
      const layer = m1.decoderLayer(spec);
      const fused = { state: new Float32Array(4 * 8 * 8), keys: new Float32Array(8 * 16), values: new Float32Array(8 * 16), length: 0, position: 0 };
      const ops = { state: new Float32Array(4 * 8 * 8), keys: new Float32Array(8 * 16), values: new Float32Array(8 * 16), length: 0, position: 0 };
      for (const [step, n] of [3, 1, 1].entries()) {
        const x = randF32(n * 32, 40 + step);
        const got = layer.forward(x, n, kind === "lightning" ? fused.state : fused);
        const want = layerByOps(spec, x, n, ops);
        assert.deepEqual(got, want, `${dtype}, step ${step}`);
        for (const c of [fused, ops]) {
          c.length += n;
          c.position += n;
        }
      }
      assert.deepEqual(fused.state, ops.state);
      assert.deepEqual(fused.keys, ops.keys);
      assert.deepEqual(fused.values, ops.values);
    }
  });
}

test("decoderLayer names the field that is wrong", () => {
  const spec = layerSpec("softmax", "F32");
  const bad = (patch: Partial<m1.DecoderLayerSpec>) => () => m1.decoderLayer({ ...spec, ...patch });
  assert.throws(bad({ router: makeWeight("F32", 4, 31, 1) }), { name: "RangeError", message: "decoderLayer: spec.router has shape [4, 31], expected [4, 32]" });
  const experts = spec.experts.slice();
  experts[3] = { ...experts[3], w2: makeWeight("F32", 32, 23, 2) };
  assert.throws(bad({ experts }), { name: "RangeError", message: "decoderLayer: spec.experts[3].w2 has shape [32, 23], expected [32, 24]" });
  assert.throws(bad({ topK: 5 }), { name: "RangeError", message: /spec\.topK must be in \[1, experts = 4\], got 5/ });
  assert.throws(bad({ ln2: new Float32Array(3) }), { name: "RangeError", message: "decoderLayer: spec.ln2 has 3 elements, expected hidden = 32" });
  assert.throws(bad({ softmax: { ...spec.softmax!, kvHeads: 3 } }), { name: "RangeError", message: /spec\.softmax\.kvHeads \(3\) must be >= 1 and divide heads \(4\)/ });
  assert.throws(bad({ lightning: layerSpec("lightning", "F32").lightning }), { name: "TypeError", message: /exactly one of spec\.lightning and spec\.softmax/ });
  const { mlpBeta: _, ...noBeta } = spec;
  assert.throws(() => m1.decoderLayer(noBeta as m1.DecoderLayerSpec), { name: "TypeError", message: "decoderLayer: spec.mlpBeta is missing" });
  const layer = m1.decoderLayer(spec);
  const x = new Float32Array(2 * 32);
  const cache = { keys: new Float32Array(16 * 3), values: new Float32Array(16 * 3), length: 2, position: 2 };
  assert.throws(() => layer.forward(x, 2, cache), { name: "RangeError", message: "DecoderLayer.forward: cache.keys has room for 3 rows, expected at least length + n = 4" });
  assert.throws(() => layer.forward(x, 3, { ...cache, length: 0 }), { name: "RangeError", message: "DecoderLayer.forward: x has 64 elements, expected n*hidden = 96" });
  assert.throws(() => layer.forward(x.subarray(0, 32), 1, { keys: cache.keys, values: cache.values } as unknown as m1.DecoderLayerCache), { name: "TypeError", message: "DecoderLayer.forward: cache.length is missing" });
  assert.throws(() => layer.forward(x.subarray(0, 32), 1, new Float32Array(256)), { name: "TypeError", message: "DecoderLayer.forward: cache must be { keys, values, length, position }" });
  const shared = new Float32Array(16 * 4);
  assert.throws(() => layer.forward(x, 2, { keys: shared, values: shared, length: 0, position: 0 }), { name: "RangeError", message: /cache\.keys must not overlap cache\.values/ });
});

test("alignedBuffer gives writable memory of the asked size (checkpoint tensors are read into it)", () => {
  for (const bytes of [0, 4, 100, 3 << 20]) {
    const a = new Float32Array(m1.alignedBuffer(bytes));
    assert.equal(a.byteLength, bytes);
    a.fill(1.5);
    assert.equal(a.reduce((s, v) => s + v, 0), 1.5 * (bytes / 4));
  }
  assert.throws(() => m1.alignedBuffer(-1), { name: "RangeError", message: /alignedBuffer: bytes must be a non-negative integer/ });
});

each("decoder (embedding, a lightning and a softmax layer, final norm, LM head) equals its parts one by one, bit for bit", () => {
  const specs = [layerSpec("lightning", "BF16"), layerSpec("softmax", "F32")];
  const layers = specs.map((s) => m1.decoderLayer(s));
  const embed = makeWeight("BF16", 50, 32, 7), lmHead = makeWeight("F32", 50, 32, 8), norm = randF32(32, 9, 0.5, 1.5);
  const model = m1.decoder({ embed, norm, eps: 1e-5, lmHead, layers });
  const fresh = (): [Float32Array, KvCache] => [new Float32Array(4 * 8 * 8), { keys: new Float32Array(8 * 16), values: new Float32Array(8 * 16), length: 0, position: 0 }];
  const [a, b] = [fresh(), fresh()];
  for (const [step, ids] of [[3, 14, 49, 0], [7], [11]].entries()) {
    const n = ids.length;
    const rows = step === 0 ? n : 1;
    const got = model.forward(Int32Array.from(ids), a, rows);
    let x = m1.embedding(Int32Array.from(ids), embed);
    layers.forEach((layer, l) => (x = layer.forward(x, n, b[l])));
    const want = m1.matmul(m1.rmsnorm(x.subarray((n - rows) * 32), rows, 32, norm, 1e-5), rows, lmHead);
    assert.deepEqual(got, want, `step ${step}`);
    for (const c of [a[1], b[1]]) {
      c.length += n;
      c.position += n;
    }
  }
  assert.deepEqual(a, b);
  assert.equal(model.forward(Int32Array.from([1]), a, 0).length, 0);
});

each("decoder.forwardPacked: each sequence as if alone (one alone: forward's bits), caches updated, logits all/last/none", () => {
  const layers = [layerSpec("lightning", "BF16"), layerSpec("softmax", "F32")].map((s) => m1.decoderLayer(s));
  const embed = makeWeight("BF16", 50, 32, 7), lmHead = makeWeight("F32", 50, 32, 8), norm = randF32(32, 9, 0.5, 1.5);
  const model = m1.decoder({ embed, norm, eps: 1e-5, lmHead, layers });
  const fresh = (rows: number): [Float32Array, KvCache] => [new Float32Array(4 * 8 * 8), { keys: new Float32Array(16 * rows), values: new Float32Array(16 * rows), length: 0, position: 0 }];
  const ids = (n: number, seed: number) => Int32Array.from({ length: n }, (_, i) => (i * 7 + seed * 13) % 50);
  // spread over the threads (none longer than a thread's share), one after another, and one sequence
  for (const lengths of [[5, 3, 1, 6, 4, 5], [1, 20, 3], [9]]) {
    const seqs = lengths.map((n, s) => ids(n, s));
    const packedCaches = lengths.map(fresh), aloneCaches = lengths.map(fresh);
    const all = model.forwardPacked(Int32Array.from(seqs.flatMap((q) => [...q])), Int32Array.from(lengths), packedCaches, "all");
    let row = 0;
    seqs.forEach((q, s) => {
      const alone = model.forward(q, aloneCaches[s], q.length);
      const got = all.subarray(row * 50, (row + q.length) * 50);
      if (lengths.length === 1) assert.deepEqual(got, alone, "one sequence: forward's bits");
      else assertClose(got, alone, `sequence ${s} of ${lengths}`, 1e-5);
      assertClose(packedCaches[s][0], aloneCaches[s][0], `lightning state of sequence ${s}`, 1e-5);
      assertClose(packedCaches[s][1].keys, aloneCaches[s][1].keys, `keys of sequence ${s}`, 1e-5);
      row += q.length;
    });
    const flat = Int32Array.from(seqs.flatMap((q) => [...q]));
    const last = model.forwardPacked(flat, Int32Array.from(lengths), lengths.map(fresh), "last");
    assert.equal(last.length, lengths.length * 50);
    let end = 0;
    lengths.forEach((n, s) => {
      end += n;
      assertClose(last.subarray(s * 50, (s + 1) * 50), all.subarray((end - 1) * 50, end * 50), `last row of sequence ${s}`); // the LM head on fewer rows: other bits
    });
    assert.equal(model.forwardPacked(flat, Int32Array.from(lengths), lengths.map(fresh), "none").length, 0);
  }
});

each("decoder.forwardPacked rowwise: each sequence of at most DOT_ROWS ids gets forward's bits alone (logits, caches)", () => {
  const layers = [layerSpec("lightning", "BF16"), layerSpec("softmax", "F32")].map((s) => m1.decoderLayer(s));
  const embed = makeWeight("BF16", 50, 32, 7), lmHead = makeWeight("F32", 50, 32, 8), norm = randF32(32, 9, 0.5, 1.5);
  const model = m1.decoder({ embed, norm, eps: 1e-5, lmHead, layers });
  const fresh = (rows: number): [Float32Array, KvCache] => [new Float32Array(4 * 8 * 8), { keys: new Float32Array(16 * rows), values: new Float32Array(16 * rows), length: 0, position: 0 }];
  const ids = (n: number, seed: number) => Int32Array.from({ length: n }, (_, i) => (i * 7 + seed * 13) % 50);
  assert.equal(m1.DOT_ROWS, 16);
  // 40 sequences of 1 to 16 rows (shared out to the threads by sequences, several groups per thread); 5 sequences of
  // 14 rows in all and one of 16 alone (too few rows for that: each product's weight rows are shared out instead)
  for (const lengths of [Array.from({ length: 40 }, (_, s) => 1 + ((s * 5) % 16)), [3, 1, 4, 1, 5], [16]]) {
    const seqs = lengths.map((n, s) => ids(n, s));
    const flat = Int32Array.from(seqs.flatMap((q) => [...q]));
    const packedCaches = lengths.map(fresh), aloneCaches = lengths.map(fresh);
    const all = model.forwardPacked(flat, Int32Array.from(lengths), packedCaches, "all", true);
    const last = model.forwardPacked(flat, Int32Array.from(lengths), lengths.map(fresh), "last", true);
    let row = 0;
    seqs.forEach((q, s) => {
      const alone = model.forward(q, aloneCaches[s], q.length);
      assert.deepEqual(all.subarray(row * 50, (row + q.length) * 50), alone, `sequence ${s} of ${q.length} rows`);
      assert.deepEqual(last.subarray(s * 50, (s + 1) * 50), alone.subarray((q.length - 1) * 50), `last row of sequence ${s}`);
      assert.deepEqual(packedCaches[s], aloneCaches[s], `caches of sequence ${s}`);
      row += q.length;
    });
    assert.equal(model.forwardPacked(flat, Int32Array.from(lengths), lengths.map(fresh), "none", true).length, 0);
  }
  assert.throws(() => model.forwardPacked(Int32Array.from([1]), Int32Array.from([1]), [fresh(1)], "last", 1 as unknown as boolean), {
    name: "TypeError", message: "Decoder.forwardPacked: rowwise must be a boolean",
  });
});

each("decoder.forwardPackedAsync and stepBatchAsync: passes on threads of their own, side by side, give the bits of the passes on this thread", async () => {
  const layers = [layerSpec("lightning", "BF16"), layerSpec("softmax", "F32")].map((s) => m1.decoderLayer(s));
  const embed = makeWeight("BF16", 50, 32, 7), lmHead = makeWeight("F32", 50, 32, 8), norm = randF32(32, 9, 0.5, 1.5);
  const model = m1.decoder({ embed, norm, eps: 1e-5, lmHead, layers });
  const fresh = (): [Float32Array, KvCache] => [new Float32Array(4 * 8 * 8), { keys: new Float32Array(16 * 24), values: new Float32Array(16 * 24), length: 0, position: 0 }];
  const lengths = [[5, 3, 16, 1], [7, 2, 9]];
  const ids = lengths.map((part, p) => part.map((n, s) => Int32Array.from({ length: n }, (_, i) => (i * 7 + (p * 4 + s) * 13) % 50)));
  const here = lengths.map((part) => part.map(fresh)), away = lengths.map((part) => part.map(fresh));
  const packed = (p: number) => [Int32Array.from(ids[p].flatMap((q) => [...q])), Int32Array.from(lengths[p])] as const;
  const grow = (caches: ReturnType<typeof fresh>[], rows: number[]) => caches.forEach((c, s) => ((c[1].length += rows[s]), (c[1].position += rows[s])));
  // two prefills at once, then three steps of both parts at once, against the same passes one by one on this thread
  const prefilled = await Promise.all([0, 1].map((p) => model.forwardPackedAsync(...packed(p), away[p], "last", true)));
  [0, 1].forEach((p) => {
    assert.deepEqual(prefilled[p], model.forwardPacked(...packed(p), here[p], "last", true), `prefill of part ${p}`);
    grow(here[p], lengths[p]);
    grow(away[p], lengths[p]);
  });
  for (let step = 0; step < 3; step++) {
    const next = lengths.map((part, p) => Int32Array.from(part, (_, s) => (step * 11 + p * 5 + s * 3) % 50));
    const stepped = await Promise.all([0, 1].map((p) => model.stepBatchAsync(next[p], away[p])));
    [0, 1].forEach((p) => {
      assert.deepEqual(stepped[p], model.stepBatch(next[p], here[p]), `step ${step} of part ${p}`);
      grow(here[p], lengths[p].map(() => 1));
      grow(away[p], lengths[p].map(() => 1));
    });
  }
  assert.deepEqual(away, here, "caches");
  assert.throws(() => model.stepBatchAsync(Int32Array.from([50]), [fresh()]), { name: "RangeError", message: /Decoder\.stepBatchAsync: .*50/ });
  assert.throws(() => model.forwardPackedAsync(Int32Array.from([1, 2]), Int32Array.from([3]), [fresh()], "last", true), {
    message: "Decoder.forwardPackedAsync: lengths sum to 3, expected the number of ids (2)",
  });
});

test("decoder.forwardPacked names what is wrong", () => {
  const layer = m1.decoderLayer(layerSpec("lightning", "F32"));
  const model = m1.decoder({ embed: makeWeight("F32", 50, 32, 1), norm: new Float32Array(32), eps: 1e-5, lmHead: makeWeight("F32", 50, 32, 2), layers: [layer] });
  const cache = () => [new Float32Array(256)];
  const ids = Int32Array.from([3, 4, 5]);
  const E = (message: string) => ({ message: `Decoder.forwardPacked: ${message}` });
  assert.throws(() => model.forwardPacked(ids, Int32Array.from([2, 2]), [cache(), cache()], "all"), E("lengths sum to 4, expected the number of ids (3)"));
  assert.throws(() => model.forwardPacked(ids, Int32Array.from([3, 0]), [cache(), cache()], "all"), E("lengths[1] must be >= 1, got 0"));
  assert.throws(() => model.forwardPacked(ids, Int32Array.from([1, 2]), [cache()], "all"), E("caches must be an array of 2 sequences' caches (one per sequence)"));
  const shared = cache();
  assert.throws(() => model.forwardPacked(ids, Int32Array.from([1, 2]), [shared, shared], "all"), E("caches[1][0] is shared with an earlier sequence"));
  assert.throws(() => model.forwardPacked(ids, Int32Array.from([1, 2]), [cache(), [new Float32Array(3)]], "all"),
    E("caches[1][0] has 3 elements, expected heads*headDim*headDim = 256"));
  assert.throws(() => model.forwardPacked(ids, Int32Array.from([1, 2]), [cache(), [{} as m1.DecoderLayerCache]], "all"), E("caches[1][0] must be a Float32Array"));
  assert.throws(() => model.forwardPacked(ids, Int32Array.from([3]), [cache()], "first" as "all"), E('logits must be "all", "last" or "none", got "first"'));
});

test("decoder names what is wrong", () => {
  const layer = m1.decoderLayer(layerSpec("lightning", "F32"));
  const spec = { embed: makeWeight("F32", 50, 32, 1), norm: new Float32Array(32), eps: 1e-5, lmHead: makeWeight("F32", 50, 32, 2), layers: [layer] };
  assert.throws(() => m1.decoder({ ...spec, layers: [{} as m1.DecoderLayer] }), { name: "TypeError", message: "decoder: spec.layers[0] must be a DecoderLayer" });
  assert.throws(() => m1.decoder({ ...spec, lmHead: makeWeight("F32", 49, 32, 2) }), { name: "RangeError", message: "decoder: spec.lmHead has shape [49, 32], expected [50, 32]" });
  assert.throws(() => m1.decoder({ ...spec, embed: makeWeight("F32", 50, 16, 1) }), { name: "RangeError", message: "decoder: spec.layers[0] has hidden size 32, spec.embed has 16" });
  const model = m1.decoder(spec);
  const cache = [new Float32Array(256)];
  assert.throws(() => model.forward(Int32Array.from([3, 50]), cache, 1), { name: "RangeError", message: "Decoder.forward: ids[1] = 50 is outside the vocabulary [0, 50)" });
  assert.throws(() => model.forward(Int32Array.from([3]), [], 1), { name: "TypeError", message: "Decoder.forward: caches must be an array of 1 layer caches" });
  assert.throws(() => model.forward(Int32Array.from([3]), cache, 2), { name: "RangeError", message: "Decoder.forward: rows (2) must be <= the number of ids (1)" });
  assert.throws(() => model.forward(Int32Array.from([3]), [new Float32Array(255)], 1), { name: "RangeError", message: "Decoder.forward: caches[0] has 255 elements, expected heads*headDim*headDim = 256" });
});

// Arrays past 4 GiB used to be wrapped as external memory, which Node holds in a Buffer of at most 2^32 bytes: the
// failed wrap ran the finalizer and node-addon-api freed its data again ("double free detected in tcache 2",
// exit 134; Model.forward on 10M ids of mini-40k). Run in a child process, so that an abort fails only this test.
test("arrays past 4 GiB are made (untouched pages cost nothing), past 2^32 floats refused with a RangeError", () => {
  const script = `
    const m1 = await import(${JSON.stringify(new URL("../native/index.ts", import.meta.url).href)});
    const a = m1.empty(2 ** 30 + 16);
    a[a.length - 1] = 3;
    const w = new Float32Array(m1.alignedBuffer(2 ** 32 + 8));
    w[w.length - 1] = 7;
    let error = "";
    try { m1.empty(2 ** 32 + 1); } catch (e) { error = e.constructor.name + ": " + e.message; }
    console.log(JSON.stringify({ length: a.length, last: a[a.length - 1], bytes: w.byteLength, error }));`;
  const r = spawnSync(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script], { encoding: "utf8", timeout: 60_000 });
  assert.equal(r.status, 0, `child exited ${r.status} ${r.signal ?? ""}: ${r.stderr}`);
  const out = JSON.parse(r.stdout.trim().split("\n").pop()!);
  assert.deepEqual(out, {
    length: 2 ** 30 + 16, last: 3, bytes: 2 ** 32 + 8,
    error: "RangeError: empty: an array of 4294967297 floats is longer than the longest Float32Array (2^32 elements)",
  });
});
