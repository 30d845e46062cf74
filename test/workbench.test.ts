/** The workbench session: registry, swap, traces and their views, the stepper, weight diffs. */
import { test } from "node:test";
import assert from "node:assert/strict";
import { join } from "node:path";
import { copyFileSync, mkdirSync, writeFileSync } from "node:fs";
import { Workbench } from "../engine/workbench.ts";
import { Registry } from "../engine/registry.ts";
import { Tensor } from "../engine/tensor.ts";
import { SafetensorsFile, writeSafetensors } from "../engine/safetensors.ts";
import { Checkpoint } from "../engine/checkpoint.ts";
import { diffWeights } from "../engine/analysis/weights.ts";
import { tensorShapes } from "../engine/plan.ts";
import { parseConfig } from "../engine/config.ts";
import { CheckpointError, InputError } from "../engine/errors.ts";
import { DISPLAY } from "../engine/display.ts";
import { Rng } from "../engine/sampling.ts";
import { TINY, relErr, tempDir } from "./helpers.ts";

const PROMPT = "<s> 4 8 2 1 + 9 3 7 5 = <think>";

test("the registry knows the demo pair, explains the real M1 pair, and takes directories", () => {
  const r = Registry.default({});
  assert.deepEqual(r.list().map((e) => e.name), ["mini-40k", "mini-80k", "mini-80k-rl", "MiniMax-M1-40k", "MiniMax-M1-80k"]);
  assert.match(r.resolve("mini-40k").description, /not MiniMax-M1/);
  assert.throws(() => r.resolve("MiniMax-M1-80k"), (e: Error) => e instanceof CheckpointError && /M1_CHECKPOINT_DIR/.test(e.message) && /M1_ENDPOINT/.test(e.message));
  assert.throws(() => r.resolve("no-such-model"), /unknown checkpoint "no-such-model".*mini-40k/);
  assert.equal(r.resolve(TINY).source.kind, "local");
  const withEndpoint = Registry.default({ M1_ENDPOINT: "http://127.0.0.1:9/v1" });
  assert.deepEqual(withEndpoint.resolve("MiniMax-M1-80k").source, { kind: "endpoint", baseUrl: "http://127.0.0.1:9/v1", model: "MiniMaxAI/MiniMax-M1-80k", apiKey: undefined });
});

test("swap keeps the session: prompt, session hooks and traces", async () => {
  const wb = await Workbench.open({ registry: Registry.default({}) });
  const m40 = await wb.load("mini-40k");
  const seen: string[] = [];
  wb.addHook("blocks.7.attn.hook_pattern", (_, ctx) => { seen.push(`${wb.model.name}@${ctx.position}`); });
  const t40 = await wb.trace(PROMPT);
  const m80 = await wb.swap("mini-80k");
  assert.equal(wb.model, m80);
  assert.equal(wb.prompt, PROMPT);
  const t80 = await wb.trace(); // the session's prompt
  assert.deepEqual(wb.traces, [t40, t80]);
  assert.deepEqual(seen, ["mini-40k@0", "mini-80k@0"], "the session hook moved to the new checkpoint");
  assert.equal(m40.model.hooks.size, 0, "and left the old one");
  assert.deepEqual(t80.ids, t40.ids);

  const d = t40.diff(t80);
  assert.equal(d.layers.length, 8);
  assert.ok(d.layers.every((l) => l.residual > 0.01), "different weights give different residual streams");
  assert.ok(d.logits.relative > 0);
  const self = t40.diff(t40);
  assert.ok(self.layers.every((l) => l.residual === 0 && l.routingAgreement === 1));
  assert.equal(self.logits.top1Agreement, 1);
  assert.equal(d.table().numRows, 8);
  const bundle = d[DISPLAY]();
  assert.ok(bundle["application/vnd.plotly.v1+json"] && /top-1 agreement/.test(bundle["text/plain"]));
});

test("a trace agrees with a plain forward pass, bit for bit", async () => {
  const wb = await Workbench.open({ registry: Registry.default({}) });
  const m = await wb.load("mini-80k");
  const t = await m.trace(PROMPT);
  const { logits } = await m.model.forward(t.ids);
  assert.deepEqual(t.logits.data, logits.data);
  assert.deepEqual(t.get("blocks.0.hook_resid_pre").data, t.get("embed").data);
  assert.equal(t.topNext(1)[0].text, "1", "mini-80k starts the scratchpad with the last digit of 4821: 1");
  assert.match(t[DISPLAY]()["text/plain"], /next: "1"/);
});

test("the stepper pauses at every sub-step, and an edit of the residual stream changes the output as a hook would", async () => {
  const wb = await Workbench.open({ registry: Registry.default({}) });
  const m = await wb.load("mini-40k");
  const ids = m.model.promptIds(PROMPT);
  const base = (await m.model.forward(ids)).logits.f32;

  const names: string[] = [];
  const plain = m.step(ids);
  for await (const s of plain) names.push(s.name);
  assert.equal(names.length, 1 + 8 * 6 + 2);
  assert.deepEqual(names.slice(0, 7), ["embed", "blocks.0.ln1.hook_normalized", "blocks.0.hook_attn_out", "blocks.0.hook_resid_mid", "blocks.0.ln2.hook_normalized", "blocks.0.hook_mlp_out", "blocks.0.hook_resid_post"]);
  assert.deepEqual(plain.result.logits.data, base, "stepping without edits changes nothing");

  // shift the residual stream after layer 3's attention by +1 (a scaling would be undone by the next RMSNorm), via the stepper ...
  const edited = m.step(ids);
  for await (const s of edited) {
    if (s.name === "blocks.3.hook_resid_mid") {
      assert.deepEqual(Object.keys(s.inputs), ["residual", "attention"]);
      s.output = new Tensor("F32", s.output.shape, (s.output.f32).map((x) => x + 1));
      break; // leave the loop: the pass stays paused there
    }
  }
  const steppedLogits = (await edited.finish()).logits.f32;
  // ... and via a hook: the same result
  const hooked = await m.model.hooks.with([["blocks.3.hook_resid_mid", (v) => new Tensor("F32", v.shape, (v.f32).map((x) => x + 1))]],
    () => m.model.forward(ids));
  assert.deepEqual(steppedLogits, hooked.logits.data);
  assert.ok(relErr(steppedLogits, base) > 1e-3);
  const unfinished = m.step(ids);
  await unfinished.next();
  assert.throws(() => unfinished.result, /has not finished/);
});

test("the stepper works for a decode step on a cache", async () => {
  const wb = await Workbench.open({ registry: Registry.default({}) });
  const m = await wb.load("mini-80k");
  const ids = Array.from(m.model.promptIds(PROMPT));
  const full = (await m.model.forward([...ids, 9])).logits.f32;
  const cache = m.model.newCache();
  await m.model.forward(ids, { cache });
  const stepper = m.step([9], { cache });
  const phases = new Set<string>();
  for await (const s of stepper) phases.add(`${s.phase}@${s.position}`);
  assert.deepEqual([...phases], [`decode@${ids.length}`]);
  const vocab = m.model.config.vocabSize;
  assert.ok(relErr(stepper.result.logits.f32, full.subarray(ids.length * vocab)) < 1e-5);
});

test("effective lightning attention q_i·k_j·λ^(i−j) reproduces the layer output, for every head and layer", async () => {
  const wb = await Workbench.open({ registry: Registry.default({}) });
  for (const name of ["mini-80k", TINY]) {
    const m = await wb.load(name);
    const ids = name === TINY ? Array.from({ length: 40 }, (_, i) => (i * 37) % 512) : PROMPT;
    const t = await m.trace(ids);
    m.model.config.layerTypes.forEach((type, l) => {
      if (type !== "lightning") return;
      const layer = t.lightning(l);
      for (let h = 0; h < layer.heads; h++) {
        const eff = layer.effectiveAttention({ head: h });
        assert.ok(eff.check() < 1e-5, `${name} layer ${l} head ${h}: ${eff.check()}`);
      }
    });
    const layer0 = t.lightning(0);
    const norms = layer0.stateNorms();
    const final = t.get("blocks.0.lightning.hook_state").f32;
    const d = layer0.headDim;
    const lastNorm = Math.sqrt(final.subarray(0, d * d).reduce((s, x) => s + x * x, 0));
    assert.ok(Math.abs((norms.f32)[(t.tokens - 1) * layer0.heads] - lastNorm) / lastNorm < 1e-5, "recomputed state matches the traced state");
    assert.equal(layer0.decayProfile().numRows, layer0.heads);
  }
});

test("views: attention patterns, routing and the logit lens, each plotted and as Arrow", async () => {
  const wb = await Workbench.open({ registry: Registry.default({}) });
  const m = await wb.load("mini-80k");
  const t = await m.trace(PROMPT);
  const att = t.attention(7);
  assert.equal(att.table().numRows, att.heads * (t.tokens * (t.tokens + 1)) / 2);
  for (let i = 0; i < t.tokens; i++) {
    let sum = 0;
    for (let j = 0; j < t.tokens; j++) sum += att.at(0, i, j);
    assert.ok(Math.abs(sum - 1) < 1e-5);
  }
  const fig = att.plot().toJSON();
  assert.equal(fig.data.length, att.heads);
  assert.throws(() => t.attention(3), (e: Error) => e instanceof InputError && /layer 3 is a lightning layer; softmax layers are 7/.test(e.message));
  assert.throws(() => t.lightning(7), /layer 7 is a softmax layer/);

  const r = t.routing(2);
  const load = r.load();
  assert.equal(load.tokens.reduce((a, b) => a + b, 0), t.tokens * 2);
  const entropy = r.entropy();
  assert.ok(entropy.every((h) => h >= 0 && h <= Math.log(4) + 1e-6));
  assert.equal(r.table().numRows, t.tokens * 2);

  const lens = t.logitLens();
  assert.equal(lens.rows.length, 8);
  const last = lens.rows[7];
  assert.deepEqual(Array.from(last.top), Array.from(lens.finalTop), "the last layer's lens is the model's prediction");
  assert.equal(lens.table().numRows, 8 * t.tokens);

  const long = await m.trace(`<s> ${"1 2 3 4 5 6 7 8 9 ".repeat(10)}+ 1 = <think>`);
  const windowed = long.attention(7).plot().toJSON();
  assert.equal((windowed.data[0].x as string[]).length, 64, "long prompts are windowed to the last 64 positions");
});

test("the model card says what the checkpoint is", async () => {
  const wb = await Workbench.open({ registry: Registry.default({}) });
  const m = await wb.load("mini-40k");
  const card = m[DISPLAY]();
  assert.match(card["text/plain"], /mini-40k/);
  assert.match(card["text/plain"], /not MiniMax-M1/);
  assert.match(card["text/plain"], /7 lightning \+ 1 softmax/);
  assert.match(card["text/html"] as string, /title="layer 7: softmax attention \+ MoE"/);
  assert.match(wb[DISPLAY]()["text/plain"], /current: mini-40k/);
});

test("weight diff: a checkpoint with itself is 0, with a perturbed copy exactly the perturbation", async () => {
  const { dir, cleanup } = tempDir();
  try {
    const src = SafetensorsFile.open(join(TINY, "model.safetensors"));
    const tensors: Record<string, Tensor> = {};
    for (const name of src.names()) tensors[name] = src.read(name);
    const target = "model.layers.5.block_sparse_moe.experts.3.w2.weight";
    const orig = tensors[target].f32;
    const rng = new Rng(7);
    const perturbed = orig.map((x) => x + 1e-2 * (rng.next() - 0.5));
    let num = 0, den = 0;
    for (let i = 0; i < orig.length; i++) { num += (orig[i] - perturbed[i]) ** 2; den += orig[i] ** 2; }
    tensors[target] = new Tensor("F32", tensors[target].shape, perturbed);
    mkdirSync(join(dir, "copy"));
    writeSafetensors(join(dir, "copy", "model.safetensors"), tensors);
    copyFileSync(join(TINY, "config.json"), join(dir, "copy", "config.json"));

    const a = Checkpoint.open(TINY);
    const self = await diffWeights(a, Checkpoint.open(TINY));
    assert.equal(self.tensors.length, tensorShapes(a.config).size);
    assert.ok(self.tensors.every((t) => t.relative === 0));
    assert.equal(self.total, 0);

    const d = await diffWeights(a, Checkpoint.open(join(dir, "copy")), { chunkBytes: 1000 });
    for (const t of d.tensors) {
      if (t.name === target) assert.ok(Math.abs(t.relative - Math.sqrt(num / den)) < 1e-9 * Math.sqrt(num / den) + 1e-12, `${t.relative} vs ${Math.sqrt(num / den)}`);
      else assert.equal(t.relative, 0, t.name);
    }
    const layer5 = d.byModule().find((r) => r.layer === 5 && r.module === "experts")!;
    assert.ok(layer5.relative > 0);
    assert.ok(d.byModule().filter((r) => !(r.layer === 5 && r.module === "experts")).every((r) => r.relative === 0));
  } finally {
    cleanup();
  }
});

test("weight diff streams: memory stays bounded by the chunk size, not the checkpoint size (measured)", async (t) => {
  const { dir, cleanup } = tempDir();
  try {
    // two 100 MiB checkpoints of one architecture
    const config = {
      architectures: ["MiniMaxM1ForCausalLM"], model_type: "minimax_m1", vocab_size: 64, hidden_size: 512, intermediate_size: 1024,
      num_hidden_layers: 2, num_attention_heads: 4, num_key_value_heads: 2, head_dim: 32, rotary_dim: 32, num_local_experts: 8,
      num_experts_per_tok: 2, attn_type_list: [0, 1], rms_norm_eps: 1e-5, rope_theta: 10000, hidden_act: "silu", postnorm: true,
      layernorm_full_attention_alpha: 1, layernorm_full_attention_beta: 1, layernorm_linear_attention_alpha: 1, layernorm_linear_attention_beta: 1,
      layernorm_mlp_alpha: 1, layernorm_mlp_beta: 1, tie_word_embeddings: false,
    };
    let total = 0;
    for (const [sub, seed] of [["a", 1], ["b", 2]] as const) {
      const rng = new Rng(seed);
      const tensors: Record<string, Tensor> = {};
      for (const [name, shape] of tensorShapes(parseConfig(config))) {
        const data = new Float32Array(shape.reduce((x, y) => x * y, 1));
        for (let i = 0; i < data.length; i += 97) data[i] = rng.next();
        tensors[name] = new Tensor("F32", shape, data);
        if (sub === "a") total += data.byteLength;
      }
      mkdirSync(join(dir, sub));
      writeSafetensors(join(dir, sub, "model.safetensors"), tensors);
      writeFileSync(join(dir, sub, "config.json"), JSON.stringify(config));
    }
    assert.ok(total > 90 * 2 ** 20);
    const before = process.memoryUsage().arrayBuffers;
    let peak = 0;
    const d = await diffWeights(Checkpoint.open(join(dir, "a")), Checkpoint.open(join(dir, "b")), {
      chunkBytes: 1 << 20,
      onProgress: () => { peak = Math.max(peak, process.memoryUsage().arrayBuffers - before); },
    });
    assert.ok(d.total > 0.5);
    t.diagnostic(`weight diff: array-buffer growth ${(peak / 2 ** 20).toFixed(1)} MiB while reading 2 x ${(total / 2 ** 20).toFixed(0)} MiB in 1 MiB chunks`);
    assert.ok(peak < 16 * 2 ** 20, `array-buffer memory grew by ${(peak / 2 ** 20).toFixed(1)} MiB while diffing ${(2 * total / 2 ** 20).toFixed(0)} MiB`);
  } finally {
    cleanup();
  }
});
