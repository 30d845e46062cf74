/**
 * Typed wrappers over the m1native addon (native/src). Every wrapper validates its arguments
 * (array types, lengths against the given dimensions) and throws a TypeError/RangeError naming the
 * argument; the addon validates again, so it never reads or writes out of bounds.
 */
import { existsSync } from "node:fs";
import { createRequire } from "node:module";
import { fileURLToPath } from "node:url";

export type WeightDType = "F32" | "BF16" | "F16";
/** A 2-D weight [rows, cols] (PyTorch Linear layout [out, in]); BF16/F16 data are raw 16-bit values. */
export interface Weight {
  readonly dtype: WeightDType;
  readonly data: Float32Array | Uint16Array;
  readonly shape: readonly number[];
}
export interface CpuInfo {
  isa: "avx512" | "avx2" | "scalar";
  supported: string[];
  avx512bf16: boolean;
  threads: number;
}
export interface ExpertWeights {
  w1: Weight;
  w3: Weight;
  w2: Weight;
}
export type Isa = CpuInfo["isa"];
/** The lightning attention of a decoder layer: weights as in the checkpoint. */
export interface LightningSpec {
  /** [3·heads·d, hidden], rows per head: q, k, v */
  qkv: Weight;
  /** [heads·d, hidden] */
  gate: Weight;
  /** [hidden, heads·d] */
  out: Weight;
  norm: Float32Array;
  normEps: number;
  slopes: Float32Array;
  blockSize: number;
}
/** The softmax attention of a decoder layer. */
export interface SoftmaxSpec {
  q: Weight;
  k: Weight;
  v: Weight;
  o: Weight;
  kvHeads: number;
  rotaryDim: number;
  theta: number;
}
/** A whole decoder layer (spec §2.4): one of `lightning` and `softmax`, then the MoE over every expert. */
export interface DecoderLayerSpec {
  hidden: number;
  heads: number;
  headDim: number;
  ln1: Float32Array;
  ln2: Float32Array;
  eps: number;
  /** h = alpha · residual + beta · attention; residual = ln1(x) when postnorm, else x */
  alpha: number;
  beta: number;
  postnorm: boolean;
  /** [experts, hidden] */
  router: Weight;
  topK: number;
  /** every expert of the layer */
  experts: readonly ExpertWeights[];
  /** out = mlpAlpha · residual + mlpBeta · moe; residual = ln2(h) when postnorm, else h */
  mlpAlpha: number;
  mlpBeta: number;
  lightning?: LightningSpec;
  softmax?: SoftmaxSpec;
}
/** A layer's decoding state: the lightning state, or the KV cache (the n new rows go to [length, length + n)). */
export type DecoderLayerCache =
  | { state: Float32Array }
  | { keys: Float32Array; values: Float32Array; length: number; position: number };
export interface DecoderLayer {
  /** x [n, hidden] → the residual stream after the layer; updates the cache. */
  forward(x: Float32Array, n: number, cache: DecoderLayerCache, out?: Float32Array): Float32Array;
}
/** The whole model (spec §2) over its decoder layers. */
export interface DecoderSpec {
  /** [vocab, hidden] */
  embed: Weight;
  /** the final norm [hidden] */
  norm: Float32Array;
  eps: number;
  /** [vocab, hidden] */
  lmHead: Weight;
  layers: readonly DecoderLayer[];
}
export interface Decoder {
  /** ids [n] → logits [rows, vocab] of the last `rows` positions; caches[l] (one per layer) are updated. */
  forward(ids: Int32Array, caches: readonly DecoderLayerCache[], rows: number): Float32Array;
}
/** The recycling pool behind large arrays the addon returns (bytes). */
export interface MemoryStats {
  /** held by arrays still alive in JavaScript */
  liveBytes: number;
  /** freed by the garbage collector and kept for reuse */
  pooledBytes: number;
  poolLimitBytes: number;
  /** allocations served from the pool / that mapped new memory */
  reused: number;
  fresh: number;
}

interface Binding {
  cpuInfo(): CpuInfo;
  fmaPeak(tasks: number, iters: number): number;
  bf16DotPeak(tasks: number, iters: number): number;
  readAll(src: Float32Array): number;
  copy(src: Float32Array, dst: Float32Array): void;
  empty(length: number): Float32Array;
  alignedBuffer(bytes: number): ArrayBuffer;
  memoryStats(): MemoryStats;
  releaseMemory(): void;
  setIsa(isa: string): void;
  setThreads(n: number): void;
  matmul(x: Float32Array, n: number, w: Weight, out?: Float32Array): Float32Array;
  rmsnorm(x: Float32Array, n: number, dim: number, weight: Float32Array, eps: number, out?: Float32Array): Float32Array;
  silu(x: Float32Array, out?: Float32Array): Float32Array;
  sigmoid(x: Float32Array, out?: Float32Array): Float32Array;
  swiglu(gate: Float32Array, up: Float32Array, out?: Float32Array): Float32Array;
  mul(a: Float32Array, b: Float32Array, out?: Float32Array): Float32Array;
  axpby(alpha: number, x: Float32Array, beta: number, y: Float32Array, out?: Float32Array): Float32Array;
  embedding(ids: Int32Array, table: Weight, out?: Float32Array): Float32Array;
  rope(x: Float32Array, n: number, heads: number, headDim: number, rotaryDim: number, positions: Int32Array, theta: number): void;
  lightningPrefill(q: Float32Array, k: Float32Array, v: Float32Array, n: number, heads: number, d: number,
    slopes: Float32Array, blockSize: number, state: Float32Array, out?: Float32Array): Float32Array;
  lightningStep(q: Float32Array, k: Float32Array, v: Float32Array, n: number, heads: number, d: number,
    slopes: Float32Array, state: Float32Array, out?: Float32Array): Float32Array;
  lightningPrefillQkv(qkv: Float32Array, n: number, heads: number, d: number, slopes: Float32Array, blockSize: number,
    state: Float32Array, out?: Float32Array): Float32Array;
  lightningStepQkv(qkv: Float32Array, n: number, heads: number, d: number, slopes: Float32Array, state: Float32Array,
    out?: Float32Array): Float32Array;
  splitQkv(qkv: Float32Array, n: number, heads: number, d: number): [Float32Array, Float32Array, Float32Array];
  attention(q: Float32Array, kCache: Float32Array, vCache: Float32Array, n: number, total: number, heads: number,
    kvHeads: number, d: number, scale: number, out?: Float32Array, probs?: Float32Array | null): Float32Array;
  routerTopk(logits: Float32Array, n: number, experts: number, k: number, idx: Int32Array, weights: Float32Array): void;
  moeExperts(x: Float32Array, n: number, hidden: number, idx: Int32Array, k: number,
    experts: ReadonlyArray<ExpertWeights | null | undefined>, out?: Float32Array): Float32Array;
  moe(x: Float32Array, n: number, hidden: number, idx: Int32Array, weights: Float32Array, k: number,
    experts: ReadonlyArray<ExpertWeights | null | undefined>, out?: Float32Array): Float32Array;
  weightedSum(slots: Float32Array, weights: Float32Array, n: number, k: number, dim: number, out?: Float32Array): Float32Array;
  DecoderLayer: new (spec: DecoderLayerSpec) => DecoderLayer;
  Decoder: new (spec: DecoderSpec) => Decoder;
}

/** The addon's path; M1_NATIVE_ADDON names another build of it (the AddressSanitizer one of `build.mjs --asan`). */
export const addonPath: string = process.env.M1_NATIVE_ADDON || fileURLToPath(new URL("./build/Release/m1native.node", import.meta.url));

function load(): Binding {
  const require = createRequire(import.meta.url);
  try {
    return require(addonPath) as Binding;
  } catch (e) {
    const cause = e instanceof Error ? e.message : String(e);
    // configuration errors raised by the addon itself (M1_ISA, M1_THREADS) are passed through
    if (existsSync(addonPath) && /^m1native: /.test(cause)) throw e;
    const what = existsSync(addonPath) ? `could not be loaded (${cause})` : "is not built";
    throw new Error(
      `m1native: the native addon ${addonPath} ${what}. ` +
        "Build it with `npm run build:native` (node native/build.mjs --force); " +
        "this needs g++ (or clang++), make, python3 and the Node headers (include/node).",
      { cause: e },
    );
  }
}

const native: Binding = load();

// ------------------------------------------------------------------ validation helpers
function checkDim(fn: string, name: string, v: number): number {
  if (typeof v !== "number") throw new TypeError(`${fn}: ${name} must be a number, got ${typeof v}`);
  if (!Number.isSafeInteger(v) || v < 0) throw new RangeError(`${fn}: ${name} must be a non-negative integer, got ${v}`);
  return v;
}

function num(fn: string, name: string, v: number, finite = true): number {
  if (typeof v !== "number") throw new TypeError(`${fn}: ${name} must be a number, got ${typeof v}`);
  if (finite && !Number.isFinite(v)) throw new RangeError(`${fn}: ${name} must be finite, got ${v}`);
  return v;
}

function f32(fn: string, name: string, a: unknown, len: number | null, expr = ""): Float32Array {
  if (!(a instanceof Float32Array)) throw new TypeError(`${fn}: ${name} must be a Float32Array, got ${describe(a)}`);
  if (len !== null && a.length !== len) {
    throw new RangeError(`${fn}: ${name} has ${a.length} elements, expected ${expr} = ${len}`);
  }
  return a;
}

function i32(fn: string, name: string, a: unknown, len: number | null, expr = ""): Int32Array {
  if (!(a instanceof Int32Array)) throw new TypeError(`${fn}: ${name} must be an Int32Array, got ${describe(a)}`);
  if (len !== null && a.length !== len) {
    throw new RangeError(`${fn}: ${name} has ${a.length} elements, expected ${expr} = ${len}`);
  }
  return a;
}

function optOut(fn: string, out: Float32Array | undefined | null, len: number, expr: string): void {
  if (out !== undefined && out !== null) f32(fn, "out", out, len, expr);
}

function describe(a: unknown): string {
  if (a === null) return "null";
  if (typeof a === "object") return (a as object).constructor?.name ?? "object";
  return typeof a;
}

/** Validates a Weight and returns [rows, cols]. */
function checkWeight(fn: string, name: string, w: Weight): [number, number] {
  if (w === null || typeof w !== "object") throw new TypeError(`${fn}: ${name} must be a Weight { dtype, data, shape }`);
  const { dtype, data, shape } = w;
  if (dtype !== "F32" && dtype !== "BF16" && dtype !== "F16") {
    throw new TypeError(`${fn}: ${name}.dtype must be "F32", "BF16" or "F16", got ${JSON.stringify(dtype)}`);
  }
  if (dtype === "F32" && !(data instanceof Float32Array)) {
    throw new TypeError(`${fn}: ${name}.data must be a Float32Array for dtype F32, got ${describe(data)}`);
  }
  if (dtype !== "F32" && !(data instanceof Uint16Array)) {
    throw new TypeError(`${fn}: ${name}.data must be a Uint16Array (raw 16-bit values) for dtype ${dtype}, got ${describe(data)}`);
  }
  if (!shape || shape.length !== 2) {
    throw new TypeError(`${fn}: ${name}.shape must be [rows, cols] (a 2-D weight), got [${shape ? Array.from(shape).join(", ") : ""}]`);
  }
  const rows = checkDim(fn, `${name}.shape[0]`, shape[0]);
  const cols = checkDim(fn, `${name}.shape[1]`, shape[1]);
  if (data.length !== rows * cols) {
    throw new RangeError(`${fn}: ${name}.data has ${data.length} elements, expected shape[0]*shape[1] = ${rows * cols}`);
  }
  return [rows, cols];
}

// ------------------------------------------------------------------ configuration
export function cpuInfo(): CpuInfo {
  return native.cpuInfo();
}

/** Arrays of 1 MiB and more that ops return come from a pool: once the garbage collector frees one, its memory
 *  (already mapped, so no page faults) serves the next array of about the same size. */
export function memoryStats(): MemoryStats {
  return native.memoryStats();
}

/** The longest array an op makes or takes (2^32 floats: V8's longest Float32Array on Node 20). */
export const MAX_ARRAY_LENGTH = 2 ** 32;

/** A new array for ops to write into, e.g. several outputs into parts of it. From 1 MiB on it comes from the pool and
 *  its contents are undefined (whatever an earlier array held) until written. */
export function empty(length: number): Float32Array {
  checkDim("empty", "length", length);
  return native.empty(length);
}

/** An ArrayBuffer starting on a cache line (on 2 MiB with huge pages requested from 2 MiB on), contents undefined:
 *  for weights read from disk, which decode GEMVs stream fastest from aligned rows. */
export function alignedBuffer(bytes: number): ArrayBuffer {
  checkDim("alignedBuffer", "bytes", bytes);
  return native.alignedBuffer(bytes);
}

/** Frees the pool's kept blocks and returns the C allocator's free memory to the system (arrays still alive are not
 *  affected). */
export function releaseMemory(): void {
  native.releaseMemory();
}

/** Forces a kernel path; throws if this CPU (or build) does not support it. */
export function setIsa(isa: Isa): void {
  if (isa !== "avx512" && isa !== "avx2" && isa !== "scalar") {
    throw new TypeError(`setIsa: isa must be "avx512", "avx2" or "scalar", got ${JSON.stringify(isa)}`);
  }
  native.setIsa(isa);
}

/** Total compute threads (the calling thread included). */
export function setThreads(n: number): void {
  checkDim("setThreads", "n", n);
  if (n < 1 || n > 1024) throw new RangeError(`setThreads: n must be in [1, 1024], got ${n}`);
  native.setThreads(n);
}

// ------------------------------------------------------------------ machine ceilings (benchmarks)
/** Runs `tasks` tasks of `iters` rounds of 16 independent vector FMAs on the thread pool (current ISA); returns the
 *  FLOPs done (2 per lane per FMA). Time it to get the FMA peak of this machine. */
export function fmaPeak(tasks: number, iters: number): number {
  checkDim("fmaPeak", "tasks", tasks);
  checkDim("fmaPeak", "iters", iters);
  return native.fmaPeak(tasks, iters);
}

/** The same with AVX512-BF16 dot products (VDPBF16PS, 4 FLOPs per lane); 0 where the CPU or build has none.
 *  The GEMMs do not use them: products of bf16 weights with f32 activations are only exact as three bf16 dot
 *  products per FMA (the activation split in three bf16 parts), slower than converting the weights to f32. */
export function bf16DotPeak(tasks: number, iters: number): number {
  checkDim("bf16DotPeak", "tasks", tasks);
  checkDim("bf16DotPeak", "iters", iters);
  return native.bf16DotPeak(tasks, iters);
}

/** Σ src, every element read once by the thread pool (for the read bandwidth). */
export function readAll(src: Float32Array): number {
  f32("readAll", "src", src, null);
  return native.readAll(src);
}

/** dst = src with a memcpy shared out to the thread pool (for the copy bandwidth). */
export function copy(src: Float32Array, dst: Float32Array): void {
  f32("copy", "src", src, null);
  f32("copy", "dst", dst, src.length, "src.length");
  native.copy(src, dst);
}

// ------------------------------------------------------------------ ops
/** out[n, rows] = x[n, cols] · wᵀ, f32 accumulation. */
export function matmul(x: Float32Array, n: number, w: Weight, out?: Float32Array): Float32Array {
  const fn = "matmul";
  checkDim(fn, "n", n);
  const [rows, cols] = checkWeight(fn, "w", w);
  f32(fn, "x", x, n * cols, "n*cols");
  optOut(fn, out, n * rows, "n*rows");
  return native.matmul(x, n, w, out);
}

/** per row of width dim: w ⊙ x / sqrt(mean(x²) + eps) */
export function rmsnorm(x: Float32Array, n: number, dim: number, weight: Float32Array, eps: number, out?: Float32Array): Float32Array {
  const fn = "rmsnorm";
  checkDim(fn, "n", n);
  checkDim(fn, "dim", dim);
  f32(fn, "x", x, n * dim, "n*dim");
  f32(fn, "weight", weight, dim, "dim");
  num(fn, "eps", eps);
  if (eps < 0) throw new RangeError(`${fn}: eps must be >= 0, got ${eps}`);
  optOut(fn, out, n * dim, "n*dim");
  return native.rmsnorm(x, n, dim, weight, eps, out);
}

export function silu(x: Float32Array, out?: Float32Array): Float32Array {
  f32("silu", "x", x, null);
  optOut("silu", out, x.length, "x.length");
  return native.silu(x, out);
}

export function sigmoid(x: Float32Array, out?: Float32Array): Float32Array {
  f32("sigmoid", "x", x, null);
  optOut("sigmoid", out, x.length, "x.length");
  return native.sigmoid(x, out);
}

/** silu(gate) ⊙ up */
export function swiglu(gate: Float32Array, up: Float32Array, out?: Float32Array): Float32Array {
  f32("swiglu", "gate", gate, null);
  f32("swiglu", "up", up, gate.length, "gate.length");
  optOut("swiglu", out, gate.length, "gate.length");
  return native.swiglu(gate, up, out);
}

export function mul(a: Float32Array, b: Float32Array, out?: Float32Array): Float32Array {
  f32("mul", "a", a, null);
  f32("mul", "b", b, a.length, "a.length");
  optOut("mul", out, a.length, "a.length");
  return native.mul(a, b, out);
}

/** out = alpha·x + beta·y */
export function axpby(alpha: number, x: Float32Array, beta: number, y: Float32Array, out?: Float32Array): Float32Array {
  num("axpby", "alpha", alpha, false);
  num("axpby", "beta", beta, false);
  f32("axpby", "x", x, null);
  f32("axpby", "y", y, x.length, "x.length");
  optOut("axpby", out, x.length, "x.length");
  return native.axpby(alpha, x, beta, y, out);
}

/** rows of table [vocab, dim] (any WeightDType) as f32; an id outside [0, vocab) throws RangeError naming the id and its index */
export function embedding(ids: Int32Array, table: Weight, out?: Float32Array): Float32Array {
  const fn = "embedding";
  i32(fn, "ids", ids, null);
  const [vocab, d] = checkWeight(fn, "table", table);
  for (let i = 0; i < ids.length; i++) {
    const id = ids[i];
    if (id < 0 || id >= vocab) throw new RangeError(`${fn}: ids[${i}] = ${id} is outside the vocabulary [0, ${vocab})`);
  }
  optOut(fn, out, ids.length * d, "ids.length*dim");
  return native.embedding(ids, table, out);
}

/** In place, NeoX rotate-half on the first rotaryDim dims of every head of x [n, heads, headDim];
 *  inv_freq_i = theta^(-2i/rotaryDim), i < rotaryDim/2; angle = positions[t]·inv_freq_i (computed in double);
 *  x'_i = x_i cos - x_{i+r/2} sin, x'_{i+r/2} = x_{i+r/2} cos + x_i sin; dims >= rotaryDim unchanged. */
export function rope(x: Float32Array, n: number, heads: number, headDim: number, rotaryDim: number, positions: Int32Array, theta: number): void {
  const fn = "rope";
  checkDim(fn, "n", n);
  checkDim(fn, "heads", heads);
  checkDim(fn, "headDim", headDim);
  checkDim(fn, "rotaryDim", rotaryDim);
  f32(fn, "x", x, n * heads * headDim, "n*heads*headDim");
  if (rotaryDim > headDim) throw new RangeError(`${fn}: rotaryDim (${rotaryDim}) must be <= headDim (${headDim})`);
  if (rotaryDim % 2 !== 0) throw new RangeError(`${fn}: rotaryDim must be even, got ${rotaryDim}`);
  i32(fn, "positions", positions, n, "n");
  num(fn, "theta", theta);
  if (!(theta > 0)) throw new RangeError(`${fn}: theta must be > 0, got ${theta}`);
  native.rope(x, n, heads, headDim, rotaryDim, positions, theta);
}

/** Validates the q/k/v (three [n, heads, d] arrays, or one packed [n, heads, 3, d] array), slopes, state and out. */
function lightningArgs(fn: string, qkv: Float32Array[], n: number, heads: number, d: number,
  slopes: Float32Array, state: Float32Array, out: Float32Array | undefined | null): void {
  checkDim(fn, "n", n);
  checkDim(fn, "heads", heads);
  checkDim(fn, "d", d);
  const len = n * heads * d;
  if (qkv.length === 1) f32(fn, "qkv", qkv[0], 3 * len, "n*heads*3*d");
  else qkv.forEach((a, i) => f32(fn, ["q", "k", "v"][i], a, len, "n*heads*d"));
  f32(fn, "slopes", slopes, heads, "heads");
  f32(fn, "state", state, heads * d * d, "heads*d*d");
  optOut(fn, out, len, "n*heads*d");
}

function checkBlockSize(fn: string, blockSize: number): void {
  checkDim(fn, "blockSize", blockSize);
  if (blockSize < 1 || blockSize > 4096) throw new RangeError(`${fn}: blockSize must be in [1, 4096], got ${blockSize}`);
}

/** Lightning attention, block-wise (spec §2.5.4). q,k,v: [n, heads, d] (already SiLU'd). state: [heads, d, d]
 *  (row = key dim, col = value dim), read as the initial state and overwritten with the final state.
 *  slopes[h] = s_h, decay λ = exp(-s). Returns out [n, heads, d]. */
export function lightningPrefill(q: Float32Array, k: Float32Array, v: Float32Array, n: number, heads: number, d: number,
  slopes: Float32Array, blockSize: number, state: Float32Array, out?: Float32Array): Float32Array {
  const fn = "lightningPrefill";
  lightningArgs(fn, [q, k, v], n, heads, d, slopes, state, out);
  checkBlockSize(fn, blockSize);
  return native.lightningPrefill(q, k, v, n, heads, d, slopes, blockSize, state, out);
}

/** Same contract, token-by-token recurrence S_t = λ S_{t-1} + k_tᵀ v_t ; o_t = q_t S_t. */
export function lightningStep(q: Float32Array, k: Float32Array, v: Float32Array, n: number, heads: number, d: number,
  slopes: Float32Array, state: Float32Array, out?: Float32Array): Float32Array {
  lightningArgs("lightningStep", [q, k, v], n, heads, d, slopes, state, out);
  return native.lightningStep(q, k, v, n, heads, d, slopes, state, out);
}

/** lightningPrefill reading q, k, v in place from the qkv projection's per-head interleaved layout
 *  [n, heads, 3, d] (spec §2.5.1): bit-identical to splitQkv followed by lightningPrefill. */
export function lightningPrefillQkv(qkv: Float32Array, n: number, heads: number, d: number, slopes: Float32Array,
  blockSize: number, state: Float32Array, out?: Float32Array): Float32Array {
  const fn = "lightningPrefillQkv";
  lightningArgs(fn, [qkv], n, heads, d, slopes, state, out);
  checkBlockSize(fn, blockSize);
  return native.lightningPrefillQkv(qkv, n, heads, d, slopes, blockSize, state, out);
}

/** lightningStep reading the interleaved [n, heads, 3, d] layout in place. */
export function lightningStepQkv(qkv: Float32Array, n: number, heads: number, d: number, slopes: Float32Array,
  state: Float32Array, out?: Float32Array): Float32Array {
  lightningArgs("lightningStepQkv", [qkv], n, heads, d, slopes, state, out);
  return native.lightningStepQkv(qkv, n, heads, d, slopes, state, out);
}

/** De-interleaves [n, heads, 3, d] (per head: q, k, v) into q, k, v [n, heads, d]. */
export function splitQkv(qkv: Float32Array, n: number, heads: number, d: number): { q: Float32Array; k: Float32Array; v: Float32Array } {
  const fn = "splitQkv";
  checkDim(fn, "n", n);
  checkDim(fn, "heads", heads);
  checkDim(fn, "d", d);
  f32(fn, "qkv", qkv, 3 * n * heads * d, "n*heads*3*d");
  const [q, k, v] = native.splitQkv(qkv, n, heads, d);
  return { q, k, v };
}

/** Causal GQA softmax attention for n new queries q [n, heads, d] at absolute positions total-n .. total-1,
 *  against kCache/vCache [capacity, kvHeads, d] whose first `total` rows are valid. Query head h uses kv head
 *  floor(h / (heads/kvHeads)). Returns out [n, heads, d]; if probs is given (length heads*n*total) the
 *  probabilities [heads, n, total] are written there (zeros above the causal diagonal). */
export function attention(q: Float32Array, kCache: Float32Array, vCache: Float32Array, n: number, total: number,
  heads: number, kvHeads: number, d: number, scale: number, out?: Float32Array, probs?: Float32Array | null): Float32Array {
  const fn = "attention";
  checkDim(fn, "n", n);
  checkDim(fn, "total", total);
  checkDim(fn, "heads", heads);
  checkDim(fn, "kvHeads", kvHeads);
  checkDim(fn, "d", d);
  num(fn, "scale", scale);
  if (heads < 1) throw new RangeError(`${fn}: heads must be >= 1, got ${heads}`);
  if (kvHeads < 1 || heads % kvHeads !== 0) {
    throw new RangeError(`${fn}: kvHeads (${kvHeads}) must be >= 1 and divide heads (${heads})`);
  }
  if (total < n) throw new RangeError(`${fn}: total (${total}) must be >= n (${n})`);
  f32(fn, "q", q, n * heads * d, "n*heads*d");
  const row = kvHeads * d;
  for (const [name, c] of [["kCache", kCache], ["vCache", vCache]] as const) {
    f32(fn, name, c, null);
    if (row > 0 && c.length % row !== 0) {
      throw new RangeError(`${fn}: ${name} has ${c.length} elements, not a multiple of kvHeads*d = ${row}`);
    }
    if (c.length < total * row) {
      throw new RangeError(`${fn}: ${name} has ${c.length} elements (${row ? c.length / row : 0} rows), expected at least total*kvHeads*d = ${total * row}`);
    }
  }
  optOut(fn, out, n * heads * d, "n*heads*d");
  if (probs !== undefined && probs !== null) f32(fn, "probs", probs, heads * n * total, "heads*n*total");
  return native.attention(q, kCache, vCache, n, total, heads, kvHeads, d, scale, out, probs);
}

/** Router: per row of logits [n, experts]: p = softmax (f32), top-k by p (ties → lower index), weights renormalised
 *  to sum 1. Writes idx [n, k] and weights [n, k] (descending p). */
export function routerTopk(logits: Float32Array, n: number, experts: number, k: number, idx: Int32Array, weights: Float32Array): void {
  const fn = "routerTopk";
  checkDim(fn, "n", n);
  checkDim(fn, "experts", experts);
  checkDim(fn, "k", k);
  if (experts < 1) throw new RangeError(`${fn}: experts must be >= 1, got ${experts}`);
  if (k < 1 || k > experts) throw new RangeError(`${fn}: k must be in [1, experts = ${experts}], got ${k}`);
  f32(fn, "logits", logits, n * experts, "n*experts");
  i32(fn, "idx", idx, n * k, "n*k");
  f32(fn, "weights", weights, n * k, "n*k");
  native.routerTopk(logits, n, experts, k, idx, weights);
}

/** Checks x, idx and the experts every slot is routed to (same intermediate size F for all of them). */
function checkExperts(fn: string, x: Float32Array, n: number, hidden: number, idx: Int32Array, k: number,
  experts: ReadonlyArray<ExpertWeights | null | undefined>): void {
  checkDim(fn, "n", n);
  checkDim(fn, "hidden", hidden);
  checkDim(fn, "k", k);
  f32(fn, "x", x, n * hidden, "n*hidden");
  i32(fn, "idx", idx, n * k, "n*k");
  if (!Array.isArray(experts)) throw new TypeError(`${fn}: experts must be an array of { w1, w3, w2 } (or null for unused experts)`);
  const checked = new Set<number>();
  let F = -1;
  for (let s = 0; s < idx.length; s++) {
    const e = idx[s];
    if (e < 0 || e >= experts.length) {
      throw new RangeError(`${fn}: idx[${s}] = ${e} is not an expert index (experts has ${experts.length} entries)`);
    }
    if (checked.has(e)) continue;
    const ex = experts[e];
    if (ex === null || ex === undefined) {
      throw new Error(`${fn}: expert ${e} is routed to (idx[${s}] = ${e}) but experts[${e}] is ${ex === null ? "null" : "undefined"}`);
    }
    const [f, h1] = checkWeight(fn, `experts[${e}].w1`, ex.w1);
    const [f3, h3] = checkWeight(fn, `experts[${e}].w3`, ex.w3);
    const [h2, f2] = checkWeight(fn, `experts[${e}].w2`, ex.w2);
    if (h1 !== hidden) throw new RangeError(`${fn}: experts[${e}].w1 has shape [${f}, ${h1}], expected [${f}, ${hidden}]`);
    if (f3 !== f || h3 !== hidden) throw new RangeError(`${fn}: experts[${e}].w3 has shape [${f3}, ${h3}], expected [${f}, ${hidden}]`);
    if (h2 !== hidden || f2 !== f) throw new RangeError(`${fn}: experts[${e}].w2 has shape [${h2}, ${f2}], expected [${hidden}, ${f}]`);
    if (F >= 0 && f !== F) throw new RangeError(`${fn}: experts[${e}] has intermediate size ${f}, other routed experts have ${F} (all must match)`);
    F = f;
    checked.add(e);
  }
}

/** SwiGLU experts for routed tokens. x [n, hidden]; idx [n, k]; experts[e] = { w1 [F, hidden] (gate), w3 [F, hidden] (up),
 *  w2 [hidden, F] (down) } or null/undefined for experts nobody is routed to. Returns the per-slot outputs [n, k, hidden]:
 *  slot (t, j) = W2_e (silu(W1_e x_t) ⊙ (W3_e x_t)), e = idx[t, j]. */
export function moeExperts(x: Float32Array, n: number, hidden: number, idx: Int32Array, k: number,
  experts: ReadonlyArray<ExpertWeights | null | undefined>, out?: Float32Array): Float32Array {
  checkExperts("moeExperts", x, n, hidden, idx, k, experts);
  optOut("moeExperts", out, n * k * hidden, "n*k*hidden");
  return native.moeExperts(x, n, hidden, idx, k, experts, out);
}

/** The whole MoE after the router: out[t, :] = Σ_j weights[t, j] · slot (t, j) of moeExperts, bit-identical to
 *  moeExperts followed by weightedSum, without the [n, k, hidden] slot array. */
export function moe(x: Float32Array, n: number, hidden: number, idx: Int32Array, weights: Float32Array, k: number,
  experts: ReadonlyArray<ExpertWeights | null | undefined>, out?: Float32Array): Float32Array {
  checkExperts("moe", x, n, hidden, idx, k, experts);
  f32("moe", "weights", weights, n * k, "n*k");
  optOut("moe", out, n * hidden, "n*hidden");
  return native.moe(x, n, hidden, idx, weights, k, experts, out);
}

/** out[t, :] = Σ_j weights[t, j] · slots[t, j, :]  (slots [n, k, dim]) */
export function weightedSum(slots: Float32Array, weights: Float32Array, n: number, k: number, dim: number, out?: Float32Array): Float32Array {
  const fn = "weightedSum";
  checkDim(fn, "n", n);
  checkDim(fn, "k", k);
  checkDim(fn, "dim", dim);
  f32(fn, "slots", slots, n * k * dim, "n*k*dim");
  f32(fn, "weights", weights, n * k, "n*k");
  optOut(fn, out, n * dim, "n*dim");
  return native.weightedSum(slots, weights, n, k, dim, out);
}

/**
 * A whole decoder layer as one native object (native/src/layer.h): weights validated and kept once, then each
 * forward call runs ln1, attention, the residual, ln2, the router, the routed experts and the MLP residual without
 * returning to JavaScript, bit-identical to the same ops called one by one. The addon names any wrong field.
 */
export function decoderLayer(spec: DecoderLayerSpec): DecoderLayer {
  return new native.DecoderLayer(spec);
}

/** The whole model as one native object over its layers: a forward call runs embedding, every layer, the final norm
 *  and the LM head without returning to JavaScript, bit-identical to the same ops called one by one. */
export function decoder(spec: DecoderSpec): Decoder {
  return new native.Decoder(spec);
}
