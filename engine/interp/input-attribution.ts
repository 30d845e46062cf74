/**
 * Input attribution per prompt token: gradient × input, and integrated gradients (Sundararajan et al. 2017) on the
 * straight path from a baseline b (every token's embedding replaced by one baseline token's, by default the
 * beginning-of-sequence token's) to the prompt's x,
 *
 *   IG_t = Σ_i (x − b)_{t,i} · ∫₀¹ ∂F/∂x_{t,i} at b + α(x − b) dα ≈ Σ_i (x − b)_{t,i} · Σ_k w_k ∂F/∂x_{t,i} at α_k,
 *
 * with F the metric of the last position's logits. The m path points (and the input and the baseline) are one batch
 * of copies of the prompt whose embeddings a hook moves along the path, run through one forward and one backward
 * pass. Completeness, Σ_t IG_t = F(x) − F(b), needs F smooth along the path, and the MoE's top-k choice is not:
 * F jumps where a token's experts change. So along the path every MoE keeps the experts it chose for the input (its
 * weights still follow the router's logits, renormalised over those experts), as DLA keeps the norms' scales; F(b)
 * is taken with the same routing, and the sum then holds up to the quadrature's error (which a sharply nonlinear F, like
 * the demo pair's near-certain digits, needs more steps to bring down).
 *
 * Why not the usual all-zero baseline (or a padding token whose row is zero, or the mean embedding, whose norm is
 * small): the M1 layer is postnorm, so the embedding reaches the rest of the model only through RMSNorm, which is
 * blind to scale. F(αx) is then flat for all α but the smallest, where it jumps (and gradient × input is ~0): that
 * path puts its whole integral in a corner no quadrature sees. The nodes α_k and weights w_k are Gauss-Legendre's.
 */
import { tableFromArrays, type Table } from "apache-arrow";
import * as native from "../../native/index.ts";
import type { Model } from "../model.ts";
import { Tensor } from "../tensor.ts";
import { InputError } from "../errors.ts";
import { Figure } from "../figure.ts";
import { DISPLAY, htmlBundle, escapeHtml, type MimeBundle } from "../display.ts";
import { tokenLabels, tokenId, tokenText } from "../analysis/tokens.ts";
import { metricGradient, type Metric } from "./metric.ts";

export class InputAttribution {
  private constructor(
    readonly labels: string[],
    /** ∂F/∂x at the input, [n, hidden] */
    readonly gradient: Tensor,
    /** per token: Σ_i x_{t,i} · ∂F/∂x_{t,i} at the input (≈ 0 in a postnorm model: see the module comment) */
    readonly gradientTimesInput: Float64Array,
    /** per token: the integrated gradients */
    readonly integratedGradients: Float64Array,
    /** F(x) and F(b) */
    readonly value: number,
    readonly baseline: number,
    readonly steps: number,
    /** the baseline token's text */
    readonly baselineToken: string,
  ) {}

  /** `baseline`: the token whose embedding replaces every token's (id or text; default: the config's bos_token_id, else 0). */
  static async compute(model: Model, prompt: string | ArrayLike<number>, metric: Metric, options: { steps?: number; baseline?: number | string; signal?: AbortSignal } = {}): Promise<InputAttribution> {
    const steps = options.steps ?? 64;
    if (!(Number.isInteger(steps) && steps >= 1)) throw new InputError(`integrated gradients: steps must be a positive integer, got ${steps}`);
    const ids = Array.from(model.promptIds(prompt));
    const n = ids.length;
    if (n === 0) throw new InputError("input attribution: the prompt is empty");
    const { hiddenSize: hs, vocabSize: vocab } = model.config;
    const table = model.weight("model.embed_tokens.weight", [vocab, hs]);
    const x = native.embedding(model.checkIds(ids), table);
    const baselineId = tokenId(model, options.baseline ?? model.config.bosTokenId ?? 0);
    const baselineRow = native.embedding(Int32Array.of(baselineId), table);
    const b = new Float32Array(n * hs);
    for (let t = 0; t < n; t++) b.set(baselineRow, t * hs);
    // copy 0: the input (α = 1), copy 1: the baseline (α = 0), then the path's quadrature nodes
    const quadrature = gaussLegendre(steps);
    const alphas = [1, 0, ...quadrature.nodes];
    const onPath = (v: Tensor) => {
      const out = new Float32Array(v.numel);
      alphas.forEach((a, c) => {
        for (let i = 0; i < n * hs; i++) out[c * n * hs + i] = b[i] + a * (x[i] - b[i]);
      });
      return new Tensor("F32", v.shape, out);
    };
    const routing = await frozenRouting(model, ids, alphas.length);
    const tape = await model.hooks.with([["embed", onPath], ...routing], () =>
      model.forwardForBackward(alphas.map(() => ids), { activationGrads: ["embed"], signal: options.signal }));
    const lastRow = (c: number) => tape.logits[c].f32.subarray((n - 1) * vocab, n * vocab);
    const dLogits = alphas.map((_, c) => {
      const d = new Float32Array(n * vocab);
      d.set(metricGradient(metric, lastRow(c)), (n - 1) * vocab);
      return d;
    });
    const grads = (await tape.backward(dLogits)).activations.get("embed")!.map((t) => t.f32);
    const gxi = new Float64Array(n), ig = new Float64Array(n);
    for (let t = 0; t < n; t++) {
      for (let i = t * hs; i < (t + 1) * hs; i++) {
        gxi[t] += x[i] * grads[0][i];
        let integral = 0;
        for (let c = 2; c < alphas.length; c++) integral += quadrature.weights[c - 2] * grads[c][i];
        ig[t] += (x[i] - b[i]) * integral;
      }
    }
    return new InputAttribution(tokenLabels(model, ids), new Tensor("F32", [n, hs], grads[0]), gxi, ig, metric(lastRow(0)), metric(lastRow(1)), steps, JSON.stringify(tokenText(model, baselineId)));
  }

  /** Σ_t IG_t − (F(x) − F(b)): zero up to the path integral's discretisation. */
  get completenessError(): number {
    return this.integratedGradients.reduce((s, v) => s + v, 0) - (this.value - this.baseline);
  }

  table(): Table {
    return tableFromArrays({
      position: Int32Array.from(this.labels, (_, i) => i),
      token: this.labels,
      gradient_x_input: Float64Array.from(this.gradientTimesInput),
      integrated_gradients: Float64Array.from(this.integratedGradients),
    });
  }

  plot(): Figure {
    return new Figure(
      [
        { type: "bar", name: "integrated gradients", x: this.labels, y: Array.from(this.integratedGradients) },
        { type: "bar", name: "gradient × input", x: this.labels, y: Array.from(this.gradientTimesInput) },
      ],
      { barmode: "group", xaxis: { tickangle: -60, automargin: true }, yaxis: { title: { text: "attribution to the metric" } } },
      `Input attribution per token (integrated gradients from ${this.baselineToken} at every position, ${this.steps} Gauss-Legendre steps)`,
    );
  }

  [DISPLAY](): MimeBundle {
    const fig = this.plot()[DISPLAY]();
    const note = `F(input) = ${this.value.toFixed(4)}, F(baseline) = ${this.baseline.toFixed(4)}; Σ IG = ${(this.value - this.baseline + this.completenessError).toFixed(4)} ` +
      `(completeness error ${this.completenessError.toExponential(1)}).`;
    return { ...fig, ...htmlBundle(`${fig["text/html"]}<p><small>${escapeHtml(note)}</small></p>`, `${fig["text/plain"]}\n${note}`) };
  }
}

/**
 * Hooks that keep each MoE's experts at those it chose for the prompt, in every one of `copies` packed copies of it:
 * the top-k indices are replaced by the prompt's, and the weights by the router's softmax over those experts.
 */
async function frozenRouting(model: Model, ids: number[], copies: number): Promise<[string, (v: Tensor) => Tensor][]> {
  const { numLayers, numExperts: ne, topK: k } = model.config;
  const { activations } = await model.runWithCache(ids, /moe\.hook_topk_idx$/, { logits: "none" });
  return Array.from({ length: numLayers }, (_, l) => {
    const name = `blocks.${l}.moe.`;
    const chosen = activations.get(name + "hook_topk_idx").i32;
    let logits = new Float32Array(0);
    const keepLogits = (v: Tensor) => void (logits = v.f32.slice());
    const frozenIdx = (v: Tensor) => new Tensor("I32", v.shape, Int32Array.from({ length: v.numel }, (_, i) => chosen[i % chosen.length]));
    const frozenWeights = (v: Tensor) => {
      const w = new Float32Array(v.numel);
      for (let r = 0; r < v.numel / k; r++) {
        const row = logits.subarray(r * ne, (r + 1) * ne);
        const picked = Array.from({ length: k }, (_, j) => row[chosen[(r * k + j) % chosen.length]]);
        const max = Math.max(...picked);
        const z = picked.reduce((s, x) => s + Math.exp(x - max), 0);
        picked.forEach((x, j) => (w[r * k + j] = Math.exp(x - max) / z));
      }
      return new Tensor("F32", v.shape, w);
    };
    return [[name + "hook_router_logits", keepLogits], [name + "hook_topk_idx", frozenIdx], [name + "hook_topk_weights", frozenWeights]] as [string, (v: Tensor) => Tensor][];
  }).flat();
}

/** Gauss-Legendre quadrature of m points on [0, 1]: exact for polynomials of degree 2m − 1. Nodes are the roots of
 *  the Legendre polynomial P_m found by Newton's method from Chebyshev guesses; weights 2 / ((1 − x²) P_m'(x)²), halved. */
function gaussLegendre(m: number): { nodes: number[]; weights: number[] } {
  const nodes: number[] = [], weights: number[] = [];
  for (let i = 0; i < m; i++) {
    let x = Math.cos((Math.PI * (i + 0.75)) / (m + 0.5));
    let dp = 0;
    for (let iter = 0; iter < 100; iter++) {
      // P_m(x) and P_m'(x) by the three-term recurrence
      let p0 = 1, p1 = x;
      for (let j = 2; j <= m; j++) [p0, p1] = [p1, ((2 * j - 1) * x * p1 - (j - 1) * p0) / j];
      const p = m === 1 ? x : p1;
      const pPrev = m === 1 ? 1 : p0;
      dp = (m * (x * p - pPrev)) / (x * x - 1);
      const step = p / dp;
      x -= step;
      if (Math.abs(step) < 1e-15) break;
    }
    nodes.push((1 - x) / 2);
    weights.push(1 / ((1 - x * x) * dp * dp));
  }
  return { nodes, weights };
}
