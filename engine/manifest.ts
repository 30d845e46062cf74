// The driver manifest: a checkpoint described for the native driver (native/driver), which has no config or
// checkpoint logic of its own. It is the model's native spec (DecoderLayerSpec per layer, as the engine builds it)
// with every weight replaced by where it lies on disk, file paths relative to the manifest's folder.
import path from "node:path";
import type { Checkpoint } from "./checkpoint.ts";
import { slopes } from "./config.ts";
import { decoderLayerSpec, type WeightSource } from "./layers.ts";
import type { DType } from "./tensor.ts";

/** A weight in a file: `shape`'s elements of `dtype`, contiguous from byte `offset`. */
export interface TensorRef {
  file: string;
  offset: number;
  dtype: DType;
  shape: number[];
}

export const MANIFEST_FORMAT = "m1-driver-manifest";

export function driverManifest(ckpt: Checkpoint, manifestDir: string): Record<string, unknown> {
  const cfg = ckpt.config;
  const { vocabSize: vocab, hiddenSize: hidden } = cfg;
  const ref = (name: string, shape: number[]): TensorRef => {
    const at = ckpt.location(name, shape);
    return { file: path.relative(manifestDir, at.file), offset: at.byteOffset, dtype: at.dtype, shape: at.shape };
  };
  const refs = { weight: ref, vector: (name: string, length: number) => ref(name, [length]) } as unknown as WeightSource;
  const layers = cfg.layerTypes.map((type, l) => {
    const spec = decoderLayerSpec(cfg, l, refs, type === "lightning" ? slopes(cfg, l) : null);
    return spec.lightning ? { ...spec, lightning: { ...spec.lightning, slopes: Array.from(spec.lightning.slopes) } } : spec;
  });
  return {
    format: MANIFEST_FORMAT,
    version: 1,
    checkpoint: path.relative(manifestDir, ckpt.dir) || ".",
    vocab,
    hidden,
    eps: cfg.rmsNormEps,
    eos: cfg.eosTokenId,
    embed: ref("model.embed_tokens.weight", [vocab, hidden]),
    norm: ref("model.norm.weight", [hidden]),
    lmHead: ref("lm_head.weight", [vocab, hidden]),
    layers,
  };
}
