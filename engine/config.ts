// Model config: parses both the original hub (remote-code, `attn_type_list`) format and transformers' native
// (`model_type "minimax"`, `layer_types`) format into one validated ModelConfig (docs/architecture.md §1).
import fs from "node:fs";
import path from "node:path";
import { ConfigError, InputError } from "./errors.ts";

export type LayerType = "lightning" | "softmax";

/** α or β of each residual: the attention sublayer's by its layer type, and the MoE sublayer's. */
export type ResidualFactors = Record<LayerType, number> & { mlp: number };

export interface ModelConfig {
  format: "hub" | "native";
  source: string; // file path or "<object>"
  hiddenSize: number;
  numLayers: number;
  numHeads: number;
  headDim: number;
  numKvHeads: number;
  intermediateSize: number;
  numExperts: number;
  topK: number;
  vocabSize: number;
  layerTypes: LayerType[];
  rotaryDim: number;
  ropeTheta: number;
  rmsNormEps: number;
  lightningNormEps: number; // the RMSNorm inside lightning attention (docs/architecture.md §3.2)
  blockSize: number;
  alpha: ResidualFactors; // multiplies the (normalised) residual
  beta: ResidualFactors; // multiplies the sublayer output
  postnorm: boolean;
  tieWordEmbeddings: boolean;
  sharedIntermediateSize: number;
  bosTokenId: number | null;
  eosTokenId: number | null;
  maxPositionEmbeddings: number;
  torchDtype: string | null;
  architectures: string[];
  modelType: string;
}

const LIGHTNING_NORM_EPS = 1e-6;
const DEFAULT_BLOCK_SIZE = 256;
const DEFAULT_ROPE_THETA = 1e6; // default of both config classes; real configs override it
const NATIVE_LAYER_TYPES: Record<string, LayerType> = { linear_attention: "lightning", full_attention: "softmax" };

export function loadConfig(p: string): ModelConfig {
  const file = isDirectory(p) ? path.join(p, "config.json") : p;
  let text: string;
  try {
    text = fs.readFileSync(file, "utf8");
  } catch (e) {
    throw new ConfigError(`${file}: cannot read config (${(e as Error).message})`, { cause: e });
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new ConfigError(`${file}: not valid JSON (${(e as Error).message})`, { cause: e });
  }
  return parseConfig(json, file);
}

function isDirectory(p: string): boolean {
  try {
    return fs.statSync(p).isDirectory();
  } catch {
    return false;
  }
}

export function parseConfig(json: unknown, source = "<object>"): ModelConfig {
  if (typeof json !== "object" || json === null || Array.isArray(json)) {
    throw new ConfigError(`${source}: config must be a JSON object`);
  }
  const f: Fields = new Fields(json as Record<string, unknown>, source);
  const native = f.raw.model_type === "minimax" || (f.has("layer_types") && !f.has("attn_type_list"));

  const hiddenSize = f.posInt("hidden_size");
  const numLayers = f.posInt("num_hidden_layers");
  const numHeads = f.posInt("num_attention_heads");
  const numKvHeads = f.has("num_key_value_heads") ? f.posInt("num_key_value_heads") : numHeads;
  if (numHeads % numKvHeads !== 0) {
    f.fail("num_key_value_heads", `(${numKvHeads}) must divide "num_attention_heads" (${numHeads})`);
  }
  let headDim: number;
  if (f.has("head_dim")) headDim = f.posInt("head_dim");
  else if (hiddenSize % numHeads === 0) headDim = hiddenSize / numHeads;
  else f.fail("head_dim", `is absent and "hidden_size" (${hiddenSize}) is not a multiple of "num_attention_heads" (${numHeads})`);

  const numExperts = f.posInt("num_local_experts");
  const topK = f.posInt("num_experts_per_tok");
  if (topK > numExperts) f.fail("num_experts_per_tok", `(${topK}) must be <= "num_local_experts" (${numExperts})`);

  const hiddenAct = f.raw.hidden_act ?? "silu";
  if (hiddenAct !== "silu") f.fail("hidden_act", `(${JSON.stringify(hiddenAct)}) is not supported; M1 uses "silu"`);

  const sharedIntermediateSize = f.has("shared_intermediate_size") ? f.nonNegInt("shared_intermediate_size") : 0;
  if (sharedIntermediateSize > 0) {
    f.fail("shared_intermediate_size", `(${sharedIntermediateSize}) > 0: the shared-expert path is not supported (M1 has 0)`);
  }

  const factor = (hub: string, nat: string) => {
    const field = native ? nat : hub;
    return f.has(field) ? f.finite(field) : 1; // both config classes default the factors to 1
  };
  return {
    format: native ? "native" : "hub",
    source,
    hiddenSize,
    numLayers,
    numHeads,
    headDim,
    numKvHeads,
    intermediateSize: f.posInt("intermediate_size"),
    numExperts,
    topK,
    vocabSize: f.posInt("vocab_size"),
    layerTypes: parseLayerTypes(f, numLayers),
    rotaryDim: parseRotaryDim(f, native, headDim),
    ropeTheta: parseRopeTheta(f, native),
    rmsNormEps: f.has("rms_norm_eps") ? f.positive("rms_norm_eps") : 1e-5,
    lightningNormEps: LIGHTNING_NORM_EPS,
    blockSize: parseBlockSize(f, native),
    alpha: {
      lightning: factor("layernorm_linear_attention_alpha", "linear_attn_alpha_factor"),
      softmax: factor("layernorm_full_attention_alpha", "full_attn_alpha_factor"),
      mlp: factor("layernorm_mlp_alpha", "mlp_alpha_factor"),
    },
    beta: {
      lightning: factor("layernorm_linear_attention_beta", "linear_attn_beta_factor"),
      softmax: factor("layernorm_full_attention_beta", "full_attn_beta_factor"),
      mlp: factor("layernorm_mlp_beta", "mlp_beta_factor"),
    },
    // The native decoder always uses the postnorm residual; the remote code's class default is false.
    postnorm: native ? true : f.has("postnorm") ? f.bool("postnorm") : false,
    tieWordEmbeddings: f.has("tie_word_embeddings") ? f.bool("tie_word_embeddings") : false,
    sharedIntermediateSize,
    bosTokenId: f.tokenId("bos_token_id"),
    eosTokenId: f.tokenId("eos_token_id"),
    maxPositionEmbeddings: f.has("max_position_embeddings") ? f.posInt("max_position_embeddings") : 131072,
    torchDtype: f.optString("torch_dtype") ?? f.optString("dtype"),
    architectures: f.stringList("architectures"),
    modelType: f.optString("model_type") ?? "",
  };
}

function parseLayerTypes(f: Fields, numLayers: number): LayerType[] {
  let fromHub: LayerType[] | undefined;
  let fromNative: LayerType[] | undefined;
  if (f.has("attn_type_list")) {
    fromHub = f.list("attn_type_list", numLayers).map((v, i) => {
      if (v === 0) return "lightning";
      if (v === 1) return "softmax";
      return f.fail("attn_type_list", `[${i}] is ${JSON.stringify(v)}; expected 0 (lightning) or 1 (softmax)`);
    });
  }
  if (f.has("layer_types")) {
    fromNative = f.list("layer_types", numLayers).map((v, i) =>
      NATIVE_LAYER_TYPES[v as string] ??
      f.fail("layer_types", `[${i}] is ${JSON.stringify(v)}; expected "linear_attention" or "full_attention"`));
  }
  if (fromHub && fromNative && fromHub.some((t, i) => t !== fromNative[i])) {
    f.fail("layer_types", `disagrees with "attn_type_list" at layer ${fromHub.findIndex((t, i) => t !== fromNative[i])}`);
  }
  return fromHub ?? fromNative ?? f.fail("attn_type_list", `is missing (neither "attn_type_list" nor "layer_types" given)`);
}

function parseRotaryDim(f: Fields, native: boolean, headDim: number): number {
  let rotaryDim = headDim;
  let field = "rotary_dim";
  if (f.has("rotary_dim")) rotaryDim = f.posInt("rotary_dim");
  else if (native && f.has("partial_rotary_factor")) {
    field = "partial_rotary_factor";
    rotaryDim = f.positive(field) * headDim;
  }
  if (!Number.isInteger(rotaryDim) || rotaryDim % 2 !== 0 || rotaryDim > headDim) {
    f.fail(field, `gives rotary_dim ${rotaryDim}; it must be an even integer <= "head_dim" (${headDim})`);
  }
  return rotaryDim;
}

function parseRopeTheta(f: Fields, native: boolean): number {
  if (f.has("rope_scaling")) f.fail("rope_scaling", "is not supported (M1 has no RoPE scaling)");
  const params = f.raw.rope_parameters;
  if (native && params !== undefined && params !== null) {
    if (typeof params !== "object" || Array.isArray(params)) f.fail("rope_parameters", "must be an object");
    const p = params as Record<string, unknown>;
    if (p.rope_type !== undefined && p.rope_type !== "default") {
      f.fail("rope_parameters", `rope_type ${JSON.stringify(p.rope_type)} is not supported (only "default")`);
    }
    if (p.rope_theta !== undefined) {
      if (typeof p.rope_theta !== "number" || !(p.rope_theta > 0)) f.fail("rope_parameters", `rope_theta must be a positive number`);
      return p.rope_theta;
    }
  }
  return f.has("rope_theta") ? f.positive("rope_theta") : DEFAULT_ROPE_THETA;
}

function parseBlockSize(f: Fields, native: boolean): number {
  if (f.has("block_size")) return f.posInt("block_size");
  if (!native && f.has("block")) return f.posInt("block"); // vLLM reads `config.block`
  return DEFAULT_BLOCK_SIZE;
}

/** Typed access to config fields; every failure is a ConfigError naming the file and the field. */
class Fields {
  constructor(readonly raw: Record<string, unknown>, private readonly source: string) {}

  fail(field: string, problem: string): never {
    throw new ConfigError(`${this.source}: field "${field}" ${problem}`);
  }

  has(field: string): boolean {
    return this.raw[field] !== undefined && this.raw[field] !== null;
  }

  private get(field: string): unknown {
    if (!this.has(field)) this.fail(field, "is required but missing");
    return this.raw[field];
  }

  posInt(field: string): number {
    const v = this.get(field);
    if (!Number.isSafeInteger(v) || (v as number) <= 0) this.fail(field, `(${JSON.stringify(v)}) must be a positive integer`);
    return v as number;
  }

  nonNegInt(field: string): number {
    const v = this.get(field);
    if (!Number.isSafeInteger(v) || (v as number) < 0) this.fail(field, `(${JSON.stringify(v)}) must be a non-negative integer`);
    return v as number;
  }

  finite(field: string): number {
    const v = this.get(field);
    if (typeof v !== "number" || !Number.isFinite(v)) this.fail(field, `(${JSON.stringify(v)}) must be a finite number`);
    return v;
  }

  positive(field: string): number {
    const v = this.finite(field);
    if (!(v > 0)) this.fail(field, `(${v}) must be > 0`);
    return v;
  }

  bool(field: string): boolean {
    const v = this.get(field);
    if (typeof v !== "boolean") this.fail(field, `(${JSON.stringify(v)}) must be true or false`);
    return v;
  }

  optString(field: string): string | null {
    if (!this.has(field)) return null;
    const v = this.raw[field];
    if (typeof v !== "string") this.fail(field, `(${JSON.stringify(v)}) must be a string`);
    return v;
  }

  stringList(field: string): string[] {
    if (!this.has(field)) return [];
    const v = this.raw[field];
    if (!Array.isArray(v) || !v.every((s) => typeof s === "string")) this.fail(field, "must be a list of strings");
    return v;
  }

  list(field: string, length: number): unknown[] {
    const v = this.get(field);
    if (!Array.isArray(v)) this.fail(field, "must be a list");
    if (v.length !== length) this.fail(field, `has ${v.length} entries but "num_hidden_layers" is ${length}`);
    return v;
  }

  /** A token id, null, or (as some configs have) a list whose first entry is used. */
  tokenId(field: string): number | null {
    if (!this.has(field)) return null;
    const raw = this.raw[field];
    const v = Array.isArray(raw) ? raw[0] : raw;
    if (!Number.isSafeInteger(v) || (v as number) < 0) this.fail(field, `(${JSON.stringify(raw)}) must be a token id or null`);
    return v as number;
  }
}

/** ALiBi base slopes for n heads; non-powers of two interleave the slopes of the next power (remote code). */
function baseSlopes(n: number): number[] {
  const powerOf2 = (m: number) => {
    const start = 2 ** -(2 ** -(Math.log2(m) - 3));
    return Array.from({ length: m }, (_, i) => start * start ** i);
  };
  if (Number.isInteger(Math.log2(n))) return powerOf2(n);
  const closest = 2 ** Math.floor(Math.log2(n));
  return [...powerOf2(closest), ...baseSlopes(2 * closest).filter((_, i) => i % 2 === 0).slice(0, n - closest)];
}

/** Per-head decay rates s_{l,h} of layer l: base_h · (1 − l/(L−1) + 1e-5), remote-code formula (docs/architecture.md §3.4.2). */
export function slopes(config: ModelConfig, layer: number): Float32Array {
  const L = config.numLayers;
  if (!Number.isInteger(layer) || layer < 0 || layer >= L) {
    throw new InputError(`slopes: layer ${layer} out of range [0, ${L})`);
  }
  const factor = L <= 1 ? 1 + 1e-5 : 1 - layer / (L - 1) + 1e-5;
  return Float32Array.from(baseSlopes(config.numHeads), (s) => s * factor);
}
