// The expert threshold skips the dropped experts' work: the MoE computes no row for a slot of weight 0 when only
// the weighted sum is wanted (native.expertRowsComputed counts the rows computed), and the outputs equal the
// zero-weight reference that computes every slot (moeExperts followed by weightedSum).
import { test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import * as m1 from "../native/index.ts";
import { Model } from "../engine/model.ts";
import { applyExpertThreshold } from "../engine/expert-routing.ts";
import { randF32, relErr, ROOT } from "./helpers.ts";

const hidden = 32, F = 48, E = 4, k = 2;
const experts: m1.ExpertWeights[] = Array.from({ length: E }, (_, e) => ({
  w1: { dtype: "F32", data: randF32(F * hidden, 10 + e, -0.5, 0.5), shape: [F, hidden] },
  w3: { dtype: "F32", data: randF32(F * hidden, 20 + e, -0.5, 0.5), shape: [F, hidden] },
  w2: { dtype: "F32", data: randF32(hidden * F, 30 + e, -0.5, 0.5), shape: [hidden, F] },
}));

/** Routes n tokens, then drops the experts below `threshold` (their weights become 0). */
function routed(n: number, threshold: number, seed: number) {
  const x = randF32(n * hidden, seed);
  const idx = new Int32Array(n * k);
  const w = new Float32Array(n * k);
  m1.routerTopk(randF32(n * E, seed + 1, -2, 2), n, E, k, idx, w);
  const dropped = applyExpertThreshold(w, n, k, threshold);
  return { x, idx, w, dropped };
}

/** What `run` returns, and the expert rows the MoE computed meanwhile. */
function counted<T>(run: () => T): { value: T; rows: number } {
  const before = m1.expertRowsComputed();
  const value = run();
  return { value, rows: m1.expertRowsComputed() - before };
}

test("moe computes no row for a slot of weight 0, and equals the zero-weight reference (bitwise on the dot path)", () => {
  for (const n of [1, 6, 300]) {
    const { x, idx, w, dropped } = routed(n, 0.6, 100 + n);
    assert.ok(dropped > 0 && dropped < n * k, `n=${n}: the threshold drops some slots (${dropped})`);
    const skipped = counted(() => m1.moe(x, n, hidden, idx, w, k, experts));
    assert.equal(skipped.rows, n * k - dropped, `n=${n}: rows computed`);
    const slots = counted(() => m1.moeExperts(x, n, hidden, idx, k, experts));
    assert.equal(slots.rows, n * k, `n=${n}: the slots are all computed`);
    const reference = m1.weightedSum(slots.value, w, n, k, hidden);
    // few rows per expert: every row on the dot path whatever its group's size, so the same bits
    if (n <= 8) assert.deepEqual(skipped.value, reference, `n=${n}`);
    // many: an expert with fewer rows may take another GEMM path, the same sums to f32 rounding
    else assert.ok(relErr(skipped.value, reference) < 1e-6, `n=${n}: relative difference ${relErr(skipped.value, reference)}`);
  }
  // without a zero weight, nothing is skipped
  const { x, idx, w } = routed(5, 0, 200);
  assert.equal(counted(() => m1.moe(x, 5, hidden, idx, w, k, experts)).rows, 5 * k);
});

test("generate with expertThreshold skips the dropped experts and gives the tokens and logits of the zero-weight reference", async () => {
  const model = await Model.load(join(ROOT, "engine", "checkpoints", "mini-80k"));
  const { numLayers, topK } = model.config;
  const prompt = "<s> 4 7 + 5 = <think>"; // at most 8 tokens: every MoE group stays on the dot path (same bits)
  assert.ok(model.promptIds(prompt).length <= 8);
  const options = { maxNewTokens: 24, temperature: 1, topP: 0.95, seed: 5, expertThreshold: 0.6, keepLogits: true };
  const run = async () => {
    const gen = model.generate(prompt, options);
    const logits: Float32Array[] = [];
    const rows = -m1.expertRowsComputed();
    for await (const t of gen) logits.push(t.logits!);
    return { ids: gen.ids, logits, rows: rows + m1.expertRowsComputed(), routing: gen.routing! };
  };
  const skipping = await run();
  assert.ok(skipping.routing.dropped > 0, "the threshold drops experts");
  const slots = skipping.routing.positions * numLayers * topK;
  assert.equal(skipping.rows, slots - skipping.routing.dropped, "rows computed: every slot but the dropped ones");
  // the reference: a hook on the experts' outputs makes the layer compute every slot, then the weighted sum
  const remove = model.hooks.add((name) => name.endsWith(".moe.hook_expert_out"), () => {});
  try {
    const reference = await run();
    assert.equal(reference.rows, slots, "the reference computes every slot");
    assert.equal(reference.routing.dropped, skipping.routing.dropped);
    assert.deepEqual(skipping.ids, reference.ids);
    assert.deepEqual(skipping.logits, reference.logits);
  } finally {
    remove();
  }
});
