// Statistics of a run with several samples per item, as benchmark reports give them: the mean score (each item
// weighs the same), its standard error over items, a percentile bootstrap confidence interval (items resampled
// with replacement, seeded), and the unbiased pass@k estimator of Chen et al. 2021 (arXiv 2107.03374, eq. 1).
import { Rng } from "../../engine/sampling.ts";

export interface ScoreStats {
  items: number;
  /** samples graded, over all items */
  samples: number;
  /** mean over items of each item's mean score */
  mean: number;
  /** standard deviation of the item means over √items (0 with one item) */
  stderr: number;
  /** 95% percentile bootstrap interval of the mean */
  ci95: [number, number];
  /** k → unbiased pass@k over items with at least k samples (a sample passes when it scores 1) */
  passAtK: Record<number, number>;
}

const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;

/** pass@k for one item with n samples of which c passed: 1 − C(n−c, k) / C(n, k), as a stable product. */
export function passAtK(n: number, c: number, k: number): number {
  if (k > n) throw new RangeError(`pass@${k} needs at least ${k} samples, the item has ${n}`);
  if (n - c < k) return 1;
  let fail = 1;
  for (let i = n - c + 1; i <= n; i++) fail *= 1 - k / i;
  return 1 - fail;
}

/** `scores[i]` are item i's sample scores. `ks` defaults to 1 and the powers of two up to the fewest samples. */
export function scoreStats(scores: number[][], options: { ks?: number[]; resamples?: number; seed?: number } = {}): ScoreStats | null {
  const items = scores.filter((s) => s.length > 0);
  if (items.length === 0) return null;
  const means = items.map(mean);
  const m = mean(means);
  const sd = items.length > 1 ? Math.sqrt(means.reduce((a, x) => a + (x - m) ** 2, 0) / (items.length - 1)) : 0;
  const fewest = Math.min(...items.map((s) => s.length));
  const ks = options.ks ?? [1, 2, 4, 8, 16, 32, 64].filter((k) => k <= fewest);
  const passAt: Record<number, number> = {};
  for (const k of ks.filter((k) => k <= fewest)) passAt[k] = mean(items.map((s) => passAtK(s.length, s.filter((x) => x >= 1).length, k)));
  return { items: items.length, samples: items.reduce((a, s) => a + s.length, 0), mean: m, stderr: sd / Math.sqrt(items.length), ci95: bootstrap(means, options.resamples ?? 2000, options.seed ?? 0), passAtK: passAt };
}

function bootstrap(means: number[], resamples: number, seed: number): [number, number] {
  const rng = new Rng(seed);
  const n = means.length;
  const stats = new Float64Array(resamples);
  for (let b = 0; b < resamples; b++) {
    let sum = 0;
    for (let i = 0; i < n; i++) sum += means[Math.floor(rng.next() * n)];
    stats[b] = sum / n;
  }
  stats.sort();
  const at = (q: number) => stats[Math.min(resamples - 1, Math.max(0, Math.round(q * (resamples - 1))))];
  return [at(0.025), at(0.975)];
}
