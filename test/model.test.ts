/** Hooks, activation cache, caches, sampling, stop conditions, thinking budget and cancellation on the tiny model. */
import { after, test } from "node:test";
import { copyFileSync } from "node:fs";
import assert from "node:assert/strict";
import { Model } from "../engine/model.ts";
import { hookNames } from "../engine/hooks.ts";
import { Tensor } from "../engine/tensor.ts";
import { CheckpointError, InputError, NonFiniteError } from "../engine/errors.ts";
import { SafetensorsFile, writeSafetensors } from "../engine/safetensors.ts";
import { DISPLAY } from "../engine/display.ts";
import { join } from "node:path";
import { ROOT, TINY, relErr, tempDir } from "./helpers.ts";

const model = await Model.load(TINY);
const prompt = [491, 356, 260, 74, 262, 69, 118, 361, 36, 242, 508, 131, 55, 311, 366, 33, 496, 451, 402, 430, 338];

async function logitsOf(ids: number[]): Promise<Float32Array> {
  return (await model.forward(ids)).logits.f32;
}

test("every documented hook name fires in prefill and in decode, with phase and position", async () => {
  const fired = new Map<string, { phase: string; position: number; tokens: number }[]>();
  const remove = model.hooks.add(() => true, (v, ctx) => {
    const list = fired.get(ctx.name) ?? [];
    list.push({ phase: ctx.phase, position: ctx.position, tokens: ctx.tokens });
    fired.set(ctx.name, list);
  });
  try {
    const cache = model.newCache();
    await model.forward(prompt.slice(0, 20), { cache });
    await model.forward([7], { cache });
  } finally {
    remove();
  }
  const expected = hookNames(model.config.layerTypes);
  assert.deepEqual([...fired.keys()].sort(), [...expected].sort());
  for (const name of expected) {
    assert.deepEqual(fired.get(name), [
      { phase: "prefill", position: 0, tokens: 20 },
      { phase: "decode", position: 20, tokens: 1 },
    ], name);
  }
  assert.equal(model.hooks.size, 0);
});

test("a hook that returns a replacement changes the output; returning nothing leaves it bit-identical", async () => {
  const base = await logitsOf(prompt);
  const same = await model.hooks.with([["blocks.3.hook_resid_post", () => undefined]], () => logitsOf(prompt));
  assert.deepEqual(same, base);
  const zeroed = await model.hooks.with(
    [["blocks.3.hook_attn_out", (v) => new Tensor("F32", v.shape, new Float32Array(v.numel))]],
    () => logitsOf(prompt),
  );
  assert.ok(relErr(zeroed, base) > 1e-3, "zeroing layer 3's attention output must move the logits");
  assert.deepEqual(await logitsOf(prompt), base, "the scoped hook is gone afterwards");
});

test("hooks on the lightning state and the attention pattern take effect", async () => {
  const base = await logitsOf(prompt);
  const stateless = await model.hooks.with([["blocks.2.lightning.hook_state", (v) => { (v.f32).fill(0); }]], async () => {
    const cache = model.newCache();
    await model.forward(prompt.slice(0, 10), { cache });
    return (await model.forward(prompt.slice(10), { cache })).logits.f32;
  });
  assert.ok(relErr(stateless, base.subarray(10 * 512)) > 1e-4, "clearing layer 2's state between chunks changes later tokens");
  // a uniform pattern over the visible keys replaces the attention of the softmax layer
  const uniform = await model.hooks.with([["blocks.7.attn.hook_pattern", (v) => {
    const [h, n, total] = v.shape;
    const out = new Float32Array(v.numel);
    for (let r = 0; r < h * n; r++) {
      const visible = total - n + (r % n) + 1;
      for (let j = 0; j < visible; j++) out[r * total + j] = 1 / visible;
    }
    return new Tensor("F32", v.shape, out);
  }]], () => logitsOf(prompt));
  assert.ok(relErr(uniform, base) > 1e-4);
  // reading the pattern alone (analysis path) gives the same logits as the fast path
  const observed = await model.hooks.with([["blocks.7.attn.hook_pattern", () => undefined], ["blocks.7.attn.hook_scores", () => undefined]], () => logitsOf(prompt));
  assert.ok(relErr(observed, base) < 1e-6);
});

test("a replacement of the wrong shape is refused with the hook's name", async () => {
  await assert.rejects(
    model.hooks.with([["blocks.0.hook_resid_mid", () => new Tensor("F32", [1, 2], new Float32Array(2))]], () => logitsOf(prompt)),
    (e: Error) => e instanceof InputError && /blocks\.0\.hook_resid_mid/.test(e.message) && /\[21, 64\]/.test(e.message),
  );
});

test("hooks.with applies to the forward calls inside its body only: analyses running at once do not see each other's hooks", async () => {
  const ids = prompt.slice(0, 12);
  const clean = await logitsOf(ids);
  const zeroed = (v: Tensor) => new Tensor(v.dtype, v.shape, new Float32Array(v.numel));
  const alone = (await model.hooks.with([["blocks.0.hook_attn_out", zeroed]], () => model.forward(ids))).logits.f32;
  assert.ok(relErr(alone, clean) > 1e-3, "the edit changes the output");
  // an editing analysis, a recording analysis and a plain forward interleave between layers on the same model
  const [edited, recorded, plain] = await Promise.all([
    model.hooks.with([["blocks.0.hook_attn_out", zeroed]], () => model.forward(ids)),
    model.runWithCache(ids, /hook_attn_out$/),
    model.forward(ids),
  ]);
  assert.deepEqual(edited.logits.f32, alone);
  assert.deepEqual(recorded.logits.f32, clean);
  assert.deepEqual(plain.logits.f32, clean);
  assert.ok(recorded.activations.get("blocks.0.hook_attn_out").f32.some((x) => x !== 0), "the recording saw the unedited value");
  // scopes nest: the inner body sees the outer hooks too; a model-wide hook is seen everywhere
  let outerFired = 0;
  let globalFired = 0;
  const remove = model.hooks.add("embed", () => void globalFired++);
  try {
    await model.hooks.with([["embed", () => void outerFired++]], () => model.hooks.with([["logits", () => {}]], () => model.forward(ids)));
    await model.forward(ids);
  } finally {
    remove();
  }
  assert.equal(outerFired, 1);
  assert.equal(globalFired, 2);
  assert.equal(model.hooks.size, 0);
});

test("the activation cache records only the names its filter selects", async () => {
  const { activations } = await model.runWithCache(prompt, /^blocks\.\d+\.moe\.hook_topk_idx$/);
  assert.equal(activations.names().length, 8);
  const idx = activations.get("blocks.0.moe.hook_topk_idx");
  assert.equal(idx.dtype, "I32");
  assert.deepEqual(idx.shape, [prompt.length, 2]);
  assert.throws(() => activations.get("blocks.0.hook_resid_pre"), /was not recorded/);
});

test("decode steps through the cache equal full forwards, and the cache's memory is as designed", async () => {
  const full = await logitsOf(prompt);
  const cache = model.newCache();
  await model.forward(prompt.slice(0, 15), { cache });
  for (let t = 15; t < prompt.length; t++) {
    const step = (await model.forward([prompt[t]], { cache })).logits.f32;
    assert.ok(relErr(step, full.subarray(t * 512, (t + 1) * 512)) < 1e-5, `position ${t}`);
  }
  const mem = cache.memory();
  const { numHeads, headDim, numKvHeads } = model.config;
  assert.equal(mem.lightningStateBytes, 7 * numHeads * headDim * headDim * 4);
  assert.equal(mem.kvCacheBytes, prompt.length * 2 * numKvHeads * headDim * 4);
});

test("sampling: same seed gives the same tokens, top-k 1 and temperature 0 are greedy", async () => {
  const run = (o: object) => model.generate(prompt, { maxNewTokens: 12, stopTokens: [], ...o }).result().then((r) => r.ids);
  const greedy = await run({ greedy: true });
  assert.deepEqual(await run({ temperature: 0 }), greedy);
  assert.deepEqual(await run({ topK: 1, seed: 3 }), greedy);
  assert.deepEqual(await run({ topP: 1e-9, seed: 3 }), greedy);
  const a = await run({ temperature: 1.5, seed: 42 });
  assert.deepEqual(await run({ temperature: 1.5, seed: 42 }), a);
  const others = await Promise.all([1, 2, 3, 4].map((seed) => run({ temperature: 1.5, seed })));
  assert.ok(others.some((o) => o.join() !== a.join()), "different seeds give different samples");
});

test("stop tokens end the generation and are reported", async () => {
  const greedy = (await model.generate(prompt, { greedy: true, maxNewTokens: 8, stopTokens: [] }).result()).ids;
  const r = await model.generate(prompt, { greedy: true, maxNewTokens: 8, stopTokens: [greedy[3]] }).result();
  assert.deepEqual(r.ids, greedy.slice(0, greedy.indexOf(greedy[3]) + 1));
  assert.equal(r.stopReason, "stop_token");
});

test("a thinking budget closes the thought after that many tokens", async () => {
  // the tiny model has no tokenizer: two of its ids play <think> and </think>
  const thinkTokens = { open: [5], close: [6] };
  const opts = { greedy: true, maxNewTokens: 10, stopTokens: [] };
  const free = (await model.generate([...prompt, 5], opts).result()).ids;
  assert.ok(!free.slice(0, 5).includes(6), "the unconstrained model does not close the thought by itself");
  const tokens: { id: number; forced: boolean; thinking: boolean }[] = [];
  const gen = model.generate([...prompt, 5], { ...opts, thinkingBudget: 4, thinkTokens });
  for await (const t of gen) tokens.push(t);
  assert.deepEqual(tokens.slice(0, 4).map((t) => t.id), free.slice(0, 4), "four thought tokens as sampled");
  assert.deepEqual(tokens[4], { ...tokens[4], id: 6, forced: true, thinking: true }, "then </think> is forced");
  assert.ok(tokens.slice(5).every((t) => !t.thinking && !t.forced));
  assert.equal(gen.thoughtTokens, 4);
  const unlimited = await model.generate([...prompt, 5], { ...opts, thinkingBudget: 100, thinkTokens }).result();
  assert.deepEqual(unlimited.ids, free, "a budget that is not reached changes nothing");
});

test("an AbortSignal stops a generation; the tokens produced so far are kept", async () => {
  const controller = new AbortController();
  const gen = model.generate(prompt, { greedy: true, maxNewTokens: 50, stopTokens: [], signal: controller.signal });
  await assert.rejects(async () => {
    for await (const t of gen) if (t.index === 2) controller.abort();
  }, (e: Error) => e.name === "AbortError");
  assert.equal(gen.ids.length, 3);
});

test("ids outside the vocabulary are refused, naming the id and its index", async () => {
  await assert.rejects(model.forward([1, 2, 512]), (e: Error) => e instanceof InputError && /token id 512 at index 2/.test(e.message) && /\[0, 512\)/.test(e.message));
  await assert.rejects(model.forward([1, -1]), /token id -1 at index 1/);
  await assert.rejects(model.forward([]), /no token ids/);
});

test("a resident-memory budget streams weights per layer and gives identical logits", async () => {
  const budget = 200_000; // bytes: about one layer's attention plus a few experts of the tiny model (5.6 MB in all)
  const streamed = await Model.load(TINY, { residentBudgetBytes: budget });
  let peak = 0;
  streamed.hooks.add(/hook_resid_post$|hook_mlp_out$|hook_attn_out$/, () => {
    peak = Math.max(peak, streamed.checkpoint.residentBytes());
  });
  const logits = (await streamed.forward(prompt)).logits.data;
  assert.deepEqual(logits, await logitsOf(prompt));
  assert.ok(peak > 0 && peak <= budget, `resident ${peak} bytes under a budget of ${budget}`);
  assert.ok(model.checkpoint.residentBytes() > 4 * budget, "without a budget the whole checkpoint stays resident");
  assert.equal(streamed.nativeLayerCount, 0, "a streamed checkpoint runs op by op");
  const cache = streamed.newCache();
  const step = (await streamed.forward([prompt[0]], { cache })).logits.data;
  assert.deepEqual(step, (await model.forward([prompt[0]])).logits.data);
  assert.equal(streamed.nativeLayerCount, 0);
});

test("a generation displays its text with the thought set apart", async () => {
  const mini = await Model.load(join(ROOT, "engine", "checkpoints", "mini-80k"));
  const gen = mini.generate("<s> 1 2 + 3 4 = <think>", { greedy: true, thinkingBudget: 80 });
  const { text, stopReason } = await gen.result();
  assert.equal(stopReason, "stop_token");
  assert.match(text!, /<\/think> 4 6 <\/s>$/, "12 + 34 = 46");
  const bundle = gen[DISPLAY]();
  assert.match(bundle["text/html"] as string, /<span style="color:#888" title="thought">.*&lt;\/think&gt;<\/span><b> 4 6 &lt;\/s&gt;<\/b>/);
  assert.match(bundle["text/plain"], /stop_token/);
});

test("native paths (the whole model in one call; the layers no hook listens inside) are bit-identical to op by op", async () => {
  const fast = await Model.load(TINY); // no hooks: the whole model as one native call
  const mixed = await Model.load(TINY);
  mixed.hooks.add("blocks.0.hook_resid_pre", () => {}); // layer 0 op by op, the others native
  const slow = await Model.load(TINY);
  slow.hooks.add(/hook_resid_pre$/, () => {}); // a read-only hook in every layer keeps every layer op by op
  const models = [fast, mixed, slow];
  const caches = models.map((m) => m.newCache());
  const steps = [prompt.slice(0, 12), ...prompt.slice(12).map((id) => [id])]; // a 12-token prefill, then decode
  for (const ids of steps) {
    const [lf, lm, ls] = await Promise.all(models.map(async (m, i) => (await m.forward(ids, { cache: caches[i] })).logits.data));
    assert.deepEqual(lf, ls, `whole model, logits after position ${caches[0].position}`);
    assert.deepEqual(lm, ls, `mixed, logits after position ${caches[1].position}`);
  }
  assert.equal(fast.nativeLayerCount, fast.config.numLayers);
  assert.equal(mixed.nativeLayerCount, mixed.config.numLayers - 1);
  assert.equal(slow.nativeLayerCount, 0);
  const [a, , b] = caches;
  a.lightning.forEach((s, l) => s && assert.deepEqual(s, b.lightning[l], `lightning state of layer ${l}`));
  a.kv.forEach((kv, l) => {
    if (!kv) return;
    assert.equal(kv.length, prompt.length);
    const rows = kv.length * kv.rowWidth;
    assert.deepEqual(kv.keys.subarray(0, rows), b.kv[l]!.keys.subarray(0, rows), `keys of layer ${l}`);
    assert.deepEqual(kv.values.subarray(0, rows), b.kv[l]!.values.subarray(0, rows), `values of layer ${l}`);
  });
  for (const logits of ["last", "none"] as const) {
    const got = (await fast.forward(prompt.slice(0, 5), { logits })).logits;
    const want = (await slow.forward(prompt.slice(0, 5), { logits })).logits;
    assert.deepEqual(got.shape, want.shape);
    assert.deepEqual(got.data, want.data, `logits: "${logits}"`);
  }
  // packed sequences in one native call: the ones that take the threads one per sequence (none longer than a
  // thread's share of the rows) and the ones that run one after another, each on all threads
  const ids = (n: number, seed: number) => Array.from({ length: n }, (_, i) => 3 + ((i * 37 + seed * 101) % 500));
  for (const seqs of [[ids(9, 1), ids(12, 2), ids(1, 3), ids(10, 4), ids(11, 5)], [ids(1, 6), ids(40, 7), ids(17, 8)]]) {
    for (const logits of ["all", "last"] as const) {
      const got = await fast.forwardBatch(seqs, { logits });
      const want = await slow.forwardBatch(seqs, { logits });
      got.logits.forEach((t, i) => assert.deepEqual(t.data, want.logits[i].data, `packed sequence ${i} of ${seqs.length}, logits: "${logits}"`));
      got.caches.forEach((c, i) => c.lightning.forEach((s, l) => s && assert.deepEqual(s, want.caches[i].lightning[l], `lightning state ${l} of sequence ${i}`)));
    }
  }
  // evicting the checkpoint drops the native objects (they hold its tensors); the next pass builds them again
  fast.checkpoint.evict();
  assert.equal(fast.nativeLayerCount, 0);
  assert.deepEqual((await fast.forward(prompt)).logits.data, (await slow.forward(prompt)).logits.data);
  assert.equal(fast.nativeLayerCount, fast.config.numLayers);
});

test("a pass whose arrays would be longer than the engine's longest array is refused before allocating", async () => {
  const n = Math.floor(2 ** 32 / model.config.vocabSize) + 1; // logits [n, vocab] past 2^32 floats
  const ids = new Int32Array(n).fill(5);
  await assert.rejects(model.forward(ids), (e: Error) => e instanceof InputError && /forward: 8388609 tokens × vocab_size \(logits of every position\) 512 = 4294967808 floats is more than the longest array the engine makes \(2\^32 floats\); run the prompt in parts on one cache, or with logits: "last"/.test(e.message));
});

test("async hooks are refused up front, a hook returning a promise fails forward and leaves no promise behind", async () => {
  let unhandled: unknown = null;
  const onUnhandled = (reason: unknown) => (unhandled = reason);
  process.on("unhandledRejection", onUnhandled);
  try {
    assert.throws(() => model.hooks.add("blocks.0.hook_resid_pre", (async (v: Tensor) => v) as never),
      (e: Error) => e instanceof InputError && /hooks\.add\("blocks\.0\.hook_resid_pre"\): the hook is an async function, but hooks run synchronously inside forward/.test(e.message));
    assert.equal(model.hooks.size, 0);
    const remove = model.hooks.add("blocks.0.hook_resid_pre", () => Promise.reject(new Error("late")) as never);
    try {
      await assert.rejects(model.forward(prompt), (e: Error) => e instanceof InputError && /hook "blocks\.0\.hook_resid_pre" returned a Promise, but hooks run synchronously/.test(e.message));
    } finally {
      remove();
    }
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(unhandled, null, "no rejection is left unhandled");
    assert.throws(() => model.hooks.add(42 as never, () => {}), /hooks\.add: filter must be a hook name, a RegExp, a predicate or an array of names, got number/);
    assert.throws(() => model.hooks.add("embed", null as never), /hooks\.add: fn must be a function/);
  } finally {
    process.off("unhandledRejection", onUnhandled);
  }
});

test("forward, generate and step name the argument that is wrong", async () => {
  const bad = (p: Promise<unknown> | (() => unknown), message: RegExp) =>
    typeof p === "function" ? assert.throws(p, (e: Error) => e instanceof InputError && message.test(e.message))
      : assert.rejects(p, (e: Error) => e instanceof InputError && message.test(e.message));
  await bad(model.forward(null as never), /forward: ids must be an array of token ids \(or an Int32Array\), got null/);
  await bad(model.forward(42 as never), /forward: ids must be an array of token ids \(or an Int32Array\), got number/);
  await bad(model.forward([1, 2], null as never), /forward: options must be an object, got null/);
  bad(() => model.generate(null as never), /prompt must be text or an array of token ids, got null/);
  bad(() => model.step({} as never), /prompt must be text or an array of token ids, got Object/);
});

/** The tiny checkpoint with the F32 tensors that `poison` names filled with `value`. */
function poisoned(poison: (name: string) => boolean, value: number): string {
  const { dir, cleanup } = tempDir("m1-nonfinite-");
  after(cleanup);
  copyFileSync(join(TINY, "config.json"), join(dir, "config.json"));
  const file = SafetensorsFile.open(join(TINY, "model.safetensors"));
  const tensors = Object.fromEntries(file.names().map((name) => {
    const t = file.read(name);
    return [name, poison(name) ? new Tensor("F32", t.shape, new Float32Array(t.numel).fill(value)) : t];
  }));
  file.close();
  writeSafetensors(join(dir, "model.safetensors"), tensors);
  return dir;
}

test("non-finite logits stop generate, naming where they first appear when hooks watch; the load check names the tensor", async () => {
  const fails = async (m: Model, message: RegExp) =>
    assert.rejects((async () => { for await (const _ of m.generate(prompt, { maxNewTokens: 4 })) void _; })(), (e: Error) => e instanceof NonFiniteError && message.test(e.message));
  const nanEmbedding = await Model.load(poisoned((n) => n === "model.embed_tokens.weight", NaN));
  await fails(nanEmbedding, /generate: the logits of the prompt are not finite \(NaN for token 0\); register any hook/);
  nanEmbedding.hooks.add("logits", () => {});
  await fails(nanEmbedding, /non-finite values first appear at embed$/);
  const dir = poisoned((n) => /^model\.layers\.3\.block_sparse_moe\.experts\.\d+\.w2\.weight$/.test(n), Infinity);
  const infExperts = await Model.load(dir);
  infExperts.hooks.add("logits", () => {});
  await fails(infExperts, /non-finite values first appear at blocks\.3\.hook_resid_post$/);
  await assert.rejects(Model.load(dir, { checkFinite: true }),
    (e: Error) => e instanceof CheckpointError && /model\.layers\.3\.block_sparse_moe\.experts\.0\.w2\.weight in .*model\.safetensors is not finite: Infinity at element 0 of \[64, 96\] \(F32\)/.test(e.message));
  await Model.load(TINY, { checkFinite: true }); // finite weights pass
  const remove = model.hooks.add("blocks.5.hook_attn_out", (v) => void v.f32.fill(NaN, 0, 3));
  try {
    await fails(model, /non-finite values first appear at blocks\.5\.hook_attn_out, written by a hook there$/);
  } finally {
    remove();
  }
  const nanHead = await Model.load(poisoned((n) => n === "lm_head.weight", NaN));
  nanHead.hooks.add("blocks.0.hook_resid_pre", () => {});
  await fails(nanHead, /the embedding and every layer's output were finite: they first appear in the final norm or the LM head$/);
  assert.equal((await model.generate(prompt, { maxNewTokens: 2 }).result()).ids.length, 2, "the model still generates");
});
