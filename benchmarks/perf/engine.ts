// Engine throughput on a checkpoint: prefill tokens/s, decode tokens/s after a context, the decoding state's
// memory against the context, and how one lightning and one softmax attention sublayer scale with length.
import v8 from "node:v8";
import vm from "node:vm";
import * as native from "../../native/index.ts";
import type { Model } from "../../engine/model.ts";
import type { ModelCache } from "../../engine/cache.ts";
import { lightningAttention, softmaxAttention, type Pass } from "../../engine/layers.ts";
import { KvCache } from "../../engine/cache.ts";
import { slopes } from "../../engine/config.ts";

export interface PrefillResult { tokens: number; seconds: number; tokS: number }
export interface DecodeResult { context: number; steps: number; seconds: number; tokS: number }
export interface MemoryResult {
  context: number;
  lightningStateBytes: number;
  kvCacheBytes: number;
  /** reserved by the KV caches (they grow by doubling) */
  kvReservedBytes: number;
  /** process resident set after a full GC with the op-output pool emptied */
  rssBytes: number;
}
export interface ScalingPoint {
  tokens: number;
  /** one lightning attention sublayer (projections, kernel, norm, gate), seconds */
  lightningLayerS: number;
  /** one softmax attention sublayer (projections, RoPE, attention, o_proj), seconds */
  softmaxLayerS: number;
  /** the lightning block-prefill kernel alone */
  lightningKernelS: number;
  /** the causal attention kernel alone */
  attentionKernelS: number;
}

/** Deterministic token ids in [2, vocab). */
export function tokenIds(n: number, vocab: number, seed = 1): number[] {
  let s = (seed * 2654435761) >>> 0 || 1;
  return Array.from({ length: n }, () => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return 2 + ((s >>> 0) % (vocab - 2));
  });
}

/** Uniform values in [offset - 1, offset + 1), seeded. */
function noise(len: number, seed: number, offset = 0): Float32Array {
  const a = new Float32Array(len);
  let s = (seed * 2654435761) >>> 0 || 1;
  for (let i = 0; i < len; i++) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    a[i] = offset + (s >>> 0) / 2 ** 31 - 1;
  }
  return a;
}

function now(): number {
  return Number(process.hrtime.bigint()) / 1e9;
}

/** Fastest of `tries` prefills of n tokens on a fresh cache (logits of the last position only). */
export async function prefill(model: Model, n: number, tries = 2): Promise<PrefillResult> {
  const ids = tokenIds(n, model.config.vocabSize);
  let best = Infinity;
  for (let i = 0; i < tries; i++) {
    const t = now();
    await model.forward(ids, { logits: "last" });
    best = Math.min(best, now() - t);
  }
  return { tokens: n, seconds: best, tokS: n / best };
}

/** A cache holding `context` tokens (a fresh one for 0). */
export async function contextCache(model: Model, context: number): Promise<ModelCache> {
  const cache = model.newCache();
  if (context > 0) await model.forward(tokenIds(context, model.config.vocabSize, 7), { cache, logits: "none" });
  return cache;
}

/** `steps` single-token forwards (logits of that token) on top of a cache of `context` tokens. */
export async function decode(model: Model, context: number, steps: number, cache?: ModelCache): Promise<DecodeResult> {
  cache ??= await contextCache(model, context);
  const ids = tokenIds(steps + 2, model.config.vocabSize, 3);
  await model.forward([ids[0]], { cache, logits: "last" }); // warm
  const t = now();
  for (let i = 0; i < steps; i++) await model.forward([ids[i + 1]], { cache, logits: "last" });
  const s = now() - t;
  return { context, steps, seconds: s, tokS: steps / s };
}

let gcFn: (() => void) | null = null;
/** A full garbage collection (without starting node with --expose-gc). */
export function collectGarbage(): void {
  if (!gcFn) {
    v8.setFlagsFromString("--expose-gc");
    gcFn = vm.runInNewContext("gc") as () => void;
  }
  gcFn();
  native.releaseMemory();
}

export function memory(cache: ModelCache, context: number): MemoryResult {
  collectGarbage();
  const m = cache.memory();
  let kvReserved = 0;
  for (const kv of cache.kv) if (kv) kvReserved += 2 * kv.capacity * kv.rowWidth * 4;
  return {
    context,
    lightningStateBytes: m.lightningStateBytes,
    kvCacheBytes: m.kvCacheBytes,
    kvReservedBytes: kvReserved,
    rssBytes: process.memoryUsage().rss,
  };
}

function timeIt(f: () => void, tries: number): number {
  let best = Infinity;
  for (let i = 0; i < tries; i++) {
    const t = now();
    f();
    best = Math.min(best, now() - t);
  }
  return best;
}

/** Times the first lightning and the first softmax attention sublayer of the model, and their kernels, at n tokens. */
export function scaling(model: Model, n: number, tries = 2): ScalingPoint {
  const cfg = model.config;
  const lLayer = cfg.layerTypes.indexOf("lightning");
  const sLayer = cfg.layerTypes.indexOf("softmax");
  const { hiddenSize: hs, numHeads: nh, numKvHeads: nkv, headDim: d } = cfg;
  const a = noise(n * hs, 5);
  const pass: Pass = { hooks: model.hooks, phase: "prefill", position: 0, tokens: n };
  const sl = slopes(cfg, lLayer);
  const lightningLayerS = timeIt(() => {
    lightningAttention(cfg, lLayer, a, pass, model, new Float32Array(nh * d * d), sl);
  }, tries);
  const softmaxLayerS = timeIt(() => {
    softmaxAttention(cfg, sLayer, a, pass, model, new KvCache(nkv * d, n));
  }, tries);
  const q = noise(n * nh * d, 6, 0.5); // SiLU outputs are mostly positive: keep the kernels' inputs so
  const kvRows = noise(n * nkv * d, 7);
  const lightningKernelS = timeIt(() => {
    native.lightningPrefill(q, q, q, n, nh, d, sl, cfg.blockSize, new Float32Array(nh * d * d));
  }, tries);
  const attentionKernelS = timeIt(() => {
    native.attention(q, kvRows, kvRows, n, n, nh, nkv, d, 1 / Math.sqrt(d));
  }, tries);
  return { tokens: n, lightningLayerS, softmaxLayerS, lightningKernelS, attentionKernelS };
}
