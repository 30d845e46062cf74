// Continuous batching for `m1 serve`: requests decode together in DecodeBatches (engine/batch.ts), one per lane
// (see BatchScheduler), joining between steps as they arrive and leaving as they finish, so every weight is read
// once per step for all of a lane's requests; each request's tokens equal what it would get alone (the batch's rows
// are bit-identical to generate). Requests that need per-request hooks or every step's logits (logprobs, echo,
// routing logs, an expert threshold) run alone through `exclusive`, between batch steps, once the batches have
// drained. A new request's prompt is prefilled in the pass of its lane's next step, beside the running requests'
// next tokens (each row with the bits it has alone), so joining costs no pass of its own; a long prompt is
// prefilled in chunks with batch steps in between.
import { DecodeBatch, PREFILL_CHUNK, type BatchSequence, type BatchSequenceOptions } from "../../engine/batch.ts";
import type { StopReason } from "../../engine/generate.ts";
import type { BatchPassOptions, Model } from "../../engine/model.ts";
import { InputError } from "../../engine/errors.ts";
import { IncrementalDecoder } from "../../engine/incremental-decoder.ts";

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

/** A decoding request; `text` follows its tokens when it has stop strings to watch for. */
interface Running extends Waiting { seq: BatchSequence; text: IncrementalDecoder | null }

/** One lane of the scheduler: a DecodeBatch of its own, the requests waiting to join it and those decoding in it. */
class Lane {
  readonly batch: DecodeBatch;
  waiting: Waiting[] = [];
  readonly running: Running[] = [];
  /** whether its loop runs */
  pumping = false;
  /** native passes of its batch under way (a long prompt's join, with steps between its chunks, is one too) */
  passes = 0;
  /** requests whose prompts those passes prefill */
  joining = 0;

  constructor(model: Model) {
    this.batch = new DecodeBatch(model, { logprobs: false }); // a request that reports log-probabilities runs alone
  }

  get size(): number {
    return this.waiting.length + this.joining + this.running.length;
  }
}

/**
 * Requests are shared out to lanes (one unless `lanes` says more), a new one to the lane with the fewest. Each lane
 * steps its own batch in its own loop. While one lane alone has work, its passes run on the event loop's thread with
 * every op over all cores, as a lone request always did; while several do, each pass runs on a thread of its own with
 * single-threaded kernels (BatchPassOptions.ownThread; at most UV_THREADPOOL_SIZE at once, 4 unless set before node
 * starts), so the lanes never wait for each other at a join and the JavaScript between one lane's passes runs while
 * the others compute. A row's bits do not depend on its lane, its batch or the threads (the dot path), so every
 * request still gets the tokens it gets alone. One lane is the faster on cores of its own (a pass handed to another
 * thread and back costs more than the join it saves); a lane per core holds up where other work competes for the
 * cores (benchmarks/serving/README.md, "Lanes").
 */
export class BatchScheduler {
  private readonly lanes: Lane[];
  private exclusives: (() => Promise<void>)[] = [];
  private inExclusive = false;
  /** batch steps run so far by the sequences in them: stepsBySize[b] steps of b sequences (each lane's steps) */
  readonly stepsBySize: number[] = [];
  /** prompts prefilled so far, and the joins that prefilled them (several short prompts join in one) */
  readonly prefilled = { prompts: 0, joins: 0 };
  /** native passes of the lanes so far, and those that ran on a thread of their own (another lane had work) */
  readonly passes = { all: 0, ownThread: 0 };

  constructor(readonly model: Model, readonly maxBatch = 64, lanes = 1) {
    if (!Number.isInteger(lanes) || lanes < 1) throw new InputError(`lanes must be a whole number >= 1, got ${lanes}`);
    this.lanes = Array.from({ length: lanes }, () => new Lane(model));
  }

  /** How many lanes step side by side. */
  get laneCount(): number {
    return this.lanes.length;
  }

  /** most sequences decoded in one step (of one lane) so far */
  get peakBatch(): number {
    return Math.max(0, this.stepsBySize.length - 1);
  }

  /** Requests decoding in the batches now, and those waiting to join them. */
  get load(): { running: number; waiting: number } {
    return { running: this.running(), waiting: this.lanes.reduce((n, l) => n + l.waiting.length, 0) };
  }

  /** Decodes `prompt` in the shared batch; stop strings end it once the decoded text contains one. */
  generate(prompt: number[], options: BatchSequenceOptions, stopStrings: string[], signal?: AbortSignal): BatchedGeneration {
    const out = new BatchedGeneration();
    const lane = this.lanes.reduce((a, b) => (b.size < a.size ? b : a));
    lane.waiting.push({ prompt, options, stopStrings, signal, out });
    this.pump(lane);
    return out;
  }

  /** Runs `task` with the model to itself: after the running batches finish, before waiting requests join. */
  exclusive<T>(task: () => Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.exclusives.push(() => task().then(resolve, reject));
      this.pump(this.lanes[0]);
    });
  }

  private running(): number {
    return this.lanes.reduce((n, l) => n + l.running.length, 0);
  }

  /** Requests in the batches or joining them (what the batch size limit counts). */
  private admitted(): number {
    return this.lanes.reduce((n, l) => n + l.joining + l.running.length, 0);
  }

  /** No lane decodes or runs a pass (an exclusive request may have the model). */
  private idle(): boolean {
    return this.lanes.every((l) => l.running.length === 0 && l.passes === 0);
  }

  private pump(lane: Lane): void {
    if (lane.pumping) return;
    lane.pumping = true;
    // the loop starts after the I/O of this turn of the event loop: requests that arrive together join together
    void new Promise((resolve) => setImmediate(resolve)).then(() => this.loop(lane)).finally(() => {
      lane.pumping = false;
      this.wakeWaiting();
      if (this.exclusives.length && this.idle()) this.pump(this.lanes[0]);
    });
  }

  /** Starts the loops of lanes whose waiting requests may join now. */
  private wakeWaiting(): void {
    if (!this.canJoin()) return;
    for (const l of this.lanes) if (l.waiting.length && !l.pumping) this.pump(l);
  }

  private async loop(lane: Lane): Promise<void> {
    for (;;) {
      if (this.idle() && this.exclusives.length && !this.inExclusive) {
        this.inExclusive = true;
        try {
          await this.exclusives.shift()!();
        } finally {
          this.inExclusive = false;
        }
        this.wakeWaiting();
        continue;
      }
      if (lane.running.length === 0 && !(lane.waiting.length && this.canJoin())) return;
      // a long prompt joins in chunks (with steps in between); short ones join in the next step's pass
      if (lane.waiting[0]?.prompt.length > PREFILL_CHUNK && this.canJoin()) await this.join(lane, lane.waiting.shift()!);
      await this.stepRunning(lane);
    }
  }

  /** Whether waiting requests may join: the batches have room, and no exclusive request waits for them to drain. */
  private canJoin(): boolean {
    return !this.exclusives.length && !this.inExclusive && this.admitted() < this.maxBatch;
  }

  /** How a lane's next pass runs: on a thread of its own while another lane has work too. */
  private passOptions(lane: Lane): BatchPassOptions {
    return { ownThread: this.lanes.some((l) => l !== lane && (l.passes > 0 || l.running.length > 0)) };
  }

  /** One batch step of a lane's running requests whose pass also prefills its waiting requests with short prompts
   *  (at most PREFILL_CHUNK prompt tokens in all, or one prompt; DecodeBatch.stepJoining: each gets the bits it gets
   *  alone, and a request the engine rejects fails alone), then, after a pass on this thread, a pause for HTTP traffic. */
  private async stepRunning(lane: Lane): Promise<void> {
    for (let i = lane.running.length - 1; i >= 0; i--) {
      const r = lane.running[i];
      if (r.signal?.aborted) this.finish(lane, r, null, r.signal.reason);
    }
    const joining = this.takeShort(lane);
    if (lane.running.length === 0 && joining.length === 0) return;
    const stepping = [...lane.running];
    if (stepping.length) {
      while (this.stepsBySize.length <= stepping.length) this.stepsBySize.push(0);
      this.stepsBySize[stepping.length]++;
    }
    if (joining.length) this.countPrefill(joining.length);
    let joined: PromiseSettledResult<BatchSequence>[] = [];
    const pass = this.passOptions(lane);
    this.passes.all++;
    if (pass.ownThread) this.passes.ownThread++;
    lane.passes++;
    lane.joining += joining.length;
    try {
      const requests = joining.map((w) => ({ prompt: w.prompt, options: w.options }));
      if (!stepping.length) joined = await lane.batch.joinMany(requests, undefined, pass);
      else if (joining.length) joined = (await lane.batch.stepJoining(requests, undefined, pass)).joined;
      else await lane.batch.step(undefined, pass);
    } catch (e) {
      for (const r of stepping) this.finish(lane, r, null, e);
      for (const w of joining) w.out.end(null, e);
      return;
    } finally {
      lane.passes--;
      lane.joining -= joining.length;
    }
    for (const r of stepping) {
      r.out.push(r.seq.ids.at(-1)!);
      if (r.seq.done) this.finish(lane, r, r.seq.stopReason);
      else if (r.text && this.hasStopString(r)) this.finish(lane, r, "stop_string");
    }
    joined.forEach((j, i) => (j.status === "fulfilled" ? this.started(lane, joining[i], j.value) : joining[i].out.end(null, j.reason)));
    this.wakeWaiting(); // requests that left may make room for another lane's
    // a pass on this thread held the event loop: let HTTP traffic in before the next
    if (!pass.ownThread) await new Promise((resolve) => setImmediate(resolve));
  }

  /** Prefills a long prompt into a lane's batch in chunks; between two chunks the lane's running requests take a step
   *  (and short prompts join in it): a long prompt holds up no one. A request the engine rejects fails alone. */
  private async join(lane: Lane, w: Waiting): Promise<void> {
    if (w.signal?.aborted) return w.out.end(null, w.signal.reason);
    this.countPrefill(1);
    lane.passes++;
    lane.joining++;
    try {
      const seq = await lane.batch.join(w.prompt, w.options, w.signal, () => this.stepRunning(lane));
      this.started(lane, w, seq);
    } catch (e) {
      w.out.end(null, e);
    } finally {
      lane.passes--;
      lane.joining--;
    }
  }

  /** Takes a lane's waiting requests with short prompts that join next (at most PREFILL_CHUNK prompt tokens in all,
   *  or one prompt, as many as the batches have room for); those whose client left end here. */
  private takeShort(lane: Lane): Waiting[] {
    const group: Waiting[] = [];
    let tokens = 0;
    const room = this.maxBatch - this.admitted();
    for (const w of this.canJoin() ? lane.waiting : []) {
      if (group.length >= room) break;
      if (w.prompt.length > PREFILL_CHUNK) continue;
      if (group.length && tokens + w.prompt.length > PREFILL_CHUNK) break;
      group.push(w);
      tokens += w.prompt.length;
    }
    if (group.length) lane.waiting = lane.waiting.filter((w) => !group.includes(w));
    for (const w of group) if (w.signal?.aborted) w.out.end(null, w.signal.reason);
    return group.filter((w) => !w.signal?.aborted);
  }

  private countPrefill(prompts: number): void {
    this.prefilled.prompts += prompts;
    this.prefilled.joins++;
  }

  /** A request whose prompt is prefilled: it decodes in its lane's batch, unless it is done already. */
  private started(lane: Lane, w: Waiting, seq: BatchSequence): void {
    if (seq.done) w.out.end(seq.stopReason);
    else {
      const text = w.stopStrings.length ? new IncrementalDecoder(this.model.tokenizer!, w.stopStrings) : null;
      lane.running.push({ ...w, seq, text });
    }
  }

  /** Whether the request's newest token completes one of its stop strings. */
  private hasStopString(r: Running): boolean {
    r.text!.push(r.seq.ids.at(-1)!);
    return r.text!.newStopAt() >= 0;
  }

  private finish(lane: Lane, r: Running, reason: StopReason | null, error: unknown = null): void {
    lane.running.splice(lane.running.indexOf(r), 1);
    if (lane.batch.active.includes(r.seq)) lane.batch.leave(r.seq);
    r.out.end(reason, error);
  }
}
