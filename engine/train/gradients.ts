/**
 * Where a backward pass puts its results: f32 gradients of the checkpoint's weights (allocated on first use,
 * zeros for weights nothing reached, e.g. experts no token was routed to) and the gradients of the hooked
 * activations that were asked for.
 */
import type { Checkpoint } from "../checkpoint.ts";
import { hookNames, matchesFilter } from "../hooks.ts";
import { InputError } from "../errors.ts";
import { Tensor } from "../tensor.ts";
import type { LayerType } from "../config.ts";
import type { Batch } from "./batch.ts";

/** Hook names whose values are not differentiable (indices, the recurrent state after the pass) or that the training
 *  forward does not build (the n × n scores and pattern). */
const NOT_DIFFERENTIABLE = /(\.hook_topk_idx|\.hook_state|\.hook_scores|\.hook_pattern)$/;

/** The hook names that have gradients, in the order the forward pass fires them. */
export function differentiableHookNames(layerTypes: readonly LayerType[]): string[] {
  return hookNames(layerTypes).filter((n) => !NOT_DIFFERENTIABLE.test(n));
}

/** Hooks that the training forward cannot run (it never builds their values). */
export const UNSUPPORTED_TRAINING_HOOKS = /(\.hook_scores|\.hook_pattern)$/;

export class WeightGradients {
  private readonly grads = new Map<string, Float32Array>();

  /** `buffers`: arrays kept from an earlier pass (by weight name), zeroed and written again instead of new ones;
   *  the arrays this pass allocates are added to it. */
  constructor(private readonly checkpoint: Checkpoint, private readonly buffers?: Map<string, Float32Array>) {}

  /** The gradient of weight `name` (a tied LM head adds into the embedding's). */
  of(name: string, numel: number): Float32Array {
    const key = this.canonical(name);
    let g = this.grads.get(key);
    if (!g) {
      const kept = this.buffers?.get(key);
      g = kept?.length === numel ? kept.fill(0) : new Float32Array(numel);
      this.buffers?.set(key, g);
      this.grads.set(key, g);
    }
    return g;
  }

  /** Every weight of the checkpoint, by its name, as an f32 tensor of its shape. */
  tensors(): Map<string, Tensor> {
    const out = new Map<string, Tensor>();
    for (const name of this.checkpoint.names()) {
      const shape = this.checkpoint.info(name).shape;
      out.set(name, new Tensor("F32", shape, this.of(name, shape.reduce((a, b) => a * b, 1))));
    }
    return out;
  }

  private canonical(name: string): string {
    const names = this.checkpoint.names();
    return name === "lm_head.weight" && !names.includes(name) ? "model.embed_tokens.weight" : name;
  }
}

export type ActivationFilter = readonly string[] | RegExp;

/** Gradients of the activations at the hook names asked for, per sequence. */
export class ActivationGradients {
  readonly values = new Map<string, Tensor[]>();

  constructor(private readonly filter: ActivationFilter | undefined, private readonly batch: Batch) {}

  /** Checks that every named hook exists and has a gradient. */
  static check(filter: ActivationFilter | undefined, layerTypes: readonly LayerType[]): void {
    if (filter === undefined || filter instanceof RegExp) return;
    if (!Array.isArray(filter)) throw new InputError("activationGrads must be an array of hook names or a RegExp");
    const known = new Set(differentiableHookNames(layerTypes));
    for (const name of filter) {
      if (known.has(name)) continue;
      const why = hookNames(layerTypes).includes(name) ? "has no gradient" : "is not a hook name of this model";
      throw new InputError(`activationGrads: "${name}" ${why} (differentiable hooks: embed, blocks.{L}.hook_resid_pre, ` +
        "blocks.{L}.ln1.hook_normalized, blocks.{L}.attn.hook_q/k/v/z, blocks.{L}.lightning.hook_q/k/v/o/gate, " +
        "blocks.{L}.hook_attn_out, blocks.{L}.hook_resid_mid, blocks.{L}.ln2.hook_normalized, " +
        "blocks.{L}.moe.hook_router_logits/hook_topk_weights/hook_expert_out, blocks.{L}.hook_mlp_out, blocks.{L}.hook_resid_post, " +
        "ln_final.hook_normalized, logits)");
    }
  }

  wants(name: string): boolean {
    if (this.filter === undefined || NOT_DIFFERENTIABLE.test(name)) return false;
    return this.filter instanceof RegExp ? matchesFilter(this.filter, name) : this.filter.includes(name);
  }

  /** Records d loss / d(value at hook `name`), data [rows, ...rest] over the whole batch. */
  record(name: string, data: Float32Array, rest: readonly number[]): void {
    if (this.wants(name)) this.values.set(name, this.batch.split(data, rest));
  }
}
