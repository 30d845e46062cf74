/**
 * One decoder layer for training (docs/training.md): a forward pass over a packed batch that keeps what its backward
 * pass needs, firing the same hooks as the inference forward (replacements are used downstream), and the backward
 * pass through it. The gradient at a hook is d loss / d(the value after the hooks); upstream of a hook the gradient
 * passes on as if the hook were the identity.
 */
import * as native from "../../native/index.ts";
import * as bw from "../../native/backward.ts";
import type { ModelConfig } from "../config.ts";
import { hook, lightningWeights, softmaxWeights, routerWeight, expertWeights, type Pass, type WeightSource } from "../layers.ts";
import type { Batch } from "./batch.ts";
import type { Arena } from "./arena.ts";
import type { ActivationGradients, WeightGradients } from "./gradients.ts";

/** What a training pass shares with its layers. */
export interface TrainPass {
  readonly cfg: ModelConfig;
  readonly w: WeightSource;
  readonly pass: Pass;
  readonly batch: Batch;
  readonly slopes: readonly (Float32Array | null)[];
  /** where the pass's arrays come from when its owner reuses them pass after pass (see tape.ts) */
  readonly arena?: Arena;
}

/** An array of `length` floats for an op to write whole: from the pass's arena, else new. */
export function array(tp: TrainPass, length: number): Float32Array {
  return tp.arena ? tp.arena.take(length) : native.empty(length);
}

interface LightningSaved {
  kind: "lightning";
  /** the qkv projection before and after SiLU (after the q/k/v hooks) [rows, heads, 3, d] */
  qkvPre: Float32Array;
  qkv: Float32Array;
  /** lightning output, its norm, the sigmoid gate, gate ⊙ norm: [rows, heads·d] */
  o: Float32Array;
  normed: Float32Array;
  gate: Float32Array;
  y: Float32Array;
}

interface SoftmaxSaved {
  kind: "softmax";
  /** after RoPE and the hooks */
  q: Float32Array;
  k: Float32Array;
  v: Float32Array;
  /** the attention output before hook_z (the backward pass's O) and after it (the o_proj input) */
  zRaw: Float32Array;
  z: Float32Array;
  /** per row and head, log Σ e^(scaled scores) */
  lse: Float32Array;
}

/** Everything a layer's backward pass reads. */
export interface LayerSaved {
  x: Float32Array;
  a: Float32Array;
  attention: LightningSaved | SoftmaxSaved;
  h: Float32Array;
  bn: Float32Array;
  routerLogits: Float32Array;
  idx: Int32Array;
  topkWeights: Float32Array;
  /** the experts' outputs per slot [rows, k, hidden] (after hook_expert_out), and W1 x, W3 x (rows·k·2·F) and
   *  silu(W1 x) ⊙ W3 x (rows·k·F) of every slot, grouped by expert as moeExperts writes them for moeBackward */
  slots: Float32Array;
  gateUp: Float32Array;
  act: Float32Array;
}

export function savedBytes(s: LayerSaved): number {
  const arrays: ArrayBufferView[] = [s.a, s.h, s.bn, s.routerLogits, s.idx, s.topkWeights, s.slots, s.gateUp, s.act];
  for (const v of Object.values(s.attention)) if (ArrayBuffer.isView(v)) arrays.push(v);
  return arrays.reduce((sum, a) => sum + a.byteLength, 0);
}

/** Layer l on x [rows, hidden] (docs/architecture.md §3.3): the residual stream after it and what its backward pass needs. */
export function layerForward(tp: TrainPass, l: number, x: Float32Array): { out: Float32Array; saved: LayerSaved } {
  const { cfg, w, pass, batch } = tp;
  const n = batch.rows;
  const hs = cfg.hiddenSize;
  const shape = [n, hs];
  const b = `blocks.${l}.`;
  const p = `model.layers.${l}.`;
  const lightning = cfg.layerTypes[l] === "lightning";

  x = hook(pass, b + "hook_resid_pre", l, x, shape);
  let a = native.rmsnorm(x, n, hs, w.vector(p + "input_layernorm.weight", hs), cfg.rmsNormEps, array(tp, n * hs));
  a = hook(pass, b + "ln1.hook_normalized", l, a, shape);
  const { attn, saved: attention } = lightning ? lightningForward(tp, l, a) : softmaxForward(tp, l, a);
  const attnOut = hook(pass, b + "hook_attn_out", l, attn, shape);
  const type = cfg.layerTypes[l];
  let h = native.axpby(cfg.alpha[type], cfg.postnorm ? a : x, cfg.beta[type], attnOut, array(tp, n * hs));
  h = hook(pass, b + "hook_resid_mid", l, h, shape);

  let bn = native.rmsnorm(h, n, hs, w.vector(p + "post_attention_layernorm.weight", hs), cfg.rmsNormEps, array(tp, n * hs));
  bn = hook(pass, b + "ln2.hook_normalized", l, bn, shape);
  const m = `${b}moe.`;
  const { numExperts: ne, topK: k } = cfg;
  const routerLogits = hook(pass, m + "hook_router_logits", l, native.matmul(bn, n, routerWeight(cfg, l, w), array(tp, n * ne)), [n, ne]);
  let idx = new Int32Array(n * k);
  let topkWeights = new Float32Array(n * k);
  native.routerTopk(routerLogits, n, ne, k, idx, topkWeights);
  idx = hook(pass, m + "hook_topk_idx", l, idx, [n, k]);
  topkWeights = hook(pass, m + "hook_topk_weights", l, topkWeights, [n, k]);
  const gateUp = array(tp, n * k * 2 * cfg.intermediateSize); // every row written by moeExperts
  const act = array(tp, n * k * cfg.intermediateSize);
  let slots = native.moeExperts(bn, n, hs, idx, k, routed(cfg, l, w, idx), array(tp, n * k * hs), gateUp, act);
  slots = hook(pass, m + "hook_expert_out", l, slots, [n, k, hs]);
  let mlp = native.weightedSum(slots, topkWeights, n, k, hs, array(tp, n * hs));
  mlp = hook(pass, b + "hook_mlp_out", l, mlp, shape);
  let out = native.axpby(cfg.alpha.mlp, cfg.postnorm ? bn : h, cfg.beta.mlp, mlp, array(tp, n * hs));
  out = hook(pass, b + "hook_resid_post", l, out, shape);
  return { out, saved: { x, a, attention, h, bn, routerLogits, idx, topkWeights, slots, gateUp, act } };
}

/**
 * The backward pass of layer l: from dOut, the gradient of its output, returns the gradient of its input x and adds
 * the gradients of its weights.
 */
export function layerBackward(tp: TrainPass, l: number, s: LayerSaved, dOut: Float32Array, grads: WeightGradients,
  acts: ActivationGradients): Float32Array {
  const { cfg, w, batch } = tp;
  const n = batch.rows;
  const hs = cfg.hiddenSize;
  const b = `blocks.${l}.`;
  const p = `model.layers.${l}.`;
  const { numExperts: ne, topK: k } = cfg;
  acts.record(b + "hook_resid_post", dOut, [hs]);

  // out = α_mlp · (postnorm ? bn : h) + β_mlp · moe(bn)
  const dMlp = scaled(cfg.beta.mlp, dOut);
  acts.record(b + "hook_mlp_out", dMlp, [hs]);
  const experts = routed(cfg, l, w, s.idx);
  const expertGrads = experts.map((ex, e) => ex && {
    w1: grads.of(`${p}block_sparse_moe.experts.${e}.w1.weight`, ex.w1.data.length),
    w3: grads.of(`${p}block_sparse_moe.experts.${e}.w3.weight`, ex.w3.data.length),
    w2: grads.of(`${p}block_sparse_moe.experts.${e}.w2.weight`, ex.w2.data.length),
  });
  if (acts.wants(b + "moe.hook_expert_out")) {
    const dSlots = new Float32Array(n * k * hs); // out_t = Σ_j w_tj · slot_tj
    for (let t = 0; t < n; t++) {
      for (let j = 0; j < k; j++) {
        const wt = s.topkWeights[t * k + j];
        for (let c = 0; c < hs; c++) dSlots[(t * k + j) * hs + c] = wt * dMlp[t * hs + c];
      }
    }
    acts.record(b + "moe.hook_expert_out", dSlots, [k, hs]);
  }
  const { dx: dBn, dweights } = bw.moeBackward(s.bn, n, hs, s.idx, s.topkWeights, k, experts, dMlp, expertGrads, s, array(tp, n * hs));
  acts.record(b + "moe.hook_topk_weights", dweights, [k]);
  const dLogits = bw.routerTopkBackward(s.routerLogits, n, ne, k, s.idx, dweights);
  acts.record(b + "moe.hook_router_logits", dLogits, [ne]);
  const router = routerWeight(cfg, l, w);
  bw.matmulDw(dLogits, s.bn, n, grads.of(`${p}block_sparse_moe.gate.weight`, ne * hs), ne, hs);
  bw.matmulDx(dLogits, n, router, dBn);
  if (cfg.postnorm) addScaled(dBn, cfg.alpha.mlp, dOut);
  acts.record(b + "ln2.hook_normalized", dBn, [hs]);
  const ln2 = p + "post_attention_layernorm.weight";
  const dH = bw.rmsnormBackward(s.h, dBn, n, hs, w.vector(ln2, hs), cfg.rmsNormEps, grads.of(ln2, hs), array(tp, n * hs));
  if (!cfg.postnorm) addScaled(dH, cfg.alpha.mlp, dOut);
  acts.record(b + "hook_resid_mid", dH, [hs]);

  // h = α · (postnorm ? a : x) + β · attention(a)
  const alpha = cfg.alpha[cfg.layerTypes[l]];
  const dAttn = scaled(cfg.beta[cfg.layerTypes[l]], dH);
  acts.record(b + "hook_attn_out", dAttn, [hs]);
  const dA = s.attention.kind === "lightning"
    ? lightningBackward(tp, l, s.a, s.attention, dAttn, grads, acts)
    : softmaxBackward(tp, l, s.a, s.attention, dAttn, grads, acts);
  if (cfg.postnorm) addScaled(dA, alpha, dH);
  acts.record(b + "ln1.hook_normalized", dA, [hs]);
  const ln1 = p + "input_layernorm.weight";
  const dX = bw.rmsnormBackward(s.x, dA, n, hs, w.vector(ln1, hs), cfg.rmsNormEps, grads.of(ln1, hs), array(tp, n * hs));
  if (!cfg.postnorm) addScaled(dX, alpha, dH);
  acts.record(b + "hook_resid_pre", dX, [hs]);
  return dX;
}

/** The experts idx routes to (all of their weights), undefined for the others. */
function routed(cfg: ModelConfig, l: number, w: WeightSource, idx: Int32Array): (native.ExpertWeights | undefined)[] {
  const experts: (native.ExpertWeights | undefined)[] = new Array(cfg.numExperts);
  for (const e of idx) experts[e] ??= expertWeights(cfg, l, e, w);
  return experts;
}

/** f · x: x itself for f = 1 (the caller only reads it), else a new array */
function scaled(f: number, x: Float32Array): Float32Array {
  return f === 1 ? x : native.axpby(f, x, 0, x);
}

/** acc += f · x */
function addScaled(acc: Float32Array, f: number, x: Float32Array): void {
  native.axpby(1, acc, f, x, acc);
}

// ------------------------------------------------------------------ lightning attention (docs/architecture.md §3.4)

function lightningForward(tp: TrainPass, l: number, a: Float32Array): { attn: Float32Array; saved: LightningSaved } {
  const { cfg, w, pass, batch } = tp;
  const n = batch.rows;
  const { hiddenSize: hs, numHeads: nh, headDim: d } = cfg;
  const inner = nh * d;
  const lw = lightningWeights(cfg, l, w);
  const name = `blocks.${l}.lightning.`;
  const qkvPre = native.matmul(a, n, lw.qkv, array(tp, n * 3 * inner));
  let qkv = native.silu(qkvPre, array(tp, n * 3 * inner));
  if (["hook_q", "hook_k", "hook_v"].some((h) => pass.hooks.wants(name + h))) {
    const parts = native.splitQkv(qkv, n, nh, d);
    const hooked = (["q", "k", "v"] as const).map((c) => hook(pass, name + "hook_" + c, l, parts[c], [n, nh, d]));
    qkv = interleave(hooked, n, nh, d);
  }
  let o = array(tp, n * inner); // each sequence's rows written below
  for (let i = 0; i < batch.count; i++) {
    const state = array(tp, nh * d * d).fill(0); // every sequence starts from a zero state
    native.lightningPrefillQkv(batch.rowsOf(qkv, i, 3 * inner), batch.lengths[i], nh, d, tp.slopes[l]!, cfg.blockSize,
      state, batch.rowsOf(o, i, inner));
    hook(pass, name + "hook_state", l, state, [nh, d, d]); // observed; the pass has no later step that reads it
  }
  o = hook(pass, name + "hook_o", l, o, [n, nh, d]);
  const normed = native.rmsnorm(o, n, inner, lw.norm, cfg.lightningNormEps, array(tp, n * inner));
  const gatePre = native.matmul(a, n, lw.gate, array(tp, n * inner));
  let gate = native.sigmoid(gatePre, gatePre);
  gate = hook(pass, name + "hook_gate", l, gate, [n, inner]);
  const y = native.mul(gate, normed, array(tp, n * inner));
  return { attn: native.matmul(y, n, lw.out, array(tp, n * hs)), saved: { kind: "lightning", qkvPre, qkv, o, normed, gate, y } };
}

/** q, k, v [n, heads, d] → the per-head interleaved [n, heads, 3, d]. */
function interleave(parts: Float32Array[], n: number, nh: number, d: number): Float32Array {
  const out = new Float32Array(3 * n * nh * d);
  for (let r = 0; r < n * nh; r++) {
    for (let c = 0; c < 3; c++) out.set(parts[c].subarray(r * d, (r + 1) * d), (3 * r + c) * d);
  }
  return out;
}

function lightningBackward(tp: TrainPass, l: number, a: Float32Array, s: LightningSaved, dAttn: Float32Array,
  grads: WeightGradients, acts: ActivationGradients): Float32Array {
  const { cfg, w, batch } = tp;
  const n = batch.rows;
  const { hiddenSize: hs, numHeads: nh, headDim: d } = cfg;
  const inner = nh * d;
  const lw = lightningWeights(cfg, l, w);
  const p = `model.layers.${l}.self_attn.`;
  const name = `blocks.${l}.lightning.`;
  // attention = (gate ⊙ rmsnorm(o)) · W_outᵀ
  bw.matmulDw(dAttn, s.y, n, grads.of(p + "out_proj.weight", hs * inner), hs, inner);
  const dY = bw.matmulDx(dAttn, n, lw.out, null, array(tp, n * inner));
  const dGate = native.mul(dY, s.normed, array(tp, n * inner));
  acts.record(name + "hook_gate", dGate, [inner]);
  const dNormed = native.mul(dY, s.gate, dY);
  const dGatePre = bw.sigmoidBackward(s.gate, dGate, dGate);
  bw.matmulDw(dGatePre, a, n, grads.of(p + "output_gate.weight", inner * hs), inner, hs);
  const dA = bw.matmulDx(dGatePre, n, lw.gate, null, array(tp, n * hs));
  const dO = bw.rmsnormBackward(s.o, dNormed, n, inner, lw.norm, cfg.lightningNormEps, grads.of(p + "norm.weight", inner),
    array(tp, n * inner));
  acts.record(name + "hook_o", dO, [nh, d]);
  const dQkv = array(tp, 3 * n * inner);
  for (let i = 0; i < batch.count; i++) {
    bw.lightningBackwardQkv(batch.rowsOf(s.qkv, i, 3 * inner), batch.rowsOf(dO, i, inner), batch.lengths[i], nh, d,
      tp.slopes[l]!, cfg.blockSize, batch.rowsOf(dQkv, i, 3 * inner));
  }
  if (["q", "k", "v"].some((c) => acts.wants(name + "hook_" + c))) {
    const parts = native.splitQkv(dQkv, n, nh, d);
    for (const c of ["q", "k", "v"] as const) acts.record(name + "hook_" + c, parts[c], [nh, d]);
  }
  const dQkvPre = bw.siluBackward(s.qkvPre, dQkv, dQkv);
  bw.matmulDw(dQkvPre, a, n, grads.of(p + "qkv_proj.weight", 3 * inner * hs), 3 * inner, hs);
  bw.matmulDx(dQkvPre, n, lw.qkv, dA);
  return dA;
}

// ------------------------------------------------------------------ softmax attention (docs/architecture.md §3.5)

function softmaxForward(tp: TrainPass, l: number, a: Float32Array): { attn: Float32Array; saved: SoftmaxSaved } {
  const { cfg, w, pass, batch } = tp;
  const n = batch.rows;
  const { hiddenSize: hs, numHeads: nh, numKvHeads: nkv, headDim: d } = cfg;
  const sw = softmaxWeights(cfg, l, w);
  const name = `blocks.${l}.attn.`;
  let q = native.matmul(a, n, sw.q, array(tp, n * nh * d));
  let k = native.matmul(a, n, sw.k, array(tp, n * nkv * d));
  let v = native.matmul(a, n, sw.v, array(tp, n * nkv * d));
  native.rope(q, n, nh, d, cfg.rotaryDim, batch.positions, cfg.ropeTheta);
  native.rope(k, n, nkv, d, cfg.rotaryDim, batch.positions, cfg.ropeTheta);
  q = hook(pass, name + "hook_q", l, q, [n, nh, d]);
  k = hook(pass, name + "hook_k", l, k, [n, nkv, d]);
  v = hook(pass, name + "hook_v", l, v, [n, nkv, d]);
  const zRaw = array(tp, n * nh * d); // each sequence's rows set below
  const lse = array(tp, n * nh);
  for (let i = 0; i < batch.count; i++) {
    const r = bw.attentionLse(batch.rowsOf(q, i, nh * d), batch.rowsOf(k, i, nkv * d), batch.rowsOf(v, i, nkv * d),
      batch.lengths[i], nh, nkv, d, 1 / Math.sqrt(d));
    zRaw.set(r.out, batch.starts[i] * nh * d);
    lse.set(r.lse, batch.starts[i] * nh);
  }
  const z = hook(pass, name + "hook_z", l, zRaw, [n, nh, d]);
  return { attn: native.matmul(z, n, sw.o, array(tp, n * hs)), saved: { kind: "softmax", q, k, v, zRaw, z, lse } };
}

function softmaxBackward(tp: TrainPass, l: number, a: Float32Array, s: SoftmaxSaved, dAttn: Float32Array,
  grads: WeightGradients, acts: ActivationGradients): Float32Array {
  const { cfg, w, batch } = tp;
  const n = batch.rows;
  const { hiddenSize: hs, numHeads: nh, numKvHeads: nkv, headDim: d } = cfg;
  const sw = softmaxWeights(cfg, l, w);
  const p = `model.layers.${l}.self_attn.`;
  const name = `blocks.${l}.attn.`;
  bw.matmulDw(dAttn, s.z, n, grads.of(p + "o_proj.weight", hs * nh * d), hs, nh * d);
  const dZ = bw.matmulDx(dAttn, n, sw.o, null, array(tp, n * nh * d));
  acts.record(name + "hook_z", dZ, [nh, d]);
  const dq = array(tp, n * nh * d); // each sequence's rows set below
  const dk = array(tp, n * nkv * d);
  const dv = array(tp, n * nkv * d);
  for (let i = 0; i < batch.count; i++) {
    const g = bw.attentionBackward(batch.rowsOf(s.q, i, nh * d), batch.rowsOf(s.k, i, nkv * d), batch.rowsOf(s.v, i, nkv * d),
      batch.rowsOf(s.zRaw, i, nh * d), batch.rowsOf(dZ, i, nh * d), batch.rowsOf(s.lse, i, nh), batch.lengths[i], nh, nkv, d,
      1 / Math.sqrt(d));
    dq.set(g.dq, batch.starts[i] * nh * d);
    dk.set(g.dk, batch.starts[i] * nkv * d);
    dv.set(g.dv, batch.starts[i] * nkv * d);
  }
  acts.record(name + "hook_q", dq, [nh, d]);
  acts.record(name + "hook_k", dk, [nkv, d]);
  acts.record(name + "hook_v", dv, [nkv, d]);
  // RoPE is a rotation: its backward rotates by the opposite angle
  const back = batch.positions.map((t) => -t);
  native.rope(dq, n, nh, d, cfg.rotaryDim, back, cfg.ropeTheta);
  native.rope(dk, n, nkv, d, cfg.rotaryDim, back, cfg.ropeTheta);
  bw.matmulDw(dq, a, n, grads.of(p + "q_proj.weight", nh * d * hs), nh * d, hs);
  bw.matmulDw(dk, a, n, grads.of(p + "k_proj.weight", nkv * d * hs), nkv * d, hs);
  bw.matmulDw(dv, a, n, grads.of(p + "v_proj.weight", nkv * d * hs), nkv * d, hs);
  const dA = bw.matmulDx(dq, n, sw.q, null, array(tp, n * hs));
  bw.matmulDx(dk, n, sw.k, dA);
  bw.matmulDx(dv, n, sw.v, dA);
  return dA;
}
