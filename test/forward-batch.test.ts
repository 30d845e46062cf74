/** Batched forward passes: packed sequences equal one forward call per sequence; nothing crosses sequences. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { Model, Tensor, Trace } from "../engine/index.ts";
import { TINY, relErr } from "./helpers.ts";

const ids = (n: number, seed: number) => Array.from({ length: n }, (_, i) => 3 + ((i * 37 + seed * 101) % 500));
// one token, shorter than a lightning block (16), several blocks with a partial last, and more than a chunk (2048)
const SEQS = [ids(1, 1), ids(9, 2), ids(37, 3), ids(2050, 4), ids(16, 5)];

test("a packed batch equals one forward per sequence (logits and caches) and decoding continues each cache", async () => {
  const model = await Model.load(TINY);
  const batch = await model.forwardBatch(SEQS);
  for (let i = 0; i < SEQS.length; i++) {
    const one = await model.forward(SEQS[i]);
    assert.deepEqual(batch.logits[i].shape, one.logits.shape);
    assert.ok(relErr(batch.logits[i].f32, one.logits.f32) < 1e-5, `sequence ${i}`);
    assert.equal(batch.caches[i].position, SEQS[i].length);
    const next = [7];
    const a = await model.forward(next, { cache: batch.caches[i] });
    const b = await model.forward(next, { cache: one.cache });
    assert.ok(relErr(a.logits.f32, b.logits.f32) < 1e-5, `decode after sequence ${i}`);
  }
  const last = await model.forwardBatch(SEQS, { logits: "last" });
  last.logits.forEach((t, i) => {
    const row = batch.logits[i].f32.subarray((SEQS[i].length - 1) * model.config.vocabSize);
    assert.ok(relErr(t.f32, row) < 1e-6, `last logits of sequence ${i}`);
  });
});

test("batched activations are indexed by prompt and equal the single traces, per-sequence hooks included", async () => {
  const model = await Model.load(TINY);
  const seqs = SEQS.filter((s) => s.length < 100);
  const names = /hook_resid_post|hook_state|hook_pattern|hook_topk_idx|lightning\.hook_q|ln_final/;
  const traces = await Trace.runBatch(model, "tiny", seqs, names);
  for (let i = 0; i < seqs.length; i++) {
    const single = await Trace.run(model, "tiny", seqs[i], names);
    assert.deepEqual(traces[i].activations.names().sort(), single.activations.names().sort());
    for (const name of single.activations.names()) {
      const [a, b] = [traces[i].get(name), single.get(name)];
      assert.deepEqual(a.shape, b.shape, name);
      if (a.dtype === "I32") assert.deepEqual(a.data, b.data, name);
      else assert.ok(relErr(a.toFloat32(), b.toFloat32()) < 1e-5, `${name} of sequence ${i}`);
    }
  }
});

test("a hook that edits one sequence's rows in a packed pass changes that sequence only", async () => {
  const model = await Model.load(TINY);
  const plain = await model.forwardBatch(SEQS.slice(0, 3));
  const edited = await model.hooks.with([["blocks.2.hook_resid_post", (v, ctx) => {
    assert.equal(ctx.sequences?.length, 3);
    const out = v.f32.slice();
    const seq = ctx.sequences![1];
    out.fill(0.5, seq.start * model.config.hiddenSize, (seq.start + seq.tokens) * model.config.hiddenSize);
    return new Tensor("F32", v.shape, out);
  }]], () => model.forwardBatch(SEQS.slice(0, 3)));
  for (const i of [0, 2]) assert.ok(relErr(edited.logits[i].f32, plain.logits[i].f32) < 1e-6);
  assert.ok(relErr(edited.logits[1].f32, plain.logits[1].f32) > 1e-2);
});

test("bad batches are refused with a clear message", async () => {
  const model = await Model.load(TINY);
  await assert.rejects(model.forwardBatch([]), /no sequences/);
  await assert.rejects(model.forwardBatch([[1, 2], []]), /sequence 1 has no token ids/);
  await assert.rejects(model.forwardBatch([[1, 2], [3]], { caches: [model.newCache()] }), /1 caches for 2 sequences/);
  const c = model.newCache();
  await assert.rejects(model.forwardBatch([[1, 2], [3]], { caches: [c, c] }), /its own cache/);
  await assert.rejects(model.forwardBatch([[1, 2], [3, 9999]]), /token id 9999 at index 1/);
});
