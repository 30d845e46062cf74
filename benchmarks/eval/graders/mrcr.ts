// The OpenAI-MRCR grading protocol: the response must start with the item's random prefix; then the score is
// difflib's SequenceMatcher ratio between the response and the target, both with the prefix removed.
import type { Grader, EvalItem, Grade } from "../types.ts";
import { sequenceRatio } from "./sequence-matcher.ts";

export function mrcrGrader(): Grader {
  return {
    name: "mrcr_sequence_ratio",
    grade(answer: string, item: EvalItem): Grade {
      const prefix = item.meta?.prefix;
      if (typeof prefix !== "string") throw new TypeError(`MRCR item ${item.id} has no meta.prefix`);
      if (!answer.startsWith(prefix)) return { score: 0, extracted: null, detail: "response does not start with the prefix" };
      const response = answer.slice(prefix.length);
      const target = item.target.startsWith(prefix) ? item.target.slice(prefix.length) : item.target;
      return { score: sequenceRatio(response, target), extracted: response };
    },
  };
}
