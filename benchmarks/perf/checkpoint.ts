// Seeded random benchmark checkpoints in the hub (remote-code) format: config.json + model.safetensors.
// Weights are uniform with std 1/sqrt(fan_in) (activations keep their scale through the layers); norm
// weights are 1. Only the shapes matter for speed; the seed makes every run read the same bytes. F32 by default;
// BF16 (M1's own dtype) rounds the same values to nearest even.
import fs from "node:fs";
import path from "node:path";
import { writeSafetensors } from "../../engine/safetensors.ts";
import { Tensor, castTensor } from "../../engine/tensor.ts";
import { InputError } from "../../engine/errors.ts";

export interface BenchShape {
  hidden: number;
  layers: number;
  /** layer indices that are softmax attention; the others are lightning */
  softmaxLayers: number[];
  heads: number;
  headDim: number;
  kvHeads: number;
  rotaryDim: number;
  experts: number;
  topK: number;
  intermediate: number;
  vocab: number;
}

/** The checkpoints `m1 make-checkpoint` knows, by name. */
export const BENCH_SHAPES: Record<string, BenchShape> = {
  "bench-small": {
    hidden: 512, layers: 8, softmaxLayers: [7], heads: 8, headDim: 64, kvHeads: 2, rotaryDim: 32,
    experts: 8, topK: 2, intermediate: 704, vocab: 16384,
  },
};

/** The dtypes a benchmark checkpoint is written in. */
export type BenchDType = "F32" | "BF16";

export function hubConfig(s: BenchShape, dtype: BenchDType = "F32"): Record<string, unknown> {
  const alpha = Math.pow(2 * s.layers, 0.25);
  return {
    architectures: ["MiniMaxM1ForCausalLM"],
    model_type: "minimax_m1",
    vocab_size: s.vocab,
    hidden_size: s.hidden,
    intermediate_size: s.intermediate,
    num_hidden_layers: s.layers,
    num_attention_heads: s.heads,
    num_key_value_heads: s.kvHeads,
    head_dim: s.headDim,
    rotary_dim: s.rotaryDim,
    num_local_experts: s.experts,
    num_experts_per_tok: s.topK,
    attn_type_list: Array.from({ length: s.layers }, (_, l) => (s.softmaxLayers.includes(l) ? 1 : 0)),
    block_size: 256,
    rms_norm_eps: 1e-5,
    rope_theta: 10000000.0,
    hidden_act: "silu",
    postnorm: true,
    tie_word_embeddings: false,
    layernorm_full_attention_alpha: alpha,
    layernorm_full_attention_beta: 1,
    layernorm_linear_attention_alpha: alpha,
    layernorm_linear_attention_beta: 1,
    layernorm_mlp_alpha: alpha,
    layernorm_mlp_beta: 1,
    max_position_embeddings: 131072,
    bos_token_id: 1,
    eos_token_id: 2,
    torch_dtype: dtype === "F32" ? "float32" : "bfloat16",
  };
}

/** Every tensor of the checkpoint: canonical hub name → shape (in file order). */
export function tensorShapes(s: BenchShape): [string, number[]][] {
  const { hidden: H, heads, headDim: d, kvHeads, experts, intermediate: F, vocab } = s;
  const inner = heads * d;
  const out: [string, number[]][] = [["model.embed_tokens.weight", [vocab, H]]];
  for (let l = 0; l < s.layers; l++) {
    const p = `model.layers.${l}.`;
    out.push([p + "input_layernorm.weight", [H]], [p + "post_attention_layernorm.weight", [H]]);
    if (s.softmaxLayers.includes(l)) {
      out.push(
        [p + "self_attn.q_proj.weight", [inner, H]],
        [p + "self_attn.k_proj.weight", [kvHeads * d, H]],
        [p + "self_attn.v_proj.weight", [kvHeads * d, H]],
        [p + "self_attn.o_proj.weight", [H, inner]],
      );
    } else {
      out.push(
        [p + "self_attn.qkv_proj.weight", [3 * inner, H]],
        [p + "self_attn.output_gate.weight", [inner, H]],
        [p + "self_attn.out_proj.weight", [H, inner]],
        [p + "self_attn.norm.weight", [inner]],
      );
    }
    out.push([p + "block_sparse_moe.gate.weight", [experts, H]]);
    for (let e = 0; e < experts; e++) {
      const x = `${p}block_sparse_moe.experts.${e}.`;
      out.push([x + "w1.weight", [F, H]], [x + "w3.weight", [F, H]], [x + "w2.weight", [H, F]]);
    }
  }
  out.push(["model.norm.weight", [H]], ["lm_head.weight", [vocab, H]]);
  return out;
}

/** xorshift128+ stream of uniforms in [-1, 1), seeded per tensor so any tensor can be regenerated alone. */
function fillUniform(a: Float32Array, seed: number, scale: number): void {
  let s0 = (seed ^ 0x9e3779b9) >>> 0 || 1;
  let s1 = Math.imul(seed + 0x7f4a7c15, 0x85ebca6b) >>> 0 || 2;
  for (let i = 0; i < a.length; i++) {
    let x = s0;
    const y = s1;
    s0 = y;
    x ^= x << 23;
    x ^= x >>> 17;
    x ^= y ^ (y >>> 26);
    s1 = x >>> 0;
    a[i] = (((s0 + s1) >>> 0) / 2147483648 - 1) * scale;
  }
}

/** Writes config.json and model.safetensors of checkpoint `name` into `dir` (created if needed). */
export function writeBenchCheckpoint(name: string, dir: string, seed = 0, dtype: BenchDType = "F32"): { params: number; bytes: number } {
  const shape = BENCH_SHAPES[name];
  if (!shape) throw new InputError(`unknown benchmark checkpoint "${name}" (known: ${Object.keys(BENCH_SHAPES).join(", ")})`);
  return writeRandomCheckpoint(shape, dir, seed, `m1 make-checkpoint ${name} --seed ${seed} --dtype ${dtype.toLowerCase()}`, dtype);
}

/** Writes config.json and model.safetensors of a seeded random checkpoint of `shape` into `dir` (created if needed);
 *  `generator` is recorded in the safetensors metadata. */
export function writeRandomCheckpoint(shape: BenchShape, dir: string, seed: number, generator: string, dtype: BenchDType = "F32"): { params: number; bytes: number } {
  fs.mkdirSync(dir, { recursive: true });
  const tensors: Record<string, Tensor> = {};
  let params = 0;
  tensorShapes(shape).forEach(([tname, dims], i) => {
    const data = new Float32Array(dims.reduce((a, b) => a * b, 1));
    if (dims.length === 1) data.fill(1);
    else fillUniform(data, seed * 1000003 + i, Math.sqrt(3 / dims[1]));
    tensors[tname] = castTensor(new Tensor("F32", dims, data), dtype);
    params += data.length;
  });
  fs.writeFileSync(path.join(dir, "config.json"), JSON.stringify(hubConfig(shape, dtype), null, 1) + "\n");
  writeSafetensors(path.join(dir, "model.safetensors"), tensors, { format: "pt", generator });
  return { params, bytes: params * (dtype === "F32" ? 4 : 2) };
}
