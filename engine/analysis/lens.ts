/**
 * Logit lens: the residual stream after each layer read through the final norm and the LM head, i.e. what the
 * model would predict if it stopped there.
 */
import { tableFromArrays, type Table } from "apache-arrow";
import { Figure } from "../figure.ts";
import { DISPLAY, type MimeBundle } from "../display.ts";
import { windowOf, type Window } from "./tokens.ts";

export interface LensRow {
  /** top-1 token id per position */
  top: Int32Array;
  /** its probability */
  topProb: Float32Array;
  /** probability of the model's final top-1 token at that position */
  finalProb: Float32Array;
}

export class LogitLens {
  /** rows[l] for layer l (after the layer's residual) */
  constructor(readonly rows: LensRow[], readonly finalTop: Int32Array, readonly labels: string[], private readonly tokenText: (id: number) => string) {}

  static compute(layerLogits: Float32Array[], tokens: number, vocab: number, finalLogits: Float32Array, labels: string[], tokenText: (id: number) => string): LogitLens {
    const finalTop = Int32Array.from({ length: tokens }, (_, t) => argmaxRow(finalLogits, t, vocab));
    const rows = layerLogits.map((logits) => {
      const top = new Int32Array(tokens);
      const topProb = new Float32Array(tokens);
      const finalProb = new Float32Array(tokens);
      for (let t = 0; t < tokens; t++) {
        const row = logits.subarray(t * vocab, (t + 1) * vocab);
        const best = argmaxRow(logits, t, vocab);
        let z = 0;
        for (const x of row) z += Math.exp(x - row[best]);
        top[t] = best;
        topProb[t] = 1 / z;
        finalProb[t] = Math.exp(row[finalTop[t]] - row[best]) / z;
      }
      return { top, topProb, finalProb };
    });
    return new LogitLens(rows, finalTop, labels, tokenText);
  }

  table(): Table {
    const layer: number[] = [], position: number[] = [], top: number[] = [], text: string[] = [], topProb: number[] = [], finalProb: number[] = [];
    this.rows.forEach((r, l) => {
      for (let t = 0; t < r.top.length; t++) {
        layer.push(l); position.push(t); top.push(r.top[t]); text.push(this.tokenText(r.top[t])); topProb.push(r.topProb[t]); finalProb.push(r.finalProb[t]);
      }
    });
    return tableFromArrays({
      layer: Int32Array.from(layer), position: Int32Array.from(position), top_token: Int32Array.from(top), top_text: text,
      top_prob: Float32Array.from(topProb), final_token_prob: Float32Array.from(finalProb),
    });
  }

  /** Layers × positions: color = probability of the final prediction, text = that layer's own top token. */
  plot(options: Window = {}): Figure {
    const n = this.finalTop.length;
    const [from, to] = windowOf(n, { maxTokens: 32, ...options });
    const x = this.labels.slice(from, to);
    const y = this.rows.map((_, l) => `layer ${l}`);
    return new Figure(
      [{
        type: "heatmap", x, y,
        z: this.rows.map((r) => Array.from(r.finalProb.subarray(from, to))),
        text: this.rows.map((r) => Array.from(r.top.subarray(from, to), (id) => this.tokenText(id))),
        texttemplate: "%{text}", zmin: 0, zmax: 1, colorscale: "Viridis", colorbar: { title: { text: "p(final top-1)" } },
        hovertemplate: "%{y}, %{x}: top %{text}, p(final)=%{z:.3f}<extra></extra>",
      }],
      { xaxis: { tickangle: -60, automargin: true }, height: 120 + 40 * y.length },
      "Logit lens: each layer's residual stream through the final norm and LM head",
    );
  }

  [DISPLAY](): MimeBundle {
    return this.plot()[DISPLAY]();
  }
}

function argmaxRow(logits: Float32Array, t: number, vocab: number): number {
  let best = 0;
  const base = t * vocab;
  for (let i = 1; i < vocab; i++) if (logits[base + i] > logits[base + best]) best = i;
  return best;
}
