/**
 * Typed wrappers over the addon's backward kernels (native/src/backward_*.cc, lightning.cc, gemm.cc,
 * moe_backward.cc). Each takes dy, the gradient of an op's output, and returns the gradients of its inputs;
 * weight gradients are f32 arrays that the caller owns and that are added to. The addon validates every
 * argument (types, lengths against the given dimensions, overlaps) and throws a TypeError/RangeError naming it.
 */
import { createRequire } from "node:module";
import { addonPath, type ExpertWeights, type Weight } from "./index.ts";

/** f32 gradients of one expert's weights, in their shapes. */
export interface ExpertGradients {
  w1: Float32Array;
  w3: Float32Array;
  w2: Float32Array;
}

interface BackwardBinding {
  matmulDx(dy: Float32Array, n: number, w: Weight, accumulate?: Float32Array | null, out?: Float32Array): Float32Array;
  matmulDw(dy: Float32Array, x: Float32Array, n: number, dw: Float32Array, rows: number, cols: number): void;
  rmsnormBackward(x: Float32Array, dy: Float32Array, n: number, dim: number, weight: Float32Array, eps: number,
    dweight?: Float32Array | null, out?: Float32Array): Float32Array;
  siluBackward(x: Float32Array, dy: Float32Array, out?: Float32Array): Float32Array;
  sigmoidBackward(y: Float32Array, dy: Float32Array, out?: Float32Array): Float32Array;
  swigluBackward(gate: Float32Array, up: Float32Array, dy: Float32Array): [Float32Array, Float32Array];
  embeddingBackward(ids: Int32Array, dy: Float32Array, dtable: Float32Array, vocab: number, dim: number): void;
  routerTopkBackward(logits: Float32Array, n: number, experts: number, k: number, idx: Int32Array, dweights: Float32Array): Float32Array;
  crossEntropy(logits: Float32Array, n: number, vocab: number, targets: Int32Array, weights: Float32Array | null,
    logprobs: Float32Array, dlogits: Float32Array | null): void;
  lightningBackward(q: Float32Array, k: Float32Array, v: Float32Array, dout: Float32Array, n: number, heads: number,
    d: number, slopes: Float32Array, blockSize: number): [Float32Array, Float32Array, Float32Array];
  lightningBackwardQkv(qkv: Float32Array, dout: Float32Array, n: number, heads: number, d: number, slopes: Float32Array,
    blockSize: number, out?: Float32Array): Float32Array;
  attentionLse(q: Float32Array, k: Float32Array, v: Float32Array, n: number, heads: number, kvHeads: number, d: number,
    scale: number): [Float32Array, Float32Array];
  attentionBackward(q: Float32Array, k: Float32Array, v: Float32Array, out: Float32Array, dout: Float32Array,
    lse: Float32Array, n: number, heads: number, kvHeads: number, d: number, scale: number): [Float32Array, Float32Array, Float32Array];
  moeBackward(x: Float32Array, n: number, hidden: number, idx: Int32Array, weights: Float32Array, k: number,
    experts: ReadonlyArray<ExpertWeights | null | undefined>, dout: Float32Array,
    grads: ReadonlyArray<ExpertGradients | null | undefined>, slots?: Float32Array, gateUp?: Float32Array, dx?: Float32Array,
    act?: Float32Array): [Float32Array, Float32Array];
}

// the addon that native/index.ts loaded (require caches it), seen through its backward entry points
const native = createRequire(import.meta.url)(addonPath) as BackwardBinding;

/** out = x · Wᵀ: dx [n, cols] = dy [n, rows] · W, added into `accumulate` when given, else written into `out` (else a
 *  new array). */
export function matmulDx(dy: Float32Array, n: number, w: Weight, accumulate?: Float32Array | null, out?: Float32Array): Float32Array {
  return native.matmulDx(dy, n, w, accumulate, out);
}

/** out = x · Wᵀ: dW [rows, cols] += dy [n, rows]ᵀ · x [n, cols]. */
export function matmulDw(dy: Float32Array, x: Float32Array, n: number, dw: Float32Array, rows: number, cols: number): void {
  native.matmulDw(dy, x, n, dw, rows, cols);
}

/** y = w ⊙ x / sqrt(mean(x²) + eps) per row: returns dx (written into `out` when given); adds dweight when given. */
export function rmsnormBackward(x: Float32Array, dy: Float32Array, n: number, dim: number, weight: Float32Array, eps: number,
  dweight?: Float32Array, out?: Float32Array): Float32Array {
  return native.rmsnormBackward(x, dy, n, dim, weight, eps, dweight, out);
}

/** y = silu(x): dx = dy · σ(x)(1 + x(1 − σ(x))). */
export function siluBackward(x: Float32Array, dy: Float32Array, out?: Float32Array): Float32Array {
  return native.siluBackward(x, dy, out);
}

/** y = σ(x), from the output y: dx = dy · y(1 − y). */
export function sigmoidBackward(y: Float32Array, dy: Float32Array, out?: Float32Array): Float32Array {
  return native.sigmoidBackward(y, dy, out);
}

/** y = silu(gate) ⊙ up: [dgate, dup]. */
export function swigluBackward(gate: Float32Array, up: Float32Array, dy: Float32Array): { dgate: Float32Array; dup: Float32Array } {
  const [dgate, dup] = native.swigluBackward(gate, up, dy);
  return { dgate, dup };
}

/** y[t] = table[ids[t]]: dtable [vocab, dim] += scatter of dy rows (repeated ids add up). */
export function embeddingBackward(ids: Int32Array, dy: Float32Array, dtable: Float32Array, vocab: number, dim: number): void {
  native.embeddingBackward(ids, dy, dtable, vocab, dim);
}

/** Router top-k (routerTopk): dlogits [n, experts] from the gradient of the renormalised weights [n, k]; the choice
 *  of experts itself has no gradient. */
export function routerTopkBackward(logits: Float32Array, n: number, experts: number, k: number, idx: Int32Array,
  dweights: Float32Array): Float32Array {
  return native.routerTopkBackward(logits, n, experts, k, idx, dweights);
}

/** Per row t: logprobs[t] = log softmax(logits[t])[targets[t]], and dlogits = ∂(Σ_t −weights[t]·logprobs[t]) / ∂logits
 *  (dlogits may be logits itself, overwritten). */
export function crossEntropy(logits: Float32Array, n: number, vocab: number, targets: Int32Array, weights: Float32Array,
  logprobs: Float32Array, dlogits: Float32Array): void {
  native.crossEntropy(logits, n, vocab, targets, weights, logprobs, dlogits);
}

/** Per row t: logprobs[t] = log softmax(logits[t])[targets[t]], the values crossEntropy writes (bit for bit). */
export function tokenLogprobs(logits: Float32Array, n: number, vocab: number, targets: Int32Array, logprobs: Float32Array): void {
  native.crossEntropy(logits, n, vocab, targets, null, logprobs, null);
}

/** lightningPrefill from a zero state: dq, dk, dv [n, heads, d] from dout [n, heads, d]. */
export function lightningBackward(q: Float32Array, k: Float32Array, v: Float32Array, dout: Float32Array, n: number,
  heads: number, d: number, slopes: Float32Array, blockSize: number): { dq: Float32Array; dk: Float32Array; dv: Float32Array } {
  const [dq, dk, dv] = native.lightningBackward(q, k, v, dout, n, heads, d, slopes, blockSize);
  return { dq, dk, dv };
}

/** lightningPrefillQkv from a zero state: the gradient of qkv in its interleaved layout [n, heads, 3, d] (into
 *  `out` when given: every element is written). */
export function lightningBackwardQkv(qkv: Float32Array, dout: Float32Array, n: number, heads: number, d: number,
  slopes: Float32Array, blockSize: number, out?: Float32Array): Float32Array {
  return native.lightningBackwardQkv(qkv, dout, n, heads, d, slopes, blockSize, out);
}

/** Causal self-attention of n tokens (q [n, heads, d], k and v [n, kvHeads, d]) keeping each row's log-sum-exp of the
 *  scaled scores, lse [n, heads], for attentionBackward. */
export function attentionLse(q: Float32Array, k: Float32Array, v: Float32Array, n: number, heads: number, kvHeads: number,
  d: number, scale: number): { out: Float32Array; lse: Float32Array } {
  const [out, lse] = native.attentionLse(q, k, v, n, heads, kvHeads, d, scale);
  return { out, lse };
}

/** Flash-style backward of attentionLse: probabilities recomputed from lse, never stored n × n. */
export function attentionBackward(q: Float32Array, k: Float32Array, v: Float32Array, out: Float32Array, dout: Float32Array,
  lse: Float32Array, n: number, heads: number, kvHeads: number, d: number, scale: number): { dq: Float32Array; dk: Float32Array; dv: Float32Array } {
  const [dq, dk, dv] = native.attentionBackward(q, k, v, out, dout, lse, n, heads, kvHeads, d, scale);
  return { dq, dk, dv };
}

/** The routed SwiGLU experts (moe): dx [n, hidden] (written into `out` when given) and dweights [n, k] from dout; the
 *  weight gradients of every routed expert are added into grads[e]. Expert by expert; the experts' forward products
 *  are read from `kept` (moeExperts' slots, gateUp and act) when given, else recomputed. */
export function moeBackward(x: Float32Array, n: number, hidden: number, idx: Int32Array, weights: Float32Array, k: number,
  experts: ReadonlyArray<ExpertWeights | null | undefined>, dout: Float32Array,
  grads: ReadonlyArray<ExpertGradients | null | undefined>, kept?: { slots: Float32Array; gateUp: Float32Array; act?: Float32Array } | null,
  out?: Float32Array): { dx: Float32Array; dweights: Float32Array } {
  const [dx, dweights] = native.moeBackward(x, n, hidden, idx, weights, k, experts, dout, grads, kept?.slots, kept?.gateUp, out, kept?.act);
  return { dx, dweights };
}
