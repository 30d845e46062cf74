/**
 * Inside a lightning layer (docs/architecture.md §3.4): the per-head decay λ = exp(-s), the norm of the state S_t as the prompt
 * is read, and the effective token-to-token weights W[i,j] = (q_i·k_j) λ^(i-j), which reproduce the layer's
 * output o = W V exactly (the recurrence unrolled; no softmax, no normaliser).
 */
import { tableFromArrays, type Table } from "apache-arrow";
import * as native from "../../native/index.ts";
import { slopes, type ModelConfig } from "../config.ts";
import { Tensor } from "../tensor.ts";
import { Figure, heatmapGrid } from "../figure.ts";
import { DISPLAY, type MimeBundle } from "../display.ts";
import { InputError } from "../errors.ts";
import { gatherHead } from "../layers.ts";
import { windowOf, type Window } from "./tokens.ts";

/** Slope s, decay λ and half-life ln2/s (in tokens) of every head of every lightning layer. */
export function decayTable(config: ModelConfig): Table {
  const layer: number[] = [], head: number[] = [], slope: number[] = [], lambda: number[] = [], halfLife: number[] = [];
  config.layerTypes.forEach((t, l) => {
    if (t !== "lightning") return;
    slopes(config, l).forEach((s, h) => {
      layer.push(l); head.push(h); slope.push(s); lambda.push(Math.exp(-s)); halfLife.push(Math.LN2 / s);
    });
  });
  return tableFromArrays({
    layer: Int32Array.from(layer), head: Int32Array.from(head), slope: Float64Array.from(slope),
    lambda: Float64Array.from(lambda), half_life_tokens: Float64Array.from(halfLife),
  });
}

export interface LightningActivations {
  /** [n, heads, d] after SiLU */
  q: Tensor; k: Tensor; v: Tensor;
  /** [n, heads, d], the attention output before the norm */
  o: Tensor;
}

export class LightningLayer {
  readonly heads: number;
  readonly headDim: number;
  readonly tokens: number;
  readonly slopes: Float32Array;

  constructor(readonly layer: number, readonly config: ModelConfig, private readonly acts: LightningActivations, readonly labels: string[]) {
    [this.tokens, this.heads, this.headDim] = acts.q.shape;
    this.slopes = slopes(config, layer);
  }

  /** Per head: slope, λ, half-life. */
  decayProfile(): Table {
    const s = Array.from(this.slopes);
    return tableFromArrays({
      head: Int32Array.from(s.map((_, h) => h)), slope: Float64Array.from(s),
      lambda: Float64Array.from(s.map((x) => Math.exp(-x))), half_life_tokens: Float64Array.from(s.map((x) => Math.LN2 / x)),
    });
  }

  /** λ^distance per head: how much a token `distance` positions back still counts. */
  plotDecay(maxDistance = 256): Figure {
    const x = Array.from({ length: maxDistance + 1 }, (_, t) => t);
    const data = Array.from(this.slopes, (s, h) => ({ type: "scatter", mode: "lines", name: `head ${h}`, x, y: x.map((t) => Math.exp(-s * t)) }));
    return new Figure(data, { xaxis: { title: { text: "distance (tokens)" } }, yaxis: { title: { text: "λ^distance" }, type: "log" } }, `Layer ${this.layer} decay per head`);
  }

  /** ||S_t||_F per head after each token t, recomputed from the traced k and v with the recurrence. */
  stateNorms(): Tensor {
    const { tokens: n, heads, headDim: d } = this;
    const state = new Float32Array(heads * d * d);
    const zeros = new Float32Array(heads * d);
    const k = this.acts.k.f32;
    const v = this.acts.v.f32;
    const norms = new Float32Array(n * heads);
    for (let t = 0; t < n; t++) {
      native.lightningStep(zeros, k.subarray(t * heads * d, (t + 1) * heads * d), v.subarray(t * heads * d, (t + 1) * heads * d), 1, heads, d, this.slopes, state);
      for (let h = 0; h < heads; h++) {
        let sum = 0;
        for (const x of state.subarray(h * d * d, (h + 1) * d * d)) sum += x * x;
        norms[t * heads + h] = Math.sqrt(sum);
      }
    }
    return new Tensor("F32", [n, heads], norms);
  }

  plotStateNorms(): Figure {
    const norms = this.stateNorms().f32;
    const x = this.labels;
    const data = Array.from({ length: this.heads }, (_, h) => ({
      type: "scatter", mode: "lines", name: `head ${h}`, x, y: x.map((_, t) => norms[t * this.heads + h]),
    }));
    return new Figure(data, { xaxis: { title: { text: "token" } }, yaxis: { title: { text: "‖S_t‖_F" } } }, `Layer ${this.layer} state norm per head`);
  }

  /** W[i,j] = (q_i·k_j) λ^(i-j) for j <= i (0 above the diagonal), one head. */
  effectiveAttention(options: { head: number }): EffectiveAttention {
    const { head } = options;
    if (!(Number.isInteger(head) && head >= 0 && head < this.heads)) throw new InputError(`head ${head} is outside [0, ${this.heads}) of layer ${this.layer}`);
    const n = this.tokens;
    const q = headRows(this.acts.q, head);
    const k = headRows(this.acts.k, head);
    const scores = native.matmul(q, n, { dtype: "F32", data: k, shape: [n, this.headDim] });
    const s = this.slopes[head];
    for (let i = 0; i < n; i++) {
      for (let j = 0; j < n; j++) scores[i * n + j] = j <= i ? scores[i * n + j] * Math.exp(-s * (i - j)) : 0;
    }
    return new EffectiveAttention(this.layer, head, new Tensor("F32", [n, n], scores), headRows(this.acts.v, head), headRows(this.acts.o, head), this.headDim, this.labels);
  }
}

export class EffectiveAttention {
  constructor(
    readonly layer: number,
    readonly head: number,
    /** [n, n] */
    readonly weights: Tensor,
    private readonly values: Float32Array,
    private readonly layerOutput: Float32Array,
    private readonly headDim: number,
    readonly labels: string[],
  ) {}

  /** W V: [n, headDim], what the weights say the layer outputs for this head. */
  output(): Float32Array {
    const n = this.weights.shape[0];
    const d = this.headDim;
    const valuesT = new Float32Array(d * n);
    for (let j = 0; j < n; j++) for (let c = 0; c < d; c++) valuesT[c * n + j] = this.values[j * d + c];
    return native.matmul(this.weights.f32, n, { dtype: "F32", data: valuesT, shape: [d, n] });
  }

  /** ||W V - o|| / ||o|| against the layer's own output (hook_o) for this head. */
  check(): number {
    const wv = this.output();
    let num = 0, den = 0;
    for (let i = 0; i < wv.length; i++) {
      num += (wv[i] - this.layerOutput[i]) ** 2;
      den += this.layerOutput[i] ** 2;
    }
    return Math.sqrt(num / den);
  }

  plot(options: Window = {}): Figure {
    const n = this.weights.shape[0];
    const [from, to] = windowOf(n, options);
    const w = this.weights.f32;
    const labels = this.labels.slice(from, to);
    const z = labels.map((_, i) => labels.map((_, j) => w[(from + i) * n + from + j]));
    return heatmapGrid([{ title: `head ${this.head}`, x: labels, y: labels, z }], {
      title: `Layer ${this.layer} lightning head ${this.head}: effective weights q_i·k_j·λ^(i−j)`, colorscale: "RdBu", zmid: 0, colorbarTitle: "weight",
    });
  }

  table(): Table {
    const n = this.weights.shape[0];
    const w = this.weights.f32;
    const query: number[] = [], key: number[] = [], weight: number[] = [];
    for (let i = 0; i < n; i++) for (let j = 0; j <= i; j++) { query.push(i); key.push(j); weight.push(w[i * n + j]); }
    return tableFromArrays({ query: Int32Array.from(query), key: Int32Array.from(key), weight: Float32Array.from(weight) });
  }

  [DISPLAY](): MimeBundle {
    return this.plot()[DISPLAY]();
  }
}

/** [n, heads, d] → the contiguous [n, d] of one head. */
function headRows(t: Tensor, head: number): Float32Array {
  const [n, heads, d] = t.shape;
  return gatherHead(t.f32, n, heads, d, head);
}
