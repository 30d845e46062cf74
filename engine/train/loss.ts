/**
 * The loss API: per-token weighted cross-entropy, loss = Σ_t w_t · −log p(ids[t+1] | ids[..t]) over every sequence
 * (supervised fine-tuning: w_t = 1 on the answer tokens; every policy-gradient objective: w_t = the per-token
 * d loss / d log p), with each token's log-probability from the same pass.
 */
import * as bw from "../../native/backward.ts";
import { InputError } from "../errors.ts";
import { sequenceList } from "./batch.ts";
import { forwardForBackward, type ForwardForBackwardOptions, type Gradients, type TrainableModel } from "./tape.ts";

/** Per-token weights computed from the pass's own log-probabilities (per sequence, log p(ids[t + 1] | ids[..t]) for
 *  t = 0 … n_i − 2): a policy-gradient objective's weights depend on log p under the weights being differentiated. */
export type TokenWeightsOf = (tokenLogprobs: readonly Float32Array[]) => readonly ArrayLike<number>[];

export interface LossOptions extends ForwardForBackwardOptions {
  /** per sequence, w_t for t = 0 … n_i − 2 (the weight of predicting ids[t + 1]); finite, any sign. Or a function
   *  giving them from the forward pass's log-probabilities, called between the forward and the backward pass (so
   *  one forward pass serves both). */
  tokenWeights: readonly ArrayLike<number>[] | ArrayLike<number> | TokenWeightsOf;
}

export interface LossResult extends Gradients {
  loss: number;
  /** per sequence, log p(ids[t + 1] | ids[..t]) for t = 0 … n_i − 2 */
  tokenLogprobs: Float32Array[];
  /** bytes of intermediates the forward pass kept for the backward pass (Tape.keptBytes) */
  keptBytes: number;
  /** wall time of the forward pass to the log-probabilities, and of the rest: the token weights, d loss / d logits
   *  and the backward pass */
  seconds: { forward: number; backward: number };
}

export async function lossAndGradients(model: TrainableModel, sequences: ArrayLike<number> | readonly ArrayLike<number>[],
  options: LossOptions): Promise<LossResult> {
  const seqs = sequenceList(sequences);
  seqs.forEach((s, i) => {
    if (s.length < 2) throw new InputError(`lossAndGradients: ${seqs.length > 1 ? `sequence ${i}: ` : ""}a sequence needs at least 2 tokens (it has ${s.length})`);
  });
  const weightsOf = typeof options.tokenWeights === "function" ? options.tokenWeights : null;
  let weights = weightsOf ? null : checkTokenWeights(seqs, options.tokenWeights as Exclude<LossOptions["tokenWeights"], TokenWeightsOf>);
  let t0 = performance.now();
  const tape = await forwardForBackward(model, seqs, options);
  const V = model.config.vocabSize;
  const rows = (i: number) => tape.logits[i].f32.subarray(0, (seqs[i].length - 1) * V); // the last position predicts nothing
  const targets = (i: number) => tape.batch.tokens.subarray(tape.batch.starts[i] + 1, tape.batch.starts[i] + seqs[i].length);
  const tokenLogprobs = seqs.map((s) => new Float32Array(s.length - 1));
  if (weightsOf) tokenLogprobs.forEach((lp, i) => bw.tokenLogprobs(rows(i), lp.length, V, targets(i), lp));
  const forward = (performance.now() - t0) / 1000;
  t0 = performance.now();
  weights ??= checkTokenWeights(seqs, weightsOf!(tokenLogprobs));
  let loss = 0;
  // d loss / d logits is written over the logits (the tape is this call's own): no second [rows, vocab] array
  const dLogits = tape.logits.map((logits, i) => {
    const lp = tokenLogprobs[i];
    bw.crossEntropy(rows(i), lp.length, V, targets(i), weights[i], lp, rows(i));
    logits.f32.fill(0, lp.length * V);
    for (let t = 0; t < lp.length; t++) loss -= weights[i][t] * lp[t];
    return logits.f32;
  });
  const grads = await tape.backward(dLogits);
  return { loss, tokenLogprobs, keptBytes: tape.keptBytes, seconds: { forward, backward: (performance.now() - t0) / 1000 }, ...grads };
}

/** One Float32Array of n_i − 1 finite weights per sequence. */
function checkTokenWeights(seqs: ArrayLike<number>[], tokenWeights: readonly ArrayLike<number>[] | ArrayLike<number>): Float32Array[] {
  if (tokenWeights === undefined) throw new InputError("lossAndGradients: tokenWeights is required (per sequence, n − 1 weights)");
  const lists = sequenceList(tokenWeights as ArrayLike<number> | ArrayLike<number>[]);
  if (lists.length !== seqs.length) {
    throw new InputError(`lossAndGradients: ${lists.length} tokenWeights lists for ${seqs.length} sequences`);
  }
  return seqs.map((s, i) => {
    const at = seqs.length > 1 ? `sequence ${i}: ` : "";
    const w = lists[i];
    if (w.length !== s.length - 1) {
      throw new InputError(`lossAndGradients: ${at}tokenWeights has ${w.length} entries, expected n − 1 = ${s.length - 1} ` +
        "(one per predicted token)");
    }
    const out = new Float32Array(w.length);
    for (let t = 0; t < w.length; t++) {
      if (typeof w[t] !== "number" || !Number.isFinite(w[t])) {
        throw new InputError(`lossAndGradients: ${at}tokenWeights[${t}] = ${w[t]} is not a finite number`);
      }
      out[t] = w[t];
    }
    return out;
  });
}
