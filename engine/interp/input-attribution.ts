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
import { passes } from "./passes.ts";

/** One prompt's input attribution. */
export interface TokenAttribution {
  readonly labels: string[];
  /** ∂F/∂x at the input, [n, hidden] */
  readonly gradient: Tensor;
  /** per token: Σ_i x_{t,i} · ∂F/∂x_{t,i} at the input (≈ 0 in a postnorm model: see the module comment) */
  readonly gradientTimesInput: Float64Array;
  /** per token: the integrated gradients */
  readonly integratedGradients: Float64Array;
  /** F(x) and F(b) */
  readonly value: number;
  readonly baseline: number;
  /** Σ_t IG_t − (F(x) − F(b)): zero up to the path integral's discretisation */
  readonly completenessError: number;
}

type Prompt = string | ArrayLike<number>;

export interface InputAttributionOptions {
  /** Gauss-Legendre nodes of the path integral (default 64) */
  steps?: number;
  /** the token whose embedding replaces every token's (id or text; default: the config's bos_token_id, else 0) */
  baseline?: number | string;
  /** rows (copies × tokens) per packed pass over a dataset (default 4096; a prompt's copies always share a pass) */
  maxRowsPerPass?: number;
  signal?: AbortSignal;
}

/**
 * The attribution of one prompt, or of a dataset of prompts (its views then hold, per position, the mean over the
 * prompts that have it; `.prompts` and `.table()` have each prompt's own).
 */
export class InputAttribution {
  /** per position: its token label where every prompt that has the position agrees, else the position */
  readonly labels: string[];
  /** per position: the mean over the prompts of gradient × input and of the integrated gradients */
  readonly gradientTimesInput: Float64Array;
  readonly integratedGradients: Float64Array;
  /** the mean F(x) and F(b) */
  readonly value: number;
  readonly baseline: number;

  private constructor(
    readonly prompts: readonly TokenAttribution[],
    readonly steps: number,
    /** the baseline token's text */
    readonly baselineToken: string,
  ) {
    const n = Math.max(...prompts.map((p) => p.labels.length));
    const having = (t: number) => prompts.filter((p) => t < p.labels.length);
    this.labels = Array.from({ length: n }, (_, t) => {
      const labels = new Set(having(t).map((p) => p.labels[t]));
      return labels.size === 1 ? [...labels][0] : String(t);
    });
    const mean = (values: number[]) => values.reduce((s, v) => s + v, 0) / values.length;
    this.gradientTimesInput = Float64Array.from({ length: n }, (_, t) => mean(having(t).map((p) => p.gradientTimesInput[t])));
    this.integratedGradients = Float64Array.from({ length: n }, (_, t) => mean(having(t).map((p) => p.integratedGradients[t])));
    this.value = mean(prompts.map((p) => p.value));
    this.baseline = mean(prompts.map((p) => p.baseline));
  }

  /**
   * One prompt (text or token ids) or a dataset of prompts (of any lengths), with one metric or a list of one per
   * prompt. A prompt's m + 2 copies run in one packed forward and backward pass; the copies of
   * several prompts share passes of up to `maxRowsPerPass` rows.
   */
  static async compute(model: Model, prompts: Prompt | readonly Prompt[], metric: Metric | readonly Metric[], options: InputAttributionOptions = {}): Promise<InputAttribution> {
    const steps = options.steps ?? 64;
    if (!(Number.isInteger(steps) && steps >= 1)) throw new InputError(`integrated gradients: steps must be a positive integer, got ${steps}`);
    const maxRows = options.maxRowsPerPass ?? 4096;
    const many = Array.isArray(prompts) && prompts.length > 0 && prompts.every((p) => typeof p !== "number");
    const list = many ? prompts as readonly Prompt[] : [prompts as Prompt];
    const which = (i: number) => (many ? `input attribution, prompt ${i}` : "input attribution");
    const { hiddenSize: hs, vocabSize: vocab } = model.config;
    const table = model.weight("model.embed_tokens.weight", [vocab, hs]);
    const baselineId = tokenId(model, options.baseline ?? model.config.bosTokenId ?? 0);
    const baselineRow = native.embedding(Int32Array.of(baselineId), table);
    if (Array.isArray(metric) && metric.length !== list.length) throw new InputError(`input attribution: ${metric.length} metrics for ${list.length} prompts`);
    const encoded = list.map((prompt, i) => {
      const ids = Array.from(model.promptIds(prompt));
      if (ids.length === 0) throw new InputError(`${which(i)}: the prompt is empty`);
      return { ids, metric: Array.isArray(metric) ? metric[i] : metric as Metric, x: native.embedding(model.checkIds(ids), table) };
    });
    // copy 0: the input (α = 1), copy 1: the baseline (α = 0), then the path's quadrature nodes
    const quadrature = gaussLegendre(steps);
    const alphas = [1, 0, ...quadrature.nodes];
    const results: TokenAttribution[] = [];
    for (const pass of passes(encoded, (e) => e.ids.length * alphas.length, maxRows)) {
      // the embeddings of every copy of every prompt of the pass, packed as the pass's rows
      const path = new Float32Array(pass.reduce((s, e) => s + e.ids.length, 0) * alphas.length * hs);
      let row = 0;
      for (const { ids, x } of pass) {
        for (const a of alphas) {
          for (let i = 0; i < ids.length * hs; i++) path[row * hs + i] = baselineRow[i % hs] + a * (x[i] - baselineRow[i % hs]);
          row += ids.length;
        }
      }
      const onPath = (v: Tensor) => new Tensor("F32", v.shape, path);
      const routing = await frozenRouting(model, pass.map((e) => e.ids), alphas.length);
      const sequences = pass.flatMap((e) => alphas.map(() => e.ids));
      const tape = await model.hooks.with([["embed", onPath], ...routing], () =>
        model.forwardForBackward(sequences, { activationGrads: ["embed"], signal: options.signal }));
      const lastRow = (s: number) => tape.logits[s].f32.subarray((sequences[s].length - 1) * vocab, sequences[s].length * vocab);
      const dLogits = sequences.map((ids, s) => {
        const d = new Float32Array(ids.length * vocab);
        d.set(metricGradient(pass[Math.floor(s / alphas.length)].metric, lastRow(s)), (ids.length - 1) * vocab);
        return d;
      });
      const grads = (await tape.backward(dLogits)).activations.get("embed")!.map((t) => t.f32);
      pass.forEach(({ ids, x, metric: f }, j) => {
        const first = j * alphas.length;
        const n = ids.length;
        const gxi = new Float64Array(n), ig = new Float64Array(n);
        for (let t = 0; t < n; t++) {
          for (let i = t * hs; i < (t + 1) * hs; i++) {
            const b = baselineRow[i - t * hs];
            gxi[t] += x[i] * grads[first][i];
            let integral = 0;
            for (let c = 2; c < alphas.length; c++) integral += quadrature.weights[c - 2] * grads[first + c][i];
            ig[t] += (x[i] - b) * integral;
          }
        }
        const [value, baseline] = [f(lastRow(first)), f(lastRow(first + 1))];
        results.push({
          labels: tokenLabels(model, ids), gradient: new Tensor("F32", [n, hs], grads[first]), gradientTimesInput: gxi, integratedGradients: ig,
          value, baseline, completenessError: ig.reduce((s, v) => s + v, 0) - (value - baseline),
        });
      });
    }
    return new InputAttribution(results, steps, JSON.stringify(tokenText(model, baselineId)));
  }

  /** Σ_t IG_t − (F(x) − F(b)) of the prompt where it is largest in size (of the one prompt, for one). */
  get completenessError(): number {
    return this.prompts.reduce((worst, p) => (Math.abs(p.completenessError) > Math.abs(worst) ? p.completenessError : worst), 0);
  }

  /** One row per prompt and position: its token, gradient × input and integrated gradients. */
  table(): Table {
    const rows = this.prompts.flatMap((p, prompt) => p.labels.map((token, position) => ({ prompt, position, token, gxi: p.gradientTimesInput[position], ig: p.integratedGradients[position] })));
    return tableFromArrays({
      prompt: Int32Array.from(rows, (r) => r.prompt),
      position: Int32Array.from(rows, (r) => r.position),
      token: rows.map((r) => r.token),
      gradient_x_input: Float64Array.from(rows, (r) => r.gxi),
      integrated_gradients: Float64Array.from(rows, (r) => r.ig),
    });
  }

  /** One prompt: integrated gradients and gradient × input per token; a dataset: the integrated gradients of every
   *  prompt (rows) and position (columns) as a heatmap. */
  plot(): Figure {
    const how = `integrated gradients from ${this.baselineToken} at every position, ${this.steps} Gauss-Legendre steps`;
    if (this.prompts.length === 1) {
      return new Figure(
        [
          { type: "bar", name: "integrated gradients", x: this.labels, y: Array.from(this.integratedGradients) },
          { type: "bar", name: "gradient × input", x: this.labels, y: Array.from(this.gradientTimesInput) },
        ],
        { barmode: "group", xaxis: { tickangle: -60, automargin: true }, yaxis: { title: { text: "attribution to the metric" } } },
        `Input attribution per token (${how})`,
      );
    }
    const z = this.prompts.map((p) => this.labels.map((_, t) => (t < p.labels.length ? p.integratedGradients[t] : null)));
    const text = this.prompts.map((p) => this.labels.map((_, t) => p.labels[t] ?? ""));
    return new Figure(
      [{ type: "heatmap", z, x: this.labels, y: this.prompts.map((_, i) => `prompt ${i}`), text, colorscale: "RdBu", zmid: 0, reversescale: true,
        hovertemplate: "%{y}, %{text}: %{z:.4f}<extra></extra>", colorbar: { title: { text: "IG" } } }],
      { yaxis: { autorange: "reversed", automargin: true }, xaxis: { tickangle: -60, automargin: true }, height: Math.max(320, 120 + 22 * this.prompts.length) },
      `Input attribution per prompt and position (${how})`,
    );
  }

  [DISPLAY](): MimeBundle {
    const fig = this.plot()[DISPLAY]();
    const over = this.prompts.length > 1 ? `Mean over ${this.prompts.length} prompts: ` : "";
    const worst = this.prompts.length > 1 ? "largest completeness error of a prompt" : "completeness error";
    const note = `${over}F(input) = ${this.value.toFixed(4)}, F(baseline) = ${this.baseline.toFixed(4)}; ` +
      (this.prompts.length === 1 ? `Σ IG = ${(this.value - this.baseline + this.completenessError).toFixed(4)} ` : "") +
      `(${worst} ${this.completenessError.toExponential(1)}).`;
    return { ...fig, ...htmlBundle(`${fig["text/html"]}<p><small>${escapeHtml(note)}</small></p>`, `${fig["text/plain"]}\n${note}`) };
  }
}

/**
 * Hooks that keep each MoE's experts at those it chose for each prompt, in every one of `copies` copies of it (the
 * copies of each prompt packed one after the other, then the next prompt's): the top-k indices are replaced by the
 * prompt's, and the weights by the router's softmax over those experts.
 */
async function frozenRouting(model: Model, prompts: readonly number[][], copies: number): Promise<[string, (v: Tensor) => Tensor][]> {
  const { numLayers, numExperts: ne, topK: k } = model.config;
  const { activations } = await model.runWithCacheBatch(prompts, /moe\.hook_topk_idx$/, { logits: "none" });
  return Array.from({ length: numLayers }, (_, l) => {
    const name = `blocks.${l}.moe.`;
    // the experts of every packed row
    const chosen = Int32Array.from(prompts.flatMap((_, j) => {
      const own = Array.from(activations[j].get(name + "hook_topk_idx").i32);
      return Array.from({ length: copies }, () => own).flat();
    }));
    let logits = new Float32Array(0);
    const keepLogits = (v: Tensor) => void (logits = v.f32.slice());
    const frozenIdx = (v: Tensor) => new Tensor("I32", v.shape, chosen.slice());
    const frozenWeights = (v: Tensor) => {
      const w = new Float32Array(v.numel);
      for (let r = 0; r < v.numel / k; r++) {
        const row = logits.subarray(r * ne, (r + 1) * ne);
        const picked = Array.from({ length: k }, (_, j) => row[chosen[r * k + j]]);
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
