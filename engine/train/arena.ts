/**
 * Memory for the arrays of one training pass, handed out again by every later pass (a Trainer's update rounds):
 * no fresh array per activation, so no zero fill and no garbage collection of the last round's hundred MiB. An
 * array taken from it is valid until its owner starts the next pass (`reset`); ops write every element of it.
 */
import * as native from "../../native/index.ts";

const ALIGN = 16; // floats: each array starts on a 64-byte line

export class Arena {
  private memory: Float32Array = new Float32Array(0);
  /** floats the current pass has asked for (aligned), those that did not fit included */
  private asked = 0;

  /** Starts a pass: the memory is handed out from its start again (grown to what the last pass asked for). */
  reset(): void {
    if (this.asked > this.memory.length) this.memory = native.empty(Math.ceil(this.asked * 1.25));
    this.asked = 0;
  }

  /** `length` floats of undefined contents (a fresh array when the memory is full; it grows at the next reset). */
  take(length: number): Float32Array {
    const start = this.asked;
    this.asked = Math.ceil((start + length) / ALIGN) * ALIGN;
    return this.asked <= this.memory.length ? this.memory.subarray(start, start + length) : native.empty(length);
  }
}
