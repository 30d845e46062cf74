import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { test } from "node:test";
import { Checkpoint } from "../engine/checkpoint.ts";
import { loadConfig } from "../engine/config.ts";
import { CheckpointError } from "../engine/errors.ts";
import { countParameters, layerBytes, layerShards, loadShardIndex, tensorShapes } from "../engine/plan.ts";

const M1_DIR = "test/fixtures/minimax-m1";
const m1 = loadConfig(M1_DIR);
const index = loadShardIndex(`${M1_DIR}/model.safetensors.index.json`);

test("M1 parameter counts (docs/architecture.md §6.2)", () => {
  const p = countParameters(m1);
  assert.equal(p.total, 456_089_655_296);
  assert.equal(p.activePerToken, 45_944_920_064);
  assert.equal(p.embedding, 200064 * 6144);
  assert.equal(p.lmHead, 200064 * 6144);
  assert.equal(p.perLayer.length, 80);
  const [lightning, softmax] = [p.perLayer[0], p.perLayer[7]];
  assert.deepEqual(lightning, {
    layer: 0, type: "lightning", attention: 251_666_432, router: 196_608, experts: 5_435_817_984, norms: 12_288,
    total: 251_666_432 + 196_608 + 5_435_817_984 + 12_288,
  });
  assert.equal(softmax.type, "softmax");
  assert.equal(softmax.attention, 113_246_208);
});

test("M1 tensor names and shapes match the shard index exactly", () => {
  const shapes = tensorShapes(m1);
  const indexed = Object.keys(index.weight_map);
  assert.equal(shapes.size, 8243);
  assert.equal(indexed.length, 8243);
  assert.deepEqual([...shapes.keys()].sort(), indexed.sort());
  assert.deepEqual(shapes.get("model.layers.0.self_attn.qkv_proj.weight"), [24576, 6144]);
  assert.deepEqual(shapes.get("model.layers.7.self_attn.k_proj.weight"), [1024, 6144]);
  assert.deepEqual(shapes.get("model.layers.79.block_sparse_moe.experts.31.w2.weight"), [6144, 9216]);
  assert.equal(tensorShapes({ ...m1, tieWordEmbeddings: true }).has("lm_head.weight"), false);
});

test("M1 bytes: BF16 with an F32 router reproduces the index total_size", () => {
  const b = layerBytes(m1);
  assert.equal(b.dtypeSource, "assumed");
  assert.match(b.assumption ?? "", /BF16.*router gate in F32/);
  assert.equal(b.total, 912_210_767_872);
  assert.equal(b.total, index.metadata.total_size);
  assert.equal(b.perLayer[0].bytes, (251_666_432 + 5_435_817_984 + 12_288) * 2 + 196_608 * 4);
  assert.equal(b.embedding, 200064 * 6144 * 2);
});

test("layer shards at real scale", () => {
  const layer0 = layerShards(index, 0);
  const expected = new Set(Object.entries(index.weight_map).filter(([n]) => /^model\.layers\.0\./.test(n)).map(([, f]) => f));
  assert.deepEqual(layer0, [...expected].sort());
  assert.ok(layer0.includes("model-00001-of-00413.safetensors"));
  for (let l = 0; l < 80; l++) {
    const n = layerShards(index, l).length;
    assert.ok(n >= 34 && n <= 36, `layer ${l} spans ${n} shards (docs/architecture.md §6.4: 34–36)`);
  }
  assert.ok(!layerShards(index, 0).includes("model-00000-of-00413.safetensors"), "shard 0 holds only the embedding");
  assert.deepEqual(layerShards(index, 80), []);
});

test("the tiny checkpoint: counts equal the stored tensors, real dtypes from the header", () => {
  const ckpt = Checkpoint.open("test/fixtures/golden/tiny-m1");
  const stored = ckpt.names().reduce((s, n) => s + ckpt.info(n).shape.reduce((a, b) => a * b, 1), 0);
  assert.equal(countParameters(ckpt.config).total, stored);
  const b = layerBytes(ckpt.config, (n) => ckpt.info(n).dtype);
  assert.equal(b.dtypeSource, "checkpoint");
  assert.equal(b.assumption, null);
  assert.equal(b.total, stored * 4);
  ckpt.close();
});

test("loadShardIndex validation", () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "m1-index-"));
  const write = (name: string, text: string) => {
    const file = path.join(dir, name);
    fs.writeFileSync(file, text);
    return file;
  };
  const cases: [string, string, RegExp][] = [
    ["notjson.json", "{", /cannot read shard index/],
    ["nomap.json", '{"metadata": {}}', /"weight_map" object/],
    ["array.json", '{"weight_map": []}', /"weight_map" object/],
    ["number.json", '{"weight_map": {"a.weight": 3}}', /tensor "a\.weight" is 3/],
    ["escape.json", '{"weight_map": {"a.weight": "../x.safetensors"}}', /tensor "a\.weight"/],
  ];
  for (const [name, text, re] of cases) {
    const file = write(name, text);
    assert.throws(() => loadShardIndex(file), (e: unknown) => e instanceof CheckpointError && e.message.includes(file) && re.test(e.message));
  }
  assert.throws(() => loadShardIndex(path.join(dir, "missing.json")), /missing\.json: cannot read/);
  fs.rmSync(dir, { recursive: true });
});
