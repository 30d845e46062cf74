/**
 * The three sublayers of a MiniMax-M1 decoder layer (docs/architecture.md §3.4-§3.6), each a sequence of native ops
 * with the hook points of docs/architecture.md §4 between them.
 */
import * as native from "../native/index.ts";
import type { ModelConfig } from "./config.ts";
import type { KvCache, ModelCache } from "./cache.ts";
import { Tensor, firstNonFinite } from "./tensor.ts";
import type { HookSet, HookContext, SequenceRows } from "./hooks.ts";
import { CheckpointError } from "./errors.ts";
import { softmax } from "./softmax.ts";

/** What one forward call shares with its sublayers (and its hooks see). */
export interface Pass {
  readonly hooks: HookSet;
  readonly phase: "prefill" | "decode";
  /** absolute position of the first token (of the first sequence) */
  readonly position: number;
  /** rows of the pass: every sequence's tokens */
  readonly tokens: number;
  /** the rows of each sequence when the call packs several */
  readonly sequences?: readonly SequenceRows[];
  /** set on the pass of one sequence of a packed call (its attention hooks fire once per sequence) */
  readonly sequence?: number;
  /** With hooks registered: the first hook point whose value held NaN or ±Infinity (see watchFinite). */
  nonFinite: NonFinitePoint | null;
}

/** Where non-finite values first appeared in a pass: a hook point, and whether a hook wrote them there. */
export interface NonFinitePoint {
  readonly hook: string;
  readonly layer: number | null;
  readonly byHook: boolean;
}

/**
 * Notes the first hook point whose value is not finite, when hooks are registered: the model watches the embedding and
 * each layer's output, and hook() the points that hooks listen to, before and after they run (one scan each, small
 * beside the pass); without hooks nothing is scanned.
 */
export function watchFinite(pass: Pass, name: string, layer: number | null, data: Float32Array | Int32Array, byHook = false): void {
  if (pass.nonFinite || pass.hooks.size === 0 || !(data instanceof Float32Array)) return;
  if (firstNonFinite("F32", data) >= 0) pass.nonFinite = { hook: name, layer, byHook };
}

/** One sequence of an inference pass: its rows and the decoding state it continues from. */
export interface PassSequence extends SequenceRows {
  readonly cache: ModelCache;
}

/**
 * An inference forward call. It may pack several sequences into its rows: row-wise ops (norms, projections, MoE)
 * run on all rows at once, and the ops that mix tokens (attention, the lightning state) run per sequence on that
 * sequence's own cache, so no token sees another sequence.
 */
export interface ForwardPass extends Pass {
  readonly sequences: readonly PassSequence[];
}

/** The pass of sequence i alone (for the hooks that fire per sequence). */
export function sequencePass(pass: ForwardPass, i: number): ForwardPass {
  if (pass.sequences.length === 1) return pass;
  const seq = pass.sequences[i];
  return { hooks: pass.hooks, phase: pass.phase, position: seq.position, tokens: seq.tokens, sequences: [{ ...seq, start: 0 }], sequence: i, nonFinite: null };
}

/** Fires hook `name` on data of the given shape if anyone listens; returns the (possibly replaced) data. */
export function hook<T extends Float32Array | Int32Array>(pass: Pass, name: string, layer: number | null, data: T, shape: number[]): T {
  if (!pass.hooks.wants(name)) return data;
  watchFinite(pass, name, layer, data);
  const ctx: HookContext = {
    name, phase: pass.phase, position: pass.position, tokens: pass.tokens, layer,
    ...(pass.sequences && pass.sequences.length > 1 ? { sequences: pass.sequences } : {}),
    ...(pass.sequence !== undefined ? { sequence: pass.sequence } : {}),
  };
  const dtype = data instanceof Int32Array ? "I32" : "F32";
  const out = pass.hooks.fire(new Tensor(dtype, shape, data), ctx).data as T;
  watchFinite(pass, name, layer, out, true);
  return out;
}

/** Weights of one layer, read on demand from the checkpoint (streamed under its resident budget). */
export interface WeightSource {
  weight(name: string, shape: number[]): native.Weight;
  vector(name: string, length: number): Float32Array;
}

/** The weights of a lightning attention sublayer (docs/architecture.md §6.1 names). */
export function lightningWeights(cfg: ModelConfig, l: number, w: WeightSource) {
  const { hiddenSize: hs, numHeads: nh, headDim: d } = cfg;
  const inner = nh * d;
  const p = `model.layers.${l}.self_attn.`;
  return {
    // rows grouped per head: [q(d) k(d) v(d)] for head 0, then head 1, ...
    qkv: w.weight(p + "qkv_proj.weight", [3 * inner, hs]),
    gate: w.weight(p + "output_gate.weight", [inner, hs]),
    out: w.weight(p + "out_proj.weight", [hs, inner]),
    norm: w.vector(p + "norm.weight", inner),
  };
}

/** The weights of a softmax attention sublayer. */
export function softmaxWeights(cfg: ModelConfig, l: number, w: WeightSource) {
  const { hiddenSize: hs, numHeads: nh, numKvHeads: nkv, headDim: d } = cfg;
  const p = `model.layers.${l}.self_attn.`;
  return {
    q: w.weight(p + "q_proj.weight", [nh * d, hs]),
    k: w.weight(p + "k_proj.weight", [nkv * d, hs]),
    v: w.weight(p + "v_proj.weight", [nkv * d, hs]),
    o: w.weight(p + "o_proj.weight", [hs, nh * d]),
  };
}

export function routerWeight(cfg: ModelConfig, l: number, w: WeightSource): native.Weight {
  return w.weight(`model.layers.${l}.block_sparse_moe.gate.weight`, [cfg.numExperts, cfg.hiddenSize]);
}

export function expertWeights(cfg: ModelConfig, l: number, e: number, w: WeightSource): native.ExpertWeights {
  const { hiddenSize: hs, intermediateSize: f } = cfg;
  const p = `model.layers.${l}.block_sparse_moe.experts.${e}.`;
  return { w1: w.weight(p + "w1.weight", [f, hs]), w3: w.weight(p + "w3.weight", [f, hs]), w2: w.weight(p + "w2.weight", [hs, f]) };
}

/** The experts that `idx` routes to, read from the checkpoint (only those); undefined for the others. */
function routedExperts(cfg: ModelConfig, l: number, idx: Int32Array, w: WeightSource): (native.ExpertWeights | undefined)[] {
  const ne = cfg.numExperts;
  const experts: (native.ExpertWeights | undefined)[] = new Array(ne);
  for (const e of idx) {
    if (e < 0 || e >= ne) throw new CheckpointError(`layer ${l}: routed to expert ${e}, but the model has ${ne} experts`);
    experts[e] ??= expertWeights(cfg, l, e, w);
  }
  return experts;
}

/**
 * Arrays that live only inside one sublayer call, reused by every layer of the same forward pass: a long prompt's
 * intermediates are then mapped into memory once per pass, not once per layer (fresh pages cost more than the
 * GEMMs that fill them). An array that a hook sees is never one of these.
 */
const scratchOfPass = new WeakMap<Pass, Map<string, Float32Array>>();

function scratch(pass: Pass, slot: string, length: number): Float32Array {
  let slots = scratchOfPass.get(pass);
  if (!slots) scratchOfPass.set(pass, (slots = new Map()));
  let a = slots.get(slot);
  if (!a || a.length < length) slots.set(slot, (a = new Float32Array(length)));
  return a.length === length ? a : a.subarray(0, length);
}

/** A scratch array for the value of hook `name`, or undefined (the op allocates) when a hook will see it. */
function unhooked(pass: Pass, name: string, slot: string, length: number): Float32Array | undefined {
  return pass.hooks.wants(name) ? undefined : scratch(pass, slot, length);
}

/** Tokens per pass of a long prompt through a lightning sublayer: its intermediates then stay in cache. */
const LIGHTNING_CHUNK = 2048;

/**
 * Lightning attention (docs/architecture.md §3.4): SiLU'd per-head interleaved q/k/v, decayed linear attention, norm, gate.
 * Unless a hook wants q, k, v, o or the gate, the rows go through in chunks of whole blocks: a long sequence is cut
 * into pieces whose state carries over from one to the next (so the result is the block-wise prefill of the whole
 * sequence), and short sequences of a packed pass share a chunk, each piece with its own sequence's state.
 */
export function lightningAttention(cfg: ModelConfig, l: number, a: Float32Array, pass: ForwardPass, w: WeightSource, slopes: Float32Array): Float32Array {
  const n = pass.tokens;
  const hs = cfg.hiddenSize;
  const name = `blocks.${l}.lightning.`;
  if (["hook_q", "hook_k", "hook_v", "hook_o", "hook_gate"].some((h) => pass.hooks.wants(name + h))) {
    return observedLightning(cfg, l, a, pass, w, slopes);
  }
  const chunk = Math.ceil(LIGHTNING_CHUNK / cfg.blockSize) * cfg.blockSize;
  const groups = chunkGroups(pass, l, chunk);
  let out: Float32Array;
  if (groups.length === 1) {
    out = lightningRows(cfg, l, a, n, groups[0], pass, w, slopes);
  } else {
    out = native.empty(n * hs); // every row is written below
    for (const group of groups) {
      const from = group[0].start, to = group.at(-1)!.start + group.at(-1)!.rows;
      const local = group.map((p) => ({ ...p, start: p.start - from }));
      lightningRows(cfg, l, a.subarray(from * hs, to * hs), to - from, local, pass, w, slopes, out.subarray(from * hs, to * hs));
    }
  }
  pass.sequences.forEach((seq, i) => stateHook(cfg, l, sequencePass(pass, i), seq.cache.lightning[l]!));
  return out;
}

/** Rows of one sequence that the lightning kernel takes in one call, with the state they continue. */
interface LightningPiece {
  readonly start: number;
  readonly rows: number;
  readonly state: Float32Array;
}

/** The pass's rows as pieces of at most `chunk` rows (each sequence cut at whole blocks), grouped into chunks. */
function chunkGroups(pass: ForwardPass, l: number, chunk: number): LightningPiece[][] {
  const groups: LightningPiece[][] = [];
  let group: LightningPiece[] = [];
  let rows = 0;
  for (const seq of pass.sequences) {
    const state = seq.cache.lightning[l]!;
    for (let t0 = 0; t0 < seq.tokens; t0 += chunk) {
      const piece = { start: seq.start + t0, rows: Math.min(chunk, seq.tokens - t0), state };
      if (rows + piece.rows > chunk && group.length) {
        groups.push(group);
        group = [];
        rows = 0;
      }
      group.push(piece);
      rows += piece.rows;
    }
  }
  groups.push(group);
  return groups;
}

/** blocks.{l}.lightning.hook_state: the state after the step or the last block, replaced in place if a hook says so. */
function stateHook(cfg: ModelConfig, l: number, pass: Pass, state: Float32Array): void {
  const replaced = hook(pass, `blocks.${l}.lightning.hook_state`, l, state, [cfg.numHeads, cfg.headDim, cfg.headDim]);
  if (replaced !== state) state.set(replaced);
}

/** The sublayer on `rows` tokens without hooks inside it: q, k, v are read in place from the interleaved projection. */
function lightningRows(
  cfg: ModelConfig, l: number, a: Float32Array, rows: number, pieces: readonly LightningPiece[], pass: Pass, w: WeightSource,
  slopes: Float32Array, out?: Float32Array,
): Float32Array {
  const { numHeads: nh, headDim: d } = cfg;
  const inner = nh * d;
  const lw = lightningWeights(cfg, l, w);
  const qkv = native.matmul(a, rows, lw.qkv, scratch(pass, "qkv", 3 * rows * inner));
  native.silu(qkv, qkv);
  const o = scratch(pass, "o", rows * inner);
  for (const p of pieces) {
    const pqkv = qkv.subarray(3 * p.start * inner, 3 * (p.start + p.rows) * inner);
    const po = o.subarray(p.start * inner, (p.start + p.rows) * inner);
    if (p.rows === 1) native.lightningStepQkv(pqkv, 1, nh, d, slopes, p.state, po);
    else native.lightningPrefillQkv(pqkv, p.rows, nh, d, slopes, cfg.blockSize, p.state, po);
  }
  native.rmsnorm(o, rows, inner, lw.norm, cfg.lightningNormEps, o);
  const gate = native.matmul(a, rows, lw.gate, scratch(pass, "gate", rows * inner));
  native.sigmoid(gate, gate);
  native.mul(gate, o, o);
  return native.matmul(o, rows, lw.out, out);
}

/** The sublayer with its hooks, in the order they fire: q, k, v, state (per sequence), o, gate. */
function observedLightning(cfg: ModelConfig, l: number, a: Float32Array, pass: ForwardPass, w: WeightSource, slopes: Float32Array): Float32Array {
  const n = pass.tokens;
  const { numHeads: nh, headDim: d } = cfg;
  const inner = nh * d;
  const lw = lightningWeights(cfg, l, w);
  const name = `blocks.${l}.lightning.`;
  const qkv = native.matmul(a, n, lw.qkv, scratch(pass, "qkv", 3 * n * inner));
  native.silu(qkv, qkv);
  let { q, k, v } = native.splitQkv(qkv, n, nh, d);
  const headShape = [n, nh, d];
  q = hook(pass, name + "hook_q", l, q, headShape);
  k = hook(pass, name + "hook_k", l, k, headShape);
  v = hook(pass, name + "hook_v", l, v, headShape);
  let o = new Float32Array(n * inner);
  pass.sequences.forEach((seq, i) => {
    const rows = (x: Float32Array) => x.subarray(seq.start * inner, (seq.start + seq.tokens) * inner);
    const state = seq.cache.lightning[l]!;
    if (seq.tokens === 1) native.lightningStep(rows(q), rows(k), rows(v), 1, nh, d, slopes, state, rows(o));
    else native.lightningPrefill(rows(q), rows(k), rows(v), seq.tokens, nh, d, slopes, cfg.blockSize, state, rows(o));
    stateHook(cfg, l, sequencePass(pass, i), state);
  });
  o = hook(pass, name + "hook_o", l, o, headShape);
  const normed = native.rmsnorm(o, n, inner, lw.norm, cfg.lightningNormEps, scratch(pass, "normed", n * inner));
  let gate = native.matmul(a, n, lw.gate);
  native.sigmoid(gate, gate);
  gate = hook(pass, name + "hook_gate", l, gate, [n, inner]);
  native.mul(gate, normed, normed);
  return native.matmul(normed, n, lw.out);
}

/** Softmax attention (docs/architecture.md §3.5): GQA, partial NeoX RoPE on the first rotary_dim dims, causal, KV cache per sequence. */
export function softmaxAttention(cfg: ModelConfig, l: number, a: Float32Array, pass: ForwardPass, w: WeightSource): Float32Array {
  const n = pass.tokens;
  const { numHeads: nh, numKvHeads: nkv, headDim: d } = cfg;
  const sw = softmaxWeights(cfg, l, w);
  const name = `blocks.${l}.attn.`;
  let q = native.matmul(a, n, sw.q, unhooked(pass, name + "hook_q", "q", n * nh * d));
  let k = native.matmul(a, n, sw.k, unhooked(pass, name + "hook_k", "k", n * nkv * d));
  let v = native.matmul(a, n, sw.v, unhooked(pass, name + "hook_v", "v", n * nkv * d));
  const positions = new Int32Array(n);
  for (const seq of pass.sequences) for (let t = 0; t < seq.tokens; t++) positions[seq.start + t] = seq.position + t;
  native.rope(q, n, nh, d, cfg.rotaryDim, positions, cfg.ropeTheta);
  native.rope(k, n, nkv, d, cfg.rotaryDim, positions, cfg.ropeTheta);
  q = hook(pass, name + "hook_q", l, q, [n, nh, d]);
  k = hook(pass, name + "hook_k", l, k, [n, nkv, d]);
  v = hook(pass, name + "hook_v", l, v, [n, nkv, d]);
  const scale = 1 / Math.sqrt(d);
  const inspected = pass.hooks.wants(name + "hook_scores") || pass.hooks.wants(name + "hook_pattern");
  let z = unhooked(pass, name + "hook_z", "z", n * nh * d) ?? new Float32Array(n * nh * d);
  pass.sequences.forEach((seq, i) => {
    const kv = seq.cache.kv[l]!;
    const rows = (x: Float32Array, width: number) => x.subarray(seq.start * width, (seq.start + seq.tokens) * width);
    kv.append(rows(k, nkv * d), rows(v, nkv * d), seq.tokens);
    if (inspected) z.set(inspectedAttention(cfg, l, rows(q, nh * d), kv, sequencePass(pass, i), scale), seq.start * nh * d);
    else native.attention(rows(q, nh * d), kv.keys, kv.values, seq.tokens, kv.length, nh, nkv, d, scale, rows(z, nh * d));
  });
  z = hook(pass, name + "hook_z", l, z, [n, nh, d]);
  return native.matmul(z, n, sw.o);
}

/**
 * Attention with its scores and pattern exposed to hooks ([heads, n, total], zero above the causal
 * diagonal). Only taken when a hook listens, so the fast path never materialises an n x n matrix. Hooks that
 * only read leave the output bit-identical to the fast path; an edit (returned or in place) is honoured.
 */
function inspectedAttention(cfg: ModelConfig, l: number, q: Float32Array, kv: KvCache, pass: Pass, scale: number): Float32Array {
  const n = pass.tokens;
  const { numHeads: nh, numKvHeads: nkv, headDim: d } = cfg;
  const total = kv.length;
  const name = `blocks.${l}.attn.`;
  const shape = [nh, n, total];
  let probs: Float32Array = new Float32Array(nh * n * total);
  native.attention(q, kv.keys, kv.values, n, total, nh, nkv, d, scale, undefined, probs);
  const z = native.attention(q, kv.keys, kv.values, n, total, nh, nkv, d, scale); // the fast path's own output, bit for bit
  let edited = false;
  if (pass.hooks.wants(name + "hook_scores")) {
    const scores = attentionScores(cfg, q, kv, n, scale);
    const hooked = hookAndCompare(pass, name + "hook_scores", l, scores, shape);
    if (hooked.edited) {
      probs = causalSoftmax(hooked.value, nh, n, total);
      edited = true;
    }
  }
  const pattern = hookAndCompare(pass, name + "hook_pattern", l, probs, shape);
  return edited || pattern.edited ? patternTimesValues(cfg, pattern.value, kv, n) : z;
}

/** Fires a hook and tells whether it changed the value (by returning another one or by editing it in place). */
function hookAndCompare(pass: Pass, name: string, layer: number, value: Float32Array, shape: number[]): { value: Float32Array; edited: boolean } {
  if (!pass.hooks.wants(name)) return { value, edited: false };
  const before = value.slice();
  const after = hook(pass, name, layer, value, shape);
  return { value: after, edited: after !== value || after.some((x, i) => !Object.is(x, before[i])) };
}

/** Per head h: q_h · K_gᵀ · scale, with -Infinity above the causal diagonal; [heads, n, total]. */
function attentionScores(cfg: ModelConfig, q: Float32Array, kv: KvCache, n: number, scale: number): Float32Array {
  const { numHeads: nh, numKvHeads: nkv, headDim: d } = cfg;
  const total = kv.length;
  const group = nh / nkv;
  const scores = new Float32Array(nh * n * total);
  for (let g = 0; g < nkv; g++) {
    const keys = gatherHead(kv.keys, total, nkv, d, g); // [total, d]
    for (let h = g * group; h < (g + 1) * group; h++) {
      const qh = gatherHead(q, n, nh, d, h);
      const s = native.matmul(qh, n, { dtype: "F32", data: keys, shape: [total, d] });
      for (let i = 0; i < n; i++) {
        const row = scores.subarray((h * n + i) * total, (h * n + i + 1) * total);
        const visible = total - n + i + 1;
        for (let j = 0; j < total; j++) row[j] = j < visible ? s[i * total + j] * scale : -Infinity;
      }
    }
  }
  return scores;
}

/** Row-wise softmax of [heads, n, total] scores (f64 sums); masked entries (-Infinity) become 0. */
function causalSoftmax(scores: Float32Array, nh: number, n: number, total: number): Float32Array {
  const out = new Float32Array(scores.length);
  for (let r = 0; r < nh * n; r++) out.set(softmax(scores.subarray(r * total, (r + 1) * total)), r * total);
  return out;
}

/** z[t, h, :] = Σ_j pattern[h, t, j] · V[j, g(h), :]. */
function patternTimesValues(cfg: ModelConfig, pattern: Float32Array, kv: KvCache, n: number): Float32Array {
  const { numHeads: nh, numKvHeads: nkv, headDim: d } = cfg;
  const total = kv.length;
  const group = nh / nkv;
  const z = new Float32Array(n * nh * d);
  for (let g = 0; g < nkv; g++) {
    const vals = gatherHead(kv.values, total, nkv, d, g); // [total, d]
    const valsT = new Float32Array(d * total);
    for (let j = 0; j < total; j++) for (let c = 0; c < d; c++) valsT[c * total + j] = vals[j * d + c];
    for (let h = g * group; h < (g + 1) * group; h++) {
      const zh = native.matmul(pattern.subarray(h * n * total, (h + 1) * n * total), n, { dtype: "F32", data: valsT, shape: [d, total] });
      for (let t = 0; t < n; t++) z.set(zh.subarray(t * d, (t + 1) * d), (t * nh + h) * d);
    }
  }
  return z;
}

/** Rows [rows, heads, d] → the contiguous [rows, d] of one head. */
export function gatherHead(x: Float32Array, rows: number, heads: number, d: number, h: number): Float32Array {
  const out = new Float32Array(rows * d);
  for (let t = 0; t < rows; t++) out.set(x.subarray((t * heads + h) * d, (t * heads + h + 1) * d), t * d);
  return out;
}

/** Sparse MoE (docs/architecture.md §3.6): softmax router, top-k renormalised, SwiGLU experts; only routed experts are read. */
export function moe(cfg: ModelConfig, l: number, b: Float32Array, pass: Pass, w: WeightSource): Float32Array {
  const n = pass.tokens;
  const { hiddenSize: hs, numExperts: ne, topK: k } = cfg;
  const name = `blocks.${l}.moe.`;
  let logits = native.matmul(b, n, routerWeight(cfg, l, w));
  logits = hook(pass, name + "hook_router_logits", l, logits, [n, ne]);
  let idx = new Int32Array(n * k);
  let weights = new Float32Array(n * k);
  native.routerTopk(logits, n, ne, k, idx, weights);
  idx = hook(pass, name + "hook_topk_idx", l, idx, [n, k]);
  weights = hook(pass, name + "hook_topk_weights", l, weights, [n, k]);
  const experts = routedExperts(cfg, l, idx, w);
  if (pass.hooks.wants(name + "hook_expert_out")) {
    let slots = native.moeExperts(b, n, hs, idx, k, experts);
    slots = hook(pass, name + "hook_expert_out", l, slots, [n, k, hs]);
    return native.weightedSum(slots, weights, n, k, hs);
  }
  return native.moe(b, n, hs, idx, weights, k, experts); // the same sums without the [n, k, hs] slots
}

/** Tokens up to which a layer nobody hooks runs as its native DecoderLayer (in a pass where hooks listen elsewhere). */
export const NATIVE_LAYER_MAX_TOKENS = 16;

/**
 * Rows × hidden size up to which a pass with no hook registered runs as one native call (Decoder.forwardPacked), its
 * sequences packed: its intermediates live in buffers that the addon keeps and reuses (up to 8 MiB per [rows, hidden]
 * array). Longer passes run op by op, a long sequence's lightning attention in chunks.
 */
export const NATIVE_PASS_MAX_FLOATS = 2 ** 21;

/** Everything layer l's native object holds: its constants and every weight (all experts included). */
export function decoderLayerSpec(cfg: ModelConfig, l: number, w: WeightSource, slopes: Float32Array | null): native.DecoderLayerSpec {
  const hs = cfg.hiddenSize;
  const p = `model.layers.${l}.`;
  const lightning = cfg.layerTypes[l] === "lightning";
  return {
    hidden: hs,
    heads: cfg.numHeads,
    headDim: cfg.headDim,
    ln1: w.vector(p + "input_layernorm.weight", hs),
    ln2: w.vector(p + "post_attention_layernorm.weight", hs),
    eps: cfg.rmsNormEps,
    alpha: cfg.alpha[cfg.layerTypes[l]],
    beta: cfg.beta[cfg.layerTypes[l]],
    postnorm: cfg.postnorm,
    router: routerWeight(cfg, l, w),
    topK: cfg.topK,
    experts: Array.from({ length: cfg.numExperts }, (_, e) => expertWeights(cfg, l, e, w)),
    mlpAlpha: cfg.alpha.mlp,
    mlpBeta: cfg.beta.mlp,
    ...(lightning
      ? { lightning: { ...lightningWeights(cfg, l, w), normEps: cfg.lightningNormEps, slopes: slopes!, blockSize: cfg.blockSize } }
      : { softmax: { ...softmaxWeights(cfg, l, w), kvHeads: cfg.numKvHeads, rotaryDim: cfg.rotaryDim, theta: cfg.ropeTheta } }),
  };
}

/**
 * Layer l as one native object (every weight of it read now, all experts included): for a checkpoint held in
 * memory whole. Its forward is bit-identical to the op-by-op sublayers above; decode then spends its time reading
 * weights, not crossing into JavaScript between kernels.
 */
export function nativeLayer(cfg: ModelConfig, l: number, w: WeightSource, slopes: Float32Array | null): native.DecoderLayer {
  return native.decoderLayer(decoderLayerSpec(cfg, l, w, slopes));
}

/** Layer l's decoding state as the native objects take it; a softmax layer's KV cache gets room for n more rows
 *  (count them in with `kv.length += n` after the call). */
export function nativeCache(l: number, cache: ModelCache, n: number): native.DecoderLayerCache {
  const state = cache.lightning[l];
  if (state) return state;
  const kv = cache.kv[l]!;
  kv.reserve(n);
  return { keys: kv.keys, values: kv.values, length: kv.length, position: cache.position };
}

/** Runs layer l through its native object on pass.tokens rows of x, updating its lightning state or KV cache. */
export function runNativeLayer(layer: native.DecoderLayer, l: number, x: Float32Array, pass: Pass, cache: ModelCache): Float32Array {
  const n = pass.tokens;
  const out = layer.forward(x, n, nativeCache(l, cache, n));
  const kv = cache.kv[l];
  if (kv) kv.length += n;
  return out;
}
