// The built-in suites: the arithmetic suite reproduces a slice of the demo pair's published accuracy table on
// the local engine (greedy); the generated retrieval, MRCR and recall items are deterministic and gradeable;
// results come out as Arrow, markdown, a plot beside the published numbers, and progress bars.
import { test } from "node:test";
import assert from "node:assert/strict";
import { Writable } from "node:stream";
import { DISPLAY, PLOTLY_MIME, DATARESOURCE_MIME } from "../engine/display.ts";
import { arithmeticSuite } from "../benchmarks/eval/suites/arithmetic.ts";
import { retrievalSuite } from "../benchmarks/eval/suites/passkey.ts";
import { mrcrSuite } from "../benchmarks/eval/suites/mrcr.ts";
import { recallSuite } from "../benchmarks/eval/suites/recall.ts";
import { builtinSuite } from "../benchmarks/eval/suites/index.ts";
import { approxTokens } from "../benchmarks/eval/suites/random.ts";
import { runTask } from "../benchmarks/eval/runner.ts";
import { LocalBackend } from "../benchmarks/eval/backends/local.ts";
import { NotebookProgress, terminalProgress, type ProgressState } from "../benchmarks/eval/progress.ts";
import type { ChatMessage } from "../engine/tokenizer.ts";

test("arithmetic on the demo pair reproduces the published table's slice (greedy, 8 problems per cell)", async () => {
  const cells: [string, number, number, number][] = [
    // checkpoint, thinking budget, digits, published accuracy (engine/checkpoints/README.md)
    ["mini-80k", 80, 9, 1.0],
    ["mini-80k", 40, 7, 0.0],
    ["mini-40k", 80, 7, 0.0],
    ["mini-40k", 40, 5, 1.0],
  ];
  for (const [checkpoint, budget, digits, published] of cells) {
    const result = await runTask(arithmeticSuite({ digits: [digits], perDigits: 8, seed: 1 }), await LocalBackend.load(checkpoint), { thinkingBudget: budget, progress: null });
    const [group] = result.byGroup();
    console.log(`${checkpoint} budget ${budget}, ${digits} digits: ${group.meanScore.toFixed(2)} (published ${published.toFixed(2)})`);
    assert.equal(group.published, published, "the published number comes with the result");
    assert.ok(Math.abs(group.meanScore - published) <= 0.125, `${checkpoint}/${budget}/${digits}: ${group.meanScore}`);
  }
});

test("run results: Arrow rows, a markdown table and a plot beside the published numbers", async () => {
  const result = await runTask(arithmeticSuite({ digits: [2, 7], perDigits: 2 }), await LocalBackend.load("mini-80k"), { thinkingBudget: 40, progress: null });
  const rows = result.toArrow();
  assert.equal(rows.numRows, 4);
  assert.ok(["item_id", "score", "response", "thinking", "answer", "target"].every((c) => rows.schema.fields.some((f) => f.name === c)));
  const md = result.markdown();
  assert.match(md, /\| group \| n \| score \| published \|/);
  assert.match(md, /\| 2 \| 2 \| 1\.000 \| 1\.00 \|/);
  assert.match(md, /\| 7 \| 2 \| 0\.000 \| 0\.00 \|/);
  assert.match(md, /source: engine\/checkpoints\/README\.md/);
  const fig = result.figure();
  assert.equal(fig.data.length, 2);
  assert.deepEqual(fig.data[1].y, [1, 0]);
  const bundle = result[DISPLAY]();
  assert.ok(PLOTLY_MIME in bundle && DATARESOURCE_MIME in bundle);
  assert.match(String(bundle["text/html"]), /<table/);
  const json = result.toJSON() as { groups: unknown[]; computed: string[] };
  assert.equal(json.groups.length, 2);
  assert.equal(json.computed.length, 4);
});

test("retrieval suites: lengths and depths as asked, deterministic by seed, the needle where the depth says", () => {
  const task = retrievalSuite({ kind: "passkey", lengths: [500, 2000], depths: [0, 0.5, 1], perCell: 2, seed: 3 });
  assert.equal(task.items.length, 12);
  assert.deepEqual(task.items, retrievalSuite({ kind: "passkey", lengths: [500, 2000], depths: [0, 0.5, 1], perCell: 2, seed: 3 }).items);
  assert.notDeepEqual(task.items.map((x) => x.target), retrievalSuite({ kind: "passkey", lengths: [500, 2000], depths: [0, 0.5, 1], perCell: 2, seed: 4 }).items.map((x) => x.target));
  for (const item of task.items) {
    const text = item.prompt as string;
    const length = Number(item.id.split("-")[1]);
    assert.ok(Math.abs(approxTokens(text) - length) / length < 0.1, `${item.id}: ${approxTokens(text)} tokens`);
    assert.match(text, new RegExp(`The pass key is ${item.target}\\.`));
    const at = text.indexOf(`The pass key is ${item.target}`) / text.length;
    const depth = Number(item.id.split("-")[2]);
    assert.ok(Math.abs(at - depth) < 0.12, `${item.id}: needle at ${at.toFixed(2)}`);
  }
  const needle = retrievalSuite({ kind: "needle", lengths: [300], depths: [0.5], perCell: 1 });
  assert.match(needle.items[0].prompt as string, /The special magic number for (\w+) is: \d{7}\..*What is the special magic number for \1/s);
});

test("MRCR suite: the target is the prefix plus the k-th identical request's answer; the grader tells it from the others", async () => {
  const task = mrcrSuite({ turns: [10, 40], needles: 2, perCell: 2, seed: 7 });
  assert.equal(task.items.length, 4);
  for (const item of task.items) {
    const messages = item.prompt as ChatMessage[];
    const turns = Number(/-(\d+)t-/.exec(item.id)![1]);
    assert.equal(messages.length, 2 * turns + 1);
    const last = messages.at(-1)!.content as string;
    const m = /^Prepend (\w{10}) to the (\d)\w\w \(1 indexed\) (.+) about (.+)\. Do not include/.exec(last)!;
    assert.ok(m, last);
    const [, prefix, k, form, topic] = m;
    assert.equal(item.meta?.prefix, prefix);
    const asked = messages.flatMap((msg, i) => (msg.role === "user" && msg.content === `write a ${form} about ${topic}` ? [messages[i + 1].content as string] : []));
    assert.equal(asked.length, 2, "the request appears exactly `needles` times");
    assert.equal(item.target, prefix + asked[Number(k) - 1]);
    assert.equal((await task.grader.grade(item.target, item)).score, 1);
    assert.ok((await task.grader.grade(prefix + asked[2 - Number(k)], item)).score < 0.9, "the other identical request's answer scores lower");
    assert.equal((await task.grader.grade(asked[Number(k) - 1], item)).score, 0, "no prefix, no score");
  }
  assert.deepEqual(task.groups, ["256-512", "512-1K", "1K-2K"], "context-length bins, in length order");
  assert.deepEqual(new Set(task.items.map((x) => x.group)), new Set(task.groups));
  const published = task.reference!("MiniMax-M1-80k", undefined)!;
  assert.ok(Math.abs(published.points["64K-128K"] - 0.734) < 1e-12 && Math.abs(published.points["512K-1M"] - 0.562) < 1e-12, JSON.stringify(published.points));
});

test("associative recall: the asked key is in the list with its value", () => {
  const task = recallSuite({ pairs: [4, 64], perCell: 3, seed: 2 });
  assert.equal(task.items.length, 6);
  for (const item of task.items) {
    const text = (item.prompt as ChatMessage[])[0].content as string;
    const key = /What number goes with (\w{4})\?/.exec(text)![1];
    assert.ok(text.includes(`${key}: ${item.target}\n`));
  }
});

test("built-in suites by name check their parameters", () => {
  assert.equal(builtinSuite("arithmetic", { digits: [3], n: 2 }).items.length, 2);
  assert.throws(() => builtinSuite("passkey", { digits: [3] }), /suite passkey does not take --digits/);
  assert.throws(() => builtinSuite("gsm8k", {}), /no built-in suite "gsm8k"/);
  assert.throws(() => builtinSuite("mrcr", { needles: 3 }), /needles must be 2, 4 or 8/);
});

test("progress: plain lines on a pipe, a bar shown then updated in place in a notebook", () => {
  const state = (done: number): ProgressState => ({ label: "t", total: 20, done, cached: 5, failed: 0, meanScore: 0.5, elapsedMs: 2000 });
  let written = "";
  const pipe = Object.assign(new Writable({ write: (chunk, _enc, cb) => ((written += chunk), cb()) }), { isTTY: false }) as unknown as NodeJS.WriteStream;
  const term = terminalProgress(pipe);
  for (let d = 5; d <= 20; d++) term.update(state(d));
  term.finish(state(20));
  const lines = written.trim().split("\n");
  assert.ok(lines.length >= 4 && lines.length <= 9, `${lines.length} lines`);
  assert.equal(lines.at(-1), "t: 20/20 · 5 cached · mean 0.500 · 0:02");
  const shown: unknown[] = [];
  const updated: unknown[] = [];
  const bar = new NotebookProgress((value) => (shown.push(value), { update: (v: unknown) => void updated.push(v) }));
  bar.update(state(6));
  bar.update(state(7)); // within 200 ms: skipped
  bar.finish(state(20));
  assert.deepEqual([shown.length, updated.length], [1, 1]);
  assert.match(String(bar[DISPLAY]()["text/html"]), /<progress value="20" max="20"/);
});
