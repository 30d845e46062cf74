// Saving a checkpoint whose weights were changed in memory: same files, names, dtypes and layout as the source,
// the changed values in place, identical logits after loading, a weight diff showing exactly the change, and
// clear refusals that leave nothing half-written.
import { test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import path from "node:path";
import { Model } from "../engine/model.ts";
import { SafetensorsFile } from "../engine/safetensors.ts";
import { diffWeights } from "../engine/analysis/weights.ts";
import { saveCheckpoint } from "../engine/train/save.ts";
import { bf16ToF32, f32ToBf16 } from "../engine/tensor.ts";
import { CheckpointError } from "../engine/errors.ts";
import { ROOT, TINY, tempDir } from "./helpers.ts";

const MINI_40K = path.join(ROOT, "engine", "checkpoints", "mini-40k");
const CHANGED = ["model.layers.0.self_attn.qkv_proj.weight", "model.layers.1.post_attention_layernorm.weight", "model.layers.1.block_sparse_moe.experts.2.w2.weight", "lm_head.weight"];

/** Adds a deterministic change to each tensor in CHANGED (in the tensor's dtype); returns Σ(new − old)² per name. */
function change(model: Model): Map<string, number> {
  const sq = new Map<string, number>();
  for (const name of CHANGED) {
    const t = model.checkpoint.hold(name);
    let s = 0;
    for (let i = 0; i < t.data.length; i += 3) {
      const delta = 0.01 * Math.sin(i);
      if (t.dtype === "F32") {
        const d = t.data as Float32Array;
        const old = d[i];
        d[i] = old + delta;
        s += (d[i] - old) ** 2;
      } else {
        const d = t.data as Uint16Array;
        const old = bf16ToF32(d[i]);
        d[i] = f32ToBf16(old + delta);
        s += (bf16ToF32(d[i]) - old) ** 2;
      }
    }
    sq.set(name, s);
  }
  model.checkpoint.changed();
  return sq;
}

for (const [label, dir] of [["tiny-m1 (f32)", TINY], ["mini-40k (bf16)", MINI_40K]] as const) {
  test(`save ${label}: loads with the changed logits, same layout, weight diff shows exactly the change`, async (t) => {
    const { dir: tmp, cleanup } = tempDir();
    t.after(cleanup);
    const model = await Model.load(dir);
    const ids = [1, 5, 9, 3, 7, 2, 11, 4];
    const before = (await model.forward(ids)).logits.data as Float32Array;
    const changedSq = change(model);
    const after = (await model.forward(ids)).logits.data as Float32Array;
    assert.notDeepEqual(after, before, "the change moves the logits");

    const out = path.join(tmp, "trained");
    saveCheckpoint(model.checkpoint, out);
    const saved = await Model.load(out);
    assert.deepEqual((await saved.forward(ids)).logits.data, after);

    assert.deepEqual(fs.readdirSync(out).sort(), fs.readdirSync(dir).sort());
    for (const f of fs.readdirSync(dir).filter((f) => !f.endsWith(".safetensors"))) {
      assert.ok(fs.readFileSync(path.join(out, f)).equals(fs.readFileSync(path.join(dir, f))), `${f} copied`);
    }
    const a = SafetensorsFile.open(path.join(dir, "model.safetensors"));
    const b = SafetensorsFile.open(path.join(out, "model.safetensors"));
    assert.deepEqual(b.names(), a.names());
    for (const n of a.names()) assert.deepEqual(b.info(n), a.info(n));
    a.close();
    b.close();

    const original = (await Model.load(dir)).checkpoint;
    const diff = await diffWeights(original, saved.checkpoint);
    // the model in memory diffs the same as its saved copy (held tensors are read from memory)
    const inMemory = await diffWeights(original, model.checkpoint);
    assert.deepEqual(inMemory.tensors.map((d) => d.diffSq), diff.tensors.map((d) => d.diffSq));
    const nonzero = diff.tensors.filter((d) => d.diffSq > 0).map((d) => d.name).sort();
    const tiedAlias = (n: string) => (n === "lm_head.weight" && model.config.tieWordEmbeddings ? "model.embed_tokens.weight" : n);
    assert.deepEqual(nonzero, CHANGED.map(tiedAlias).sort());
    for (const d of diff.tensors.filter((x) => x.diffSq > 0)) {
      const expected = changedSq.get(CHANGED.find((n) => tiedAlias(n) === d.name)!)!;
      assert.ok(Math.abs(d.diffSq - expected) <= 1e-9 * expected, `${d.name}: diff ${d.diffSq} vs change ${expected}`);
    }
  });
}

test("save refuses an unwritable place, a non-empty directory and the source itself, leaving nothing behind", async (t) => {
  const { dir: tmp, cleanup } = tempDir();
  t.after(cleanup);
  const model = await Model.load(TINY);
  change(model);
  const file = path.join(tmp, "a-file");
  fs.writeFileSync(file, "x");
  assert.throws(() => saveCheckpoint(model.checkpoint, path.join(file, "out")), (e) => e instanceof CheckpointError && /a-file\/out: cannot write the checkpoint here \(ENOTDIR/.test(e.message));
  const full = path.join(tmp, "full");
  fs.mkdirSync(full);
  fs.writeFileSync(path.join(full, "keep.txt"), "mine");
  assert.throws(() => saveCheckpoint(model.checkpoint, full), /full: already exists and is not an empty directory/);
  assert.deepEqual(fs.readdirSync(full), ["keep.txt"]);
  assert.throws(() => saveCheckpoint(model.checkpoint, TINY), /cannot save a checkpoint over the directory it was loaded from/);
  assert.deepEqual(fs.readdirSync(tmp).sort(), ["a-file", "full"], "no temporary directory left");
  const empty = path.join(tmp, "empty");
  fs.mkdirSync(empty);
  saveCheckpoint(model.checkpoint, empty); // an empty directory is a fine target
  assert.ok(fs.existsSync(path.join(empty, "model.safetensors")));
});
