// The three architectures of the paper's Figure 1 (right) as symbolic cost formulas over their published configs.
// Each formula is a mathjs expression string over named symbols, so that it can be printed, typeset and evaluated.
// FLOPs count 2 per multiply-add of a matrix product; `t` is the number of positions the new token attends to.
import fs from "node:fs";
import { fileURLToPath } from "node:url";
import { loadConfig, type ModelConfig } from "../../engine/config.ts";
import { ConfigError } from "../../engine/errors.ts";

export interface CostSymbol { value: number; meaning: string }
export interface CostTerm { name: string; formula: string; meaning: string }

export interface Architecture {
  name: string;
  source: string;
  symbols: Record<string, CostSymbol>;
  /** FLOPs of one generated token, a sum of terms in t */
  decode: CostTerm[];
  /** bytes kept per cached token (grows with the context) */
  cacheBytesPerToken: CostTerm;
  /** bytes of per-sequence state independent of the context */
  stateBytes: CostTerm;
  assumptions: string[];
}

export const M1_CONFIG = fileURLToPath(new URL("../../test/fixtures/minimax-m1/config.json", import.meta.url));
export const PEER_CONFIGS = fileURLToPath(new URL("../../test/fixtures/peer-configs.json", import.meta.url));

const BF16 = 2;
const FP32 = 4;

/** MiniMax-M1 (docs/architecture.md §8): lightning layers with a constant-size state, one softmax layer in eight, top-k MoE. */
export function minimaxM1(c: ModelConfig, name = "MiniMax-M1"): Architecture {
  const lin = c.layerTypes.filter((t) => t === "lightning").length;
  return {
    name,
    source: c.source,
    symbols: {
      H: { value: c.hiddenSize, meaning: "hidden size" },
      V: { value: c.vocabSize, meaning: "vocabulary (LM head rows)" },
      h: { value: c.numHeads, meaning: "attention heads (both layer types)" },
      d: { value: c.headDim, meaning: "head dimension" },
      h_kv: { value: c.numKvHeads, meaning: "KV heads of the softmax layers" },
      L: { value: c.numLayers, meaning: "layers" },
      L_lin: { value: lin, meaning: "lightning (linear attention) layers" },
      L_soft: { value: c.numLayers - lin, meaning: "softmax attention layers" },
      n_e: { value: c.numExperts, meaning: "experts per MoE layer" },
      k_e: { value: c.topK, meaning: "experts per token" },
      F: { value: c.intermediateSize, meaning: "expert FFN width" },
      b_kv: { value: BF16, meaning: "bytes per cached K/V value (bf16)" },
      b_state: { value: FP32, meaning: "bytes per lightning-state value (fp32, as the remote code and vLLM keep it)" },
    },
    decode: [
      { name: "lightning layers", formula: "L_lin * (2*H*3*h*d + 2*H*h*d + 2*h*d*H + 5*h*d^2)", meaning: "qkv, output-gate and out projections; per head the state decay, k·vᵀ update and add (d² each) and the read q·S (2d²)" },
      { name: "softmax layers", formula: "L_soft * (2*H*h*d + 2*2*H*h_kv*d + 2*h*d*H + 4*h*d*t)", meaning: "q, k, v, o projections; q·Kᵀ and p·V over t positions" },
      { name: "MoE", formula: "L * (2*H*n_e + k_e*3*2*H*F)", meaning: "router and k SwiGLU experts (w1, w3, w2)" },
      { name: "LM head", formula: "2*H*V", meaning: "logits" },
    ],
    cacheBytesPerToken: { name: "KV cache per token", formula: "L_soft*2*h_kv*d*b_kv", meaning: "K and V of the softmax layers" },
    stateBytes: { name: "lightning state", formula: "L_lin*h*d^2*b_state", meaning: "one d×d state per head per lightning layer" },
    assumptions: [
      "M1: the lightning state update costs 5·d² FLOPs per head per token (decay, outer product, add: d² each; read q·S: 2·d²); the state is fp32",
    ],
  };
}

/** DeepSeek-R1 (DeepSeek-V3 architecture): multi-head latent attention, dense first layers, routed + shared experts. */
export function deepseekV3(raw: Record<string, unknown>, name: string, source: string): Architecture {
  const f = fields(raw, source);
  const L = f("num_hidden_layers");
  const dense = f("first_k_dense_replace");
  return {
    name,
    source,
    symbols: {
      H: { value: f("hidden_size"), meaning: "hidden size" },
      V: { value: f("vocab_size"), meaning: "vocabulary (LM head rows)" },
      h: { value: f("num_attention_heads"), meaning: "attention heads" },
      L: { value: L, meaning: "layers" },
      L_dense: { value: dense, meaning: "dense FFN layers (first_k_dense_replace)" },
      L_moe: { value: L - dense, meaning: "MoE layers" },
      r_q: { value: f("q_lora_rank"), meaning: "query compression rank" },
      r_kv: { value: f("kv_lora_rank"), meaning: "key/value latent rank" },
      d_nope: { value: f("qk_nope_head_dim"), meaning: "per-head q/k dims without RoPE" },
      d_rope: { value: f("qk_rope_head_dim"), meaning: "per-head q/k dims with RoPE" },
      d_v: { value: f("v_head_dim"), meaning: "per-head value dims" },
      F_dense: { value: f("intermediate_size"), meaning: "dense FFN width" },
      F: { value: f("moe_intermediate_size"), meaning: "expert FFN width" },
      n_e: { value: f("n_routed_experts"), meaning: "routed experts" },
      k_e: { value: f("num_experts_per_tok"), meaning: "routed experts per token" },
      n_s: { value: f("n_shared_experts"), meaning: "shared experts" },
      b_kv: { value: BF16, meaning: "bytes per cached value (bf16)" },
    },
    decode: [
      { name: "MLA projections", formula: "L * (2*H*r_q + 2*r_q*h*(d_nope + d_rope) + 2*H*(r_kv + d_rope) + 2*r_kv*h*(d_nope + d_v) + 2*h*d_v*H)", meaning: "q down/up, kv down (with the shared RoPE key), kv up for the new token, output" },
      { name: "attention", formula: "L * 2*h*(d_nope + d_rope + d_v)*t", meaning: "q·Kᵀ over d_nope + d_rope dims and p·V over d_v dims, t positions" },
      { name: "dense FFN", formula: "L_dense * 3*2*H*F_dense", meaning: "SwiGLU of the dense layers" },
      { name: "MoE", formula: "L_moe * (2*H*n_e + (k_e + n_s)*3*2*H*F)", meaning: "router, k routed and the shared SwiGLU experts" },
      { name: "LM head", formula: "2*H*V", meaning: "logits" },
    ],
    cacheBytesPerToken: { name: "MLA cache per token", formula: "L*(r_kv + d_rope)*b_kv", meaning: "the compressed latent and the RoPE key" },
    stateBytes: { name: "constant state", formula: "0", meaning: "none" },
    assumptions: [
      `${name}: MLA counted as the attention it computes (h heads, scores over d_nope + d_rope = 192 dims, values over d_v = 128 dims), the K/V up-projection once per new token; no weight absorption (absorbed decode costs 2·h·(2·r_kv + d_rope)·t per layer instead, 3.4× the attention term)`,
      `${name}: the cache holds the compressed latent (r_kv + d_rope = 576 values per layer per token), as vLLM and SGLang serve it`,
    ],
  };
}

/** Qwen3-235B-A22B (qwen3_moe): GQA softmax attention in every layer, MoE FFN without a shared expert. */
export function qwen3Moe(raw: Record<string, unknown>, name: string, source: string): Architecture {
  const f = fields(raw, source);
  const L = f("num_hidden_layers");
  const step = f("decoder_sparse_step");
  const mlpOnly = raw.mlp_only_layers ?? [];
  if (!Array.isArray(mlpOnly) || !mlpOnly.every(Number.isInteger)) throw new ConfigError(`${source}: field "mlp_only_layers" must be a list of layer indices`);
  const moeLayers = Array.from({ length: L }, (_, l) => !mlpOnly.includes(l) && (l + 1) % step === 0).filter(Boolean).length;
  return {
    name,
    source,
    symbols: {
      H: { value: f("hidden_size"), meaning: "hidden size" },
      V: { value: f("vocab_size"), meaning: "vocabulary (LM head rows)" },
      h: { value: f("num_attention_heads"), meaning: "query heads" },
      h_kv: { value: f("num_key_value_heads"), meaning: "KV heads" },
      d: { value: f("head_dim"), meaning: "head dimension" },
      L: { value: L, meaning: "layers" },
      L_moe: { value: moeLayers, meaning: "MoE layers" },
      L_dense: { value: L - moeLayers, meaning: "dense FFN layers" },
      F_dense: { value: f("intermediate_size"), meaning: "dense FFN width" },
      F: { value: f("moe_intermediate_size"), meaning: "expert FFN width" },
      n_e: { value: f("num_experts"), meaning: "experts" },
      k_e: { value: f("num_experts_per_tok"), meaning: "experts per token" },
      b_kv: { value: BF16, meaning: "bytes per cached K/V value (bf16)" },
    },
    decode: [
      { name: "projections", formula: "L * (2*H*h*d + 2*2*H*h_kv*d + 2*h*d*H)", meaning: "q, k, v, o" },
      { name: "attention", formula: "L * 4*h*d*t", meaning: "q·Kᵀ and p·V over t positions" },
      { name: "dense FFN", formula: "L_dense * 3*2*H*F_dense", meaning: "SwiGLU of dense layers (none in the released config)" },
      { name: "MoE", formula: "L_moe * (2*H*n_e + k_e*3*2*H*F)", meaning: "router and k SwiGLU experts" },
      { name: "LM head", formula: "2*H*V", meaning: "logits" },
    ],
    cacheBytesPerToken: { name: "KV cache per token", formula: "L*2*h_kv*d*b_kv", meaning: "K and V of every layer" },
    stateBytes: { name: "constant state", formula: "0", meaning: "none" },
    assumptions: [],
  };
}

/** MiniMax-M1 from its config.json and the two peers from peer-configs.json, in Figure 1's order. */
export function figure1Architectures(m1Config = M1_CONFIG, peerConfigs = PEER_CONFIGS): Architecture[] {
  let peers: Record<string, Record<string, unknown>>;
  try {
    peers = JSON.parse(fs.readFileSync(peerConfigs, "utf8"));
  } catch (e) {
    throw new ConfigError(`${peerConfigs}: cannot read peer configs (${(e as Error).message})`, { cause: e });
  }
  const peer = (name: string) => {
    const raw = peers[name];
    if (typeof raw !== "object" || raw === null) throw new ConfigError(`${peerConfigs}: no config object "${name}"`);
    return raw;
  };
  return [
    deepseekV3(peer("DeepSeek-R1"), "DeepSeek-R1", `${peerConfigs} [DeepSeek-R1]`),
    qwen3Moe(peer("Qwen3-235B-A22B"), "Qwen3-235B-A22B", `${peerConfigs} [Qwen3-235B-A22B]`),
    minimaxM1(loadConfig(m1Config)),
  ];
}

function fields(raw: Record<string, unknown>, source: string): (field: string) => number {
  return (field) => {
    const v = raw[field];
    if (!Number.isSafeInteger(v) || (v as number) < 0) throw new ConfigError(`${source}: field "${field}" (${JSON.stringify(v)}) must be a non-negative integer`);
    return v as number;
  };
}
