// Exact match with the normalisations of lm-evaluation-harness's exact_match metric (applied to both sides, in
// this order): remove each regex in regexesToIgnore, lower-case, drop ASCII punctuation.
import type { Grader, EvalItem, Grade } from "../types.ts";
import { pythonRegex } from "../py-regex.ts";

export interface ExactMatchOptions {
  ignoreCase?: boolean;
  ignorePunctuation?: boolean;
  /** Python-syntax patterns removed from both answer and target */
  regexesToIgnore?: string[];
  /** trim surrounding whitespace first (default true; lm-evaluation-harness does not) */
  trim?: boolean;
}

const PUNCTUATION = /[!"#$%&'()*+,\-./:;<=>?@[\\\]^_`{|}~]/g;

export function normalizeExact(text: string, options: ExactMatchOptions): string {
  let s = options.trim === false ? text : text.trim();
  for (const pattern of options.regexesToIgnore ?? []) s = s.replace(pythonRegex(pattern, "g"), "");
  if (options.ignoreCase) s = s.toLowerCase();
  if (options.ignorePunctuation) s = s.replace(PUNCTUATION, "");
  return s;
}

export function exactMatch(options: ExactMatchOptions = {}): Grader {
  return {
    name: "exact_match",
    grade(answer: string, item: EvalItem): Grade {
      const got = normalizeExact(answer, options);
      const want = normalizeExact(item.target, options);
      return { score: got === want ? 1 : 0, extracted: got };
    },
  };
}
