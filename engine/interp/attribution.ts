/**
 * Direct logit attribution and residual decomposition for the postnorm M1 stack (docs/interpretability.md).
 *
 * With every RMSNorm's scale 1/rms frozen at its value in a traced run, each norm is a fixed diagonal map, so the
 * final residual stream at a position is exactly a sum of one term per component output:
 *
 *   x_out = α_m·N2(h) + β_m·MoE        h = α_a·N1(x_in) + β_a·Attn        (postnorm; prenorm drops N1, N2 here)
 *
 * Walking back from the last layer, a component's term is its output times the product of the α's and frozen norm
 * diagonals after it (and its own β). Attention splits into heads (softmax: o_proj of one head's z; lightning: out_proj
 * of one head's gated, normed o, the norm's shared scale frozen), the MoE into experts (weight × expert output).
 * Projected on the final norm (its scale frozen too) and the unembedding direction of a token or a token pair,
 * the terms sum to that logit or logit difference.
 */
import { tableFromArrays, type Table } from "apache-arrow";
import * as native from "../../native/index.ts";
import type { Trace } from "../trace.ts";
import type { Model } from "../model.ts";
import { Tensor } from "../tensor.ts";
import { InputError } from "../errors.ts";
import { Figure } from "../figure.ts";
import { DISPLAY, htmlBundle, escapeHtml, type MimeBundle } from "../display.ts";
import { tokenText, tokenId } from "../analysis/tokens.ts";
import { expertContributions } from "./experts.ts";

/** A token (id or its text), or a pair [a, b] for the logit difference a − b. */
export type LogitTarget = number | string | readonly [number | string, number | string];

export interface Component {
  /** "embed", "blocks.3.attn", "blocks.3.attn.head1", "blocks.3.mlp", "blocks.3.mlp.expert2" */
  readonly name: string;
  readonly layer: number | null;
  readonly kind: "embed" | "attention" | "head" | "mlp" | "expert";
  /** head or expert index, else null */
  readonly index: number | null;
  /** the component's term of the final residual stream at the position (before the final norm) */
  readonly vector: Float64Array;
  /** its direct contribution to the target logit (difference) */
  readonly logit: number;
}

/** One prompt's decomposition. */
export interface PromptAttribution {
  readonly trace: Trace;
  readonly position: number;
  /** e.g. `logit("7") − logit("2")` */
  readonly targetLabel: string;
  /** embed, then per layer: attention, its heads, mlp, its experts */
  readonly components: readonly Component[];
  /** the target logit (difference) of the traced run */
  readonly actual: number;
}

/**
 * The decomposition of one prompt, or of a dataset of prompts (each with its own target and position if it likes):
 * the components, the run's value and every view below are then the mean over the prompts; `.table()` has every
 * prompt's terms and `.prompt(i)` one prompt's decomposition.
 */
export class LogitAttribution {
  readonly model: Model;
  readonly components: readonly Component[];
  readonly actual: number;
  readonly targetLabel: string;

  private constructor(readonly prompts: readonly PromptAttribution[]) {
    this.model = prompts[0].trace.model;
    const mean = (f: (p: PromptAttribution) => number) => prompts.reduce((s, p) => s + f(p), 0) / prompts.length;
    this.components = prompts.length === 1 ? prompts[0].components : prompts[0].components.map((c, i) => ({
      ...c,
      vector: c.vector.map((_, d) => mean((p) => p.components[i].vector[d])),
      logit: mean((p) => p.components[i].logit),
    }));
    this.actual = mean((p) => p.actual);
    const labels = new Set(prompts.map((p) => p.targetLabel));
    this.targetLabel = labels.size === 1 ? [...labels][0] : "each prompt's target";
  }

  /**
   * The decomposition at `position` (default: the last) of a trace that recorded every hook (Trace.run's default), or
   * of several traces (e.g. from Trace.runBatch): `target` is shared or given per prompt as a function of its index;
   * `position` is shared or defaults to each trace's last.
   */
  static of(trace: Trace, target: LogitTarget, position?: number): LogitAttribution;
  static of(traces: readonly Trace[], target: LogitTarget | ((prompt: number) => LogitTarget), position?: number): LogitAttribution;
  static of(traces: Trace | readonly Trace[], target: LogitTarget | ((prompt: number) => LogitTarget), position?: number): LogitAttribution {
    const list = Array.isArray(traces) ? traces as readonly Trace[] : [traces as Trace];
    if (list.length === 0) throw new InputError("logit attribution: no traces given");
    const models = new Set(list.map((t) => t.model));
    if (models.size > 1) throw new InputError("logit attribution: the traces come from different models");
    return new LogitAttribution(list.map((trace, i) => {
      try {
        return decompose(trace, typeof target === "function" ? target(i) : target, position ?? trace.tokens - 1);
      } catch (e) {
        throw e instanceof InputError && list.length > 1 ? new InputError(`prompt ${i}: ${e.message}`) : e;
      }
    }));
  }

  /** Prompt i's own decomposition. */
  prompt(i: number): LogitAttribution {
    const p = this.prompts[i];
    if (!Number.isInteger(i) || !p) throw new InputError(`prompt ${i} is outside the ${this.prompts.length} prompts of this attribution`);
    return new LogitAttribution([p]);
  }

  /** The terms that partition the final residual: the embedding and each layer's attention and MoE. */
  get stack(): Component[] {
    return this.components.filter((c) => c.kind === "embed" || c.kind === "attention" || c.kind === "mlp");
  }

  /** Σ of the stack's direct contributions: the target logit (difference) with the norms' scales frozen. */
  get total(): number {
    return this.stack.reduce((s, c) => s + c.logit, 0);
  }

  /** Per layer: the attention and MoE contributions. */
  layers(): { layer: number; type: string; attention: number; mlp: number }[] {
    const types = this.model.config.layerTypes;
    return types.map((type, l) => ({
      layer: l, type,
      attention: this.find(`blocks.${l}.attn`).logit,
      mlp: this.find(`blocks.${l}.mlp`).logit,
    }));
  }

  /** [layer][head] direct contributions. */
  heads(): number[][] {
    return this.grid("head", this.model.config.numHeads);
  }

  /** [layer][expert] direct contributions (0 where the router did not choose the expert at this position). */
  experts(): number[][] {
    return this.grid("expert", this.model.config.numExperts);
  }

  /** The running sum after each layer (embedding included): the last entry is the total. */
  accumulated(): number[] {
    let sum = this.find("embed").logit;
    return this.layers().map((l) => (sum += l.attention + l.mlp));
  }

  /** One row per prompt and component: the prompt, its position, the component's name, layer, kind, head/expert
   *  index, and its direct contribution to that prompt's target. */
  table(): Table {
    const c = this.prompts.flatMap((p, prompt) => p.components.map((x) => ({ prompt, position: p.position, ...x })));
    return tableFromArrays({
      prompt: Int32Array.from(c, (x) => x.prompt),
      position: Int32Array.from(c, (x) => x.position),
      component: c.map((x) => x.name),
      layer: Int32Array.from(c, (x) => x.layer ?? -1),
      kind: c.map((x) => x.kind),
      index: Int32Array.from(c, (x) => x.index ?? -1),
      logit: Float64Array.from(c, (x) => x.logit),
    });
  }

  plot(): Figure {
    const cfg = this.model.config;
    const layerLabels = cfg.layerTypes.map((t, l) => `${l} ${t}`);
    const layers = this.layers();
    const heads = this.heads(), experts = this.experts();
    const zmax = Math.max(...heads.flat().map(Math.abs), ...experts.flat().map(Math.abs), 1e-9);
    return new Figure(
      [
        { type: "bar", name: "attention", x: layerLabels, y: layers.map((l) => l.attention), xaxis: "x", yaxis: "y" },
        { type: "bar", name: "MoE", x: layerLabels, y: layers.map((l) => l.mlp), xaxis: "x", yaxis: "y" },
        { type: "scatter", mode: "lines+markers", name: "accumulated", x: layerLabels, y: this.accumulated(), xaxis: "x", yaxis: "y" },
        { type: "heatmap", z: heads, x: Array.from({ length: cfg.numHeads }, (_, h) => `head ${h}`), y: layerLabels, colorscale: "RdBu", reversescale: true, zmin: -zmax, zmax, xaxis: "x2", yaxis: "y2", showscale: false },
        { type: "heatmap", z: experts, x: Array.from({ length: cfg.numExperts }, (_, e) => `expert ${e}`), y: layerLabels, colorscale: "RdBu", reversescale: true, zmin: -zmax, zmax, xaxis: "x3", yaxis: "y3" },
      ],
      {
        height: 460, barmode: "group", legend: { orientation: "h", x: 0, y: -0.35 },
        xaxis: { domain: [0, 0.3], tickangle: -60 }, yaxis: { title: { text: "direct contribution" } },
        xaxis2: { domain: [0.42, 0.66], anchor: "y2" }, yaxis2: { anchor: "x2", autorange: "reversed" },
        xaxis3: { domain: [0.7, 0.94], anchor: "y3" }, yaxis3: { anchor: "x3", autorange: "reversed", showticklabels: false },
        annotations: [["per layer", "x"], ["per head", "x2"], ["per expert", "x3"]].map(([text, x]) => ({ text, showarrow: false, xref: `${x} domain`, yref: "paper", x: 0.5, y: 1.06 })),
      },
      `Direct logit attribution of ${this.targetLabel} ${this.where()} (every norm's scale frozen from the cache)`,
    );
  }

  [DISPLAY](): MimeBundle {
    const fig = this.plot()[DISPLAY]();
    const over = this.prompts.length > 1 ? `Mean over ${this.prompts.length} prompts (.table() has each prompt's terms, .prompt(i) one prompt's): ` : "";
    const note = `${over}${this.targetLabel} = ${this.actual.toFixed(5)} in the run; the direct contributions sum to ${this.total.toFixed(5)}. ` +
      "The final norm's scale and every layer norm's scale are frozen at their values in each run's cache (as " +
      "TransformerLens's apply_ln_to_stack does), which makes each contribution linear in its component's output.";
    return { ...fig, ...htmlBundle(`${fig["text/html"]}<p><small>${escapeHtml(note)}</small></p>`, `${fig["text/plain"]}\n${note}`) };
  }

  /** Where: one prompt's position, or how many prompts the mean is over. */
  private where(): string {
    if (this.prompts.length > 1) return `(mean over ${this.prompts.length} prompts)`;
    const { trace, position } = this.prompts[0];
    return `at ${trace.labels[position]}`;
  }

  private find(name: string): Component {
    return this.components.find((c) => c.name === name)!;
  }

  private grid(kind: "head" | "expert", width: number): number[][] {
    return this.model.config.layerTypes.map((_, l) => {
      const row = new Array<number>(width).fill(0);
      for (const c of this.components) if (c.kind === kind && c.layer === l) row[c.index!] = c.logit;
      return row;
    });
  }
}

/** One trace's decomposition at `position` (see the module comment). */
function decompose(trace: Trace, target: LogitTarget, position: number): PromptAttribution {
  const model = trace.model;
  const cfg = model.config;
  const { hiddenSize: hs, numHeads: nh, vocabSize: vocab, numLayers } = cfg;
  if (!(Number.isInteger(position) && position >= 0 && position < trace.tokens)) {
    throw new InputError(`position ${position} is outside the ${trace.tokens} positions of the trace`);
  }
  const [good, bad] = (Array.isArray(target) ? target : [target, null]).map((t) => (t === null ? null : tokenId(model, t)));
  const row = (name: string, width = hs) => trace.get(name).toFloat32().subarray(position * width, (position + 1) * width);
  const unembed = (id: number) => rowOf(model.weight("lm_head.weight", [vocab, hs]), id);

  // readout on the final residual: the final norm (scale frozen) then the unembedding direction
  const final = row(`blocks.${numLayers - 1}.hook_resid_post`);
  const readout = new Float64Array(hs);
  const finalNorm = frozenNorm(final, model.vector("model.norm.weight", hs), cfg.rmsNormEps);
  const [wGood, wBad] = [unembed(good!), bad === null ? null : unembed(bad)];
  for (let i = 0; i < hs; i++) readout[i] = finalNorm[i] * (wGood[i] - (wBad ? wBad[i] : 0));

  const term = (name: string, layer: number | null, kind: Component["kind"], index: number | null, coef: Float64Array, scale: number, output: ArrayLike<number>): Component => {
    const vector = new Float64Array(hs);
    let logit = 0;
    for (let i = 0; i < hs; i++) {
      vector[i] = scale * coef[i] * output[i];
      logit += readout[i] * vector[i];
    }
    return { name, layer, kind, index, vector, logit };
  };

  let coef: Float64Array = new Float64Array(hs).fill(1); // the diagonal map from the current point to the final residual
  const perLayer: Component[][] = new Array(numLayers);
  for (let l = numLayers - 1; l >= 0; l--) {
    const b = `blocks.${l}.`;
    const p = `model.layers.${l}.`;
    const lightning = cfg.layerTypes[l] === "lightning";
    const [alphaA, betaA] = [cfg.alpha[cfg.layerTypes[l]], cfg.beta[cfg.layerTypes[l]]];

    const mlp = [term(`${b}mlp`, l, "mlp", null, coef, cfg.beta.mlp, row(b + "hook_mlp_out"))];
    expertContributions(cfg, l, (name) => trace.get(name)).forEach((share, e) =>
      mlp.push(term(`${b}mlp.expert${e}`, l, "expert", e, coef, cfg.beta.mlp, share.subarray(position * hs, (position + 1) * hs))));
    coef = through(coef, cfg.alpha.mlp, cfg.postnorm ? frozenNorm(row(b + "hook_resid_mid"), model.vector(p + "post_attention_layernorm.weight", hs), cfg.rmsNormEps) : null);

    const attn = [term(`${b}attn`, l, "attention", null, coef, betaA, row(b + "hook_attn_out"))];
    const heads = lightning ? lightningHeads(trace, l, position) : softmaxHeads(trace, l, position);
    for (let h = 0; h < nh; h++) attn.push(term(`${b}attn.head${h}`, l, "head", h, coef, betaA, heads.subarray(h * hs, (h + 1) * hs)));
    coef = through(coef, alphaA, cfg.postnorm ? frozenNorm(row(b + "hook_resid_pre"), model.vector(p + "input_layernorm.weight", hs), cfg.rmsNormEps) : null);
    perLayer[l] = [...attn, ...mlp];
  }
  const components = [term("embed", null, "embed", null, coef, 1, row("embed")), ...perLayer.flat()];
  const logits = trace.logits.f32;
  const actual = logits[position * vocab + good!] - (bad === null ? 0 : logits[position * vocab + bad]);
  const text = (id: number) => JSON.stringify(tokenText(model, id));
  const label = bad === null ? `logit(${text(good!)})` : `logit(${text(good!)}) − logit(${text(bad)})`;
  return { trace, position, targetLabel: label, components, actual };
}

/** w ⊙ 1/sqrt(mean(x²) + eps): an RMSNorm of this x as a fixed diagonal. */
function frozenNorm(x: Float32Array, weight: Float32Array, eps: number): Float64Array {
  let ss = 0;
  for (const v of x) ss += v * v;
  const scale = 1 / Math.sqrt(ss / x.length + eps);
  return Float64Array.from(weight, (w) => w * scale);
}

/** The map to the final residual from before a residual sub-step: α times the frozen norm (postnorm) times it. */
function through(coef: Float64Array, alpha: number, norm: Float64Array | null): Float64Array {
  return coef.map((c, i) => alpha * c * (norm ? norm[i] : 1));
}

/** [heads, hidden]: o_proj applied to each head's z alone (they sum to the attention output). */
function softmaxHeads(trace: Trace, l: number, t: number): Float32Array {
  const { hiddenSize: hs, numHeads: nh, headDim: d } = trace.model.config;
  const z = trace.get(`blocks.${l}.attn.hook_z`).toFloat32().subarray(t * nh * d, (t + 1) * nh * d);
  return perHead(z, nh, d, trace.model.weight(`model.layers.${l}.self_attn.o_proj.weight`, [hs, nh * d]));
}

/** [heads, hidden]: out_proj of each head's slice of gate ⊙ RMSNorm(o), the norm's scale over all heads frozen. */
function lightningHeads(trace: Trace, l: number, t: number): Float32Array {
  const cfg = trace.model.config;
  const { hiddenSize: hs, numHeads: nh, headDim: d } = cfg;
  const inner = nh * d;
  const o = trace.get(`blocks.${l}.lightning.hook_o`).toFloat32().subarray(t * inner, (t + 1) * inner);
  const gate = trace.get(`blocks.${l}.lightning.hook_gate`).toFloat32().subarray(t * inner, (t + 1) * inner);
  const norm = frozenNorm(o, trace.model.vector(`model.layers.${l}.self_attn.norm.weight`, inner), cfg.lightningNormEps);
  const gated = Float32Array.from(o, (v, i) => gate[i] * v * norm[i]);
  return perHead(gated, nh, d, trace.model.weight(`model.layers.${l}.self_attn.out_proj.weight`, [hs, inner]));
}

/** Row h of the result = W · (x with every head but h zeroed). */
function perHead(x: Float32Array, nh: number, d: number, w: native.Weight): Float32Array {
  const masked = new Float32Array(nh * nh * d);
  for (let h = 0; h < nh; h++) masked.set(x.subarray(h * d, (h + 1) * d), (h * nh + h) * d);
  return native.matmul(masked, nh, w);
}

/** Row r of a 2-D weight as f32. */
function rowOf(w: native.Weight, r: number): Float32Array {
  const cols = w.shape[1];
  return new Tensor(w.dtype, [cols], w.data.subarray(r * cols, (r + 1) * cols) as Float32Array).toFloat32();
}
