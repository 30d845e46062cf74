/**
 * Memory for the arrays of one training pass, handed out again by every later pass (a Trainer's update rounds):
 * no fresh array per activation, so no zero fill and no garbage collection of the last round's hundred MiB. An
 * array taken from it is valid until its owner starts the next pass (`reset`); ops write every element of it.
 *
 * (A Trainer keeps its weight gradients, and AdamW its moments, in an arena of their own too: a few large blocks.)
 *
 * The memory is a list of blocks filled in order. A pass that needs more than the blocks hold gets a new block
 * then and there, which every later pass reuses: the pages of the first pass are the pages of all the others (a
 * block allocated only at the next pass would fault in a second set of fresh pages).
 */
import * as native from "../../native/index.ts";

const ALIGN = 16; // floats: each array starts on a 64-byte line
const BLOCK = 1 << 22; // floats (16 MiB) per block, or the length of one larger array

export class Arena {
  private readonly blocks: Float32Array[] = [];
  /** the block being handed out and the floats of it taken so far (aligned) */
  private current = 0;
  private used = 0;

  /** Starts a pass: the blocks are handed out from the first again. */
  reset(): void {
    this.current = 0;
    this.used = 0;
  }

  /** `length` floats of undefined contents. */
  take(length: number): Float32Array {
    for (;;) {
      if (this.current === this.blocks.length) this.blocks.push(native.empty(Math.max(BLOCK, length)));
      const block = this.blocks[this.current];
      if (this.used + length <= block.length) {
        const start = this.used;
        this.used = Math.ceil((start + length) / ALIGN) * ALIGN;
        return block.subarray(start, start + length);
      }
      this.current++; // the rest of this block is left unused this pass
      this.used = 0;
    }
  }
}
