/**
 * The training forward pass and its backward pass over the whole model (docs/training.md).
 *
 *   const tape = await model.forwardForBackward([ids1, ids2], { activationGrads: ["embed"] });
 *   tape.logits          // per sequence Tensor [n_i, vocab]
 *   const g = await tape.backward(dLogits);   // per sequence Float32Array [n_i · vocab]
 *   g.weights            // Map<checkpoint tensor name, Tensor f32>
 *   g.activations        // Map<hook name, Tensor[] per sequence>
 *
 * The forward keeps each layer's input; it keeps the rest of what a layer's backward pass reads while the total
 * stays within memoryBudgetBytes, and recomputes the other layers from their inputs during the backward pass
 * (activation checkpointing per layer). Layers where a hook listens are always kept, so a hook fires once per
 * forward pass and its replacements are what the backward pass differentiates.
 */
import os from "node:os";
import * as native from "../../native/index.ts";
import * as bw from "../../native/backward.ts";
import { slopes } from "../config.ts";
import { hook, type Pass, type WeightSource } from "../layers.ts";
import { HookSet, hookNames } from "../hooks.ts";
import { InputError } from "../errors.ts";
import { Tensor } from "../tensor.ts";
import type { Checkpoint } from "../checkpoint.ts";
import type { ModelConfig } from "../config.ts";
import { Batch, sequenceList } from "./batch.ts";
import { ActivationGradients, UNSUPPORTED_TRAINING_HOOKS, WeightGradients, type ActivationFilter } from "./gradients.ts";
import { array, layerBackward, layerForward, savedBytes, type LayerSaved, type TrainPass } from "./layer.ts";
import type { Arena } from "./arena.ts";

export interface ForwardForBackwardOptions {
  /** hook names (or a pattern over them) whose activation gradients the backward pass returns */
  activationGrads?: ActivationFilter;
  /** bytes of per-layer intermediates to keep (default: a quarter of the machine's memory); layers beyond it are
   *  recomputed from their inputs during the backward pass */
  memoryBudgetBytes?: number;
  signal?: AbortSignal;
  /** arrays for the weight gradients, kept across passes by their owner (a Trainer): each is zeroed and written
   *  again, so the gradients a pass returns are valid until the next pass given the same map */
  gradientBuffers?: Map<string, Float32Array>;
  /** memory for the pass's activations and their gradients, reused by the owner's next pass (a Trainer's): the
   *  tape's arrays are valid until then. Used only while no hook is registered (a hook may keep what it sees). */
  arena?: Arena;
}

export interface Gradients {
  /** d loss / d weight for every weight of the checkpoint, by its name, f32 in its shape (zeros where nothing reached) */
  readonly weights: Map<string, Tensor>;
  /** d loss / d activation at each hook name asked for, one [n_i, ...] tensor per sequence */
  readonly activations: Map<string, Tensor[]>;
}

/** What the training forward needs of a model. */
export interface TrainableModel extends WeightSource {
  readonly config: ModelConfig;
  readonly checkpoint: Checkpoint;
  readonly hooks: HookSet;
  checkIds(ids: ArrayLike<number>): Int32Array;
}

export class Tape {
  /** per sequence [n_i, vocab] f32 */
  readonly logits: Tensor[];

  constructor(
    private readonly model: TrainableModel,
    private readonly tp: TrainPass,
    private readonly inputs: Float32Array[],
    private readonly kept: (LayerSaved | null)[],
    private readonly last: Float32Array,
    private readonly normed: Float32Array,
    logits: Float32Array,
    private readonly filter: ActivationFilter | undefined,
    private readonly signal: AbortSignal | undefined,
    private readonly gradientBuffers: Map<string, Float32Array> | undefined,
  ) {
    this.logits = tp.batch.lengths.map((n, i) => new Tensor("F32", [n, tp.cfg.vocabSize], tp.batch.rowsOf(logits, i, tp.cfg.vocabSize)));
  }

  get batch(): Batch {
    return this.tp.batch;
  }

  /** Bytes of intermediates kept for the backward pass (layer inputs included). */
  get keptBytes(): number {
    return this.inputs.reduce((s, x) => s + x.byteLength, 0) + this.kept.reduce((s, k) => s + (k ? savedBytes(k) : 0), 0);
  }

  /** Layers whose intermediates were kept (the others are recomputed by backward). */
  get keptLayers(): number {
    return this.kept.filter(Boolean).length;
  }

  /** The gradients of every weight (and of the activations asked for) from dLogits, d loss / d logits per sequence. */
  async backward(dLogits: readonly Float32Array[]): Promise<Gradients> {
    const { cfg, batch } = this.tp;
    const V = cfg.vocabSize;
    const hs = cfg.hiddenSize;
    if (!Array.isArray(dLogits) || dLogits.length !== batch.count) {
      throw new InputError(`backward: dLogits must be an array of ${batch.count} Float32Array (one per sequence)`);
    }
    dLogits.forEach((g, i) => {
      if (!(g instanceof Float32Array) || g.length !== batch.lengths[i] * V) {
        throw new InputError(`backward: dLogits[${i}] must be a Float32Array of ${batch.lengths[i]}·${V} = ${batch.lengths[i] * V} elements`);
      }
    });
    const dLog = packed(dLogits, batch, V);
    const grads = new WeightGradients(this.model.checkpoint, this.gradientBuffers);
    const acts = new ActivationGradients(this.filter, batch);
    const n = batch.rows;
    const w = this.model;
    acts.record("logits", dLog, [V]);
    bw.matmulDw(dLog, this.normed, n, grads.of("lm_head.weight", V * hs), V, hs);
    const dNormed = bw.matmulDx(dLog, n, w.weight("lm_head.weight", [V, hs]), null, array(this.tp, n * hs));
    acts.record("ln_final.hook_normalized", dNormed, [hs]);
    let dX = bw.rmsnormBackward(this.last, dNormed, n, hs, w.vector("model.norm.weight", hs), cfg.rmsNormEps,
      grads.of("model.norm.weight", hs), array(this.tp, n * hs));
    const quiet: TrainPass = { ...this.tp, pass: { ...this.tp.pass, hooks: new HookSet() } }; // recompute fires no hook
    for (let l = cfg.numLayers - 1; l >= 0; l--) {
      this.signal?.throwIfAborted();
      const saved = this.kept[l] ?? layerForward(quiet, l, this.inputs[l]).saved;
      dX = layerBackward(this.tp, l, saved, dX, grads, acts);
      await yieldToEventLoop();
    }
    acts.record("embed", dX, [hs]);
    bw.embeddingBackward(batch.tokens, dX, grads.of("model.embed_tokens.weight", V * hs), V, hs);
    return { weights: grads.tensors(), activations: acts.values };
  }
}

/** The per-sequence rows as one [rows, width] array: the arrays' own memory when they are consecutive views of one
 *  buffer (as lossAndGradients passes them), else a copy. */
function packed(parts: readonly Float32Array[], batch: Batch, width: number): Float32Array {
  const first = parts[0];
  const views = parts.every((p, i) => p.buffer === first.buffer && p.byteOffset === first.byteOffset + batch.starts[i] * width * 4);
  if (views) return new Float32Array(first.buffer, first.byteOffset, batch.rows * width);
  const out = new Float32Array(batch.rows * width);
  parts.forEach((p, i) => out.set(p, batch.starts[i] * width));
  return out;
}

/** The training forward (see Tape). Hooks registered on the model fire as in the inference forward. */
export async function forwardForBackward(model: TrainableModel, sequences: ArrayLike<number> | readonly ArrayLike<number>[],
  options: ForwardForBackwardOptions = {}): Promise<Tape> {
  const cfg = model.config;
  options.signal?.throwIfAborted();
  const batch = new Batch(sequenceList(sequences), (ids) => model.checkIds(ids));
  ActivationGradients.check(options.activationGrads, cfg.layerTypes);
  const budget = options.memoryBudgetBytes ?? os.totalmem() / 4;
  if (typeof budget !== "number" || !(budget >= 0)) throw new InputError(`memoryBudgetBytes must be a number >= 0, got ${budget}`);
  const names = hookNames(cfg.layerTypes);
  const unsupported = names.find((name) => UNSUPPORTED_TRAINING_HOOKS.test(name) && model.hooks.wants(name));
  if (unsupported) {
    throw new InputError(`forwardForBackward: a hook listens at "${unsupported}", which the training forward does not build ` +
      "(the n × n attention scores and pattern); remove it or use forward()");
  }
  const n = batch.rows;
  const hs = cfg.hiddenSize;
  const pass: Pass = { hooks: model.hooks, phase: "prefill", position: 0, tokens: n, nonFinite: null };
  const arena = model.hooks.size === 0 ? options.arena : undefined;
  arena?.reset();
  const tp: TrainPass = { cfg, w: model, pass, batch, arena, slopes: cfg.layerTypes.map((t, l) => (t === "lightning" ? slopes(cfg, l) : null)) };

  let x = native.embedding(batch.tokens, model.weight("model.embed_tokens.weight", [cfg.vocabSize, hs]), array(tp, n * hs));
  x = hook(pass, "embed", null, x, [n, hs]);
  const inputs: Float32Array[] = [];
  const kept: (LayerSaved | null)[] = [];
  let keptBytes = 0;
  for (let l = 0; l < cfg.numLayers; l++) {
    inputs.push(x);
    const { out, saved } = layerForward(tp, l, x);
    const bytes = savedBytes(saved);
    const hooked = names.some((name) => name.startsWith(`blocks.${l}.`) && model.hooks.wants(name));
    if (hooked || keptBytes + bytes <= budget) {
      kept.push(saved);
      keptBytes += bytes;
    } else {
      kept.push(null);
    }
    x = out;
    await yieldToEventLoop();
    options.signal?.throwIfAborted();
  }
  let normed = native.rmsnorm(x, n, hs, model.vector("model.norm.weight", hs), cfg.rmsNormEps, array(tp, n * hs));
  normed = hook(pass, "ln_final.hook_normalized", null, normed, [n, hs]);
  let logits = native.matmul(normed, n, model.weight("lm_head.weight", [cfg.vocabSize, hs]), array(tp, n * cfg.vocabSize));
  logits = hook(pass, "logits", null, logits, [n, cfg.vocabSize]);
  return new Tape(model, tp, inputs, kept, x, normed, logits, options.activationGrads, options.signal, options.gradientBuffers);
}

function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}
