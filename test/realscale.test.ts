/**
 * The real M1's checkpoint layout at toy width: the released config's 80-layer pattern and 32 experts, every
 * tensor under its real name in the real shard file the released index names (413 files), at hidden size 32.
 * Loading it streams layer by layer under a resident budget and computes the same logits as loading it whole.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { readFileSync, writeFileSync } from "node:fs";
import { Model } from "../engine/model.ts";
import { parseConfig } from "../engine/config.ts";
import { tensorShapes, layerShards, loadShardIndex } from "../engine/plan.ts";
import { writeSafetensors } from "../engine/safetensors.ts";
import { Tensor, castTensor } from "../engine/tensor.ts";
import { Rng } from "../engine/sampling.ts";
import { M1_FIXTURE, tempDir } from "./helpers.ts";

test("an M1-layout sharded checkpoint streams per layer under a resident budget", async (t) => {
  const { dir, cleanup } = tempDir();
  try {
    const real = JSON.parse(readFileSync(join(M1_FIXTURE, "config.json"), "utf8"));
    const config = { ...real, hidden_size: 32, num_attention_heads: 4, head_dim: 8, num_key_value_heads: 1, rotary_dim: 4, intermediate_size: 16, vocab_size: 256 };
    const index = loadShardIndex(join(M1_FIXTURE, "model.safetensors.index.json"));
    const shapes = tensorShapes(parseConfig(config));
    assert.deepEqual([...shapes.keys()].sort(), Object.keys(index.weight_map).sort(), "every real tensor name, nothing else");

    const rng = new Rng(11);
    const shards = new Map<string, Record<string, Tensor>>();
    let totalSize = 0;
    for (const [name, shape] of shapes) {
      const numel = shape.reduce((a, b) => a * b, 1);
      const f32 = new Tensor("F32", shape, Float32Array.from({ length: numel }, () => (name.endsWith("norm.weight") ? 1 : 0.3) * (rng.next() * 2 - 1)));
      const tensor = name.endsWith("block_sparse_moe.gate.weight") ? f32 : castTensor(f32, "BF16"); // the released dtypes
      totalSize += tensor.nbytes;
      const file = index.weight_map[name];
      shards.set(file, { ...shards.get(file), [name]: tensor });
    }
    for (const [file, tensors] of shards) writeSafetensors(join(dir, file), tensors);
    writeFileSync(join(dir, "model.safetensors.index.json"), JSON.stringify({ metadata: { total_size: totalSize }, weight_map: index.weight_map }));
    writeFileSync(join(dir, "config.json"), JSON.stringify(config));
    assert.equal(shards.size, 413);

    const ids = [5, 17, 3, 200, 42];
    const whole = await Model.load(dir);
    const expected = (await whole.forward(ids)).logits.data;
    const budget = 64 * 1024;
    const streamed = await Model.load(dir, { residentBudgetBytes: budget });
    let peak = 0;
    streamed.hooks.add(/hook_(attn_out|mlp_out)$/, () => { peak = Math.max(peak, streamed.checkpoint.residentBytes()); });
    assert.deepEqual((await streamed.forward(ids)).logits.data, expected);
    t.diagnostic(`checkpoint ${totalSize} bytes in 413 shards; resident peak ${peak} bytes under a ${budget}-byte budget`);
    assert.ok(peak <= budget && totalSize > 20 * budget);
    assert.deepEqual(streamed.checkpoint.shardsForLayer(0).map((f) => f.split("/").pop()), layerShards(index, 0));
  } finally {
    cleanup();
  }
});
