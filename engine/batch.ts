/**
 * Batched decoding: many sequences advance together, one token each per step. Each sequence keeps its own cache
 * (lightning states and KV cache) and its own token choice (sampler, thinking budget, stop tokens); a step runs
 * every weight once for all of them (Model.stepBatch). Sequences join (their prompt is prefilled) and leave between
 * steps, so a server can keep the batch full. Each sequence's tokens equal what `generate` gives it alone with the
 * same options (the same seed, the same tokens, bit for bit).
 */
import type { BatchPassOptions, Model } from "./model.ts";
import type { ModelCache } from "./cache.ts";
import { TokenChooser, type GenerateOptions, type StopReason } from "./generate.ts";
import { logProbability } from "./softmax.ts";
import { Sampler } from "./sampling.ts";
import { InputError } from "./errors.ts";

/** Per-sequence options of a batch: generate's, less what needs a stream of text or an outside cache. */
export type BatchSequenceOptions = Omit<GenerateOptions, "stopStrings" | "cache" | "signal" | "keepLogits">;

/** One sequence in a decode batch: its prompt, the new tokens so far and each one's log-probability. */
export class BatchSequence {
  /** log p(token | everything before it) under the model's own distribution (temperature 1, no truncation): the
   *  rollout policy's probability of each new token when sampling at temperature 1 (empty in a batch that does not
   *  score its tokens: DecodeBatchOptions.logprobs) */
  readonly logprobs: number[] = [];
  /** tokens emitted by the thinking budget rather than chosen by the sampler */
  readonly forced: boolean[] = [];
  /** logits that follow the last token (the next token is chosen from them) */
  logits: Float32Array | null = null;

  constructor(readonly prompt: Int32Array, readonly chooser: TokenChooser, readonly cache: ModelCache, readonly tag: number, private readonly scored = true) {}

  get ids(): number[] {
    return this.chooser.ids;
  }

  get stopReason(): StopReason | null {
    return this.chooser.stopReason;
  }

  get done(): boolean {
    return this.chooser.done;
  }

  get thoughtTokens(): number {
    return this.chooser.thoughtTokens;
  }

  /** Takes the next token, chosen from the pending logits (TokenChooser.accept), and records its log-probability
   *  (in a batch that scores). */
  accept(id: number, forced: boolean): void {
    this.chooser.accept(id, forced);
    if (this.scored) this.logprobs.push(logProbability(this.logits!, id));
    this.forced.push(forced);
  }
}

/** Prompt tokens per forward call of a join with `between`. */
export const PREFILL_CHUNK = 512;

/** A prompt and its sequence's options, as `join` takes them. */
export interface JoinRequest { prompt: ArrayLike<number> | string; options?: BatchSequenceOptions }

/** A prompt ready to join: its checked ids and a token chooser per sequence. */
interface Prepared { ids: Int32Array; choosers: TokenChooser[] }

/** A sequence and the token it chose in a step (fed to the step's pass). */
interface Chosen { seq: BatchSequence; id: number }

export interface DecodeBatchOptions {
  /** Record each new token's log-probability in BatchSequence.logprobs (default true; a server that does not report
   *  them skips a pass over the vocabulary per token). */
  logprobs?: boolean;
}

/** A step-able batch of sequences (see the module comment). */
export class DecodeBatch {
  private sequences: BatchSequence[] = [];
  private tags = 0;
  private readonly scored: boolean;

  constructor(readonly model: Model, options: DecodeBatchOptions = {}) {
    this.scored = options.logprobs ?? true;
  }

  /** The sequences still generating, in the order they joined. */
  get active(): readonly BatchSequence[] {
    return this.sequences;
  }

  /** Prefills a prompt and adds its sequence; its first token is chosen at the next step. With `between`, a prompt
   *  longer than PREFILL_CHUNK tokens is prefilled in chunks (equal to one prefill up to f32 rounding) and `between`
   *  runs after each chunk but the last: a server steps the running batch there, so a long prompt stalls no one. */
  async join(prompt: ArrayLike<number> | string, options: BatchSequenceOptions = {}, signal?: AbortSignal, between?: () => Promise<void>): Promise<BatchSequence> {
    return (await this.joinGroup(prompt, [options], signal, between))[0];
  }

  /**
   * Adds one sequence per entry of `options`, all continuing the same prompt (a group of G completions): the prompt
   * is prefilled once and each sequence starts from a copy of that state, as if it had prefilled it alone.
   */
  async joinGroup(prompt: ArrayLike<number> | string, options: readonly BatchSequenceOptions[], signal?: AbortSignal, between?: () => Promise<void>): Promise<BatchSequence[]> {
    const { ids, choosers } = this.prepare(prompt, options);
    const cache = this.model.newCache();
    const chunk = between ? PREFILL_CHUNK : ids.length;
    for (let t0 = 0; t0 + chunk < ids.length; t0 += chunk) {
      await this.model.forward(ids.subarray(t0, t0 + chunk), { cache, logits: "none", phase: "prefill", signal });
      await between!();
    }
    const rest = ids.subarray(Math.floor((ids.length - 1) / chunk) * chunk);
    const logits = (await this.model.forward(rest, { cache, logits: "last", phase: "prefill", signal })).logits.f32;
    return this.admit(ids, choosers, cache, logits);
  }

  /**
   * Prefills several prompts together (Model.prefillMany) and adds a sequence for each: each gets what `join` gives
   * it alone, bit for bit. A request that `join` refuses (ids outside the vocabulary, an empty prompt, bad options)
   * is refused alone: its entry holds the error, and the others join.
   */
  async joinMany(requests: readonly JoinRequest[], signal?: AbortSignal, pass: BatchPassOptions = {}): Promise<PromiseSettledResult<BatchSequence>[]> {
    signal?.throwIfAborted();
    return this.passJoining(this.prepareEach(requests), [], signal, pass);
  }

  /**
   * One step (as `step`) whose pass also prefills the prompts of `requests` (as joinMany), so that joining costs no
   * pass of its own: the step's rows and the prompts' rows run in one Model.prefillMany, each row with the bits it
   * has alone. Returns the sequences that finished in this step and, per request, its sequence or why it was refused.
   */
  async stepJoining(requests: readonly JoinRequest[], signal?: AbortSignal, pass: BatchPassOptions = {}): Promise<{ finished: BatchSequence[]; joined: PromiseSettledResult<BatchSequence>[] }> {
    signal?.throwIfAborted();
    const prepared = this.prepareEach(requests);
    const { going, finished } = this.chooseNext();
    return { finished, joined: await this.passJoining(prepared, going, signal, pass) };
  }

  private prepareEach(requests: readonly JoinRequest[]): PromiseSettledResult<Prepared>[] {
    return requests.map((r) => {
      try {
        return { status: "fulfilled", value: this.prepare(r.prompt, [r.options ?? {}]) };
      } catch (reason) {
        return { status: "rejected", reason };
      }
    });
  }

  /** One pass: the next token of each `going` sequence and the prompts of the prepared requests; the new sequences join. */
  private async passJoining(prepared: readonly PromiseSettledResult<Prepared>[], going: readonly Chosen[], signal: AbortSignal | undefined, pass: BatchPassOptions): Promise<PromiseSettledResult<BatchSequence>[]> {
    const valid = prepared.flatMap((p) => (p.status === "fulfilled" ? [p.value] : []));
    const caches = valid.map(() => this.model.newCache());
    const rows = await this.model.prefillMany(
      [...going.map((c) => Int32Array.of(c.id)), ...valid.map((v) => v.ids)], [...going.map((c) => c.seq.cache), ...caches], signal, pass,
    );
    going.forEach((c, i) => (c.seq.logits = rows[i]));
    let next = 0;
    return prepared.map((p) => {
      if (p.status === "rejected") return p;
      const i = next++;
      return { status: "fulfilled", value: this.admit(p.value.ids, p.value.choosers, caches[i], rows[going.length + i])[0] };
    });
  }

  /** A prompt's checked ids and a token chooser for each entry of `options`. */
  private prepare(prompt: ArrayLike<number> | string, options: readonly BatchSequenceOptions[]): Prepared {
    const ids = this.model.checkIds(this.model.promptIds(prompt));
    return { ids, choosers: options.map((o) => new TokenChooser(this.model, ids, o)) };
  }

  /** The sequences of a prefilled prompt (the last one on `cache`, the others on copies), each with the prefill's
   *  logits; those not already done join the batch. */
  private admit(ids: Int32Array, choosers: readonly TokenChooser[], cache: ModelCache, logits: Float32Array): BatchSequence[] {
    return choosers.map((chooser, i) => {
      const seq = new BatchSequence(ids, chooser, i === choosers.length - 1 ? cache : cache.clone(), this.tags++, this.scored);
      seq.logits = logits;
      if (!seq.done) this.sequences.push(seq);
      return seq;
    });
  }

  /** Takes a sequence out of the batch (it keeps its tokens; its cache is no longer advanced). */
  leave(seq: BatchSequence): void {
    const i = this.sequences.indexOf(seq);
    if (i < 0) throw new InputError("leave: the sequence is not in this batch");
    this.sequences.splice(i, 1);
  }

  /**
   * One token for every active sequence: each chooses from its pending logits; those that did not stop then run
   * one batched decode step for their next logits. Returns the sequences that finished in this step (they leave).
   */
  async step(signal?: AbortSignal, pass: BatchPassOptions = {}): Promise<BatchSequence[]> {
    signal?.throwIfAborted();
    const { going, finished } = this.chooseNext();
    if (going.length > 0) {
      const rows = await this.model.stepBatch(going.map((c) => c.id), going.map((c) => c.seq.cache), signal, pass);
      going.forEach((c, i) => (c.seq.logits = rows[i]));
    }
    return finished;
  }

  /** Every active sequence chooses its next token from its pending logits (the thinking budget's forced tokens, then
   *  every other row's pick in one call: Sampler.pickRows); those that stop leave the batch. */
  private chooseNext(): { going: Chosen[]; finished: BatchSequence[] } {
    const forced = this.sequences.map((seq) => seq.chooser.takeForced());
    const picking = this.sequences.filter((_, i) => forced[i] === null);
    const picked = Sampler.pickRows(picking.map((seq) => seq.chooser.sampler), picking.map((seq) => seq.logits!));
    const going: Chosen[] = [];
    const finished: BatchSequence[] = [];
    let next = 0;
    this.sequences.forEach((seq, i) => {
      const id = forced[i] ?? picked[next++];
      seq.accept(id, forced[i] !== null);
      if (!seq.done) going.push({ seq, id });
      else {
        seq.logits = null;
        finished.push(seq);
      }
    });
    if (finished.length) this.sequences = going.map((c) => c.seq);
    return { going, finished };
  }
}

export interface GenerateBatchOptions extends BatchSequenceOptions {
  /** Seed of each sequence's sampler (default: `seed + i` for sequence i when `seed` is given). */
  seeds?: number[];
  signal?: AbortSignal;
}

/** Generates from every prompt together until each stops; sequences come back in prompt order. */
export async function generateBatch(model: Model, prompts: readonly (ArrayLike<number> | string)[], options: GenerateBatchOptions = {}): Promise<BatchSequence[]> {
  const { seeds, signal, seed, ...rest } = options;
  if (seeds && seeds.length !== prompts.length) throw new InputError(`seeds has ${seeds.length} entries for ${prompts.length} prompts`);
  const batch = new DecodeBatch(model);
  const out: BatchSequence[] = [];
  for (let i = 0; i < prompts.length; i++) {
    const s = seeds?.[i] ?? (seed === undefined ? undefined : seed + i);
    out.push(await batch.join(prompts[i], { ...rest, ...(s === undefined ? {} : { seed: s }) }, signal));
  }
  while (batch.active.length > 0) await batch.step(signal);
  return out;
}
