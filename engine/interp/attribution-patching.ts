/**
 * Attribution patching (Nanda's AtP): activation patching to first order. One forward and one backward pass of the
 * corrupted prompt give d metric / d a at every hook point; patching a from its corrupted to its clean value then
 * changes the metric by about (a_clean − a_corrupted) · d metric / d a. The estimates come back as PatchingResults of
 * the same sweeps as ActivationPatching, so the two can be compared cell by cell.
 */
import type { Tensor } from "../tensor.ts";
import { InputError } from "../errors.ts";
import { PatchingResult } from "./result.ts";
import { expertContributions } from "./experts.ts";
import { metricGradient } from "./metric.ts";
import type { ActivationPatching } from "./patching.ts";

export class AttributionPatching {
  private constructor(
    readonly patching: ActivationPatching,
    /** d metric / d activation of the corrupted run, by hook name ([n, ...]) */
    readonly gradients: ReadonlyMap<string, Tensor>,
  ) {}

  /** The backward pass of the corrupted run with the gradient at every differentiable hook point. */
  static async compute(patching: ActivationPatching, options: { signal?: AbortSignal } = {}): Promise<AttributionPatching> {
    const model = patching.model;
    const vocab = model.config.vocabSize;
    const n = patching.tokens;
    const tape = await model.forwardForBackward([patching.corruptedIds], { activationGrads: /^(embed|blocks\.)/, signal: options.signal });
    const last = tape.logits[0].f32.subarray((n - 1) * vocab, n * vocab);
    const dLogits = new Float32Array(n * vocab);
    dLogits.set(metricGradient(patching.metric, last), (n - 1) * vocab);
    const g = await tape.backward([dLogits]);
    return new AttributionPatching(patching, new Map([...g.activations].map(([name, perSequence]) => [name, perSequence[0]])));
  }

  /** First-order estimates of ActivationPatching.positions(hook). */
  positions(hook: string): PatchingResult {
    const ap = this.patching;
    const layers = ap.layersWith(hook);
    const n = ap.tokens;
    const values = layers.flatMap((l) => {
      const name = `blocks.${l}.${hook}`;
      const [delta, grad] = this.deltaAndGradient(name);
      const width = delta.length / n;
      return Array.from({ length: n }, (_, p) => ap.corrupted + dot(delta, grad, p * width, (p + 1) * width));
    });
    return new PatchingResult({
      title: `Attribution patching (first-order estimate): blocks.{layer}.${hook}, one position at a time`,
      rowLabels: layers.map((l) => ap.layerLabel(l)), rowName: "layer", rows: layers,
      columnLabels: ap.labels, columnName: "position", columns: ap.labels.map((_, p) => p),
      values, clean: ap.clean, corrupted: ap.corrupted,
    });
  }

  /** First-order estimates of ActivationPatching.heads(). */
  heads(): PatchingResult {
    const ap = this.patching;
    const { numHeads: nh, headDim: d, layerTypes } = ap.model.config;
    const values = layerTypes.flatMap((type, l) => {
      const [delta, grad] = this.deltaAndGradient(`blocks.${l}.${type === "softmax" ? "attn.hook_z" : "lightning.hook_o"}`);
      return Array.from({ length: nh }, (_, h) => {
        let sum = 0;
        for (let t = 0; t < ap.tokens; t++) sum += dot(delta, grad, (t * nh + h) * d, (t * nh + h + 1) * d);
        return ap.corrupted + sum;
      });
    });
    return new PatchingResult({
      title: "Attribution patching (first-order estimate): each head's output at every position",
      rowLabels: layerTypes.map((_, l) => ap.layerLabel(l)), rowName: "layer", rows: layerTypes.map((_, l) => l),
      columnLabels: Array.from({ length: nh }, (_, h) => `head ${h}`), columnName: "head", columns: Array.from({ length: nh }, (_, h) => h),
      values, clean: ap.clean, corrupted: ap.corrupted,
    });
  }

  /** First-order estimates of ActivationPatching.experts(). */
  experts(): PatchingResult {
    const ap = this.patching;
    const cfg = ap.model.config;
    const values = cfg.layerTypes.flatMap((_, l) => {
      const grad = this.gradients.get(`blocks.${l}.hook_mlp_out`)!.f32;
      const clean = expertContributions(cfg, l, (name) => ap.cleanActs.get(name)!);
      const corrupt = expertContributions(cfg, l, (name) => ap.corruptActs.get(name)!);
      return clean.map((c, e) => {
        let sum = 0;
        for (let i = 0; i < grad.length; i++) sum += (c[i] - corrupt[e][i]) * grad[i];
        return ap.corrupted + sum;
      });
    });
    return new PatchingResult({
      title: "Attribution patching (first-order estimate): one expert's weighted output at every position",
      rowLabels: cfg.layerTypes.map((_, l) => ap.layerLabel(l)), rowName: "layer", rows: cfg.layerTypes.map((_, l) => l),
      columnLabels: Array.from({ length: cfg.numExperts }, (_, e) => `expert ${e}`), columnName: "expert", columns: Array.from({ length: cfg.numExperts }, (_, e) => e),
      values, clean: ap.clean, corrupted: ap.corrupted,
    });
  }

  /** a_clean − a_corrupted and d metric / d a at hook `name`, both [n, ...] f32. */
  private deltaAndGradient(name: string): [Float64Array, Float32Array] {
    const clean = this.patching.cleanActs.get(name)!.f32, corrupt = this.patching.corruptActs.get(name)!.f32;
    const grad = this.gradients.get(name);
    if (!grad) throw new InputError(`"${name}" has no gradient: attribution patching needs a differentiable hook point`);
    return [Float64Array.from(clean, (x, i) => x - corrupt[i]), grad.f32];
  }
}

function dot(a: Float64Array, b: Float32Array, from: number, to: number): number {
  let s = 0;
  for (let i = from; i < to; i++) s += a[i] * b[i];
  return s;
}
