/** Activation patching sweeps against brute force: one full forward pass of the corrupted prompt per patch. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { Model, Tensor, ActivationPatching, type PatchingResult } from "../engine/index.ts";
import { expertContributions } from "../engine/interp/experts.ts";
import { ROOT } from "./helpers.ts";

const MINI = join(ROOT, "engine", "checkpoints", "mini-80k");
const CLEAN = "<s> 4 8 7 + 9 3 5 = <think>";
const CORRUPT = "<s> 4 8 2 + 9 3 5 = <think>";

async function setup() {
  const model = await Model.load(MINI);
  const [seven, two] = ["7", "2"].map((c) => model.tokenizer!.encode(c, { addSpecialTokens: false })[0]);
  const metric = (l: Float32Array) => l[seven] - l[two];
  const ap = await ActivationPatching.prepare(model, CLEAN, CORRUPT, metric);
  const cleanRun = await model.runWithCache(model.promptIds(CLEAN));
  const corruptIds = Array.from(model.promptIds(CORRUPT));
  const n = corruptIds.length;
  const vocab = model.config.vocabSize;
  /** the metric of one full corrupted forward pass with `hooks` */
  const brute = async (hooks: [string, (v: Tensor) => Tensor | void][]) => {
    const { logits } = await model.hooks.with(hooks, () => model.forward(corruptIds));
    return metric(logits.f32.subarray((n - 1) * vocab));
  };
  return { model, ap, cleanRun, corruptIds, n, brute, metric };
}

function close(result: PatchingResult, row: number, column: number, expected: number): void {
  const got = result.at(row, column);
  assert.ok(Math.abs(got - expected) <= 2e-4 * Math.max(1, Math.abs(expected)), `${result.spec.title} at (${row}, ${column}): ${got} vs brute force ${expected}`);
}

test("(layer × position) sweeps equal one patched forward per cell, for residual and attention-internal hooks", async () => {
  const { ap, cleanRun, n, brute } = await setup();
  assert.ok(ap.clean > 0 && ap.corrupted < 0, "the clean prompt prefers 7, the corrupted one 2");
  for (const hook of ["hook_resid_pre", "attn.hook_z"]) {
    const result = await ap.positions(hook);
    for (const l of result.spec.rows) {
      const name = `blocks.${l}.${hook}`;
      const clean = cleanRun.activations.get(name).f32;
      const width = clean.length / n;
      for (let p = 0; p < n; p++) {
        const expected = await brute([[name, (v) => { v.f32.set(clean.subarray(p * width, (p + 1) * width), p * width); }]]);
        close(result, l, p, expected);
      }
    }
    assert.equal(result.table().numRows, result.spec.rows.length * n);
  }
  const resid = await ap.positions("hook_resid_pre");
  assert.ok(Math.abs(resid.normalized(resid.at(0, 3)) - 1) < 1e-3, "patching the differing token's embedding restores the clean run");
  assert.ok(Math.abs(resid.normalized(resid.at(0, 1))) < 1e-6, "patching an equal position changes nothing");
});

test("(layer × head) and (layer × expert) sweeps equal brute-force patches at every position", async () => {
  const { model, ap, cleanRun, n, brute } = await setup();
  const { numHeads: nh, headDim: d, numExperts: ne, hiddenSize: hs, layerTypes } = model.config;
  const heads = await ap.heads();
  const experts = await ap.experts();
  for (let l = 0; l < layerTypes.length; l++) {
    const name = `blocks.${l}.${layerTypes[l] === "softmax" ? "attn.hook_z" : "lightning.hook_o"}`;
    const clean = cleanRun.activations.get(name).f32;
    for (let h = 0; h < nh; h++) {
      close(heads, l, h, await brute([[name, (v) => {
        const x = v.f32;
        for (let t = 0; t < n; t++) x.set(clean.subarray((t * nh + h) * d, (t * nh + h + 1) * d), (t * nh + h) * d);
      }]]));
    }
    const cleanShares = expertContributions(model.config, l, (x) => cleanRun.activations.get(x));
    for (let e = 0; e < ne; e++) {
      // the corrupted run's own expert shares, recorded in the same pass, swapped for the clean run's
      const own = new Map<string, Tensor>();
      const record = (v: Tensor, ctx: { name: string }) => void own.set(ctx.name, new Tensor(v.dtype, v.shape, v.data.slice()));
      const expected = await brute([
        [`blocks.${l}.moe.hook_expert_out`, (v) => record(v, { name: `blocks.${l}.moe.hook_expert_out` })],
        [`blocks.${l}.moe.hook_topk_idx`, (v) => record(v, { name: `blocks.${l}.moe.hook_topk_idx` })],
        [`blocks.${l}.moe.hook_topk_weights`, (v) => record(v, { name: `blocks.${l}.moe.hook_topk_weights` })],
        [`blocks.${l}.hook_mlp_out`, (v) => {
          const mine = expertContributions(model.config, l, (x) => own.get(x)!)[e];
          const x = v.f32;
          for (let i = 0; i < n * hs; i++) x[i] += cleanShares[e][i] - mine[i];
        }],
      ]);
      close(experts, l, e, expected);
    }
  }
});

test("lightning state patches equal a corrupted prefix, the clean state swapped in, and the rest of the prompt", async () => {
  const { model, ap, corruptIds, n, metric } = await setup();
  const cleanIds = Array.from(model.promptIds(CLEAN));
  const result = await ap.lightningState();
  const vocab = model.config.vocabSize;
  for (const l of result.spec.rows) {
    for (const p of result.spec.columns) {
      const cleanState = (await model.forward(cleanIds.slice(0, p + 1))).cache.lightning[l]!;
      const { cache } = await model.forward(corruptIds.slice(0, p + 1));
      cache.lightning[l]!.set(cleanState);
      const { logits } = await model.forward(corruptIds.slice(p + 1), { cache });
      close(result, l, p, metric(logits.f32.subarray((n - p - 2) * vocab)));
    }
  }
});

test("patching refuses prompts of different lengths, unknown hook points and rows that are not tokens", async () => {
  const model = await Model.load(MINI);
  const metric = (l: Float32Array) => l[0];
  await assert.rejects(ActivationPatching.prepare(model, "<s> 1 2", "<s> 1", metric), /same length: the clean prompt has 3 tokens, the corrupted one 2/);
  await assert.rejects(ActivationPatching.prepare(model, "<s> 1", "<s> 2", () => NaN), /metric of the clean run is NaN/);
  await assert.rejects(ActivationPatching.prepare(model, "<s> 1 2", "<s> 1 2", metric), /are the same tokens/);
  await assert.rejects(ActivationPatching.prepare(model, "<s> 1 2", "<s> 3 2", () => 1), /the metric is 1 on both runs/);
  const ap = await ActivationPatching.prepare(model, "<s> 1 2", "<s> 3 2", metric);
  await assert.rejects(ap.positions("hook_nothing"), /no layer has a hook "blocks.\{layer\}.hook_nothing"; hook points: hook_resid_pre/);
  await assert.rejects(ap.positions("lightning.hook_state"), /not one per token/);
});
