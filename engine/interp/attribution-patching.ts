/**
 * Attribution patching (Nanda's AtP): activation patching to first order. One forward and one backward pass of the
 * corrupted prompts (every pair's, packed into one batch) give d metric / d a at every hook point; patching a from its
 * corrupted to its clean value then changes the metric by about (a_clean − a_corrupted) · d metric / d a. The
 * estimates come back as PatchingResults of the same sweeps as ActivationPatching (per pair, and their mean), so the
 * two can be compared cell by cell.
 */
import type { Tensor } from "../tensor.ts";
import { InputError } from "../errors.ts";
import { PatchingResult } from "./result.ts";
import { expertContributions } from "./experts.ts";
import { metricGradient } from "./metric.ts";
import type { ActivationPatching, PatchingPair } from "./patching.ts";

export class AttributionPatching {
  private constructor(
    readonly patching: ActivationPatching,
    /** per pair: d metric / d activation of its corrupted run, by hook name ([n, ...]) */
    readonly gradients: readonly ReadonlyMap<string, Tensor>[],
  ) {}

  /** The backward pass of the corrupted runs with the gradient at every differentiable hook point. */
  static async compute(patching: ActivationPatching, options: { signal?: AbortSignal } = {}): Promise<AttributionPatching> {
    const { model, pairs } = patching;
    const vocab = model.config.vocabSize;
    const tape = await model.forwardForBackward(pairs.map((p) => p.corruptedIds), { activationGrads: /^(embed|blocks\.)/, signal: options.signal });
    const dLogits = pairs.map((pair, i) => {
      const n = pair.tokens;
      const d = new Float32Array(n * vocab);
      d.set(metricGradient(pair.metric, tape.logits[i].f32.subarray((n - 1) * vocab, n * vocab)), (n - 1) * vocab);
      return d;
    });
    const g = await tape.backward(dLogits);
    return new AttributionPatching(patching, pairs.map((_, i) => new Map([...g.activations].map(([name, perSequence]) => [name, perSequence[i]]))));
  }

  /** First-order estimates of ActivationPatching.positions(hook). */
  positions(hook: string): PatchingResult {
    const ap = this.patching;
    const layers = ap.layersWith(hook);
    return new PatchingResult(ap.positionAxes(`Attribution patching (first-order estimate): blocks.{layer}.${hook}, one position at a time`, layers), ap.pairs.map((pair, i) => ({
      clean: pair.clean, corrupted: pair.corrupted,
      values: layers.flatMap((l) => {
        const [delta, grad] = this.deltaAndGradient(pair, i, `blocks.${l}.${hook}`);
        const width = delta.length / pair.tokens;
        return ap.labels.map((_, p) => (p < pair.tokens ? pair.corrupted + dot(delta, grad, p * width, (p + 1) * width) : null));
      }),
    })));
  }

  /** First-order estimates of ActivationPatching.heads(). */
  heads(): PatchingResult {
    const ap = this.patching;
    const { numHeads: nh, headDim: d, layerTypes } = ap.model.config;
    return new PatchingResult(ap.headAxes("Attribution patching (first-order estimate): each head's output at every position"), ap.pairs.map((pair, i) => ({
      clean: pair.clean, corrupted: pair.corrupted,
      values: layerTypes.flatMap((type, l) => {
        const [delta, grad] = this.deltaAndGradient(pair, i, `blocks.${l}.${type === "softmax" ? "attn.hook_z" : "lightning.hook_o"}`);
        return Array.from({ length: nh }, (_, h) => {
          let sum = 0;
          for (let t = 0; t < pair.tokens; t++) sum += dot(delta, grad, (t * nh + h) * d, (t * nh + h + 1) * d);
          return pair.corrupted + sum;
        });
      }),
    })));
  }

  /** First-order estimates of ActivationPatching.experts(). */
  experts(): PatchingResult {
    const ap = this.patching;
    const cfg = ap.model.config;
    return new PatchingResult(ap.expertAxes("Attribution patching (first-order estimate): one expert's weighted output at every position"), ap.pairs.map((pair, i) => ({
      clean: pair.clean, corrupted: pair.corrupted,
      values: cfg.layerTypes.flatMap((_, l) => {
        const grad = this.gradients[i].get(`blocks.${l}.hook_mlp_out`)!.f32;
        const clean = expertContributions(cfg, l, (name) => pair.cleanActs.get(name)!);
        const corrupt = expertContributions(cfg, l, (name) => pair.corruptActs.get(name)!);
        return clean.map((c, e) => {
          let sum = 0;
          for (let j = 0; j < grad.length; j++) sum += (c[j] - corrupt[e][j]) * grad[j];
          return pair.corrupted + sum;
        });
      }),
    })));
  }

  /** a_clean − a_corrupted and d metric / d a at hook `name` of pair `pair` (index i), both [n, ...] f32. */
  private deltaAndGradient(pair: PatchingPair, i: number, name: string): [Float64Array, Float32Array] {
    const clean = pair.cleanActs.get(name)!.f32, corrupt = pair.corruptActs.get(name)!.f32;
    const grad = this.gradients[i].get(name);
    if (!grad) throw new InputError(`"${name}" has no gradient: attribution patching needs a differentiable hook point`);
    return [Float64Array.from(clean, (x, j) => x - corrupt[j]), grad.f32];
  }
}

function dot(a: Float64Array, b: Float32Array, from: number, to: number): number {
  let s = 0;
  for (let i = from; i < to; i++) s += a[i] * b[i];
  return s;
}
