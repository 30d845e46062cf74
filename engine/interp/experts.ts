/** Each expert's share of a MoE output, from a run's recorded slots and router weights. */
import type { ModelConfig } from "../config.ts";
import type { Tensor } from "../tensor.ts";

/**
 * Per expert e of layer l, [n, hidden]: Σ over the slots j where token t chose e of w[t, j] · slot[t, j]; the experts'
 * shares sum to the layer's MoE output (hook_mlp_out). Reads blocks.{l}.moe.hook_expert_out, hook_topk_idx and
 * hook_topk_weights through `get`.
 */
export function expertContributions(cfg: ModelConfig, l: number, get: (name: string) => Tensor): Float32Array[] {
  const { numExperts: ne, topK: k, hiddenSize: hs } = cfg;
  const slots = get(`blocks.${l}.moe.hook_expert_out`).f32;
  const idx = get(`blocks.${l}.moe.hook_topk_idx`).i32;
  const weights = get(`blocks.${l}.moe.hook_topk_weights`).f32;
  const n = idx.length / k;
  const out = Array.from({ length: ne }, () => new Float32Array(n * hs));
  for (let t = 0; t < n; t++) {
    for (let j = 0; j < k; j++) {
      const e = idx[t * k + j], w = weights[t * k + j];
      const dst = out[e].subarray(t * hs, (t + 1) * hs);
      const src = slots.subarray((t * k + j) * hs, (t * k + j + 1) * hs);
      for (let i = 0; i < hs; i++) dst[i] += w * src[i];
    }
  }
  return out;
}
