// The machine's ceilings, measured in the same run as the figures compared with them: the FMA peak (a
// register-resident FMA loop on every pool thread), the copy and read bandwidths (a parallel memcpy of 1 GiB,
// a parallel sum over 1 GiB) and GEMM throughput. Every figure is the best of a few tries, so
// that a burst of other work on the machine does not decide it.
import fs from "node:fs";
import * as native from "../../native/index.ts";

export interface GemmResult {
  m: number;
  n: number;
  k: number;
  dtype: native.WeightDType;
  gflops: number;
  ms: number;
}

/** Best (largest) value of f over `tries` runs. */
function best(tries: number, f: () => number): number {
  let b = -Infinity;
  for (let i = 0; i < tries; i++) b = Math.max(b, f());
  return b;
}

function seconds(f: () => void): number {
  const t = process.hrtime.bigint();
  f();
  return Number(process.hrtime.bigint() - t) / 1e9;
}

export function cpuModel(): string {
  try {
    const info = fs.readFileSync("/proc/cpuinfo", "utf8");
    return /model name\s*:\s*(.*)/.exec(info)?.[1]?.trim() ?? "unknown";
  } catch {
    return "unknown";
  }
}

/** GFLOP/s of the FMA loop on all pool threads (about 0.1 s per try). */
export function fmaPeak(tries = 5): number {
  const tasks = 16 * native.cpuInfo().threads;
  native.fmaPeak(tasks, 1000); // wake the pool
  return best(tries, () => {
    let flops = 0;
    const s = seconds(() => (flops = native.fmaPeak(tasks, 200_000)));
    return flops / s / 1e9;
  });
}

/** GFLOP/s of AVX512-BF16 dot products on all pool threads (4 FLOPs per lane per VDPBF16PS); 0 without them. */
export function bf16DotPeak(tries = 5): number {
  const tasks = 16 * native.cpuInfo().threads;
  if (native.bf16DotPeak(tasks, 1000) === 0) return 0;
  return best(tries, () => {
    let flops = 0;
    const s = seconds(() => (flops = native.bf16DotPeak(tasks, 200_000)));
    return flops / s / 1e9;
  });
}

/** GB/s copied by a parallel memcpy of `bytes`: each byte counted once, as for a Float32Array.set of that size
 *  (the memory moves twice as much, read + write: STREAM's "copy" figure would be twice this). */
export function copyBandwidth(bytes = 2 ** 30, tries = 10): number {
  const src = new Float32Array(bytes / 4).fill(1);
  const dst = new Float32Array(bytes / 4).fill(2);
  native.copy(src, dst);
  return best(tries, () => bytes / seconds(() => native.copy(src, dst)) / 1e9);
}

/** GB/s read by a parallel sum over `bytes` (what a decode step does to the weights). */
export function readBandwidth(bytes = 2 ** 30, tries = 10): number {
  const src = new Float32Array(bytes / 4).fill(1);
  native.readAll(src);
  return best(tries, () => bytes / seconds(() => native.readAll(src)) / 1e9);
}

function randomF32(len: number, seed: number): Float32Array {
  const a = new Float32Array(len);
  let s = seed >>> 0 || 1;
  for (let i = 0; i < len; i++) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    a[i] = (s >>> 0) / 2 ** 31 - 1;
  }
  return a;
}

/** out[m, n] = x[m, k] · Wᵀ with W [n, k] of the given dtype (BF16: the f32 values truncated). */
export function gemm(m: number, n: number, k: number, dtype: native.WeightDType = "F32", tries = 7): GemmResult {
  const x = randomF32(m * k, 1);
  const wf = randomF32(n * k, 2);
  const w: native.Weight = dtype === "F32"
    ? { dtype, data: wf, shape: [n, k] }
    : { dtype, data: Uint16Array.from(new Uint32Array(wf.buffer), (u) => u >>> 16), shape: [n, k] };
  const out = new Float32Array(m * n);
  native.matmul(x, m, w, out);
  const s = -best(tries, () => -seconds(() => native.matmul(x, m, w, out)));
  return { m, n, k, dtype, gflops: (2 * m * n * k) / s / 1e9, ms: s * 1e3 };
}
