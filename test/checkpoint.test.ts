import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { test } from "node:test";
import { Checkpoint } from "../engine/checkpoint.ts";
import { CheckpointError } from "../engine/errors.ts";
import { tensorShapes } from "../engine/plan.ts";
import { SafetensorsFile, writeSafetensors } from "../engine/safetensors.ts";
import { Tensor } from "../engine/tensor.ts";

const TINY = "test/fixtures/golden/tiny-m1";
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), "m1-checkpoint-"));
process.on("exit", () => fs.rmSync(tmp, { recursive: true, force: true }));

/** Every stored tensor of the tiny-m1 fixture, by name. */
function tinyTensors(): Record<string, Tensor> {
  const st = SafetensorsFile.open(`${TINY}/model.safetensors`);
  const out = Object.fromEntries(st.names().map((n) => [n, st.read(n)]));
  st.close();
  return out;
}

/** A fresh checkpoint directory with `config` (a file to copy) and optional extra files. */
function makeDir(name: string, configFile = `${TINY}/config.json`): string {
  const dir = path.join(tmp, name);
  fs.mkdirSync(dir);
  fs.copyFileSync(configFile, path.join(dir, "config.json"));
  return dir;
}

function rejects(fn: () => unknown, ...mentions: string[]): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof CheckpointError, `expected a CheckpointError, got ${e}`);
    for (const m of mentions) assert.ok(e.message.includes(m), `message should mention ${m}: ${e.message}`);
    return true;
  });
}

test("single-file checkpoint: names, shapes from the config, data", () => {
  const ckpt = Checkpoint.open(TINY);
  const shapes = tensorShapes(ckpt.config);
  assert.deepEqual(ckpt.names().sort(), [...shapes.keys()].sort());
  const ref = tinyTensors();
  for (const [name, shape] of shapes) {
    const t = ckpt.weight(name, shape);
    assert.deepEqual(t.data, ref[name].data, name);
    assert.deepEqual(ckpt.info(name), { name, dtype: "F32", shape, file: path.join(TINY, "model.safetensors") });
  }
  assert.equal(ckpt.get("model.norm.weight"), ckpt.get("model.norm.weight"), "resident tensors are reused");
  assert.deepEqual(ckpt.shardsForLayer(3), [path.join(TINY, "model.safetensors")]);
  ckpt.close();
  rejects(() => ckpt.get("model.norm.weight"), "closed");
});

test("the BF16 demo checkpoint loads", () => {
  const ckpt = Checkpoint.open("engine/checkpoints/mini-40k");
  for (const [name, shape] of tensorShapes(ckpt.config)) assert.equal(ckpt.weight(name, shape).dtype, "BF16");
  ckpt.close();
});

test("a sharded copy (3 files + index) gives the same tensors", () => {
  const dir = makeDir("sharded");
  const ref = tinyTensors();
  const names = Object.keys(ref);
  const weightMap: Record<string, string> = {};
  for (let s = 0; s < 3; s++) {
    const file = `model-0000${s}-of-00003.safetensors`;
    const part = names.filter((_, i) => i % 3 === s);
    writeSafetensors(path.join(dir, file), Object.fromEntries(part.map((n) => [n, ref[n]])));
    for (const n of part) weightMap[n] = file;
  }
  fs.writeFileSync(path.join(dir, "model.safetensors.index.json"), JSON.stringify({ metadata: {}, weight_map: weightMap }));

  const ckpt = Checkpoint.open(dir);
  assert.deepEqual(ckpt.names().sort(), names.sort());
  for (const n of names) assert.deepEqual(ckpt.get(n).data, ref[n].data, n);
  const layer2 = [...new Set(names.filter((n) => n.startsWith("model.layers.2.")).map((n) => path.join(dir, weightMap[n])))].sort();
  assert.deepEqual(ckpt.shardsForLayer(2), layer2);
  assert.equal(ckpt.info(names[4]).file, path.join(dir, weightMap[names[4]]));
  rejects(() => ckpt.get("model.layers.0.mlp.nothing"), '"model.layers.0.mlp.nothing"', dir, "model.safetensors.index.json");
  ckpt.close();

  // An index naming a shard that is not there.
  const broken = makeDir("missing-shard");
  fs.copyFileSync(path.join(dir, "model-00000-of-00003.safetensors"), path.join(broken, "model-00000-of-00003.safetensors"));
  fs.writeFileSync(path.join(broken, "model.safetensors.index.json"), JSON.stringify({ weight_map: weightMap }));
  rejects(() => Checkpoint.open(broken), path.join(broken, "model.safetensors.index.json"), "model-00001-of-00003.safetensors", "does not exist");

  // An index naming a shard that lacks the tensor.
  const lying = makeDir("lying-index");
  for (const f of fs.readdirSync(dir).filter((f) => f.endsWith(".safetensors"))) fs.copyFileSync(path.join(dir, f), path.join(lying, f));
  const moved = { ...weightMap, "model.norm.weight": weightMap["model.norm.weight"] === "model-00000-of-00003.safetensors" ? "model-00001-of-00003.safetensors" : "model-00000-of-00003.safetensors" };
  fs.writeFileSync(path.join(lying, "model.safetensors.index.json"), JSON.stringify({ weight_map: moved }));
  rejects(() => Checkpoint.open(lying).get("model.norm.weight"), '"model.norm.weight"', "does not contain it");
});

test("residentBudgetBytes bounds the resident set while iterating every tensor", () => {
  const budget = 100_000;
  const ckpt = Checkpoint.open(TINY, { residentBudgetBytes: budget });
  const norm = ckpt.get("model.norm.weight");
  let largest = 0;
  for (const n of ckpt.names()) {
    largest = Math.max(largest, ckpt.get(n).nbytes);
    assert.ok(ckpt.residentBytes() <= budget, `${ckpt.residentBytes()} resident after ${n}`);
    assert.equal(ckpt.get("model.norm.weight"), norm, "a recently used tensor stays resident");
  }
  assert.ok(largest > budget / 4, "the budget really forces evictions");

  ckpt.evict();
  assert.equal(ckpt.residentBytes(), 0);
  ckpt.get("model.norm.weight");
  ckpt.get("model.layers.0.input_layernorm.weight");
  assert.equal(ckpt.residentBytes(), 2 * 64 * 4);
  ckpt.evict("model.layers.");
  assert.equal(ckpt.residentBytes(), 64 * 4);
  ckpt.close();

  const tooSmall = Checkpoint.open(TINY, { residentBudgetBytes: 100 });
  assert.equal(tooSmall.get("model.norm.weight").numel, 64, "a tensor over the budget is returned, not kept");
  assert.equal(tooSmall.residentBytes(), 0);
  tooSmall.close();

  const unbounded = Checkpoint.open(TINY);
  const total = unbounded.names().reduce((s, n) => s + unbounded.get(n).nbytes, 0);
  assert.equal(unbounded.residentBytes(), total);
  unbounded.close();
});

test("transformers-v5 fused experts give identical per-expert tensors", () => {
  const dir = makeDir("fused", `${TINY}/native-config.json`);
  const ref = tinyTensors();
  const ckptRef = Checkpoint.open(TINY);
  const { numLayers, numExperts: E, intermediateSize: F, hiddenSize: H } = ckptRef.config;
  const out: Record<string, Tensor> = {};
  for (const [name, t] of Object.entries(ref)) if (!name.includes(".block_sparse_moe.")) out[name] = t;
  for (let l = 0; l < numLayers; l++) {
    const p = `model.layers.${l}.`;
    const gateUp = new Float32Array(E * 2 * F * H);
    const down = new Float32Array(E * H * F);
    for (let e = 0; e < E; e++) {
      const x = `${p}block_sparse_moe.experts.${e}.`;
      gateUp.set(ref[`${x}w1.weight`].f32, e * 2 * F * H);
      gateUp.set(ref[`${x}w3.weight`].f32, (e * 2 + 1) * F * H);
      down.set(ref[`${x}w2.weight`].f32, e * H * F);
    }
    out[`${p}mlp.gate.weight`] = ref[`${p}block_sparse_moe.gate.weight`];
    out[`${p}mlp.experts.gate_up_proj`] = new Tensor("F32", [E, 2 * F, H], gateUp);
    out[`${p}mlp.experts.down_proj`] = new Tensor("F32", [E, H, F], down);
    out[`${p}self_attn.slope_rate`] = new Tensor("F32", [4, 1, 1], new Float32Array(4)); // native buffer, ignored
  }
  writeSafetensors(path.join(dir, "model.safetensors"), out);

  const fused = Checkpoint.open(dir);
  assert.equal(fused.config.format, "native");
  assert.deepEqual(fused.names().sort(), ckptRef.names().sort());
  for (const [name, shape] of tensorShapes(fused.config)) {
    assert.deepEqual(fused.weight(name, shape).data, ref[name].data, name);
  }
  assert.deepEqual(fused.info("model.layers.1.block_sparse_moe.experts.3.w3.weight").shape, [F, H]);
  assert.equal(fused.has("model.layers.0.self_attn.slope_rate"), false);
  fused.close();
  ckptRef.close();

  // A fused tensor whose expert count disagrees with the config is reported by name.
  const bad = makeDir("fused-bad", `${TINY}/native-config.json`);
  writeSafetensors(path.join(bad, "model.safetensors"), {
    "model.layers.0.mlp.experts.down_proj": new Tensor("F32", [2, H, F], new Float32Array(2 * H * F)),
  });
  rejects(() => Checkpoint.open(bad).get("model.layers.0.block_sparse_moe.experts.0.w2.weight"),
    '"model.layers.0.mlp.experts.down_proj"', path.join(bad, "model.safetensors"), `[2,${H},${F}]`);
});

test("tied embeddings serve lm_head from the embedding", () => {
  const dir = path.join(tmp, "tied");
  fs.mkdirSync(dir);
  const config = { ...JSON.parse(fs.readFileSync(`${TINY}/config.json`, "utf8")), tie_word_embeddings: true };
  fs.writeFileSync(path.join(dir, "config.json"), JSON.stringify(config));
  const ref = tinyTensors();
  delete ref["lm_head.weight"];
  writeSafetensors(path.join(dir, "model.safetensors"), ref);
  const ckpt = Checkpoint.open(dir);
  assert.ok(ckpt.has("lm_head.weight"));
  assert.ok(!ckpt.names().includes("lm_head.weight"));
  assert.equal(ckpt.weight("lm_head.weight", [512, 64]), ckpt.get("model.embed_tokens.weight"));
  assert.equal(ckpt.info("lm_head.weight").name, "lm_head.weight");
  ckpt.close();
});

test("checkpoint errors name the tensor, file and directory", () => {
  const ckpt = Checkpoint.open(TINY);
  rejects(() => ckpt.get("model.layers.99.input_layernorm.weight"), '"model.layers.99.input_layernorm.weight"', `checkpoint ${TINY}`);
  rejects(() => ckpt.weight("model.norm.weight", [32]),
    `tensor "model.norm.weight" in ${path.join(TINY, "model.safetensors")} has shape [64], expected [32]`);
  ckpt.close();

  const ints = makeDir("int-weight");
  writeSafetensors(path.join(ints, "model.safetensors"), { "model.norm.weight": new Tensor("I32", [64], new Int32Array(64)) });
  rejects(() => Checkpoint.open(ints).weight("model.norm.weight", [64]), '"model.norm.weight"', "dtype I32", "F32, BF16, F16");

  const empty = makeDir("no-weights");
  rejects(() => Checkpoint.open(empty), empty, "model.safetensors", "model.safetensors.index.json");
  const noConfig = path.join(tmp, "no-config");
  fs.mkdirSync(noConfig);
  rejects(() => Checkpoint.open(noConfig), noConfig, "config.json");
  rejects(() => Checkpoint.open(path.join(tmp, "absent")), path.join(tmp, "absent"), "not found");

  const dup = makeDir("duplicate");
  const ref = tinyTensors();
  writeSafetensors(path.join(dup, "model.safetensors"), {
    "model.layers.0.block_sparse_moe.gate.weight": ref["model.layers.0.block_sparse_moe.gate.weight"],
    "model.layers.0.mlp.gate.weight": ref["model.layers.0.block_sparse_moe.gate.weight"],
  });
  rejects(() => Checkpoint.open(dup), "stored twice", '"model.layers.0.block_sparse_moe.gate.weight"');
});
