/**
 * A batch of token sequences of different lengths, packed one after the other: the GEMMs, norms and the MoE
 * run on all rows at once, attention and lightning attention per sequence, positions restarting at 0.
 */
import { InputError } from "../errors.ts";
import { Tensor } from "../tensor.ts";

export class Batch {
  /** every sequence's ids, one after the other */
  readonly tokens: Int32Array;
  /** first row of each sequence */
  readonly starts: number[];
  readonly lengths: number[];
  /** each row's position within its sequence */
  readonly positions: Int32Array;

  constructor(sequences: readonly ArrayLike<number>[], checkIds: (ids: ArrayLike<number>) => Int32Array) {
    if (sequences.length === 0) throw new InputError("no sequences given");
    this.starts = [];
    this.lengths = [];
    let total = 0;
    sequences.forEach((s, i) => {
      if (s.length === 0) throw new InputError(`sequence ${i} is empty`);
      this.starts.push(total);
      this.lengths.push(s.length);
      total += s.length;
    });
    this.tokens = new Int32Array(total);
    this.positions = new Int32Array(total);
    sequences.forEach((s, i) => {
      let ids: Int32Array;
      try {
        ids = checkIds(s);
      } catch (e) {
        throw e instanceof InputError && sequences.length > 1 ? new InputError(`sequence ${i}: ${e.message}`) : e;
      }
      this.tokens.set(ids, this.starts[i]);
      for (let t = 0; t < ids.length; t++) this.positions[this.starts[i] + t] = t;
    });
  }

  get rows(): number {
    return this.tokens.length;
  }

  get count(): number {
    return this.lengths.length;
  }

  /** Rows of sequence i of a [rows, width] array (a view). */
  rowsOf(data: Float32Array, i: number, width: number): Float32Array {
    return data.subarray(this.starts[i] * width, (this.starts[i] + this.lengths[i]) * width);
  }

  /** [rows, ...rest] data cut into one Tensor per sequence ([n_i, ...rest], copies). */
  split(data: Float32Array, rest: readonly number[]): Tensor[] {
    const width = rest.reduce((a, b) => a * b, 1);
    return this.lengths.map((n, i) => new Tensor("F32", [n, ...rest], this.rowsOf(data, i, width).slice()));
  }
}

/** Accepts one sequence (number[]) or several (number[][]). */
export function sequenceList(sequences: ArrayLike<number> | readonly ArrayLike<number>[]): ArrayLike<number>[] {
  const many = Array.isArray(sequences) && sequences.length > 0 && typeof sequences[0] === "object";
  return many ? (sequences as ArrayLike<number>[]) : [sequences as ArrayLike<number>];
}
