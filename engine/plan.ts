// Real-scale accounting from a config (and a shard index): tensor names and shapes, parameter counts,
// bytes per layer and which shard files a layer lives in. Nothing here is typed in; it all follows from the config.
import fs from "node:fs";
import path from "node:path";
import type { ModelConfig } from "./config.ts";
import { CheckpointError } from "./errors.ts";
import { DTYPE_BYTES, shapeNumel, type DType } from "./tensor.ts";

/** Every canonical (hub-name) tensor of the model → its shape [out, in] (docs/architecture.md §6.1). */
export function tensorShapes(c: ModelConfig): Map<string, number[]> {
  const H = c.hiddenSize, inner = c.numHeads * c.headDim, kv = c.numKvHeads * c.headDim, F = c.intermediateSize;
  const m = new Map<string, number[]>();
  m.set("model.embed_tokens.weight", [c.vocabSize, H]);
  c.layerTypes.forEach((type, l) => {
    const p = `model.layers.${l}.`;
    m.set(`${p}input_layernorm.weight`, [H]);
    m.set(`${p}post_attention_layernorm.weight`, [H]);
    if (type === "lightning") {
      m.set(`${p}self_attn.qkv_proj.weight`, [3 * inner, H]);
      m.set(`${p}self_attn.output_gate.weight`, [inner, H]);
      m.set(`${p}self_attn.out_proj.weight`, [H, inner]);
      m.set(`${p}self_attn.norm.weight`, [inner]);
    } else {
      m.set(`${p}self_attn.q_proj.weight`, [inner, H]);
      m.set(`${p}self_attn.k_proj.weight`, [kv, H]);
      m.set(`${p}self_attn.v_proj.weight`, [kv, H]);
      m.set(`${p}self_attn.o_proj.weight`, [H, inner]);
    }
    m.set(`${p}block_sparse_moe.gate.weight`, [c.numExperts, H]);
    for (let e = 0; e < c.numExperts; e++) {
      m.set(`${p}block_sparse_moe.experts.${e}.w1.weight`, [F, H]);
      m.set(`${p}block_sparse_moe.experts.${e}.w3.weight`, [F, H]);
      m.set(`${p}block_sparse_moe.experts.${e}.w2.weight`, [H, F]);
    }
  });
  m.set("model.norm.weight", [H]);
  if (!c.tieWordEmbeddings) m.set("lm_head.weight", [c.vocabSize, H]);
  return m;
}

export interface LayerParams {
  layer: number;
  type: "lightning" | "softmax";
  attention: number; // projections, plus the lightning output norm
  router: number;
  experts: number; // all experts of the layer
  norms: number; // input and post-attention RMSNorm
  total: number;
}

export interface ParameterCount {
  total: number;
  activePerToken: number; // excludes the embedding and the LM head (the paper's 45.9B convention)
  embedding: number;
  lmHead: number; // 0 when tied to the embedding
  finalNorm: number;
  perLayer: LayerParams[];
}

export function countParameters(c: ModelConfig): ParameterCount {
  const shapes = tensorShapes(c);
  const size = (name: string) => shapeNumel(shapes.get(name) ?? []);
  const expertParams = 3 * c.intermediateSize * c.hiddenSize; // w1, w3, w2
  const perLayer: LayerParams[] = c.layerTypes.map((type, l) => {
    const p = `model.layers.${l}.`;
    const attention = [...shapes.keys()]
      .filter((n) => n.startsWith(`${p}self_attn.`))
      .reduce((s, n) => s + size(n), 0);
    const router = size(`${p}block_sparse_moe.gate.weight`);
    const experts = c.numExperts * expertParams;
    const norms = size(`${p}input_layernorm.weight`) + size(`${p}post_attention_layernorm.weight`);
    return { layer: l, type, attention, router, experts, norms, total: attention + router + experts + norms };
  });
  const embedding = size("model.embed_tokens.weight");
  const lmHead = c.tieWordEmbeddings ? 0 : size("lm_head.weight");
  const finalNorm = size("model.norm.weight");
  const sum = (f: (x: LayerParams) => number) => perLayer.reduce((s, x) => s + f(x), 0);
  return {
    total: sum((x) => x.total) + embedding + lmHead + finalNorm,
    activePerToken: sum((x) => x.attention + x.router + c.topK * expertParams + x.norms) + finalNorm,
    embedding,
    lmHead,
    finalNorm,
    perLayer,
  };
}

export interface ByteCount {
  /** "checkpoint": dtypes read from the safetensors headers; "assumed": BF16 with the router gate in F32. */
  dtypeSource: "checkpoint" | "assumed";
  assumption: string | null;
  perLayer: { layer: number; bytes: number }[];
  embedding: number;
  lmHead: number;
  finalNorm: number;
  total: number;
}

const ASSUMPTION = "dtypes not read from a checkpoint: BF16 everywhere except the router gate in F32 (docs/architecture.md §6.3)";

/**
 * Storage bytes per layer. `dtypeOf` gives each canonical tensor's real dtype (e.g. `n => checkpoint.info(n).dtype`);
 * without it the released M1 layout is assumed, which reproduces the index's total_size.
 */
export function layerBytes(c: ModelConfig, dtypeOf?: (name: string) => DType): ByteCount {
  const dtype = dtypeOf ?? ((n: string) => (n.endsWith(".block_sparse_moe.gate.weight") ? "F32" : "BF16"));
  const bytes = (name: string, shape: number[]) => shapeNumel(shape) * DTYPE_BYTES[dtype(name)];
  const perLayer = c.layerTypes.map((_, layer) => ({ layer, bytes: 0 }));
  let embedding = 0, lmHead = 0, finalNorm = 0;
  for (const [name, shape] of tensorShapes(c)) {
    const layer = layerOf(name);
    if (layer !== null) perLayer[layer].bytes += bytes(name, shape);
    else if (name === "model.embed_tokens.weight") embedding = bytes(name, shape);
    else if (name === "lm_head.weight") lmHead = bytes(name, shape);
    else finalNorm = bytes(name, shape);
  }
  return {
    dtypeSource: dtypeOf ? "checkpoint" : "assumed",
    assumption: dtypeOf ? null : ASSUMPTION,
    perLayer,
    embedding,
    lmHead,
    finalNorm,
    total: perLayer.reduce((s, x) => s + x.bytes, 0) + embedding + lmHead + finalNorm,
  };
}

function layerOf(name: string): number | null {
  const m = /^model\.layers\.(\d+)\./.exec(name);
  return m ? Number(m[1]) : null;
}

export interface ShardIndex {
  path: string;
  metadata: Record<string, unknown>;
  weight_map: Record<string, string>;
}

/** Read and validate a model.safetensors.index.json. */
export function loadShardIndex(file: string): ShardIndex {
  let json: unknown;
  try {
    json = JSON.parse(fs.readFileSync(file, "utf8"));
  } catch (e) {
    throw new CheckpointError(`${file}: cannot read shard index (${(e as Error).message})`, { cause: e });
  }
  const obj = json as Record<string, unknown> | null;
  const wm = obj?.weight_map;
  if (typeof wm !== "object" || wm === null || Array.isArray(wm)) {
    throw new CheckpointError(`${file}: shard index needs a "weight_map" object`);
  }
  for (const [name, shard] of Object.entries(wm)) {
    // Shards live beside the index: no absolute paths, no "..".
    if (typeof shard !== "string" || shard === "" || path.isAbsolute(shard) || shard.split(/[\\/]/).includes("..")) {
      throw new CheckpointError(`${file}: weight_map entry for tensor "${name}" is ${JSON.stringify(shard)}, not a shard file name`);
    }
  }
  const meta = obj?.metadata;
  return {
    path: file,
    metadata: typeof meta === "object" && meta !== null ? (meta as Record<string, unknown>) : {},
    weight_map: wm as Record<string, string>,
  };
}

/** Shard files (as named in the index, sorted) that hold tensors of model.layers.{layer}. */
export function layerShards(index: { weight_map: Record<string, string> }, layer: number): string[] {
  const prefix = `model.layers.${layer}.`;
  const files = new Set<string>();
  for (const [name, file] of Object.entries(index.weight_map)) if (name.startsWith(prefix)) files.add(file);
  return [...files].sort();
}
