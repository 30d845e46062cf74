/**
 * Scoring continuations, as evaluation harnesses do: the summed log-probability of a continuation after a context
 * and whether greedy decoding would produce it, and the rolling log-likelihood of a whole text (perplexity). Many
 * requests run as a few packed batches.
 */
import type { Model } from "../model.ts";
import { InputError } from "../errors.ts";
import { passes } from "./passes.ts";
import { logSumExp } from "../softmax.ts";

export interface ScoreRequest {
  /** text (tokenized as a prompt) or token ids */
  readonly context: string | ArrayLike<number>;
  /** text (tokenized without special tokens) or token ids */
  readonly continuation: string | ArrayLike<number>;
}

export interface ContinuationScore {
  /** Σ log p(continuation token | everything before it), natural log */
  readonly logprob: number;
  /** every continuation token is the argmax after its prefix */
  readonly greedy: boolean;
  readonly tokens: number;
}

export interface ScoreOptions {
  /** rows per packed pass (default 4096) */
  maxRowsPerPass?: number;
  signal?: AbortSignal;
}

/** The score of each request, in order. */
export async function score(model: Model, requests: readonly ScoreRequest[], options: ScoreOptions = {}): Promise<ContinuationScore[]> {
  const maxRows = options.maxRowsPerPass ?? 4096;
  const encoded = requests.map((r, i) => {
    const context = Array.from(model.promptIds(r.context));
    const continuation = typeof r.continuation === "string" ? continuationIds(model, r.continuation) : Array.from(r.continuation);
    if (context.length === 0) throw new InputError(`score: request ${i} has an empty context (a continuation needs at least one token before it)`);
    if (continuation.length === 0) throw new InputError(`score: request ${i} has an empty continuation`);
    return { context, continuation };
  });
  const vocab = model.config.vocabSize;
  const results: ContinuationScore[] = [];
  for (const batch of passes(encoded, (r) => r.context.length + r.continuation.length, maxRows)) {
    // the last token's logits predict nothing that is scored
    const inputs = batch.map((r) => [...r.context, ...r.continuation].slice(0, -1));
    const { logits } = await model.forwardBatch(inputs, { signal: options.signal });
    batch.forEach((r, j) => {
      const all = logits[j].f32;
      let logprob = 0;
      let greedy = true;
      r.continuation.forEach((id, k) => {
        const row = all.subarray((r.context.length - 1 + k) * vocab, (r.context.length + k) * vocab);
        const { logZ, argmax } = logSumExp(row);
        logprob += row[id] - logZ;
        if (row[argmax] > row[id]) greedy = false;
      });
      results.push({ logprob, greedy, tokens: r.continuation.length });
    });
  }
  return results;
}

export interface RollingLikelihood {
  /** Σ log p over every token of the text */
  readonly logprob: number;
  readonly tokens: number;
  /** exp(−logprob / tokens) */
  readonly perplexity: number;
}

/**
 * The log-likelihood of every token of a text: predicted from the beginning-of-sequence token (prepended when the
 * text does not start with it), in windows of at most `window` tokens, each window's context the tokens just before.
 */
export async function loglikelihoodRolling(model: Model, text: string | ArrayLike<number>, options: ScoreOptions & { window?: number } = {}): Promise<RollingLikelihood> {
  const window = options.window ?? model.config.maxPositionEmbeddings;
  if (!(Number.isInteger(window) && window >= 2)) throw new InputError(`loglikelihoodRolling: window must be an integer of at least 2 tokens, got ${window}`);
  const ids = Array.from(model.promptIds(text));
  const bos = model.config.bosTokenId;
  const full = bos !== null && ids[0] !== bos ? [bos, ...ids] : ids;
  if (full.length < 2) throw new InputError("loglikelihoodRolling: the text has no token to predict");
  const requests: ScoreRequest[] = [];
  for (let s = 1; s < full.length; s += window - 1) {
    const e = Math.min(full.length, s + window - 1);
    requests.push({ context: full.slice(Math.max(0, e - window), s), continuation: full.slice(s, e) });
  }
  const scores = await score(model, requests, options);
  const logprob = scores.reduce((sum, x) => sum + x.logprob, 0);
  const tokens = full.length - 1;
  return { logprob, tokens, perplexity: Math.exp(-logprob / tokens) };
}

function continuationIds(model: Model, text: string): number[] {
  if (!model.tokenizer) throw new InputError(`this checkpoint (${model.checkpoint.dir}) has no tokenizer.json: give the continuation as token ids`);
  return model.tokenizer.encode(text, { addSpecialTokens: false });
}
