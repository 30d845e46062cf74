// Continuous batching for `m1 serve`: requests decode together in one DecodeBatch (engine/batch.ts), joining
// between steps as they arrive and leaving as they finish, so every weight is read once per step for all of
// them; each request's tokens equal what it would get alone (the batch's rows are bit-identical to generate).
// Requests that need per-request hooks or every step's logits (logprobs, echo, routing logs, an expert
// threshold) run alone through `exclusive`, between batch steps, once the batch has drained. A new request's
// prompt is prefilled in the pass of the next step, beside the running requests' next tokens (each row with the
// bits it has alone), so joining costs no pass of its own; a long prompt is prefilled in chunks with batch steps
// in between.
import { DecodeBatch, PREFILL_CHUNK, type BatchSequence, type BatchSequenceOptions } from "../../engine/batch.ts";
import type { StopReason } from "../../engine/generate.ts";
import type { Model } from "../../engine/model.ts";

/** One token of a request's stream. */
export interface StreamedToken { id: number }

/** The tokens of one batched request, as an async iterable; `stopReason` is set when it ends. */
export class BatchedGeneration implements AsyncIterable<StreamedToken> {
  readonly ids: number[] = [];
  stopReason: StopReason | null = null;
  private error: unknown = null;
  private wake: (() => void) | null = null;

  push(id: number): void {
    this.ids.push(id);
    this.wake?.();
  }

  end(reason: StopReason | null, error: unknown = null): void {
    this.stopReason = reason;
    this.error = error;
    this.wake?.();
  }

  async *[Symbol.asyncIterator](): AsyncIterator<StreamedToken> {
    for (let next = 0; ; ) {
      while (next < this.ids.length) yield { id: this.ids[next++] };
      if (this.error) throw this.error;
      if (this.stopReason) return;
      await new Promise<void>((resolve) => (this.wake = resolve));
      this.wake = null;
    }
  }
}

interface Waiting {
  prompt: number[];
  options: BatchSequenceOptions;
  stopStrings: string[];
  signal?: AbortSignal;
  out: BatchedGeneration;
}

interface Running extends Waiting { seq: BatchSequence }

export class BatchScheduler {
  private readonly batch: DecodeBatch;
  private waiting: Waiting[] = [];
  private readonly running: Running[] = [];
  private exclusives: (() => Promise<void>)[] = [];
  private pumping = false;
  /** batch steps run so far by the sequences in them: stepsBySize[b] steps of b sequences */
  readonly stepsBySize: number[] = [];
  /** prompts prefilled so far, and the joins that prefilled them (several short prompts join in one) */
  readonly prefilled = { prompts: 0, joins: 0 };

  constructor(readonly model: Model, readonly maxBatch = 64) {
    this.batch = new DecodeBatch(model, { logprobs: false }); // a request that reports log-probabilities runs alone
  }

  /** most sequences decoded in one step so far */
  get peakBatch(): number {
    return Math.max(0, this.stepsBySize.length - 1);
  }

  /** Requests decoding in the batch now, and those waiting to join it. */
  get load(): { running: number; waiting: number } {
    return { running: this.running.length, waiting: this.waiting.length };
  }

  /** Decodes `prompt` in the shared batch; stop strings end it once the decoded text contains one. */
  generate(prompt: number[], options: BatchSequenceOptions, stopStrings: string[], signal?: AbortSignal): BatchedGeneration {
    const out = new BatchedGeneration();
    this.waiting.push({ prompt, options, stopStrings, signal, out });
    this.pump();
    return out;
  }

  /** Runs `task` with the model to itself: after the running batch finishes, before waiting requests join. */
  exclusive<T>(task: () => Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.exclusives.push(() => task().then(resolve, reject));
      this.pump();
    });
  }

  private pump(): void {
    if (this.pumping) return;
    this.pumping = true;
    void this.loop().finally(() => {
      this.pumping = false;
      if (this.waiting.length || this.exclusives.length) this.pump();
    });
  }

  private async loop(): Promise<void> {
    for (;;) {
      if (this.running.length === 0 && this.exclusives.length) {
        await this.exclusives.shift()!();
        continue;
      }
      if (this.running.length === 0 && !this.waiting.length) return;
      // a long prompt joins in chunks (with steps in between); short ones join in the next step's pass
      if (this.waiting[0]?.prompt.length > PREFILL_CHUNK && this.canJoin()) await this.join(this.waiting.shift()!);
      await this.stepRunning();
    }
  }

  /** Whether waiting requests may join: the batch has room, and no exclusive request waits for it to drain. */
  private canJoin(): boolean {
    return !this.exclusives.length && this.running.length < this.maxBatch;
  }

  /** One batch step of the running requests whose pass also prefills the waiting requests with short prompts (at
   *  most PREFILL_CHUNK prompt tokens in all, or one prompt; DecodeBatch.stepJoining: each gets the bits it gets
   *  alone, and a request the engine rejects fails alone), then a pause for HTTP traffic. */
  private async stepRunning(): Promise<void> {
    for (let i = this.running.length - 1; i >= 0; i--) {
      const r = this.running[i];
      if (r.signal?.aborted) this.finish(r, null, r.signal.reason);
    }
    const joining = this.takeShort();
    if (this.running.length === 0 && joining.length === 0) return;
    const stepping = [...this.running];
    if (stepping.length) {
      while (this.stepsBySize.length <= stepping.length) this.stepsBySize.push(0);
      this.stepsBySize[stepping.length]++;
    }
    if (joining.length) this.countPrefill(joining.length);
    let joined: PromiseSettledResult<BatchSequence>[] = [];
    try {
      const requests = joining.map((w) => ({ prompt: w.prompt, options: w.options }));
      if (!stepping.length) joined = await this.batch.joinMany(requests);
      else if (joining.length) joined = (await this.batch.stepJoining(requests)).joined;
      else await this.batch.step();
    } catch (e) {
      for (const r of stepping) this.finish(r, null, e);
      for (const w of joining) w.out.end(null, e);
      return;
    }
    for (const r of stepping) {
      r.out.push(r.seq.ids.at(-1)!);
      if (r.seq.done) this.finish(r, r.seq.stopReason);
      else if (r.stopStrings.length && this.hasStopString(r)) this.finish(r, "stop_string");
    }
    joined.forEach((j, i) => (j.status === "fulfilled" ? this.started(joining[i], j.value) : joining[i].out.end(null, j.reason)));
    await new Promise((resolve) => setImmediate(resolve)); // let HTTP traffic in between steps
  }

  /** Prefills a long prompt into the batch in chunks; between two chunks the running requests take a step (and short
   *  prompts join in it): a long prompt holds up no one. A request the engine rejects fails alone. */
  private async join(w: Waiting): Promise<void> {
    if (w.signal?.aborted) return w.out.end(null, w.signal.reason);
    this.countPrefill(1);
    try {
      const seq = await this.batch.join(w.prompt, w.options, w.signal, () => this.stepRunning());
      this.started(w, seq);
    } catch (e) {
      w.out.end(null, e);
    }
  }

  /** Takes the waiting requests with short prompts that join next (at most PREFILL_CHUNK prompt tokens in all, or
   *  one prompt, as many as the batch has room for); those whose client left end here. */
  private takeShort(): Waiting[] {
    const group: Waiting[] = [];
    let tokens = 0;
    for (const w of this.canJoin() ? this.waiting : []) {
      if (this.running.length + group.length >= this.maxBatch) break;
      if (w.prompt.length > PREFILL_CHUNK) continue;
      if (group.length && tokens + w.prompt.length > PREFILL_CHUNK) break;
      group.push(w);
      tokens += w.prompt.length;
    }
    if (group.length) this.waiting = this.waiting.filter((w) => !group.includes(w));
    for (const w of group) if (w.signal?.aborted) w.out.end(null, w.signal.reason);
    return group.filter((w) => !w.signal?.aborted);
  }

  private countPrefill(prompts: number): void {
    this.prefilled.prompts += prompts;
    this.prefilled.joins++;
  }

  /** A request whose prompt is prefilled: it decodes in the batch, unless it is done already. */
  private started(w: Waiting, seq: BatchSequence): void {
    if (seq.done) w.out.end(seq.stopReason);
    else this.running.push({ ...w, seq });
  }

  private hasStopString(r: Running): boolean {
    const text = this.model.tokenizer!.decode(r.seq.ids, { skipUnknown: true });
    return r.stopStrings.some((s) => text.includes(s));
  }

  private finish(r: Running, reason: StopReason | null, error: unknown = null): void {
    this.running.splice(this.running.indexOf(r), 1);
    if (this.batch.active.includes(r.seq)) this.batch.leave(r.seq);
    r.out.end(reason, error);
  }
}
