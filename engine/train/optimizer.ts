// AdamW (Loshchilov & Hutter, decoupled weight decay) with bias correction and clipping by the global gradient
// norm, over f32 parameters. The update of one element, at step t with learning rate η (PyTorch's order):
//   θ ← θ · (1 − η·λ)                       decoupled weight decay (λ = weightDecay, matrices only)
//   m ← β1·m + (1 − β1)·g,  v ← β2·v + (1 − β2)·g²
//   θ ← θ − η/(1 − β1ᵗ) · m / (√v / √(1 − β2ᵗ) + ε)
// where g is the gradient after clipping: g · min(1, maxNorm / (‖g‖ + 1e-6)), ‖g‖ over every parameter at once.
// Every input is checked before anything is written, so a refused step leaves parameters and state unchanged.
// The update and the norm run natively (native/src/optimizer.cc): they touch every weight, at memory bandwidth.
import * as native from "../../native/index.ts";
import { InputError } from "../errors.ts";
import { Arena } from "./arena.ts";
import { checkLr, constantLr, type LrSchedule } from "./schedule.ts";

/** A trainable tensor: its f32 values (updated in place) and its shape. */
export interface Parameter {
  readonly name: string;
  readonly shape: readonly number[];
  readonly value: Float32Array;
  /** a BF16 copy (e.g. the weights a model runs on) that each step rewrites from the new values, rounded to nearest-even */
  readonly bf16?: Uint16Array;
}

export interface AdamWOptions {
  /** the learning rate, or a schedule of it per step */
  lr: number | LrSchedule;
  /** decay rates of the first and second moment estimates (default [0.9, 0.999]) */
  betas?: [number, number];
  /** added to √v̂ (default 1e-8) */
  eps?: number;
  /** decoupled weight decay λ, applied to parameters of two or more dimensions, not to norm gains (default 0) */
  weightDecay?: number;
  /** clip the gradients to this global L2 norm (default: no clipping) */
  maxGradNorm?: number;
}

export interface StepReport {
  /** the step just taken, from 1 */
  step: number;
  lr: number;
  /** ‖g‖ over every parameter, before clipping */
  gradNorm: number;
  /** the factor the gradients were multiplied by (1 when not clipped) */
  clipScale: number;
}

interface Slot {
  param: Parameter;
  m: Float32Array;
  v: Float32Array;
  decays: boolean;
}

export class AdamW {
  private readonly slots = new Map<string, Slot>();
  private readonly schedule: LrSchedule;
  private readonly beta1: number;
  private readonly beta2: number;
  private readonly eps: number;
  private readonly weightDecay: number;
  private readonly maxGradNorm: number;
  private t = 0;
  /** whether the moments hold values yet: they are zeroed at the first step (or the first look at them), as
   *  torch.optim creates its state at the first step, and restore writes them whole */
  private initialized = false;

  constructor(params: Iterable<Parameter>, options: AdamWOptions) {
    this.schedule = typeof options.lr === "function" ? options.lr : constantLr(options.lr);
    [this.beta1, this.beta2] = options.betas ?? [0.9, 0.999];
    for (const [i, b] of [this.beta1, this.beta2].entries()) {
      if (!(Number.isFinite(b) && b >= 0 && b < 1)) throw new InputError(`AdamW: betas[${i}] must be in [0, 1), got ${b}`);
    }
    this.eps = options.eps ?? 1e-8;
    if (!(Number.isFinite(this.eps) && this.eps > 0)) throw new InputError(`AdamW: eps must be a finite number > 0, got ${this.eps}`);
    this.weightDecay = options.weightDecay ?? 0;
    if (!(Number.isFinite(this.weightDecay) && this.weightDecay >= 0)) {
      throw new InputError(`AdamW: weightDecay must be a finite number ≥ 0, got ${this.weightDecay}`);
    }
    this.maxGradNorm = options.maxGradNorm ?? Infinity;
    if (!(this.maxGradNorm > 0)) throw new InputError(`AdamW: maxGradNorm must be a number > 0, got ${this.maxGradNorm}`);
    // the moments in a few large blocks (huge pages: a first touch faults once per 2 MiB, not per 4 KiB)
    const memory = new Arena();
    memory.reset();
    for (const param of params) {
      if (this.slots.has(param.name)) throw new InputError(`AdamW: parameter "${param.name}" is given twice`);
      const n = param.value.length;
      if (param.bf16 && param.bf16.length !== n) {
        throw new InputError(`AdamW: the BF16 copy of "${param.name}" has ${param.bf16.length} elements, the parameter ${n}`);
      }
      this.slots.set(param.name, { param, m: memory.take(n), v: memory.take(n), decays: param.shape.length >= 2 });
    }
  }

  /** Steps taken so far. */
  get steps(): number {
    return this.t;
  }

  /** The step count and each parameter's moment estimates (views of the live arrays), to save a run. */
  state(): { step: number; moments: Map<string, { m: Float32Array; v: Float32Array }> } {
    this.initialize();
    return { step: this.t, moments: new Map([...this.slots].map(([name, s]) => [name, { m: s.m, v: s.v }])) };
  }

  /** Continues from a saved state: the step count and every parameter's moments (checked before anything changes). */
  restore(state: { step: number; moments: ReadonlyMap<string, { m: Float32Array; v: Float32Array }> }): void {
    if (!(Number.isInteger(state.step) && state.step >= 0)) throw new InputError(`AdamW.restore: step must be an integer ≥ 0, got ${state.step}`);
    for (const [name, slot] of this.slots) {
      const saved = state.moments.get(name);
      if (!saved) throw new InputError(`AdamW.restore: no saved moments for parameter "${name}"`);
      if (saved.m.length !== slot.m.length || saved.v.length !== slot.v.length) {
        throw new InputError(`AdamW.restore: the saved moments of "${name}" have ${saved.m.length} elements, the parameter ${slot.m.length}`);
      }
    }
    for (const [name, slot] of this.slots) {
      const saved = state.moments.get(name)!;
      slot.m.set(saved.m);
      slot.v.set(saved.v);
    }
    this.initialized = true;
    this.t = state.step;
  }

  /** Bytes of optimiser state (the two moment estimates). */
  get stateBytes(): number {
    let bytes = 0;
    for (const s of this.slots.values()) bytes += s.m.byteLength + s.v.byteLength;
    return bytes;
  }

  /** The learning rate the next step will use. */
  get nextLr(): number {
    return this.schedule(this.t + 1);
  }

  /**
   * One update from gradients by parameter name (f32, the parameter's length). Parameters without a gradient are
   * left alone, as torch.optim skips parameters whose .grad is None.
   */
  step(grads: ReadonlyMap<string, Float32Array>): StepReport {
    const t = this.t + 1;
    const lr = this.schedule(t);
    checkLr("AdamW", `the learning rate of step ${t}`, lr);
    const updates: [Slot, Float32Array][] = [];
    for (const [name, g] of grads) {
      const slot = this.slots.get(name);
      if (!slot) throw new InputError(`AdamW: gradient for "${name}", which is not a parameter of this optimiser`);
      if (g.length !== slot.param.value.length) {
        throw new InputError(`AdamW: gradient for "${name}" has ${g.length} elements, the parameter [${slot.param.shape.join(",")}] has ${slot.param.value.length}`);
      }
      updates.push([slot, g]);
    }
    let sumSq = 0;
    for (const [slot, g] of updates) {
      const s = native.sumSquares(g);
      if (!Number.isFinite(s)) throw new InputError(`AdamW: the gradient of "${slot.param.name}" is not finite (NaN or Inf); nothing was updated`);
      sumSq += s;
    }
    const gradNorm = Math.sqrt(sumSq);
    const clipScale = gradNorm > this.maxGradNorm ? this.maxGradNorm / (gradNorm + 1e-6) : 1;

    this.initialize();
    this.t = t;
    const constants = {
      gradScale: clipScale, beta1: this.beta1, beta2: this.beta2, eps: this.eps,
      stepSize: lr / (1 - this.beta1 ** t),
      invSqrtBc2: 1 / Math.sqrt(1 - this.beta2 ** t),
    };
    for (const [slot, g] of updates) {
      native.adamw(slot.param.value, g, slot.m, slot.v, { ...constants, decay: slot.decays ? 1 - lr * this.weightDecay : 1 }, slot.param.bf16);
    }
    return { step: t, lr, gradNorm, clipScale };
  }

  private initialize(): void {
    if (this.initialized) return;
    for (const s of this.slots.values()) {
      s.m.fill(0);
      s.v.fill(0);
    }
    this.initialized = true;
  }
}
