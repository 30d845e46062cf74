// Tasks graded by a judge model at another endpoint (the paper used GPT-4o for MultiChallenge):
//   SimpleQA:       simple_qa_test_set.csv (metadata [a Python dict as text, with topic], problem, answer);
//                   the judge calls the answer CORRECT, INCORRECT or NOT_ATTEMPTED; CORRECT scores 1
//   MultiChallenge: benchmark_questions.jsonl (QUESTION_ID, AXIS, CONVERSATION [{role, content}],
//                   TARGET_QUESTION, PASS_CRITERIA "YES"/"NO"); the judge answers the rubric question about the
//                   final response, and the item passes when its verdict equals PASS_CRITERIA
// The judge prompts are this project's own wording of those protocols.
import { InputError } from "../../../engine/errors.ts";
import type { ChatMessage } from "../../../engine/tokenizer.ts";
import type { Backend, EvalItem, Grade, Grader, Task } from "../types.ts";
import { splitThinking } from "../thinking.ts";
import { Fields, isObject, readRecords, recordWhere } from "./records.ts";
import { SYSTEM_PROMPTS, paperProtocol } from "./protocol.ts";
import { chatItem, systemPrompt, uniqueIds } from "./items.ts";
import type { LoadOptions } from "./math.ts";

export interface JudgeOptions extends LoadOptions {
  /** the judge model's endpoint (an OpenAIBackend with api "chat") */
  judge: Backend;
}

/** Asks the judge; returns the last of `verdicts` in its answer (thought removed), or null. */
async function askJudge(judge: Backend, prompt: string, verdicts: string[]): Promise<{ verdict: string | null; text: string }> {
  const c = await judge.complete({ prompt: [{ role: "user", content: prompt }], maxTokens: 1024, temperature: 0 });
  const text = splitThinking(c.text).answer;
  const found = [...text.matchAll(new RegExp(`\\b(${verdicts.join("|")})\\b`, "g"))];
  return { verdict: found.at(-1)?.[1] ?? null, text };
}

export async function simpleQaTask(file: string, options: JudgeOptions): Promise<Task> {
  const records = (await readRecords(file)).slice(0, options.limit);
  const items = records.map((r, i) => {
    const f = new Fields(r, recordWhere(file, i));
    const topic = /'topic':\s*'([^']*)'/.exec(String(r.metadata ?? ""))?.[1] ?? "all";
    return { ...chatItem(`simpleqa-${i}`, systemPrompt(options, SYSTEM_PROMPTS.general), f.string("problem"), f.string("answer"), { question: f.string("problem") }), group: topic };
  });
  uniqueIds(items, file);
  const grader: Grader = {
    name: `simpleqa_judge:${options.judge.id}`,
    async grade(answer: string, item: EvalItem): Promise<Grade> {
      const prompt = [
        "You grade answers to short factual questions. Compare the predicted answer with the gold answer.",
        "CORRECT: the prediction contains the gold answer's meaning (paraphrases, extra correct detail and small spelling differences are fine) and contradicts nothing in it.",
        "INCORRECT: the prediction states an answer that contradicts or differs from the gold answer, even if it hedges.",
        "NOT_ATTEMPTED: the prediction gives no answer (declines, says it does not know, or asks for more information) and states nothing that contradicts the gold answer.",
        "",
        `Question: ${item.meta!.question}`, `Gold answer: ${item.target}`, `Predicted answer: ${answer}`, "",
        "Reply with one word: CORRECT, INCORRECT or NOT_ATTEMPTED.",
      ].join("\n");
      const { verdict, text } = await askJudge(options.judge, prompt, ["CORRECT", "INCORRECT", "NOT_ATTEMPTED"]);
      if (!verdict) return { score: 0, extracted: null, detail: `the judge gave no verdict: ${text.slice(0, 200)}` };
      return { score: verdict === "CORRECT" ? 1 : 0, extracted: verdict, detail: `judge: ${verdict}` };
    },
  };
  return {
    name: "simpleqa", description: `SimpleQA: ${items.length} questions from ${file}, judged by ${options.judge.id}`, items, grader,
    generation: { maxTokens: 4096 }, protocol: paperProtocol(1), paperRow: "SimpleQA", groupTitle: "topic",
  };
}

export async function multiChallengeTask(file: string, options: JudgeOptions): Promise<Task> {
  const records = (await readRecords(file)).slice(0, options.limit);
  const items: EvalItem[] = records.map((r, i) => {
    const where = recordWhere(file, i, r.QUESTION_ID);
    const f = new Fields(r, where);
    const conversation = f.json("CONVERSATION");
    if (!Array.isArray(conversation) || conversation.length === 0 || !conversation.every((m) => isObject(m) && typeof m.role === "string" && typeof m.content === "string")) {
      throw new InputError(`${where}: field "CONVERSATION" must be a non-empty list of {role, content} messages`);
    }
    const pass = f.string("PASS_CRITERIA").trim().toUpperCase();
    if (pass !== "YES" && pass !== "NO") throw new InputError(`${where}: field "PASS_CRITERIA" must be YES or NO, got ${JSON.stringify(pass)}`);
    return {
      id: f.string("QUESTION_ID"), prompt: conversation as ChatMessage[], target: pass, group: f.optionalString("AXIS") ?? "all",
      meta: { question: f.string("TARGET_QUESTION"), conversation: conversation as ChatMessage[] as never },
    };
  });
  uniqueIds(items, file);
  const grader: Grader = {
    name: `multichallenge_judge:${options.judge.id}`,
    async grade(answer: string, item: EvalItem): Promise<Grade> {
      const transcript = (item.meta!.conversation as unknown as ChatMessage[]).map((m) => `[${m.role}]\n${m.content}`).join("\n\n");
      const prompt = [
        "Below is a conversation between a user and an assistant, then the assistant's final response. Answer the evaluation question about the final response.",
        "", "<conversation>", transcript, "</conversation>", "", "<final_response>", answer, "</final_response>", "",
        `Evaluation question: ${item.meta!.question}`, "",
        "Think it through briefly, then end with one word on its own line: YES or NO.",
      ].join("\n");
      const { verdict, text } = await askJudge(options.judge, prompt, ["YES", "NO"]);
      if (!verdict) return { score: 0, extracted: null, detail: `the judge gave no verdict: ${text.slice(0, 200)}` };
      return { score: verdict === item.target ? 1 : 0, extracted: verdict, detail: `judge: ${verdict}, pass when ${item.target}` };
    },
  };
  return {
    name: "multichallenge", description: `MultiChallenge: ${items.length} conversations from ${file}, judged by ${options.judge.id}`, items, grader,
    generation: { maxTokens: 4096 }, protocol: paperProtocol(1), paperRow: "MultiChallenge", groupTitle: "axis",
  };
}
