// The published benchmarks' loaders (each fixture is written in the real file's schema: jsonl, json, csv,
// parquet) and their graders on right, wrong and malformed answers; bad files fail naming file, record and field.
import { test } from "node:test";
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { FIXTURES, tempDir } from "./helpers.ts";
import type { Backend, Completion, CompletionRequest, EvalItem, Task } from "../benchmarks/eval/types.ts";
import { readRecords } from "../benchmarks/eval/published/records.ts";
import { loadPublished, PUBLISHED_NAMES } from "../benchmarks/eval/published/index.ts";
import { unpickleString, extractCode } from "../benchmarks/eval/published/livecodebench.ts";
import { InputError } from "../engine/errors.ts";

const DATA = join(FIXTURES, "published");
const file = (name: string) => join(DATA, name);
const userText = (item: EvalItem) => {
  const chat = item.prompt as { role: string; content: string }[];
  return chat.at(-1)!.content;
};
const grade = async (task: Task, id: string, answer: string) => {
  const item = task.items.find((x) => x.id === id)!;
  return task.grader.grade(answer, item);
};
const rejects = (p: Promise<unknown>, ...parts: RegExp[]) =>
  assert.rejects(p, (e: unknown) => e instanceof InputError && parts.every((r) => r.test((e as Error).message)));

test("records: every format reads, Parquet's 64-bit integers as numbers, bad files are named", async () => {
  const parquet = await readRecords(file("mmlu_pro.parquet"));
  assert.equal(parquet.length, 2);
  assert.equal(parquet[0].question_id, 70);
  assert.deepEqual((parquet[0].options as string[]).length, 10);
  const csv = await readRecords(file("gpqa_diamond.csv"));
  assert.match(csv[1].Question as string, /\n\(Two lines, with a comma\.\)/);
  assert.equal((await readRecords(file("longbench_v2.json"))).length, 2);
  const { dir, cleanup } = tempDir();
  try {
    writeFileSync(join(dir, "bad.parquet"), "not parquet at all");
    await rejects(readRecords(join(dir, "bad.parquet")), /bad\.parquet/, /Parquet/);
    writeFileSync(join(dir, "bad.csv"), "a,b\n1,2,3\n");
    await rejects(readRecords(join(dir, "bad.csv")), /bad\.csv/, /CSV/);
    writeFileSync(join(dir, "x.xlsx"), "");
    await rejects(readRecords(join(dir, "x.xlsx")), /unknown data format/);
    await rejects(readRecords(join(dir, "missing.jsonl")), /no such file/);
  } finally {
    cleanup();
  }
});

test("AIME 2024 (parquet) and 2025 (jsonl): math system prompt, boxed answers graded by equivalence, 32 samples", async () => {
  const t = await loadPublished("aime2024", file("aime_2024.parquet"));
  assert.deepEqual(t.items.map((x) => x.id), ["aime2024-60", "aime2024-61", "aime2024-62"]);
  assert.deepEqual(t.protocol, { temperature: 1, topP: 0.95, samples: 32 });
  assert.equal(t.paperRow, "AIME 2024");
  assert.deepEqual((t.items[0].prompt as { role: string }[]).map((m) => m.role), ["system", "user"]);
  assert.match((t.items[0].prompt as { content: string }[])[0].content, /\\boxed\{\}/);
  assert.equal((await grade(t, "aime2024-61", "so the remainder is \\boxed{24}")).score, 1); // "024" is 24
  assert.equal((await grade(t, "aime2024-61", "\\boxed{23}")).score, 0);
  assert.equal((await grade(t, "aime2024-60", "I cannot tell")).score, 0);
  await t.grader.close?.();
  const t25 = await loadPublished("aime2025", file("aime2025.jsonl"));
  assert.equal(t25.items.length, 2);
  assert.equal((await grade(t25, "aime2025-0", "\\boxed{70}")).score, 1);
  await t25.grader.close?.();
});

test("MATH-500: grouped by level, equivalent forms accepted", async () => {
  const t = await loadPublished("math-500", file("math500.jsonl"));
  assert.deepEqual(t.items.map((x) => x.group), ["level 2", "level 1", "level 1"]);
  assert.equal((await grade(t, "test/prealgebra/1.json", "\\boxed{\\dfrac{5}{6}}")).score, 1);
  assert.equal((await grade(t, "test/algebra/2.json", "\\boxed{\\sqrt{18}}")).score, 1);
  assert.equal((await grade(t, "test/algebra/2.json", "\\boxed{2\\sqrt{3}}")).score, 0);
  await t.grader.close?.();
  const plain = await loadPublished("math-500", file("math500.jsonl"), { systemPrompt: null, limit: 1 });
  assert.deepEqual((plain.items[0].prompt as { role: string }[]).map((m) => m.role), ["user"]);
  const other = await loadPublished("math-500", file("math500.jsonl"), { systemPrompt: "Be brief.", limit: 1 });
  assert.equal((other.items[0].prompt as { content: string }[])[0].content, "Be brief.");
});

test("GPQA-Diamond: four choices shuffled with a seed fixed per item, the target letter follows the correct answer", async () => {
  const a = await loadPublished("gpqa-diamond", file("gpqa_diamond.csv"));
  const b = await loadPublished("gpqa-diamond", file("gpqa_diamond.csv"), { limit: 1 });
  assert.deepEqual(a.items[0].meta!.choices, b.items[0].meta!.choices); // same shuffle in every run
  for (const item of a.items) {
    const choices = item.meta!.choices as string[];
    assert.equal(choices.length, 4);
    const correct = item.id === "recA1b2C3" ? "10^-4 eV" : "Nitrogen";
    assert.equal("ABCD"[choices.indexOf(correct)], item.target);
    assert.match(userText(item), new RegExp(`${item.target}\\) ${correct.replace(/[\^]/g, "\\^")}`));
  }
  assert.notDeepEqual(a.items.map((x) => x.target), ["A", "A"]);
  const item = a.items[1];
  assert.equal((await a.grader.grade(`The answer is \\boxed{${item.target}}`, item)).score, 1);
  const wrong = "ABCD".split("").find((l) => l !== item.target)!;
  assert.equal((await a.grader.grade(`\\boxed{${wrong}}`, item)).score, 0);
  assert.deepEqual(a.items.map((x) => x.group), ["Physics", "Chemistry"]);
});

test("MMLU-Pro (parquet): ten options A-J", async () => {
  const t = await loadPublished("mmlu-pro", file("mmlu_pro.parquet"));
  assert.match(userText(t.items[0]), /J\) Ceres/);
  assert.equal((await grade(t, "mmlu-pro-70", "Jupiter is largest. Answer: E")).score, 1);
  assert.equal((await grade(t, "mmlu-pro-70", "\\boxed{J}")).score, 0);
  assert.deepEqual(t.items.map((x) => x.group), ["physics", "math"]);
});

test("ZebraLogic (parquet grid): puzzle accuracy needs every cell; cell accuracy in the detail", async () => {
  const t = await loadPublished("zebralogic", file("zebralogic_grid.parquet"));
  assert.match(userText(t.items[0]), /"House 1": \{\s*"Name": "___",\s*"Pet": "___"/);
  const right = '```json\n{"solution": {"House 1": {"Name": "Eric", "Pet": "dog"}, "House 2": {"Name": "arnold ", "Pet": "Cat"}}}\n```';
  assert.deepEqual(await grade(t, "lgp-test-2x2-1", `Reasoning {with braces}. ${right}`), { score: 1, extracted: '{"House 1":{"Name":"Eric","Pet":"dog"},"House 2":{"Name":"arnold ","Pet":"Cat"}}', detail: "cells 4/4" });
  const half = '{"solution": {"House 1": {"Name": "Arnold", "Pet": "dog"}, "House 2": {"Name": "Eric", "Pet": "cat"}}}';
  assert.equal((await grade(t, "lgp-test-2x2-1", half)).detail, "cells 2/4");
  assert.equal((await grade(t, "lgp-test-2x2-1", half)).score, 0);
  assert.equal((await grade(t, "lgp-test-2x2-1", "{not json} {\"solution\": 3}")).score, 0);
  assert.deepEqual(t.items.map((x) => x.group), ["2*2", "2*3"]);
});

test("OpenAI-MRCR (parquet): its message format, the random-prefix check, SequenceMatcher, bins by context length", async () => {
  const t = await loadPublished("openai-mrcr", file("mrcr_2needle.parquet"));
  assert.equal((t.items[0].prompt as unknown[]).length, 7);
  assert.deepEqual(t.items.map((x) => x.group), ["64-128", "1K-2K"]);
  assert.deepEqual(t.groups, ["64-128", "1K-2K"]);
  assert.equal((await grade(t, "mrcr-2needle-0", "aB3xY9Snouts in the river mud.")).score, 1);
  assert.equal((await grade(t, "mrcr-2needle-0", "Snouts in the river mud.")).score, 0); // no prefix
  const partial = (await grade(t, "mrcr-2needle-0", "aB3xY9Tapirs wander slow.")).score;
  assert.ok(partial > 0 && partial < 1);
  assert.equal((await loadPublished("openai-mrcr", file("mrcr_2needle.parquet"), { maxContextTokens: 1000 })).items.length, 1);
});

test("LongBench-v2 (json): context, question and four choices; grouped by length", async () => {
  const t = await loadPublished("longbench-v2", file("longbench_v2.json"));
  assert.match(userText(t.items[0]), /<text>\nThe annual report/);
  assert.deepEqual(t.groups, ["short", "long"]);
  assert.equal((await grade(t, "66f36490821e116aacb2cc22", "The answer is (B)")).score, 1);
  assert.equal((await grade(t, "66f36490821e116aacb2cc22", "The answer is (A)")).score, 0);
});

test("bad published files fail naming file, record and field", async () => {
  const { dir, cleanup } = tempDir();
  try {
    const write = (name: string, text: string) => (writeFileSync(join(dir, name), text), join(dir, name));
    await rejects(loadPublished("math-500", write("m.jsonl", '{"problem": "x", "unique_id": "u1"}\n')), /m\.jsonl record 0 \(u1\)/, /"answer"/);
    await rejects(loadPublished("gpqa-diamond", write("g.csv", "Question,Correct Answer,Record ID\nq,a,r1\n")), /g\.csv record 0 \(r1\)/, /Incorrect Answer 1/);
    await rejects(loadPublished("mmlu-pro", write("p.jsonl", '{"question_id": 1, "question": "q", "options": ["a","b"], "answer": "D"}\n')), /"answer" "D" is not one of the 2 option letters/);
    await rejects(loadPublished("zebralogic", write("z.jsonl", '{"id": "z1", "puzzle": "p", "solution": {"header": ["House", "Name"], "rows": [["1"]]}}\n')), /z1/, /row 0 must hold 2 values/);
    await rejects(loadPublished("openai-mrcr", write("r.jsonl", '{"prompt": "{oops", "answer": "a", "random_string_to_prepend": "p"}\n')), /r\.jsonl record 0/, /"prompt"/, /not valid JSON/);
    await rejects(loadPublished("math-500", write("d.jsonl", '{"problem": "a", "answer": "1", "unique_id": "u"}\n{"problem": "b", "answer": "2", "unique_id": "u"}\n')), /"u" appears twice/);
    await rejects(loadPublished("simpleqa", file("simple_qa.csv")), /judge/);
    await rejects(loadPublished("hle", file("simple_qa.csv")), /no published benchmark "hle"/);
  } finally {
    cleanup();
  }
  assert.ok(PUBLISHED_NAMES.length >= 11);
});

test("LiveCodeBench: the paper's date window, private tests decoded from zlib'd pickles (only plain strings)", async () => {
  const t = await loadPublished("livecodebench", file("livecodebench.jsonl"));
  assert.deepEqual(t.items.map((x) => x.id), ["abc400_a", "3500"]); // the 2023 problem is outside 2024-08..2025-05
  assert.equal((t.items[0].meta!.tests as unknown[]).length, 3);
  assert.deepEqual(t.protocol, { temperature: 1, topP: 0.95, samples: 16 });
  assert.match(userText(t.items[1]), /def addK/);
  const older = await loadPublished("livecodebench", file("livecodebench.jsonl"));
  assert.equal(older.items.length, 2);
  // a pickle of a dict (what a malicious file could hold instead of a string) is refused, never unpickled
  assert.throws(() => unpickleString("eJxrYJkqwAABtVN6WDPzCkpLpvQwVkwp1gMAWEEHyg==", "f"), /not a pickled string/);
  assert.throws(() => unpickleString("!!!", "f"), /neither JSON nor base64/);
  assert.equal(extractCode("x\n```python\nprint(1)\n```\nthen\n```python\nprint(2)\n```"), "print(2)\n");
  assert.equal(extractCode("no code"), null);
});

/** A judge model for the tests: answers the verdict the test expects for the answer it is shown. */
class ScriptedJudge implements Backend {
  readonly id = "judge:test";
  readonly modelName = "judge";
  readonly concurrency = 1;
  readonly prompts: string[] = [];
  constructor(private readonly reply: (prompt: string) => string) {}
  async complete(r: CompletionRequest): Promise<Completion> {
    const prompt = (r.prompt as { content: string }[])[0].content;
    this.prompts.push(prompt);
    return { text: this.reply(prompt), finishReason: "stop", promptTokens: null, completionTokens: null };
  }
}

test("SimpleQA and MultiChallenge: graded by a judge model's verdict", async () => {
  const judge = new ScriptedJudge((p) => (/Predicted answer: Canberra/.test(p) ? "<think>same city</think>CORRECT" : /Predicted answer: I don't know/.test(p) ? "NOT_ATTEMPTED" : "INCORRECT"));
  const qa = await loadPublished("simpleqa", file("simple_qa.csv"), { judge });
  assert.deepEqual(qa.items.map((x) => x.group), ["Science and technology", "Geography"]);
  assert.deepEqual(await grade(qa, "simpleqa-1", "Canberra"), { score: 1, extracted: "CORRECT", detail: "judge: CORRECT" });
  assert.equal((await grade(qa, "simpleqa-1", "Sydney")).extracted, "INCORRECT");
  assert.equal((await grade(qa, "simpleqa-1", "I don't know")).extracted, "NOT_ATTEMPTED");
  assert.match(judge.prompts[0], /Gold answer: Canberra/);

  const mcJudge = new ScriptedJudge((p) => (/peanut butter/.test(p) ? "It suggests peanuts.\nYES" : "NO"));
  const mc = await loadPublished("multichallenge", file("multichallenge.jsonl"), { judge: mcJudge });
  assert.equal((mc.items[0].prompt as unknown[]).length, 3);
  assert.equal((await grade(mc, "mc-002", "Try apple slices.")).score, 1); // pass criterion NO, judge NO
  assert.equal((await grade(mc, "mc-002", "Try peanut butter toast.")).score, 0);
  assert.match(mcJudge.prompts[0], /Does the final response suggest a snack containing peanuts\?/);
  const silent = await loadPublished("simpleqa", file("simple_qa.csv"), { judge: new ScriptedJudge(() => "hmm") });
  assert.match((await grade(silent, "simpleqa-0", "x")).detail!, /no verdict/);
});
