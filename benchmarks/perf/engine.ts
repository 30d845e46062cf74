// Engine throughput on a checkpoint: prefill tokens/s, decode tokens/s after a context, the decoding state's
// memory against the context, and how one lightning and one softmax attention sublayer scale with length.
import v8 from "node:v8";
import vm from "node:vm";
import * as native from "../../native/index.ts";
import type { Model } from "../../engine/model.ts";
import type { ModelCache } from "../../engine/cache.ts";
import { lightningAttention, softmaxAttention, type ForwardPass } from "../../engine/layers.ts";
import { slopes } from "../../engine/config.ts";

export interface PrefillResult { tokens: number; seconds: number; tokS: number }
export interface DecodeResult { context: number; steps: number; seconds: number; tokS: number }
export interface MemoryResult {
  context: number;
  lightningStateBytes: number;
  kvCacheBytes: number;
  /** reserved by the KV caches (they grow by half their size at a time, or to a long prefill's need) */
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

/** Reads every weight (weights load lazily; 256 tokens route to every expert) and lets the JavaScript of the prefill
 *  and decode paths reach its optimised code (a few hundred decode steps). */
export async function warmUp(model: Model): Promise<void> {
  const { cache } = await model.forward(tokenIds(256, model.config.vocabSize, 11), { logits: "last" });
  for (const id of tokenIds(256, model.config.vocabSize, 12)) await model.forward([id], { cache, logits: "last" });
}

/** Fastest of `tries` prefills of n tokens on a fresh cache (logits of the last position only); also returns the
 *  cache of the last one. */
export async function prefill(model: Model, n: number, tries = 2): Promise<PrefillResult & { cache: ModelCache }> {
  const ids = tokenIds(n, model.config.vocabSize);
  let best = Infinity;
  let cache = model.newCache();
  for (let i = 0; i < tries; i++) {
    cache = model.newCache();
    const t = now();
    await model.forward(ids, { cache, logits: "last" });
    best = Math.min(best, now() - t);
  }
  return { tokens: n, seconds: best, tokS: n / best, cache };
}

/** A cache holding `context` tokens (a fresh one for 0). */
export async function contextCache(model: Model, context: number): Promise<ModelCache> {
  const cache = model.newCache();
  if (context > 0) await model.forward(tokenIds(context, model.config.vocabSize, 7), { cache, logits: "none" });
  return cache;
}

/** `steps` single-token forwards (logits of that token) on top of a cache of `context` tokens; the fastest of
 *  `tries` such runs (each continues the same cache: the context grows by steps + 1 per try). */
export async function decode(model: Model, context: number, steps: number, cache?: ModelCache, tries = 1): Promise<DecodeResult> {
  cache ??= await contextCache(model, context);
  const ids = tokenIds(steps + 2, model.config.vocabSize, 3);
  let best = Infinity;
  for (let k = 0; k < tries; k++) {
    await model.forward([ids[0]], { cache, logits: "last" }); // warm
    const t = now();
    for (let i = 0; i < steps; i++) await model.forward([ids[i + 1]], { cache, logits: "last" });
    best = Math.min(best, now() - t);
  }
  return { context, steps, seconds: best, tokS: steps / best };
}

let gcFn: (() => void) | null = null;
/** A full garbage collection (without starting node with --expose-gc); with `release`, the op-output pool and the
 *  allocator's free memory are given back to the system too. */
export function collectGarbage(release = false): void {
  if (!gcFn) {
    v8.setFlagsFromString("--expose-gc");
    gcFn = vm.runInNewContext("gc") as () => void;
  }
  gcFn();
  if (release) native.releaseMemory();
}

/** Waits until the garbage-collected output arrays are back in the pool (their finalizers run on the event loop);
 *  with `release`, then empties the pool. */
async function settle(release: boolean): Promise<void> {
  for (let i = 0; i < 3; i++) {
    collectGarbage();
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  collectGarbage(release);
}

export async function memory(cache: ModelCache, context: number): Promise<MemoryResult> {
  await settle(true);
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

/** Fastest of `tries` timed runs after one untimed run; the garbage of each run is collected and back in the pool
 *  before the next (as for the layers of one forward pass). */
async function timeIt(f: () => void, tries: number): Promise<number> {
  f();
  let best = Infinity;
  for (let i = 0; i < tries; i++) {
    await settle(false);
    const t = now();
    f();
    best = Math.min(best, now() - t);
  }
  return best;
}

/** Times the first lightning and the first softmax attention sublayer of the model, and their kernels, at n tokens
 *  (one pass object for all runs: its scratch arrays are reused, as by the layers of one forward pass). */
export async function scaling(model: Model, n: number): Promise<ScalingPoint> {
  const tries = 3; // the lightning runs are short
  const softmaxTries = n >= 16384 ? 1 : 2;
  const cfg = model.config;
  const lLayer = cfg.layerTypes.indexOf("lightning");
  const sLayer = cfg.layerTypes.indexOf("softmax");
  const { hiddenSize: hs, numHeads: nh, numKvHeads: nkv, headDim: d } = cfg;
  const a = noise(n * hs, 5);
  const cache = model.newCache();
  cache.kv[sLayer]!.reserve(n);
  const pass: ForwardPass = { hooks: model.hooks, phase: "prefill", position: 0, tokens: n, sequences: [{ start: 0, tokens: n, position: 0, cache }], nonFinite: null };
  const sl = slopes(cfg, lLayer);
  const lightningLayerS = await timeIt(() => {
    cache.lightning[lLayer]!.fill(0);
    lightningAttention(cfg, lLayer, a, pass, model, sl);
  }, tries);
  const softmaxLayerS = await timeIt(() => {
    cache.kv[sLayer]!.length = 0;
    softmaxAttention(cfg, sLayer, a, pass, model);
  }, softmaxTries);
  const q = noise(n * nh * d, 6, 0.5); // SiLU outputs are mostly positive: keep the kernels' inputs so
  const kvRows = noise(n * nkv * d, 7);
  const out = new Float32Array(n * nh * d);
  const lightningKernelS = await timeIt(() => {
    native.lightningPrefill(q, q, q, n, nh, d, sl, cfg.blockSize, new Float32Array(nh * d * d), out);
  }, tries);
  const attentionKernelS = await timeIt(() => {
    native.attention(q, kvRows, kvRows, n, n, nh, nkv, d, 1 / Math.sqrt(d), out);
  }, softmaxTries);
  return { tokens: n, lightningLayerS, softmaxLayerS, lightningKernelS, attentionKernelS };
}
