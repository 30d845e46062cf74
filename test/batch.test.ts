/** Batched decode: each sequence of a batch equals generate on it alone, bit for bit. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { Model, DecodeBatch, Rng, BatchSequence } from "../engine/index.ts";
import { logProbability } from "../engine/softmax.ts";
import { ROOT, TINY } from "./helpers.ts";

const mini = await Model.load(join(ROOT, "engine", "checkpoints", "mini-80k"));

function additions(count: number, seed: number): string[] {
  const rng = new Rng(seed);
  const digits = (n: number) => Array.from({ length: n }, () => Math.floor(rng.next() * 10)).join(" ");
  return Array.from({ length: count }, (_, i) => `<s> ${digits(2 + (i % 7))} + ${digits(2 + ((i * 3) % 7))} = <think>`);
}

async function alone(model: Model, prompt: string | number[], options: object): Promise<{ ids: number[]; logprobs: number[]; stop: string | null }> {
  const gen = model.generate(prompt, { ...options, keepLogits: true });
  const logprobs: number[] = [];
  for await (const t of gen) logprobs.push(logProbability(t.logits!, t.id));
  return { ids: gen.ids, logprobs, stop: gen.stopReason };
}

test("20 sampled sequences in one batch equal 20 generate calls (tokens, log-probabilities, stop reasons)", async () => {
  // 20 > 16 rows: the batched products and experts still take the row-independent path
  const prompts = additions(20, 7);
  const options = { temperature: 1, topP: 0.95, thinkingBudget: 30, maxNewTokens: 60 };
  const batch = await mini.generateBatch(prompts, { ...options, seed: 100 });
  for (let i = 0; i < prompts.length; i++) {
    const ref = await alone(mini, prompts[i], { ...options, seed: 100 + i });
    assert.deepEqual(batch[i].ids, ref.ids, `sequence ${i}`);
    assert.deepEqual(batch[i].logprobs, ref.logprobs, `sequence ${i} log-probabilities`);
    assert.equal(batch[i].stopReason, ref.stop);
  }
  // the thinking budget bound somewhere, and forced tokens are marked
  assert.ok(batch.some((s) => s.forced.includes(true)));
});

test("sequences with different sampling options in one batch (greedy, top-k, top-p, a thinking budget) each equal generate", async () => {
  const prompts = additions(6, 5);
  const options = [
    { greedy: true, maxNewTokens: 40 }, { temperature: 3, topK: 2, seed: 1, maxNewTokens: 40 },
    { temperature: 1, topP: 0.9, thinkingBudget: 10, seed: 2, maxNewTokens: 40 }, { temperature: 0, thinkingBudget: 5, maxNewTokens: 40 },
    { temperature: 4, seed: 3, maxNewTokens: 40 }, { temperature: 4, topP: 0.5, seed: 4, maxNewTokens: 40 },
  ];
  const batch = new DecodeBatch(mini);
  const seqs = await Promise.all(prompts.map((p, i) => batch.join(p, options[i])));
  while (batch.active.length > 0) await batch.step();
  for (let i = 0; i < prompts.length; i++) {
    const ref = await alone(mini, prompts[i], options[i]);
    assert.deepEqual(seqs[i].ids, ref.ids, `sequence ${i}`);
    assert.deepEqual(seqs[i].logprobs, ref.logprobs, `sequence ${i} log-probabilities`);
  }
  assert.ok(seqs[2].forced.includes(true) && seqs[3].forced.includes(true), "the thinking budgets bound");
});

test("sequences join and leave between steps without changing the others", async () => {
  const prompts = additions(5, 3);
  const options = { greedy: true, thinkingBudget: 80, maxNewTokens: 90 };
  const refs = await Promise.all(prompts.map(async (p) => (await alone(mini, p, options)).ids));
  const batch = new DecodeBatch(mini);
  const seqs = [await batch.join(prompts[0], options), await batch.join(prompts[1], options)];
  for (let k = 0; k < 5; k++) await batch.step();
  seqs.push(await batch.join(prompts[2], options));
  await batch.step();
  batch.leave(seqs[1]); // leaves after 6 tokens
  seqs.push(await batch.join(prompts[3], options), await batch.join(prompts[4], options));
  while (batch.active.length > 0) await batch.step();
  for (const i of [0, 2, 3, 4]) assert.deepEqual(seqs[i].ids, refs[i], `sequence ${i}`);
  assert.deepEqual(seqs[1].ids, refs[1].slice(0, 6));
  assert.throws(() => batch.leave(seqs[1]), /not in this batch/);
});

test("a batch that does not score its tokens (logprobs: false) gives the same tokens and no log-probabilities", async () => {
  const prompts = additions(3, 9);
  const options = { temperature: 1, topP: 0.95, maxNewTokens: 20 };
  const scored = new DecodeBatch(mini);
  const unscored = new DecodeBatch(mini, { logprobs: false });
  const a = await Promise.all(prompts.map((p, i) => scored.join(p, { ...options, seed: 30 + i })));
  const b = await Promise.all(prompts.map((p, i) => unscored.join(p, { ...options, seed: 30 + i })));
  while (scored.active.length > 0) await scored.step();
  while (unscored.active.length > 0) await unscored.step();
  assert.deepEqual(b.map((s) => s.ids), a.map((s) => s.ids));
  assert.ok(a.every((s) => s.logprobs.length === s.ids.length));
  assert.ok(b.every((s) => s.logprobs.length === 0));
});

test("f32 tiny model with a softmax layer: batch equals alone; hooks take the per-sequence path", async () => {
  const tiny = await Model.load(TINY);
  const prompts = [[1, 5, 9, 2], [3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3], [7]];
  const options = { temperature: 0.8, maxNewTokens: 12, stopTokens: [] };
  const batch = await tiny.generateBatch(prompts, { ...options, seeds: [5, 6, 7] });
  for (let i = 0; i < prompts.length; i++) assert.deepEqual(batch[i].ids, (await alone(tiny, prompts[i], { ...options, seed: 5 + i })).ids);
  let seen = 0;
  const hooked = await tiny.hooks.with([["blocks.0.hook_resid_pre", () => void seen++]], () => tiny.generateBatch(prompts, { ...options, seeds: [5, 6, 7] }));
  assert.deepEqual(hooked.map((s) => s.ids), batch.map((s) => s.ids));
  assert.equal(seen, 3 * 12); // a prefill and 11 decode steps per sequence
});

test("bad batch input is named", async () => {
  await assert.rejects(mini.generateBatch(["<s> 1 + 2 = <think>"], { seeds: [1, 2] }), /seeds has 2 entries for 1 prompts/);
  const c = mini.newCache();
  await assert.rejects(mini.stepBatch([1, 2], [c, c]), /a cache appears twice/);
  await assert.rejects(mini.stepBatch([99], [mini.newCache()]), /token id 99 at index 0 is outside the vocabulary/);
});

test("a group joins on one prefill: each member equals generate alone", async () => {
  const [prompt] = additions(1, 11);
  const options = [0, 1, 2, 3].map((k) => ({ temperature: 1, seed: 40 + k, thinkingBudget: 40, maxNewTokens: 50 }));
  const batch = new DecodeBatch(mini);
  const group = await batch.joinGroup(prompt, options);
  while (batch.active.length > 0) await batch.step();
  for (let k = 0; k < 4; k++) assert.deepEqual(group[k].ids, (await alone(mini, prompt, options[k])).ids, `member ${k}`);
  assert.equal(new Set(group.map((s) => s.cache)).size, 4, "each member has its own cache");
});

test("prompts prefilled together (joinMany) or in a step's pass (stepJoining) each equal generate alone; a bad one fails alone", async () => {
  // 1 to 16 tokens (packed on the dot path) and longer (prefilled alone), more rows than a thread's group of 32
  const prompts: (string | number[])[] = [...additions(12, 5), "<s> 1 2 3 4 5 6 7 8 + 9 8 7 6 5 4 3 2 1 0 = <think>", [1]];
  assert.ok(mini.promptIds(prompts[12]).length > 16 && mini.promptIds(prompts[0]).length <= 16);
  const options = prompts.map((_, i) => ({ temperature: 1, topP: 0.95, seed: 200 + i, thinkingBudget: 30, maxNewTokens: 40 }));
  const requests = prompts.map((prompt, i) => ({ prompt, options: options[i] }));
  const batch = new DecodeBatch(mini);
  const first = await batch.joinMany([...requests.slice(0, 6), { prompt: [5, 99999] }]);
  assert.match(String((first[6] as PromiseRejectedResult).reason), /token id 99999 at index 1 is outside the vocabulary/);
  for (let k = 0; k < 3; k++) await batch.step();
  const { finished, joined } = await batch.stepJoining([{ prompt: [] }, ...requests.slice(6)]);
  assert.deepEqual(finished, []);
  assert.match(String((joined[0] as PromiseRejectedResult).reason), /the prompt has no tokens/);
  const seqs = [...first.slice(0, 6), ...joined.slice(1)].map((r) => (r as PromiseFulfilledResult<BatchSequence>).value);
  assert.equal(batch.active.length, prompts.length);
  while (batch.active.length > 0) await batch.step();
  for (let i = 0; i < prompts.length; i++) {
    const ref = await alone(mini, prompts[i], options[i]);
    assert.deepEqual([seqs[i].ids, seqs[i].logprobs], [ref.ids, ref.logprobs], `sequence ${i}`);
  }
});

test("prefillMany: each prompt's logits and cache have the bits of its forward alone", async () => {
  const prompts = [...additions(40, 9), "<s> 1 2 3 4 5 6 7 8 + 9 8 7 6 5 4 3 2 1 0 = <think>"].map((p) => Int32Array.from(mini.promptIds(p)));
  const caches = prompts.map(() => mini.newCache());
  const many = await mini.prefillMany(prompts, caches);
  for (let s = 0; s < prompts.length; s++) {
    const cache = mini.newCache();
    const { logits } = await mini.forward(prompts[s], { cache, logits: "last" });
    assert.deepEqual(many[s], logits.f32, `prompt ${s} (${prompts[s].length} tokens)`);
    assert.deepEqual(caches[s], cache, `cache of prompt ${s}`);
  }
  await assert.rejects(mini.prefillMany([prompts[0]], []), /prefillMany: 1 prompts for 0 caches/);
  await assert.rejects(mini.prefillMany([prompts[0], new Int32Array(0)], [mini.newCache(), mini.newCache()]), /prefillMany: prompt 1 has no token ids/);
});
