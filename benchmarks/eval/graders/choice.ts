// Multiple choice: reads the chosen letter from a free-form answer ("The answer is (C)", "\boxed{C}", "C) …",
// a choice's full text, or the last standalone capital letter) and compares it with the target letter.
import type { Grader, EvalItem, Grade } from "../types.ts";

export function choiceLetters(count: number): string[] {
  return Array.from({ length: count }, (_, i) => String.fromCharCode(65 + i));
}

/** The letter the answer picks among `letters`, or null. `choices` are the options' texts, in letter order. */
export function extractChoice(answer: string, letters: string[], choices: string[] = []): string | null {
  const set = `[${letters.join("")}]`;
  const patterns = [
    new RegExp(`\\\\boxed\\{\\s*\\(?(${set})\\)?\\s*\\}`, "g"),
    new RegExp(`answer(?:\\s+is)?\\s*[:：]?\\s*\\**\\s*\\(?(${set})\\b\\)?`, "gi"),
    new RegExp(`^\\s*\\(?(${set})(?:[).:]|\\s|$)`, "g"),
  ];
  for (const p of patterns) {
    const all = [...answer.matchAll(p)];
    const last = all.at(-1)?.[1]?.toUpperCase();
    if (last && letters.includes(last)) return last;
  }
  const normalized = answer.trim().replace(/\.$/, "").toLowerCase();
  const byText = choices.findIndex((c) => c.trim().toLowerCase() === normalized);
  if (byText >= 0 && byText < letters.length) return letters[byText];
  const standalone = [...answer.matchAll(new RegExp(`(?<![A-Za-z])(${set})(?![A-Za-z])`, "g"))];
  return standalone.at(-1)?.[1] ?? null;
}

export function multipleChoiceGrader(): Grader {
  return {
    name: "multiple_choice",
    grade(answer: string, item: EvalItem): Grade {
      const choices = Array.isArray(item.meta?.choices) ? (item.meta.choices as unknown[]).map(String) : [];
      const letters = choiceLetters(choices.length || 10);
      const picked = extractChoice(answer, letters, choices);
      return { score: picked !== null && picked === item.target.trim().toUpperCase() ? 1 : 0, extracted: picked };
    },
  };
}
