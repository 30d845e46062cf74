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

/** Chooses the next token from a row of logits: the native pick (native/src/sampling.cc) with a uniform from this
 *  sampler's own random stream (one draw per sampled token, none when greedy). */
export class Sampler {
  private readonly rng: Rng;
  readonly greedy: boolean;
  /** the options as the native pick takes them: temperature 0 is greedy (argmax, ties to the lower id), topK 0 keeps
   *  every candidate */
  private readonly temperature: number;
  private readonly topK: number;
  private readonly topP: number;

  constructor(readonly options: SamplingOptions = {}) {
    const { temperature = 1, topK, topP = 1, seed } = options;
    if (!(temperature >= 0) || !Number.isFinite(temperature)) throw new InputError(`temperature must be a finite number >= 0, got ${temperature}`);
    if (topK !== undefined && !(Number.isInteger(topK) && topK >= 1)) throw new InputError(`topK must be an integer >= 1, got ${topK}`);
    if (!(topP > 0 && topP <= 1)) throw new InputError(`topP must be in (0, 1], got ${topP}`);
    if (seed !== undefined && !Number.isInteger(seed)) throw new InputError(`seed must be an integer, got ${seed}`);
    this.greedy = options.greedy === true || temperature === 0;
    this.temperature = this.greedy ? 0 : temperature;
    this.topK = Math.min(topK ?? 0, 2 ** 31 - 1); // an Int32Array entry in pickRows; no vocabulary is longer
    this.topP = topP;
    this.rng = new Rng(seed ?? Math.floor(Math.random() * 2 ** 32));
  }

  /**
   * The token for a row of logits: greedy, the argmax; else candidates by descending logit (ties: the lower id
   * first), the first topK, probabilities exp((l - max) / T) summed in that order, the first of them whose share of
   * the sum reaches topP, and a draw among those.
   */
  pick(logits: Float32Array): number {
    return this.pickWith(logits, this.draw());
  }

  /** The uniform in [0, 1) that the next sampled token takes from the random stream (0, no draw, when greedy). */
  private draw(): number {
    return this.greedy ? 0 : this.rng.next();
  }

  /** pick with the uniform already drawn (by draw); a row with a NaN logit takes its candidates in the order the
   *  comparator sort gives them (descendingOrder), as before the pick went native. */
  private pickWith(logits: Float32Array, uniform: number): number {
    const id = native.sampleRow(logits, this.temperature, this.topK, this.topP, uniform);
    return id >= 0 ? id : native.sampleRow(logits, this.temperature, this.topK, this.topP, uniform, descendingOrder(logits));
  }

  /**
   * The tokens of many rows, one sampler each (the rows of a decode batch), in one native call whose rows are shared
   * out to the threads: row i's token is what samplers[i].pick(rows[i]) gives, each sampler drawing as pick does.
   */
  static pickRows(samplers: readonly Sampler[], rows: readonly Float32Array[]): Int32Array {
    if (samplers.length !== rows.length) throw new InputError(`pickRows: ${samplers.length} samplers for ${rows.length} rows`);
    const n = samplers.length;
    const temperature = new Float64Array(n), topK = new Int32Array(n), topP = new Float64Array(n), uniform = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      const s = samplers[i];
      temperature[i] = s.temperature;
      topK[i] = s.topK;
      topP[i] = s.topP;
      uniform[i] = s.draw();
    }
    const ids = native.sampleRows(rows, temperature, topK, topP, uniform);
    for (let i = 0; i < n; i++) if (ids[i] < 0) ids[i] = samplers[i].pickWith(rows[i], uniform[i]);
    return ids;
  }
}
