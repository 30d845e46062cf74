/**
 * Autoregressive generation: prefill the prompt, then one cached decode step per token, with sampling,
 * stop conditions, a thinking budget and cancellation.
 */
import type { ForwardResult, Model } from "./model.ts";
import type { ModelCache } from "./cache.ts";
import type { NonFinitePoint } from "./layers.ts";
import { firstNonFinite } from "./tensor.ts";
import { Sampler, type SamplingOptions } from "./sampling.ts";
import { InputError, NonFiniteError } from "./errors.ts";
import { DISPLAY, htmlBundle, escapeHtml, type MimeBundle } from "./display.ts";

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
  /** Prefill the prompt in forward calls of at most this many tokens, letting the event loop run between them (a
   *  server's other requests go on meanwhile); default: one call. Equal to one call up to f32 rounding. */
  prefillChunk?: number;
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

/** A running generation: iterate it for a stream of tokens, or await `result()`. Produced tokens stay in `ids`. */
export class Generation implements AsyncIterable<GeneratedToken> {
  readonly ids: number[] = [];
  stopReason: StopReason | null = null;
  thoughtTokens = 0;
  private emitted = "";
  private readonly stream: AsyncGenerator<GeneratedToken>;
  private started = false;

  constructor(private readonly model: Model, prompt: ArrayLike<number>, private readonly options: GenerateOptions = {}) {
    this.stream = this.run(model.checkIds(prompt));
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
    const cut = this.stopStringAt(text);
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

  /** Text added by the newest token; a partial UTF-8 character is held back until its last byte arrives. */
  private newText(): string {
    const full = this.model.tokenizer!.decode(this.ids, { skipUnknown: true });
    if (full.endsWith("\uFFFD")) return "";
    const added = full.slice(this.emitted.length);
    this.emitted = full;
    return added;
  }

  private stopStringAt(text: string): number {
    let at = -1;
    for (const s of this.options.stopStrings ?? []) {
      const i = text.indexOf(s);
      if (i >= 0 && (at < 0 || i < at)) at = i;
    }
    return at;
  }

  private async *run(prompt: Int32Array): AsyncGenerator<GeneratedToken> {
    const { model, options } = this;
    const { maxNewTokens = 256, signal, keepLogits = false } = options;
    if (!(Number.isInteger(maxNewTokens) && maxNewTokens >= 0)) throw new InputError(`maxNewTokens must be an integer >= 0, got ${maxNewTokens}`);
    if (prompt.length === 0) throw new InputError("generate: the prompt has no tokens");
    const tokenizer = model.tokenizer;
    if (options.stopStrings?.length && !tokenizer) throw new InputError("stopStrings need a tokenizer; this checkpoint has none (use stopTokens)");
    const vocab = model.config.vocabSize;
    for (const id of options.stopTokens ?? []) {
      if (!(Number.isInteger(id) && id >= 0 && id < vocab)) throw new InputError(`stopTokens: ${id} is not a token id of the vocabulary [0, ${vocab})`);
    }
    const stopTokens = new Set(options.stopTokens ?? defaultStopTokens(model));
    const sampler = new Sampler(options);
    const thought = this.thoughtTracker();
    if (thought) for (const id of prompt) thought.push(id);

    const cache = options.cache ?? model.newCache();
    let logits = finiteLogits(await this.prefill(prompt, cache), "the prompt");
    let forcedQueue: number[] = [];
    for (let index = 0; index < maxNewTokens; index++) {
      signal?.throwIfAborted();
      let id: number;
      let forced = false;
      if (forcedQueue.length === 0 && thought && thought.inside && thought.spent >= options.thinkingBudget!) {
        forcedQueue = [...options.thinkTokens?.close ?? this.thinkTokens()!.close];
      }
      if (forcedQueue.length > 0) {
        id = forcedQueue.shift()!;
        forced = true;
      } else {
        id = sampler.pick(logits);
      }
      const thinking = thought?.inside ?? false;
      thought?.push(id);
      if (thought) this.thoughtTokens = Math.max(this.thoughtTokens, thought.spent);
      this.ids.push(id);
      const text = tokenizer ? this.newText() : null;
      yield { id, index, text, thinking, forced, ...(keepLogits ? { logits } : {}) };
      if (stopTokens.has(id) && forcedQueue.length === 0) {
        this.stopReason = "stop_token";
        return;
      }
      if (options.stopStrings?.length && this.stopStringAt(tokenizer!.decode(this.ids, { skipUnknown: true })) >= 0) {
        this.stopReason = "stop_string";
        return;
      }
      if (index + 1 < maxNewTokens) {
        logits = finiteLogits(await model.forward([id], { cache, logits: "last", signal, phase: "decode" }), `step ${index + 1}`);
      }
    }
    this.stopReason = "max_tokens";
  }

  /** The prompt through the model, in chunks of options.prefillChunk tokens: the logits of its last position, and
   *  where non-finite values first appeared in any chunk (when hooks watched). */
  private async prefill(prompt: Int32Array, cache: ModelCache): Promise<ForwardResult> {
    const { prefillChunk = prompt.length, signal } = this.options;
    if (!(Number.isSafeInteger(prefillChunk) && prefillChunk >= 1)) throw new InputError(`prefillChunk must be an integer >= 1, got ${prefillChunk}`);
    let nonFinite: NonFinitePoint | null | undefined;
    for (let t0 = 0; ; t0 += prefillChunk) {
      const last = t0 + prefillChunk >= prompt.length;
      const result = await this.model.forward(prompt.subarray(t0, t0 + prefillChunk), { cache, logits: last ? "last" : "none", phase: "prefill", signal });
      nonFinite ??= result.nonFinite; // the first point any chunk found
      if (last) return { ...result, nonFinite };
      await new Promise((resolve) => setImmediate(resolve));
    }
  }

  private thinkTokens(): { open: number[]; close: number[] } | null {
    if (this.options.thinkTokens) return this.options.thinkTokens;
    const tok = this.model.tokenizer;
    if (!tok) return null;
    return { open: tok.encode("<think>", { addSpecialTokens: false }), close: tok.encode("</think>", { addSpecialTokens: false }) };
  }

  private thoughtTracker(): ThoughtTracker | null {
    const budget = this.options.thinkingBudget;
    if (budget === undefined) return null;
    if (!(Number.isInteger(budget) && budget >= 0)) throw new InputError(`thinkingBudget must be an integer >= 0, got ${budget}`);
    const markers = this.thinkTokens();
    if (!markers || markers.open.length === 0 || markers.close.length === 0) {
      throw new InputError("thinkingBudget needs the <think>/</think> token ids: give thinkTokens, or use a checkpoint with a tokenizer");
    }
    return new ThoughtTracker(markers.open, markers.close);
  }
}

function defaultStopTokens(model: Model): number[] {
  const ids = new Set<number>(model.tokenizer?.eosTokenIds ?? []);
  if (model.config.eosTokenId !== null) ids.add(model.config.eosTokenId);
  return [...ids];
}

/**
 * The logits of one step, or a NonFiniteError if any is NaN or ±Infinity (one scan of vocab values per step): sampling
 * from them would pick garbage silently. Names the hook point where the values first appeared when hooks watched.
 */
function finiteLogits(result: ForwardResult, step: string): Float32Array {
  const logits = result.logits.f32;
  const at = firstNonFinite("F32", logits);
  if (at < 0) return logits;
  const first = result.nonFinite;
  const where = first
    ? `; non-finite values first appear at ${first.hook}${first.byHook ? ", written by a hook there" : ""}`
    : result.nonFinite === null
      ? "; the embedding and every layer's output were finite: they first appear in the final norm or the LM head"
      : "; register any hook (model.hooks.add(() => true, () => {})) to find the layer and hook point where they first appear, or load the model with { checkFinite: true } to check its weights";
  throw new NonFiniteError(`generate: the logits of ${step} are not finite (${logits[at]} for token ${at})${where}`);
}
