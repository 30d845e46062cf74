// Graders on known cases: exact match (lm-eval normalisations), thought stripping, difflib's ratio (values from
// CPython's difflib), the MRCR protocol, math answer equivalence (with its timeout), multiple choice, retrieval,
// and the task formats (task files, lm-evaluation-harness YAML).
import { test } from "node:test";
import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { ROOT, tempDir } from "./helpers.ts";
import type { EvalItem, Grader } from "../benchmarks/eval/types.ts";
import { exactMatch } from "../benchmarks/eval/graders/exact.ts";
import { splitThinking, opensThought } from "../benchmarks/eval/thinking.ts";
import { sequenceRatio } from "../benchmarks/eval/graders/sequence-matcher.ts";
import { mrcrGrader } from "../benchmarks/eval/graders/mrcr.ts";
import { mathGrader } from "../benchmarks/eval/graders/math.ts";
import { mathEquivalent } from "../benchmarks/eval/graders/math-compare.ts";
import { extractMathAnswer, normalizeMathAnswer } from "../benchmarks/eval/graders/math-normalize.ts";
import { extractChoice, multipleChoiceGrader } from "../benchmarks/eval/graders/choice.ts";
import { retrievalGrader } from "../benchmarks/eval/graders/retrieval.ts";
import { importLmEvalTask } from "../benchmarks/eval/lm-eval.ts";
import { loadTaskFile } from "../benchmarks/eval/task-file.ts";
import { InputError } from "../engine/errors.ts";

const item = (target: string, meta?: EvalItem["meta"]): EvalItem => ({ id: "x", prompt: "", target, ...(meta ? { meta } : {}) });
const score = async (g: Grader, answer: string, it: EvalItem) => (await g.grade(answer, it)).score;
const EXAMPLES = join(ROOT, "benchmarks", "eval", "examples");

test("exact match applies lm-eval's regexes_to_ignore, ignore_case and ignore_punctuation to both sides", async () => {
  const g = exactMatch({ ignoreCase: true, regexesToIgnore: [",", "\\$", "(?s).*#### ", "\\.$"] });
  assert.equal(await score(g, "$2,075.", item("work...\nmore\n#### 2075")), 1);
  assert.equal(await score(g, "2076", item("#### 2075")), 0);
  assert.equal(await score(exactMatch({ ignorePunctuation: true, ignoreCase: true }), "Paris!", item("paris")), 1);
  assert.equal(await score(exactMatch(), "Paris!", item("paris")), 0);
});

test("thought stripping: closed, opened by the prompt, unfinished, several blocks", () => {
  assert.deepEqual(splitThinking("<think>a b</think> 42"), { thinking: "a b", answer: "42", unfinished: false });
  assert.deepEqual(splitThinking("1 5 0 , </think> 1 4"), { thinking: "1 5 0 , ", answer: "1 4", unfinished: false });
  assert.deepEqual(splitThinking("1 5 0 6 0 , 2 7", true), { thinking: "1 5 0 6 0 , 2 7", answer: "", unfinished: true });
  assert.deepEqual(splitThinking("x <think>a</think> y <think>b</think> z"), { thinking: "a\nb", answer: "x  y  z", unfinished: false });
  assert.deepEqual(splitThinking("plain answer"), { thinking: "", answer: "plain answer", unfinished: false });
  assert.equal(opensThought("<s> 1 + 2 = <think>"), true);
  assert.equal(opensThought("<think> a </think> b"), false);
});

test("sequenceRatio equals CPython's difflib.SequenceMatcher(None, a, b).ratio(), autojunk included", () => {
  const a = "the quick brown fox jumps over the lazy dog ".repeat(6); // 264 chars: the autojunk heuristic applies
  const b = [...a].map((c, i) => (i % 7 === 3 ? "x" : c)).join("");
  const cases: [string, string, number][] = [
    ["", "", 1],
    ["abc", "", 0],
    ["abcd", "bcde", 0.75],
    ["kitten", "sitting", 0.6153846153846154],
    ["abxcd", "abcd", 0.8888888888888888],
    ["private Thread currentThread;", "private volatile Thread currentThread;", 0.8656716417910447],
    ["Ünïcödé text", "Unicode text", 0.6666666666666666],
    [a, b, 0.011363636363636364],
    [a.replaceAll("fox", "cat"), a, 0.06060606060606061],
  ];
  for (const [x, y, want] of cases) assert.equal(sequenceRatio(x, y), want, `${JSON.stringify(x.slice(0, 20))} vs ${JSON.stringify(y.slice(0, 20))}`);
});

test("MRCR: no prefix scores 0; with the prefix, the ratio of the rest against the target without its prefix", async () => {
  const g = mrcrGrader();
  const it = item("ab12cdOcean waves rise.\nSalt and light.", { prefix: "ab12cd" });
  assert.equal(await score(g, "Ocean waves rise.\nSalt and light.", it), 0);
  assert.equal(await score(g, "ab12cdOcean waves rise.\nSalt and light.", it), 1);
  assert.equal(await score(g, "ab12cdOcean waves rise.", it), sequenceRatio("Ocean waves rise.", "Ocean waves rise.\nSalt and light."));
});

test("math answers: extraction and LaTeX normalisation", () => {
  assert.equal(extractMathAnswer("so \\boxed{\\frac{a}{b+1}} and more text"), "\\frac{a}{b+1}");
  assert.equal(extractMathAnswer("first \\boxed{1}, finally \\boxed{2}"), "2");
  assert.equal(extractMathAnswer("we get 12, then 1,234.5 in the end"), "1,234.5");
  assert.equal(extractMathAnswer("no answer here"), null);
  assert.equal(normalizeMathAnswer("$\\dfrac{1}{2}$"), "((1)/(2))");
  assert.equal(normalizeMathAnswer("5 \\text{ cm}"), "5");
  assert.equal(normalizeMathAnswer("1,000,000"), "1000000");
});

test("math equivalence: numeric, symbolic or sampled, tuples in any order; different values are not equal", () => {
  const yes: [string, string][] = [["\\frac{1}{2}", "0.5"], ["2\\sqrt{2}", "\\sqrt{8}"], ["\\pi/2", "1.5707963"], ["2x + x", "3x"], ["(x+1)^2", "x^2+2x+1"], ["(1, 2)", "(2,1)"], ["10\\%", "10"], ["90^\\circ", "90"]];
  for (const [a, b] of yes) assert.equal(mathEquivalent(a, b).equivalent, true, `${a} ≡ ${b}`);
  const no: [string, string][] = [["3", "4"], ["x^2", "2x"], ["(1, 2)", "(1, 3)"], ["0.33", "1/3"], ["\\frac{1}{2}", "\\frac{1}{3}"]];
  for (const [a, b] of no) assert.equal(mathEquivalent(a, b).equivalent, false, `${a} ≢ ${b}`);
  assert.equal(mathEquivalent("2x + x", "3x").how, "symbolic");
});

test("math grader: extracts from both sides, and a comparison past the timeout scores 0 without blocking", async () => {
  const g = mathGrader({ timeoutMs: 300 });
  try {
    assert.deepEqual(await g.grade("thus \\boxed{\\frac{3}{4}}", item("0.75")), { score: 1, extracted: "\\frac{3}{4}", detail: "numeric" });
    assert.equal((await g.grade("the answer is 41", item("The total is \\boxed{42}."))).score, 0);
    assert.equal((await g.grade("nothing numeric", item("1"))).score, 0);
    const huge = Array.from({ length: 60 }, (_, i) => `(x+${i})^${(i % 7) + 2}`).join("*");
    const started = Date.now();
    const slow = await g.grade(`\\boxed{${huge}}`, item(`\\boxed{${huge}+1}`));
    assert.equal(slow.score, 0);
    assert.match(slow.detail ?? "", /timed out after 300 ms/);
    assert.ok(Date.now() - started < 5000, "the timeout stopped the comparison");
    assert.equal((await g.grade("\\boxed{7}", item("7"))).score, 1, "a fresh worker answers after a timeout");
  } finally {
    await g.close?.();
  }
});

test("multiple choice reads the letter from free-form answers", async () => {
  const L = ["A", "B", "C", "D"];
  assert.equal(extractChoice("Let me think... The answer is (C).", L), "C");
  assert.equal(extractChoice("\\boxed{B}", L), "B");
  assert.equal(extractChoice("D) because it is larger", L), "D");
  assert.equal(extractChoice("Paris", L, ["London", "Paris", "Rome", "Oslo"]), "B");
  assert.equal(extractChoice("I am not sure", L), null);
  const g = multipleChoiceGrader();
  const it = item("C", { choices: ["1", "2", "3", "4"] });
  assert.equal(await score(g, "Answer: C", it), 1);
  assert.equal(await score(g, "Answer: A", it), 0);
});

test("retrieval grader needs the needle as a whole word", async () => {
  const g = retrievalGrader();
  assert.equal(await score(g, "The pass key is 68402.", item("68402")), 1);
  assert.equal(await score(g, "The pass key is 684021.", item("68402")), 0);
  assert.equal(await score(g, "I do not know", item("68402")), 0);
});

test("lm-eval YAML: few-shot prompt, strict and flexible regex filters, exact_match normalisation", async () => {
  const yaml = join(EXAMPLES, "word-problems.yaml");
  const strict = importLmEvalTask(yaml, { data: join(EXAMPLES, "word-problems.jsonl"), fewshotData: join(EXAMPLES, "word-problems-fewshot.jsonl") });
  assert.equal(strict.items.length, 4);
  assert.deepEqual(strict.generation, { maxTokens: 256, stop: ["Question:", "</s>"] });
  assert.ok(String(strict.items[1].prompt).startsWith("Question: There are 4 boxes with 6 pens each. How many pens are there?\nAnswer: 4 * 6 = 24.\n#### 24\n\nQuestion: A cake"));
  assert.ok(String(strict.items[1].prompt).endsWith("Question: Tom had $2,450 and spent $375. How much money does he have left?\nAnswer:"));
  const grade = (task: typeof strict, r: string) => score(task.grader, r, task.items[1]);
  assert.equal(await grade(strict, "2450 - 375 = 2075.\n#### 2075"), 1);
  assert.equal(await grade(strict, "#### 2,075"), 1);
  assert.equal(await grade(strict, "The answer is $2,075."), 0, "strict-match needs ####");
  const flexible = importLmEvalTask(yaml, { data: join(EXAMPLES, "word-problems.jsonl"), numFewshot: 0, filter: "flexible-extract" });
  assert.equal(flexible.items[1].prompt, "Question: Tom had $2,450 and spent $375. How much money does he have left?\nAnswer:");
  assert.equal(await grade(flexible, "The answer is $2,075."), 1);
  assert.equal(await grade(flexible, "so 2076 dollars"), 0);
});

test("lm-eval YAML: refuses !function, other output types, and few-shot without examples", () => {
  const { dir, cleanup } = tempDir();
  try {
    const data = join(EXAMPLES, "word-problems.jsonl");
    const write = (name: string, text: string) => {
      writeFileSync(join(dir, name), text);
      return join(dir, name);
    };
    assert.throws(() => importLmEvalTask(write("f.yaml", "output_type: generate_until\ndoc_to_text: !function utils.doc_to_text\n"), { data }), /!function/);
    assert.throws(() => importLmEvalTask(write("mc.yaml", "output_type: multiple_choice\ndoc_to_text: q\n"), { data }), /only generate_until/);
    const base = write("base.yaml", "output_type: generate_until\ndoc_to_text: '{{question}}'\ndoc_to_target: '{{answer}}'\nnum_fewshot: 3\nmetric_list:\n  - metric: exact_match\n");
    assert.throws(() => importLmEvalTask(base, { data }), (e) => e instanceof InputError && /fewshotData/.test(e.message));
    const child = write("child.yaml", "include: base.yaml\ntask: child\nnum_fewshot: 0\n");
    assert.equal(importLmEvalTask(child, { data }).name, "child", "include: merges the base under the task's own keys");
  } finally {
    cleanup();
  }
});

test("task files: templates per record, group and meta; errors name the file and field", async () => {
  const task = loadTaskFile(join(EXAMPLES, "capitals.task.json"));
  assert.equal(task.items.length, 5);
  assert.deepEqual(task.items[0], {
    id: "France",
    prompt: [{ role: "user", content: "What is the capital of France? Answer with the city's name only." }],
    target: "Paris",
    group: "Europe",
  });
  assert.equal(await score(task.grader, "paris.", task.items[0]), 1);
  const { dir, cleanup } = tempDir();
  try {
    const spec = join(dir, "bad.task.json");
    writeFileSync(spec, JSON.stringify({ name: "bad", items: join(EXAMPLES, "capitals.jsonl"), prompt: "{{country}}", chat: "{{country}}", target: "{{capital}}", grader: { type: "exact_match" } }));
    assert.throws(() => loadTaskFile(spec), /bad\.task\.json: give exactly one of "prompt", "chat", "messages_field"/);
    writeFileSync(spec, JSON.stringify({ name: "bad", items: join(EXAMPLES, "capitals.jsonl"), prompt: "{{country}}", target: "{{capital}}", grader: { type: "bleu" } }));
    assert.throws(() => loadTaskFile(spec), /grader\.type "bleu" is not one of/);
    // OpenAI-MRCR's own record format: the chat as a JSON string, the prefix and the length in fields
    const chat = [{ role: "user", content: "write a poem about tapirs" }, { role: "assistant", content: "Tapirs roam." }, { role: "user", content: "Prepend ab12 to the 1st poem about tapirs" }];
    writeFileSync(join(dir, "mrcr.jsonl"), JSON.stringify({ prompt: JSON.stringify(chat), answer: "ab12Tapirs roam.", random_string_to_prepend: "ab12", n_chars: 90000 }) + "\n");
    writeFileSync(spec, JSON.stringify({
      name: "openai-mrcr", items: "mrcr.jsonl", messages_field: "prompt", target: "{{answer}}",
      group: { length_bin: "{{n_chars}}", scale: 4 }, meta: { prefix: "{{random_string_to_prepend}}" }, grader: { type: "mrcr" },
    }));
    const mrcr = loadTaskFile(spec);
    assert.deepEqual(mrcr.items[0], { id: "0", prompt: chat, target: "ab12Tapirs roam.", group: "16K-32K", meta: { prefix: "ab12" } });
    assert.equal(await score(mrcr.grader, "ab12Tapirs roam.", mrcr.items[0]), 1);
  } finally {
    cleanup();
  }
});
