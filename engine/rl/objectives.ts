/**
 * Policy-gradient objectives on rollouts (MiniMax-M1 paper §3.1; docs/rl.md has the formulas):
 *
 *   CISPO  J = (1/Σ|o_i|) Σ_i Σ_t sg(clip(r_t, 1-ε_low, 1+ε_high)) · A_i · log π(o_t)      (ε_low large: no lower bound)
 *   CISPO with the mask (unified form): the summand times M_t, M_t = 0 if (A>0 and r>1+ε_high) or (A<0 and r<1-ε_low)
 *   DAPO   J = (1/Σ|o_i|) Σ_i Σ_t min(r_t A_i, clip(r_t, 1-ε_low, 1+ε_high) A_i)
 *   GRPO   J = (1/#groups) Σ_groups (1/G) Σ_i (1/|o_i|) Σ_t min(r_t A_i, clip(r_t, 1-ε, 1+ε) A_i)   (no KL term)
 *   REINFORCE with the group baseline  J = (1/Σ|o_i|) Σ_i Σ_t A_i · log π(o_t)
 *
 * with r_t = exp(logp_new_t − logp_old_t) and the group advantage A_i = (R_i − mean R) / (std_unbiased R + 1e-6)
 * (0 when every reward of the group is equal). The loss is −J; its derivative by each logp_new_t is the weight that
 * the backward pass multiplies into −d log π(o_t)/dθ (the model's `tokenWeights`). Computed in double precision.
 */
import { InputError } from "../errors.ts";

export type ObjectiveName = "cispo" | "cispo_mask" | "dapo" | "grpo" | "reinforce";
export const OBJECTIVES: readonly ObjectiveName[] = ["cispo", "cispo_mask", "dapo", "grpo", "reinforce"];

export interface ClipRange {
  epsLow: number;
  epsHigh: number;
}

/** Each objective's clip range as the paper and its references set it (CISPO: no lower bound, ε_high 0.28). */
export const DEFAULT_CLIP: Record<ObjectiveName, ClipRange> = {
  cispo: { epsLow: 1e9, epsHigh: 0.28 },
  cispo_mask: { epsLow: 0.2, epsHigh: 0.28 },
  dapo: { epsLow: 0.2, epsHigh: 0.28 },
  grpo: { epsLow: 0.2, epsHigh: 0.2 },
  reinforce: { epsLow: Infinity, epsHigh: Infinity },
};

/** One sampled completion as the objective sees it. */
export interface ScoredSequence {
  /** index of its prompt's group */
  group: number;
  advantage: number;
  /** log-probability of each completion token under the rollout policy */
  logpOld: ArrayLike<number>;
  /** the same under the policy being trained */
  logpNew: ArrayLike<number>;
  /** tokens that count (default all): 0 drops a token (e.g. one the thinking budget forced), 1 keeps it */
  mask?: ArrayLike<number>;
}

export interface ObjectiveResult {
  /** −J */
  loss: number;
  /** d loss / d logp_new per token of each sequence */
  gradLogpNew: Float64Array[];
  /** per sequence and token: whether the clip range bound (CISPO: the IS weight clipped; PPO-style: the
   *  update dropped, its gradient zero) */
  clipped: Uint8Array[];
  /** r_t per sequence and token */
  ratios: Float64Array[];
}

/** Group advantages: (R − mean) / (unbiased std + 1e-6) within each group, 0 for a group whose rewards are all equal. */
export function groupAdvantages(rewards: readonly number[], groups: readonly number[]): number[] {
  if (rewards.length !== groups.length) throw new InputError(`groupAdvantages: ${rewards.length} rewards for ${groups.length} group indices`);
  const members = new Map<number, number[]>();
  groups.forEach((g, i) => (members.get(g) ?? members.set(g, []).get(g)!).push(i));
  const out = new Array<number>(rewards.length).fill(0);
  for (const idx of members.values()) {
    const r = idx.map((i) => rewards[i]);
    if (r.every((x) => x === r[0])) continue;
    const mean = r.reduce((a, b) => a + b, 0) / r.length;
    const std = Math.sqrt(r.reduce((a, b) => a + (b - mean) ** 2, 0) / (r.length - 1));
    for (const i of idx) out[i] = (rewards[i] - mean) / (std + 1e-6);
  }
  return out;
}

/** DAPO's dynamic sampling: the indices of groups whose rewards are not all equal (the others carry no gradient). */
export function informativeGroups(rewards: readonly number[], groups: readonly number[]): Set<number> {
  const first = new Map<number, number>();
  const mixed = new Set<number>();
  groups.forEach((g, i) => {
    if (!first.has(g)) first.set(g, rewards[i]);
    else if (first.get(g) !== rewards[i]) mixed.add(g);
  });
  return mixed;
}

/** The loss and its per-token gradient for one objective over a batch of sequences. */
export function objective(name: ObjectiveName, sequences: readonly ScoredSequence[], clip: ClipRange = DEFAULT_CLIP[name]): ObjectiveResult {
  if (!OBJECTIVES.includes(name)) throw new InputError(`unknown objective "${name}" (one of ${OBJECTIVES.join(", ")})`);
  const lo = 1 - clip.epsLow;
  const hi = 1 + clip.epsHigh;
  const counts = sequences.map((s, i) => {
    if (s.logpOld.length !== s.logpNew.length) throw new InputError(`sequence ${i}: ${s.logpOld.length} rollout log-probabilities, ${s.logpNew.length} current ones`);
    if (s.mask && s.mask.length !== s.logpNew.length) throw new InputError(`sequence ${i}: mask has ${s.mask.length} entries for ${s.logpNew.length} tokens`);
    let n = 0;
    for (let t = 0; t < s.logpNew.length; t++) n += s.mask ? s.mask[t] : 1;
    return n;
  });
  // the normaliser each sequence's tokens are divided by
  const scale = new Float64Array(sequences.length);
  if (name === "grpo") {
    const size = new Map<number, number>();
    for (const s of sequences) size.set(s.group, (size.get(s.group) ?? 0) + 1);
    sequences.forEach((s, i) => (scale[i] = counts[i] > 0 ? 1 / (size.size * size.get(s.group)! * counts[i]) : 0));
  } else {
    const total = counts.reduce((a, b) => a + b, 0);
    scale.fill(total > 0 ? 1 / total : 0);
  }
  let J = 0;
  const gradLogpNew: Float64Array[] = [];
  const clipped: Uint8Array[] = [];
  const ratios: Float64Array[] = [];
  sequences.forEach((s, i) => {
    const n = s.logpNew.length;
    const A = s.advantage;
    const g = new Float64Array(n);
    const c = new Uint8Array(n);
    const rs = new Float64Array(n);
    for (let t = 0; t < n; t++) {
      const m = s.mask ? s.mask[t] : 1;
      const logp = s.logpNew[t];
      const r = Math.exp(logp - s.logpOld[t]);
      rs[t] = r;
      const rc = Math.min(Math.max(r, lo), hi);
      let term: number; // the summand of J
      let dterm: number; // its derivative by logp_new
      switch (name) {
        case "cispo":
        case "cispo_mask": {
          const keep = name === "cispo" || !((A > 0 && r > hi) || (A < 0 && r < lo)) ? 1 : 0;
          term = keep * rc * A * logp;
          dterm = keep * rc * A;
          c[t] = rc !== r ? 1 : 0;
          break;
        }
        case "dapo":
        case "grpo": {
          // min(r A, clip(r) A): the clipped branch is constant, so its token has no gradient when it is the smaller
          const unclipped = r * A;
          const bounded = rc * A;
          term = Math.min(unclipped, bounded);
          dterm = unclipped <= bounded ? r * A : 0;
          c[t] = unclipped > bounded ? 1 : 0;
          break;
        }
        case "reinforce":
          term = A * logp;
          dterm = A;
          break;
      }
      if (!m) {
        c[t] = 0;
        continue;
      }
      J += scale[i] * term;
      g[t] = -scale[i] * dterm;
    }
    gradLogpNew.push(g);
    clipped.push(c);
    ratios.push(rs);
  });
  return { loss: -J, gradLogpNew, clipped, ratios };
}
