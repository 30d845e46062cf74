/**
 * Rollouts for RL on the engine: G completions of each prompt in one decode batch, each token's log-probability
 * under the rollout policy, and the repetition early-truncation rule (MiniMax-M1 §3.2: stop a generation once
 * `run` consecutive tokens each had probability above `probability`; the paper uses 3,000 tokens at 0.99 for
 * windows of 40K-80K, docs/rl.md explains the scaling to this task).
 */
import type { Model } from "../model.ts";
import { DecodeBatch, type BatchSequenceOptions } from "../batch.ts";
import { InputError } from "../errors.ts";
import { logProbability } from "../softmax.ts";
import { defaultStopTokens } from "../generate.ts";

export interface RepetitionRule {
  run: number;
  probability: number;
}

export interface RolloutOptions extends Omit<BatchSequenceOptions, "seed"> {
  /** completions per prompt */
  groupSize: number;
  /** seed of completion j of prompt i: seed + i·groupSize + j */
  seed: number;
  repetition?: RepetitionRule;
  signal?: AbortSignal;
}

export interface Rollout {
  /** index of its prompt (its group) */
  group: number;
  prompt: number[];
  completion: number[];
  /** log-probability of each completion token under the rollout policy */
  logprobs: number[];
  /** tokens the thinking budget emitted (not sampled) */
  forced: boolean[];
  text: string;
  /** stopped by the token limit or by the repetition rule, not by the end-of-sequence token */
  truncated: boolean;
  repetitionStop: boolean;
}

/** A run of `rule.run` tokens at the end of `logprobs`, each more likely than `rule.probability`. */
export function repetitive(logprobs: readonly number[], rule: RepetitionRule): boolean {
  if (logprobs.length < rule.run) return false;
  const floor = Math.log(rule.probability);
  for (let t = logprobs.length - rule.run; t < logprobs.length; t++) if (!(logprobs[t] > floor)) return false;
  return true;
}

export async function rollout(model: Model, prompts: readonly string[], options: RolloutOptions): Promise<Rollout[]> {
  const { groupSize, seed, repetition, signal, ...sampling } = options;
  if (!(Number.isInteger(groupSize) && groupSize >= 1)) throw new InputError(`groupSize must be an integer >= 1, got ${groupSize}`);
  const batch = new DecodeBatch(model);
  const stopTokens = sampling.stopTokens ?? rolloutStopTokens(model);
  const seqs = [];
  for (let i = 0; i < prompts.length; i++) {
    const group = Array.from({ length: groupSize }, (_, j) => ({ ...sampling, stopTokens, seed: seed + i * groupSize + j }));
    seqs.push(...(await batch.joinGroup(prompts[i], group, signal)));
  }
  const cut = new Set<number>();
  while (batch.active.length > 0) {
    await batch.step(signal);
    if (!repetition) continue;
    for (const s of [...batch.active]) {
      if (repetitive(s.logprobs, repetition)) {
        cut.add(s.tag);
        batch.leave(s);
      }
    }
  }
  const tok = model.tokenizer;
  return seqs.map((s, k) => ({
    group: Math.floor(k / groupSize),
    prompt: [...s.prompt],
    completion: [...s.ids],
    logprobs: [...s.logprobs],
    forced: [...s.forced],
    text: tok ? tok.decode(s.ids, { skipUnknown: true }) : s.ids.join(" "),
    truncated: cut.has(s.tag) || s.stopReason !== "stop_token",
    repetitionStop: cut.has(s.tag),
  }));
}

/**
 * A rollout ends at the end-of-sequence token and also at the padding token: a sampled <pad> is never fed back in.
 * Its embedding row is zero in checkpoints that never trained it, and a zero residual row makes every RMSNorm's
 * derivative 1/√ε there (d(x/rms)/dx at x = 0), so the gradient of any token after it grows by that factor per norm
 * and overflows (docs/rl.md: a CISPO run diverged that way).
 */
export function rolloutStopTokens(model: Model): number[] {
  const pad = model.tokenizer?.padTokenId ?? null;
  return [...new Set([...defaultStopTokens(model), ...(pad === null ? [] : [pad])])];
}

/** log p of each completion token given the prompt and the tokens before it, from one forward pass of the model. */
export async function completionLogprobs(model: Model, prompt: readonly number[], completion: readonly number[]): Promise<number[]> {
  if (prompt.length === 0) throw new InputError("completionLogprobs: the prompt has no tokens");
  const { logits } = await model.forward([...prompt, ...completion]);
  const vocab = model.config.vocabSize;
  const data = logits.f32;
  return completion.map((id, t) => logProbability(data.subarray((prompt.length - 1 + t) * vocab, (prompt.length + t) * vocab), id));
}

/**
 * The probability that sampling at temperature 1 writes exactly `completion` after `prompt` (the product of its
 * tokens' probabilities, thinking-budget effects aside). For the demo task the scratchpad completion is the one right
 * path, so this is a problem's exact-answer success rate at temperature 1 to within the (tiny) chance of reaching the
 * right answer through a wrong thought: a finer frontier measure than sampling, down to probabilities sampling
 * never sees.
 */
export async function completionProbability(model: Model, prompt: string, completion: string): Promise<number> {
  const tok = model.tokenizer;
  if (!tok) throw new InputError(`${model.checkpoint.dir} has no tokenizer.json: completionProbability takes text`);
  const logprobs = await completionLogprobs(model, tok.encode(prompt), tok.encode(completion));
  return Math.exp(logprobs.reduce((a, b) => a + b, 0));
}
