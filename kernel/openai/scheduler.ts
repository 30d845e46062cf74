// Continuous batching for `m1 serve`: requests decode together in one DecodeBatch (engine/batch.ts), joining
// between steps as they arrive and leaving as they finish, so every weight is read once per step for all of
// them; each request's tokens equal what it would get alone (the batch's rows are bit-identical to generate).
// Requests that need per-request hooks or every step's logits (logprobs, echo, routing logs, an expert
// threshold) run alone through `exclusive`, between batch steps, once the batch has drained. Requests that arrive
// together are prefilled together (one packed pass, bit-identical to their passes alone); a long prompt is
// prefilled in chunks with batch steps (and short prompts joining) in between.
import { DecodeBatch, PREFILL_CHUNK, type BatchSequence, type BatchSequenceOptions } from "../../engine/batch.ts";
import type { StopReason } from "../../engine/generate.ts";
import type { Model } from "../../engine/model.ts";

/** One token of a request's stream. */
export interface StreamedToken { id: number }

/** The tokens of one batched request, as an async iterable; `stopReason` is set when it ends. */
export class BatchedGeneration implements AsyncIterable<StreamedToken> {
  readonly ids: number[] = [];
  stopReason: StopReason | null = null;
  private queue: StreamedToken[] = [];
  private error: unknown = null;
  private wake: (() => void) | null = null;

  push(id: number): void {
    this.ids.push(id);
    this.queue.push({ id });
    this.wake?.();
  }

  end(reason: StopReason | null, error: unknown = null): void {
    this.stopReason = reason;
    this.error = error;
    this.wake?.();
  }

  async *[Symbol.asyncIterator](): AsyncIterator<StreamedToken> {
    for (;;) {
      while (this.queue.length) yield this.queue.shift()!;
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
    this.batch = new DecodeBatch(model);
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
      // new requests join unless an exclusive one waits for the batch to drain
      if (!this.exclusives.length && this.waiting.length && this.running.length < this.maxBatch) await this.admit();
      if (this.running.length === 0) {
        if (this.waiting.length || this.exclusives.length) continue;
        return;
      }
      await this.stepRunning();
    }
  }

  /** One batch step of the running requests, then a pause for HTTP traffic. */
  private async stepRunning(): Promise<void> {
    for (const r of [...this.running]) if (r.signal?.aborted) this.finish(r, null, r.signal.reason);
    if (this.running.length === 0) return;
    while (this.stepsBySize.length <= this.running.length) this.stepsBySize.push(0);
    this.stepsBySize[this.running.length]++;
    try {
      await this.batch.step();
    } catch (e) {
      for (const r of [...this.running]) this.finish(r, null, e);
      return;
    }
    for (const r of [...this.running]) {
      r.out.push(r.seq.ids.at(-1)!);
      if (r.seq.done) this.finish(r, r.seq.stopReason);
      else if (r.stopStrings.length && this.hasStopString(r)) this.finish(r, "stop_string");
    }
    await new Promise((resolve) => setImmediate(resolve)); // let HTTP traffic in between steps
  }

  /** Prefills the next waiting requests into the batch, about one chunk of prompt tokens per call: a request with a
   *  long prompt alone (in chunks, see join), else the requests with short prompts that come first, together. */
  private async admit(): Promise<void> {
    if (this.waiting[0].prompt.length > PREFILL_CHUNK) await this.join(this.waiting.shift()!);
    else await this.joinShort();
  }

  /** Prefills a long prompt into the batch in chunks; between two chunks waiting requests with short prompts join
   *  and the running ones take a step: a long prompt holds up no one. A request the engine rejects fails alone. */
  private async join(w: Waiting): Promise<void> {
    if (w.signal?.aborted) return w.out.end(null, w.signal.reason);
    this.countPrefill(1);
    try {
      const seq = await this.batch.join(w.prompt, w.options, w.signal, () => this.betweenChunks());
      this.started(w, seq);
    } catch (e) {
      w.out.end(null, e);
    }
  }

  private async betweenChunks(): Promise<void> {
    if (!this.exclusives.length && this.running.length < this.maxBatch) await this.joinShort();
    await this.stepRunning();
  }

  /** Prefills waiting requests with short prompts (at most PREFILL_CHUNK tokens in all, or one prompt) in one pass
   *  (DecodeBatch.joinMany: each gets the bits it gets alone); a request the engine rejects fails alone. */
  private async joinShort(): Promise<void> {
    const group: Waiting[] = [];
    let tokens = 0;
    for (const w of this.waiting) {
      if (this.running.length + group.length >= this.maxBatch) break;
      if (w.prompt.length > PREFILL_CHUNK) continue;
      if (group.length && tokens + w.prompt.length > PREFILL_CHUNK) break;
      group.push(w);
      tokens += w.prompt.length;
    }
    this.waiting = this.waiting.filter((w) => !group.includes(w));
    for (const w of group) if (w.signal?.aborted) w.out.end(null, w.signal.reason);
    const live = group.filter((w) => !w.signal?.aborted);
    if (!live.length) return;
    this.countPrefill(live.length);
    try {
      const joined = await this.batch.joinMany(live.map((w) => ({ prompt: w.prompt, options: w.options })));
      joined.forEach((r, i) => (r.status === "fulfilled" ? this.started(live[i], r.value) : live[i].out.end(null, r.reason)));
    } catch (e) {
      for (const w of live) w.out.end(null, e);
    }
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
