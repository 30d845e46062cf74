// AIME 2024 / 2025 and MATH-500 as published: each problem sent with MiniMax's math system prompt, graded by
// the boxed answer's equivalence to the reference answer (mathjs, the `math` grader).
//   AIME 2024: HuggingFaceH4/aime_2024 (parquet or jsonl: id, problem, solution, answer, url, year)
//   AIME 2025: opencompass/AIME2025 (jsonl: question, answer) or yentinglin/aime_2025 (id, problem, answer, …)
//   MATH-500:  HuggingFaceH4/MATH-500 test.jsonl (problem, solution, answer, subject, level, unique_id)
import type { EvalItem, Task } from "../types.ts";
import { mathGrader } from "../graders/math.ts";
import { Fields, readRecords, recordWhere } from "./records.ts";
import { SYSTEM_PROMPTS, paperProtocol } from "./protocol.ts";
import { chatItem, systemPrompt, uniqueIds } from "./items.ts";

export interface LoadOptions {
  /** first n items only */
  limit?: number;
  /** instead of MiniMax's recommended system prompt (null: none), e.g. for a model that was not trained with it */
  systemPrompt?: string | null;
}

export async function aimeTask(file: string, year: 2024 | 2025, options: LoadOptions = {}): Promise<Task> {
  const records = (await readRecords(file)).slice(0, options.limit);
  const items = records.map((r, i) => {
    const f = new Fields(r, recordWhere(file, i, r.id ?? r.ID));
    const id = r.id ?? r.ID ?? i;
    return chatItem(`aime${year}-${id}`, systemPrompt(options, SYSTEM_PROMPTS.math), f.string("problem", "question", "Problem"), f.string("answer", "Answer"));
  });
  return mathTask(`aime-${year}`, `AIME ${year}`, `AIME ${year}: ${items.length} problems from ${file}`, items, 32);
}

export async function math500Task(file: string, options: LoadOptions = {}): Promise<Task> {
  const records = (await readRecords(file)).slice(0, options.limit);
  const items = records.map((r, i) => {
    const f = new Fields(r, recordWhere(file, i, r.unique_id));
    const item = chatItem(f.optionalString("unique_id") ?? String(i), systemPrompt(options, SYSTEM_PROMPTS.math), f.string("problem"), f.string("answer"));
    const level = r.level;
    return { ...item, group: typeof level === "number" || typeof level === "string" ? `level ${level}` : "all" };
  });
  return { ...mathTask("math-500", "MATH-500", `MATH-500: ${items.length} problems from ${file}`, items, 1), groupTitle: "difficulty level" };
}

function mathTask(name: string, paperRow: string, description: string, items: EvalItem[], samples: number): Task {
  uniqueIds(items, description);
  return { name, description, items, grader: mathGrader({ targetIsAnswer: true }), generation: { maxTokens: 4096 }, protocol: paperProtocol(samples), paperRow };
}
