// Reasoning-aware grading: the thought inside <think>…</think> is removed before a grader sees the answer.

export interface SplitResponse {
  thinking: string;
  answer: string;
  /** a thought was opened and never closed (cut off by the token limit) */
  unfinished: boolean;
}

const OPEN = "<think>";
const CLOSE = "</think>";

/**
 * Splits a response into thought and answer. When the prompt opened the thought (the demo format ends in
 * "<think>"), the response starts inside it; a leading run up to "</think>" with no "<think>" before it is
 * thought as well. A thought still open at the end is dropped and leaves the answer without it.
 */
export function splitThinking(text: string, startsInThought = false): SplitResponse {
  const thoughts: string[] = [];
  let rest = startsInThought ? OPEN + text : text;
  const firstClose = rest.indexOf(CLOSE);
  const firstOpen = rest.indexOf(OPEN);
  if (firstClose >= 0 && (firstOpen < 0 || firstClose < firstOpen)) {
    thoughts.push(rest.slice(0, firstClose));
    rest = rest.slice(firstClose + CLOSE.length);
  }
  let answer = "";
  let unfinished = false;
  for (;;) {
    const open = rest.indexOf(OPEN);
    if (open < 0) {
      answer += rest;
      break;
    }
    answer += rest.slice(0, open);
    const close = rest.indexOf(CLOSE, open + OPEN.length);
    if (close < 0) {
      thoughts.push(rest.slice(open + OPEN.length));
      unfinished = true;
      break;
    }
    thoughts.push(rest.slice(open + OPEN.length, close));
    rest = rest.slice(close + CLOSE.length);
  }
  return { thinking: thoughts.join("\n"), answer: answer.trim(), unfinished };
}

/** Whether a prompt leaves a thought open, so that the response starts inside it. */
export function opensThought(prompt: string): boolean {
  return prompt.lastIndexOf(OPEN) > prompt.lastIndexOf(CLOSE);
}
