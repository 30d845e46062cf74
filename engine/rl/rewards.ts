/**
 * Rewards of a completion. A reward is a function of the problem and the completion's text (and token count); a
 * notebook writes its own in a few lines:
 *
 *   const shortAndRight: Reward = (p, c) => (answerAfterThought(c.text) === p.answer ? 1 : 0) - 0.001 * c.tokens;
 */
import type { Problem } from "./tasks.ts";

export interface Completion {
  /** decoded new tokens (the prompt not included) */
  text: string;
  /** number of new tokens */
  tokens: number;
  /** cut off: by the token limit inside the thought, or by the repetition rule */
  truncated: boolean;
}

export type Reward = (problem: Problem, completion: Completion) => number;

/** The answer after `</think>`, digits only (spaces and the end-of-sequence tag removed); null without `</think>`. */
export function answerAfterThought(text: string): string | null {
  const close = text.indexOf("</think>");
  if (close < 0) return null;
  return text.slice(close + "</think>".length).replace(/<\/s>/g, "").replace(/\s+/g, "");
}

/** The arithmetic verifier: 1 for the exact sum after `</think>`, else 0. */
export const exactAnswer: Reward = (problem, completion) => (answerAfterThought(completion.text) === problem.answer ? 1 : 0);

/**
 * DAPO's soft overlong penalty added to a reward: 0 up to `maxTokens − cache`, then falling linearly to −1 at
 * `maxTokens` (and −1 beyond).
 */
export function withLengthPenalty(reward: Reward, maxTokens: number, cache: number): Reward {
  return (problem, completion) => {
    const over = completion.tokens - (maxTokens - cache);
    const penalty = over <= 0 ? 0 : Math.max(-1, -over / cache);
    return reward(problem, completion) + penalty;
  };
}

/**
 * Partial credit for a curriculum beyond the frontier (where exact answers are all 0 and a group teaches nothing):
 * the share of the true sum's digits that the answer has right, aligned at the least significant digit; 1 for the
 * exact answer, 0 without `</think>`.
 */
export const answerDigitCredit: Reward = (problem, completion) => {
  const answer = answerAfterThought(completion.text);
  if (answer === null) return 0;
  if (answer === problem.answer) return 1;
  const truth = problem.answer;
  const width = Math.max(truth.length, answer.length);
  let right = 0;
  for (let i = 1; i <= truth.length && i <= answer.length; i++) if (truth[truth.length - i] === answer[answer.length - i]) right++;
  return right / width;
};
