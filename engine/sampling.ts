import { InputError } from "./errors.ts";
import * as native from "../native/index.ts";

export interface SamplingOptions {
  /** Argmax (ties go to the lower id). Also implied by temperature 0. */
  greedy?: boolean;
  /** Softmax temperature (default 1). */
  temperature?: number;
  /** Keep only the k most likely tokens. */
  topK?: number;
  /** Keep the smallest set of most likely tokens whose probability reaches p (nucleus sampling). */
  topP?: number;
  /** Seed of the sampler's random stream: the same seed gives the same tokens. */
  seed?: number;
}

/** xoshiro128** — a small, fast, well-distributed 32-bit generator with a reproducible stream per seed. */
export class Rng {
  private s: Uint32Array;

  constructor(seed: number) {
    // splitmix32 expands the seed into the 128-bit state
    this.s = new Uint32Array(4);
    let x = seed >>> 0;
    for (let i = 0; i < 4; i++) {
      x = (x + 0x9e3779b9) >>> 0;
      let z = x;
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b) >>> 0;
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35) >>> 0;
      this.s[i] = (z ^ (z >>> 16)) >>> 0;
    }
  }

  /** Uniform in [0, 1) with 32 random bits. */
  next(): number {
    const s = this.s;
    const result = Math.imul(rotl(Math.imul(s[1], 5) >>> 0, 7), 9) >>> 0;
    const t = (s[1] << 9) >>> 0;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 11);
    return result / 4294967296;
  }
}

function rotl(x: number, k: number): number {
  return ((x << k) | (x >>> (32 - k))) >>> 0;
}

/**
 * Token ids in descending logit order, equal logits in ascending id order (as a stable sort with the comparator
 * `logits[b] - logits[a] || a - b` gives them), written into `order`: the native radix sort, or, when a logit is NaN
 * (which that comparator does not order), the comparator sort itself. `order` (of the logits' length) may be kept by
 * the caller between calls.
 */
export function descendingOrder(logits: Float32Array, order = new Int32Array(logits.length)): Int32Array {
  if (native.descendingOrder(logits, order)) return order;
  for (let i = 0; i < order.length; i++) order[i] = i;
  return order.sort((a, b) => logits[b] - logits[a] || a - b);
}

export function argmax(logits: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < logits.length; i++) if (logits[i] > logits[best]) best = i;
  return best;
}

/** Chooses the next token from a row of logits. */
export class Sampler {
  private readonly rng: Rng;
  readonly greedy: boolean;
  /** scratch of pick, kept between calls: the candidates, their unnormalised probabilities */
  private order = new Int32Array(0);
  private probs = new Float64Array(0);

  constructor(readonly options: SamplingOptions = {}) {
    const { temperature = 1, topK, topP, seed } = options;
    if (!(temperature >= 0) || !Number.isFinite(temperature)) throw new InputError(`temperature must be a finite number >= 0, got ${temperature}`);
    if (topK !== undefined && !(Number.isInteger(topK) && topK >= 1)) throw new InputError(`topK must be an integer >= 1, got ${topK}`);
    if (topP !== undefined && !(topP > 0 && topP <= 1)) throw new InputError(`topP must be in (0, 1], got ${topP}`);
    if (seed !== undefined && !Number.isInteger(seed)) throw new InputError(`seed must be an integer, got ${seed}`);
    this.greedy = options.greedy === true || temperature === 0;
    this.rng = new Rng(seed ?? Math.floor(Math.random() * 2 ** 32));
  }

  pick(logits: Float32Array): number {
    if (this.greedy) return argmax(logits);
    const { temperature = 1, topK, topP = 1 } = this.options;
    // candidates in descending logit order (ties keep the lower id first)
    if (this.order.length !== logits.length) {
      this.order = new Int32Array(logits.length);
      this.probs = new Float64Array(logits.length);
    }
    let order = descendingOrder(logits, this.order);
    if (topK !== undefined && topK < order.length) order = order.subarray(0, topK);
    const max = logits[order[0]];
    const probs = this.probs;
    let sum = 0;
    for (let i = 0; i < order.length; i++) sum += probs[i] = Math.exp((logits[order[i]] - max) / temperature);
    let keep = order.length;
    if (topP < 1) {
      let cumulative = 0;
      for (let i = 0; i < order.length; i++) {
        cumulative += probs[i] / sum;
        if (cumulative >= topP) {
          keep = i + 1;
          break;
        }
      }
    }
    let kept = 0;
    for (let i = 0; i < keep; i++) kept += probs[i];
    let r = this.rng.next() * kept;
    for (let i = 0; i < keep; i++) {
      r -= probs[i];
      if (r < 0) return order[i];
    }
    return order[keep - 1];
  }
}
