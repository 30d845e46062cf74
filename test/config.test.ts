import assert from "node:assert/strict";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { test } from "node:test";
import { loadConfig, parseConfig, slopes, type ModelConfig } from "../engine/config.ts";
import { ConfigError } from "../engine/errors.ts";

const M1 = "test/fixtures/minimax-m1/config.json";
const TINY = "test/fixtures/golden/tiny-m1";
const readJson = (p: string) => JSON.parse(fs.readFileSync(p, "utf8"));
const tinyHub = () => readJson(`${TINY}/config.json`);
const tinyNative = () => readJson(`${TINY}/native-config.json`);

test("the real MiniMax-M1 config", () => {
  const c = loadConfig(M1);
  assert.equal(c.format, "hub");
  assert.equal(c.source, M1);
  assert.equal(c.hiddenSize, 6144);
  assert.equal(c.numLayers, 80);
  assert.equal(c.numHeads, 64);
  assert.equal(c.headDim, 128);
  assert.equal(c.numKvHeads, 8);
  assert.equal(c.intermediateSize, 9216);
  assert.equal(c.numExperts, 32);
  assert.equal(c.topK, 2);
  assert.equal(c.vocabSize, 200064);
  assert.deepEqual(c.layerTypes.flatMap((t, i) => (t === "softmax" ? [i] : [])), [7, 15, 23, 31, 39, 47, 55, 63, 71, 79]);
  assert.equal(c.rotaryDim, 64);
  assert.equal(c.ropeTheta, 1e7);
  assert.equal(c.rmsNormEps, 1e-5);
  assert.equal(c.lightningNormEps, 1e-6);
  assert.equal(c.blockSize, 256);
  assert.deepEqual(c.alpha, { lightning: 3.5565588200778455, softmax: 3.5565588200778455, mlp: 3.5565588200778455 });
  assert.deepEqual(c.beta, { lightning: 1, softmax: 1, mlp: 1 });
  assert.equal(c.postnorm, true);
  assert.equal(c.tieWordEmbeddings, false);
  assert.equal(c.sharedIntermediateSize, 0);
  assert.equal(c.bosTokenId, null);
  assert.equal(c.eosTokenId, null);
  assert.equal(c.maxPositionEmbeddings, 10240000);
  assert.equal(c.torchDtype, null);
  assert.deepEqual(c.architectures, ["MiniMaxM1ForCausalLM"]);
  assert.equal(c.modelType, "minimax_m1");
  assert.deepEqual(loadConfig(path.dirname(M1)), c, "a checkpoint directory resolves to its config.json");
});

test("tiny-m1 hub and native configs describe the same model", () => {
  const hub = loadConfig(`${TINY}/config.json`);
  const native = loadConfig(`${TINY}/native-config.json`);
  assert.equal(hub.format, "hub");
  assert.equal(native.format, "native");
  assert.equal(native.torchDtype, "float32");
  const strip = ({ format, source, architectures, modelType, torchDtype, ...rest }: ModelConfig) => rest;
  assert.deepEqual(strip(native), strip(hub));
  assert.equal(hub.blockSize, 16);
  assert.equal(hub.alpha.mlp, 2.5);
  assert.equal(parseConfig(tinyHub()).source, "<object>");
});

test("the demo checkpoint config", () => {
  const c = loadConfig("engine/checkpoints/mini-40k");
  assert.deepEqual([c.hiddenSize, c.numHeads, c.headDim, c.numKvHeads, c.rotaryDim, c.vocabSize], [128, 4, 32, 2, 32, 32]);
  assert.equal(c.torchDtype, "bfloat16");
  assert.equal(c.bosTokenId, 1);
  assert.equal(c.eosTokenId, 2);
});

test("defaults and alternative spellings", () => {
  const hub = tinyHub();
  delete hub.block_size;
  delete hub.rotary_dim;
  delete hub.head_dim;
  delete hub.num_key_value_heads;
  let c = parseConfig(hub);
  assert.equal(c.blockSize, 256, "the remote code hard-codes a block of 256");
  assert.equal(c.headDim, 16, "head_dim defaults to hidden/heads");
  assert.equal(c.rotaryDim, 16, "rotary_dim defaults to head_dim");
  assert.equal(c.numKvHeads, 4);
  assert.equal(parseConfig({ ...hub, block: 64 }).blockSize, 64, "vLLM's `block` spelling");
  assert.equal(parseConfig({ ...hub, tie_word_embeddings: true }).tieWordEmbeddings, true);
  assert.equal(parseConfig({ ...hub, postnorm: undefined }).postnorm, false, "remote-code default");

  const nat = tinyNative();
  nat.rope_theta = 5; // rope_parameters (v5) wins over a stale top-level value
  assert.equal(parseConfig(nat).ropeTheta, 1e6);
  delete nat.rope_parameters;
  assert.equal(parseConfig(nat).ropeTheta, 5);
  assert.equal(parseConfig({ ...nat, partial_rotary_factor: 0.5 }).rotaryDim, 8);
  assert.equal(parseConfig({ ...nat, partial_rotary_factor: 0.5, rotary_dim: 4 }).rotaryDim, 4);
  delete nat.block_size;
  c = parseConfig(nat);
  assert.equal(c.blockSize, 256);
  assert.equal(c.postnorm, true, "the native decoder is always postnorm");
  assert.equal(parseConfig({ ...tinyHub(), layer_types: tinyNative().layer_types }).format, "hub", "agreeing fields are fine");
  assert.equal(parseConfig({ ...tinyHub(), eos_token_id: [2, 7] }).eosTokenId, 2);
});

/** parseConfig must fail with a ConfigError whose message names the file and the field. */
function rejects(json: Record<string, unknown>, field: string, ...mentions: string[]): void {
  const file = path.join(fs.mkdtempSync(path.join(os.tmpdir(), "m1-config-")), "config.json");
  fs.writeFileSync(file, JSON.stringify(json));
  assert.throws(() => loadConfig(file), (e: unknown) => {
    assert.ok(e instanceof ConfigError, `expected a ConfigError, got ${e}`);
    assert.ok(e.message.startsWith(`${file}: field "${field}"`), e.message);
    for (const m of mentions) assert.ok(e.message.includes(m), `message should mention ${m}: ${e.message}`);
    return true;
  });
  fs.rmSync(path.dirname(file), { recursive: true });
}

test("inconsistent or invalid fields are rejected by name", () => {
  const hub = tinyHub();
  rejects({ ...hub, num_key_value_heads: 3 }, "num_key_value_heads", '(3) must divide "num_attention_heads" (4)');
  rejects({ ...hub, hidden_size: undefined }, "hidden_size", "missing");
  rejects({ ...hub, num_hidden_layers: 2.5 }, "num_hidden_layers", "positive integer");
  rejects({ ...hub, vocab_size: 0 }, "vocab_size", "positive integer");
  rejects({ ...hub, attn_type_list: [0, 1] }, "attn_type_list", "2 entries", '"num_hidden_layers" is 8');
  rejects({ ...hub, attn_type_list: [0, 0, 0, 2, 0, 0, 0, 1] }, "attn_type_list", "[3] is 2");
  rejects({ ...hub, attn_type_list: undefined }, "attn_type_list", "missing");
  rejects({ ...hub, layer_types: Array(8).fill("linear_attention") }, "layer_types", "disagrees", "layer 7");
  rejects({ ...hub, rotary_dim: 7 }, "rotary_dim", "even");
  rejects({ ...hub, rotary_dim: 32 }, "rotary_dim", '"head_dim" (16)');
  rejects({ ...hub, num_experts_per_tok: 9 }, "num_experts_per_tok", '"num_local_experts" (8)');
  rejects({ ...hub, layernorm_mlp_alpha: "2.5" }, "layernorm_mlp_alpha", "finite number");
  rejects({ ...hub, rms_norm_eps: 0 }, "rms_norm_eps", "> 0");
  rejects({ ...hub, shared_intermediate_size: 128 }, "shared_intermediate_size", "shared-expert path is not supported");
  rejects({ ...hub, hidden_act: "gelu" }, "hidden_act", "silu");
  rejects({ ...hub, rope_scaling: { type: "yarn" } }, "rope_scaling", "not supported");
  rejects({ ...hub, tie_word_embeddings: "yes" }, "tie_word_embeddings");
  rejects({ ...hub, head_dim: undefined, hidden_size: 66 }, "head_dim", '"hidden_size" (66)');

  const nat = tinyNative();
  rejects({ ...nat, layer_types: [...nat.layer_types.slice(1), "sliding_attention"] }, "layer_types", '"sliding_attention"');
  rejects({ ...nat, mlp_beta_factor: null, mlp_alpha_factor: [1] }, "mlp_alpha_factor", "finite number");
  rejects({ ...nat, rope_parameters: { rope_type: "yarn", rope_theta: 1e6 } }, "rope_parameters", '"yarn"');
  rejects({ ...nat, partial_rotary_factor: 0.3 }, "partial_rotary_factor", "rotary_dim 4.8");

  assert.throws(() => parseConfig([1]), (e: unknown) => e instanceof ConfigError && e.message.startsWith("<object>:"));
  assert.throws(() => loadConfig("/nonexistent/config.json"), (e: unknown) => e instanceof ConfigError && e.message.includes("/nonexistent/config.json"));
});

test("lightning slopes (remote-code formula)", () => {
  const m1 = loadConfig(M1);
  const s0 = slopes(m1, 0);
  assert.equal(s0.length, 64);
  assert.equal(s0[0], Math.fround(2 ** (-1 / 8) * (1 + 1e-5)));
  assert.equal(s0[63], Math.fround(2 ** -8 * (1 + 1e-5)));
  const s78 = slopes(m1, 78);
  assert.ok(Math.abs(s78[63] / 2 ** -8 - 0.0126682) < 1e-6, `layer 78 factor ${s78[63] / 2 ** -8}`);
  assert.equal(slopes(m1, 79)[0], Math.fround(2 ** (-1 / 8) * 1e-5));

  // ALiBi for a non-power-of-two head count: the 4-head slopes, then every other slope of the 8-head list.
  const six = { ...m1, numHeads: 6, numLayers: 1 };
  assert.deepEqual([...slopes(six, 0)], [0.25, 0.0625, 0.015625, 0.00390625, 0.5, 0.125].map((s) => Math.fround(s * (1 + 1e-5))));
  assert.throws(() => slopes(m1, 80), /layer 80 out of range/);
});
