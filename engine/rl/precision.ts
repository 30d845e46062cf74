/**
 * The precision finding of MiniMax-M1 §3.2 (Fig. 3): the probability a rollout engine gives a token and the one the
 * training path gives the same token should be equal; with the LM head computed in BF16 they drift apart (the paper:
 * correlation 0.987, raised to 0.997 with an FP32 head). Here: the same tokens' probabilities with the head in f32
 * (the engine's own path: f32 activations, f32 accumulation) and with the head in BF16 (its input and its logits
 * rounded to BF16, as a BF16 GEMM computes them), and their Pearson correlation.
 */
import type { Model } from "../model.ts";
import { Tensor, bf16ToF32, f32ToBf16 } from "../tensor.ts";
import type { HookFn } from "../hooks.ts";
import { completionLogprobs } from "./rollout.ts";

export interface HeadPrecision {
  /** per completion token: probability with the f32 head and with the BF16 head */
  f32: number[];
  bf16: number[];
  correlation: number;
  /** largest |p_f32 − p_bf16| */
  maxDifference: number;
}

/** A hook that replaces its value by the value rounded to BF16 (nearest, ties to even). */
const roundToBf16: HookFn = (value) => new Tensor("F32", [...value.shape], value.f32.map((v) => bf16ToF32(f32ToBf16(v))));

/** Probabilities of each completion token of each sequence under both heads. */
export async function headPrecision(model: Model, sequences: readonly { prompt: readonly number[]; completion: readonly number[] }[]): Promise<HeadPrecision> {
  const f32: number[] = [];
  const bf16: number[] = [];
  for (const s of sequences) f32.push(...(await completionLogprobs(model, s.prompt, s.completion)).map(Math.exp));
  const hooks: [string, HookFn][] = [["ln_final.hook_normalized", roundToBf16], ["logits", roundToBf16]];
  await model.hooks.with(hooks, async () => {
    for (const s of sequences) bf16.push(...(await completionLogprobs(model, s.prompt, s.completion)).map(Math.exp));
  });
  let maxDifference = 0;
  f32.forEach((p, i) => (maxDifference = Math.max(maxDifference, Math.abs(p - bf16[i]))));
  return { f32, bf16, correlation: pearson(f32, bf16), maxDifference };
}

export function pearson(x: readonly number[], y: readonly number[]): number {
  const n = x.length;
  const mx = x.reduce((a, b) => a + b, 0) / n;
  const my = y.reduce((a, b) => a + b, 0) / n;
  let sxy = 0, sxx = 0, syy = 0;
  for (let i = 0; i < n; i++) {
    sxy += (x[i] - mx) * (y[i] - my);
    sxx += (x[i] - mx) ** 2;
    syy += (y[i] - my) ** 2;
  }
  return sxy / Math.sqrt(sxx * syy);
}
