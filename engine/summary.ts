/**
 * What `m1 info` reports about a checkpoint or a bare config: architecture, parameter counts, bytes per
 * layer and the shard files each layer needs — all computed from the config and the shard index.
 */
import { existsSync, statSync } from "node:fs";
import { join, dirname } from "node:path";
import { loadConfig, type ModelConfig } from "./config.ts";
import { countParameters, layerBytes, layerShards, loadShardIndex, tensorShapes } from "./plan.ts";
import { Checkpoint } from "./checkpoint.ts";

export interface ArchitectureSummary {
  source: string;
  format: ModelConfig["format"];
  architecture: {
    hiddenSize: number; layers: number; lightningLayers: number; softmaxLayers: number[];
    heads: number; headDim: number; kvHeads: number; rotaryDim: number; ropeTheta: number; blockSize: number;
    experts: number; topK: number; intermediateSize: number; vocabSize: number; tiedEmbeddings: boolean;
    residual: { alpha: ModelConfig["alpha"]; beta: ModelConfig["beta"]; postnorm: boolean };
  };
  parameters: { total: number; activePerToken: number; embedding: number; lmHead: number };
  bytes: { total: number; dtypeSource: "checkpoint" | "assumed"; assumption: string | null; perLayer: { layer: number; type: string; bytes: number }[] };
  cache: { kvBytesPerTokenF32: number; lightningStateBytesF32: number };
  shards: null | { index: string; files: number; tensors: number; totalSize: number | null; missingTensors: string[]; unexpectedTensors: string[]; perLayer: { layer: number; files: string[] }[] };
}

/** `target`: a checkpoint directory or a config.json (a shard index beside it is used when present). */
export function architectureSummary(target: string): ArchitectureSummary {
  const config = loadConfig(target);
  const dir = statSync(target).isDirectory() ? target : dirname(target);
  const params = countParameters(config);
  const weightsFile = join(dir, "model.safetensors");
  const indexFile = join(dir, "model.safetensors.index.json");
  const hasWeights = existsSync(weightsFile) || (existsSync(indexFile) && shardsPresent(indexFile, dir));
  const checkpoint = hasWeights ? Checkpoint.open(dir, { config }) : null;
  const bytes = layerBytes(config, checkpoint ? (name) => checkpoint.info(name).dtype : undefined);
  checkpoint?.close();
  const softmaxLayers = config.layerTypes.flatMap((t, l) => (t === "softmax" ? [l] : []));
  return {
    source: config.source,
    format: config.format,
    architecture: {
      hiddenSize: config.hiddenSize,
      layers: config.numLayers,
      lightningLayers: config.numLayers - softmaxLayers.length,
      softmaxLayers,
      heads: config.numHeads,
      headDim: config.headDim,
      kvHeads: config.numKvHeads,
      rotaryDim: config.rotaryDim,
      ropeTheta: config.ropeTheta,
      blockSize: config.blockSize,
      experts: config.numExperts,
      topK: config.topK,
      intermediateSize: config.intermediateSize,
      vocabSize: config.vocabSize,
      tiedEmbeddings: config.tieWordEmbeddings,
      residual: { alpha: config.alpha, beta: config.beta, postnorm: config.postnorm },
    },
    parameters: { total: params.total, activePerToken: params.activePerToken, embedding: params.embedding, lmHead: params.lmHead },
    bytes: {
      total: bytes.total,
      dtypeSource: bytes.dtypeSource,
      assumption: bytes.assumption,
      perLayer: bytes.perLayer.map(({ layer, bytes }) => ({ layer, type: config.layerTypes[layer], bytes })),
    },
    cache: {
      kvBytesPerTokenF32: softmaxLayers.length * 2 * config.numKvHeads * config.headDim * 4,
      lightningStateBytesF32: (config.numLayers - softmaxLayers.length) * config.numHeads * config.headDim * config.headDim * 4,
    },
    shards: existsSync(indexFile) ? shardSummary(config, indexFile) : null,
  };
}

function shardsPresent(indexFile: string, dir: string): boolean {
  const files = new Set(Object.values(loadShardIndex(indexFile).weight_map));
  return [...files].every((f) => existsSync(join(dir, f)));
}

function shardSummary(config: ModelConfig, indexFile: string): NonNullable<ArchitectureSummary["shards"]> {
  const index = loadShardIndex(indexFile);
  const expected = new Set(tensorShapes(config).keys());
  const present = new Set(Object.keys(index.weight_map));
  const totalSize = index.metadata.total_size;
  return {
    index: indexFile,
    files: new Set(Object.values(index.weight_map)).size,
    tensors: present.size,
    totalSize: typeof totalSize === "number" ? totalSize : null,
    missingTensors: [...expected].filter((n) => !present.has(n)),
    unexpectedTensors: [...present].filter((n) => !expected.has(n)),
    perLayer: config.layerTypes.map((_, layer) => ({ layer, files: layerShards(index, layer) })),
  };
}

const fmt = (x: number) => x.toLocaleString("en-US");
const gib = (b: number) => `${(b / 2 ** 30).toFixed(2)} GiB`;

export function formatSummary(s: ArchitectureSummary): string {
  const a = s.architecture;
  const pattern = runLength(Array.from({ length: a.layers }, (_, l) => (a.softmaxLayers.includes(l) ? "S" : "L")).join(""));
  const lines = [
    `${s.source} (${s.format} format)`,
    `  layers        ${a.layers}: ${a.lightningLayers} lightning + ${a.softmaxLayers.length} softmax  [${pattern}]  (softmax at ${a.softmaxLayers.join(", ")})`,
    `  width         hidden ${a.hiddenSize}, ${a.heads} heads x ${a.headDim}, ${a.kvHeads} KV heads, rotary ${a.rotaryDim} (theta ${a.ropeTheta}), lightning block ${a.blockSize}`,
    `  MoE           ${a.experts} experts, top-${a.topK}, intermediate ${a.intermediateSize}`,
    `  vocab         ${a.vocabSize}${a.tiedEmbeddings ? " (tied embeddings)" : ""}`,
    `  residual      alpha ${a.residual.alpha.lightning}/${a.residual.alpha.softmax}/${a.residual.alpha.mlp} (lightning/softmax/mlp), beta ${a.residual.beta.lightning}/${a.residual.beta.softmax}/${a.residual.beta.mlp}, postnorm ${a.residual.postnorm}`,
    `  parameters    ${fmt(s.parameters.total)} total; ${fmt(s.parameters.activePerToken)} active per token (excluding embedding and LM head)`,
    `  weights       ${fmt(s.bytes.total)} bytes (${gib(s.bytes.total)}), dtypes ${s.bytes.dtypeSource}${s.bytes.assumption ? `: ${s.bytes.assumption}` : ""}`,
    `  per layer     ${summarizeLayerBytes(s)}`,
    `  cache (f32)   KV ${fmt(s.cache.kvBytesPerTokenF32)} bytes per token; lightning state ${fmt(s.cache.lightningStateBytesF32)} bytes per sequence`,
  ];
  if (s.shards) {
    const sh = s.shards;
    lines.push(`  shards        ${sh.files} files, ${fmt(sh.tensors)} tensors (${sh.missingTensors.length} missing, ${sh.unexpectedTensors.length} unexpected)${sh.totalSize !== null ? `, total_size ${fmt(sh.totalSize)}` : ""}`);
    for (const { layer, files } of sh.perLayer) lines.push(`    layer ${String(layer).padStart(3)} needs ${files.length} shard files: ${files.join(" ")}`);
  }
  return lines.join("\n") + "\n";
}

function summarizeLayerBytes(s: ArchitectureSummary): string {
  const byType = new Map<string, number>();
  for (const { type, bytes } of s.bytes.perLayer) byType.set(`${type} ${fmt(bytes)}`, (byType.get(`${type} ${fmt(bytes)}`) ?? 0) + 1);
  return [...byType].map(([k, count]) => `${count} x ${k}`).join("; ") + " bytes";
}

function runLength(pattern: string): string {
  const m = /^(.+?)\1+$/.exec(pattern);
  return m ? `${m[1]} x ${pattern.length / m[1].length}` : pattern;
}
