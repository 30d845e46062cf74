/** Shared test utilities: fixture paths, relative error, temp dirs. */
import { copyFileSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { relativeDifference } from "../engine/analysis/diff.ts";
import { SafetensorsFile, writeSafetensors } from "../engine/safetensors.ts";
import { castTensor, type Tensor } from "../engine/tensor.ts";

export const ROOT = join(dirname(fileURLToPath(import.meta.url)), "..");
export const FIXTURES = join(ROOT, "test", "fixtures");
export const GOLDEN = join(FIXTURES, "golden");
export const TINY = join(GOLDEN, "tiny-m1");
export const TINY_ROPE8 = join(GOLDEN, "tiny-m1-rope8");
export const M1_FIXTURE = join(FIXTURES, "minimax-m1");

/** ||a - b|| / ||b|| in double precision (b is the reference). */
export function relErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} != ${b.length}`);
  return relativeDifference(b, a);
}

/** A fresh temporary directory, removed by the returned cleanup. */
export function tempDir(prefix = "m1-test-"): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** A seeded uniform [0, 1) generator (mulberry32). */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** len seeded uniform values in [lo, hi). */
export function randF32(len: number, seed: number, lo = -1, hi = 1): Float32Array {
  const r = rng(seed);
  const a = new Float32Array(len);
  for (let i = 0; i < len; i++) a[i] = lo + (hi - lo) * r();
  return a;
}

/** tiny-m1 twice in `dir`: `bf16/` with its weights rounded to BF16, `rounded/` holding the same values in f32. */
export function writeBf16Pair(dir: string): void {
  const src = SafetensorsFile.open(join(TINY, "model.safetensors"));
  const bf16: Record<string, Tensor> = {};
  const rounded: Record<string, Tensor> = {};
  for (const name of src.names()) {
    bf16[name] = castTensor(src.read(name), "BF16");
    rounded[name] = castTensor(bf16[name], "F32");
  }
  for (const [sub, tensors] of [["bf16", bf16], ["rounded", rounded]] as const) {
    mkdirSync(join(dir, sub));
    writeSafetensors(join(dir, sub, "model.safetensors"), tensors);
    copyFileSync(join(TINY, "config.json"), join(dir, sub, "config.json"));
  }
}
