/**
 * A forward pass that pauses at every sub-step (see SubStep): iterate it, look at inputs and outputs, assign
 * `step.output` to edit the residual stream, and the pass continues from there. Works for prefill and for
 * decode steps on a cache alike.
 */
import type { Model, ForwardOptions, ForwardResult } from "./model.ts";
import type { SubStep } from "./substep.ts";
import { InputError } from "./errors.ts";

export class Stepper implements AsyncIterable<SubStep> {
  private readonly run: Generator<SubStep | null, ForwardResult, void>;
  private done: ForwardResult | null = null;
  /** The sub-step the pass is paused at (null before the first and after the last). */
  current: SubStep | null = null;

  constructor(model: Model, ids: ArrayLike<number>, private readonly options: ForwardOptions = {}) {
    this.run = model.run(ids, options, true);
  }

  /** Advances to the next sub-step; null when the pass is complete (then `result` is set). */
  async next(): Promise<SubStep | null> {
    if (this.done) return (this.current = null);
    for (let r = this.run.next(); ; r = this.run.next()) {
      if (r.done) {
        this.done = r.value;
        return (this.current = null);
      }
      if (r.value) return (this.current = r.value);
      this.options.signal?.throwIfAborted();
      await new Promise((resolve) => setImmediate(resolve));
    }
  }

  /** Runs the rest of the pass without pausing and returns its logits and cache. */
  async finish(): Promise<ForwardResult> {
    while (await this.next());
    return this.done!;
  }

  /** The pass's logits and cache once it is complete. */
  get result(): ForwardResult {
    if (!this.done) throw new InputError("the stepper has not finished: iterate it to the end or call finish()");
    return this.done;
  }

  /** Iterating pauses at each sub-step; leaving the loop early keeps the pass paused (finish() completes it). */
  [Symbol.asyncIterator](): AsyncIterator<SubStep> {
    return {
      next: async () => {
        const step = await this.next();
        return step ? { value: step, done: false } : { value: undefined, done: true };
      },
      return: async () => ({ value: undefined, done: true }),
    };
  }
}
