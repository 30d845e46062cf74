// Token log-probabilities as the OpenAI API returns them: log p(token | everything before it) from the model's logits,
// with the most likely alternatives at the same position, in the completions shape ({tokens, token_logprobs,
// top_logprobs, text_offset}) and the chat shape ({content: [{token, logprob, bytes, top_logprobs}]}).
import type { Tokenizer } from "../../engine/tokenizer.ts";
import { logSumExp } from "../../engine/softmax.ts";

/** A token's text (its piece of the decoded text) and the bytes it stands for. */
interface TokenText { token: string; bytes: number[] }

/** One token with its log-probability (null for a prompt's first token: nothing predicts it) and top alternatives. */
export interface TokenLogprob extends TokenText { logprob: number | null; top: (TokenText & { logprob: number })[] }

/** OpenAI's completions `logprobs`. */
export interface CompletionLogprobs {
  tokens: string[];
  token_logprobs: (number | null)[];
  top_logprobs: (Record<string, number> | null)[] | null;
  text_offset: number[];
}

interface ChatTokenLogprob { token: string; logprob: number; bytes: number[] }

/** OpenAI's chat `logprobs`. */
export interface ChatLogprobs { content: (ChatTokenLogprob & { top_logprobs: ChatTokenLogprob[] })[] }

/** Tokens before a token that its text is decoded after (enough for any tokenizer that joins pieces with spaces). */
const WINDOW = 8;

/** What decoding `id` after `window` (the tokens just before it) adds to the text. */
export function pieceAfter(tokenizer: Tokenizer, window: number[], id: number): string {
  const prefix = tokenizer.decode(window, { skipUnknown: true });
  const withToken = tokenizer.decode([...window, id], { skipUnknown: true });
  return withToken.startsWith(prefix) ? withToken.slice(prefix.length) : tokenizer.decode([id], { skipUnknown: true });
}

/** The tokens before ids[i] that its piece is decoded after. */
export function windowBefore(ids: readonly number[], i: number): number[] {
  return ids.slice(Math.max(0, i - WINDOW), i);
}

/**
 * ids[from..to) with their log-probabilities: `logitsOf(i)` are the logits that predicted ids[i] (null: none did);
 * each token comes with the `top` most likely tokens at its position.
 */
export function logprobEntries(tokenizer: Tokenizer, ids: readonly number[], logitsOf: (i: number) => Float32Array | null, top: number, from = 0, to = ids.length): TokenLogprob[] {
  const out: TokenLogprob[] = [];
  for (let i = from; i < to; i++) {
    const window = windowBefore(ids, i);
    const logits = logitsOf(i);
    const entry: TokenLogprob = { ...tokenText(tokenizer, window, ids[i]), logprob: null, top: [] };
    if (logits) {
      const { logZ } = logSumExp(logits);
      entry.logprob = logits[ids[i]] - logZ;
      if (top > 0) {
        const best = Array.from(logits.keys()).sort((a, b) => logits[b] - logits[a]).slice(0, top);
        entry.top = best.map((j) => ({ ...tokenText(tokenizer, window, j), logprob: logits[j] - logZ }));
      }
    }
    out.push(entry);
  }
  return out;
}

/** A token's piece after `window`, and its bytes: the tokenizer's for byte-level tokens, else its piece's UTF-8. */
function tokenText(tokenizer: Tokenizer, window: number[], id: number): TokenText {
  const token = pieceAfter(tokenizer, window, id);
  return { token, bytes: tokenizer.tokenBytes(id) ?? [...Buffer.from(token, "utf8")] };
}

/** The completions shape; `offset`: where the first token's text starts in the choice's text (streamed chunks go on). */
export function completionLogprobs(entries: readonly TokenLogprob[], top: number, offset = 0): CompletionLogprobs {
  const text_offset: number[] = [];
  for (const e of entries) {
    text_offset.push(offset);
    offset += e.token.length;
  }
  return {
    tokens: entries.map((e) => e.token),
    token_logprobs: entries.map((e) => e.logprob),
    top_logprobs: top > 0 ? entries.map((e) => (e.logprob === null ? null : Object.fromEntries(e.top.map((t) => [t.token, t.logprob])))) : null,
    text_offset,
  };
}

/** The chat shape (every generated token has a log-probability). */
export function chatLogprobs(entries: readonly TokenLogprob[]): ChatLogprobs {
  const token = (t: TokenText, logprob: number): ChatTokenLogprob => ({ token: t.token, logprob, bytes: t.bytes });
  return { content: entries.map((e) => ({ ...token(e, e.logprob!), top_logprobs: e.top.map((t) => token(t, t.logprob)) })) };
}
