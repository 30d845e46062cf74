// Fine-tuning a loaded model in place: the loss and gradients of a batch from the engine's backward pass, AdamW
// on f32 master weights, and the new weights written back into the model.
//
// Master weights: the model keeps running on its checkpoint's dtype. F32 weights are their own masters (updated in
// place). BF16 weights get an f32 master copy that AdamW updates; after each step the model's BF16 weights are the
// masters rounded to nearest-even, so the next forward pass, `save`, diffs and serving all see the checkpoint's own
// format, and updates smaller than a BF16 ulp still accumulate in the masters.
import type { Model } from "../model.ts";
import type { Tensor } from "../tensor.ts";
import { f32IntoBf16 } from "../tensor.ts";
import { InputError } from "../errors.ts";
import { Tensor as T } from "../tensor.ts";
import { SafetensorsFile, writeSafetensors } from "../safetensors.ts";
import { AdamW, type AdamWOptions, type Parameter, type StepReport } from "./optimizer.ts";
import { sequenceList } from "./batch.ts";
import type { LossOptions } from "./loss.ts";
import { Arena } from "./arena.ts";

export type TrainerOptions = AdamWOptions;

export interface TrainStepOptions extends Omit<LossOptions, "tokenWeights" | "activationGrads" | "gradientBuffers" | "arena"> {
  /** w_t per predicted token of each sequence (n − 1 of them); default 1 / (predicted tokens in the batch): the
   *  loss is the mean cross-entropy */
  tokenWeights?: LossOptions["tokenWeights"];
}

export interface TrainStepResult extends StepReport {
  /** Σ_t w_t · −log p(ids[t+1] | ids[..t]) of the batch, before the update */
  loss: number;
  /** log p(ids[t+1] | ids[..t]) per sequence, before the update */
  tokenLogprobs: Float32Array[];
  /** bytes of activations the forward pass kept for the backward pass */
  keptBytes: number;
  /** wall time of the step's parts: the forward pass to the log-probabilities; the token weights and the backward
   *  pass; AdamW and the model's weights rewritten from the masters */
  seconds: { forward: number; backward: number; optimiser: number };
}

/** One trainable weight: the model's tensor and the f32 values AdamW updates (the tensor's own data for F32). */
interface TrainedWeight extends Parameter {
  readonly tensor: Tensor;
}

export class Trainer {
  readonly optimizer: AdamW;
  private readonly weights: TrainedWeight[];
  /** the weight gradients' arrays, written again by every step (AdamW has read them by the next) */
  private readonly gradientBuffers = new Map<string, Float32Array>();
  /** the memory of a step's activations, handed out again by every step */
  private readonly arena = new Arena();

  constructor(readonly model: Model, options: TrainerOptions) {
    const checkpoint = model.checkpoint;
    for (const name of checkpoint.names()) {
      const { dtype } = checkpoint.info(name);
      if (dtype !== "F32" && dtype !== "BF16") {
        throw new InputError(`Trainer: weight "${name}" of ${checkpoint.dir} is ${dtype}; training supports F32 and BF16 checkpoints`);
      }
    }
    this.weights = checkpoint.names().map((name) => {
      const tensor = checkpoint.hold(name);
      const value = tensor.dtype === "F32" ? tensor.f32 : tensor.toFloat32();
      return { name, shape: tensor.shape, value, tensor, bf16: tensor.dtype === "BF16" ? tensor.u16 : undefined };
    });
    this.optimizer = new AdamW(this.weights, options);
    // the gradient arrays in a few large blocks (huge pages), each zeroed by the pass that first writes it
    const gradients = new Arena();
    gradients.reset();
    for (const w of this.weights) this.gradientBuffers.set(w.name, gradients.take(w.value.length));
  }

  /** The f32 values AdamW updates for weight `name` (for an F32 weight, the model's own data). */
  master(name: string): Float32Array {
    const w = this.weights.find((x) => x.name === name);
    if (!w) throw new InputError(`Trainer: "${name}" is not a weight of ${this.model.checkpoint.dir}`);
    return w.value;
  }

  /** Bytes of the weights as the model holds them, of the f32 masters kept beside BF16 weights, and of AdamW's state. */
  get memory(): { weightBytes: number; masterBytes: number; optimizerBytes: number } {
    let weightBytes = 0;
    let masterBytes = 0;
    for (const w of this.weights) {
      weightBytes += w.tensor.nbytes;
      if (w.value !== w.tensor.data) masterBytes += w.value.byteLength;
    }
    return { weightBytes, masterBytes, optimizerBytes: this.optimizer.stateBytes };
  }

  /** Writes the f32 masters, AdamW's moments and step count to a safetensors file (`master.`, `m.`, `v.` + name). */
  saveState(file: string): void {
    const { step, moments } = this.optimizer.state();
    const tensors: Record<string, T> = {};
    for (const w of this.weights) {
      const { m, v } = moments.get(w.name)!;
      tensors[`master.${w.name}`] = new T("F32", w.shape, w.value);
      tensors[`m.${w.name}`] = new T("F32", w.shape, m);
      tensors[`v.${w.name}`] = new T("F32", w.shape, v);
    }
    writeSafetensors(file, tensors, { step: String(step) });
  }

  /** Continues from `saveState`'s file: masters, moments and step count; the model's weights are rewritten from the masters. */
  loadState(file: string): void {
    const f = SafetensorsFile.open(file);
    try {
      const read = (name: string, numel: number): Float32Array => {
        if (!f.has(name)) throw new InputError(`${file}: no tensor "${name}"`);
        const t = f.read(name);
        if (t.dtype !== "F32" || t.f32.length !== numel) throw new InputError(`${file}: "${name}" is not an f32 tensor of ${numel} elements`);
        return t.f32;
      };
      const masters = this.weights.map((w) => read(`master.${w.name}`, w.value.length));
      const moments = new Map(this.weights.map((w) => [w.name, { m: read(`m.${w.name}`, w.value.length), v: read(`v.${w.name}`, w.value.length) }]));
      this.optimizer.restore({ step: Number(f.metadata().step), moments });
      this.weights.forEach((w, i) => w.value.set(masters[i]));
    } finally {
      f.close();
    }
    for (const w of this.weights) {
      if (w.tensor.dtype === "BF16") f32IntoBf16(w.value, w.tensor.u16);
    }
    this.model.checkpoint.changed();
  }

  /**
   * One optimiser step on a batch of sequences (token ids; lengths may differ): loss and gradients at the current
   * weights, then AdamW. Bad input (ids, weights, learning rate, non-finite gradients) is refused before any weight
   * changes.
   */
  async step(sequences: ArrayLike<number> | readonly ArrayLike<number>[], options: TrainStepOptions = {}): Promise<TrainStepResult> {
    const seqs = sequenceList(sequences);
    const r = await this.model.lossAndGradients(seqs, {
      ...options, tokenWeights: options.tokenWeights ?? meanWeights(seqs), gradientBuffers: this.gradientBuffers, arena: this.arena,
    });
    const t0 = performance.now();
    const grads = new Map<string, Float32Array>();
    for (const [name, g] of r.weights) grads.set(name, g.f32);
    const report = this.optimizer.step(grads); // rewrites the BF16 weights from their masters too
    this.model.checkpoint.changed();
    const seconds = { ...r.seconds, optimiser: (performance.now() - t0) / 1000 };
    return { ...report, loss: r.loss, tokenLogprobs: r.tokenLogprobs, keptBytes: r.keptBytes, seconds };
  }
}

/** Weights 1/(number of predicted tokens) on every predicted token: the loss is the mean cross-entropy. */
function meanWeights(sequences: readonly ArrayLike<number>[]): Float32Array[] {
  const predicted = sequences.reduce((s, ids) => s + Math.max(0, ids.length - 1), 0);
  if (predicted === 0) throw new InputError("Trainer.step: no sequence has two or more tokens, so there is nothing to predict");
  return sequences.map((ids) => new Float32Array(Math.max(0, ids.length - 1)).fill(1 / predicted));
}
