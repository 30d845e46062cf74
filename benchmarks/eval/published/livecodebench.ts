// LiveCodeBench code generation as published (livecodebench/code_generation_lite, test*.jsonl: question_title,
// question_content, platform, question_id, contest_date, starter_code, difficulty, public_test_cases [JSON],
// private_test_cases [JSON, or base64 of zlib-compressed pickle of the JSON text], metadata [JSON with func_name]).
// The answer's last ```python block runs against the public and then the private tests in the sandbox
// (../sandbox.ts); an item scores 1 when every test passes. Stdin tests compare the output line by line
// (whitespace-trimmed, numbers within 1e-6); functional tests call Solution().func_name(*args) and compare JSON.
import { randomBytes } from "node:crypto";
import fs from "node:fs";
import { inflateSync } from "node:zlib";
import { InputError } from "../../../engine/errors.ts";
import type { EvalItem, Grade, Grader, JsonValue, Task } from "../types.ts";
import { runSandboxed, sandboxUnavailable, type SandboxLimits, type SandboxRun } from "../sandbox.ts";
import { Fields, isObject, parseJson, readRecords, recordWhere } from "./records.ts";
import { SYSTEM_PROMPTS, paperProtocol } from "./protocol.ts";
import { chatItem, systemPrompt, uniqueIds } from "./items.ts";
import type { LoadOptions } from "./math.ts";

export interface TestCase { input: string; output: string; testtype: "stdin" | "functional" }

export interface LiveCodeBenchOptions extends LoadOptions {
  /** contest dates kept, inclusive, as YYYY-MM-DD (default: the paper's window, 2024-08-01 to 2025-05-31) */
  from?: string;
  to?: string;
  /** per test run (default 10 s wall clock, 1 GiB) */
  limits?: Partial<SandboxLimits>;
  /** the interpreter inside the sandbox (default python3) */
  python?: string;
}

export const PAPER_WINDOW = { from: "2024-08-01", to: "2025-05-31" };

export async function liveCodeBenchTask(file: string, options: LiveCodeBenchOptions = {}): Promise<Task> {
  const { from = PAPER_WINDOW.from, to = PAPER_WINDOW.to } = options;
  const items: EvalItem[] = [];
  for (const [i, r] of (await readRecords(file)).entries()) {
    const where = recordWhere(file, i, r.question_id);
    const f = new Fields(r, where);
    const date = f.string("contest_date").slice(0, 10);
    if (date < from || date > to) continue;
    const tests = [...readTests(f.raw("public_test_cases"), `${where}: field "public_test_cases"`), ...readTests(f.raw("private_test_cases"), `${where}: field "private_test_cases"`)];
    if (tests.length === 0) throw new InputError(`${where}: no test cases`);
    const functional = tests[0].testtype === "functional";
    const metadata = f.optionalString("metadata") ? f.json("metadata") : {};
    const funcName = isObject(metadata) && typeof metadata.func_name === "string" ? metadata.func_name : null;
    if (functional && !funcName) throw new InputError(`${where}: functional tests need "metadata" with a "func_name"`);
    const starter = f.optionalString("starter_code") ?? "";
    const item = chatItem(f.string("question_id"), systemPrompt(options, SYSTEM_PROMPTS.general), codePrompt(f.string("question_content"), starter, functional), "", {
      tests: tests as unknown as JsonValue, func_name: funcName,
    });
    items.push({ ...item, group: f.optionalString("difficulty") ?? "all" });
    if (items.length === options.limit) break;
  }
  uniqueIds(items, file);
  const order = ["easy", "medium", "hard"];
  return {
    name: "livecodebench", description: `LiveCodeBench: ${items.length} problems from ${file}, contests ${from} to ${to}`, items,
    grader: codeGrader({ limits: options.limits, python: options.python }), generation: { maxTokens: 8192 },
    protocol: paperProtocol(16), paperRow: "LiveCodeBench (24/8-25/5)", groupTitle: "difficulty",
    groups: [...new Set(items.map((x) => x.group!))].sort((a, b) => order.indexOf(a) - order.indexOf(b)),
  };
}

function codePrompt(question: string, starter: string, functional: boolean): string {
  const how = functional
    ? `Complete this starter code; your class will be called directly:\n\`\`\`python\n${starter.trim()}\n\`\`\``
    : "Write a complete Python 3 program that reads the input from standard input and prints the answer to standard output.";
  return `${question.trim()}\n\n${how}\n\nGive your final solution in one \`\`\`python code block.`;
}

function readTests(value: unknown, where: string): TestCase[] {
  if (value === undefined || value === null || value === "") return [];
  let v: unknown = value;
  if (typeof v === "string") v = v.trim().startsWith("[") ? parseJson(v, where) : parseJson(unpickleString(v, where), where);
  if (!Array.isArray(v)) throw new InputError(`${where} must be a list of {input, output, testtype}`);
  return v.map((t, k) => {
    if (!isObject(t) || typeof t.input !== "string" || typeof t.output !== "string" || (t.testtype !== "stdin" && t.testtype !== "functional")) {
      throw new InputError(`${where}[${k}] must be {input: string, output: string, testtype: "stdin" | "functional"}`);
    }
    return { input: t.input, output: t.output, testtype: t.testtype };
  });
}

/**
 * LiveCodeBench's private tests are base64(zlib(pickle(json_text))). Only a pickled str is accepted (protocols
 * 2-5: PROTO, optional FRAME, one unicode opcode, optional MEMOIZE, STOP); any other pickle is refused, since
 * general unpickling would run code.
 */
export function unpickleString(text: string, where: string): string {
  let data: Buffer;
  try {
    data = inflateSync(Buffer.from(text, "base64"));
  } catch (e) {
    throw new InputError(`${where}: neither JSON nor base64 of zlib-compressed data (${(e as Error).message})`);
  }
  let at = 0;
  const fail = (why: string): never => {
    throw new InputError(`${where}: not a pickled string (${why} at byte ${at})`);
  };
  if (data[at] === 0x80) at += 2; // PROTO n
  if (data[at] === 0x95) at += 9; // FRAME <8-byte length>
  const op = data[at++];
  let length: number;
  if (op === 0x8c) length = data[at++]; // SHORT_BINUNICODE
  else if (op === 0x58) { length = data.readUInt32LE(at); at += 4; } // BINUNICODE
  else if (op === 0x8d) { length = Number(data.readBigUInt64LE(at)); at += 8; } // BINUNICODE8
  else return fail(`opcode 0x${(op ?? 0).toString(16)} is not a string`);
  if (at + length > data.length) fail("string runs past the end");
  const s = data.subarray(at, at + length).toString("utf8");
  at += length;
  if (data[at] === 0x94) at++; // MEMOIZE
  if (data[at] !== 0x2e || at + 1 !== data.length) fail("expected STOP");
  return s;
}

/** The last ```python (or bare ```) block of the answer. */
export function extractCode(answer: string): string | null {
  const blocks = [...answer.matchAll(/```(?:python|py|python3)?[ \t]*\n([\s\S]*?)```/g)];
  return blocks.at(-1)?.[1] ?? null;
}

export interface CodeGraderOptions { limits?: Partial<SandboxLimits>; python?: string }

export function codeGrader(options: CodeGraderOptions = {}): Grader {
  const python = options.python ?? "python3";
  const caller = fs.readFileSync(new URL("./lcb-call.py", import.meta.url), "utf8");
  return {
    name: "livecodebench_tests",
    async grade(answer: string, item: EvalItem): Promise<Grade> {
      const why = sandboxUnavailable();
      if (why) throw new InputError(`${item.id}: cannot grade code: ${why}`);
      const code = extractCode(answer);
      if (code === null) return { score: 0, extracted: null, detail: "no ```python code block in the answer" };
      const tests = item.meta!.tests as unknown as TestCase[];
      for (const [k, test] of tests.entries()) {
        const verdict = await runTest(code, test, item.meta!.func_name as string | null, python, caller, options.limits);
        if (verdict !== null) return { score: 0, extracted: code, detail: `test ${k + 1}/${tests.length}: ${verdict}` };
      }
      return { score: 1, extracted: code, detail: `${tests.length}/${tests.length} tests passed` };
    },
  };
}

/** null when the test passes, else why not. */
async function runTest(code: string, test: TestCase, funcName: string | null, python: string, caller: string, limits: Partial<SandboxLimits> | undefined): Promise<string | null> {
  let run: SandboxRun;
  let stdout: string;
  if (test.testtype === "stdin") {
    run = await runSandboxed({ "main.py": code }, [python, "-I", "main.py"], test.input, limits);
    stdout = run.stdout;
  } else {
    const marker = `@@m1-result-${randomBytes(8).toString("hex")}@@`;
    run = await runSandboxed({ "solution.py": code, "call.py": caller }, [python, "-I", "call.py", funcName!, marker], test.input, limits);
    const at = run.stdout.lastIndexOf(marker);
    stdout = at < 0 ? "" : run.stdout.slice(at + marker.length);
  }
  if (run.timedOut) return "time limit exceeded";
  if (run.outputOverflow) return "output limit exceeded";
  if (run.exitCode !== 0) return `exit ${run.exitCode ?? run.signal}: ${run.stderr.trim().split("\n").at(-1) ?? ""}`.slice(0, 300);
  const same = test.testtype === "stdin" ? sameStdout(stdout, test.output) : sameJson(stdout, test.output);
  return same ? null : `wrong answer (expected ${JSON.stringify(test.output.slice(0, 80))}, got ${JSON.stringify(stdout.trim().slice(0, 80))})`;
}

function sameStdout(got: string, expected: string): boolean {
  const lines = (s: string) => s.trim().split("\n").map((l) => l.trim());
  const a = lines(got);
  const b = lines(expected);
  if (a.length !== b.length) return false;
  return a.every((line, i) => {
    if (line === b[i]) return true;
    const x = line.split(/\s+/);
    const y = b[i].split(/\s+/);
    return x.length === y.length && x.every((t, j) => t === y[j] || closeNumbers(t, y[j]));
  });
}

function closeNumbers(a: string, b: string): boolean {
  const x = Number(a);
  const y = Number(b);
  return a !== "" && b !== "" && Number.isFinite(x) && Number.isFinite(y) && Math.abs(x - y) <= 1e-6 * Math.max(1, Math.abs(y));
}

function sameJson(got: string, expected: string): boolean {
  try {
    return JSON.stringify(JSON.parse(got.trim())) === JSON.stringify(JSON.parse(expected.trim()));
  } catch {
    return false;
  }
}
