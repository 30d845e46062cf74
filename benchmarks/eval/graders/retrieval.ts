// Needle / passkey retrieval: the answer is right when it contains the needle's value as a whole word.
import type { Grader, EvalItem, Grade } from "../types.ts";

export function retrievalGrader(): Grader {
  return {
    name: "retrieval_contains",
    grade(answer: string, item: EvalItem): Grade {
      const escaped = item.target.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
      const found = new RegExp(`(?<![\\p{L}\\p{N}])${escaped}(?![\\p{L}\\p{N}])`, "u").test(answer);
      return { score: found ? 1 : 0, extracted: found ? item.target : (answer.match(/\S+/)?.[0] ?? null) };
    },
  };
}
