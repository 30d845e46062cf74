// Two experiment knobs on the MoE router during generation, as hooks on `blocks.{L}.moe.hook_topk_idx|weights`:
// a routing log (per forward position, the experts chosen in each layer and their weights) and an expert
// threshold: of the top-k experts, keep those whose renormalised weight reaches the threshold (always the
// first), and renormalise the kept weights to sum 1. A dropped expert's weight is 0, so it adds nothing to the
// layer's output and the MoE does not compute it (native.expertRowsComputed counts the rows it does compute); the
// parameters it would have used are counted as saved.
import type { HookFn, HookFilter } from "./hooks.ts";
import { InputError } from "./errors.ts";

export interface LayerRouting {
  layer: number;
  experts: number[];
  weights: number[];
}

/** Keeps, in each of the n rows of k weights (sorted high to low, summing to 1), those ≥ threshold (at least one); returns how many were dropped. */
export function applyExpertThreshold(weights: Float32Array, n: number, k: number, threshold: number): number {
  let dropped = 0;
  for (let t = 0; t < n; t++) {
    const row = weights.subarray(t * k, (t + 1) * k);
    let best = 0;
    for (let j = 1; j < k; j++) if (row[j] > row[best]) best = j;
    let kept = 0;
    for (let j = 0; j < k; j++) {
      if (j !== best && row[j] < threshold) {
        row[j] = 0;
        dropped++;
      } else kept += row[j];
    }
    for (let j = 0; j < k; j++) row[j] /= kept;
  }
  return dropped;
}

const IDX = /^blocks\.(\d+)\.moe\.hook_topk_idx$/;
const WEIGHTS = /^blocks\.(\d+)\.moe\.hook_topk_weights$/;

/** The hooks of one generation: the threshold (when given) and a log of the last position's routing per forward pass. */
export class ExpertRouting {
  /** expert slots dropped by the threshold, over every position forwarded */
  dropped = 0;
  /** positions forwarded (prompt and generated) */
  positions = 0;
  private latest: LayerRouting[] = [];
  private lastIdx = new Map<number, Int32Array>();

  constructor(readonly threshold: number | undefined, readonly log: boolean) {
    if (threshold !== undefined && !(threshold >= 0 && threshold <= 1)) throw new InputError(`expertThreshold must be a number in [0, 1], got ${threshold}`);
  }

  hooks(): [HookFilter, HookFn][] {
    return [
      [(name) => IDX.test(name), (value, ctx) => void this.lastIdx.set(ctx.layer!, value.i32)],
      [(name) => WEIGHTS.test(name), (value, ctx) => {
        const [n, k] = value.shape;
        const weights = value.f32;
        if (ctx.layer === 0) {
          this.positions += n;
          this.latest = [];
        }
        if (this.threshold !== undefined) this.dropped += applyExpertThreshold(weights, n, k, this.threshold);
        if (this.log) {
          const idx = this.lastIdx.get(ctx.layer!)!;
          const last = (n - 1) * k;
          this.latest.push({ layer: ctx.layer!, experts: [...idx.subarray(last, last + k)], weights: [...weights.subarray(last, last + k)] });
        }
      }],
    ];
  }

  /** The routing of the newest forward pass's last position (the one whose logits chose the next token). */
  takeLatest(): LayerRouting[] {
    const r = this.latest;
    this.latest = [];
    return r;
  }
}
