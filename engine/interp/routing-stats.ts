/**
 * MoE routing over a dataset of prompts: expert load per layer, router entropy, how often two experts are chosen
 * together, which tokens go to which expert, and the per-token routing log as an Arrow table.
 */
import { tableFromArrays, type Table } from "apache-arrow";
import type { Model } from "../model.ts";
import { Routing } from "../analysis/routing.ts";
import { tokenLabels, tokenText } from "../analysis/tokens.ts";
import { InputError } from "../errors.ts";
import { passes } from "./passes.ts";
import { Figure } from "../figure.ts";
import { DISPLAY, type MimeBundle } from "../display.ts";

const ROUTING_HOOKS = /^blocks\.\d+\.moe\.hook_(router_logits|topk_idx|topk_weights)$/;

export class DatasetRouting {
  private constructor(
    readonly model: Model,
    readonly prompts: readonly number[][],
    /** routing[prompt][layer] */
    readonly routing: readonly (readonly Routing[])[],
  ) {}

  /** Routes every prompt (packed into batches of about `maxRowsPerPass` tokens) and keeps the routers' decisions. */
  static async collect(model: Model, prompts: readonly (string | ArrayLike<number>)[], options: { maxRowsPerPass?: number; signal?: AbortSignal } = {}): Promise<DatasetRouting> {
    if (prompts.length === 0) throw new InputError("routing statistics need at least one prompt");
    const ids = prompts.map((p) => Array.from(model.promptIds(p)));
    const maxRows = options.maxRowsPerPass ?? 4096;
    const routing: Routing[][] = [];
    for (const batch of passes(ids, (p) => p.length, maxRows)) {
      const { activations } = await model.runWithCacheBatch(batch, ROUTING_HOOKS, { logits: "none", signal: options.signal });
      activations.forEach((acts, j) => {
        const labels = tokenLabels(model, batch[j]);
        routing.push(model.config.layerTypes.map((_, l) => {
          const h = (s: string) => acts.get(`blocks.${l}.moe.hook_${s}`);
          return new Routing(l, h("router_logits"), h("topk_idx"), h("topk_weights"), labels);
        }));
      });
    }
    return new DatasetRouting(model, ids, routing);
  }

  get tokens(): number {
    return this.prompts.reduce((s, p) => s + p.length, 0);
  }

  /** [layer][expert]: share of the routed slots (tokens × top-k) that went to each expert (rows sum to 1). */
  load(): number[][] {
    const { numLayers, numExperts, topK } = this.model.config;
    return Array.from({ length: numLayers }, (_, l) => {
      const counts = new Array<number>(numExperts).fill(0);
      for (const r of this.routing) r[l].load().tokens.forEach((c, e) => (counts[e] += c));
      return counts.map((c) => c / (this.tokens * topK));
    });
  }

  /** Per layer: the router's mean entropy over all tokens (nats; ln(experts) would be uniform). */
  entropy(): number[] {
    return this.model.config.layerTypes.map((_, l) => {
      let sum = 0;
      for (const r of this.routing) for (const h of r[l].entropy()) sum += h;
      return sum / this.tokens;
    });
  }

  /** [expert][expert] of one layer: tokens that chose both (diagonal: tokens that chose the expert). */
  cooccurrence(layer: number): number[][] {
    const { numExperts: ne, topK: k, numLayers } = this.model.config;
    if (!(Number.isInteger(layer) && layer >= 0 && layer < numLayers)) throw new InputError(`layer ${layer} is outside [0, ${numLayers})`);
    const m = Array.from({ length: ne }, () => new Array<number>(ne).fill(0));
    for (const r of this.routing) {
      const idx = r[layer].topkIdx.i32;
      for (let t = 0; t < idx.length / k; t++) {
        for (let a = 0; a < k; a++) for (let b = 0; b < k; b++) m[idx[t * k + a]][idx[t * k + b]]++; // top-k experts are distinct
      }
    }
    return m;
  }

  /** One row per (token id, expert) of a layer: how often that token was routed there, and the mean weight. */
  tokenExperts(layer: number): Table {
    const k = this.model.config.topK;
    const stats = new Map<string, { token: number; expert: number; count: number; weight: number }>();
    this.prompts.forEach((ids, p) => {
      const r = this.routing[p][layer];
      const idx = r.topkIdx.i32, w = r.topkWeights.f32;
      for (let i = 0; i < idx.length; i++) {
        const token = ids[Math.floor(i / k)], expert = idx[i];
        const key = `${token}:${expert}`;
        const s = stats.get(key) ?? { token, expert, count: 0, weight: 0 };
        s.count++;
        s.weight += w[i];
        stats.set(key, s);
      }
    });
    const rows = [...stats.values()].sort((a, b) => a.token - b.token || a.expert - b.expert);
    return tableFromArrays({
      token: Int32Array.from(rows, (r) => r.token),
      text: rows.map((r) => tokenText(this.model, r.token)),
      expert: Int32Array.from(rows, (r) => r.expert),
      count: Int32Array.from(rows, (r) => r.count),
      mean_weight: Float64Array.from(rows, (r) => r.weight / r.count),
    });
  }

  /** The routing log: one row per (prompt, position, layer, slot) with the token, the expert and its weight. */
  log(): Table {
    const k = this.model.config.topK;
    const cols = { prompt: [] as number[], position: [] as number[], token: [] as number[], layer: [] as number[], slot: [] as number[], expert: [] as number[], weight: [] as number[] };
    this.prompts.forEach((ids, p) => {
      this.routing[p].forEach((r, l) => {
        const idx = r.topkIdx.i32, w = r.topkWeights.f32;
        for (let i = 0; i < idx.length; i++) {
          cols.prompt.push(p); cols.position.push(Math.floor(i / k)); cols.token.push(ids[Math.floor(i / k)]);
          cols.layer.push(l); cols.slot.push(i % k); cols.expert.push(idx[i]); cols.weight.push(w[i]);
        }
      });
    });
    return tableFromArrays({
      prompt: Int32Array.from(cols.prompt), position: Int32Array.from(cols.position), token: Int32Array.from(cols.token),
      layer: Int32Array.from(cols.layer), slot: Int32Array.from(cols.slot), expert: Int32Array.from(cols.expert), weight: Float32Array.from(cols.weight),
    });
  }

  /** Expert load per layer (heatmap) beside the router's mean entropy per layer. */
  plot(): Figure {
    const { numExperts: ne, layerTypes } = this.model.config;
    const layers = layerTypes.map((t, l) => `${l} ${t}`);
    return new Figure(
      [
        { type: "heatmap", z: this.load(), x: Array.from({ length: ne }, (_, e) => `expert ${e}`), y: layers, colorscale: "Blues", zmin: 0, xaxis: "x", yaxis: "y", colorbar: { title: { text: "share" }, x: 0.45 } },
        { type: "bar", x: this.entropy(), y: layers, orientation: "h", xaxis: "x2", yaxis: "y2", name: "entropy" },
      ],
      {
        grid: { rows: 1, columns: 2, pattern: "independent" }, height: 120 + 36 * layers.length,
        yaxis: { autorange: "reversed" }, yaxis2: { autorange: "reversed", showticklabels: false },
        xaxis2: { title: { text: `mean router entropy (nats; uniform = ${Math.log(ne).toFixed(2)})` } },
      },
      `MoE routing over ${this.prompts.length} prompts (${this.tokens} tokens): expert load per layer`,
    );
  }

  [DISPLAY](): MimeBundle {
    return this.plot()[DISPLAY]();
  }
}
