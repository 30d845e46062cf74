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
  /** bytes of the last-level cache one core reaches (0 where the system does not say) */
  cacheBytes: number;
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
/** A whole decoder layer (docs/architecture.md §3.3): one of `lightning` and `softmax`, then the MoE over every expert. */
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
/** A layer's decoding state: the lightning state itself ([heads, headDim, headDim]), or the KV cache (the n new rows
 *  go to [length, length + n)). */
export type DecoderLayerCache =
  | Float32Array
  | { keys: Float32Array; values: Float32Array; length: number; position: number };
export interface DecoderLayer {
  /** x [n, hidden] → the residual stream after the layer; updates the cache. */
  forward(x: Float32Array, n: number, cache: DecoderLayerCache, out?: Float32Array): Float32Array;
}
/** The whole model (docs/architecture.md §3) over its decoder layers. */
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
  /** Sequences packed row after row: sequence s is the next lengths[s] ids, on its layer caches caches[s] (each
   *  updated, a softmax layer's with room for lengths[s] more rows) → logits [rows, vocab] of every row ("all"), of
   *  each sequence's last row ("last") or none. The row-wise ops run once over all rows; attention and the
   *  lightning state stay within each sequence. `rowwise`: every product on the dot path, whose rows do not depend
   *  on each other, so that each sequence of at most DOT_ROWS ids gets the bits of its pass alone. */
  forwardPacked(ids: Int32Array, lengths: Int32Array, caches: readonly (readonly DecoderLayerCache[])[], logits: "all" | "last" | "none", rowwise?: boolean): Float32Array;
  /** One decode step of B sequences: ids [B] (one new token each), caches[s] sequence s's layer caches (a softmax
   *  layer's with room for one more row) → logits [B, vocab]; each row has the bits that `forward` of that token on
   *  that sequence alone gives. */
  stepBatch(ids: Int32Array, caches: readonly (readonly DecoderLayerCache[])[]): Float32Array;
  /** forwardPacked on a thread of its own with single-threaded kernels (the same bits): the event loop stays free and
   *  such passes over other sequences run side by side, one per core. Nothing may touch these caches until it settles. */
  forwardPackedAsync(ids: Int32Array, lengths: Int32Array, caches: readonly (readonly DecoderLayerCache[])[], logits: "all" | "last" | "none", rowwise?: boolean): Promise<Float32Array>;
  /** stepBatch on a thread of its own, as forwardPackedAsync. */
  stepBatchAsync(ids: Int32Array, caches: readonly (readonly DecoderLayerCache[])[]): Promise<Float32Array>;
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
  adamw(p: Float32Array, g: Float32Array, m: Float32Array, v: Float32Array, gradScale: number, beta1: number, beta2: number,
    decay: number, stepSize: number, invSqrtBc2: number, eps: number, bf16?: Uint16Array): void;
  sumSquares(x: Float32Array): number;
  descendingOrder(logits: Float32Array, order: Int32Array): boolean;
  sampleRow(logits: Float32Array, temperature: number, topK: number, topP: number, uniform: number, order?: Int32Array): number;
  sampleRows(rows: readonly Float32Array[], temperature: Float64Array, topK: Int32Array, topP: Float64Array, uniform: Float64Array): Int32Array;
  empty(length: number): Float32Array;
  alignedBuffer(bytes: number): ArrayBuffer;
  memoryStats(): MemoryStats;
  expertRowsComputed(): number;
  releaseMemory(): void;
  setIsa(isa: Isa): void;
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
    experts: ReadonlyArray<ExpertWeights | null | undefined>, out?: Float32Array, gateUp?: Float32Array, act?: Float32Array): Float32Array;
  moe(x: Float32Array, n: number, hidden: number, idx: Int32Array, weights: Float32Array, k: number,
    experts: ReadonlyArray<ExpertWeights | null | undefined>, out?: Float32Array): Float32Array;
  weightedSum(slots: Float32Array, weights: Float32Array, n: number, k: number, dim: number, out?: Float32Array): Float32Array;
  DecoderLayer: new (spec: DecoderLayerSpec) => DecoderLayer;
  Decoder: new (spec: DecoderSpec) => Decoder;
  dotRows: number;
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

// The addon checks every argument (native/src/args.h), naming the function and the argument in its errors
// ("matmul: x has 3 elements, expected n*cols = 8"), so these functions hand their arguments straight to it.

// ------------------------------------------------------------------ configuration
/** The kernel path in use, the paths this CPU and build support, and the thread count. */
export const cpuInfo: Binding["cpuInfo"] = native.cpuInfo;

/** Arrays of 64 KiB and more that ops return come from a pool: once the garbage collector frees one, its memory
 *  (already mapped, so no page faults) serves the next array of about the same size. */
export const memoryStats: Binding["memoryStats"] = native.memoryStats;
/** Expert rows (token, expert slots) the MoE has computed since the addon loaded, in every path: a slot whose weight
 *  is 0 (dropped by an expert threshold) is skipped when only the weighted sum is wanted, and is not counted. */
export const expertRowsComputed: Binding["expertRowsComputed"] = native.expertRowsComputed;
/** Rows up to which a product takes the dot path (each row computed alone, its bits independent of the others);
 *  more rows take the packed GEMM. A pass of at most this many tokens has every product on the dot path. */
export const DOT_ROWS: number = native.dotRows;

/** The longest array an op makes or takes (2^32 floats: V8's longest Float32Array on Node 20). */
export const MAX_ARRAY_LENGTH = 2 ** 32;

/** A new array for ops to write into, e.g. several outputs into parts of it. From 64 KiB on it comes from the pool and
 *  its contents are undefined (whatever an earlier array held) until written. */
export const empty: Binding["empty"] = native.empty;

/** An ArrayBuffer starting on a cache line (on 2 MiB with huge pages requested from 2 MiB on), contents undefined:
 *  for weights read from disk, which decode GEMVs stream fastest from aligned rows. */
export const alignedBuffer: Binding["alignedBuffer"] = native.alignedBuffer;

/** Frees the pool's kept blocks and returns the C allocator's free memory to the system (arrays still alive are not
 *  affected). */
export const releaseMemory: Binding["releaseMemory"] = native.releaseMemory;

/** Forces a kernel path; throws if this CPU (or build) does not support it. */
export const setIsa: Binding["setIsa"] = native.setIsa;

/** Total compute threads (the calling thread included). */
export const setThreads: Binding["setThreads"] = native.setThreads;

// ------------------------------------------------------------------ machine ceilings (benchmarks)
/** Runs `tasks` tasks of `iters` rounds of 12 independent vector FMAs (16 on AVX-512) on the thread pool (current
 *  ISA); returns the FLOPs done (2 per lane per FMA). Time it to get the FMA peak of this machine. */
export const fmaPeak: Binding["fmaPeak"] = native.fmaPeak;

/** The same with AVX512-BF16 dot products (VDPBF16PS, 4 FLOPs per lane); 0 where the CPU or build has none.
 *  The GEMMs do not use them: products of bf16 weights with f32 activations are only exact as three bf16 dot
 *  products per FMA (the activation split in three bf16 parts), slower than converting the weights to f32. */
export const bf16DotPeak: Binding["bf16DotPeak"] = native.bf16DotPeak;

/** Σ src, every element read once by the thread pool (for the read bandwidth). */
export const readAll: Binding["readAll"] = native.readAll;

/** dst = src with a memcpy shared out to the thread pool (for the copy bandwidth). */
export const copy: Binding["copy"] = native.copy;

// ------------------------------------------------------------------ optimiser
/** The constants of one AdamW step for one parameter (engine/train/optimizer.ts derives them). */
export interface AdamwStep {
  gradScale: number;
  beta1: number;
  beta2: number;
  decay: number;
  stepSize: number;
  invSqrtBc2: number;
  eps: number;
}

/** One AdamW update in place (f32 arithmetic, on the pool): g' = g·gradScale, m ← β1·m + (1−β1)·g',
 *  v ← β2·v + (1−β2)·g'², p ← p·decay − stepSize · m / (√v · invSqrtBc2 + eps); `bf16`, when given, gets the new p
 *  rounded to nearest-even in the same pass (as f32IntoBf16 rounds). */
export function adamw(p: Float32Array, g: Float32Array, m: Float32Array, v: Float32Array, s: AdamwStep, bf16?: Uint16Array): void {
  native.adamw(p, g, m, v, s.gradScale, s.beta1, s.beta2, s.decay, s.stepSize, s.invSqrtBc2, s.eps, bf16);
}

/** Σ x² accumulated in double, on the pool. */
export const sumSquares: Binding["sumSquares"] = native.sumSquares;

/** Writes into `order` the ids of `logits` by descending logit, equal logits (and -0, +0) by ascending id, and returns
 *  true; returns false, `order` untouched, when a logit is NaN. A radix sort: linear in the vocabulary. */
export const descendingOrder: Binding["descendingOrder"] = native.descendingOrder;

/** The token a sampler picks from a row of logits (engine/sampling.ts's Sampler, whose contract this is): temperature
 *  0 the argmax (ties to the lower id); else the candidates in descendingOrder, the first topK (0: all), p_i =
 *  exp((l_i - l_max) / temperature) in double, summed in that order, the first candidates whose running share of the
 *  sum reaches topP, and r = uniform · (their sum) walked down them to the token where it falls below 0 (the last
 *  kept one if rounding leaves it at or above 0). -1 when the row is sampled and a logit is NaN: give `order`, the
 *  candidates' order to take instead of sorting (the comparator order). */
export const sampleRow: Binding["sampleRow"] = native.sampleRow;

/** sampleRow of every row (Float32Arrays of one length), the options one entry per row, the rows shared out to the
 *  thread pool → each row's token (-1 as sampleRow: that row needs its `order`). */
export const sampleRows: Binding["sampleRows"] = native.sampleRows;

// ------------------------------------------------------------------ ops
/** out[n, rows] = x[n, cols] · wᵀ, f32 accumulation. */
export const matmul: Binding["matmul"] = native.matmul;

/** per row of width dim: w ⊙ x / sqrt(mean(x²) + eps) */
export const rmsnorm: Binding["rmsnorm"] = native.rmsnorm;

/** x · sigmoid(x) */
export const silu: Binding["silu"] = native.silu;

/** 1 / (1 + e^-x) */
export const sigmoid: Binding["sigmoid"] = native.sigmoid;

/** silu(gate) ⊙ up */
export const swiglu: Binding["swiglu"] = native.swiglu;

/** a ⊙ b */
export const mul: Binding["mul"] = native.mul;

/** out = alpha·x + beta·y */
export const axpby: Binding["axpby"] = native.axpby;

/** rows of table [vocab, dim] (any WeightDType) as f32; an id outside [0, vocab) throws RangeError naming the id and its index */
export const embedding: Binding["embedding"] = native.embedding;

/** In place, NeoX rotate-half on the first rotaryDim dims of every head of x [n, heads, headDim];
 *  inv_freq_i = theta^(-2i/rotaryDim), i < rotaryDim/2; angle = positions[t]·inv_freq_i (computed in double);
 *  x'_i = x_i cos - x_{i+r/2} sin, x'_{i+r/2} = x_{i+r/2} cos + x_i sin; dims >= rotaryDim unchanged. */
export const rope: Binding["rope"] = native.rope;

/** Lightning attention, block-wise (docs/architecture.md §3.4.4). q,k,v: [n, heads, d] (already SiLU'd). state: [heads, d, d]
 *  (row = key dim, col = value dim), read as the initial state and overwritten with the final state.
 *  slopes[h] = s_h, decay λ = exp(-s). Returns out [n, heads, d]. */
export const lightningPrefill: Binding["lightningPrefill"] = native.lightningPrefill;

/** Same contract, token-by-token recurrence S_t = λ S_{t-1} + k_tᵀ v_t ; o_t = q_t S_t. */
export const lightningStep: Binding["lightningStep"] = native.lightningStep;

/** lightningPrefill reading q, k, v in place from the qkv projection's per-head interleaved layout
 *  [n, heads, 3, d] (docs/architecture.md §3.4.1): bit-identical to splitQkv followed by lightningPrefill. */
export const lightningPrefillQkv: Binding["lightningPrefillQkv"] = native.lightningPrefillQkv;

/** lightningStep reading the interleaved [n, heads, 3, d] layout in place. */
export const lightningStepQkv: Binding["lightningStepQkv"] = native.lightningStepQkv;

/** De-interleaves [n, heads, 3, d] (per head: q, k, v) into q, k, v [n, heads, d]. */
export function splitQkv(qkv: Float32Array, n: number, heads: number, d: number): { q: Float32Array; k: Float32Array; v: Float32Array } {
  const [q, k, v] = native.splitQkv(qkv, n, heads, d);
  return { q, k, v };
}

/** Causal GQA softmax attention for n new queries q [n, heads, d] at absolute positions total-n .. total-1,
 *  against kCache/vCache [capacity, kvHeads, d] whose first `total` rows are valid. Query head h uses kv head
 *  floor(h / (heads/kvHeads)). Returns out [n, heads, d]; if probs is given (length heads*n*total) the
 *  probabilities [heads, n, total] are written there (zeros above the causal diagonal). */
export const attention: Binding["attention"] = native.attention;

/** Router: per row of logits [n, experts]: p = softmax (f32), top-k by p (ties → lower index), weights renormalised
 *  to sum 1. Writes idx [n, k] and weights [n, k] (descending p). */
export const routerTopk: Binding["routerTopk"] = native.routerTopk;

/** SwiGLU experts for routed tokens. x [n, hidden]; idx [n, k]; experts[e] = { w1 [F, hidden] (gate), w3 [F, hidden] (up),
 *  w2 [hidden, F] (down) } or null/undefined for experts nobody is routed to. Returns the per-slot outputs [n, k, hidden]:
 *  slot (t, j) = W2_e (silu(W1_e x_t) ⊙ (W3_e x_t)), e = idx[t, j]. With gateUp (n·k·2·F floats), also writes each
 *  slot's W1_e x_t and W3_e x_t there, for the backward pass (moeBackward), in the order the expert GEMMs produce
 *  them: slots grouped by expert (native/src/moe.h), not per slot; with act too (n·k·F floats, beside gateUp), each
 *  slot's silu(W1_e x_t) ⊙ W3_e x_t in the same order. */
export const moeExperts: Binding["moeExperts"] = native.moeExperts;

/** The whole MoE after the router: out[t, :] = Σ_j weights[t, j] · slot (t, j) of moeExperts, bit-identical to
 *  moeExperts followed by weightedSum, without the [n, k, hidden] slot array. */
export const moe: Binding["moe"] = native.moe;

/** out[t, :] = Σ_j weights[t, j] · slots[t, j, :]  (slots [n, k, dim]) */
export const weightedSum: Binding["weightedSum"] = native.weightedSum;

// ------------------------------------------------------------------ decoder objects
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
