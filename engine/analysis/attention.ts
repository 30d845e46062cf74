/** Softmax-layer attention patterns per head (hook_pattern), as a heatmap grid and an Arrow table. */
import { tableFromArrays, type Table } from "apache-arrow";
import type { Tensor } from "../tensor.ts";
import { heatmapGrid, type Figure } from "../figure.ts";
import { DISPLAY, type MimeBundle } from "../display.ts";
import { windowOf, type Window } from "./tokens.ts";

export class AttentionPattern {
  readonly heads: number;
  readonly tokens: number;

  /** pattern [heads, n, n]: row = query position, column = key position */
  constructor(readonly layer: number, readonly pattern: Tensor, readonly labels: string[]) {
    [this.heads, this.tokens] = pattern.shape;
  }

  /** Weight of query i on key j in head h. */
  at(head: number, i: number, j: number): number {
    return (this.pattern.f32)[(head * this.tokens + i) * this.tokens + j];
  }

  /** One heatmap per head; long prompts show a window of positions (default the last 64). */
  plot(options: Window & { heads?: number[] } = {}): Figure {
    const [from, to] = windowOf(this.tokens, options);
    const heads = options.heads ?? Array.from({ length: this.heads }, (_, h) => h);
    const labels = this.labels.slice(from, to);
    const panels = heads.map((h) => ({
      title: `head ${h}`,
      x: labels,
      y: labels,
      z: labels.map((_, i) => labels.map((_, j) => this.at(h, from + i, from + j))),
    }));
    const range = from > 0 || to < this.tokens ? ` (positions ${from}..${to - 1} of ${this.tokens})` : "";
    return heatmapGrid(panels, { title: `Layer ${this.layer} softmax attention${range}`, zmin: 0, zmax: 1, colorbarTitle: "weight" });
  }

  /** Long format: one row per (head, query, key) with key <= query. */
  table(): Table {
    const head: number[] = [], query: number[] = [], key: number[] = [], weight: number[] = [];
    for (let h = 0; h < this.heads; h++) {
      for (let i = 0; i < this.tokens; i++) {
        for (let j = 0; j <= i; j++) {
          head.push(h); query.push(i); key.push(j); weight.push(this.at(h, i, j));
        }
      }
    }
    return tableFromArrays({ head: Int32Array.from(head), query: Int32Array.from(query), key: Int32Array.from(key), weight: Float32Array.from(weight) });
  }

  [DISPLAY](): MimeBundle {
    return this.plot()[DISPLAY]();
  }
}
