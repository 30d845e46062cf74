/**
 * Autoregressive generation: prefill the prompt, then one cached decode step per token, with sampling,
 * stop conditions, a thinking budget and cancellation.
 */
import type { ForwardResult, Model } from "./model.ts";
import { firstNonFinite } from "./tensor.ts";
import type { ModelCache } from "./cache.ts";
import { Sampler, type SamplingOptions } from "./sampling.ts";
import { InputError, NonFiniteError } from "./errors.ts";
import { DISPLAY, htmlBundle, escapeHtml, type MimeBundle } from "./display.ts";
import { ExpertRouting, type LayerRouting } from "./expert-routing.ts";
import { firstIndexOf, IncrementalDecoder } from "./incremental-decoder.ts";

export interface GenerateOptions extends SamplingOptions {
  /** Most new tokens (default 256). */
  maxNewTokens?: number;
  /** Stop after any of these ids (default: the model's end-of-sequence ids). */
  stopTokens?: number[];
  /** Stop once the generated text contains one of these (needs a tokenizer); the text is cut before it. */
  stopStrings?: string[];
  /** Most tokens inside <think>…</think>; when spent, the closing tag is emitted instead of the sampled token. */
  thinkingBudget?: number;
  /** Token ids of the thought delimiters (default: the tokenizer's encoding of "<think>" and "</think>"). */
  thinkTokens?: { open: number[]; close: number[] };
  /** Keep the logits that chose each token. */
  keepLogits?: boolean;
  /** Keep, per token, the experts each layer chose for the position that produced it, with their weights. */
  routingLog?: boolean;
  /** Of the top-k experts, keep those whose renormalised weight reaches this (at least one), renormalised again. */
  expertThreshold?: number;
  /** Continue from this decoding state instead of a fresh one (updated in place). */
  cache?: ModelCache;
  signal?: AbortSignal;
}

export interface GeneratedToken {
  readonly id: number;
  /** 0-based index among the new tokens */
  readonly index: number;
  /** decoded text of this token (null without a tokenizer) */
  readonly text: string | null;
  /** inside a thought when it was produced */
  readonly thinking: boolean;
  /** emitted by the thinking budget, not chosen by the sampler */
  readonly forced: boolean;
  readonly logits?: Float32Array;
  /** with `routingLog`: each layer's experts and weights at the position whose logits chose this token */
  readonly routing?: LayerRouting[];
}

export type StopReason = "max_tokens" | "stop_token" | "stop_string";

export interface GenerationResult {
  readonly ids: number[];
  readonly text: string | null;
  readonly stopReason: StopReason;
  readonly thoughtTokens: number;
}

/** Tracks whether the token stream is inside a thought and how many thought tokens it has spent. */
class ThoughtTracker {
  inside = false;
  spent = 0;
  private recent: number[] = [];

  constructor(private readonly open: number[], private readonly close: number[]) {}

  push(id: number): void {
    this.recent.push(id);
    if (this.recent.length > Math.max(this.open.length, this.close.length)) this.recent.shift();
    if (endsWith(this.recent, this.open)) {
      this.inside = true;
      this.spent = 0;
    } else if (this.inside && endsWith(this.recent, this.close)) {
      this.inside = false;
    } else if (this.inside) {
      this.spent++;
    }
  }
}

function endsWith(seq: number[], tail: number[]): boolean {
  if (tail.length === 0 || tail.length > seq.length) return false;
  for (let i = 1; i <= tail.length; i++) if (seq[seq.length - i] !== tail[tail.length - i]) return false;
  return true;
}

/** A new token: whether it came inside a thought, and whether the thinking budget forced it. */
export interface ChosenToken { id: number; thinking: boolean; forced: boolean }

/**
 * The choice of each new token of one sequence: sampling, the thinking budget (the closing tag forced once the
 * budget is spent), stop tokens and the token limit. Generation and the decode batch both drive one per sequence.
 */
export class TokenChooser {
  readonly ids: number[] = [];
  stopReason: StopReason | null = null;
  thoughtTokens = 0;
  /** picks every token that the thinking budget does not force */
  readonly sampler: Sampler;
  private readonly thought: ThoughtTracker | null;
  private readonly close: number[];
  private readonly stopTokens: Set<number>;
  private readonly maxNewTokens: number;
  private forcedQueue: number[] = [];

  constructor(model: Model, prompt: ArrayLike<number>, readonly options: GenerateOptions = {}) {
    const { maxNewTokens = 256 } = options;
    if (!(Number.isInteger(maxNewTokens) && maxNewTokens >= 0)) throw new InputError(`maxNewTokens must be an integer >= 0, got ${maxNewTokens}`);
    if (prompt.length === 0) throw new InputError("generate: the prompt has no tokens");
    this.maxNewTokens = maxNewTokens;
    const vocab = model.config.vocabSize;
    for (const id of options.stopTokens ?? []) {
      if (!(Number.isInteger(id) && id >= 0 && id < vocab)) throw new InputError(`stopTokens: ${id} is not a token id of the vocabulary [0, ${vocab})`);
    }
    this.stopTokens = new Set(options.stopTokens ?? defaultStopTokens(model));
    this.sampler = new Sampler(options);
    const markers = thoughtMarkers(model, options);
    this.thought = markers ? new ThoughtTracker(markers.open, markers.close) : null;
    this.close = markers?.close ?? [];
    if (this.thought) for (let i = 0; i < prompt.length; i++) this.thought.push(prompt[i]);
    if (maxNewTokens === 0) this.stopReason = "max_tokens";
  }

  /** No more tokens: a stop token, the token limit, or `stop` was called. */
  get done(): boolean {
    return this.stopReason !== null;
  }

  /** Chooses the next token from the logits that follow the sequence so far. */
  choose(logits: Float32Array): ChosenToken {
    const forced = this.takeForced();
    return this.accept(forced ?? this.sampler.pick(logits), forced !== null);
  }

  /** The next token when the thinking budget forces it (taken from the closing tag), else null: then the sampler
   *  picks it, and `accept` takes it. (`choose` is the two in one; a decode batch picks its rows' tokens at once.) */
  takeForced(): number | null {
    if (this.done) throw new InputError(`the sequence has stopped (${this.stopReason})`);
    const thought = this.thought;
    if (this.forcedQueue.length === 0 && thought && thought.inside && thought.spent >= this.options.thinkingBudget!) {
      this.forcedQueue = [...this.close];
    }
    return this.forcedQueue.length > 0 ? this.forcedQueue.shift()! : null;
  }

  /** Takes the next token: the one takeForced gave (`forced`), or the sampler's pick. */
  accept(id: number, forced: boolean): ChosenToken {
    const thought = this.thought;
    const thinking = thought?.inside ?? false;
    thought?.push(id);
    if (thought) this.thoughtTokens = Math.max(this.thoughtTokens, thought.spent);
    this.ids.push(id);
    if (this.stopTokens.has(id) && this.forcedQueue.length === 0) this.stopReason = "stop_token";
    else if (this.ids.length >= this.maxNewTokens) this.stopReason = "max_tokens";
    return { id, thinking, forced };
  }

  stop(reason: StopReason): void {
    this.stopReason = reason;
  }
}

/** A running generation: iterate it for a stream of tokens, or await `result()`. Produced tokens stay in `ids`. */
export class Generation implements AsyncIterable<GeneratedToken> {
  /** the router hooks of `routingLog` / `expertThreshold` (null without either): slots dropped, positions forwarded */
  readonly routing: ExpertRouting | null;
  /** each new token's text and the stop strings' search, without decoding every token again (null: no tokenizer) */
  private readonly decoder: IncrementalDecoder | null;
  private readonly stream: AsyncGenerator<GeneratedToken>;
  private readonly chooser: TokenChooser;
  private started = false;

  constructor(private readonly model: Model, prompt: ArrayLike<number>, private readonly options: GenerateOptions = {}) {
    const ids = model.checkIds(prompt);
    if (options.stopStrings?.length && !model.tokenizer) throw new InputError("stopStrings need a tokenizer; this checkpoint has none (use stopTokens)");
    this.chooser = new TokenChooser(model, ids, options);
    this.decoder = model.tokenizer ? new IncrementalDecoder(model.tokenizer, options.stopStrings) : null;
    const { routingLog = false, expertThreshold } = options;
    this.routing = routingLog || expertThreshold !== undefined ? new ExpertRouting(expertThreshold, routingLog) : null;
    this.stream = this.routed(ids);
  }

  /** Runs with the router hooks registered for the generation's lifetime. */
  private async *routed(prompt: Int32Array): AsyncGenerator<GeneratedToken> {
    const removers = this.routing?.hooks().map(([filter, fn]) => this.model.hooks.add(filter, fn)) ?? [];
    try {
      yield* this.run(prompt);
    } finally {
      for (const remove of removers) remove();
    }
  }

  /** The new tokens so far. */
  get ids(): number[] {
    return this.chooser.ids;
  }

  /** Why it stopped; null while running. */
  get stopReason(): StopReason | null {
    return this.chooser.stopReason;
  }

  get thoughtTokens(): number {
    return this.chooser.thoughtTokens;
  }

  [Symbol.asyncIterator](): AsyncIterator<GeneratedToken> {
    if (this.started) throw new InputError("a generation can be iterated once");
    this.started = true;
    return this.stream;
  }

  async result(): Promise<GenerationResult> {
    for await (const _ of this) {
      // draining the stream fills ids
    }
    return { ids: [...this.ids], text: this.text, stopReason: this.stopReason!, thoughtTokens: this.thoughtTokens };
  }

  get text(): string | null {
    const tok = this.model.tokenizer;
    if (!tok) return null;
    const text = tok.decode(this.ids, { skipUnknown: true });
    const cut = firstIndexOf(text, this.options.stopStrings ?? []);
    return cut < 0 ? text : text.slice(0, cut);
  }

  /** The text so far with the thought set apart from the answer; ids when there is no tokenizer. */
  [DISPLAY](): MimeBundle {
    const status = `${this.ids.length} tokens, ${this.stopReason ?? "running"}${this.thoughtTokens ? `, ${this.thoughtTokens} thought tokens` : ""}`;
    const text = this.text ?? this.ids.join(" ");
    const close = text.indexOf("</think>");
    const html = close < 0
      ? `<pre style="white-space:pre-wrap">${escapeHtml(text)}</pre>`
      : `<pre style="white-space:pre-wrap"><span style="color:#888" title="thought">${escapeHtml(text.slice(0, close + 8))}</span><b>${escapeHtml(text.slice(close + 8))}</b></pre>`;
    return htmlBundle(`${html}<small>${escapeHtml(status)}</small>`, `${text}\n[${status}]`);
  }

  private async *run(prompt: Int32Array): AsyncGenerator<GeneratedToken> {
    const { model, options, chooser } = this;
    const { signal, keepLogits = false } = options;
    const cache = options.cache ?? model.newCache();
    let logits = finiteLogits(await model.forward(prompt, { cache, logits: "last", signal }), "the prompt");
    for (let index = 0; !chooser.done; index++) {
      signal?.throwIfAborted();
      const { id, thinking, forced } = chooser.choose(logits);
      const text = this.decoder?.push(id) ?? null; // a partial UTF-8 character waits for its last byte
      const routing = this.options.routingLog ? { routing: this.routing!.takeLatest() } : {};
      yield { id, index, text, thinking, forced, ...(keepLogits ? { logits } : {}), ...routing };
      if (chooser.stopReason !== "stop_token" && options.stopStrings?.length && this.decoder!.newStopAt() >= 0) {
        chooser.stop("stop_string");
      }
      if (!chooser.done) logits = finiteLogits(await model.forward([id], { cache, logits: "last", signal, phase: "decode" }), `step ${index + 1}`);
    }
  }
}

/** The <think>/</think> ids when a thinking budget is set (validated), else null. */
function thoughtMarkers(model: Model, options: GenerateOptions): { open: number[]; close: number[] } | null {
  const budget = options.thinkingBudget;
  if (budget === undefined) return null;
  if (!(Number.isInteger(budget) && budget >= 0)) throw new InputError(`thinkingBudget must be an integer >= 0, got ${budget}`);
  const tok = model.tokenizer;
  const markers = options.thinkTokens ??
    (tok ? { open: tok.encode("<think>", { addSpecialTokens: false }), close: tok.encode("</think>", { addSpecialTokens: false }) } : null);
  if (!markers || markers.open.length === 0 || markers.close.length === 0) {
    throw new InputError("thinkingBudget needs the <think>/</think> token ids: give thinkTokens, or use a checkpoint with a tokenizer");
  }
  return markers;
}

export function defaultStopTokens(model: Model): number[] {
  const ids = new Set<number>(model.tokenizer?.eosTokenIds ?? []);
  if (model.config.eosTokenId !== null) ids.add(model.config.eosTokenId);
  return [...ids];
}

/**
 * The logits of one step, or a NonFiniteError if any is NaN or ±Infinity (one scan of vocab values per step): sampling
 * from them would pick garbage silently. Names the point where the values first appeared when hooks watched.
 */
function finiteLogits(result: ForwardResult, step: string): Float32Array {
  const logits = result.logits.f32;
  const at = firstNonFinite("F32", logits);
  if (at < 0) return logits;
  const first = result.nonFinite;
  const where = first
    ? `; non-finite values first appear at ${first.hook}${first.byHook ? ", written by a hook there" : ""}`
    : first === null
      ? "; the embedding and every layer's output were finite: they first appear in the final norm or the LM head"
      : "; register any hook (model.hooks.add(() => true, () => {})) to find the layer and hook point where they first appear, or load the model with { checkFinite: true } to check its weights";
  throw new NonFiniteError(`generate: the logits of ${step} are not finite (${logits[at]} for token ${at})${where}`);
}
