/**
 * The loss API: per-token weighted cross-entropy, loss = Σ_t w_t · −log p(ids[t+1] | ids[..t]) over every sequence
 * (supervised fine-tuning: w_t = 1 on the answer tokens; every policy-gradient objective: w_t = the per-token
 * d loss / d log p), with each token's log-probability from the same pass.
 */
import * as bw from "../../native/backward.ts";
import { InputError } from "../errors.ts";
import { sequenceList } from "./batch.ts";
import { forwardForBackward, type ForwardForBackwardOptions, type Gradients, type TrainableModel } from "./tape.ts";

export interface LossOptions extends ForwardForBackwardOptions {
  /** per sequence, w_t for t = 0 … n_i − 2 (the weight of predicting ids[t + 1]); finite, any sign */
  tokenWeights: readonly ArrayLike<number>[] | ArrayLike<number>;
}

export interface LossResult extends Gradients {
  loss: number;
  /** per sequence, log p(ids[t + 1] | ids[..t]) for t = 0 … n_i − 2 */
  tokenLogprobs: Float32Array[];
  /** bytes of intermediates the forward pass kept for the backward pass (Tape.keptBytes) */
  keptBytes: number;
}

export async function lossAndGradients(model: TrainableModel, sequences: ArrayLike<number> | readonly ArrayLike<number>[],
  options: LossOptions): Promise<LossResult> {
  const seqs = sequenceList(sequences);
  const weights = checkTokenWeights(seqs, options.tokenWeights);
  const tape = await forwardForBackward(model, seqs, options);
  const V = model.config.vocabSize;
  let loss = 0;
  const tokenLogprobs: Float32Array[] = [];
  // d loss / d logits is written over the logits (the tape is this call's own): no second [rows, vocab] array
  const dLogits = tape.logits.map((logits, i) => {
    const n = seqs[i].length;
    const tokens = tape.batch.tokens.subarray(tape.batch.starts[i], tape.batch.starts[i] + n);
    const logprobs = new Float32Array(n - 1);
    const d = logits.f32;
    bw.crossEntropy(d.subarray(0, (n - 1) * V), n - 1, V, tokens.subarray(1), weights[i], logprobs, d.subarray(0, (n - 1) * V));
    d.fill(0, (n - 1) * V); // the last position predicts nothing
    for (let t = 0; t < n - 1; t++) loss -= weights[i][t] * logprobs[t];
    tokenLogprobs.push(logprobs);
    return d;
  });
  const grads = await tape.backward(dLogits);
  return { loss, tokenLogprobs, keptBytes: tape.keptBytes, ...grads };
}

/** One Float32Array of n_i − 1 finite weights per sequence (of at least 2 tokens). */
function checkTokenWeights(seqs: ArrayLike<number>[], tokenWeights: LossOptions["tokenWeights"]): Float32Array[] {
  if (tokenWeights === undefined) throw new InputError("lossAndGradients: tokenWeights is required (per sequence, n − 1 weights)");
  const lists = sequenceList(tokenWeights as ArrayLike<number> | ArrayLike<number>[]);
  if (lists.length !== seqs.length) {
    throw new InputError(`lossAndGradients: ${lists.length} tokenWeights lists for ${seqs.length} sequences`);
  }
  return seqs.map((s, i) => {
    const at = seqs.length > 1 ? `sequence ${i}: ` : "";
    if (s.length < 2) throw new InputError(`lossAndGradients: ${at}a sequence needs at least 2 tokens (it has ${s.length})`);
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
