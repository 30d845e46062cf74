/** MoE routing of one layer: chosen experts and weights per token, load per expert, router entropy. */
import { tableFromArrays, type Table } from "apache-arrow";
import type { Tensor } from "../tensor.ts";
import { Figure } from "../figure.ts";
import { softmax } from "../softmax.ts";
import { DISPLAY, type MimeBundle } from "../display.ts";
import { windowOf, type Window } from "./tokens.ts";

export class Routing {
  readonly tokens: number;
  readonly experts: number;
  readonly topK: number;

  constructor(
    readonly layer: number,
    /** [n, experts] before softmax */
    readonly routerLogits: Tensor,
    /** [n, k] */
    readonly topkIdx: Tensor,
    /** [n, k], renormalised */
    readonly topkWeights: Tensor,
    readonly labels: string[],
  ) {
    [this.tokens, this.experts] = routerLogits.shape;
    this.topK = topkIdx.shape[1];
  }

  /** One row per (token, slot): the expert and its weight. */
  table(): Table {
    const idx = this.topkIdx.i32;
    const w = this.topkWeights.f32;
    const token = Int32Array.from(idx, (_, i) => Math.floor(i / this.topK));
    return tableFromArrays({
      token,
      label: Array.from(token, (t) => this.labels[t]),
      slot: Int32Array.from(idx, (_, i) => i % this.topK),
      expert: Int32Array.from(idx),
      weight: Float32Array.from(w),
    });
  }

  /** Per expert: tokens routed to it and the sum of their router weights. */
  load(): { tokens: Int32Array; weight: Float32Array } {
    const tokens = new Int32Array(this.experts);
    const weight = new Float32Array(this.experts);
    const idx = this.topkIdx.i32;
    const w = this.topkWeights.f32;
    for (let i = 0; i < idx.length; i++) {
      tokens[idx[i]]++;
      weight[idx[i]] += w[i];
    }
    return { tokens, weight };
  }

  /** Entropy (nats) of the router's softmax over all experts, per token. */
  entropy(): Float32Array {
    const logits = this.routerLogits.f32;
    const out = new Float32Array(this.tokens);
    for (let t = 0; t < this.tokens; t++) {
      let h = 0;
      for (const p of softmax(logits.subarray(t * this.experts, (t + 1) * this.experts))) if (p > 0) h -= p * Math.log(p);
      out[t] = h;
    }
    return out;
  }

  /** Heatmap of routed weight (token × expert), the load per expert and the router entropy per token. */
  plot(options: Window = {}): Figure {
    const [from, to] = windowOf(this.tokens, options);
    const idx = this.topkIdx.i32;
    const w = this.topkWeights.f32;
    const labels = this.labels.slice(from, to);
    const z = labels.map((_, i) => {
      const row = new Array<number>(this.experts).fill(0);
      for (let j = 0; j < this.topK; j++) row[idx[(from + i) * this.topK + j]] = w[(from + i) * this.topK + j];
      return row;
    });
    const experts = Array.from({ length: this.experts }, (_, e) => `expert ${e}`);
    const load = this.load();
    const entropy = this.entropy();
    return new Figure(
      [
        { type: "heatmap", z, x: experts, y: labels, colorscale: "Blues", zmin: 0, zmax: 1, xaxis: "x", yaxis: "y", colorbar: { title: { text: "weight" } } },
        { type: "bar", x: experts, y: Array.from(load.tokens), name: "tokens routed", xaxis: "x2", yaxis: "y2" },
        { type: "scatter", mode: "lines+markers", x: labels, y: Array.from(entropy.subarray(from, to)), name: "router entropy (nats)", xaxis: "x3", yaxis: "y3" },
      ],
      {
        grid: { rows: 3, columns: 1, pattern: "independent", roworder: "top to bottom" },
        height: 900,
        yaxis: { autorange: "reversed", showticklabels: labels.length <= 48, automargin: true },
        yaxis2: { title: { text: "tokens" } },
        yaxis3: { title: { text: "entropy" } },
        xaxis3: { showticklabels: labels.length <= 48, tickangle: -60 },
        showlegend: false,
      },
      `Layer ${this.layer} MoE routing (top-${this.topK} of ${this.experts})`,
    );
  }

  [DISPLAY](): MimeBundle {
    return this.plot()[DISPLAY]();
  }
}
