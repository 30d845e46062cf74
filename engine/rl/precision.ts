/**
 * The precision finding of MiniMax-M1 §3.2 (Fig. 3): the probability the rollout engine gives a token and the one
 * the training path gives the same token should be equal, but drift apart (the paper: correlation 0.987 with a BF16
 * LM head, raised to 0.997 with an FP32 head). Here the two sides are:
 *
 * - rollout: the model as the rollout engine runs it — its stored weights (BF16 for the demo pair, after training
 *   the f32 masters rounded to nearest-even) — with the LM head in f32 (the engine's own head: f32 activations and
 *   accumulation) or in BF16 (the head's input and its logits rounded to BF16, as a BF16 GEMM gives them);
 * - training: the training forward pass (engine/train/tape.ts) on the trainer's f32 master weights, head in f32.
 *
 * At step 0 the masters are the BF16 weights themselves, so only the head differs; after training steps the masters
 * carry updates the BF16 weights round away, and the two sides differ in every weight.
 */
import fs from "node:fs";
import path from "node:path";
import { Model } from "../model.ts";
import type { Trainer } from "../train/trainer.ts";
import { forwardForBackward } from "../train/tape.ts";
import { Tensor, bf16ToF32, f32ToBf16 } from "../tensor.ts";
import { writeSafetensors } from "../safetensors.ts";
import { logProbability } from "../softmax.ts";
import { InputError } from "../errors.ts";
import type { HookFn } from "../hooks.ts";
import { completionLogprobs } from "./rollout.ts";
import { correlation } from "../statistics.ts";

/** |Δp| above which a token counts as moved (`PrecisionAgreement.shareMoved`). */
export const MOVED_PROBABILITY = 0.01;

/** One rollout head against the training path, over the same tokens. */
export interface PrecisionAgreement {
  /** per completion token: its probability as the rollout engine gives it, and as the training path gives it */
  rollout: number[];
  training: number[];
  /** Pearson correlation of the two */
  correlation: number;
  meanAbsDifference: number;
  maxDifference: number;
  /** share of tokens with |Δp| > MOVED_PROBABILITY */
  shareMoved: number;
}

export interface PrecisionComparison {
  tokens: number;
  /** the rollout engine's LM head in BF16 */
  bf16Head: PrecisionAgreement;
  /** the rollout engine's LM head in f32 */
  f32Head: PrecisionAgreement;
}

type Sequence = { prompt: readonly number[]; completion: readonly number[] };

/** A hook that replaces its value by the value rounded to BF16 (nearest, ties to even). */
const roundToBf16: HookFn = (value) => new Tensor("F32", [...value.shape], value.f32.map((v) => bf16ToF32(f32ToBf16(v))));

/** Sequences per training forward pass (bounds the activations it keeps). */
const TRAINING_CHUNK = 16;

/**
 * The training path's weights as a model: the trainer's f32 masters written as an F32 checkpoint into `dir` (a new
 * or empty directory; config and tokenizer files copied from the trained model's directory) and loaded.
 */
export async function masterModel(trainer: Trainer, dir: string): Promise<Model> {
  if (fs.existsSync(dir) && !(fs.statSync(dir).isDirectory() && fs.readdirSync(dir).length === 0)) {
    throw new InputError(`masterModel: ${dir} already exists and is not an empty directory; choose a new directory`);
  }
  const source = trainer.model.checkpoint;
  fs.mkdirSync(dir, { recursive: true });
  for (const entry of fs.readdirSync(source.dir, { withFileTypes: true })) {
    if (entry.isFile() && !entry.name.startsWith("model.safetensors")) fs.copyFileSync(path.join(source.dir, entry.name), path.join(dir, entry.name));
  }
  const tensors: Record<string, Tensor> = {};
  for (const name of source.names()) tensors[name] = new Tensor("F32", source.info(name).shape, trainer.master(name));
  writeSafetensors(path.join(dir, "model.safetensors"), tensors);
  return Model.load(dir);
}

/**
 * Each completion token's probability from the rollout model (head in BF16 and in f32) and from the training model
 * (e.g. `masterModel(trainer, dir)`) through the training forward pass, and how far they agree.
 */
export async function precisionComparison(rolloutModel: Model, trainingModel: Model, sequences: readonly Sequence[]): Promise<PrecisionComparison> {
  if (rolloutModel.config.vocabSize !== trainingModel.config.vocabSize) {
    throw new InputError(`precisionComparison: the rollout model has ${rolloutModel.config.vocabSize} tokens, the training model ${trainingModel.config.vocabSize}`);
  }
  sequences.forEach((s, i) => {
    if (s.prompt.length === 0) throw new InputError(`precisionComparison: sequence ${i} has no prompt tokens (its first token is predicted from the prompt)`);
  });
  if (!sequences.some((s) => s.completion.length > 0)) throw new InputError("precisionComparison: the sequences have no completion tokens to score");
  const f32Head = await rolloutProbabilities(rolloutModel, sequences);
  const bf16Head = await rolloutModel.hooks.with([["ln_final.hook_normalized", roundToBf16], ["logits", roundToBf16]],
    () => rolloutProbabilities(rolloutModel, sequences));
  const training = await trainingProbabilities(trainingModel, sequences);
  return { tokens: training.length, bf16Head: agreement(bf16Head, training), f32Head: agreement(f32Head, training) };
}

async function rolloutProbabilities(model: Model, sequences: readonly Sequence[]): Promise<number[]> {
  const out: number[] = [];
  for (const s of sequences) out.push(...(await completionLogprobs(model, s.prompt, s.completion)).map(Math.exp));
  return out;
}

async function trainingProbabilities(model: Model, sequences: readonly Sequence[]): Promise<number[]> {
  const V = model.config.vocabSize;
  const out: number[] = [];
  for (let start = 0; start < sequences.length; start += TRAINING_CHUNK) {
    const chunk = sequences.slice(start, start + TRAINING_CHUNK);
    const tape = await forwardForBackward(model, chunk.map((s) => [...s.prompt, ...s.completion]));
    chunk.forEach((s, i) => {
      const logits = tape.logits[i].f32;
      s.completion.forEach((id, t) => out.push(Math.exp(logProbability(logits.subarray((s.prompt.length - 1 + t) * V, (s.prompt.length + t) * V), id))));
    });
  }
  return out;
}

function agreement(rollout: number[], training: number[]): PrecisionAgreement {
  let sum = 0, max = 0, moved = 0;
  rollout.forEach((p, i) => {
    const d = Math.abs(p - training[i]);
    sum += d;
    max = Math.max(max, d);
    if (d > MOVED_PROBABILITY) moved++;
  });
  const n = rollout.length;
  return { rollout, training, correlation: correlation(rollout, training), meanAbsDifference: n ? sum / n : 0, maxDifference: max, shareMoved: n ? moved / n : 0 };
}
