/** Where two traces of the same prompt (e.g. mini-40k vs mini-80k) diverge, layer by layer. */
import { tableFromArrays, type Table } from "apache-arrow";
import { Figure } from "../figure.ts";
import { softmax } from "../softmax.ts";
import { DISPLAY, htmlBundle, escapeHtml, type MimeBundle } from "../display.ts";

export interface LayerDivergence {
  layer: number;
  type: string;
  /** ||a - b|| / ||a|| of the residual stream after the layer */
  residual: number;
  attention: number;
  moe: number;
  /** fraction of tokens routed to the same set of experts */
  routingAgreement: number;
}

export interface LogitsDivergence {
  relative: number;
  /** mean over positions of KL(p_a || p_b), nats */
  meanKl: number;
  /** fraction of positions with the same top-1 token */
  top1Agreement: number;
}

export class TraceDiff {
  constructor(readonly names: [string, string], readonly layers: LayerDivergence[], readonly logits: LogitsDivergence) {}

  table(): Table {
    const col = (f: (d: LayerDivergence) => number) => Float64Array.from(this.layers, f);
    return tableFromArrays({
      layer: Int32Array.from(this.layers, (d) => d.layer),
      type: this.layers.map((d) => d.type),
      residual_rel_diff: col((d) => d.residual),
      attention_rel_diff: col((d) => d.attention),
      moe_rel_diff: col((d) => d.moe),
      routing_agreement: col((d) => d.routingAgreement),
    });
  }

  plot(): Figure {
    const x = this.layers.map((d) => `${d.layer} ${d.type === "softmax" ? "S" : "L"}`);
    const line = (name: string, y: number[], axis = "y") => ({ type: "scatter", mode: "lines+markers", name, x, y, yaxis: axis });
    return new Figure(
      [
        line("residual", this.layers.map((d) => d.residual)),
        line("attention out", this.layers.map((d) => d.attention)),
        line("MoE out", this.layers.map((d) => d.moe)),
        line("routing agreement", this.layers.map((d) => d.routingAgreement), "y2"),
      ],
      {
        xaxis: { title: { text: "layer (L lightning, S softmax)" } },
        yaxis: { title: { text: "relative difference" } },
        yaxis2: { title: { text: "routing agreement" }, overlaying: "y", side: "right", range: [0, 1.05] },
        legend: { orientation: "h" },
      },
      `${this.names[0]} vs ${this.names[1]}: logits rel. diff ${this.logits.relative.toFixed(3)}, top-1 agreement ${(100 * this.logits.top1Agreement).toFixed(0)}%`,
    );
  }

  [DISPLAY](): MimeBundle {
    const fig = this.plot()[DISPLAY]();
    const summary = `${this.names[0]} vs ${this.names[1]}: logits relative difference ${this.logits.relative.toFixed(4)}, mean KL ${this.logits.meanKl.toFixed(4)} nats, top-1 agreement ${(100 * this.logits.top1Agreement).toFixed(1)}%`;
    return { ...fig, ...htmlBundle(`<p>${escapeHtml(summary)}</p>${fig["text/html"]}`, `${summary}\n${this.layers.map((d) => `  layer ${d.layer} (${d.type}): residual ${d.residual.toFixed(4)}, routing agreement ${d.routingAgreement.toFixed(2)}`).join("\n")}`) };
  }
}

export function relativeDifference(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let num = 0, den = 0;
  for (let i = 0; i < a.length; i++) {
    num += (a[i] - b[i]) ** 2;
    den += a[i] ** 2;
  }
  return den === 0 ? (num === 0 ? 0 : Infinity) : Math.sqrt(num / den);
}

/** Fraction of tokens whose top-k expert sets are equal (order within the set ignored). */
export function routingAgreement(a: Int32Array, b: Int32Array, k: number): number {
  const n = a.length / k;
  let same = 0;
  for (let t = 0; t < n; t++) {
    const sa = Array.from(a.subarray(t * k, (t + 1) * k)).sort().join();
    const sb = Array.from(b.subarray(t * k, (t + 1) * k)).sort().join();
    if (sa === sb) same++;
  }
  return same / n;
}

export function logitsDivergence(a: Float32Array, b: Float32Array, vocab: number): LogitsDivergence {
  const n = a.length / vocab;
  let kl = 0, agree = 0;
  for (let t = 0; t < n; t++) {
    const pa = softmax(a.subarray(t * vocab, (t + 1) * vocab));
    const pb = softmax(b.subarray(t * vocab, (t + 1) * vocab));
    let ia = 0, ib = 0;
    for (let i = 0; i < vocab; i++) {
      if (pa[i] > 0) kl += pa[i] * (Math.log(pa[i]) - Math.log(Math.max(pb[i], 1e-300)));
      if (pa[i] > pa[ia]) ia = i;
      if (pb[i] > pb[ib]) ib = i;
    }
    if (ia === ib) agree++;
  }
  return { relative: relativeDifference(a, b), meanKl: kl / n, top1Agreement: agree / n };
}
