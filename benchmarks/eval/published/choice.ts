// Multiple-choice tasks as published, graded by the letter the answer picks (the `multiple_choice` grader):
//   GPQA-Diamond: Idavidrein/gpqa gpqa_diamond.csv (Question, Correct Answer, Incorrect Answer 1-3, Record ID,
//                 High-level domain); the four choices are shuffled with a seed fixed per item (its Record ID)
//   MMLU-Pro:     TIGER-Lab/MMLU-Pro test parquet (question_id, question, options [up to 10], answer, category)
//   LongBench-v2: THUDM/LongBench-v2 data.json (_id, domain, difficulty, length, question, choice_A-D, answer, context)
import { createHash } from "node:crypto";
import { InputError } from "../../../engine/errors.ts";
import type { EvalItem, Task } from "../types.ts";
import { choiceLetters, multipleChoiceGrader } from "../graders/choice.ts";
import { Picker } from "../suites/random.ts";
import { Fields, readRecords, recordWhere } from "./records.ts";
import { SYSTEM_PROMPTS, paperProtocol } from "./protocol.ts";
import { chatItem, systemPrompt, uniqueIds } from "./items.ts";
import type { LoadOptions } from "./math.ts";

/** The question, its lettered options and how to answer. */
export function choicePrompt(question: string, choices: string[]): string {
  const letters = choiceLetters(choices.length);
  return `${question.trim()}\n\n${choices.map((c, i) => `${letters[i]}) ${c.trim()}`).join("\n")}\n\n` +
    `Answer with the letter of the correct option, written as \\boxed{${letters[0]}} (for option ${letters[0]}).`;
}

/** A seed that depends on the item alone (not on file order), so that a shuffle is the same in every run. */
export function itemSeed(id: string): number {
  return createHash("sha256").update(id).digest().readUInt32LE(0);
}

export async function gpqaDiamondTask(file: string, options: LoadOptions = {}): Promise<Task> {
  const records = (await readRecords(file)).slice(0, options.limit);
  const items = records.map((r, i) => {
    const f = new Fields(r, recordWhere(file, i, r["Record ID"]));
    const id = f.string("Record ID");
    const correct = f.string("Correct Answer");
    const wrong = [1, 2, 3].map((k) => f.string(`Incorrect Answer ${k}`));
    const choices = new Picker(itemSeed(id)).sample([correct, ...wrong], 4);
    const target = choiceLetters(4)[choices.indexOf(correct)];
    const item = chatItem(id, systemPrompt(options, SYSTEM_PROMPTS.general), choicePrompt(f.string("Question"), choices), target, { choices });
    return { ...item, group: f.optionalString("High-level domain") ?? "all" };
  });
  return choiceTask("gpqa-diamond", "GPQA Diamond", `GPQA-Diamond: ${items.length} questions from ${file}, choices shuffled per item`, items, 32, "domain");
}

export async function mmluProTask(file: string, options: LoadOptions = {}): Promise<Task> {
  const records = (await readRecords(file)).slice(0, options.limit);
  const items = records.map((r, i) => {
    const f = new Fields(r, recordWhere(file, i, r.question_id));
    const choices = f.stringList("options");
    if (choices.length < 2 || choices.length > 10) throw new InputError(`${recordWhere(file, i, r.question_id)}: "options" must hold 2 to 10 options, has ${choices.length}`);
    const target = f.string("answer").trim().toUpperCase();
    if (!choiceLetters(choices.length).includes(target)) throw new InputError(`${recordWhere(file, i, r.question_id)}: "answer" ${JSON.stringify(target)} is not one of the ${choices.length} option letters`);
    const item = chatItem(`mmlu-pro-${f.string("question_id")}`, systemPrompt(options, SYSTEM_PROMPTS.general), choicePrompt(f.string("question"), choices), target, { choices });
    return { ...item, group: f.optionalString("category") ?? "all" };
  });
  return choiceTask("mmlu-pro", "MMLU-Pro", `MMLU-Pro: ${items.length} questions from ${file}`, items, 1, "category");
}

export async function longBenchV2Task(file: string, options: LoadOptions = {}): Promise<Task> {
  const records = (await readRecords(file)).slice(0, options.limit);
  const items = records.map((r, i) => {
    const f = new Fields(r, recordWhere(file, i, r._id));
    const choices = ["A", "B", "C", "D"].map((l) => f.string(`choice_${l}`));
    const target = f.string("answer").trim().toUpperCase();
    if (!["A", "B", "C", "D"].includes(target)) throw new InputError(`${recordWhere(file, i, r._id)}: "answer" must be A, B, C or D, got ${JSON.stringify(target)}`);
    const question = `Read the following text and answer the question after it.\n\n<text>\n${f.string("context")}\n</text>\n\n${f.string("question")}`;
    const item = chatItem(f.string("_id"), systemPrompt(options, SYSTEM_PROMPTS.general), choicePrompt(question, choices), target, { choices });
    return { ...item, group: f.optionalString("length") ?? "all" };
  });
  const order = ["short", "medium", "long"];
  const task = choiceTask("longbench-v2", "LongBench-v2", `LongBench-v2: ${items.length} questions from ${file}`, items, 1, "context length");
  return { ...task, groups: [...new Set(items.map((x) => x.group!))].sort((a, b) => order.indexOf(a) - order.indexOf(b)) };
}

function choiceTask(name: string, paperRow: string, description: string, items: EvalItem[], samples: number, groupTitle: string): Task {
  uniqueIds(items, description);
  return { name, description, items, grader: multipleChoiceGrader(), generation: { maxTokens: 4096 }, protocol: paperProtocol(samples), paperRow, groupTitle };
}
