// FLOPs of a training step (forward + backward), counted from the config: 2 FLOPs per multiply-add of every matrix
// product a token meets (attention projections, router, its top-k experts, LM head), plus the attention cores per
// sequence: lightning in the block form (per block of m rows and head of d: QKᵀ and (QKᵀ⊙D)·V, 4·m²·d, the
// inter-block q·S and the state update kᵀv, 4·m·d²) and causal softmax attention (QKᵀ and P·V over the i ≥ j
// pairs, 4·d·n(n+1)/2 per head). The backward pass costs twice the forward (input and weight gradients of each
// product), so a step is 3× the forward: the usual model-FLOPs count, without recomputation, norms, activations
// or the optimiser (element-wise, memory-bound).
import type { ModelConfig } from "../../engine/config.ts";

export function forwardFlops(cfg: ModelConfig, lengths: readonly number[]): number {
  const h = cfg.hiddenSize, d = cfg.headDim, H = cfg.numHeads, KV = cfg.numKvHeads;
  const tokens = lengths.reduce((a, b) => a + b, 0);
  let perToken = 2 * h * cfg.vocabSize; // LM head
  let cores = 0;
  for (const type of cfg.layerTypes) {
    perToken += 2 * h * cfg.numExperts + cfg.topK * 3 * 2 * h * cfg.intermediateSize;
    if (type === "lightning") {
      perToken += 2 * h * 4 * H * d + 2 * H * d * h; // qkv + output gate, out_proj
      for (const n of lengths) {
        for (let s = 0; s < n; s += cfg.blockSize) {
          const m = Math.min(cfg.blockSize, n - s);
          cores += H * (4 * m * m * d + 4 * m * d * d);
        }
      }
    } else {
      perToken += 2 * h * (H + 2 * KV) * d + 2 * H * d * h; // q, k, v, o_proj
      for (const n of lengths) cores += H * 4 * d * ((n * (n + 1)) / 2);
    }
  }
  return perToken * tokens + cores;
}

export function trainingStepFlops(cfg: ModelConfig, lengths: readonly number[]): number {
  return 3 * forwardFlops(cfg, lengths);
}
