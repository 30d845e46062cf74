/** Direct logit attribution: the terms rebuild the final residual and sum to the logit difference (scales frozen). */
import { test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { Model, Trace } from "../engine/index.ts";
import { ROOT, TINY } from "./helpers.ts";

const MINI = join(ROOT, "engine", "checkpoints", "mini-80k");

for (const [name, dir, prompt, target] of [
  ["mini-80k", MINI, "<s> 4 8 7 + 9 3 5 = <think>", ["7", "2"]],
  ["tiny-m1", TINY, [1, 17, 300, 42, 9, 77, 5, 123, 64, 480, 3, 19, 250, 11, 6, 99, 402, 7, 58, 2], [17, 300]],
] as const) {
  test(`${name}: contributions sum to the logit difference within 1e-5, heads and experts to their layer's term`, async () => {
    const model = await Model.load(dir);
    const trace = await Trace.run(model, name, prompt as string | number[]);
    const hs = model.config.hiddenSize;
    for (const position of [trace.tokens - 1, 3]) {
      const dla = trace.logitAttribution(target as [string, string], position);
      assert.ok(Math.abs(dla.total - dla.actual) < 1e-5, `Σ = ${dla.total}, run = ${dla.actual} at position ${position}`);
      assert.ok(Math.abs(dla.accumulated().at(-1)! - dla.actual) < 1e-5);
      // the stack's vectors rebuild the final residual stream at the position
      const final = trace.get(`blocks.${model.config.numLayers - 1}.hook_resid_post`).f32;
      for (let i = 0; i < hs; i++) {
        const sum = dla.stack.reduce((s, c) => s + c.vector[i], 0);
        assert.ok(Math.abs(sum - final[position * hs + i]) < 1e-4 * Math.max(1, Math.abs(final[position * hs + i])), `dimension ${i}`);
      }
      for (const { layer, attention, mlp } of dla.layers()) {
        const heads = dla.heads()[layer].reduce((s, x) => s + x, 0);
        const experts = dla.experts()[layer].reduce((s, x) => s + x, 0);
        assert.ok(Math.abs(heads - attention) < 1e-5, `layer ${layer}: heads ${heads} vs attention ${attention}`);
        assert.ok(Math.abs(experts - mlp) < 1e-5, `layer ${layer}: experts ${experts} vs MoE ${mlp}`);
      }
      assert.equal(dla.table().numRows, dla.components.length);
    }
  });
}

test("a single token's logit is attributed too, and bad targets are refused", async () => {
  const model = await Model.load(MINI);
  const trace = await Trace.run(model, "mini-80k", "<s> 1 2 + 3 4 = <think>");
  const dla = trace.logitAttribution("4");
  assert.ok(Math.abs(dla.total - dla.actual) < 1e-5);
  assert.throws(() => trace.logitAttribution(999), /target token id 999 is outside the vocabulary \[0, 32\)/);
  assert.throws(() => trace.logitAttribution("7", 40), /position 40 is outside the 8 positions/);
  const partial = await Trace.run(model, "mini-80k", "<s> 1 2", /resid/);
  assert.throws(() => partial.logitAttribution("7"), /activation "blocks\.7\.hook_mlp_out" was not recorded/);
});
