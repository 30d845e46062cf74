/**
 * The precision finding (engine/rl/precision.ts) against brute-force references: after training steps, the rollout
 * side must be a plain forward pass of a model whose weights are the masters rounded to BF16 explicitly (its head
 * recomputed by hand in double precision and rounded to BF16 for the BF16 head), and the training side a plain
 * forward pass of the masters as the trainer saves them.
 */
import { test } from "node:test";
import assert from "node:assert/strict";
import fs from "node:fs";
import { join } from "node:path";
import { Model } from "../engine/index.ts";
import { Tensor, bf16ToF32, f32ToBf16 } from "../engine/tensor.ts";
import { SafetensorsFile, writeSafetensors } from "../engine/safetensors.ts";
import { InputError } from "../engine/errors.ts";
import { correlation } from "../engine/statistics.ts";
import { rollout } from "../engine/rl/rollout.ts";
import { additionProblem } from "../engine/rl/tasks.ts";
import { masterModel, precisionComparison, MOVED_PROBABILITY, type PrecisionAgreement } from "../engine/rl/precision.ts";
import { ROOT, tempDir } from "./helpers.ts";

const MINI = join(ROOT, "engine", "checkpoints", "mini-40k");
const round = (x: number) => bf16ToF32(f32ToBf16(x));

/** A model from the masters in the trainer's state file, each value mapped by `f`, as an F32 checkpoint. */
async function referenceModel(stateFile: string, dir: string, f: (x: number) => number): Promise<Model> {
  fs.mkdirSync(dir);
  for (const name of ["config.json", "tokenizer.json", "tokenizer_config.json"]) fs.copyFileSync(join(MINI, name), join(dir, name));
  const state = SafetensorsFile.open(stateFile);
  const tensors: Record<string, Tensor> = {};
  for (const name of state.names().filter((n) => n.startsWith("master."))) {
    const t = state.read(name);
    tensors[name.slice("master.".length)] = new Tensor("F32", [...t.shape], t.f32.map(f));
  }
  state.close();
  writeSafetensors(join(dir, "model.safetensors"), tensors);
  return Model.load(dir);
}

/** p(token) of each completion token from log-softmax in double precision over a row of logits. */
function probability(row: ArrayLike<number>, id: number): number {
  let z = 0;
  for (let v = 0; v < row.length; v++) z += Math.exp(row[v] - row[id]);
  return 1 / z;
}

/** p of each completion token by a plain forward pass (head f32), or with the head by hand: BF16 input, double
 *  accumulation, logits rounded to BF16. */
async function plainProbabilities(model: Model, seqs: { prompt: number[]; completion: number[] }[], head: "f32" | "bf16"): Promise<number[]> {
  const V = model.config.vocabSize, H = model.config.hiddenSize;
  const W = model.checkpoint.get("lm_head.weight").toFloat32();
  const out: number[] = [];
  for (const s of seqs) {
    const ids = [...s.prompt, ...s.completion];
    const r = await model.runWithCache(ids, (name) => name === "ln_final.hook_normalized");
    const normed = r.activations.get("ln_final.hook_normalized").f32;
    s.completion.forEach((id, t) => {
      const row = s.prompt.length - 1 + t;
      let logits: ArrayLike<number> = r.logits.f32.subarray(row * V, (row + 1) * V);
      if (head === "bf16") {
        logits = Array.from({ length: V }, (_, v) => {
          let dot = 0;
          for (let k = 0; k < H; k++) dot += round(normed[row * H + k]) * W[v * H + k];
          return round(dot);
        });
      }
      out.push(probability(logits, id));
    });
  }
  return out;
}

const maxDiff = (a: number[], b: number[]) => a.reduce((m, x, i) => Math.max(m, Math.abs(x - b[i])), 0);

function checkStatistics(a: PrecisionAgreement): void {
  const d = a.rollout.map((p, i) => Math.abs(p - a.training[i]));
  assert.ok(Math.abs(a.meanAbsDifference - d.reduce((s, x) => s + x, 0) / d.length) < 1e-15);
  assert.equal(a.maxDifference, Math.max(...d));
  assert.equal(a.shareMoved, d.filter((x) => x > MOVED_PROBABILITY).length / d.length);
  assert.equal(a.correlation, correlation(a.rollout, a.training));
}

test("precision comparison: rollout side = the masters rounded to BF16 (head f32 or BF16), training side = the f32 masters", async () => {
  const { dir, cleanup } = tempDir("m1-precision-");
  try {
    const mini = await Model.load(MINI);
    const problems = [additionProblem("123", "456"), additionProblem("98765", "43210")];
    const outs = await rollout(mini, problems.map((p) => p.prompt), { groupSize: 2, seed: 1, temperature: 1, thinkingBudget: 40, maxNewTokens: 48 });
    const tokens = outs.reduce((s, o) => s + o.completion.length, 0);
    const trainer = mini.trainer({ lr: 1e-3, betas: [0.9, 0.95], eps: 1e-15 });

    // step 0: the masters are the BF16 weights, so with the f32 head both sides agree to rounding
    const at0 = await precisionComparison(mini, await masterModel(trainer, join(dir, "masters-0")), outs);
    assert.equal(at0.tokens, tokens);
    assert.ok(at0.f32Head.maxDifference < 1e-6, `step 0, f32 head: ${at0.f32Head.maxDifference}`);
    const rolled = outs.flatMap((o) => o.logprobs.map(Math.exp));
    assert.ok(maxDiff(at0.f32Head.rollout, rolled) < 1e-6, "the f32-head rollout side is what the rollout engine recorded");
    assert.ok(at0.bf16Head.maxDifference > 0 && at0.bf16Head.maxDifference < 0.05, `step 0, BF16 head: ${at0.bf16Head.maxDifference}`);

    for (let s = 0; s < 3; s++) await trainer.step(outs.map((o) => [...o.prompt, ...o.completion]));
    const after = await precisionComparison(mini, await masterModel(trainer, join(dir, "masters-3")), outs);
    assert.equal(mini.hooks.size, 0, "the BF16-head hooks are removed");
    for (const a of [after.bf16Head, after.f32Head]) checkStatistics(a);

    const state = join(dir, "trainer.safetensors");
    trainer.saveState(state);
    const rounded = await referenceModel(state, join(dir, "rounded"), round);
    const masters = await referenceModel(state, join(dir, "masters"), (x) => x);
    const refRolloutF32 = await plainProbabilities(rounded, outs, "f32");
    const refRolloutBf16 = await plainProbabilities(rounded, outs, "bf16");
    const refTraining = await plainProbabilities(masters, outs, "f32");
    assert.ok(maxDiff(after.f32Head.rollout, refRolloutF32) < 1e-6, "rollout side, f32 head");
    assert.ok(maxDiff(after.f32Head.training, refTraining) < 1e-7, "training side");
    assert.deepEqual(after.bf16Head.training, after.f32Head.training);
    // the hand-made BF16 head accumulates in double: a logit near a BF16 rounding boundary may round the other way
    const close = after.bf16Head.rollout.filter((p, i) => Math.abs(p - refRolloutBf16[i]) < 1e-6).length;
    assert.ok(close >= 0.95 * tokens, `rollout side, BF16 head: ${close} of ${tokens} tokens within 1e-6`);
    assert.ok(maxDiff(after.bf16Head.rollout, refRolloutBf16) < 0.01, "rollout side, BF16 head");
    // the test can tell the two weight sets apart: the masters' updates below a BF16 step move probabilities
    assert.ok(maxDiff(refRolloutF32, refTraining) > 1e-6, "the masters differ from their BF16 rounding");
    assert.ok(after.f32Head.maxDifference > 1e-6, `after 3 steps, f32 head: ${after.f32Head.maxDifference}`);
  } finally {
    cleanup();
  }
});

test("bad input is refused: a directory that already holds files, sequences with nothing to score", async () => {
  const { dir, cleanup } = tempDir("m1-precision-");
  try {
    const mini = await Model.load(MINI);
    const trainer = mini.trainer({ lr: 1e-3 });
    fs.writeFileSync(join(dir, "keep.txt"), "x");
    await assert.rejects(masterModel(trainer, dir), (e: Error) => e instanceof InputError && e.message.includes(dir));
    await assert.rejects(precisionComparison(mini, mini, [{ prompt: [1, 5], completion: [] }]), (e: Error) => e instanceof InputError && /no completion tokens/.test(e.message));
    await assert.rejects(precisionComparison(mini, mini, [{ prompt: [1], completion: [5] }, { prompt: [], completion: [5] }]), (e: Error) => e instanceof InputError && /sequence 1 has no prompt/.test(e.message));
  } finally {
    cleanup();
  }
});
