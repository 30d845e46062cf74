// Learning-rate schedules: the learning rate of optimiser step t (t = 1, 2, …), as a function.
import { InputError } from "../errors.ts";

/** The learning rate of step t (counted from 1, as the optimiser's bias correction counts). */
export type LrSchedule = (step: number) => number;

/** The same learning rate at every step. */
export function constantLr(lr: number): LrSchedule {
  checkLr("constantLr", "lr", lr);
  return () => lr;
}

export interface WarmupCosineOptions {
  /** the learning rate at the end of the warm-up */
  peak: number;
  /** steps of linear warm-up from peak/warmup to peak (0: start at the peak) */
  warmupSteps: number;
  /** the step at which the cosine reaches `min`; later steps stay at `min` */
  totalSteps: number;
  /** the floor of the cosine (default 0) */
  min?: number;
}

/**
 * Linear warm-up, then half a cosine down to `min`:
 *   t ≤ W:      lr = peak · t / W
 *   W < t ≤ T:  lr = min + (peak − min) · (1 + cos(π · (t − W) / (T − W))) / 2
 *   t > T:      lr = min
 */
export function warmupCosine(o: WarmupCosineOptions): LrSchedule {
  const min = o.min ?? 0;
  checkLr("warmupCosine", "peak", o.peak);
  checkLr("warmupCosine", "min", min);
  if (!Number.isInteger(o.warmupSteps) || o.warmupSteps < 0) throw new InputError(`warmupCosine: warmupSteps must be an integer ≥ 0, got ${o.warmupSteps}`);
  if (!Number.isInteger(o.totalSteps) || o.totalSteps <= o.warmupSteps) {
    throw new InputError(`warmupCosine: totalSteps must be an integer greater than warmupSteps (${o.warmupSteps}), got ${o.totalSteps}`);
  }
  return (t) => {
    if (t <= o.warmupSteps) return (o.peak * t) / o.warmupSteps;
    if (t >= o.totalSteps) return min;
    const progress = (t - o.warmupSteps) / (o.totalSteps - o.warmupSteps);
    return min + ((o.peak - min) * (1 + Math.cos(Math.PI * progress))) / 2;
  };
}

/** A learning rate must be a finite number ≥ 0. */
export function checkLr(where: string, field: string, lr: number): void {
  if (typeof lr !== "number" || !Number.isFinite(lr) || lr < 0) {
    throw new InputError(`${where}: ${field} must be a finite number ≥ 0, got ${lr}`);
  }
}
