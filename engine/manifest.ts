// The driver manifest: a checkpoint described for the native driver (native/driver), which has no config or
// checkpoint logic of its own. It is the model's native spec (DecoderLayerSpec per layer, as the engine builds it)
// with every weight replaced by where it lies on disk, file paths relative to the manifest's folder.
import path from "node:path";
import type { Checkpoint } from "./checkpoint.ts";
import { slopes, type ModelConfig } from "./config.ts";
import { InputError } from "./errors.ts";
import { decoderLayerSpec, type WeightSource } from "./layers.ts";
import type { DType } from "./tensor.ts";

/** A weight in a file (`shape`'s elements of `dtype`, contiguous from byte `offset`), or drawn from a seed
 *  (uniform in [-scale, scale), native/driver/manifest.cc). */
export type TensorRef =
  | { file: string; offset: number; dtype: DType; shape: number[] }
  | { random: { seed: number; scale: number }; dtype: DType; shape: number[] };

export const MANIFEST_FORMAT = "m1-driver-manifest";

/** The manifest of a checkpoint: file paths relative to `manifestDir`. */
export function driverManifest(ckpt: Checkpoint, manifestDir: string): Record<string, unknown> {
  const ref = (name: string, shape: number[]): TensorRef => {
    const at = ckpt.location(name, shape);
    return { file: path.relative(manifestDir, at.file), offset: at.byteOffset, dtype: at.dtype, shape: at.shape };
  };
  const cfg = ckpt.config;
  return { ...manifest(cfg, cfg.layerTypes.map((_, l) => l), cfg.vocabSize, ref), checkpoint: path.relative(manifestDir, ckpt.dir) || "." };
}

/**
 * A model with the shapes and constants of `cfg` (e.g. the real M1 config at full width) and seeded random weights:
 * the given layers of it, with a vocabulary of `vocab` (small, for timing layers), nothing on disk.
 */
export function randomManifest(cfg: ModelConfig, layers: number[], options: { vocab: number; seed: number; dtype: "F32" | "BF16" }): Record<string, unknown> {
  for (const l of layers) {
    if (!Number.isInteger(l) || l < 0 || l >= cfg.numLayers) throw new InputError(`layer ${l} is not in [0, ${cfg.numLayers}) (${cfg.source})`);
  }
  let seed = options.seed * 100_003 + 1;
  const ref = (_name: string, shape: number[]): TensorRef =>
    // matrices ~ 1/sqrt(fan-in) (activations keep their scale), norm weights around ±1
    ({ random: { seed: seed++ % 2 ** 32, scale: shape.length === 2 ? 1 / Math.sqrt(shape[1]) : 1 }, dtype: options.dtype, shape });
  return manifest(cfg, layers, options.vocab, ref);
}

function manifest(cfg: ModelConfig, layers: number[], vocab: number, ref: (name: string, shape: number[]) => TensorRef): Record<string, unknown> {
  const hidden = cfg.hiddenSize;
  const refs = { weight: ref, vector: (name: string, length: number) => ref(name, [length]) } as unknown as WeightSource;
  return {
    format: MANIFEST_FORMAT,
    version: 1,
    vocab,
    hidden,
    eps: cfg.rmsNormEps,
    eos: cfg.eosTokenId !== null && cfg.eosTokenId < vocab ? cfg.eosTokenId : null,
    embed: ref("model.embed_tokens.weight", [vocab, hidden]),
    norm: ref("model.norm.weight", [hidden]),
    lmHead: ref("lm_head.weight", [vocab, hidden]),
    layers: layers.map((l) => {
      const spec = decoderLayerSpec(cfg, l, refs, cfg.layerTypes[l] === "lightning" ? slopes(cfg, l) : null);
      return spec.lightning ? { ...spec, lightning: { ...spec.lightning, slopes: Array.from(spec.lightning.slopes) } } : spec;
    }),
  };
}
