/**
 * The MiniMax-M1 decoder (docs/architecture.md §3): embedding, N postnorm decoder layers (lightning or softmax attention,
 * then MoE), final norm, LM head. Weights are read from the checkpoint on demand, one tensor at a time.
 */
import os from "node:os";
import * as native from "../native/index.ts";
import { Checkpoint } from "./checkpoint.ts";
import { slopes, type ModelConfig } from "./config.ts";
import { ModelCache } from "./cache.ts";
import { HookSet, ActivationCache, hookNames, bySequence, type HookFilter, type HookContext } from "./hooks.ts";
import { hook, lightningAttention, softmaxAttention, moe, nativeLayer, nativeCache, runNativeLayer, watchFinite, NATIVE_LAYER_MAX_TOKENS, NATIVE_PASS_MAX_FLOATS, type NonFinitePoint, type Pass, type ForwardPass, type PassSequence, type WeightSource } from "./layers.ts";
import { Tensor, kindOf } from "./tensor.ts";
import { Tokenizer } from "./tokenizer.ts";
import { InputError } from "./errors.ts";
import { Generation, type GenerateOptions } from "./generate.ts";
import { generateBatch, type BatchSequence, type GenerateBatchOptions } from "./batch.ts";
import { SubStep } from "./substep.ts";
import { Stepper } from "./stepper.ts";
import { forwardForBackward, type ForwardForBackwardOptions, type Tape } from "./train/tape.ts";
import { lossAndGradients, type LossOptions, type LossResult } from "./train/loss.ts";
import { Trainer, type TrainerOptions } from "./train/trainer.ts";
import { saveCheckpoint } from "./train/save.ts";

export interface LoadOptions {
  /** Keep at most this many bytes of weights resident (per-layer streaming for checkpoints larger than memory). */
  residentBudgetBytes?: number;
  /** Use this config instead of the checkpoint's config.json. */
  config?: ModelConfig;
  /** Read every weight once at load and fail, naming the tensor, if any holds NaN or ±Infinity. */
  checkFinite?: boolean;
}

export interface ForwardOptions {
  /** Decoding state to continue from (updated in place); a fresh one when absent. */
  cache?: ModelCache;
  /** Which positions get logits: all (default), the last one, or none. */
  logits?: "all" | "last" | "none";
  /** Labels hooks' context; defaults to prefill for more than one token, decode for one token on a cache. */
  phase?: "prefill" | "decode";
  signal?: AbortSignal;
}

export interface BatchOptions {
  /** Decoding state of each sequence to continue from (updated in place); fresh ones when absent. */
  caches?: ModelCache[];
  /** Which positions of each sequence get logits: all (default), its last one, or none. */
  logits?: "all" | "last" | "none";
  phase?: "prefill" | "decode";
  signal?: AbortSignal;
}

/** How stepBatch and prefillMany run their native pass. */
export interface BatchPassOptions {
  /** On a thread of its own with single-threaded kernels (Decoder.stepBatchAsync, forwardPackedAsync: the same bits),
   *  so that the event loop stays free and passes over other sequences run beside it, one per core (the serving
   *  scheduler's lanes). Nothing may touch the caches until the pass settles. Without it the pass runs on this
   *  thread, each op over all cores. */
  ownThread?: boolean;
}

export interface BatchResult {
  /** per sequence: [rows, vocab] f32 (rows = its tokens, 1 or 0 as `logits` says) */
  readonly logits: Tensor[];
  readonly caches: ModelCache[];
}

export interface ForwardResult {
  /** [rows, vocab] f32, rows = tokens (logits "all"), 1 ("last") or 0 ("none") */
  readonly logits: Tensor;
  readonly cache: ModelCache;
  /** With hooks registered: the first watched point (the embedding, a layer's output, a hooked point) whose value
   *  held NaN or ±Infinity; null if none did; absent without hooks (nothing watched) */
  readonly nonFinite?: NonFinitePoint | null;
}

export class Model implements WeightSource {
  readonly hooks = new HookSet();
  private readonly vectors = new Map<string, Float32Array>();
  private readonly layerSlopes: (Float32Array | null)[];
  /** the hook names inside each layer */
  private readonly layerHookNames: string[][];
  /** native layer and model objects, built on first use; they hold their weights, so they are dropped when the
   *  checkpoint evicts */
  private nativeObjects: NativeObjects = { evictions: 0, layers: [] };
  private nativeFits: boolean | undefined;

  private constructor(readonly checkpoint: Checkpoint, readonly tokenizer: Tokenizer | null) {
    const cfg = checkpoint.config;
    this.layerSlopes = cfg.layerTypes.map((t, l) => (t === "lightning" ? slopes(cfg, l) : null));
    const names = hookNames(cfg.layerTypes);
    this.layerHookNames = cfg.layerTypes.map((_, l) => names.filter((name) => name.startsWith(`blocks.${l}.`)));
  }

  static async load(dir: string, options: LoadOptions = {}): Promise<Model> {
    const checkpoint = Checkpoint.open(dir, options);
    try {
      if (options.checkFinite) checkpoint.checkFinite();
    } catch (e) {
      checkpoint.close();
      throw e;
    }
    const tokenizer = await Tokenizer.load(dir);
    return new Model(checkpoint, tokenizer);
  }

  get config(): ModelConfig {
    return this.checkpoint.config;
  }

  newCache(): ModelCache {
    return new ModelCache(this.config);
  }

  weight(name: string, shape: number[]): native.Weight {
    return this.checkpoint.weight(name, shape) as native.Weight; // Checkpoint.weight admits only F32, BF16 and F16
  }

  /** 1-D weights (norms) as f32, converted once and kept (until the checkpoint's tensors change): they are tiny. */
  vector(name: string, length: number): Float32Array {
    this.liveNativeObjects();
    let v = this.vectors.get(name);
    if (!v) {
      v = this.checkpoint.weight(name, [length]).toFloat32();
      this.vectors.set(name, v);
    }
    return v;
  }

  /** Token ids as an Int32Array, each checked against the vocabulary. */
  checkIds(ids: ArrayLike<number>): Int32Array {
    if (typeof ids !== "object" || ids === null || typeof ids.length !== "number") {
      throw new InputError(`forward: ids must be an array of token ids (or an Int32Array), got ${kindOf(ids)}`);
    }
    const vocab = this.config.vocabSize;
    const out = new Int32Array(ids.length);
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i];
      if (!Number.isInteger(id) || id < 0 || id >= vocab) {
        throw new InputError(`token id ${id} at index ${i} is outside the vocabulary [0, ${vocab})`);
      }
      out[i] = id;
    }
    return out;
  }

  /** Runs new tokens through the model on top of `cache` (prefill of any length, or one decode step). */
  async forward(ids: ArrayLike<number>, options: ForwardOptions = {}): Promise<ForwardResult> {
    if (typeof options !== "object" || options === null) throw new InputError(`forward: options must be an object, got ${kindOf(options)}`);
    options.signal?.throwIfAborted();
    const run = this.run(ids, options, false);
    for (let r = run.next(); ; r = run.next()) {
      await yieldSometimes(); // after the last step too: a decode step in one native call has no step between layers
      if (r.done) return r.value;
      options.signal?.throwIfAborted();
    }
  }

  /**
   * The forward pass as a generator: with `stepping`, it pauses at every sub-step (the hook points that carry the
   * stream: embed; per layer ln1.hook_normalized, hook_attn_out, hook_resid_mid, ln2.hook_normalized, hook_mlp_out,
   * hook_resid_post; ln_final.hook_normalized; logits) with that sub-step's inputs and output, and
   * continues with the output as the caller left it. It also yields null between layers (a chance to let the
   * event loop run); without `stepping` those are its only pauses and no sub-step object is made.
   */
  *run(ids: ArrayLike<number>, options: ForwardOptions, stepping: boolean): Generator<SubStep | null, ForwardResult, void> {
    const tokens = this.checkIds(ids);
    if (tokens.length === 0) throw new InputError("forward: no token ids given");
    const cache = options.cache ?? this.newCache();
    this.checkCache(cache, "forward: the cache");
    const mode = options.logits ?? "all";
    checkArraySizes(this.config, tokens.length, mode);
    const { logits, nonFinite } = yield* this.packedPass([tokens], [cache], mode, options.phase, stepping);
    return { logits, cache, nonFinite };
  }

  /**
   * Runs several sequences (prompts of any lengths) in one pass, each on its own cache (fresh ones when absent):
   * their rows are packed, so the projections, norms and experts run once for all tokens, while attention and the
   * lightning state stay within each sequence (positions restart per sequence). Equals one forward call per sequence
   * to f32 rounding. With no hook registered (and at most 2^21 / hidden rows) the whole pass is one native call
   * (Decoder.forwardPacked). Hooks see the packed rows with `ctx.sequences`; attention's score, pattern and state
   * hooks fire once per sequence with `ctx.sequence`.
   */
  async forwardBatch(sequences: readonly ArrayLike<number>[], options: BatchOptions = {}): Promise<BatchResult> {
    options.signal?.throwIfAborted();
    if (sequences.length === 0) throw new InputError("forwardBatch: no sequences given");
    const tokens = sequences.map((ids, i) => {
      if (ids.length === 0) throw new InputError(`forwardBatch: sequence ${i} has no token ids`);
      return this.checkIds(ids);
    });
    const caches = options.caches ?? tokens.map(() => this.newCache());
    if (caches.length !== tokens.length) throw new InputError(`forwardBatch: ${caches.length} caches for ${tokens.length} sequences`);
    caches.forEach((c, i) => this.checkCache(c, `forwardBatch: cache ${i}`));
    if (new Set(caches).size !== caches.length) throw new InputError("forwardBatch: each sequence needs its own cache (the same cache was given twice)");
    const mode = options.logits ?? "all";
    const run = this.packedPass(tokens, caches, mode, options.phase, false);
    for (let r = run.next(); ; r = run.next()) {
      await yieldSometimes();
      if (r.done) {
        const vocab = this.config.vocabSize;
        const all = r.value.logits.f32;
        let row = 0;
        const logits = tokens.map((t) => {
          const rows = mode === "all" ? t.length : mode === "last" ? 1 : 0;
          const part = new Tensor("F32", [rows, vocab], all.slice(row * vocab, (row + rows) * vocab));
          row += rows;
          return part;
        });
        return { logits, caches };
      }
      options.signal?.throwIfAborted();
    }
  }

  private checkCache(cache: ModelCache, what: string): void {
    if (cache.config !== this.config && JSON.stringify(cache.config.layerTypes) !== JSON.stringify(this.config.layerTypes)) {
      throw new InputError(`${what} was made for a model with another layer pattern`);
    }
  }

  /** The forward pass over sequences packed row after row; logits rows per sequence: all, its last, or none. */
  private *packedPass(
    tokenLists: readonly Int32Array[], caches: readonly ModelCache[], mode: "all" | "last" | "none", phaseOption: "prefill" | "decode" | undefined, stepping: boolean,
  ): Generator<SubStep | null, { logits: Tensor; nonFinite?: NonFinitePoint | null }, void> {
    const cfg = this.config;
    const hs = cfg.hiddenSize;
    let n = 0;
    const sequences: PassSequence[] = tokenLists.map((t, i) => {
      const seq = { start: n, tokens: t.length, position: caches[i].position, cache: caches[i] };
      n += t.length;
      return seq;
    });
    const tokens = new Int32Array(n);
    tokenLists.forEach((t, i) => tokens.set(t, sequences[i].start));
    const decoding = sequences.every((s) => s.tokens === 1 && s.position > 0);
    const phase = phaseOption ?? (decoding ? "decode" : "prefill");
    const pass: ForwardPass = { hooks: this.hooks, phase, position: sequences[0].position, tokens: n, sequences, nonFinite: null };
    checkArraySizes(cfg, n, mode);
    const decoder = !stepping && this.hooks.size === 0 && n * hs <= NATIVE_PASS_MAX_FLOATS ? this.nativeDecoder() : null;
    if (decoder) return { logits: this.nativePass(decoder, sequences, tokens, mode) };
    const single = sequences.length === 1;
    // A hook point: its hooks fire, then (when stepping) the pass pauses there as a sub-step of the same name.
    const point: PointFn = (name, layer, inputs, output, shape) => {
      const value = hook(pass, name, layer, output, shape);
      return stepping ? this.pause(pass, name, layer, inputs, value, shape) : noPause(value);
    };

    let x = native.embedding(tokens, this.weight("model.embed_tokens.weight", [cfg.vocabSize, hs]));
    x = yield* point("embed", null, {}, x, [n, hs]);
    watchFinite(pass, "embed", null, x);
    for (let l = 0; l < cfg.numLayers; l++) {
      const fast = single && !stepping && n <= NATIVE_LAYER_MAX_TOKENS && !this.layerHookNames[l].some((name) => this.hooks.wants(name));
      const layer = fast ? this.nativeLayer(l) : null;
      x = layer ? runNativeLayer(layer, l, x, pass, caches[0]) : yield* this.layer(l, x, pass, point);
      watchFinite(pass, `blocks.${l}.hook_resid_post`, l, x); // the layer's output
      yield null;
    }
    for (const seq of sequences) seq.cache.position += seq.tokens;
    const nonFinite = this.hooks.size > 0 ? pass.nonFinite : undefined;

    if (mode === "none") return { logits: new Tensor("F32", [0, cfg.vocabSize], new Float32Array(0)), nonFinite };
    let last = x;
    let rows = n;
    if (mode === "last") {
      rows = sequences.length;
      last = single ? x.slice((n - 1) * hs) : new Float32Array(rows * hs);
      if (!single) sequences.forEach((seq, i) => last.set(x.subarray((seq.start + seq.tokens - 1) * hs, (seq.start + seq.tokens) * hs), i * hs));
    }
    let h = native.rmsnorm(last, rows, hs, this.vector("model.norm.weight", hs), cfg.rmsNormEps);
    h = yield* point("ln_final.hook_normalized", null, { input: last }, h, [rows, hs]);
    let logits = native.matmul(h, rows, this.lmHead());
    logits = yield* point("logits", null, { input: h }, logits, [rows, cfg.vocabSize]);
    return { logits: new Tensor("F32", [rows, cfg.vocabSize], logits), nonFinite };
  }

  private *pause(pass: Pass, name: string, layer: number | null, inputs: Record<string, Float32Array>, output: Float32Array, shape: number[]): Generator<SubStep, Float32Array, void> {
    const step = new SubStep(name, layer, pass, inputs, new Tensor("F32", shape, output));
    yield step;
    return step.output.f32;
  }

  /** Starts generating from a prompt (token ids, or text when the checkpoint has a tokenizer). */
  generate(prompt: ArrayLike<number> | string, options: GenerateOptions = {}): Generation {
    return new Generation(this, this.promptIds(prompt), options);
  }

  /** Generates from many prompts at once (a decode batch, see engine/batch.ts); results in prompt order. */
  generateBatch(prompts: readonly (ArrayLike<number> | string)[], options: GenerateBatchOptions = {}): Promise<BatchSequence[]> {
    return generateBatch(this, prompts, options);
  }

  /**
   * One decode step of many sequences: ids[s] is the new token of the sequence whose state is caches[s] (each
   * updated) → its next logits. With the whole model native and no hook registered, every weight is read once for
   * all of them; each row has the bits of `forward([ids[s]], { cache: caches[s] })`, which runs otherwise.
   */
  async stepBatch(ids: readonly number[], caches: readonly ModelCache[], signal?: AbortSignal, options: BatchPassOptions = {}): Promise<Float32Array[]> {
    if (ids.length !== caches.length) throw new InputError(`stepBatch: ${ids.length} ids for ${caches.length} caches`);
    if (new Set(caches).size !== caches.length) throw new InputError("stepBatch: a cache appears twice (each sequence needs its own)");
    signal?.throwIfAborted();
    const tokens = this.checkIds(ids);
    const decoder = this.hooks.size === 0 ? this.nativeDecoder() : null;
    if (!decoder) {
      const rows: Float32Array[] = [];
      for (let s = 0; s < tokens.length; s++) {
        rows.push((await this.forward([tokens[s]], { cache: caches[s], logits: "last", phase: "decode", signal })).logits.f32);
      }
      return rows;
    }
    const { vocabSize } = this.config;
    const layerCaches = caches.map((c) => this.layerCaches(c, 1));
    const logits = options.ownThread ? await decoder.stepBatchAsync(tokens, layerCaches) : decoder.stepBatch(tokens, layerCaches);
    for (const c of caches) advanceCache(c, 1);
    if (!options.ownThread) await yieldSometimes();
    return caches.map((_, s) => logits.subarray(s * vocabSize, (s + 1) * vocabSize));
  }

  /**
   * Prefills several prompts, each on its own cache (updated) → each one's next-token logits, with the bits that
   * `forward(prompts[s], { cache: caches[s], logits: "last" })` gives alone. With the whole model native and no hook
   * registered, the prompts of at most DOT_ROWS tokens run packed in one native pass with every product on the dot
   * path: alone such a prompt takes that path too, and its rows do not depend on the other rows. Longer prompts
   * take the packed GEMM alone, whose sums the packing would change, so they run one forward each.
   */
  async prefillMany(prompts: readonly Int32Array[], caches: readonly ModelCache[], signal?: AbortSignal, options: BatchPassOptions = {}): Promise<Float32Array[]> {
    if (prompts.length !== caches.length) throw new InputError(`prefillMany: ${prompts.length} prompts for ${caches.length} caches`);
    if (new Set(caches).size !== caches.length) throw new InputError("prefillMany: a cache appears twice (each prompt needs its own)");
    signal?.throwIfAborted();
    const ids = prompts.map((p, s) => {
      if (p.length === 0) throw new InputError(`prefillMany: prompt ${s} has no token ids`);
      this.checkCache(caches[s], `prefillMany: cache ${s}`);
      return this.checkIds(p);
    });
    const out: Float32Array[] = [];
    const decoder = this.hooks.size === 0 ? this.nativeDecoder() : null;
    const packed = decoder ? ids.flatMap((p, s) => (p.length <= native.DOT_ROWS ? [s] : [])) : [];
    // as many prompts per pass as its buffers take (see NATIVE_PASS_MAX_FLOATS)
    const perPass = Math.max(1, Math.floor(NATIVE_PASS_MAX_FLOATS / (native.DOT_ROWS * this.config.hiddenSize)));
    for (let g = 0; g < packed.length; g += perPass) {
      const group = packed.slice(g, g + perPass);
      let n = 0;
      const sequences: PassSequence[] = group.map((s) => {
        const seq = { start: n, tokens: ids[s].length, position: caches[s].position, cache: caches[s] };
        n += ids[s].length;
        return seq;
      });
      const tokens = new Int32Array(n);
      group.forEach((s, i) => tokens.set(ids[s], sequences[i].start));
      const logits = options.ownThread ? await this.nativePassAsync(decoder!, sequences, tokens) : this.nativePass(decoder!, sequences, tokens, "last", true).f32;
      const vocab = this.config.vocabSize;
      group.forEach((s, i) => (out[s] = logits.subarray(i * vocab, (i + 1) * vocab)));
      if (!options.ownThread) await yieldSometimes();
      signal?.throwIfAborted();
    }
    for (let s = 0; s < prompts.length; s++) {
      out[s] ??= (await this.forward(ids[s], { cache: caches[s], logits: "last", phase: "prefill", signal })).logits.f32;
    }
    return out;
  }

  promptIds(prompt: ArrayLike<number> | string): ArrayLike<number> {
    if (typeof prompt !== "string") {
      if (typeof prompt !== "object" || prompt === null || typeof prompt.length !== "number") {
        throw new InputError(`prompt must be text or an array of token ids, got ${kindOf(prompt)}`);
      }
      return prompt;
    }
    if (!this.tokenizer) throw new InputError(`this checkpoint (${this.checkpoint.dir}) has no tokenizer.json: give token ids instead of text`);
    return this.tokenizer.encode(prompt);
  }

  /** A forward pass that pauses at every sub-step (see Stepper). */
  step(ids: ArrayLike<number> | string, options: ForwardOptions = {}): Stepper {
    return new Stepper(this, this.promptIds(ids), options);
  }

  /** Runs a forward pass recording the activations whose hook names pass `filter`. */
  async runWithCache(ids: ArrayLike<number>, filter: HookFilter = () => true, options: ForwardOptions = {}): Promise<ForwardResult & { activations: ActivationCache }> {
    const activations = new ActivationCache(filter);
    const result = await this.hooks.with([[filter, (v, ctx) => activations.record(v, ctx)]], () => this.forward(ids, options));
    return { ...result, activations };
  }

  /** forwardBatch recording, per sequence, the activations whose hook names pass `filter`. */
  async runWithCacheBatch(sequences: readonly ArrayLike<number>[], filter: HookFilter = () => true, options: BatchOptions = {}): Promise<BatchResult & { activations: ActivationCache[] }> {
    const activations = sequences.map(() => new ActivationCache(filter));
    const record = (v: Tensor, ctx: HookContext) => {
      for (const [i, part] of bySequence(v, ctx)) activations[i].record(part, ctx);
    };
    const result = await this.hooks.with([[filter, record]], () => this.forwardBatch(sequences, options));
    return { ...result, activations };
  }

  /** The training forward over one sequence or several of different lengths (positions restart per sequence):
   *  logits, and a tape whose backward(dLogits) gives the gradients of every weight and of the hooked activations
   *  asked for (engine/train/tape.ts). */
  forwardForBackward(sequences: ArrayLike<number> | readonly ArrayLike<number>[], options: ForwardForBackwardOptions = {}): Promise<Tape> {
    return forwardForBackward(this, sequences, options);
  }

  /** Per-token weighted cross-entropy Σ_t w_t · −log p(ids[t+1] | ids[..t]), its token log-probabilities and its
   *  gradients, in one forward and one backward pass (engine/train/loss.ts). */
  lossAndGradients(sequences: ArrayLike<number> | readonly ArrayLike<number>[], options: LossOptions): Promise<LossResult> {
    return lossAndGradients(this, sequences, options);
  }

  /** A fine-tuning loop on this model: `await trainer.step(batch)` computes the loss and gradients and takes an
   *  AdamW step, changing this model's weights in place (engine/train/trainer.ts). */
  trainer(options: TrainerOptions): Trainer {
    return new Trainer(this, options);
  }

  /** Writes this model, with any weights changed in memory, as a checkpoint directory in the format it was loaded
   *  from (config and tokenizer files copied; engine/train/save.ts). */
  save(dir: string): void {
    saveCheckpoint(this.checkpoint, dir);
  }

  /** How many layers currently run as native objects: a forward pass of up to 16 tokens runs every layer that no
   *  hook listens inside that way, and with no hook at all the whole model as one native call. Streamed checkpoints
   *  and stepping run op by op. */
  get nativeLayerCount(): number {
    return this.liveNativeObjects().layers.filter(Boolean).length;
  }

  /** Layer l as a native object when the model may be held in memory whole (see canRunNative). */
  private nativeLayer(l: number): native.DecoderLayer | null {
    if (!this.canRunNative()) return null;
    return (this.liveNativeObjects().layers[l] ??= nativeLayer(this.config, l, this, this.layerSlopes[l]));
  }

  /** The whole model as a native object, under the same condition. */
  private nativeDecoder(): native.Decoder | null {
    if (!this.canRunNative()) return null;
    const { vocabSize, hiddenSize, numLayers, rmsNormEps } = this.config;
    return (this.liveNativeObjects().decoder ??= native.decoder({
      embed: this.weight("model.embed_tokens.weight", [vocabSize, hiddenSize]),
      norm: this.vector("model.norm.weight", hiddenSize),
      eps: rmsNormEps,
      lmHead: this.lmHead(),
      layers: Array.from({ length: numLayers }, (_, l) => this.nativeLayer(l)!),
    }));
  }

  /** Native objects hold every weight of the model (all experts): only for a checkpoint without a resident budget
   *  that fits in half the machine's memory. Otherwise layers run op by op and read only the routed experts. */
  private canRunNative(): boolean {
    return (this.nativeFits ??= this.checkpoint.fullyResident && this.checkpoint.fileBytes() <= os.totalmem() / 2);
  }

  /** The native objects built since the checkpoint last evicted or changed tensors (older ones are dropped, and
   *  with them the f32 copies of norm weights). */
  private liveNativeObjects(): NativeObjects {
    if (this.nativeObjects.evictions !== this.checkpoint.evictions) {
      this.nativeObjects = { evictions: this.checkpoint.evictions, layers: [] };
      this.vectors.clear();
    }
    return this.nativeObjects;
  }

  /** The packed pass as one native call (no hook registered, not too many rows): bit-identical to the op-by-op path.
   *  `rowwise`: every product on the dot path (Decoder.forwardPacked). */
  private nativePass(decoder: native.Decoder, sequences: readonly PassSequence[], tokens: Int32Array, mode: "all" | "last" | "none", rowwise = false): Tensor {
    const logits = decoder.forwardPacked(tokens, Int32Array.from(sequences, (seq) => seq.tokens), this.passCaches(sequences), mode, rowwise);
    for (const seq of sequences) advanceCache(seq.cache, seq.tokens);
    return new Tensor("F32", [logits.length / this.config.vocabSize, this.config.vocabSize], logits);
  }

  /** The rowwise pass of nativePass (each sequence's last logits) on a thread of its own (Decoder.forwardPackedAsync). */
  private async nativePassAsync(decoder: native.Decoder, sequences: readonly PassSequence[], tokens: Int32Array): Promise<Float32Array> {
    const logits = await decoder.forwardPackedAsync(tokens, Int32Array.from(sequences, (seq) => seq.tokens), this.passCaches(sequences), "last", true);
    for (const seq of sequences) advanceCache(seq.cache, seq.tokens);
    return logits;
  }

  /** Each sequence's layer caches as the native pass takes them, with room for its rows. */
  private passCaches(sequences: readonly PassSequence[]): native.DecoderLayerCache[][] {
    return sequences.map((seq) => this.layerCaches(seq.cache, seq.tokens));
  }

  /** One sequence's layer caches as a native pass takes them, with room for `rows` new rows. */
  private layerCaches(cache: ModelCache, rows: number): native.DecoderLayerCache[] {
    return Array.from({ length: this.config.numLayers }, (_, l) => nativeCache(l, cache, rows));
  }

  private lmHead(): native.Weight {
    const { vocabSize, hiddenSize } = this.config;
    return this.weight("lm_head.weight", [vocabSize, hiddenSize]);
  }

  /** One decoder layer (docs/architecture.md §3.3): postnorm residual with α on the normalised input and β on the sublayer. */
  private *layer(l: number, x: Float32Array, pass: ForwardPass, point: PointFn): Generator<SubStep, Float32Array, void> {
    const cfg = this.config;
    const n = pass.tokens;
    const hs = cfg.hiddenSize;
    const shape = [n, hs];
    const b = `blocks.${l}.`;
    const p = `model.layers.${l}.`;
    const lightning = cfg.layerTypes[l] === "lightning";

    x = hook(pass, b + "hook_resid_pre", l, x, shape);
    let a = native.rmsnorm(x, n, hs, this.vector(p + "input_layernorm.weight", hs), cfg.rmsNormEps);
    a = yield* point(b + "ln1.hook_normalized", l, { input: x }, a, shape);
    let attn = lightning
      ? lightningAttention(cfg, l, a, pass, this, this.layerSlopes[l]!)
      : softmaxAttention(cfg, l, a, pass, this);
    attn = yield* point(b + "hook_attn_out", l, { input: a }, attn, shape);
    const residualA = cfg.postnorm ? a : x;
    let h = native.axpby(cfg.alpha[cfg.layerTypes[l]], residualA, cfg.beta[cfg.layerTypes[l]], attn);
    h = yield* point(b + "hook_resid_mid", l, { residual: residualA, attention: attn }, h, shape);

    let bn = native.rmsnorm(h, n, hs, this.vector(p + "post_attention_layernorm.weight", hs), cfg.rmsNormEps);
    bn = yield* point(b + "ln2.hook_normalized", l, { input: h }, bn, shape);
    let mlp = moe(cfg, l, bn, pass, this);
    mlp = yield* point(b + "hook_mlp_out", l, { input: bn }, mlp, shape);
    const residualM = cfg.postnorm ? bn : h;
    let out = native.axpby(cfg.alpha.mlp, residualM, cfg.beta.mlp, mlp);
    return yield* point(b + "hook_resid_post", l, { residual: residualM, moe: mlp }, out, shape);
  }
}

/** Refuses a pass whose [tokens, row] arrays (hidden states, attention heads, router logits, logits) would be longer
 *  than the engine's longest array, before anything is allocated. */
function checkArraySizes(cfg: ModelConfig, n: number, mode: "all" | "last" | "none"): void {
  const widths: [string, number][] = [
    ["hidden_size", cfg.hiddenSize],
    ["num_attention_heads × head_dim", cfg.numHeads * cfg.headDim],
    ["num_local_experts", cfg.numExperts],
  ];
  if (mode === "all") widths.push(["vocab_size (logits of every position)", cfg.vocabSize]);
  for (const [what, width] of widths) {
    if (n * width > native.MAX_ARRAY_LENGTH) {
      throw new InputError(
        `forward: ${n} tokens × ${what} ${width} = ${n * width} floats is more than the longest array the engine makes ` +
          `(2^32 floats); run the prompt in parts on one cache${mode === "all" ? ", or with logits: \"last\"" : ""}`,
      );
    }
  }
}

/** Advances a cache past its `rows` new rows of a native pass (which wrote them but counts nothing). */
function advanceCache(cache: ModelCache, rows: number): void {
  for (const kv of cache.kv) if (kv) kv.length += rows;
  cache.position += rows;
}

interface NativeObjects {
  evictions: number;
  layers: (native.DecoderLayer | undefined)[];
  decoder?: native.Decoder;
}

type PointFn = (name: string, layer: number | null, inputs: Record<string, Float32Array>, output: Float32Array, shape: number[]) => Generator<SubStep, Float32Array, void>;

/** A plain forward pass hands a hook point's value on without pausing. */
function* noPause(output: Float32Array): Generator<never, Float32Array, void> {
  return output;
}

/** Lets timers, I/O and abort signals run between layers of a long forward pass. */
function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

const YIELD_EVERY_MS = 4;
let lastYield = performance.now();

/**
 * Yields to the event loop if it has not run for YIELD_EVERY_MS (across forward calls, so a run of short decode
 * steps also lets interrupts in), instead of at every layer: a macrotask hop per layer costs a few percent of a
 * decode step on small models.
 */
async function yieldSometimes(): Promise<void> {
  if (performance.now() - lastYield < YIELD_EVERY_MS) return;
  await yieldToEventLoop();
  lastYield = performance.now();
}
